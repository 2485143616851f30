#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <evcxx/loop.hpp>
#include <evcxx/prepare.hpp>
#include <evcxx/signal.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "support.hpp"

using evcxx::Signal;
using evcxx_test::Watchdog;

namespace {

void expect_logic_error_mentioning(const std::function<void()>& f, const std::string& words) {
  try {
    f();
    ADD_FAILURE() << "no std::logic_error";
  } catch (const std::logic_error& e) {
    EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(Signal, RaisedSignalRunsTheCallbackOnTheLoopThread) {
  evcxx::Loop loop;
  int calls = 0;
  std::thread::id callback_thread;
  Signal s(loop, SIGUSR1, [&] {
    ++calls;
    callback_thread = std::this_thread::get_id();
    s.stop();
  });
  EXPECT_TRUE(s.active());
  EXPECT_EQ(s.signum(), SIGUSR1);
  ASSERT_EQ(::raise(SIGUSR1), 0);
  EXPECT_EQ(calls, 0);  // the handler only records it; the callback runs in run()
  Watchdog dog(loop, std::chrono::seconds(30));
  EXPECT_FALSE(loop.run());
  EXPECT_FALSE(dog.fired());
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(callback_thread, std::this_thread::get_id());
}

// kill() from another thread while the loop waits: only the signal can end the wait.
void expect_signal_from_another_thread_wakes_a_waiting_loop(evcxx::LoopFlags flags) {
  evcxx::Loop loop(flags);
  std::promise<void> waiting;
  bool first = true;
  evcxx::Prepare about_to_wait(loop, [&] {
    if (first) waiting.set_value();
    first = false;
  });
  int calls = 0;
  Signal s(loop, SIGUSR2, [&] {
    ++calls;
    s.stop();
    about_to_wait.stop();
  });
  // The helper threads block the signal, so the process-directed kill() reaches the loop thread,
  // as libev's manual advises for threaded programs.
  sigset_t usr2;
  sigset_t previous;
  sigemptyset(&usr2);
  sigaddset(&usr2, SIGUSR2);
  ASSERT_EQ(::pthread_sigmask(SIG_BLOCK, &usr2, &previous), 0);
  std::thread sender([&] {
    waiting.get_future().wait();  // the loop is about to wait
    ::kill(::getpid(), SIGUSR2);
  });
  Watchdog dog(loop, std::chrono::seconds(30));
  ASSERT_EQ(::pthread_sigmask(SIG_SETMASK, &previous, nullptr), 0);
  loop.run();
  sender.join();
  EXPECT_FALSE(dog.fired());
  EXPECT_EQ(calls, 1);
}

TEST(Signal, SignalFromAnotherThreadWakesAWaitingLoop) {
#if defined(__SANITIZE_THREAD__)
  // ThreadSanitizer defers a signal handler to the thread's next intercepted call; one that
  // arrives as the loop thread enters epoll_wait() waits there until something else wakes it
  // (seen about once in 30 runs). The signalfd variant below covers this tree.
  GTEST_SKIP() << "ThreadSanitizer delays handlers of signals that arrive on entry to a wait";
#endif
  expect_signal_from_another_thread_wakes_a_waiting_loop(evcxx::LoopFlags());
}

TEST(Signal, SignalFromAnotherThreadWakesAWaitingSignalfdLoop) {
  expect_signal_from_another_thread_wakes_a_waiting_loop(evcxx::LoopFlag::signalfd);
}

TEST(Signal, EveryWatcherOfTheSignalOnTheOwningLoopRuns) {
  evcxx::Loop loop;
  int first = 0;
  int second = 0;
  Signal a(loop, SIGUSR1, [&] { ++first; });
  Signal b(loop, SIGUSR1, [&] { ++second; });
  ::raise(SIGUSR1);
  loop.run(evcxx::Run::once);
  EXPECT_EQ(first, 1);
  EXPECT_EQ(second, 1);
}

TEST(Signal, ASecondLoopIsALogicErrorUntilTheOwnerStops) {
  evcxx::Loop a;
  evcxx::Loop b;
  int a_calls = 0;
  int b_calls = 0;
  Signal on_a(a, SIGUSR1, [&] { ++a_calls; });
  expect_logic_error_mentioning([&] { Signal(b, SIGUSR1, [] {}); }, "another loop");
  Signal on_b(b, evcxx::deferred, SIGUSR1, [&] {
    ++b_calls;
    on_b.stop();
  });
  EXPECT_THROW(on_b.start(), std::logic_error);
  EXPECT_FALSE(on_b.active());
  EXPECT_TRUE(on_a.active());  // the owner is undisturbed

  on_a.stop();   // releases the signal...
  on_b.start();  // ...so the other loop can take it
  EXPECT_TRUE(on_b.active());
  EXPECT_THROW(on_a.start(), std::logic_error);  // and now the first loop cannot
  ::raise(SIGUSR1);
  Watchdog dog(b, std::chrono::seconds(30));
  b.run();
  EXPECT_FALSE(dog.fired());
  EXPECT_EQ(b_calls, 1);
  a.run(evcxx::Run::nowait);
  EXPECT_EQ(a_calls, 0);
}

TEST(Signal, ReleasedOnlyWhenTheOwnersLastWatcherStops) {
  evcxx::Loop a;
  evcxx::Loop b;
  Signal one(a, SIGUSR1, [] {});
  Signal two(a, SIGUSR1, [] {});
  one.stop();
  EXPECT_THROW(Signal(b, SIGUSR1, [] {}), std::logic_error);
  two.stop();
  Signal taken(b, SIGUSR1, [] {});
  EXPECT_TRUE(taken.active());
}

TEST(Signal, ReleasedWhenTheOwningWatcherIsDestroyed) {
  evcxx::Loop a;
  evcxx::Loop b;
  {
    Signal owner(a, SIGUSR1, [] {});
  }
  Signal taken(b, SIGUSR1, [] {});
  EXPECT_TRUE(taken.active());
}

TEST(Signal, ReleasedWhenTheOwningLoopIsDestroyed) {
  auto a = std::make_unique<evcxx::Loop>();
  Signal orphan(*a, SIGUSR1, [] { ADD_FAILURE() << "detached watcher ran"; });
  a.reset();
  EXPECT_FALSE(orphan.active());
  EXPECT_THROW(orphan.start(), std::logic_error);
  evcxx::Loop b;
  int calls = 0;
  Signal taken(b, SIGUSR1, [&] {
    ++calls;
    taken.stop();
  });
  ::raise(SIGUSR1);
  Watchdog dog(b, std::chrono::seconds(30));
  b.run();
  EXPECT_FALSE(dog.fired());
  EXPECT_EQ(calls, 1);
}

TEST(Signal, LoopsOnTwoThreadsRaceForOneSignal) {
  const int signum = SIGRTMIN + 1;
  std::atomic<int> ready{0};
  std::atomic<int> won{0};
  std::atomic<int> refused{0};
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  auto contender = [&] {
    evcxx::Loop loop;
    Signal s(loop, evcxx::deferred, signum, [] {});
    ++ready;
    released.wait();
    try {
      s.start();
      ++won;
    } catch (const std::logic_error&) {
      ++refused;
    }
    // Hold on until both tried, so that the winner still owns the signal when the other tries.
    while (won + refused < 2) std::this_thread::yield();
  };
  std::thread t1(contender);
  std::thread t2(contender);
  while (ready < 2) std::this_thread::yield();
  release.set_value();
  t1.join();
  t2.join();
  EXPECT_EQ(won, 1);
  EXPECT_EQ(refused, 1);
}

TEST(Signal, SigchldBelongsToTheDefaultLoop) {
  evcxx::Loop other;
  expect_logic_error_mentioning([&] { Signal(other, SIGCHLD, [] {}); }, "default");
  evcxx::Loop& main_loop = evcxx::Loop::default_loop();
  expect_logic_error_mentioning([&] { Signal(other, SIGCHLD, [] {}); }, "default");

  int calls = 0;
  Signal child_exited(main_loop, SIGCHLD, [&] {
    ++calls;
    child_exited.stop();
  });
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) evcxx_test::exit_child(0);
  Watchdog dog(main_loop, std::chrono::seconds(30));
  main_loop.run();
  EXPECT_FALSE(dog.fired());
  EXPECT_EQ(calls, 1);
  ::waitpid(pid, nullptr, WNOHANG);  // libev's default loop may already have reaped it
}

TEST(Signal, BadSignalNumbersThrowBeforeLibevIsTouched) {
  evcxx::Loop loop;
  auto cb = [] {};
  for (int bad : {0, -1, NSIG, 1000}) {
    EXPECT_THROW(Signal(loop, bad, cb), std::out_of_range) << bad;
    EXPECT_THROW(Signal(loop, evcxx::deferred, bad, cb), std::out_of_range) << bad;
  }
  std::vector<int> uncatchable{SIGKILL, SIGSTOP};
  for (int reserved = SIGSYS + 1; reserved < SIGRTMIN; ++reserved) uncatchable.push_back(reserved);
  for (int bad : uncatchable) {
    EXPECT_THROW(Signal(loop, bad, cb), std::invalid_argument) << bad;
  }
  Signal s(loop, SIGUSR1, cb);
  EXPECT_THROW(s.set(0), std::out_of_range);
  EXPECT_THROW(s.set(SIGKILL), std::invalid_argument);
  EXPECT_TRUE(s.active());  // rejected changes change nothing
  EXPECT_EQ(s.signum(), SIGUSR1);
  Signal rt(loop, SIGRTMAX, cb);  // the whole real-time range is fine
  EXPECT_TRUE(rt.active());
}

TEST(Signal, SetMovesTheWatcherAndReleasesTheOldSignal) {
  evcxx::Loop a;
  evcxx::Loop b;
  int calls = 0;
  Signal s(a, SIGUSR1, [&] {
    ++calls;
    s.stop();
  });
  s.set(SIGUSR2);
  EXPECT_TRUE(s.active());
  EXPECT_EQ(s.signum(), SIGUSR2);
  Signal taken(b, SIGUSR1, [] {});  // released by the move
  EXPECT_THROW(Signal(b, SIGUSR2, [] {}), std::logic_error);
  ::raise(SIGUSR2);
  Watchdog dog(a, std::chrono::seconds(30));
  a.run();
  EXPECT_FALSE(dog.fired());
  EXPECT_EQ(calls, 1);
}

TEST(Signal, SetOntoASignalOwnedElsewhereThrowsAndLeavesItStopped) {
  evcxx::Loop a;
  evcxx::Loop b;
  Signal owner(a, SIGUSR1, [] {});
  Signal s(b, SIGUSR2, [] {});
  EXPECT_THROW(s.set(SIGUSR1), std::logic_error);
  EXPECT_FALSE(s.active());
  EXPECT_EQ(s.signum(), SIGUSR1);
  Signal taken(a, SIGUSR2, [] {});  // SIGUSR2 was released by the failed restart
  EXPECT_TRUE(taken.active());
}
