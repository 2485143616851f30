// The contract's section "Working beside C code that already uses libev": Loop::from_native,
// Loop::once, Loop::call_guarded, start(params...) on every watcher with parameters, deferred Io
// and Timer without parameters, and an empty IoEvents.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <evcxx/evcxx.hpp>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <future>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "support.hpp"

using evcxx::IoEvent;
using evcxx::IoEvents;
using evcxx::Loop;
using evcxx_test::Boom;
using evcxx_test::Deadline;
using evcxx_test::Pipe;
using evcxx_test::write_all;
using namespace std::chrono_literals;

namespace {

template <class F>
void expect_logic_error_mentioning(F&& f, const std::string& words) {
  try {
    f();
    ADD_FAILURE() << "no std::logic_error";
  } catch (const std::logic_error& e) {
    EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
  }
}

// A raw libev timer of "C code" whose callback body runs through call_guarded.
struct CTimer {
  ev_timer timer;
  int calls = 0;
  bool completed = true;
  static void on_timeout(struct ev_loop* raw, ev_timer* w, int) {
    auto* self = reinterpret_cast<CTimer*>(w);  // the first member
    ++self->calls;
    Loop* loop = Loop::from_native(raw);
    self->completed = loop->call_guarded([] { throw Boom(); });
  }
};

std::vector<evcxx::Backend> usable_backends() {
  std::vector<evcxx::Backend> out;
  for (evcxx::Backend b : {evcxx::Backend::select, evcxx::Backend::poll, evcxx::Backend::epoll}) {
    if (Loop::supported_backends().contains(b)) out.push_back(b);
  }
  return out;
}

}  // namespace

// --- Loop::from_native ---------------------------------------------------------------------

TEST(FromNative, FindsTheLoopThatOwnsOrWrapsAnEvLoop) {
  Loop owned;
  EXPECT_EQ(Loop::from_native(owned.native()), &owned);
  EXPECT_EQ(Loop::from_native(nullptr), nullptr);

  struct ev_loop* raw = ev_loop_new(EVFLAG_AUTO);
  ASSERT_NE(raw, nullptr);
  EXPECT_EQ(Loop::from_native(raw), nullptr);  // nobody wrapped it yet
  {
    auto first = std::make_unique<Loop>(raw);
    EXPECT_EQ(Loop::from_native(raw), first.get());
    {
      Loop second(raw);
      EXPECT_EQ(Loop::from_native(raw), first.get());  // the first wrapper wins
      first.reset();
      EXPECT_EQ(Loop::from_native(raw), &second);  // then the oldest one still alive
    }
    EXPECT_EQ(Loop::from_native(raw), nullptr);
  }
  ev_loop_destroy(raw);
}

TEST(FromNative, FindsTheDefaultLoop) {
  Loop& loop = Loop::default_loop();
  EXPECT_EQ(Loop::from_native(ev_default_loop(0)), &loop);
}

TEST(FromNative, IsNotFoundOnceItsDestructorBegan) {
  struct ev_loop* raw = ev_loop_new(EVFLAG_AUTO);
  ASSERT_NE(raw, nullptr);
  // A task that never ran is destroyed by ~Loop: its destructor asks for the Loop.
  struct Probe {
    struct ev_loop* raw;
    Loop** seen;
    bool armed = true;
    Probe(struct ev_loop* r, Loop** s) : raw(r), seen(s) {}
    Probe(Probe&& other) noexcept
        : raw(other.raw), seen(other.seen), armed(std::exchange(other.armed, false)) {}
    ~Probe() {
      if (armed) *seen = Loop::from_native(raw);
    }
  };
  Loop* seen = &Loop::default_loop();  // anything but nullptr
  {
    Loop loop(raw);
    loop.post([probe = Probe(raw, &seen)] { static_cast<void>(probe); });
  }
  EXPECT_EQ(seen, nullptr);
  ev_loop_destroy(raw);
}

TEST(FromNative, WorksFromAnyThread) {
  evcxx::LoopThread thread("from-native");
  struct ev_loop* raw = thread.loop().native();
  std::vector<std::thread> readers;
  std::atomic<int> found{0};
  for (int i = 0; i < 4; ++i) {
    readers.emplace_back([&] {
      for (int n = 0; n < 1000; ++n) {
        if (Loop::from_native(raw) == &thread.loop()) found.fetch_add(1);
      }
    });
  }
  // Meanwhile loops come and go on this thread.
  for (int n = 0; n < 50; ++n) {
    Loop other;
    EXPECT_EQ(Loop::from_native(other.native()), &other);
  }
  for (std::thread& t : readers) t.join();
  EXPECT_EQ(found.load(), 4000);
  EXPECT_EQ(thread.submit([&] { return Loop::from_native(raw); }).get(), &thread.loop());
}

// --- Loop::call_guarded ---------------------------------------------------------------------

TEST(CallGuarded, ACCallbacksExceptionReachesRunAndTheLoopStaysUsable) {
  Loop loop;
  CTimer c;
  ev_timer_init(&c.timer, &CTimer::on_timeout, 0., 0.);
  ev_timer_start(loop.native(), &c.timer);
  int later = 0;
  evcxx::Timer due_too(loop, 0s, [&] { ++later; });  // due in the same iteration

  EXPECT_THROW(loop.run(), Boom);
  EXPECT_EQ(c.calls, 1);
  EXPECT_FALSE(c.completed);
  // No event that was already due is lost: it ran, or runs in the next run().
  loop.run();
  EXPECT_EQ(later, 1);
  EXPECT_EQ(loop.run(), false);  // usable, and nothing left
}

TEST(CallGuarded, ReturnsTrueAndRunsTheBody) {
  Loop loop;
  int ran = 0;
  EXPECT_TRUE(loop.call_guarded([&] { ++ran; }));
  EXPECT_EQ(ran, 1);
  EXPECT_EQ(loop.take_exception(), nullptr);
  auto thrower = [] { throw Boom(); };
  static_assert(noexcept(loop.call_guarded(thrower)));
}

TEST(CallGuarded, OutsideRunTheExceptionWaitsForTheNextRunOrTakeException) {
  Loop loop;
  EXPECT_FALSE(loop.call_guarded([] { throw Boom(); }));
  EXPECT_THROW(loop.run(), Boom);
  EXPECT_FALSE(loop.call_guarded([] { throw std::runtime_error("second"); }));
  std::exception_ptr taken = loop.take_exception();
  ASSERT_NE(taken, nullptr);
  EXPECT_THROW(std::rethrow_exception(taken), std::runtime_error);
  EXPECT_FALSE(loop.run());  // nothing left to rethrow
}

TEST(CallGuarded, KeepsTheFirstOfSeveralExceptions) {
  Loop loop;
  EXPECT_FALSE(loop.call_guarded([] { throw Boom(); }));
  EXPECT_FALSE(loop.call_guarded([] { throw std::runtime_error("later"); }));
  EXPECT_THROW(loop.run(), Boom);
  EXPECT_FALSE(loop.run());
}

// --- Loop::once -----------------------------------------------------------------------------

TEST(Once, CallsBackOnceWithTheEventsThatFired) {
  Loop loop;
  Pipe p;
  std::vector<IoEvents> fired;
  loop.once(p.read.get(), IoEvent::readable, 60s, [&](IoEvents e) { fired.push_back(e); });
  write_all(p.write.get(), "x");
  {
    Deadline deadline(loop);
    while (fired.empty() && !deadline.expired()) loop.run(evcxx::Run::once);
  }
  ASSERT_EQ(fired.size(), 1u);
  EXPECT_TRUE(fired[0].readable());
  EXPECT_FALSE(fired[0].error());
  EXPECT_FALSE(loop.run(evcxx::Run::nowait));  // nothing of it is left active
  EXPECT_EQ(fired.size(), 1u);
}

TEST(Once, ATimeoutGivesAnEmptySet) {
  Loop loop;
  Pipe p;
  std::vector<IoEvents> fired;
  loop.once(p.read.get(), IoEvent::readable, 1ms, [&](IoEvents e) { fired.push_back(e); });
  loop.once(-1, IoEvents(), 0s, [&](IoEvents e) { fired.push_back(e); });  // timeout only
  loop.run();
  ASSERT_EQ(fired.size(), 2u);
  EXPECT_TRUE(fired[0].empty());
  EXPECT_TRUE(fired[1].empty());
}

TEST(Once, WaitsForTheDescriptorOnlyWithANegativeTimeout) {
  Loop loop;
  Pipe p;
  int calls = 0;
  loop.once(p.write.get(), IoEvent::writable, -1s, [&](IoEvents e) {
    ++calls;
    EXPECT_TRUE(e.writable());
  });
  const double forever = std::numeric_limits<double>::infinity();
  loop.once(p.write.get(), IoEvent::writable, std::chrono::duration<double>(forever),
            [&](IoEvents) { ++calls; });
  Deadline deadline(loop);
  while (calls < 2 && !deadline.expired()) loop.run(evcxx::Run::once);
  EXPECT_EQ(calls, 2);
}

TEST(Once, ACallbackMayStartAnotherOnceAndItsExceptionReachesRun) {
  Loop loop;
  int calls = 0;
  loop.once(-1, IoEvents(), 0s, [&](IoEvents) {
    ++calls;
    loop.once(-1, IoEvents(), 0s, [&](IoEvents) {
      ++calls;
      throw Boom();
    });
  });
  EXPECT_THROW(loop.run(), Boom);
  EXPECT_EQ(calls, 2);
  EXPECT_FALSE(loop.run());
}

TEST(Once, ADescriptorClosedUnderItIsAnErrorEventOnEveryBackend) {
  for (evcxx::Backend backend : usable_backends()) {
    SCOPED_TRACE(static_cast<unsigned>(backend));
    Loop loop{evcxx::LoopFlags(backend)};
    Pipe p;
    std::vector<IoEvents> fired;
    Deadline deadline(loop);  // first: libev's timerfd for it must not reuse the closed number
    loop.once(p.read.get(), IoEvent::readable, 60s, [&](IoEvents e) {
      fired.push_back(e);
      loop.break_loop();  // it runs before the poll of its iteration, which would block
    });
    p.read.reset();  // the caller's bug: closed while still waited on
    loop.run();
    ASSERT_FALSE(deadline.expired());
    ASSERT_EQ(fired.size(), 1u);
    EXPECT_TRUE(fired[0].error());
  }
}

TEST(Once, OpenWaitsAreDroppedWithoutACallWhenTheLoopIsDestroyed) {
  auto capture = std::make_shared<int>(0);
  Pipe p;
  int calls = 0;
  {
    Loop loop;
    loop.once(p.read.get(), IoEvent::readable, 60s, [&calls, capture](IoEvents) { ++calls; });
    loop.once(-1, IoEvents(), 60s, [&calls, capture](IoEvents) { ++calls; });
    EXPECT_EQ(capture.use_count(), 3);
    loop.run(evcxx::Run::nowait);
  }
  EXPECT_EQ(capture.use_count(), 1);  // both callbacks destroyed
  EXPECT_EQ(calls, 0);
}

TEST(Once, BadArgumentsThrowBeforeAnythingIsStarted) {
  Loop loop;
  Pipe p;
  auto cb = [](IoEvents) {};
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_THROW(loop.once(p.read.get(), IoEvent::readable, 1s, {}), std::invalid_argument);
  EXPECT_THROW(loop.once(p.read.get(), IoEvent::readable, std::chrono::duration<double>(nan), cb),
               std::invalid_argument);
  EXPECT_THROW(loop.once(-1, IoEvent::readable, -1s, cb), std::invalid_argument);
  EXPECT_THROW(loop.once(p.read.get(), IoEvents(), 1s, cb), std::invalid_argument);
  EXPECT_THROW(loop.once(p.read.get(), IoEvents::from_raw(EV_ERROR), 1s, cb),
               std::invalid_argument);
  EXPECT_FALSE(loop.run(evcxx::Run::nowait));  // nothing was left behind
}

// --- start(params...) -----------------------------------------------------------------------

TEST(StartWithParameters, IoTimerAndPeriodicSetThenStart) {
  Loop loop;
  Pipe p;
  int io_calls = 0;
  evcxx::Io io(loop, evcxx::deferred, [&](IoEvents e) {
    ++io_calls;
    EXPECT_TRUE(e.readable());
    io.stop();
  });
  io.start(p.read.get(), IoEvent::readable);
  EXPECT_TRUE(io.active());
  EXPECT_EQ(io.fd(), p.read.get());
  EXPECT_EQ(io.events(), IoEvent::readable);
  write_all(p.write.get(), "x");

  int timer_calls = 0;
  evcxx::Timer timer(loop, 60s, [&] { ++timer_calls; });
  timer.start(1ms, 0s);  // restarts an active timer with the new timeout
  EXPECT_TRUE(timer.active());
  EXPECT_EQ(timer.repeat(), 0s);

  int periodic_calls = 0;
  evcxx::Periodic periodic(loop, evcxx::deferred, evcxx::Clock::now() + 3600s,
                           [&] { ++periodic_calls; });
  periodic.start(evcxx::Clock::now());
  EXPECT_TRUE(periodic.active());

  evcxx::Periodic every(loop, evcxx::deferred, evcxx::Clock::now() + 3600s, [&] {});
  every.start(0s, 3600s);
  EXPECT_EQ(every.interval(), 3600s);
  every.start([](evcxx::Periodic&, evcxx::Timestamp now) { return now + 3600s; });
  EXPECT_TRUE(every.has_rule());
  EXPECT_TRUE(every.active());
  every.stop();

  Deadline deadline(loop);
  while ((io_calls == 0 || timer_calls == 0 || periodic_calls == 0) && !deadline.expired())
    loop.run(evcxx::Run::once);
  ASSERT_FALSE(deadline.expired());
  EXPECT_EQ(io_calls, 1);
  EXPECT_EQ(timer_calls, 1);
  EXPECT_EQ(periodic_calls, 1);
}

TEST(StartWithParameters, SignalChildStatAndEmbed) {
  Loop& loop = Loop::default_loop();
  int signal_calls = 0;
  evcxx::Signal signal(loop, evcxx::deferred, SIGUSR1, [&] {
    ++signal_calls;
    signal.stop();
  });
  signal.start(SIGUSR2);
  EXPECT_EQ(signal.signum(), SIGUSR2);
  ASSERT_EQ(::raise(SIGUSR2), 0);

  const pid_t pid = ::fork();
  if (pid == 0) evcxx_test::exit_child(7);
  ASSERT_GT(pid, 0);
  int child_status = -1;
  evcxx::Child child(loop, evcxx::deferred, 1, [&] {
    child_status = child.exit_status();
    child.stop();
  });
  child.start(pid);
  EXPECT_EQ(child.pid(), pid);

  char dir_template[] = "/tmp/evcxx-start-XXXXXX";
  ASSERT_NE(::mkdtemp(dir_template), nullptr);
  const std::string path = std::string(dir_template) + "/file";
  evcxx::Stat stat(loop, evcxx::deferred, std::string(dir_template) + "/other", [] {});
  stat.start(path, 0.05s);
  EXPECT_TRUE(stat.active());
  EXPECT_EQ(stat.path(), path);
  EXPECT_FALSE(stat.exists());
  stat.stop();
  ::rmdir(dir_template);

  Deadline deadline(loop);
  while ((signal_calls == 0 || child_status < 0) && !deadline.expired()) loop.run(evcxx::Run::once);
  EXPECT_EQ(signal_calls, 1);
  EXPECT_EQ(child_status, 7);

  const evcxx::Backends embeddable = Loop::embeddable_backends() & Loop::supported_backends();
  if (!embeddable.empty()) {
    Loop outer;
    Loop inner{evcxx::LoopFlags(embeddable)};
    Loop other{evcxx::LoopFlags(embeddable)};
    evcxx::Embed embed(outer, evcxx::deferred, inner);
    embed.start(other);
    EXPECT_TRUE(embed.active());
    EXPECT_EQ(embed.inner(), &other);
  }
}

TEST(StartWithParameters, ADetachedWatcherThrowsAndKeepsItsParameters) {
  auto loop = std::make_unique<Loop>();
  Pipe p;
  evcxx::Io io(*loop, evcxx::deferred, p.read.get(), IoEvent::readable, [](IoEvents) {});
  evcxx::Timer timer(*loop, evcxx::deferred, 5s, [] {});
  loop.reset();
  expect_logic_error_mentioning([&] { io.start(p.write.get(), IoEvent::writable); }, "start");
  EXPECT_EQ(io.fd(), p.read.get());
  EXPECT_EQ(io.events(), IoEvent::readable);
  expect_logic_error_mentioning([&] { timer.start(1s, 1s); }, "start");
  EXPECT_EQ(timer.repeat(), 0s);
}

TEST(StartWithParameters, BadParametersThrowAndLeaveTheWatcherStopped) {
  Loop loop;
  evcxx::Io io(loop, evcxx::deferred, [](IoEvents) {});
  EXPECT_THROW(io.start(-1, IoEvent::readable), std::invalid_argument);
  EXPECT_FALSE(io.active());
  evcxx::Timer timer(loop, evcxx::deferred, [] {});
  EXPECT_THROW(timer.start(-1s), std::invalid_argument);
  EXPECT_FALSE(timer.active());
  evcxx::Signal signal(loop, evcxx::deferred, SIGUSR1, [] {});
  EXPECT_THROW(signal.start(0), std::out_of_range);
  EXPECT_FALSE(signal.active());
}

// --- deferred Io and Timer without parameters -----------------------------------------------

TEST(DeferredWithoutParameters, AnIoHasNoDescriptorUntilItIsGivenOne) {
  Loop loop;
  int calls = 0;
  evcxx::Io io(loop, evcxx::deferred, [&](IoEvents) { ++calls; });
  EXPECT_FALSE(io.active());
  EXPECT_EQ(io.fd(), -1);
  EXPECT_TRUE(io.events().empty());
  expect_logic_error_mentioning([&] { io.start(); }, "start(fd, events)");
  expect_logic_error_mentioning([&] { io.set(IoEvent::readable); }, "set(fd, events)");
  EXPECT_FALSE(io.active());
  EXPECT_FALSE(loop.run(evcxx::Run::nowait));

  // The descriptor comes into being later, as a C library's socket does.
  Pipe p;
  io.set(p.read.get(), IoEvent::readable);
  EXPECT_FALSE(io.active());  // set() does not start a stopped watcher
  io.start();
  write_all(p.write.get(), "x");
  loop.run(evcxx::Run::once);
  EXPECT_EQ(calls, 1);
}

TEST(DeferredWithoutParameters, AnIoThatNeverGotADescriptorIsDestroyedQuietly) {
  Loop loop;
  {
    evcxx::Io io(loop, evcxx::deferred, [](IoEvents) {});
  }
  auto detached = std::make_unique<evcxx::Io>(loop, evcxx::deferred, [](IoEvents) {});
  EXPECT_FALSE(loop.run(evcxx::Run::nowait));
  SUCCEED();
}

TEST(DeferredWithoutParameters, ATimerStartedPlainFiresInTheNextIteration) {
  Loop loop;
  int calls = 0;
  evcxx::Timer timer(loop, evcxx::deferred, [&] { ++calls; });
  EXPECT_FALSE(timer.active());
  EXPECT_EQ(timer.repeat(), 0s);
  EXPECT_EQ(timer.remaining(), 0s);
  timer.start();
  loop.run();
  EXPECT_EQ(calls, 1);
  timer.start(1ms, 1ms);
  EXPECT_EQ(timer.repeat(), 1ms);
  loop.run(evcxx::Run::once);
  timer.stop();
  EXPECT_GE(calls, 2);
}

// --- an empty IoEvents ---------------------------------------------------------------------

class EmptyEvents : public ::testing::TestWithParam<evcxx::Backend> {
 protected:
  void SetUp() override {
    if (!Loop::supported_backends().contains(GetParam())) GTEST_SKIP() << "backend not built in";
    loop = std::make_unique<Loop>(evcxx::LoopFlags(GetParam()));
  }
  std::unique_ptr<Loop> loop;
};

TEST_P(EmptyEvents, AnActiveWatcherWaitsForNothingUntilSetAgain) {
  Pipe p;
  std::vector<IoEvents> fired;
  evcxx::Io io(*loop, p.read.get(), IoEvent::readable, [&](IoEvents e) { fired.push_back(e); });
  io.set(p.read.get(), IoEvents());  // CURL_POLL_NONE
  EXPECT_TRUE(io.active());
  EXPECT_TRUE(io.events().empty());
  write_all(p.write.get(), "x");
  for (int i = 0; i < 3; ++i) loop->run(evcxx::Run::nowait);
  EXPECT_TRUE(fired.empty());
  EXPECT_TRUE(io.active());

  io.set(IoEvent::readable);
  Deadline deadline(*loop);
  while (fired.empty() && !deadline.expired()) loop->run(evcxx::Run::once);
  ASSERT_EQ(fired.size(), 1u);
  EXPECT_TRUE(fired[0].readable());

  io.set(IoEvents());
  loop->run(evcxx::Run::nowait);
  EXPECT_EQ(fired.size(), 1u);
}

TEST_P(EmptyEvents, ItKeepsTheLoopRunningAsAnyActiveWatcherDoes) {
  Pipe p;
  evcxx::Io io(*loop, p.read.get(), IoEvents(), [](IoEvents) {});
  EXPECT_TRUE(io.active());
  EXPECT_TRUE(loop->run(evcxx::Run::nowait));  // returned with a watcher still active
  io.stop();
  EXPECT_FALSE(loop->run(evcxx::Run::nowait));
}

TEST_P(EmptyEvents, SharedWithAWatcherThatWaitsAndClosedAfterwardsNeverAborts) {
  Pipe p;
  int reads = 0;
  std::vector<IoEvents> errors;
  evcxx::Io reader(*loop, p.read.get(), IoEvent::readable, [&](IoEvents e) {
    if (e.error()) {
      errors.push_back(e);
      loop->break_loop();  // it may run before the poll of its iteration, which would block
      return;
    }
    ++reads;
    char c;
    EXPECT_EQ(::read(p.read.get(), &c, 1), 1);
  });
  evcxx::Io idle(*loop, p.read.get(), IoEvents(), [&](IoEvents e) { errors.push_back(e); });
  write_all(p.write.get(), "x");
  Deadline deadline(*loop);
  while (reads == 0 && !deadline.expired()) loop->run(evcxx::Run::once);
  EXPECT_EQ(reads, 1);
  idle.set(IoEvent::readable);
  idle.set(IoEvents());
  // The caller's bug: the descriptor closed under both. Whatever libev does, it does not abort,
  // and the watcher that waits for readability hears of it.
  p.read.reset();
  reader.set(IoEvent::readable);
  loop->run();
  ASSERT_FALSE(deadline.expired());
  EXPECT_TRUE(errors.front().error());
}

INSTANTIATE_TEST_SUITE_P(Backends, EmptyEvents,
                         ::testing::Values(evcxx::Backend::select, evcxx::Backend::poll,
                                           evcxx::Backend::epoll),
                         [](const ::testing::TestParamInfo<evcxx::Backend>& info) {
                           switch (info.param) {
                             case evcxx::Backend::select:
                               return std::string("select");
                             case evcxx::Backend::poll:
                               return std::string("poll");
                             default:
                               return std::string("epoll");
                           }
                         });

// --- LoopPool with LoopFlags (tested with the pool too) -----------------------------------

TEST(LoopPoolFlags, EveryLoopOfThePoolUsesTheFlags) {
  evcxx::LoopPool pool(2, "flags", {},
                       evcxx::LoopFlags(evcxx::Backend::poll) | evcxx::LoopFlag::noenv);
  for (std::size_t i = 0; i < pool.size(); ++i) {
    EXPECT_EQ(pool[i].submit([&] { return pool[i].loop().backend(); }).get(), evcxx::Backend::poll);
  }
}
