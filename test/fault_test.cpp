// Faults: allocation failure (an operator new that fails on the Nth call) and descriptor
// exhaustion (RLIMIT_NOFILE) while creating loops, events and watchers, posting and submitting.
// Each must give the contract's exception, leave every object usable and leak nothing.

#include <dirent.h>
#include <execinfo.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <future>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <evcxx/evcxx.hpp>

#include "fault_support.hpp"
#include "support.hpp"

// GCC 12 warns, wrongly, that std::optional<watcher>::reset() may read an empty payload.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

using namespace std::chrono_literals;
using evcxx_fault::Ballast;
using evcxx_fault::DescriptorHog;
using evcxx_fault::fail_each_allocation;
using evcxx_fault::free_descriptors;
using evcxx_fault::read_to_end;
using evcxx_fault::require;
using evcxx_fault::require_descriptor_error;
using evcxx_fault::run_in_child;
using evcxx_test::Pipe;

// --- the failing allocator ---------------------------------------------------------------------

namespace {

thread_local long this_thread_countdown = 0;  // > 0: the call that takes it to 0 fails
thread_local bool this_thread_failed = false;
std::atomic<long> any_thread_countdown{0};
std::atomic<bool> any_thread_failed{false};
std::atomic<long> live_blocks{0};

bool should_fail() noexcept {
  if (this_thread_countdown > 0 && --this_thread_countdown == 0) {
    this_thread_failed = true;
    return true;
  }
  if (any_thread_countdown.load(std::memory_order_relaxed) > 0 &&
      any_thread_countdown.fetch_sub(1, std::memory_order_relaxed) == 1) {
    any_thread_failed.store(true, std::memory_order_relaxed);
    return true;
  }
  return false;
}

void* allocate(std::size_t size, std::size_t alignment) noexcept {
  if (should_fail()) return nullptr;
  if (size == 0) size = 1;
  void* block = nullptr;
  if (alignment <= __STDCPP_DEFAULT_NEW_ALIGNMENT__) {
    block = std::malloc(size);
  } else if (::posix_memalign(&block, alignment, size) != 0) {
    block = nullptr;
  }
  if (block != nullptr) live_blocks.fetch_add(1, std::memory_order_relaxed);
  return block;
}

void* allocate_or_throw(std::size_t size, std::size_t alignment) {
  if (void* block = allocate(size, alignment)) return block;
  throw std::bad_alloc();
}

void deallocate(void* block) noexcept {
  if (block == nullptr) return;
  live_blocks.fetch_sub(1, std::memory_order_relaxed);
  std::free(block);
}

constexpr std::size_t kPlain = __STDCPP_DEFAULT_NEW_ALIGNMENT__;

}  // namespace

namespace evcxx_fault {

void arm(long n) noexcept {
  this_thread_failed = false;
  this_thread_countdown = n;
}

void arm_any_thread(long n) noexcept {
  any_thread_failed.store(false, std::memory_order_relaxed);
  any_thread_countdown.store(n, std::memory_order_relaxed);
}

bool disarm() noexcept {
  const bool failed =
      this_thread_failed || any_thread_failed.exchange(false, std::memory_order_relaxed);
  this_thread_countdown = 0;
  this_thread_failed = false;
  any_thread_countdown.store(0, std::memory_order_relaxed);
  return failed;
}

long live_allocations() noexcept {
  return live_blocks.load(std::memory_order_relaxed);
}

}  // namespace evcxx_fault

void* operator new(std::size_t size) {
  return allocate_or_throw(size, kPlain);
}
void* operator new[](std::size_t size) {
  return allocate_or_throw(size, kPlain);
}
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  return allocate(size, kPlain);
}
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  return allocate(size, kPlain);
}
void* operator new(std::size_t size, std::align_val_t alignment) {
  return allocate_or_throw(size, static_cast<std::size_t>(alignment));
}
void* operator new[](std::size_t size, std::align_val_t alignment) {
  return allocate_or_throw(size, static_cast<std::size_t>(alignment));
}
void* operator new(std::size_t size, std::align_val_t alignment, const std::nothrow_t&) noexcept {
  return allocate(size, static_cast<std::size_t>(alignment));
}
void* operator new[](std::size_t size, std::align_val_t alignment, const std::nothrow_t&) noexcept {
  return allocate(size, static_cast<std::size_t>(alignment));
}
void operator delete(void* block) noexcept {
  deallocate(block);
}
void operator delete[](void* block) noexcept {
  deallocate(block);
}
void operator delete(void* block, const std::nothrow_t&) noexcept {
  deallocate(block);
}
void operator delete[](void* block, const std::nothrow_t&) noexcept {
  deallocate(block);
}
void operator delete(void* block, std::size_t) noexcept {
  deallocate(block);
}
void operator delete[](void* block, std::size_t) noexcept {
  deallocate(block);
}
void operator delete(void* block, std::align_val_t) noexcept {
  deallocate(block);
}
void operator delete[](void* block, std::align_val_t) noexcept {
  deallocate(block);
}
void operator delete(void* block, std::size_t, std::align_val_t) noexcept {
  deallocate(block);
}
void operator delete[](void* block, std::size_t, std::align_val_t) noexcept {
  deallocate(block);
}
void operator delete(void* block, std::align_val_t, const std::nothrow_t&) noexcept {
  deallocate(block);
}
void operator delete[](void* block, std::align_val_t, const std::nothrow_t&) noexcept {
  deallocate(block);
}

namespace {

// --- helpers -----------------------------------------------------------------------------------

// Runs loop (one iteration at a time) until done() or a 10 s limit; true when done().
template <class Done>
bool run_until(evcxx::Loop& loop, Done done) {
  bool expired = false;
  evcxx::Timer limit(loop, 10s, [&] { expired = true; });
  for (int i = 0; i < 1000000 && !done() && !expired; ++i) loop.run(evcxx::Run::once);
  return done();
}

// One event of each common kind through loop: a post runs, a timer fires, an Async is delivered.
void expect_loop_works(evcxx::Loop& loop) {
  int posted = 0;
  bool timed = false;
  bool sent = false;
  loop.post([&posted] { ++posted; });
  evcxx::Timer timer(loop, 1ms, [&] { timed = true; });
  evcxx::Async async(loop, [&] { sent = true; });
  async.send();
  EXPECT_TRUE(run_until(loop, [&] { return posted == 1 && timed && sent; }))
      << "posted " << posted << ", timer " << timed << ", async " << sent;
}

// Threads of this process now (entries of /proc/self/task).
int thread_count() {
  int count = 0;
  if (DIR* dir = ::opendir("/proc/self/task")) {
    while (const dirent* entry = ::readdir(dir)) {
      if (entry->d_name[0] != '.') ++count;
    }
    ::closedir(dir);
  }
  return count;
}

// Waits (bounded) until the process is back to `expected` threads: joined threads may take a
// moment to leave /proc.
bool threads_return_to(int expected) {
  const auto until = std::chrono::steady_clock::now() + 10s;
  while (thread_count() != expected && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(1ms);
  }
  return thread_count() == expected;
}

// A move-only task that tells whether it was moved from (post() must not consume it when it
// throws) and counts its runs.
struct CountingTask {
  std::unique_ptr<int> payload = std::make_unique<int>(1);
  int* runs;
  void operator()() { *runs += *payload; }
};
struct BigCountingTask {
  std::unique_ptr<int> payload = std::make_unique<int>(1);
  int* runs;
  Ballast ballast;
  void operator()() { *runs += *payload; }
};

}  // namespace

// --- allocation failure: loops -----------------------------------------------------------------

TEST(AllocationFailure, LoopConstruction) {
  { evcxx::Loop warm_up; }  // process-wide lazies (the placeholder loop) are not this Loop's
  std::optional<evcxx::Loop> loop;
  std::optional<evcxx::Loop> survivor(std::in_place);
  const auto run = fail_each_allocation(
      "Loop()",
      [&] {
        loop.reset();
        loop.emplace();
      },
      [&] { expect_loop_works(*survivor); }, true);
  EXPECT_GT(run.failures, 0);
  EXPECT_EQ(run.swallowed, 0);
  ASSERT_TRUE(loop.has_value());
  expect_loop_works(*loop);
  expect_loop_works(*survivor);
}

TEST(AllocationFailure, DefaultLoopCreation) {
  if (ev_default_loop_uc_() != nullptr) GTEST_SKIP() << "libev's default loop exists already";
  evcxx::Loop* loop = nullptr;
  const auto run = fail_each_allocation(
      "Loop::default_loop()", [&] { loop = &evcxx::Loop::default_loop(); }, [] {});
  EXPECT_GT(run.failures, 0);
  ASSERT_NE(loop, nullptr);
  EXPECT_TRUE(loop->is_default());
  EXPECT_EQ(loop, &evcxx::Loop::default_loop());
  expect_loop_works(*loop);
}

TEST(AllocationFailure, BorrowedLoopConstruction) {
  struct ev_loop* raw = ev_loop_new(EVFLAG_AUTO);
  ASSERT_NE(raw, nullptr);
  std::optional<evcxx::Loop> loop;
  const auto run = fail_each_allocation(
      "Loop(ev_loop*)",
      [&] {
        loop.reset();
        loop.emplace(raw);
      },
      [&] {
        // The raw loop is untouched and still runs its own watchers.
        struct Fired {
          ev_timer timer;
          bool fired = false;
        } fired;
        ev_timer_init(
            &fired.timer,
            [](struct ev_loop*, ev_timer* w, int) { reinterpret_cast<Fired*>(w)->fired = true; },
            0.001, 0.);
        ev_timer_start(raw, &fired.timer);
        ev_run(raw, 0);
        EXPECT_TRUE(fired.fired);
      },
      true);
  EXPECT_GT(run.failures, 0);
  ASSERT_TRUE(loop.has_value());
  expect_loop_works(*loop);
  loop.reset();
  ev_loop_destroy(raw);
}

// --- allocation failure: watchers --------------------------------------------------------------

TEST(AllocationFailure, AsyncTimerIdlePrepareCheckConstruction) {
  evcxx::Loop loop;
  int fired = 0;
  std::optional<evcxx::Async> async;
  std::optional<evcxx::Timer> timer;
  std::optional<evcxx::Idle> idle;
  std::optional<evcxx::Prepare> prepare;
  std::optional<evcxx::Check> check;
  const auto after = [&] { expect_loop_works(loop); };
  fail_each_allocation(
      "Async",
      [&] {
        async.reset();
        async.emplace(loop, [&fired, b = Ballast{}] { fired |= 1; });
      },
      after, true);
  fail_each_allocation(
      "Timer",
      [&] {
        timer.reset();
        timer.emplace(loop, 1ms, [&fired, b = Ballast{}] { fired |= 2; });
      },
      after, true);
  fail_each_allocation(
      "Idle",
      [&] {
        idle.reset();
        idle.emplace(loop, [&, b = Ballast{}] {
          fired |= 4;
          idle->stop();
        });
      },
      after, true);
  fail_each_allocation(
      "Prepare",
      [&] {
        prepare.reset();
        prepare.emplace(loop, [&, b = Ballast{}] {
          fired |= 8;
          prepare->stop();
        });
      },
      after, true);
  fail_each_allocation(
      "Check",
      [&] {
        check.reset();
        check.emplace(loop, [&, b = Ballast{}] {
          fired |= 16;
          check->stop();
        });
      },
      after, true);
  // Only now: the checks above must not have consumed these watchers' events.
  async->send();
  EXPECT_TRUE(run_until(loop, [&] { return fired == 31; })) << "fired " << fired;
}

TEST(AllocationFailure, IoConstruction) {
  evcxx::Loop loop;
  Pipe pipe;
  bool readable = false;
  std::optional<evcxx::Io> io;
  const auto run = fail_each_allocation(
      "Io",
      [&] {
        io.reset();
        io.emplace(loop, pipe.read.get(), evcxx::IoEvent::readable,
                   [&readable, b = Ballast{}](evcxx::IoEvents) { readable = true; });
      },
      [&] { expect_loop_works(loop); });
  EXPECT_GT(run.failures, 1);  // the callback, and the closed-descriptor guard's bookkeeping
  evcxx_test::write_all(pipe.write.get(), "x");
  EXPECT_TRUE(run_until(loop, [&] { return readable; }));
  // A second Io on the loop (its guard exists now), and the first still works afterwards.
  Pipe other;
  std::optional<evcxx::Io> second;
  bool second_readable = false;
  fail_each_allocation(
      "second Io",
      [&] {
        second.reset();
        second.emplace(
            loop, other.read.get(), evcxx::IoEvent::readable,
            [&second_readable, b = Ballast{}](evcxx::IoEvents) { second_readable = true; });
      },
      [&] { expect_loop_works(loop); });
  evcxx_test::write_all(other.write.get(), "y");
  readable = false;
  EXPECT_TRUE(run_until(loop, [&] { return readable && second_readable; }));
}

// Io::start() records the descriptor for the closed-descriptor check; when that allocation
// fails, the check covers every active Io instead, so start() itself never fails.
TEST(AllocationFailure, IoStartNeverFails) {
  evcxx::Loop loop;
  Pipe pipe;
  bool readable = false;
  evcxx::Io io(loop, evcxx::deferred, pipe.read.get(), evcxx::IoEvent::readable,
               [&](evcxx::IoEvents) { readable = true; });
  const auto run = fail_each_allocation(
      "Io::start",
      [&] {
        io.stop();
        io.start();
      },
      [&] {
        EXPECT_TRUE(io.active());
        expect_loop_works(loop);
      });
  EXPECT_EQ(run.failures, 0);
  EXPECT_GE(run.swallowed, 1);  // the descriptor's record failed; the fallback took over
  ASSERT_TRUE(io.active());
  evcxx_test::write_all(pipe.write.get(), "x");
  EXPECT_TRUE(run_until(loop, [&] { return readable; }));
}

TEST(AllocationFailure, PeriodicConstructionInEveryMode) {
  evcxx::Loop loop;
  int fired = 0;
  std::optional<evcxx::Periodic> at;
  std::optional<evcxx::Periodic> interval;
  std::optional<evcxx::Periodic> rule;
  const auto after = [&] { expect_loop_works(loop); };
  fail_each_allocation(
      "Periodic(at)",
      [&] {
        at.reset();
        at.emplace(loop, evcxx::Clock::now() + 1ms, [&fired, b = Ballast{}] { fired |= 1; });
      },
      after, true);
  fail_each_allocation(
      "Periodic(offset, interval)",
      [&] {
        interval.reset();
        interval.emplace(loop, 0s, 10ms, [&, b = Ballast{}] {
          fired |= 2;
          interval->stop();
        });
      },
      after, true);
  // The rule allocates each time libev calls it, so the constructor's own start() can fail in it.
  const auto run = fail_each_allocation(
      "Periodic(rule)",
      [&] {
        rule.reset();
        rule.emplace(
            loop,
            [b = Ballast{}](evcxx::Periodic&, evcxx::Timestamp now) {
              const std::string scratch(100, 'x');  // 1 ms, computed the expensive way
              return now +
                     std::chrono::duration<double>(1e-5 * static_cast<double>(scratch.size()));
            },
            [&, b = Ballast{}] {
              fired |= 4;
              rule->stop();
            });
      },
      after, true);
  EXPECT_GE(run.failures, 3);  // the rule, the callback, the rule's allocation in start()
  EXPECT_TRUE(run_until(loop, [&] { return fired == 7; })) << "fired " << fired;
}

TEST(AllocationFailure, SignalConstruction) {
  evcxx::Loop loop;
  bool caught = false;
  std::optional<evcxx::Signal> signal;
  fail_each_allocation(
      "Signal",
      [&] {
        signal.reset();
        signal.emplace(loop, SIGUSR1, [&caught, b = Ballast{}] { caught = true; });
      },
      [&] { expect_loop_works(loop); }, true);
  ASSERT_EQ(::raise(SIGUSR1), 0);
  EXPECT_TRUE(run_until(loop, [&] { return caught; }));
}

TEST(AllocationFailure, ChildConstruction) {
  evcxx::Loop& loop = evcxx::Loop::default_loop();
  std::optional<evcxx::Child> child;
  int status = -1;
  // Watching any child (pid 0): the process is forked only once the watcher exists, and the loop
  // must not run in between (it would reap the child unseen).
  const auto run = fail_each_allocation(
      "Child",
      [&] {
        child.reset();
        child.emplace(loop, 0, [&, b = Ballast{}] {
          status = child->exit_status();
          child->stop();
        });
      },
      [] {}, true);
  EXPECT_GT(run.failures, 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) evcxx_test::exit_child(7);
  EXPECT_TRUE(run_until(loop, [&] { return status != -1; }));
  EXPECT_EQ(status, 7);
  EXPECT_EQ(child->rpid(), pid);
}

TEST(AllocationFailure, StatConstruction) {
  evcxx::Loop loop;
  char path[] = "/tmp/evcxx_fault_stat_XXXXXX";
  const int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ::close(fd);
  bool changed = false;
  std::optional<evcxx::Stat> stat;
  const auto run = fail_each_allocation(
      "Stat",
      [&] {
        stat.reset();
        stat.emplace(loop, std::string(path), 0.1s, [&changed, b = Ballast{}] { changed = true; });
      },
      [&] { expect_loop_works(loop); }, true);
  EXPECT_GE(run.failures, 2);  // the path, the callback
  std::ofstream(path, std::ios::app) << "more";
  EXPECT_TRUE(run_until(loop, [&] { return changed; }));
  stat.reset();
  ::unlink(path);
}

TEST(AllocationFailure, ForkAndCleanupConstruction) {
  std::optional<evcxx::Loop> loop(std::in_place);
  bool forked = false;
  bool cleaned = false;
  std::optional<evcxx::Fork> fork;
  std::optional<evcxx::Cleanup> cleanup;
  const auto after = [&] { expect_loop_works(*loop); };
  fail_each_allocation(
      "Fork",
      [&] {
        fork.reset();
        fork.emplace(*loop, [&forked, b = Ballast{}] { forked = true; });
      },
      after, true);
  fail_each_allocation(
      "Cleanup",
      [&] {
        cleanup.reset();
        cleanup.emplace(*loop, [&cleaned, b = Ballast{}] { cleaned = true; });
      },
      after, true);
  loop->notify_fork();
  loop->run(evcxx::Run::nowait);
  EXPECT_TRUE(forked);
  loop.reset();
  EXPECT_TRUE(cleaned);
}

TEST(AllocationFailure, EmbedConstruction) {
  if (!(evcxx::Loop::supported_backends() & evcxx::Loop::embeddable_backends())
           .contains(evcxx::Backend::epoll)) {
    GTEST_SKIP() << "no embeddable epoll backend here";
  }
  evcxx::Loop outer;
  evcxx::Loop inner(evcxx::Backend::epoll);
  std::optional<evcxx::Embed> embed;
  const auto run = fail_each_allocation(
      "Embed",
      [&] {
        embed.reset();
        embed.emplace(outer, inner, [&, b = Ballast{}] { embed->sweep(); });
      },
      [&] {
        expect_loop_works(outer);
        expect_loop_works(inner);
      },
      true);
  EXPECT_GE(run.failures, 2);  // the callback, the link to the inner loop
  // Inner I/O makes the inner loop's backend descriptor readable, which the outer loop polls.
  Pipe pipe;
  bool inner_fired = false;
  evcxx::Io inner_io(inner, pipe.read.get(), evcxx::IoEvent::readable,
                     [&](evcxx::IoEvents) { inner_fired = true; });
  evcxx_test::write_all(pipe.write.get(), "x");
  EXPECT_TRUE(run_until(outer, [&] { return inner_fired; }));
}

TEST(AllocationFailure, SetCallbackKeepsTheOldCallback) {
  evcxx::Loop loop;
  int old_calls = 0;
  int new_calls = 0;
  evcxx::Timer timer(loop, evcxx::deferred, 1ms, [&old_calls] { ++old_calls; });
  const auto run = fail_each_allocation(
      "set_callback", [&] { timer.set_callback([&new_calls, b = Ballast{}] { ++new_calls; }); },
      [&] { timer.invoke(); });
  EXPECT_GT(run.failures, 0);
  EXPECT_EQ(old_calls, run.failures);
  timer.start();
  EXPECT_TRUE(run_until(loop, [&] { return new_calls == 1; }));
  EXPECT_EQ(old_calls, run.failures);
}

// --- allocation failure: WaitableEvent ---------------------------------------------------------

TEST(AllocationFailure, WaitableEventConstruction) {
  evcxx::Loop loop;
  int announced = 0;
  std::optional<evcxx::WaitableEvent> event;
  const auto run = fail_each_allocation(
      "WaitableEvent",
      [&] {
        event.reset();
        event.emplace(loop, [&announced, b = Ballast{}] { ++announced; });
      },
      [&] { expect_loop_works(loop); }, true);
  EXPECT_GT(run.failures, 0);
  // fd(), set(), wait and clear allocate nothing (fd() reports failure by returning -1 instead).
  evcxx_fault::arm(1);
  const int fd = event->fd();
  event->set();
  const bool released = event->wait_for(0s);
  EXPECT_FALSE(evcxx_fault::disarm());
  ASSERT_GE(fd, 0);
  EXPECT_TRUE(released);
  EXPECT_TRUE(evcxx_test::readable(fd));
  EXPECT_TRUE(run_until(loop, [&] { return announced == 1; }));
  evcxx_fault::arm(1);
  event->clear();
  const bool still_set = event->is_set();
  event->set();
  event->wait();
  EXPECT_FALSE(evcxx_fault::disarm());
  EXPECT_FALSE(still_set);
}

// --- allocation failure: posting ---------------------------------------------------------------

// A thread's first post registers its lane (a segment, the lane, a new lane array); a failed
// registration queues nothing and leaves the task with the caller.
void first_posts_fail_cleanly(evcxx::Loop& loop, CountingTask& task) {
  const auto run = fail_each_allocation(
      "first post", [&] { loop.post(std::move(task)); },
      [&] { EXPECT_NE(task.payload, nullptr) << "a failed post consumed its task"; });
  EXPECT_GE(run.failures, 3);
  EXPECT_EQ(run.swallowed, 0);
}

TEST(AllocationFailure, FirstPostFromAThreadRegistersItsLane) {
  evcxx::Loop loop;
  int runs = 0;
  CountingTask task{std::make_unique<int>(1), &runs};
  first_posts_fail_cleanly(loop, task);
  EXPECT_EQ(task.payload, nullptr);
  loop.run(evcxx::Run::nowait);
  EXPECT_EQ(runs, 1);

  // Another thread's first post copies the lane array: the same, on a queue that has a lane.
  int other_runs = 0;
  std::thread([&] {
    CountingTask other{std::make_unique<int>(1), &other_runs};
    first_posts_fail_cleanly(loop, other);
  }).join();
  EXPECT_TRUE(run_until(loop, [&] { return other_runs == 1; }));
  expect_loop_works(loop);
  EXPECT_EQ(runs, 1);
  EXPECT_EQ(other_runs, 1);
}

TEST(AllocationFailure, PostThatNeedsANewSegmentKeepsFifoOrder) {
  evcxx::Loop loop;
  std::vector<int> order;
  loop.post([] {});  // registers the lane: its first segment holds positions 0..63
  for (int i = 1; i < static_cast<int>(64); ++i) loop.post([&order, i] { order.push_back(i); });
  const auto run = fail_each_allocation(
      "post needing a segment", [&] { loop.post([&order] { order.push_back(64); }); }, [] {});
  EXPECT_EQ(run.failures, 1);
  loop.post([&order] { order.push_back(65); });
  EXPECT_TRUE(run_until(loop, [&] { return order.size() == 65; }));
  for (std::size_t i = 0; i < order.size(); ++i) {
    EXPECT_EQ(order[i], static_cast<int>(i + 1)) << "at " << i;
  }
}

TEST(AllocationFailure, BoxedTaskFailsAfterItsSlotWasClaimed) {
  evcxx::Loop loop;
  int runs = 0;
  loop.post([] {});  // the lane exists: only boxing allocates
  BigCountingTask big{std::make_unique<int>(1), &runs, {}};
  const auto run = fail_each_allocation(
      "boxed post", [&] { loop.post(std::move(big)); },
      [&] { EXPECT_NE(big.payload, nullptr) << "a failed post consumed its task"; });
  EXPECT_EQ(run.failures, 1);
  // An lvalue is copied first: a std::function post allocates in the conversion.
  int function_runs = 0;
  fail_each_allocation(
      "std::function post",
      [&] {
        loop.post(std::function<void()>([&function_runs, b = Ballast{}] { ++function_runs; }));
      },
      [] {});
  EXPECT_TRUE(run_until(loop, [&] { return runs == 1 && function_runs == 1; }));
  loop.run(evcxx::Run::nowait);
  EXPECT_EQ(runs, 1);
  EXPECT_EQ(function_runs, 1);
  expect_loop_works(loop);
}

TEST(AllocationFailure, PostFailingInsideATaskIsRethrownByRun) {
  evcxx::Loop loop;
  bool caught = false;
  int later = 0;
  loop.post([&] {
    evcxx_fault::arm(1);
    try {
      loop.post([&later, b = Ballast{}] { ++later; });  // boxed: allocation 1 fails
    } catch (const std::bad_alloc&) {
      caught = true;
      evcxx_fault::disarm();
      throw;
    }
  });
  loop.post([&later] { ++later; });  // due in the same batch: must still run
  EXPECT_THROW(run_until(loop, [&] { return later == 1; }), std::bad_alloc);
  EXPECT_TRUE(caught);
  loop.run(evcxx::Run::nowait);
  EXPECT_EQ(later, 1);
  expect_loop_works(loop);
}

TEST(AllocationFailure, CallbackBadAllocIsRethrownAndNothingDueIsLost) {
  evcxx::Loop loop;
  bool sent = false;
  int posted = 0;
  evcxx::Async async(loop, [&] { sent = true; });
  evcxx::Idle failing(loop, [&] {
    failing.stop();
    evcxx_fault::arm(1);
    const std::string scratch(100, 'x');  // throws std::bad_alloc
    evcxx_fault::disarm();
  });
  async.send();
  loop.post([&posted] { ++posted; });
  EXPECT_THROW(run_until(loop, [&] { return false; }), std::bad_alloc);
  evcxx_fault::disarm();
  EXPECT_TRUE(run_until(loop, [&] { return sent && posted == 1; }));
  expect_loop_works(loop);
}

// --- allocation failure: hooks -----------------------------------------------------------------

TEST(AllocationFailure, SetReleaseHooksAndInvokePendingHook) {
  evcxx::Loop loop;
  int released = 0;
  int acquired = 0;
  int invoked = 0;
  const auto run = fail_each_allocation(
      "set_release_hooks",
      [&] {
        loop.set_release_hooks([&released, b = Ballast{}] { ++released; },
                               [&acquired, b = Ballast{}] { ++acquired; });
      },
      [&] {
        expect_loop_works(loop);
        EXPECT_EQ(released + acquired, 0) << "a failed set_release_hooks() installed hooks";
      });
  EXPECT_EQ(run.failures, 2);
  const auto hook_run = fail_each_allocation(
      "set_invoke_pending_hook",
      [&] {
        loop.set_invoke_pending_hook([&invoked, b = Ballast{}](evcxx::Loop& l) {
          ++invoked;
          l.invoke_pending();
        });
      },
      [&] {
        expect_loop_works(loop);
        EXPECT_EQ(invoked, 0) << "a failed set_invoke_pending_hook() installed the hook";
      });
  EXPECT_EQ(hook_run.failures, 1);
  expect_loop_works(loop);
  EXPECT_GT(released, 0);
  EXPECT_EQ(released, acquired);
  EXPECT_GT(invoked, 0);
}

// --- allocation failure: LoopThread and LoopPool -----------------------------------------------

TEST(AllocationFailure, LoopThreadConstruction) {
  { evcxx::LoopThread warm_up("fault-warm"); }  // TSan starts a thread of its own the first time
  const int threads_before = thread_count();
  std::optional<evcxx::LoopThread> thread;
  const auto run = fail_each_allocation(
      "LoopThread",
      [&] {
        thread.reset();
        thread.emplace("fault-lt", [b = Ballast{}](std::exception_ptr) {});
      },
      [&] {
        EXPECT_TRUE(threads_return_to(threads_before)) << "a failed LoopThread left a thread";
      },
      true);
  EXPECT_GE(run.failures, 4);  // name, handler, state (with the Loop), std::thread
  ASSERT_TRUE(thread.has_value());
  EXPECT_EQ(thread->submit([] { return 42; }).get(), 42);
  thread.reset();
  EXPECT_TRUE(threads_return_to(threads_before));
}

TEST(AllocationFailure, LoopThreadPostAndSubmit) {
  evcxx::LoopThread thread("fault-post");
  std::atomic<int> runs{0};
  const auto post_run = fail_each_allocation(
      "LoopThread::post", [&] { thread.post([&runs] { runs.fetch_add(1); }); }, [] {});
  EXPECT_GE(post_run.failures, 3);  // the lane's registration
  const auto big_run = fail_each_allocation(
      "LoopThread::post (boxed)",
      [&] { thread.post([&runs, b = Ballast{}] { runs.fetch_add(1); }); }, [] {});
  EXPECT_EQ(big_run.failures, 1);

  evcxx::LoopThread other("fault-submit");
  std::future<int> answer;
  const auto submit_run = fail_each_allocation(
      "LoopThread::submit",
      [&] {
        answer = other.submit([&runs] {
          runs.fetch_add(1);
          return 42;
        });
      },
      [] {});
  EXPECT_GE(submit_run.failures, 4);  // the promise's state, the lane
  EXPECT_EQ(answer.get(), 42);
  std::future<int> big_answer;
  fail_each_allocation(
      "LoopThread::submit (boxed)",
      [&] {
        big_answer = other.submit([&runs, b = Ballast{}] {
          runs.fetch_add(1);
          return 43;
        });
      },
      [] {});
  EXPECT_EQ(big_answer.get(), 43);
  thread.submit([] {}).get();  // after both posts (FIFO per producer)
  EXPECT_EQ(runs.load(), 4) << "failed posts or submits ran anyway";
}

TEST(AllocationFailure, LoopPoolConstruction) {
  { evcxx::LoopThread warm_up("fault-warm"); }  // TSan starts a thread of its own the first time
  const int threads_before = thread_count();
  std::optional<evcxx::LoopPool> pool;
  const auto run = fail_each_allocation(
      "LoopPool",
      [&] {
        pool.reset();
        pool.emplace(2, "fault-pool", [b = Ballast{}](std::exception_ptr) {});
      },
      [&] { EXPECT_TRUE(threads_return_to(threads_before)) << "a failed LoopPool left threads"; },
      true);
  EXPECT_GE(run.failures, 8);
  ASSERT_TRUE(pool.has_value());
  EXPECT_EQ((*pool)[0].submit([] { return 1; }).get() + (*pool)[1].submit([] { return 2; }).get(),
            3);
  pool.reset();
  EXPECT_TRUE(threads_return_to(threads_before));
}

// --- what must not allocate --------------------------------------------------------------------

TEST(AllocationFailure, SendStopSetAndSmallPostsAllocateNothing) {
  evcxx::Loop loop;
  int runs = 0;
  bool sent = false;
  evcxx::Async async(loop, [&] { sent = true; });
  evcxx::WaitableEvent event(loop);
  evcxx::Timer timer(loop, evcxx::deferred, 1h, [] {});
  loop.post([] {});  // registers this thread's lane
  loop.run(evcxx::Run::nowait);

  evcxx_fault::arm(1);
  async.send();
  loop.stop();
  event.set();
  event.clear();
  for (int i = 0; i < 10; ++i) loop.post([&runs] { ++runs; });
  timer.start();
  timer.stop();
  loop.run(evcxx::Run::nowait);  // dispatching allocates nothing either
  const bool allocated = evcxx_fault::disarm();
  EXPECT_FALSE(allocated);
  EXPECT_TRUE(run_until(loop, [&] { return sent && runs == 10; }));
}

// --- descriptor exhaustion ---------------------------------------------------------------------
// Each case runs in a forked child: a libev abort() there fails the test instead of ending it.

namespace {

// In a child: the loop delivers a post, a timer and an Async (descriptors may be exhausted).
void require_loop_works(evcxx::Loop& loop, const std::string& what) {
  int posted = 0;
  bool timed = false;
  bool sent = false;
  loop.post([&posted] { ++posted; });
  evcxx::Timer timer(loop, 1ms, [&] { timed = true; });
  evcxx::Async async(loop, [&] { sent = true; });
  async.send();
  require(run_until(loop, [&] { return posted == 1 && timed && sent; }),
          what + ": the loop did not deliver a post, a timer and an Async");
}

void require_no_descriptor_taken(int free_before, const std::string& what) {
  const int free_after = free_descriptors();
  require(free_after == free_before, what + " left " + std::to_string(free_before - free_after) +
                                         " descriptors open after it failed");
}

}  // namespace

TEST(DescriptorExhaustion, LoopsThreadsAndPoolsThrowEmfileAndWorkOnceDescriptorsAreBack) {
  run_in_child([] {
    evcxx::Loop::default_loop();  // its own case is below
    {
      // UBSan checks each polymorphic type once, through a pipe: let it see these types now.
      evcxx::LoopPool pool(3, "fault-fd");
      require(pool[0].submit([] { return 1; }).get() == 1, "LoopPool");
    }
    for (int spare = 0; spare <= 2; ++spare) {
      const std::string with = " with " + std::to_string(spare) + " descriptors free";
      struct ev_loop* raw = ev_loop_new(EVFLAG_AUTO);
      require(raw != nullptr, "ev_loop_new");
      DescriptorHog hog(spare);
      require(free_descriptors() == spare, "the hog left the wrong number free");
      // With two free, a Loop fits (backend + wake-up) but the LoopPool's second one does not.
      if (spare < 2) {
        require_descriptor_error("Loop()" + with, [] { evcxx::Loop loop; });
        require_no_descriptor_taken(spare, "Loop()" + with);
        require_descriptor_error("Loop(epoll)" + with,
                                 [] { evcxx::Loop loop(evcxx::Backend::epoll); });
        require_no_descriptor_taken(spare, "Loop(epoll)");
        if (spare == 0) {  // poll has no backend descriptor: one is enough for it
          require_descriptor_error("Loop(poll)" + with,
                                   [] { evcxx::Loop loop(evcxx::Backend::poll); });
          require_no_descriptor_taken(spare, "Loop(poll)");
        }
        require_descriptor_error("LoopThread" + with, [] { evcxx::LoopThread thread("fault-fd"); });
        require_no_descriptor_taken(spare, "LoopThread");
        if (spare == 0) {
          // A fresh loop has no wake-up descriptor yet: wrapping it needs one.
          require_descriptor_error("Loop(ev_loop*)" + with, [raw] { evcxx::Loop loop(raw); });
          require_no_descriptor_taken(spare, "Loop(ev_loop*)");
          // libev itself falls back to poll when epoll_create() fails: the loop exists, but
          // wrapping it fails the same way, and leaves it to its owner.
          struct ev_loop* starved = ev_loop_new(EVFLAG_AUTO);
          require(starved != nullptr && ev_backend(starved) == EVBACKEND_POLL,
                  "ev_loop_new() out of descriptors falls back to poll");
          require_descriptor_error("Loop(starved ev_loop*)",
                                   [starved] { evcxx::Loop loop(starved); });
          hog.release();
          {
            evcxx::Loop loop(starved);
            require_loop_works(loop, "Loop(ev_loop*) of the starved loop, descriptors back");
          }
          ev_loop_destroy(starved);
          hog.take_all_but(spare);
        }
      }
      require_descriptor_error("LoopPool(3)" + with, [] { evcxx::LoopPool pool(3, "fault-fd"); });
      require_no_descriptor_taken(spare, "LoopPool(3)");
      hog.release();
      {
        evcxx::Loop loop;
        require_loop_works(loop, "Loop() after the descriptors came back");
        evcxx::Loop borrowed(raw);
        require_loop_works(borrowed, "Loop(ev_loop*) after the descriptors came back");
        evcxx::LoopThread thread("fault-fd");
        require(thread.submit([] { return 5; }).get() == 5, "LoopThread after the descriptors");
        evcxx::LoopPool pool(3, "fault-fd");
        require(pool[2].submit([] { return 6; }).get() == 6, "LoopPool after the descriptors");
      }
      ev_loop_destroy(raw);
    }
  });
}

// ev_default_loop() creates its backend and wake-up descriptors and starts its SIGCHLD watcher;
// libev abort()s when it cannot create the wake-up pipe.
TEST(DescriptorExhaustion, DefaultLoopCreationThrowsEmfile) {
  // ctest runs each test in a process of its own; run together, an earlier test made it.
  if (ev_default_loop_uc_() != nullptr) GTEST_SKIP() << "libev's default loop exists already";
  for (int spare = 0; spare <= 1; ++spare) {
    SCOPED_TRACE(std::to_string(spare) + " descriptors free");
    run_in_child([spare] {
      DescriptorHog hog(spare);
      require_descriptor_error("Loop::default_loop()", [] { evcxx::Loop::default_loop(); });
      require_no_descriptor_taken(spare, "Loop::default_loop()");
      hog.release();
      evcxx::Loop& loop = evcxx::Loop::default_loop();
      require(loop.is_default(), "default_loop() is the default loop");
      require_loop_works(loop, "default_loop() after the descriptors came back");
      // And it reaps children.
      int status = -1;
      evcxx::Child child(loop, 0, [&] { status = 1; });
      const pid_t pid = ::fork();
      require(pid >= 0, "fork");
      if (pid == 0) evcxx_test::exit_child(3);
      require(run_until(loop, [&] { return status != -1; }) && child.exit_status() == 3,
              "a Child on the default loop");
    });
  }
}

namespace {

// One watcher of every kind (and a WaitableEvent) on `loop`, each recording its event in `fired`.
struct EveryWatcher {
  EveryWatcher(evcxx::Loop& loop, evcxx::Loop& signalfd_loop, evcxx::Loop* inner,
               evcxx::Loop& default_loop, Pipe& pipe, Pipe& inner_pipe, const char* path)
      : async(loop, [this] { fired |= 1; }),
        signal(loop, SIGUSR1, [this] { fired |= 2; }),
        signalfd_signal(signalfd_loop, SIGUSR2, [this] { fired |= 4; }),
        timer(loop, 1ms, [this] { fired |= 8; }),
        periodic(loop, evcxx::Clock::now() + 1ms, [this] { fired |= 16; }),
        io(loop, pipe.read.get(), evcxx::IoEvent::readable,
           [this, fd = pipe.read.get()](evcxx::IoEvents) {
             fired |= 32;
             char c;
             static_cast<void>(::read(fd, &c, 1));
           }),
        idle(loop,
             [this] {
               fired |= 64;
               idle.stop();
             }),
        prepare(loop, [this] { fired |= 128; }),
        check(loop, [this] { fired |= 256; }),
        stat(loop, path, 0.1s, [this] { stat_changed = true; }),
        event(loop, [this] { ++announced; }),
        child(default_loop, 0, [this] { child_reaped = true; }) {
    if (inner != nullptr) {
      embed.emplace(loop, *inner);
      inner_io.emplace(*inner, inner_pipe.read.get(), evcxx::IoEvent::readable,
                       [this](evcxx::IoEvents) { inner_fired = true; });
    }
  }

  int fired = 0;
  bool stat_changed = false;
  int announced = 0;
  bool inner_fired = false;
  bool child_reaped = false;
  evcxx::Async async;
  evcxx::Signal signal;
  evcxx::Signal signalfd_signal;
  evcxx::Timer timer;
  evcxx::Periodic periodic;
  evcxx::Io io;
  evcxx::Idle idle;
  evcxx::Prepare prepare;
  evcxx::Check check;
  evcxx::Stat stat;
  evcxx::WaitableEvent event;
  evcxx::Child child;
  std::optional<evcxx::Embed> embed;
  std::optional<evcxx::Io> inner_io;
};

}  // namespace

// Everything that takes no new descriptor works on an existing loop while none is left, and
// whatever needs one either falls back (inotify, timerfd, signalfd) or reports it.
TEST(DescriptorExhaustion, WatchersEventsPostsOnExistingLoops) {
  run_in_child([] {
    evcxx::Loop& default_loop = evcxx::Loop::default_loop();
    evcxx::Loop loop;
    evcxx::Loop signalfd_loop(evcxx::LoopFlag::signalfd);
    std::optional<evcxx::Loop> inner;
    if ((evcxx::Loop::supported_backends() & evcxx::Loop::embeddable_backends())
            .contains(evcxx::Backend::epoll)) {
      inner.emplace(evcxx::Backend::epoll);
    }
    evcxx::LoopThread thread("fault-fd");
    Pipe pipe;
    Pipe inner_pipe;
    char path[] = "/tmp/evcxx_fault_stat_XXXXXX";
    const int file = ::mkstemp(path);
    require(file >= 0, "mkstemp");
    ::close(file);
    {
      // UBSan checks each watcher type's vtable once, through a pipe: let it do so now, on a
      // loop of its own (so that `loop` has no inotify and `signalfd_loop` no signalfd yet).
      evcxx::Loop warm_up;
      EveryWatcher watchers(warm_up, warm_up, inner ? &*inner : nullptr, default_loop, pipe,
                            inner_pipe, path);
      require(thread.submit([] { return 7; }).get() == 7, "LoopThread::submit");
    }

    DescriptorHog hog;
    require(free_descriptors() == 0, "the table is full");
    EveryWatcher w(loop, signalfd_loop, inner ? &*inner : nullptr, default_loop, pipe, inner_pipe,
                   path);
    errno = 0;
    require(w.event.fd() == -1 && errno == EMFILE, "WaitableEvent::fd() returns -1 with EMFILE");
    require(thread.submit([] { return 7; }).get() == 7, "LoopThread::submit while exhausted");

    w.async.send();
    w.event.set();
    ::raise(SIGUSR1);
    ::raise(SIGUSR2);
    evcxx_test::write_all(pipe.write.get(), "x");
    require(run_until(loop, [&] { return (w.fired | 4) == 511 && w.announced == 1; }),
            "events on a loop while descriptors are exhausted");
    require(run_until(signalfd_loop, [&] { return (w.fired & 4) != 0; }),
            "a Signal on a signalfd loop (falls back to the wake-up pipe)");
    if (inner) {
      evcxx_test::write_all(inner_pipe.write.get(), "x");
      require(run_until(loop, [&] { return w.inner_fired; }), "an embedded loop's Io");
    }
    require_loop_works(loop, "the loop while exhausted");
    const pid_t pid = ::fork();
    require(pid >= 0, "fork");
    if (pid == 0) evcxx_test::exit_child(0);
    require(run_until(default_loop, [&] { return w.child_reaped; }), "a Child while exhausted");
    w.child.stop();

    hog.release();
    require(w.event.fd() >= 0 && evcxx_test::readable(w.event.fd()),
            "WaitableEvent::fd() once descriptors are back, readable while set");
    std::ofstream(path, std::ios::app) << "changed";
    require(run_until(loop, [&] { return w.stat_changed; }),
            "a Stat started without inotify polls");
    ::unlink(path);
  });
}

// After Loop::notify_fork() the next run() recreates the wake-up descriptor (libev's loop_fork),
// and libev abort()s when it cannot.
TEST(DescriptorExhaustion, RunAfterForkThrowsEmfile) {
  run_in_child([] {
    evcxx::Loop loop;
    bool forked = false;
    evcxx::Fork fork(loop, [&] { forked = true; });
    DescriptorHog hog;
    loop.notify_fork();
    require_descriptor_error("run() after fork()", [&] { loop.run(evcxx::Run::nowait); });
    require(!forked, "the fork was not handled yet");
    hog.release();
    loop.run(evcxx::Run::nowait);
    require(forked, "the next run() handles the fork");
    require_loop_works(loop, "the loop after the fork");
  });
}

// --- allocation failure anywhere ---------------------------------------------------------------

namespace {

// A LoopThread's and a Loop's whole life, with producers on other threads. Every exception it
// lets out is std::bad_alloc; nothing may terminate or hang.
void whole_life() {
  std::atomic<int> runs{0};
  {
    evcxx::LoopThread thread("fault-any", [](std::exception_ptr) {});
    thread.post([&runs] { runs.fetch_add(1); });
    thread.post([&runs, b = Ballast{}] { runs.fetch_add(1); });
    std::future<int> answer = thread.submit([] { return 1; });
    std::thread producer([&] {
      try {
        thread.post([&runs] { runs.fetch_add(1); });
        thread.submit([] {}).wait();
      } catch (const std::bad_alloc&) {
      }
    });
    producer.join();
    if (answer.wait_for(30s) != std::future_status::ready) throw std::logic_error("submit hung");
    answer.get();
    thread.stop();
    thread.join();
  }
  std::optional<evcxx::Loop> inner;
  if ((evcxx::Loop::supported_backends() & evcxx::Loop::embeddable_backends())
          .contains(evcxx::Backend::epoll)) {
    inner.emplace(evcxx::Backend::epoll);
  }
  evcxx::Loop loop;
  Pipe pipe;
  bool done = false;
  evcxx::Io io(loop, pipe.read.get(), evcxx::IoEvent::readable, [](evcxx::IoEvents) {});
  evcxx::Timer timer(loop, 1ms, [&] { done = true; });
  evcxx::WaitableEvent event(loop, [] {});
  evcxx::Signal signal(loop, SIGUSR1, [b = Ballast{}] {});
  evcxx::Stat stat(loop, "/tmp", [b = Ballast{}] {});
  evcxx::Periodic periodic(
      loop, [](evcxx::Periodic&, evcxx::Timestamp now) { return now + std::chrono::hours(1); },
      [b = Ballast{}] {});
  evcxx::Idle idle(loop, [] {});
  evcxx::Prepare prepare(loop, [b = Ballast{}] {});
  evcxx::Check check(loop, [b = Ballast{}] {});
  evcxx::Fork fork(loop, [b = Ballast{}] {});
  evcxx::Cleanup cleanup(loop, [b = Ballast{}] {});
  std::optional<evcxx::Embed> embed;
  if (inner) embed.emplace(loop, *inner);
  event.set();
  ::raise(SIGUSR1);
  loop.notify_fork();
  std::thread([&] {
    try {
      loop.post([&done, b = Ballast{}] { static_cast<void>(done); });
    } catch (const std::bad_alloc&) {
    }
  }).join();
  bool expired = false;
  evcxx::Timer limit(loop, 10s, [&] { expired = true; });
  while (!done && !expired) {
    try {
      loop.run(evcxx::Run::once);
    } catch (const std::bad_alloc&) {  // a callback's or task's: the loop goes on
    }
  }
  if (!done) throw std::logic_error("the timer never fired");
}

}  // namespace

// The Nth allocation on whichever thread makes it fails, for every N: no noexcept path of the
// library may allocate (that would be std::terminate), and no failure may lose a wake-up. Each N
// runs in a forked child, so a terminate fails the test with its message.
TEST(AllocationFailure, AnyThreadAnyAllocationNeverTerminates) {
  long n = 1;
  for (; n <= 2000; ++n) {
    bool fired = false;
    int code = -1;
    std::string output;
    {
      int out[2];
      ASSERT_EQ(::pipe2(out, O_CLOEXEC), 0);
      const pid_t child = ::fork();
      ASSERT_GE(child, 0);
      if (child == 0) {
        ::dup2(out[1], 2);
        ::alarm(60);
        // Where it terminated, for the message.
        std::set_terminate([] {
          void* frames[64];
          backtrace_symbols_fd(frames, backtrace(frames, 64), 2);
          std::abort();
        });
        void* warm_up[1];
        static_cast<void>(backtrace(warm_up, 1));  // loads the unwinder before the fault
        int result = 0;
        evcxx_fault::arm_any_thread(n);
        try {
          whole_life();
        } catch (const std::bad_alloc&) {
        } catch (const std::exception& e) {
          const std::string text = std::string("unexpected: ") + e.what() + "\n";
          static_cast<void>(::write(2, text.data(), text.size()));
          result = 2;
        }
        if (result == 0 && !evcxx_fault::disarm()) result = 1;  // nothing failed: done
        evcxx_test::exit_child(result);
      }
      ::close(out[1]);
      output = read_to_end(out[0]);
      ::close(out[0]);
      int status = 0;
      ASSERT_EQ(::waitpid(child, &status, 0), child);
      if (WIFSIGNALED(status)) {
        ADD_FAILURE() << "allocation " << n << " failed and the process died of signal "
                      << WTERMSIG(status) << " (" << strsignal(WTERMSIG(status)) << "):\n"
                      << output;
        continue;
      }
      code = WEXITSTATUS(status);
      fired = code != 1;
    }
    if (code == 2) ADD_FAILURE() << "allocation " << n << " failed:\n" << output;
    if (!fired) break;
  }
  EXPECT_GT(n, 20) << "the scenario allocates too little to be a test";
  RecordProperty("allocation points", static_cast<int>(n - 1));
}
