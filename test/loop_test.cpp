// evcxx::Loop: running, stopping, posting, and the rest of the libev loop API.

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <evcxx/async.hpp>
#include <evcxx/error.hpp>
#include <evcxx/loop.hpp>
#include <evcxx/waitable_event.hpp>

#include "support.hpp"

using namespace std::chrono_literals;
using evcxx_test::Watchdog;

// --- run() and the idle loop -------------------------------------------------------------------

TEST(Loop, IdleLoopReturnsAtOnce) {
  evcxx::Loop loop;
  EXPECT_FALSE(loop.run());
  EXPECT_FALSE(loop.run(evcxx::Run::once));  // would block forever if the wakeup kept it alive
  EXPECT_FALSE(loop.run(evcxx::Run::nowait));
}

static_assert(evcxx_test::is_pinned_v<evcxx::Loop>);

TEST(Loop, RunOnceWaitsForOneEventAndNowaitNeverBlocks) {
  evcxx::Loop loop;
  int calls = 0;
  evcxx::Async async(loop, [&] { ++calls; });
  Watchdog dog(loop);
  EXPECT_TRUE(loop.run(evcxx::Run::nowait));  // nothing due: returns at once, still active
  EXPECT_EQ(calls, 0);
  std::thread sender([&] {
    std::this_thread::sleep_for(20ms);  // makes it likely run() blocks first; correct either way
    async.send();
  });
  EXPECT_TRUE(loop.run(evcxx::Run::once));  // blocks until the send, then returns
  sender.join();
  dog.disarm();
  EXPECT_FALSE(dog.fired());
  EXPECT_EQ(calls, 1);
}

TEST(Loop, IdleAfterUsingPostAndStopReturnsAtOnce) {
  evcxx::Loop loop;
  int ran = 0;
  loop.post([&] { ++ran; });
  EXPECT_FALSE(loop.run());
  EXPECT_EQ(ran, 1);
  loop.stop();
  loop.run();                // consumes the stop
  EXPECT_FALSE(loop.run());  // the internal machinery alone keeps nothing alive
  EXPECT_EQ(ran, 1);
}

TEST(Loop, InactiveWatchersDoNotKeepRunAlive) {
  evcxx::Loop loop;
  evcxx::Async stopped(loop, evcxx::deferred, [] {});
  evcxx::WaitableEvent no_on_set(loop);
  EXPECT_FALSE(loop.run());
  no_on_set.set();
  EXPECT_FALSE(loop.run());
}

TEST(Loop, TasksPostedBeforeRunAreRunByItInOrderOnTheLoopThread) {
  evcxx::Loop loop;
  std::vector<int> order;
  std::vector<std::thread::id> threads;
  for (int i = 0; i < 5; ++i) {
    loop.post([&, i] {
      order.push_back(i);
      threads.push_back(std::this_thread::get_id());
    });
  }
  EXPECT_TRUE(order.empty());  // nothing runs before run()
  EXPECT_FALSE(loop.run());
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));
  for (auto id : threads) EXPECT_EQ(id, std::this_thread::get_id());
}

TEST(Loop, TaskPostedByATaskIsRunByTheSameRun) {
  evcxx::Loop loop;
  std::vector<int> order;
  loop.post([&] {
    order.push_back(1);
    loop.post([&] {
      order.push_back(3);
      loop.post([&] { order.push_back(4); });
    });
    order.push_back(2);
  });
  EXPECT_FALSE(loop.run());
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3, 4}));
  EXPECT_FALSE(loop.run());  // and then the loop is idle again
}

TEST(Loop, NestedRunInsideAPostedTaskRunsEveryTaskOnceInOrder) {
  evcxx::Loop loop;
  std::vector<std::string> order;
  loop.post([&] {
    order.push_back("A");
    loop.post([&] { order.push_back("C"); });
    loop.run(evcxx::Run::nowait);  // nested, while A's batch is still being run
    order.push_back("A done");
  });
  loop.post([&] { order.push_back("B"); });
  Watchdog dog(loop);
  EXPECT_FALSE(loop.run());
  dog.disarm();
  EXPECT_FALSE(dog.fired()) << "a queued task was stranded";
  auto position = [&](const std::string& name) {
    EXPECT_EQ(std::count(order.begin(), order.end(), name), 1) << name << " did not run once";
    return std::find(order.begin(), order.end(), name) - order.begin();
  };
  EXPECT_LT(position("A"), position("B"));
  EXPECT_LT(position("B"), position("C"));  // FIFO for this thread, which posted A, B, then C
  position("A done");
  EXPECT_EQ(order.size(), 4u);
  EXPECT_FALSE(loop.run());
}

TEST(Loop, NestedRunWithAPendingWakeupDoesNotRunTheBatchAgain) {
  evcxx::Loop loop;
  int a_runs = 0;
  int b_runs = 0;
  loop.post([&] {
    ++a_runs;
    // stop() from another thread leaves the internal wake-up pending: the nested run() sees it.
    std::thread([&] { loop.stop(); }).join();
    loop.run(evcxx::Run::nowait);
  });
  loop.post([&] { ++b_runs; });
  Watchdog dog(loop);
  loop.run();
  dog.disarm();
  EXPECT_FALSE(dog.fired()) << "a queued task was stranded";
  EXPECT_EQ(a_runs, 1);
  while (b_runs == 0 && loop.run(evcxx::Run::nowait)) {
  }
  EXPECT_EQ(b_runs, 1);
}

TEST(Loop, TaskThatKeepsRepostingItselfDoesNotStarveWatchers) {
  evcxx::Loop loop;
  bool keep_going = true;
  long reposts = 0;
  std::function<void()> again = [&] {
    ++reposts;
    if (keep_going) loop.post(again);
  };
  evcxx::Async stopper(loop, [&] {
    keep_going = false;
    stopper.stop();
  });
  loop.post(again);
  std::thread sender([&] { stopper.send(); });
  Watchdog dog(loop);
  EXPECT_FALSE(loop.run());  // returns once the chain ends
  dog.disarm();
  sender.join();
  EXPECT_FALSE(dog.fired()) << "the reposting task starved the Async";
  EXPECT_GE(reposts, 1);
  EXPECT_FALSE(loop.run());
}

TEST(Loop, PostFromTheLoopThreadInsideACallback) {
  evcxx::Loop loop;
  std::vector<int> order;
  evcxx::Async async(loop, [&] {
    order.push_back(1);
    loop.post([&] {
      order.push_back(3);
      async.stop();
    });
    order.push_back(2);  // the task waits for the callback to finish
  });
  async.send();
  Watchdog dog(loop);
  EXPECT_FALSE(loop.run());
  dog.disarm();
  EXPECT_FALSE(dog.fired());
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
}

TEST(Loop, PostRejectsAnEmptyTask) {
  evcxx::Loop loop;
  EXPECT_THROW(loop.post({}), std::invalid_argument);
  EXPECT_THROW(loop.post(std::function<void()>(nullptr)), std::invalid_argument);
  EXPECT_FALSE(loop.run());  // and nothing was queued
}

TEST(Loop, ConcurrentProducersEachKeepFifoOrder) {
  constexpr int kProducers = 4;
  constexpr int kTasks = 10000;
  evcxx::Loop loop;
  std::vector<std::vector<int>> seen(kProducers);  // loop thread only
  int total = 0;
  // Keeps the loop running until the last task arrives.
  evcxx::Async keep_alive(loop, [] {});
  const auto loop_thread = std::this_thread::get_id();
  std::atomic<int> wrong_thread{0};
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      for (int i = 0; i < kTasks; ++i) {
        loop.post([&, p, i] {
          if (std::this_thread::get_id() != loop_thread) ++wrong_thread;
          seen[p].push_back(i);
          if (++total == kProducers * kTasks) keep_alive.stop();
        });
      }
    });
  }
  Watchdog dog(loop);
  EXPECT_FALSE(loop.run());
  dog.disarm();
  for (auto& t : producers) t.join();
  ASSERT_FALSE(dog.fired()) << "a posted task never ran";
  EXPECT_EQ(wrong_thread.load(), 0);
  for (int p = 0; p < kProducers; ++p) {
    ASSERT_EQ(seen[p].size(), static_cast<size_t>(kTasks)) << "producer " << p;
    for (int i = 0; i < kTasks; ++i) ASSERT_EQ(seen[p][i], i) << "producer " << p;
  }
}

// --- stop() and break_loop() -------------------------------------------------------------------

TEST(Loop, StopFromAnotherThreadWhileRunning) {
  evcxx::Loop loop;
  evcxx::Async never_sent(loop, [] {});  // keeps run() blocked until stopped
  evcxx::WaitableEvent running(loop);
  loop.post([&] { running.set(); });
  std::thread stopper([&] {
    running.wait();
    loop.stop();
  });
  Watchdog dog(loop);
  EXPECT_TRUE(loop.run());  // returned with a watcher still active
  dog.disarm();
  stopper.join();
  EXPECT_FALSE(dog.fired()) << "stop() from another thread did not stop run()";
  EXPECT_TRUE(never_sent.active());
}

TEST(Loop, StopWhileNotRunningMakesTheNextRunReturnAfterOneIteration) {
  evcxx::Loop loop;
  evcxx::Async never_sent(loop, [] {});  // would keep run() blocked forever
  loop.stop();
  const unsigned before = loop.iteration();
  Watchdog dog(loop);
  EXPECT_TRUE(loop.run());
  dog.disarm();
  EXPECT_FALSE(dog.fired()) << "the earlier stop() was forgotten";
  EXPECT_EQ(loop.iteration() - before, 1u);

  // The stop was consumed: the next run() keeps going until its work is done.
  int rounds = 0;
  evcxx::Async again(loop, [&] {
    if (++rounds < 3) {
      again.send();
    } else {
      again.stop();
      never_sent.stop();
    }
  });
  again.send();
  EXPECT_FALSE(loop.run());
  EXPECT_EQ(rounds, 3);
}

TEST(Loop, StopFromACallbackOnTheLoopThread) {
  evcxx::Loop loop;
  evcxx::Async async(loop, [&] { loop.stop(); });
  async.send();
  EXPECT_TRUE(loop.run());
  EXPECT_TRUE(async.active());
}

TEST(Loop, BreakOneReturnsFromTheInnermostRun) {
  evcxx::Loop loop;
  int inner_returned = 0;
  evcxx::Async inner(loop, [&] { loop.break_loop(evcxx::Break::one); });
  evcxx::Async outer(loop, [&] {
    inner.send();
    loop.run();  // nested; broken by `inner`
    ++inner_returned;
    loop.break_loop();
  });
  outer.send();
  EXPECT_TRUE(loop.run());
  EXPECT_EQ(inner_returned, 1);
}

TEST(Loop, BreakAllReturnsFromEveryRun) {
  evcxx::Loop loop;
  int after_nested = 0;
  evcxx::Async inner(loop, [&] { loop.break_loop(evcxx::Break::all); });
  evcxx::Async outer(loop, [&] {
    inner.send();
    loop.run();
    ++after_nested;  // the callback itself still finishes
  });
  outer.send();
  EXPECT_TRUE(loop.run());
  EXPECT_EQ(after_nested, 1);
}

TEST(Loop, BreakCancelUndoesAnEarlierBreak) {
  evcxx::Loop loop;
  int rounds = 0;
  evcxx::Async async(loop, [&] {
    loop.break_loop(evcxx::Break::one);
    loop.break_loop(evcxx::Break::cancel);
    if (++rounds < 3) {
      async.send();
    } else {
      async.stop();
    }
  });
  async.send();
  EXPECT_FALSE(loop.run());  // ran until done: the breaks were cancelled
  EXPECT_EQ(rounds, 3);
}

// --- construction ------------------------------------------------------------------------------

TEST(Loop, NullBorrowedLoopIsInvalidArgument) {
  EXPECT_THROW(evcxx::Loop{nullptr}, std::invalid_argument);
  EXPECT_THROW(evcxx::Loop(static_cast<struct ev_loop*>(nullptr)), std::invalid_argument);
}

TEST(Loop, OwnsItsLoopUnlessBorrowed) {
  evcxx::Loop owned;
  EXPECT_TRUE(owned.owns_loop());
  EXPECT_FALSE(owned.is_default());
  EXPECT_NE(owned.native(), nullptr);
  evcxx::Loop borrowed(owned.native());
  EXPECT_FALSE(borrowed.owns_loop());
  EXPECT_EQ(borrowed.native(), owned.native());
}

TEST(Loop, UnsupportedBackendIsAnError) {
  const auto supported = evcxx::Loop::supported_backends();
  evcxx::Backend missing{};
  bool found = false;
  for (auto b : {evcxx::Backend::kqueue, evcxx::Backend::port, evcxx::Backend::devpoll}) {
    if (!supported.contains(b)) {
      missing = b;
      found = true;
      break;
    }
  }
  if (!found) GTEST_SKIP() << "every backend is supported here";
  try {
    evcxx::Loop loop(evcxx::LoopFlags(missing) | evcxx::LoopFlag::noenv);
    FAIL() << "a loop with an unsupported backend was created";
  } catch (const evcxx::Error& e) {
    EXPECT_NE(std::string(e.what()).find("ev_loop_new"), std::string::npos) << e.what();
  }
  // evcxx::Error is a std::runtime_error.
  EXPECT_THROW(evcxx::Loop(evcxx::LoopFlags(missing) | evcxx::LoopFlag::noenv), std::runtime_error);
}

// Out of file descriptors, libev would abort() creating its wakeup pipe; evcxx throws instead.
TEST(Loop, CreatingALoopWithoutFreeFileDescriptorsThrows) {
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // UBSan needs a free descriptor the first time it checks a std::system_error: let it now.
    try {
      throw std::system_error(EMFILE, std::generic_category(), "warm-up");
    } catch (const std::system_error& e) {
      static_cast<void>(e.code());
    }
    struct rlimit limit {};
    ::getrlimit(RLIMIT_NOFILE, &limit);
    limit.rlim_cur = 64;
    ::setrlimit(RLIMIT_NOFILE, &limit);
    std::vector<int> hogs;
    for (int fd; (fd = ::dup(0)) >= 0;) hogs.push_back(fd);
    auto release = [&] {
      for (int fd : hogs) ::close(fd);
    };
    int code = 1;  // nothing thrown
    try {
      evcxx::Loop loop;
      release();
    } catch (const std::system_error& e) {
      release();
      code = e.code().value() == EMFILE ? 0 : 2;
    } catch (const evcxx::Error&) {
      release();
      code = 0;
    } catch (...) {
      code = 3;
    }
    ::_exit(code);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_FALSE(WIFSIGNALED(status)) << "killed by signal " << WTERMSIG(status);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(Loop, SelectBackendIsReallyUsed) {
  ASSERT_TRUE(evcxx::Loop::supported_backends().contains(evcxx::Backend::select));
  evcxx::Loop loop(evcxx::LoopFlags(evcxx::Backend::select) | evcxx::LoopFlag::noenv);
  EXPECT_EQ(loop.backend(), evcxx::Backend::select);

  // And it dispatches real I/O: a raw ev_io on a pipe.
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  struct Reader {
    ev_io io;
    int reads = 0;
  } reader;
  ev_io_init(
      &reader.io,
      [](struct ev_loop* l, ev_io* w, int) {
        char c;
        if (::read(w->fd, &c, 1) == 1) ++reinterpret_cast<Reader*>(w)->reads;
        ev_io_stop(l, w);
      },
      fds[0], EV_READ);
  ev_io_start(loop.native(), &reader.io);
  ASSERT_EQ(::write(fds[1], "x", 1), 1);
  Watchdog dog(loop);
  EXPECT_FALSE(loop.run());
  dog.disarm();
  EXPECT_EQ(reader.reads, 1);
  ::close(fds[0]);
  ::close(fds[1]);
}

TEST(Loop, FlagsAndBackendSets) {
  const auto poll_only = evcxx::LoopFlags::from_raw(EVBACKEND_POLL);
  EXPECT_EQ(poll_only.raw(), static_cast<unsigned>(EVBACKEND_POLL));
  EXPECT_TRUE(poll_only.backends().contains(evcxx::Backend::poll));
  EXPECT_FALSE(poll_only.backends().contains(evcxx::Backend::epoll));
  EXPECT_EQ(evcxx::LoopFlags().raw(), static_cast<unsigned>(EVFLAG_AUTO));
  EXPECT_TRUE(evcxx::LoopFlags().backends().empty());

  const auto flags = evcxx::LoopFlags(evcxx::Backend::epoll | evcxx::Backend::poll) |
                     evcxx::LoopFlag::noenv | evcxx::LoopFlag::forkcheck;
  EXPECT_EQ(flags.raw(), static_cast<unsigned>(EVBACKEND_EPOLL | EVBACKEND_POLL | EVFLAG_NOENV |
                                               EVFLAG_FORKCHECK));
  EXPECT_EQ(flags.backends(), evcxx::Backend::epoll | evcxx::Backend::poll);

  const auto set = evcxx::Backends::from_raw(EVBACKEND_SELECT | EVBACKEND_EPOLL);
  EXPECT_EQ(set.raw(), static_cast<unsigned>(EVBACKEND_SELECT | EVBACKEND_EPOLL));
  EXPECT_EQ(set & evcxx::Backends(evcxx::Backend::epoll), evcxx::Backends(evcxx::Backend::epoll));
  EXPECT_NE(set, evcxx::Backends(evcxx::Backend::epoll));
  EXPECT_TRUE((set & evcxx::Backends(evcxx::Backend::poll)).empty());
  EXPECT_TRUE(evcxx::Backends().empty());

  evcxx::Loop poll_loop(evcxx::LoopFlags::from_raw(static_cast<unsigned>(EVBACKEND_POLL) |
                                                   static_cast<unsigned>(EVFLAG_NOENV)));
  EXPECT_EQ(poll_loop.backend(), evcxx::Backend::poll);
}

TEST(Loop, BackendQueries) {
  const auto supported = evcxx::Loop::supported_backends();
  const auto recommended = evcxx::Loop::recommended_backends();
  const auto embeddable = evcxx::Loop::embeddable_backends();
  EXPECT_EQ(supported.raw(), ev_supported_backends());
  EXPECT_EQ(recommended.raw(), ev_recommended_backends());
  // libev lists io_uring as embeddable, but ev_embed_start() aborts on an io_uring loop.
  EXPECT_EQ(embeddable.raw(), ev_embeddable_backends() & ~unsigned{EVBACKEND_IOURING});
  EXPECT_TRUE(supported.contains(evcxx::Backend::select));
  EXPECT_TRUE(supported.contains(evcxx::Backend::poll));
  EXPECT_FALSE(recommended.empty());
  EXPECT_EQ(recommended & supported, recommended);  // libev recommends only what exists here
#ifdef __linux__
  EXPECT_TRUE(supported.contains(evcxx::Backend::epoll));
  EXPECT_TRUE(embeddable.contains(evcxx::Backend::epoll));
#endif
  evcxx::Loop loop(evcxx::LoopFlag::noenv);
  EXPECT_TRUE(recommended.contains(loop.backend()));
}

TEST(Loop, VersionIsTheLibevWeBuiltAgainst) {
  const evcxx::Version v = evcxx::Loop::version();
  EXPECT_EQ(v.major, EV_VERSION_MAJOR);
  EXPECT_EQ(v.minor, EV_VERSION_MINOR);
}

// --- the rest of the loop API ------------------------------------------------------------------

TEST(Loop, NowIsCachedUntilUpdated) {
  evcxx::Loop loop;
  loop.update_now();
  const evcxx::Timestamp t1 = loop.now();
  // Within a minute of libev's clock (which is the wall clock).
  EXPECT_LT(std::abs((evcxx::Clock::now() - t1).count()), 60.0);
  while (evcxx::Clock::now() <= t1 + 2ms) {
  }
  EXPECT_EQ(loop.now(), t1);  // cached: the loop has not iterated
  loop.update_now();
  EXPECT_GT(loop.now(), t1);
  const evcxx::Timestamp t2 = loop.now();
  while (evcxx::Clock::now() <= t2 + 2ms) {
  }
  loop.run(evcxx::Run::nowait);  // an iteration refreshes it too
  EXPECT_GT(loop.now(), t2);
}

TEST(Loop, SuspendedTimeDoesNotCountForTimers) {
  evcxx::Loop loop;
  ev_timer timer;
  ev_timer_init(
      &timer, [](struct ev_loop*, ev_timer*, int) {}, 1.0, 0.0);
  loop.update_now();
  const evcxx::Timestamp started = loop.now();
  ev_timer_start(loop.native(), &timer);
  loop.suspend();
  const double before_suspend = (evcxx::Clock::now() - started).count();
  std::this_thread::sleep_for(300ms);  // time passes while suspended
  loop.resume();
  const double remaining = ev_timer_remaining(loop.native(), &timer);
  // Without suspend/resume at most 0.7 s would remain.
  EXPECT_GT(remaining, 1.0 - before_suspend - 0.05);
  ev_timer_stop(loop.native(), &timer);
}

TEST(Loop, IterationCountsLoopIterations) {
  evcxx::Loop loop;
  const unsigned start = loop.iteration();
  loop.run(evcxx::Run::nowait);
  loop.run(evcxx::Run::nowait);
  loop.run(evcxx::Run::nowait);
  EXPECT_EQ(loop.iteration() - start, 3u);
}

TEST(Loop, DepthIsTheRunNesting) {
  evcxx::Loop loop;
  EXPECT_EQ(loop.depth(), 0u);
  std::vector<unsigned> depths;
  evcxx::Async inner(loop, [&] {
    depths.push_back(loop.depth());
    inner.stop();
    loop.break_loop();  // ends the nested run(), which `outer` would keep alive
  });
  evcxx::Async outer(loop, [&] {
    depths.push_back(loop.depth());
    inner.send();
    loop.run();
    outer.stop();
  });
  outer.send();
  EXPECT_FALSE(loop.run());
  EXPECT_EQ(depths, (std::vector<unsigned>{1, 2}));
  EXPECT_EQ(loop.depth(), 0u);
}

TEST(Loop, PendingCountAndInvokePending) {
  evcxx::Loop loop;
  int calls = 0;
  evcxx::Async a(loop, evcxx::deferred, [&] { ++calls; });
  evcxx::Async b(loop, evcxx::deferred, [&] { ++calls; });
  EXPECT_EQ(loop.pending_count(), 0u);
  a.feed();
  b.feed();
  EXPECT_EQ(loop.pending_count(), 2u);
  EXPECT_TRUE(a.pending());
  loop.invoke_pending();
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(loop.pending_count(), 0u);
  EXPECT_FALSE(a.pending());
}

TEST(Loop, RefAndUnrefDecideWhetherAWatcherKeepsRunAlive) {
  evcxx::Loop loop;
  int calls = 0;
  evcxx::Async async(loop, [&] {
    ++calls;
    async.stop();
  });
  loop.unref();
  Watchdog dog(loop);
  EXPECT_FALSE(loop.run());  // the only active watcher no longer counts
  EXPECT_EQ(calls, 0);
  loop.ref();
  // Counted again: run() now waits for the send from another thread.
  std::thread sender([&] { async.send(); });
  EXPECT_FALSE(loop.run());
  dog.disarm();
  sender.join();
  EXPECT_FALSE(dog.fired());
  EXPECT_EQ(calls, 1);
}

TEST(Loop, CollectIntervalsRejectNegativeAndNaN) {
  evcxx::Loop loop;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  using Seconds = std::chrono::duration<double>;
  EXPECT_THROW(loop.set_io_collect_interval(-1ms), std::invalid_argument);
  EXPECT_THROW(loop.set_io_collect_interval(Seconds(nan)), std::invalid_argument);
  EXPECT_THROW(loop.set_timeout_collect_interval(-1s), std::invalid_argument);
  EXPECT_THROW(loop.set_timeout_collect_interval(Seconds(nan)), std::invalid_argument);
  EXPECT_THROW(loop.set_io_collect_interval(Seconds(-std::numeric_limits<double>::infinity())),
               std::invalid_argument);
  EXPECT_NO_THROW(loop.set_io_collect_interval(0s));
  EXPECT_NO_THROW(loop.set_io_collect_interval(1ms));
  EXPECT_NO_THROW(loop.set_timeout_collect_interval(0s));
  EXPECT_NO_THROW(loop.set_timeout_collect_interval(Seconds(0.002)));
  // The loop still works with them set.
  int ran = 0;
  evcxx::Async async(loop, [&] {
    ++ran;
    async.stop();
  });
  std::thread sender([&] { async.send(); });
  Watchdog dog(loop);
  EXPECT_FALSE(loop.run());
  dog.disarm();
  sender.join();
  EXPECT_EQ(ran, 1);
}

TEST(Loop, VerifyAcceptsAHealthyLoop) {
  evcxx::Loop loop;
  int ran = 0;
  evcxx::Async a(loop, [&] { ++ran; });
  evcxx::Async b(loop, evcxx::deferred, [&] { ++ran; });
  b.feed();
  loop.post([&] { ++ran; });
  loop.verify();  // aborts inside libev if its structures are inconsistent
  a.send();
  loop.run(evcxx::Run::nowait);
  loop.verify();
  EXPECT_EQ(ran, 3);
}

TEST(Loop, ForkInTheChildKeepsTheLoopWorking) {
  evcxx::Loop loop;
  int parent_calls = 0;
  evcxx::Async async(loop, [&] {
    ++parent_calls;
    async.stop();
  });
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    loop.notify_fork();
    bool task_ran = false;
    loop.post([&] { task_ran = true; });
    async.send();
    loop.run();
    ::_exit(task_ran && parent_calls == 1 && !async.active() ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "the loop did not work in the child after fork()";
  // The parent's loop is untouched by the child.
  EXPECT_EQ(parent_calls, 0);
  EXPECT_TRUE(async.active());
  async.send();
  EXPECT_FALSE(loop.run());
  EXPECT_EQ(parent_calls, 1);
}

// --- hooks -------------------------------------------------------------------------------------

TEST(LoopHooks, ReleaseHooksLetAnotherThreadShareTheLoopUnderAMutex) {
  constexpr int kRounds = 200;
  evcxx::Loop loop;
  std::mutex mutex;
  std::unique_lock<std::mutex> held(mutex);  // the loop thread holds it except while blocked
  bool loop_holds_mutex = true;              // loop thread only
  int shared_counter = 0;                    // guarded by mutex
  int last_seen = 0;
  bool callback_without_mutex = false;
  loop.set_release_hooks(
      [&] {
        loop_holds_mutex = false;
        held.unlock();
      },
      [&] {
        held.lock();
        loop_holds_mutex = true;
      });
  evcxx::Async async(loop, [&] {
    if (!loop_holds_mutex) callback_without_mutex = true;
    EXPECT_GE(shared_counter, last_seen);
    last_seen = shared_counter;
    if (shared_counter == 2 * kRounds) async.stop();
  });
  std::atomic<bool> starved{false};
  std::thread other([&] {
    for (int i = 0; i < kRounds; ++i) {
      std::unique_lock<std::mutex> lock(mutex, std::defer_lock);
      const auto deadline = std::chrono::steady_clock::now() + evcxx_test::kPatience;
      while (!lock.try_lock()) {
        if (std::chrono::steady_clock::now() > deadline) {
          starved = true;
          loop.stop();
          return;
        }
        std::this_thread::yield();
      }
      ++shared_counter;
      async.send();
      loop.post([&] {
        if (!loop_holds_mutex) callback_without_mutex = true;
        ++shared_counter;
        if (shared_counter == 2 * kRounds) async.stop();
      });
    }
  });
  Watchdog dog(loop);
  loop.run();
  dog.disarm();
  held.unlock();
  other.join();
  EXPECT_FALSE(starved.load()) << "the loop never released the mutex while blocked";
  EXPECT_FALSE(dog.fired());
  EXPECT_FALSE(callback_without_mutex);
  EXPECT_EQ(shared_counter, 2 * kRounds);
  EXPECT_FALSE(async.active());
}

TEST(LoopHooks, ReleaseHooksAreBothOrNeither) {
  evcxx::Loop loop;
  EXPECT_THROW(loop.set_release_hooks([] {}, {}), std::invalid_argument);
  EXPECT_THROW(loop.set_release_hooks({}, [] {}), std::invalid_argument);
  int releases = 0;
  loop.set_release_hooks([&] { ++releases; }, [] {});
  evcxx::Async async(loop, [] {});
  async.send();
  loop.run(evcxx::Run::nowait);
  EXPECT_GE(releases, 1);
  EXPECT_NO_THROW(loop.set_release_hooks({}, {}));  // uninstalls
  const int installed_releases = releases;
  async.send();
  loop.run(evcxx::Run::nowait);
  EXPECT_EQ(releases, installed_releases);
}

TEST(LoopHooks, InvokePendingHookRunsTheCallbacks) {
  evcxx::Loop loop;
  int hook_calls = 0;
  int callbacks = 0;
  loop.set_invoke_pending_hook([&](evcxx::Loop& l) {
    EXPECT_EQ(&l, &loop);
    ++hook_calls;
    l.invoke_pending();
  });
  evcxx::Async async(loop, [&] { ++callbacks; });
  async.send();
  loop.run(evcxx::Run::nowait);
  EXPECT_EQ(callbacks, 1);
  EXPECT_GE(hook_calls, 1);

  // A hook that does not invoke leaves the events pending.
  loop.set_invoke_pending_hook([&](evcxx::Loop&) { ++hook_calls; });
  async.send();
  loop.run(evcxx::Run::nowait);
  EXPECT_EQ(callbacks, 1);
  EXPECT_GT(loop.pending_count(), 0u);

  // An empty hook restores libev's own invocation.
  loop.set_invoke_pending_hook({});
  const int hooked = hook_calls;
  loop.run(evcxx::Run::nowait);
  EXPECT_EQ(callbacks, 2);
  EXPECT_EQ(hook_calls, hooked);
}

TEST(LoopHooks, RunInsideAReleaseHookIsALogicErrorNotAnAbort) {
  evcxx::Loop loop;
  int attempts = 0;
  int logic_errors = 0;
  auto try_to_run = [&] {
    if (attempts++ < 2) {
      try {
        loop.run(evcxx::Run::nowait);
      } catch (const std::logic_error&) {
        ++logic_errors;
      }
    }
  };
  loop.set_release_hooks(try_to_run, try_to_run);
  int calls = 0;
  evcxx::Async async(loop, [&] {
    ++calls;
    async.stop();
  });
  async.send();
  EXPECT_FALSE(loop.run());
  EXPECT_EQ(attempts, 2);
  EXPECT_EQ(logic_errors, 2);  // from the release and from the acquire hook
  EXPECT_EQ(calls, 1);
}

// libev's ev_verify() asserts that its count of referencing watchers is at least -1.
TEST(Loop, VerifyAfterMoreUnrefsThanReferencesIsALogicErrorNotAnAbort) {
  evcxx::Loop loop;
  evcxx::Async held(loop, [] {});
  loop.unref();  // the usual idiom: the Async does not keep run() going
  loop.verify();
  loop.unref();  // one more than any watcher holds: libev's count is -1, which it still allows
  loop.verify();
  loop.unref();  // -2: ev_verify() would abort
  EXPECT_THROW(loop.verify(), std::logic_error);
  held.stop();  // stopped without ref() first: the count drops again
  EXPECT_THROW(loop.verify(), std::logic_error);
  loop.ref();
  loop.ref();
  loop.ref();
  loop.verify();  // balanced again
  EXPECT_FALSE(loop.run(evcxx::Run::nowait));
}
