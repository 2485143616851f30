// One reference per watcher: an active watcher of any type keeps run() going exactly as much as
// one Loop::ref() does, so that one Loop::unref() beside it lets run() return; the machinery
// behind Loop::post()/stop(), Io's closed-descriptor checks and a WaitableEvent without on_set
// hold none. libev's ev_run() returns its count of active references, which run(Run::nowait)
// exposes as "true while any remain": the count itself is checked, not a timing.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <evcxx/async.hpp>
#include <evcxx/check.hpp>
#include <evcxx/child.hpp>
#include <evcxx/cleanup.hpp>
#include <evcxx/embed.hpp>
#include <evcxx/fork.hpp>
#include <evcxx/idle.hpp>
#include <evcxx/io.hpp>
#include <evcxx/periodic.hpp>
#include <evcxx/prepare.hpp>
#include <evcxx/signal.hpp>
#include <evcxx/stat.hpp>
#include <evcxx/timer.hpp>
#include <evcxx/waitable_event.hpp>

#include <chrono>
#include <memory>
#include <string>

#include "support.hpp"

namespace {

using namespace std::chrono_literals;
using evcxx::Loop;
using evcxx::Run;

// How long run() may take to return before a test calls it blocked (the loop has nothing to
// wait for, so it returns in microseconds; the bound only turns a hang into a failure).
constexpr std::chrono::seconds kBlocked{10};

// No active reference left: run() returns at once, and reports that nothing keeps it going.
void expect_no_reference(Loop& loop) {
  EXPECT_FALSE(loop.run(Run::nowait)) << "something still holds a reference";
  evcxx_test::Watchdog watchdog(loop, kBlocked);
  loop.run();
  watchdog.disarm();
  EXPECT_FALSE(watchdog.fired()) << "run() stayed blocked until the watchdog stopped it";
}

// `start` makes an active watcher (kept alive by the returned pointer): it holds exactly one
// reference, and stopping it (by destroying it) gives exactly that one back.
template <class Start>
void expect_one_reference(Loop& loop, Start start) {
  expect_no_reference(loop);
  auto watcher = start();
  ASSERT_TRUE(watcher->active());
  EXPECT_TRUE(loop.run(Run::nowait)) << "an active watcher holds no reference";
  loop.unref();
  expect_no_reference(loop);  // more than one reference leaves run() blocked here
  EXPECT_TRUE(watcher->active());
  loop.ref();
  watcher->stop();
  expect_no_reference(loop);
  watcher->start();  // a second start takes one reference again, not more
  EXPECT_TRUE(loop.run(Run::nowait));
  loop.unref();
  expect_no_reference(loop);
  loop.ref();
  watcher.reset();  // the destructor stops it
  expect_no_reference(loop);
}

std::string scratch_path(const char* what) {
  return "/tmp/evcxx-refcount-" + std::to_string(::getpid()) + "-" + what;
}

TEST(OneReference, AFreshLoopAndItsPostMachineryHoldNone) {
  Loop loop;
  expect_no_reference(loop);
  int ran = 0;
  loop.post([&] { ++ran; });
  loop.run();  // a queued task is work: run() returns once it ran
  EXPECT_EQ(ran, 1);
  loop.stop();
  loop.run();
  expect_no_reference(loop);
}

TEST(OneReference, Io) {
  Loop loop;
  evcxx_test::Pipe pipe;
  expect_one_reference(loop, [&] {
    return std::make_unique<evcxx::Io>(loop, pipe.read.get(), evcxx::IoEvent::readable,
                                       [](evcxx::IoEvents) {});
  });
}

TEST(OneReference, IoOnEveryBackendWithItsClosedDescriptorChecksHoldingNone) {
  for (evcxx::Backend backend :
       {evcxx::Backend::epoll, evcxx::Backend::poll, evcxx::Backend::select}) {
    if (!Loop::supported_backends().contains(backend)) continue;
    SCOPED_TRACE(static_cast<unsigned>(backend));
    Loop loop{evcxx::LoopFlags(backend)};
    evcxx_test::Pipe pipe;
    evcxx::Io idle_io(loop, evcxx::deferred, pipe.read.get(), evcxx::IoEvent::readable,
                      [](evcxx::IoEvents) {});
    expect_no_reference(loop);  // the checks exist (an Io is enrolled) but hold nothing
    expect_one_reference(loop, [&] {
      return std::make_unique<evcxx::Io>(loop, pipe.read.get(), evcxx::IoEvent::readable,
                                         [](evcxx::IoEvents) {});
    });
  }
}

TEST(OneReference, Timer) {
  Loop loop;
  expect_one_reference(loop, [&] { return std::make_unique<evcxx::Timer>(loop, 1h, [] {}); });
}

TEST(OneReference, Periodic) {
  Loop loop;
  expect_one_reference(loop, [&] {
    return std::make_unique<evcxx::Periodic>(loop, evcxx::Clock::now() + 1h, [] {});
  });
}

TEST(OneReference, Signal) {
  Loop loop;
  expect_one_reference(loop, [&] { return std::make_unique<evcxx::Signal>(loop, SIGUSR2, [] {}); });
}

TEST(OneReference, SignalThroughSignalfd) {
  Loop loop{evcxx::LoopFlag::signalfd};
  expect_one_reference(loop, [&] { return std::make_unique<evcxx::Signal>(loop, SIGUSR2, [] {}); });
}

TEST(OneReference, TwoSignalsShareLibevsInternalWatcherAndHoldOneEach) {
  Loop loop;
  evcxx::Signal first(loop, SIGUSR1, [] {});
  loop.unref();
  expect_no_reference(loop);
  expect_one_reference(loop, [&] { return std::make_unique<evcxx::Signal>(loop, SIGUSR2, [] {}); });
  loop.ref();
}

TEST(OneReference, ChildOnTheDefaultLoop) {
  Loop& loop = Loop::default_loop();
  expect_one_reference(loop, [&] { return std::make_unique<evcxx::Child>(loop, 0, [] {}); });
}

TEST(OneReference, StatWithInotify) {
  Loop loop;
  const std::string path = scratch_path("inotify");
  expect_one_reference(loop, [&] { return std::make_unique<evcxx::Stat>(loop, path, [] {}); });
}

TEST(OneReference, StatPollingWithItsInternalTimer) {
  Loop loop{evcxx::LoopFlag::noinotify};
  const std::string path = scratch_path("polled");
  expect_one_reference(loop, [&] { return std::make_unique<evcxx::Stat>(loop, path, 1s, [] {}); });
}

TEST(OneReference, Idle) {
  Loop loop;
  expect_one_reference(loop, [&] { return std::make_unique<evcxx::Idle>(loop, [] {}); });
}

TEST(OneReference, Prepare) {
  Loop loop;
  expect_one_reference(loop, [&] { return std::make_unique<evcxx::Prepare>(loop, [] {}); });
}

TEST(OneReference, Check) {
  Loop loop;
  expect_one_reference(loop, [&] { return std::make_unique<evcxx::Check>(loop, [] {}); });
}

TEST(OneReference, Fork) {
  Loop loop;
  expect_one_reference(loop, [&] { return std::make_unique<evcxx::Fork>(loop, [] {}); });
}

TEST(OneReference, Async) {
  Loop loop;
  expect_one_reference(loop, [&] { return std::make_unique<evcxx::Async>(loop, [] {}); });
}

TEST(OneReference, Embed) {
  const evcxx::Backends usable = Loop::embeddable_backends() & Loop::supported_backends();
  if (usable.empty()) GTEST_SKIP() << "no backend is both supported and embeddable here";
  Loop loop;
  Loop inner{evcxx::LoopFlags(usable)};
  expect_one_reference(loop, [&] { return std::make_unique<evcxx::Embed>(loop, inner); });
  // The inner loop's watchers hold the inner loop, not the outer one.
  evcxx_test::Pipe pipe;
  evcxx::Io inner_io(inner, pipe.read.get(), evcxx::IoEvent::readable, [](evcxx::IoEvents) {});
  expect_one_reference(loop, [&] { return std::make_unique<evcxx::Embed>(loop, inner); });
}

TEST(OneReference, EmbedWhoseInnerLoopDiesGivesItsReferenceBack) {
  const evcxx::Backends usable = Loop::embeddable_backends() & Loop::supported_backends();
  if (usable.empty()) GTEST_SKIP() << "no backend is both supported and embeddable here";
  Loop loop;
  auto inner = std::make_unique<Loop>(evcxx::LoopFlags(usable));
  evcxx::Embed embed(loop, *inner);
  EXPECT_TRUE(loop.run(Run::nowait));
  inner.reset();  // stops the Embed
  EXPECT_FALSE(embed.active());
  expect_no_reference(loop);
}

// libev's ev_cleanup_start() takes no reference ("cleanup watchers should never keep a refcount
// on the loop"): a Cleanup counts as zero, so it needs no unref() beside it (and one would leave
// the count below zero, which libev treats as "still active").
TEST(OneReference, CleanupHoldsNone) {
  Loop loop;
  evcxx::Cleanup cleanup(loop, [] {});
  ASSERT_TRUE(cleanup.active());
  expect_no_reference(loop);
  cleanup.stop();
  expect_no_reference(loop);
}

TEST(OneReference, WaitableEventWithOnSetHoldsOneWithoutNone) {
  Loop loop;
  {
    evcxx::WaitableEvent plain(loop);
    expect_no_reference(loop);
    plain.set();
    expect_no_reference(loop);
  }
  evcxx::WaitableEvent announced(loop, [] {});
  EXPECT_TRUE(loop.run(Run::nowait)) << "the announcement to the loop holds no reference";
  loop.unref();
  expect_no_reference(loop);
  announced.set();
  expect_no_reference(loop);
  loop.ref();
}

}  // namespace
