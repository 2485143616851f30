// Loop::post(): ordering, batching, backlogs, exceptions, lifetime and allocation behaviour, with
// real producer threads and a loop running on its own thread.
#include <gtest/gtest.h>

#include <evcxx/async.hpp>
#include <evcxx/loop.hpp>
#include <evcxx/waitable_event.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <future>
#include <memory>
#include <new>
#include <stdexcept>
#include <thread>
#include <vector>

// Every allocation through the global operator new is counted, to prove posting allocates nothing.
namespace {
std::atomic<long> allocations{0};
}  // namespace

// noinline: once inlined, GCC pairs these with its own idea of new/delete and warns.
[[gnu::noinline]] void* operator new(std::size_t size) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] void operator delete(void* p) noexcept {
  std::free(p);
}
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}

namespace {

using namespace std::chrono_literals;

constexpr auto kGenerous = 60s;      // the machine is loaded: bounds, not timings
constexpr std::size_t kMany = 5000;  // many segments' worth

// Runs a Loop on its own thread until finish(); the Async keeps run() from returning early.
class Runner {
 public:
  Runner() : keepalive_(loop_, [] {}), thread_([this] { loop_.run(); }) {}
  ~Runner() { finish(); }
  void finish() {
    if (!thread_.joinable()) return;
    loop_.post([this] { keepalive_.stop(); });
    thread_.join();
  }
  evcxx::Loop& loop() { return loop_; }
  std::thread::id id() const { return thread_.get_id(); }

 private:
  evcxx::Loop loop_;
  evcxx::Async keepalive_;
  std::thread thread_;
};

// A task that records (producer, sequence) so per-producer FIFO can be checked on the loop thread.
struct OrderCheck {
  explicit OrderCheck(std::size_t producers) : next(producers, 0) {}
  void seen(std::size_t producer, std::size_t seq) {
    if (seq != next[producer]) ++out_of_order;
    next[producer] = seq + 1;
    ++total;
  }
  std::vector<std::size_t> next;  // loop thread only
  std::size_t out_of_order = 0;
  std::size_t total = 0;
};

TEST(Post, RunsTasksPostedBeforeRunInOrder) {
  evcxx::Loop loop;
  std::vector<int> order;
  for (int i = 0; i < 100; ++i) loop.post([&order, i] { order.push_back(i); });
  EXPECT_FALSE(loop.run());  // the internal wake-up never keeps the loop alive
  ASSERT_EQ(order.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(order[i], i);
}

TEST(Post, ManyTasksBeforeRunFormOneBatch) {
  evcxx::Loop loop;
  int ran = 0;
  for (int i = 0; i < 500; ++i) loop.post([&ran] { ++ran; });
  const unsigned before = loop.iteration();
  loop.run(evcxx::Run::nowait);
  EXPECT_EQ(ran, 500);
  EXPECT_EQ(loop.iteration(), before + 1);
}

TEST(Post, TasksPostedByTasksRunInALaterIteration) {
  evcxx::Loop loop;
  unsigned parent_iteration = 0;
  unsigned child_iteration = 0;
  std::vector<char> order;
  loop.post([&] {
    parent_iteration = loop.iteration();
    order.push_back('a');
    loop.post([&] {
      child_iteration = loop.iteration();
      order.push_back('c');
    });
  });
  loop.post([&] { order.push_back('b'); });
  loop.run(evcxx::Run::nowait);
  EXPECT_EQ(order, (std::vector<char>{'a', 'b'}));  // the child waits for the next batch
  loop.run(evcxx::Run::nowait);
  EXPECT_EQ(order, (std::vector<char>{'a', 'b', 'c'}));
  EXPECT_GT(child_iteration, parent_iteration);
}

TEST(Post, SelfRepostingTaskDoesNotStarveWatchers) {
  evcxx::Loop loop;
  std::atomic<bool> keep_going{true};
  long reposts = 0;
  std::function<void()> again = [&] {
    ++reposts;
    if (keep_going.load()) loop.post(again);
  };
  evcxx::Async async(loop, [&] {
    keep_going = false;
    async.stop();
  });
  loop.post(again);
  std::thread sender([&] { async.send(); });
  loop.run();  // returns once the async ran (it stops itself) and the chain ended
  sender.join();
  EXPECT_FALSE(keep_going.load());
  EXPECT_GE(reposts, 1);
}

TEST(Post, RunsOnTheLoopThreadAndKeepsFifoPerProducer) {
  constexpr std::size_t kProducers = 4;
  constexpr std::size_t kPerProducer = 20000;
  Runner runner;
  OrderCheck check(kProducers);
  std::atomic<std::size_t> wrong_thread{0};
  evcxx::WaitableEvent done(runner.loop());
  std::vector<std::thread> producers;
  for (std::size_t p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      for (std::size_t i = 0; i < kPerProducer; ++i) {
        runner.loop().post([&, p, i] {
          if (std::this_thread::get_id() != runner.id()) wrong_thread.fetch_add(1);
          check.seen(p, i);
          if (check.total == kProducers * kPerProducer) done.set();
        });
      }
    });
  }
  for (auto& t : producers) t.join();
  ASSERT_TRUE(done.wait_for(kGenerous));
  runner.finish();
  EXPECT_EQ(check.total, kProducers * kPerProducer);
  EXPECT_EQ(check.out_of_order, 0u);
  EXPECT_EQ(wrong_thread.load(), 0u);
}

TEST(Post, ManyTasksBeforeRunKeepFifoPerProducer) {
  constexpr std::size_t kProducers = 2;
  evcxx::Loop loop;
  OrderCheck check(kProducers);
  std::vector<std::thread> producers;
  for (std::size_t p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      for (std::size_t i = 0; i < kMany; ++i) loop.post([&, p, i] { check.seen(p, i); });
    });
  }
  for (auto& t : producers) t.join();
  while (check.total < kProducers * kMany) ASSERT_FALSE(loop.run(evcxx::Run::nowait));
  EXPECT_EQ(check.total, kProducers * kMany);
  EXPECT_EQ(check.out_of_order, 0u);
}

TEST(Post, ABacklogBuiltWhileTheLoopIsBusyKeepsFifoPerProducer) {
  constexpr std::size_t kProducers = 3;
  constexpr std::size_t kPerProducer = 3000;
  Runner runner;
  OrderCheck check(kProducers);
  evcxx::WaitableEvent blocked(runner.loop());
  evcxx::WaitableEvent release(runner.loop());
  evcxx::WaitableEvent done(runner.loop());
  // Hold the loop thread inside a task so a backlog builds up while it runs.
  runner.loop().post([&] {
    blocked.set();
    release.wait();
  });
  ASSERT_TRUE(blocked.wait_for(kGenerous));
  std::vector<std::thread> producers;
  for (std::size_t p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      for (std::size_t i = 0; i < kPerProducer; ++i) {
        runner.loop().post([&, p, i] {
          check.seen(p, i);
          if (check.total == kProducers * kPerProducer) done.set();
        });
        if (p == 0 && i == 1000) release.set();  // let it drain while the others still post
      }
    });
  }
  for (auto& t : producers) t.join();
  ASSERT_TRUE(done.wait_for(kGenerous));
  runner.finish();
  EXPECT_EQ(check.out_of_order, 0u);
}

TEST(Post, TaskPostedByTheLastOfManyTasksRunsInALaterBatch) {
  evcxx::Loop loop;
  std::size_t ran = 0;
  unsigned last_iteration = 0;
  unsigned child_iteration = 0;
  for (std::size_t i = 0; i < kMany; ++i) {
    loop.post([&, i] {
      ++ran;
      last_iteration = loop.iteration();
      if (i == kMany - 1) {
        loop.post([&] { child_iteration = loop.iteration(); });
      }
    });
  }
  // Queued tasks count as work, so run() reports true until the child has run.
  for (int i = 0; i < 1000 && child_iteration == 0; ++i) loop.run(evcxx::Run::nowait);
  ASSERT_NE(child_iteration, 0u);
  EXPECT_FALSE(loop.run(evcxx::Run::nowait));
  EXPECT_EQ(ran, kMany);
  EXPECT_GT(child_iteration, last_iteration);
}

// A thread's first post registers a lane, which replaces the array of lanes the running batch
// walks; a run nested in one of its tasks that handles a wake-up must not free the old array
// under it (ASan: heap-use-after-free in the batch once the task returns).
TEST(Post, ANewProducerAndANestedRunInsideATaskLeaveTheBatchItsLanes) {
  evcxx::Loop loop;
  int ran = 0;
  bool nested_done = false;
  loop.post([&] {
    for (int i = 0; i < 3; ++i) {
      std::thread([&] { loop.post([&] { ++ran; }); }).join();
    }
    loop.stop();  // a wake-up for the nested run to handle
    loop.run(evcxx::Run::nowait);
    nested_done = true;
  });
  loop.post([&] { ++ran; });  // the batch goes on after the task that ran the loop
  loop.run();
  EXPECT_TRUE(nested_done);
  EXPECT_EQ(ran, 4);
}

// Posts from its destructor. Made before its thread's first post, it is destroyed after evcxx's
// own thread-local state for that thread, at the thread's exit.
struct PostsAtThreadExit {
  evcxx::Loop* loop = nullptr;
  std::promise<void>* ran = nullptr;
  ~PostsAtThreadExit() {
    if (loop == nullptr) return;
    // Two batches first, posted by other threads: the first drops the exiting thread's lane, the
    // second frees the array that still held it.
    for (int i = 0; i < 2; ++i) {
      std::thread([this] {
        std::promise<void> batch;
        loop->post([&batch] { batch.set_value(); });
        batch.get_future().wait();
      }).join();
    }
    loop->post([r = ran] { r->set_value(); });
  }
};

TEST(Post, AThreadLocalDestructorMayPostAtItsThreadsExit) {
  Runner runner;
  std::promise<void> ran;
  std::thread([&] {
    thread_local PostsAtThreadExit posts_at_exit;
    posts_at_exit.loop = &runner.loop();
    posts_at_exit.ran = &ran;
    std::promise<void> first;
    runner.loop().post([&first] { first.set_value(); });  // evcxx's thread-local state: made now
    first.get_future().wait();
  }).join();
  EXPECT_EQ(ran.get_future().wait_for(30s), std::future_status::ready)
      << "the task posted at thread exit never ran";
}

TEST(Post, PostFromTheLoopThreadRuns) {
  Runner runner;
  evcxx::WaitableEvent done(runner.loop());
  runner.loop().post([&] { runner.loop().post([&] { done.set(); }); });
  EXPECT_TRUE(done.wait_for(kGenerous));
}

TEST(Post, ThrowingTaskIsRethrownByRunAndTheBatchStillRuns) {
  evcxx::Loop loop;
  std::vector<int> ran;
  loop.post([&] { ran.push_back(1); });
  loop.post([] { throw std::runtime_error("task failed"); });
  loop.post([&] { ran.push_back(3); });
  EXPECT_THROW(
      {
        try {
          loop.run();
        } catch (const std::runtime_error& e) {
          EXPECT_STREQ(e.what(), "task failed");
          throw;
        }
      },
      std::runtime_error);
  EXPECT_EQ(ran, (std::vector<int>{1, 3}));
  loop.post([&] { ran.push_back(4); });  // still usable
  EXPECT_NO_THROW(loop.run());
  EXPECT_EQ(ran, (std::vector<int>{1, 3, 4}));
}

// Counts its live copies; a task holding one shows whether it was destroyed.
struct Tracker {
  explicit Tracker(std::shared_ptr<int> c) : count(std::move(c)) { ++*count; }
  Tracker(const Tracker& other) : count(other.count) { ++*count; }
  Tracker(Tracker&& other) noexcept : count(other.count) { ++*count; }
  ~Tracker() { --*count; }
  std::shared_ptr<int> count;
};

TEST(Post, TasksLeftAtDestructionAreDestroyedNotRun) {
  auto live = std::make_shared<int>(0);
  bool ran = false;
  {
    evcxx::Loop loop;
    for (std::size_t i = 0; i < kMany; ++i) {  // many segments
      loop.post([&ran, t = Tracker(live)] { ran = true; });
    }
    std::array<char, 200> big{};  // a boxed task too
    loop.post([&ran, t = Tracker(live), big] { ran = big[0] == 0; });
    EXPECT_EQ(*live, static_cast<int>(kMany) + 1);
  }
  EXPECT_FALSE(ran);
  EXPECT_EQ(*live, 0);
}

TEST(Post, EmptyTasksAreRejected) {
  evcxx::Loop loop;
  EXPECT_THROW(loop.post(std::function<void()>()), std::invalid_argument);
  EXPECT_THROW(loop.post(nullptr), std::invalid_argument);
  void (*no_function)() = nullptr;
  EXPECT_THROW(loop.post(no_function), std::invalid_argument);
  EXPECT_FALSE(loop.run());  // nothing was queued
}

TEST(Post, MoveOnlyAndLargeCallablesRunAndAreDestroyedOnce) {
  evcxx::Loop loop;
  auto live = std::make_shared<int>(0);
  int sum = 0;
  auto owned = std::make_unique<int>(7);
  loop.post([&sum, p = std::move(owned), t = Tracker(live)] { sum += *p; });
  std::array<int, 64> big{};
  big[63] = 35;
  loop.post([&sum, big, t = Tracker(live)] { sum += big[63]; });
  const std::function<void()> copied = [&sum] { sum += 100; };
  loop.post(copied);  // an lvalue std::function is copied
  EXPECT_FALSE(loop.run());
  EXPECT_EQ(sum, 142);
  EXPECT_EQ(*live, 0);
}

// Its move constructor throws when armed: posting it must leave nothing queued and keep it.
struct ThrowingMove {
  explicit ThrowingMove(int* r) : ran(r) {}
  ThrowingMove(ThrowingMove&& other) : ran(other.ran) {
    if (arm) throw std::runtime_error("move failed");
  }
  void operator()() const { ++*ran; }
  int* ran;
  static inline bool arm = false;
};

TEST(Post, ThrowingMoveLeavesNothingQueuedAndTheTaskIntact) {
  evcxx::Loop loop;
  int ran = 0;
  ThrowingMove task(&ran);
  ThrowingMove::arm = true;
  EXPECT_THROW(loop.post(std::move(task)), std::runtime_error);
  for (std::size_t i = 0; i < 100; ++i) loop.post([] {});  // across a segment boundary
  EXPECT_THROW(loop.post(std::move(task)), std::runtime_error);
  ThrowingMove::arm = false;
  loop.post(std::move(task));
  EXPECT_FALSE(loop.run());
  EXPECT_EQ(ran, 1);
}

TEST(Post, NoAllocationInSteadyStateForSmallTasks) {
  constexpr int kRounds = 200;
  constexpr int kPerRound = 64;
  Runner runner;
  evcxx::WaitableEvent round_done(runner.loop());
  std::size_t ran = 0;  // loop thread
  std::array<std::size_t, 4> payload{1, 2, 3, 4};
  // Fits the inline buffer: 2 pointers + 32 bytes = 48.
  auto small_task = [&ran, &round_done, payload] {
    ran += payload[0];
    if (ran % kPerRound == 0) round_done.set();
  };
  static_assert(sizeof(small_task) == evcxx::detail::task_inline_size);
  auto one_round = [&](auto&& post_one) {
    round_done.clear();
    for (int i = 0; i < kPerRound; ++i) post_one();
    return round_done.wait_for(kGenerous);
  };
  ASSERT_TRUE(one_round([&] { runner.loop().post(small_task); }));  // warm-up

  const long before = allocations.load();
  bool all_done = true;
  for (int r = 0; r < kRounds; ++r) {
    all_done = one_round([&] { runner.loop().post(small_task); }) && all_done;
  }
  const long template_allocations = allocations.load() - before;

  // std::function holds a two-pointer lambda without allocating; post() moves it into a slot.
  const long before_function = allocations.load();
  for (int r = 0; r < kRounds; ++r) {
    all_done = one_round([&] {
                 runner.loop().post(std::function<void()>([&ran, &round_done] {
                   if (++ran % kPerRound == 0) round_done.set();
                 }));
               }) &&
               all_done;
  }
  const long function_allocations = allocations.load() - before_function;

  // Control: a task too big for a slot is boxed, so the counter does see post()'s allocations.
  std::array<std::size_t, 16> big{};
  const long before_big = allocations.load();
  all_done = one_round([&] {
               runner.loop().post([&ran, &round_done, big] {
                 ran += 1 + big[0];
                 if (ran % kPerRound == 0) round_done.set();
               });
             }) &&
             all_done;
  const long big_allocations = allocations.load() - before_big;

  runner.finish();
  EXPECT_TRUE(all_done);
  EXPECT_EQ(template_allocations, 0);
  EXPECT_EQ(function_allocations, 0);
  EXPECT_GE(big_allocations, kPerRound);
}

}  // namespace
