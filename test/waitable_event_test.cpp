// evcxx::WaitableEvent: a level-triggered event for threads, foreign poll loops and the Loop.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <limits>
#include <memory>
#include <random>
#include <stdexcept>
#include <thread>
#include <vector>

#include <evcxx/loop.hpp>
#include <evcxx/loop_thread.hpp>
#include <evcxx/waitable_event.hpp>

#include "support.hpp"

using namespace std::chrono_literals;
using evcxx_test::completes_within;
using evcxx_test::kPatience;
using evcxx_test::readable;
using evcxx_test::Watchdog;

static_assert(evcxx_test::is_pinned_v<evcxx::WaitableEvent>);

TEST(WaitableEvent, StartsClear) {
  evcxx::Loop loop;
  evcxx::WaitableEvent event(loop);
  EXPECT_FALSE(event.is_set());
  EXPECT_FALSE(event.wait_for(0ms));
  EXPECT_FALSE(readable(event.fd()));
}

TEST(WaitableEvent, IsLevelTriggered) {
  evcxx::Loop loop;
  evcxx::WaitableEvent event(loop);
  event.set();
  for (int i = 0; i < 3; ++i) {  // observing it does not consume it
    EXPECT_TRUE(event.is_set());
    event.wait();
    EXPECT_TRUE(event.wait_for(0ms));
    EXPECT_TRUE(readable(event.fd()));
  }
  event.clear();
  EXPECT_FALSE(event.is_set());
  EXPECT_FALSE(event.wait_for(0ms));
}

TEST(WaitableEvent, SetIsIdempotent) {
  evcxx::Loop loop;
  evcxx::WaitableEvent event(loop);
  const int fd = event.fd();
  event.set();
  event.set();
  event.set();
  EXPECT_TRUE(event.is_set());
  EXPECT_TRUE(readable(fd));
  event.clear();  // one clear undoes any number of sets: a level, not a count
  EXPECT_FALSE(event.is_set());
  EXPECT_FALSE(readable(fd));
}

TEST(WaitableEvent, ClearNeverBlocks) {
  evcxx::Loop loop;
  auto event = std::make_shared<evcxx::WaitableEvent>(loop);
  EXPECT_TRUE(completes_within(kPatience, [event] {
    event->clear();  // nothing set, no fd yet
    event->clear();
  }));
  ASSERT_GE(event->fd(), 0);
  EXPECT_TRUE(completes_within(kPatience, [event] {
    event->clear();  // nothing set, with an fd
    event->set();
    event->clear();
    event->clear();
  }));
  EXPECT_FALSE(event->is_set());
  EXPECT_FALSE(readable(event->fd()));
}

TEST(WaitableEvent, WaitBlocksUntilSetFromAnotherThread) {
  evcxx::Loop loop;
  evcxx::WaitableEvent event(loop);
  std::atomic<bool> returned{false};
  std::thread waiter([&] {
    event.wait();
    returned = true;
  });
  std::this_thread::sleep_for(20ms);  // makes it likely the waiter is blocked; correct either way
  EXPECT_FALSE(returned.load());
  event.set();
  waiter.join();
  EXPECT_TRUE(returned.load());
}

TEST(WaitableEvent, OneSetReleasesEveryWaiter) {
  constexpr int kWaiters = 8;
  evcxx::Loop loop;
  evcxx::WaitableEvent event(loop);
  std::atomic<int> ready{0};
  std::atomic<int> released{0};
  std::atomic<int> timed_out{0};
  std::vector<std::thread> waiters;
  for (int i = 0; i < kWaiters; ++i) {
    waiters.emplace_back([&, i] {
      ++ready;
      bool ok = true;
      switch (i % 4) {
        case 0:
          event.wait();
          break;
        case 1:
          ok = event.wait_for(kPatience);
          break;
        case 2:
          ok = event.wait_until(std::chrono::steady_clock::now() + kPatience);
          break;
        default:
          ok = event.wait_until(std::chrono::system_clock::now() + kPatience);
          break;
      }
      (ok ? released : timed_out)++;
    });
  }
  while (ready.load() < kWaiters) std::this_thread::yield();
  std::this_thread::sleep_for(50ms);  // makes it likely all are blocked; correct either way
  EXPECT_EQ(released.load(), 0);
  event.set();
  for (auto& t : waiters) t.join();
  EXPECT_EQ(released.load(), kWaiters);
  EXPECT_EQ(timed_out.load(), 0);
}

TEST(WaitableEvent, SetThenClearStillReleasesEveryBlockedWaiter) {
  constexpr int kWaiters = 8;
  evcxx::Loop loop;
  evcxx::WaitableEvent event(loop);
  std::atomic<int> ready{0};
  std::atomic<int> released{0};
  std::vector<std::thread> waiters;
  for (int i = 0; i < kWaiters; ++i) {
    waiters.emplace_back([&] {
      ++ready;
      if (event.wait_for(kPatience)) ++released;
    });
  }
  while (ready.load() < kWaiters) std::this_thread::yield();
  std::this_thread::sleep_for(50ms);  // makes it likely all are blocked; correct either way
  event.set();
  event.clear();  // before the waiters had a chance to look
  for (auto& t : waiters) t.join();
  EXPECT_EQ(released.load(), kWaiters);
  EXPECT_FALSE(event.is_set());
}

TEST(WaitableEvent, WaitForTimesOutWhenNotSet) {
  evcxx::Loop loop;
  evcxx::WaitableEvent event(loop);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(event.wait_for(50ms));
  EXPECT_GE(std::chrono::steady_clock::now() - start, 50ms);  // never early
  EXPECT_FALSE(event.wait_for(-1s));                          // a past timeout polls
  EXPECT_FALSE(event.wait_for(std::chrono::duration<double>(0.01)));
}

TEST(WaitableEvent, WaitForReturnsTrueWhenSetMeanwhile) {
  evcxx::Loop loop;
  evcxx::WaitableEvent event(loop);
  std::thread setter([&] {
    std::this_thread::sleep_for(20ms);  // makes it likely the wait blocks first
    event.set();
  });
  EXPECT_TRUE(event.wait_for(kPatience));
  setter.join();
  EXPECT_TRUE(event.wait_for(0s));
}

TEST(WaitableEvent, WaitUntilWithSteadyClock) {
  evcxx::Loop loop;
  evcxx::WaitableEvent event(loop);
  EXPECT_FALSE(event.wait_until(std::chrono::steady_clock::now() - 1s));
  const auto deadline = std::chrono::steady_clock::now() + 30ms;
  EXPECT_FALSE(event.wait_until(deadline));
  EXPECT_GE(std::chrono::steady_clock::now(), deadline);
  std::thread setter([&] { event.set(); });
  EXPECT_TRUE(event.wait_until(std::chrono::steady_clock::now() + kPatience));
  setter.join();
  EXPECT_TRUE(event.wait_until(std::chrono::steady_clock::now() - 1s));  // set: at once
}

TEST(WaitableEvent, WaitUntilWithSystemClock) {
  evcxx::Loop loop;
  evcxx::WaitableEvent event(loop);
  EXPECT_FALSE(event.wait_until(std::chrono::system_clock::now() - 1s));
  const auto deadline = std::chrono::system_clock::now() + 30ms;
  EXPECT_FALSE(event.wait_until(deadline));
  EXPECT_GE(std::chrono::system_clock::now(), deadline);
  std::thread setter([&] { event.set(); });
  EXPECT_TRUE(event.wait_until(std::chrono::system_clock::now() + kPatience));
  setter.join();
  EXPECT_TRUE(event.wait_until(std::chrono::system_clock::now() - 1s));
}

TEST(WaitableEvent, TimeoutsBeyondTheClockMeanForeverAndNaNIsRejected) {
  evcxx::Loop loop;
  evcxx::WaitableEvent event(loop);
  const double inf = std::numeric_limits<double>::infinity();
  std::atomic<int> returned{0};
  std::atomic<int> released{0};
  std::vector<std::thread> waiters;
  auto spawn = [&](auto wait) {
    waiters.emplace_back([&, wait] {
      if (wait()) ++released;
      ++returned;
    });
  };
  spawn([&] { return event.wait_for(std::chrono::seconds::max()); });
  spawn([&] { return event.wait_for(std::chrono::hours::max()); });
  spawn([&] { return event.wait_for(std::chrono::duration<double>(inf)); });
  spawn([&] { return event.wait_until(std::chrono::system_clock::time_point::max()); });
  spawn([&] { return event.wait_until(std::chrono::steady_clock::time_point::max()); });
  // Coarser than the clocks' own units: converting or comparing them overflowed.
  using SteadySeconds = std::chrono::time_point<std::chrono::steady_clock, std::chrono::seconds>;
  using SystemSeconds = std::chrono::time_point<std::chrono::system_clock, std::chrono::seconds>;
  spawn([&] { return event.wait_until(SteadySeconds::max()); });
  spawn([&] { return event.wait_until(SystemSeconds::max()); });
  std::this_thread::sleep_for(50ms);  // gives a wrapped-around deadline time to show
  EXPECT_EQ(returned.load(), 0) << "a huge timeout expired at once";
  event.set();
  for (auto& t : waiters) t.join();
  EXPECT_EQ(released.load(), 7);
  event.clear();
  EXPECT_FALSE(event.wait_for(std::chrono::seconds::min()));
  EXPECT_FALSE(event.wait_for(std::chrono::duration<double>(-inf)));
  EXPECT_FALSE(event.wait_until(std::chrono::system_clock::time_point::min()));
  EXPECT_THROW(event.wait_for(std::chrono::duration<double>(std::nan(""))), std::invalid_argument);
}

TEST(WaitableEventFd, ReadableExactlyWhileSet) {
  evcxx::Loop loop;
  evcxx::WaitableEvent event(loop);
  const int fd = event.fd();
  ASSERT_GE(fd, 0);
  EXPECT_EQ(event.fd(), fd);  // the same fd every time
  EXPECT_GE(::fcntl(fd, F_GETFD), 0);
  EXPECT_TRUE(::fcntl(fd, F_GETFD) & FD_CLOEXEC);
  EXPECT_FALSE(readable(fd));
  event.set();
  EXPECT_TRUE(readable(fd));
  EXPECT_TRUE(readable(fd));
  event.set();
  EXPECT_TRUE(readable(fd));
  event.clear();
  EXPECT_FALSE(readable(fd));
  event.clear();
  EXPECT_FALSE(readable(fd));
  event.set();
  EXPECT_TRUE(readable(fd));
}

TEST(WaitableEventFd, CreatedWhileSetIsReadableAtOnce) {
  evcxx::Loop loop;
  evcxx::WaitableEvent event(loop);
  event.set();
  const int fd = event.fd();
  ASSERT_GE(fd, 0);
  EXPECT_TRUE(readable(fd));
  event.clear();
  EXPECT_FALSE(readable(fd));
}

TEST(WaitableEventFd, WakesAForeignPollLoop) {
  evcxx::Loop loop;
  evcxx::WaitableEvent event(loop);
  const int fd = event.fd();
  std::thread setter([&] {
    std::this_thread::sleep_for(20ms);  // makes it likely poll() blocks first
    event.set();
  });
  const auto [n, revents] = evcxx_test::poll_readable(fd);
  setter.join();
  EXPECT_EQ(n, 1);
  EXPECT_TRUE(revents & POLLIN);
  EXPECT_TRUE(event.is_set());
}

// Out of file descriptors, fd() reports -1 with errno (the event itself keeps working), and a
// later call creates the fd once one is free.
TEST(WaitableEventFd, WithoutFreeDescriptorsFdFailsButTheEventWorks) {
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    int code = 0;
    {
      evcxx::Loop loop;
      evcxx::WaitableEvent event(loop);
      // Sanitizer runtimes need descriptors to check a call the first time: make each once first.
      event.set();
      static_cast<void>(event.is_set() && event.wait_for(0s));
      event.clear();
      struct rlimit limit {};
      ::getrlimit(RLIMIT_NOFILE, &limit);
      limit.rlim_cur = 64;
      ::setrlimit(RLIMIT_NOFILE, &limit);
      std::vector<int> hogs;
      for (int fd; (fd = ::dup(0)) >= 0;) hogs.push_back(fd);
      errno = 0;
      if (event.fd() != -1 || errno != EMFILE) code |= 1;
      event.set();
      if (!event.is_set() || !event.wait_for(0s)) code |= 2;
      for (int fd : hogs) ::close(fd);
      const int fd = event.fd();
      if (fd < 0 || !readable(fd)) code |= 4;
      event.clear();
      if (readable(fd)) code |= 8;
    }
    ::_exit(code);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status)) << "the child died";
  EXPECT_EQ(WEXITSTATUS(status), 0) << "failed checks (bit mask)";
}

// After threads race set() and clear() (and one creates the fd mid-race), is_set() and the fd's
// readability agree once they have all finished.
TEST(WaitableEventFd, AgreesWithIsSetAfterRacingSetAndClear) {
  constexpr int kThreads = 6;
  constexpr int kRounds = 60;
  constexpr int kOps = 300;
  evcxx::Loop loop;
  for (int round = 0; round < kRounds; ++round) {
    evcxx::WaitableEvent event(loop);
    const bool fd_first = round % 2 == 0;
    if (fd_first) {
      ASSERT_GE(event.fd(), 0);
    }
    std::atomic<int> ready{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        std::minstd_rand random(static_cast<unsigned>(round * kThreads + t));
        ++ready;
        while (ready.load() < kThreads) std::this_thread::yield();
        for (int i = 0; i < kOps; ++i) {
          if (!fd_first && t == 0 && i == kOps / 2) static_cast<void>(event.fd());
          if (random() & 1) {
            event.set();
          } else {
            event.clear();
          }
        }
      });
    }
    for (auto& t : threads) t.join();
    const int fd = event.fd();
    ASSERT_GE(fd, 0);
    ASSERT_EQ(event.is_set(), readable(fd)) << "round " << round;
    // And the fd keeps following the event afterwards.
    event.set();
    ASSERT_TRUE(readable(fd));
    event.clear();
    ASSERT_FALSE(readable(fd));
  }
}

// --- announcing to the loop --------------------------------------------------------------------

TEST(WaitableEventLoop, OnSetRunsOnTheLoopThread) {
  evcxx::Loop loop;
  std::thread::id on_set_thread;
  int calls = 0;
  evcxx::WaitableEvent event(loop, [&] {
    on_set_thread = std::this_thread::get_id();
    ++calls;
    loop.break_loop();
  });
  std::thread setter([&] { event.set(); });
  Watchdog dog(loop);
  EXPECT_TRUE(loop.run());  // broken by on_set; the event still keeps the loop alive
  dog.disarm();
  setter.join();
  EXPECT_FALSE(dog.fired());
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(on_set_thread, std::this_thread::get_id());
  EXPECT_TRUE(event.is_set());  // on_set does not consume the level
}

TEST(WaitableEventLoop, OnSetRunsOncePerObservedSet) {
  evcxx::Loop loop;
  int calls = 0;
  evcxx::WaitableEvent event(loop, [&] { ++calls; });
  event.set();
  event.set();
  event.set();
  loop.run(evcxx::Run::nowait);
  EXPECT_EQ(calls, 1);
  event.set();  // still set: nothing new to announce
  loop.run(evcxx::Run::nowait);
  EXPECT_EQ(calls, 1);
  event.clear();
  event.set();
  loop.run(evcxx::Run::nowait);
  EXPECT_EQ(calls, 2);
}

TEST(WaitableEventLoop, OnSetNotRunWhenClearedBeforeTheLoopSawIt) {
  evcxx::Loop loop;
  int calls = 0;
  evcxx::WaitableEvent event(loop, [&] { ++calls; });
  std::thread([&] {
    event.set();
    event.clear();
  }).join();
  loop.run(evcxx::Run::nowait);
  EXPECT_EQ(calls, 0);
  event.set();
  loop.run(evcxx::Run::nowait);
  EXPECT_EQ(calls, 1);
}

TEST(WaitableEventLoop, OnSetMayDestroyTheEvent) {
  evcxx::Loop loop;
  auto token = std::make_shared<int>(42);
  int seen = 0;
  std::unique_ptr<evcxx::WaitableEvent> event;
  event = std::make_unique<evcxx::WaitableEvent>(loop, [&, token] {
    event.reset();
    seen = *token;  // its own captures are still alive
  });
  std::thread([&] { event->set(); }).join();
  Watchdog dog(loop);
  EXPECT_FALSE(loop.run());  // nothing left to keep it alive
  dog.disarm();
  EXPECT_EQ(event, nullptr);
  EXPECT_EQ(seen, 42);
  EXPECT_EQ(token.use_count(), 1);  // on_set was destroyed with the event
}

TEST(WaitableEventLoop, WithoutOnSetItDoesNotKeepRunAlive) {
  evcxx::Loop loop;
  evcxx::WaitableEvent event(loop);
  EXPECT_FALSE(event.async().active());
  EXPECT_FALSE(loop.run());
  event.set();
  EXPECT_FALSE(loop.run());
  EXPECT_EQ(&event.loop(), &loop);
}

TEST(WaitableEventLoop, WithOnSetItKeepsRunAlive) {
  evcxx::Loop loop;
  evcxx::WaitableEvent event(loop, [] {});
  EXPECT_TRUE(event.async().active());
  EXPECT_EQ(&event.loop(), &loop);
  loop.stop();
  EXPECT_TRUE(loop.run());  // active watchers remained
}

// Hand-offs between a thread and the loop: no set() is lost on the way to on_set, and no set() is
// lost on the way to a waiter.
TEST(WaitableEventLoop, PingPongWithTheLoopNeverLosesASet) {
  constexpr int kRounds = 2000;
  evcxx::Loop loop;
  evcxx::WaitableEvent ack(loop);
  int rounds_seen = 0;
  std::unique_ptr<evcxx::WaitableEvent> ping;
  ping = std::make_unique<evcxx::WaitableEvent>(loop, [&] {
    ping->clear();
    ++rounds_seen;
    ack.set();
  });
  std::atomic<int> lost{0};
  std::thread thread([&] {
    for (int i = 0; i < kRounds; ++i) {
      ping->set();
      if (!ack.wait_for(kPatience)) {
        ++lost;
        break;
      }
      ack.clear();
    }
    loop.stop();
  });
  Watchdog dog(loop, kPatience * 2);
  loop.run();
  dog.disarm();
  thread.join();
  EXPECT_EQ(lost.load(), 0);
  EXPECT_EQ(rounds_seen, kRounds);
}

// --- standalone events -------------------------------------------------------------------------

TEST(WaitableEventStandalone, SetClearWaitAndFdWithoutALoop) {
  evcxx::WaitableEvent event;
  EXPECT_FALSE(event.is_set());
  EXPECT_FALSE(event.wait_for(0ms));
  const int fd = event.fd();
  ASSERT_GE(fd, 0);
  EXPECT_FALSE(readable(fd));
  event.set();
  EXPECT_TRUE(event.is_set());
  EXPECT_TRUE(event.wait_for(0ms));
  EXPECT_TRUE(readable(fd));
  event.clear();
  EXPECT_FALSE(event.is_set());
  EXPECT_FALSE(readable(fd));

  // A foreign poll() loop and a waiter, both released by a set() from another thread.
  std::atomic<bool> waited{false};
  std::thread waiter([&] { waited = event.wait_for(kPatience); });
  std::thread setter([&] {
    std::this_thread::sleep_for(20ms);  // makes it likely poll() blocks first
    event.set();
  });
  const auto [n, revents] = evcxx_test::poll_readable(fd);
  setter.join();
  waiter.join();
  EXPECT_EQ(n, 1);
  EXPECT_TRUE(revents & POLLIN);
  EXPECT_TRUE(waited.load());
  EXPECT_TRUE(event.is_set());
}

TEST(WaitableEventStandalone, HasNoLoopAndNoAsync) {
  evcxx::WaitableEvent event;
  EXPECT_THROW(event.loop(), std::logic_error);
  EXPECT_THROW(event.async(), std::logic_error);
  event.set();  // and still works
  EXPECT_TRUE(event.is_set());
}

// --- created and destroyed on any thread -------------------------------------------------------

// A thread other than the loop's creates an event for a LoopThread's loop, sets it (at once, or
// once the loop certainly registered it), sees on_set run on the loop thread, and destroys it.
TEST(WaitableEventAnyThread, MadeAndDestroyedOffTheLoopThreadAnnouncesOnTheLoopThread) {
  constexpr int kRounds = 40;
  evcxx::LoopThread thread("we-any");
  std::atomic<int> on_loop_thread{0};
  std::atomic<int> elsewhere{0};
  std::atomic<int> delivered_rounds{0};
  std::thread maker([&] {
    for (int round = 0; round < kRounds; ++round) {
      evcxx::WaitableEvent delivered;
      {
        evcxx::WaitableEvent event(thread.loop(), [&] {
          (thread.in_loop_thread() ? on_loop_thread : elsewhere)++;
          delivered.set();
        });
        EXPECT_EQ(&event.loop(), &thread.loop());
        if (round % 2 == 1) thread.submit([] {}).get();  // registered by now
        event.set();
        if (delivered.wait_for(kPatience)) ++delivered_rounds;
      }
    }
  });
  maker.join();
  EXPECT_EQ(delivered_rounds.load(), kRounds);
  EXPECT_EQ(on_loop_thread.load(), kRounds);
  EXPECT_EQ(elsewhere.load(), 0);
}

// Made on one side, destroyed on the other, both ways round.
TEST(WaitableEventAnyThread, MadeOnOneThreadDestroyedOnTheOther) {
  evcxx::LoopThread thread("we-swap");
  std::atomic<int> calls{0};
  evcxx::WaitableEvent delivered;

  // Made off the loop thread, destroyed on it.
  auto event = std::make_unique<evcxx::WaitableEvent>(thread.loop(), [&] {
    ++calls;
    delivered.set();
  });
  event->set();
  ASSERT_TRUE(delivered.wait_for(kPatience));
  thread.submit([&] { event.reset(); }).get();
  EXPECT_EQ(calls.load(), 1);

  // Made on the loop thread, destroyed off it.
  delivered.clear();
  thread
      .submit([&] {
        event = std::make_unique<evcxx::WaitableEvent>(thread.loop(), [&] {
          ++calls;
          delivered.set();
        });
        EXPECT_TRUE(event->async().active());  // registered at once on the loop thread
      })
      .get();
  event->set();
  ASSERT_TRUE(delivered.wait_for(kPatience));
  event.reset();
  EXPECT_EQ(calls.load(), 2);
  thread.submit([] {}).get();  // the loop thread tore the announcement down; ASan checks the rest
}

// Once the destructor returned on another thread, on_set never runs for that event, even with an
// announcement in flight.
TEST(WaitableEventAnyThread, OnSetNeverRunsAfterTheDestructorReturned) {
  constexpr int kRounds = 300;
  evcxx::LoopThread thread("we-late");
  std::atomic<int> late{0};
  std::atomic<int> calls{0};
  for (int round = 0; round < kRounds; ++round) {
    auto destroyed = std::make_shared<std::atomic<bool>>(false);
    {
      evcxx::WaitableEvent event(thread.loop(), [&, destroyed] {
        ++calls;
        if (destroyed->load()) ++late;
      });
      if (round % 3 == 0) thread.submit([] {}).get();
      event.set();
      if (round % 2 == 0) std::this_thread::yield();
    }
    destroyed->store(true);
  }
  thread.submit([] {}).get();
  thread.submit([] {}).get();  // anything still pending has had its chance
  EXPECT_EQ(late.load(), 0);
  std::printf("%d of %d announcements delivered before the destructor\n", calls.load(), kRounds);
}

// A destructor on another thread waits for an on_set that is running (so on_set may use what the
// destroying thread still owns), and does not wait when on_set itself is done.
TEST(WaitableEventAnyThread, DestructorOnAnotherThreadWaitsForARunningOnSet) {
  evcxx::LoopThread thread("we-wait");
  evcxx::WaitableEvent entered;
  evcxx::WaitableEvent go_on;
  std::atomic<bool> destructor_returned{false};
  std::atomic<bool> returned_while_on_set_ran{false};
  auto event = std::make_unique<evcxx::WaitableEvent>(thread.loop(), [&] {
    entered.set();
    EXPECT_TRUE(go_on.wait_for(kPatience));
    if (destructor_returned.load()) returned_while_on_set_ran = true;
  });
  event->set();
  ASSERT_TRUE(entered.wait_for(kPatience));
  std::thread destroyer([&] {
    event.reset();
    destructor_returned = true;
  });
  std::this_thread::sleep_for(
      50ms);  // makes it likely the destructor is waiting; correct either way
  EXPECT_FALSE(destructor_returned.load());
  go_on.set();
  destroyer.join();
  EXPECT_TRUE(destructor_returned.load());
  EXPECT_FALSE(returned_while_on_set_ran.load());
}

// Keep-alive is as for an event made on the loop thread: with on_set it keeps run() going, without
// it it does not, and once destroyed (anywhere) it no longer does.
TEST(WaitableEventAnyThread, KeepAliveIsTheSameWhenMadeOnAnotherThread) {
  evcxx::Loop loop;
  int calls = 0;
  std::unique_ptr<evcxx::WaitableEvent> quiet;
  std::unique_ptr<evcxx::WaitableEvent> announced;
  std::thread([&] {
    quiet = std::make_unique<evcxx::WaitableEvent>(loop);
    announced = std::make_unique<evcxx::WaitableEvent>(loop, [&] { ++calls; });
    announced->set();  // before the loop registered it: announced all the same
    quiet->set();
  }).join();
  loop.stop();
  Watchdog dog(loop);
  EXPECT_TRUE(loop.run());  // stopped with the announcing event still active
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(announced->async().active());
  EXPECT_FALSE(quiet->async().active());
  std::thread([&] { announced.reset(); }).join();
  EXPECT_FALSE(loop.run());  // the loop tore the announcement down: nothing keeps it alive
  std::thread([&] { quiet.reset(); }).join();
  EXPECT_FALSE(loop.run());
  dog.disarm();
  EXPECT_FALSE(dog.fired());
  EXPECT_EQ(calls, 1);
}

// A stopped LoopThread refuses posts; an event made for it afterwards still works for waiters and
// its fd, on_set just never runs, and nothing leaks (ASan) when it and the thread are destroyed.
TEST(WaitableEventAnyThread, MadeForAStoppedLoopThread) {
  auto thread = std::make_unique<evcxx::LoopThread>("we-stop");
  thread->stop();
  thread->join();
  int calls = 0;
  {
    evcxx::WaitableEvent event(thread->loop(), [&] { ++calls; });
    const int fd = event.fd();
    std::thread([&] { event.set(); }).join();
    EXPECT_TRUE(event.wait_for(0s));
    EXPECT_TRUE(readable(fd));
  }
  evcxx::WaitableEvent survivor(thread->loop(), [&] { ++calls; });
  survivor.set();
  thread.reset();  // the Loop dies with the event's registration still queued
  EXPECT_TRUE(survivor.is_set());
  EXPECT_THROW(survivor.async().start(), std::logic_error);  // detached, as after any Loop death
  survivor.clear();
  EXPECT_FALSE(survivor.wait_for(1ms));
  EXPECT_EQ(calls, 0);
}

// --- memory ordering ---------------------------------------------------------------------------

// Plain (non-atomic) writes made before set() are visible after wait() returned, after is_set()
// returned true, and in on_set. TSan reports a data race if any of these lacked its edge.
TEST(WaitableEventOrdering, WritesBeforeSetAreVisibleToWaitIsSetAndOnSet) {
  constexpr int kRounds = 200;
  evcxx::LoopThread thread("we-order");
  for (int round = 0; round < kRounds; ++round) {
    struct Payload {
      int number = 0;
      std::vector<int> list;
    };
    auto payload = std::make_unique<Payload>();
    int seen_in_on_set = -1;  // written by on_set, read here after `reported`
    evcxx::WaitableEvent reported;
    auto event = std::make_unique<evcxx::WaitableEvent>(thread.loop(), [&] {
      seen_in_on_set = payload->number + static_cast<int>(payload->list.size());
      reported.set();
    });
    std::thread setter([&] {
      payload->number = round;
      payload->list.assign(3, round);
      event->set();
    });
    switch (round % 2) {
      case 0:
        event->wait();
        break;
      default:
        while (!event->is_set()) {
        }
        break;
    }
    EXPECT_EQ(payload->number, round);
    EXPECT_EQ(payload->list.size(), 3u);
    ASSERT_TRUE(reported.wait_for(kPatience));
    EXPECT_EQ(seen_in_on_set, round + 3);
    setter.join();
    event.reset();
  }
}

// An announcing event holds the loop exactly like one active watcher: one unref() lets run()
// return, whether the event was made on the loop thread or elsewhere.
TEST(WaitableEventLoop, AnnouncementHoldsOneReference) {
  evcxx::Loop loop;
  evcxx::WaitableEvent here(loop, [] {});
  ASSERT_TRUE(here.async().active());
  loop.unref();
  Watchdog dog(loop);
  EXPECT_FALSE(loop.run());
  loop.ref();
  std::unique_ptr<evcxx::WaitableEvent> elsewhere;
  std::thread([&] { elsewhere = std::make_unique<evcxx::WaitableEvent>(loop, [] {}); }).join();
  loop.unref();
  loop.unref();
  EXPECT_FALSE(loop.run());  // registered it, and two references are all it has
  EXPECT_TRUE(elsewhere->async().active());
  loop.ref();
  loop.ref();
  dog.disarm();
  EXPECT_FALSE(dog.fired());
}

// on_set destroys its event and runs the loop again while the event's registration (made outside
// run(), completed early by async()) is still queued: the block is freed once, after on_set.
TEST(WaitableEventLoop, OnSetDestroysItsEventAndRunsTheLoopAgain) {
  evcxx::Loop loop;
  int calls = 0;
  std::unique_ptr<evcxx::WaitableEvent> event;
  event = std::make_unique<evcxx::WaitableEvent>(loop, [&] {
    ++calls;
    event.reset();
    loop.run(evcxx::Run::nowait);  // runs the queued registration of the dead event
  });
  evcxx::Async& announcer = event->async();
  ASSERT_TRUE(announcer.active());
  event->set();
  announcer.invoke();  // on_set now, before the loop ran the registration
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(event, nullptr);
  EXPECT_FALSE(loop.run());
  EXPECT_EQ(calls, 1);
}
