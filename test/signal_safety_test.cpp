// Async::send(), Loop::stop() and WaitableEvent::set()/clear() called from real signal handlers.

#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <new>
#include <thread>
#include <vector>

#include <evcxx/async.hpp>
#include <evcxx/loop.hpp>
#include <evcxx/waitable_event.hpp>

#include "counting_new.hpp"  // proves the signal-safe calls allocate nothing
#include "support.hpp"

using namespace std::chrono_literals;
using evcxx_test::kPatience;
using evcxx_test::readable;
using evcxx_test::ScopedSignalHandler;
using evcxx_test::Watchdog;

namespace {

std::atomic<evcxx::Async*> g_async{nullptr};
std::atomic<evcxx::Loop*> g_loop{nullptr};
std::atomic<evcxx::WaitableEvent*> g_event{nullptr};
std::atomic<int> g_handled{0};
thread_local int t_handled = 0;  // handlers run on this thread
volatile sig_atomic_t g_errno_clobbered = 0;

// Every handler here keeps errno as it found it, and notes if the evcxx call it made changed it.
template <class Fn>
void preserving_errno(Fn fn) {
  const int saved = errno;
  errno = EXDEV;
  fn();
  if (errno != EXDEV) g_errno_clobbered = 1;
  errno = saved;
  g_handled.fetch_add(1);
  ++t_handled;
}

void send_from_handler(int) {
  preserving_errno([] { g_async.load()->send(); });
}
void stop_from_handler(int) {
  preserving_errno([] { g_loop.load()->stop(); });
}
void set_from_handler(int) {
  preserving_errno([] { g_event.load()->set(); });
}
void clear_from_handler(int) {
  preserving_errno([] { g_event.load()->clear(); });
}
void toggle_from_handler(int) {
  static std::atomic<unsigned> calls{0};
  preserving_errno([] {
    if (calls.fetch_add(1) % 2 == 0) {
      g_event.load()->set();
    } else {
      g_event.load()->clear();
    }
  });
}

// Sends `signo` to the constructing thread once `loop` runs there (a posted task says so), after a
// moment that makes it likely the loop is blocked in its backend; the tests hold either way.
class SignalWhenRunning {
 public:
  SignalWhenRunning(evcxx::Loop& loop, int signo)
      : running_(loop), target_(::pthread_self()), thread_([this, signo] {
          running_.wait();
          std::this_thread::sleep_for(20ms);
          ::pthread_kill(target_, signo);
        }) {
    loop.post([this] { running_.set(); });
  }
  void join() { thread_.join(); }

 private:
  evcxx::WaitableEvent running_;
  const pthread_t target_;
  std::thread thread_;
};

// Points a global at an object for the handlers, and back at nothing afterwards.
template <class T>
class Publish {
 public:
  Publish(std::atomic<T*>& slot, T& object) : slot_(slot) { slot_.store(&object); }
  ~Publish() { slot_.store(nullptr); }
  Publish(const Publish&) = delete;
  Publish& operator=(const Publish&) = delete;

 private:
  std::atomic<T*>& slot_;
};

}  // namespace

// Each round a signal (to the loop thread, to the process, or raised by the signalling thread)
// makes its handler send(); the signaller waits for a callback that started after the send.
TEST(SignalSafety, AsyncSendFromSignalHandlersNeverLosesAWakeUp) {
  constexpr int kRounds = 600;
  evcxx::Loop loop;
  std::atomic<int> round{0};
  std::mutex mutex;
  std::condition_variable acknowledged_cv;
  int acknowledged = 0;  // guarded by mutex
  evcxx::Async async(loop, [&] {
    std::lock_guard<std::mutex> lock(mutex);
    acknowledged = round.load();
    acknowledged_cv.notify_all();
  });
  Publish<evcxx::Async> publish(g_async, async);
  ScopedSignalHandler handler(SIGUSR1, send_from_handler);
  const int handled_before = g_handled.load();
  const pthread_t loop_thread = pthread_self();
  std::atomic<int> lost{0};
  std::thread signaller([&] {
    for (int r = 1; r <= kRounds; ++r) {
      round.store(r);
      switch (r % 3) {
        case 0:
          ::pthread_kill(loop_thread, SIGUSR1);  // interrupts the blocked loop
          break;
        case 1:
          ::kill(::getpid(), SIGUSR1);  // any thread may take it
          break;
        default:
          ::raise(SIGUSR1);  // handled right here, on this thread
          break;
      }
      std::unique_lock<std::mutex> lock(mutex);
      if (!acknowledged_cv.wait_for(lock, kPatience, [&] { return acknowledged >= r; })) {
        ++lost;
        break;
      }
    }
    loop.stop();
  });
  Watchdog dog(loop, kPatience * 2);
  loop.run();
  dog.disarm();
  signaller.join();
  EXPECT_EQ(lost.load(), 0) << "a send() from a signal handler was not followed by a callback";
  EXPECT_FALSE(dog.fired());
  EXPECT_EQ(g_handled.load() - handled_before, kRounds);
  EXPECT_EQ(g_errno_clobbered, 0);
}

TEST(SignalSafety, StopFromASignalHandler) {
  evcxx::Loop loop;
  evcxx::Async never_sent(loop, [] {});  // would keep run() blocked forever
  Publish<evcxx::Loop> publish(g_loop, loop);
  ScopedSignalHandler handler(SIGUSR2, stop_from_handler);
  const int handled_before = g_handled.load();
  SignalWhenRunning signaller(loop, SIGUSR2);
  Watchdog dog(loop);
  EXPECT_TRUE(loop.run());
  dog.disarm();
  signaller.join();
  EXPECT_FALSE(dog.fired()) << "stop() from a signal handler did not stop run()";
  EXPECT_EQ(g_handled.load() - handled_before, 1);

  // Raised on the loop thread inside a callback: the loop stops after this iteration.
  int raiser_calls = 0;
  evcxx::Async raiser(loop, [&] {
    ++raiser_calls;
    ::raise(SIGUSR2);
  });
  raiser.send();
  Watchdog dog2(loop);
  EXPECT_TRUE(loop.run());
  dog2.disarm();
  EXPECT_FALSE(dog2.fired());
  EXPECT_EQ(raiser_calls, 1);
  EXPECT_EQ(g_errno_clobbered, 0);
}

TEST(SignalSafety, WaitableEventSetAndClearFromSignalHandlers) {
  evcxx::Loop loop;
  int on_set_calls = 0;
  evcxx::WaitableEvent event(loop, [&] {
    ++on_set_calls;
    loop.break_loop();
  });
  Publish<evcxx::WaitableEvent> publish(g_event, event);
  ScopedSignalHandler set_handler(SIGUSR1, set_from_handler);
  ScopedSignalHandler clear_handler(SIGUSR2, clear_from_handler);
  const int fd = event.fd();
  ASSERT_GE(fd, 0);
  const int handled_before = g_handled.load();

  std::atomic<bool> released{false};
  std::thread waiter([&] { released = event.wait_for(kPatience); });
  ::raise(SIGUSR1);
  waiter.join();
  EXPECT_TRUE(released.load());
  EXPECT_TRUE(event.is_set());
  EXPECT_TRUE(readable(fd));
  ::raise(SIGUSR1);  // idempotent
  EXPECT_TRUE(readable(fd));

  Watchdog dog(loop);
  EXPECT_TRUE(loop.run());  // on_set announced it and broke the loop
  dog.disarm();
  EXPECT_EQ(on_set_calls, 1);

  ::raise(SIGUSR2);
  EXPECT_FALSE(event.is_set());
  EXPECT_FALSE(readable(fd));
  ::raise(SIGUSR2);  // clearing a clear event never blocks
  EXPECT_FALSE(readable(fd));
  EXPECT_EQ(g_handled.load() - handled_before, 4);
  EXPECT_EQ(g_errno_clobbered, 0);
}

TEST(SignalSafety, SignalToTheBlockedLoopAnnouncesTheEvent) {
  evcxx::Loop loop;
  std::thread::id on_set_thread;
  evcxx::WaitableEvent event(loop, [&] {
    on_set_thread = std::this_thread::get_id();
    loop.break_loop();
  });
  Publish<evcxx::WaitableEvent> publish(g_event, event);
  ScopedSignalHandler handler(SIGUSR1, set_from_handler);
  SignalWhenRunning signaller(loop, SIGUSR1);
  Watchdog dog(loop);
  EXPECT_TRUE(loop.run());
  dog.disarm();
  signaller.join();
  EXPECT_FALSE(dog.fired());
  EXPECT_EQ(on_set_thread, std::this_thread::get_id());
  EXPECT_EQ(g_errno_clobbered, 0);
}

TEST(SignalSafety, SignalThatSetsTheEventReleasesTheInterruptedWaiter) {
  evcxx::Loop loop;
  evcxx::WaitableEvent event(loop);
  Publish<evcxx::WaitableEvent> publish(g_event, event);
  ScopedSignalHandler handler(SIGUSR1, set_from_handler);
  std::atomic<bool> waiting{false};
  std::atomic<bool> released{false};
  std::thread waiter([&] {
    waiting = true;
    event.wait();  // the handler runs on this very thread, inside the wait
    released = true;
  });
  while (!waiting.load()) std::this_thread::yield();
  std::this_thread::sleep_for(20ms);  // makes it likely the waiter is blocked; correct either way
  ASSERT_TRUE(evcxx_test::completes_within(kPatience, [&, t = waiter.native_handle()] {
    ::pthread_kill(t, SIGUSR1);
    while (!released.load()) std::this_thread::yield();
  }));
  waiter.join();
  EXPECT_TRUE(event.is_set());
  EXPECT_EQ(g_errno_clobbered, 0);
}

// A handler that sets or clears the event interrupts a thread that is itself in the middle of
// set()/clear() (and of bringing the fd in line); afterwards is_set() and the fd still agree.
TEST(SignalSafety, HandlersInterruptingSetAndClearKeepTheFdConsistent) {
  constexpr int kRounds = 20;
  evcxx::Loop loop;
  ScopedSignalHandler handler(SIGUSR1, toggle_from_handler);
  for (int round = 0; round < kRounds; ++round) {
    evcxx::WaitableEvent event(loop);
    const int fd = event.fd();
    ASSERT_GE(fd, 0);
    Publish<evcxx::WaitableEvent> publish(g_event, event);
    std::atomic<bool> stop{false};
    std::atomic<int> worker_handled{0};
    std::thread worker([&] {
      unsigned i = 0;
      // Keeps going until at least one handler interrupted it.
      while (!stop.load() || t_handled == 0) {
        if (++i % 2 == 0) {
          event.set();
        } else {
          event.clear();
        }
      }
      worker_handled = t_handled;
    });
    for (int s = 0; s < 200; ++s) {
      ::pthread_kill(worker.native_handle(), SIGUSR1);
      ::raise(SIGUSR1);  // and one on this thread, racing the worker
    }
    stop = true;
    worker.join();
    ASSERT_GE(worker_handled.load(), 1);
    ASSERT_EQ(event.is_set(), readable(fd)) << "round " << round;
    event.set();
    ASSERT_TRUE(readable(fd));
    event.clear();
    ASSERT_FALSE(readable(fd));
  }
  EXPECT_EQ(g_errno_clobbered, 0);
}

TEST(SignalSafety, CallsLeaveErrnoAlone) {
  evcxx::Loop loop;
  evcxx::Async async(loop, [] {});
  evcxx::WaitableEvent event(loop, [] {});
  ASSERT_GE(event.fd(), 0);  // so set()/clear() write and read it
  errno = EXDEV;
  async.send();
  EXPECT_EQ(errno, EXDEV);
  event.set();
  EXPECT_EQ(errno, EXDEV);
  event.set();
  EXPECT_EQ(errno, EXDEV);
  event.clear();
  EXPECT_EQ(errno, EXDEV);
  event.clear();
  EXPECT_EQ(errno, EXDEV);
  loop.stop();
  EXPECT_EQ(errno, EXDEV);
  EXPECT_TRUE(async.sent());
}

TEST(SignalSafety, SignalSafeCallsDoNotAllocate) {
  evcxx::Loop loop;
  evcxx::Async async(loop, [] {});
  evcxx::WaitableEvent event(loop, [] {});
  evcxx::WaitableEvent quiet(loop);
  ASSERT_GE(event.fd(), 0);
  const long before = evcxx_test::allocations_here;
  for (int i = 0; i < 100; ++i) {
    async.send();
    static_cast<void>(async.sent());
    event.set();
    event.set();
    static_cast<void>(event.is_set());
    event.clear();
    event.clear();
    quiet.set();
    quiet.clear();
    loop.stop();
  }
  EXPECT_EQ(evcxx_test::allocations_here, before);
  ::operator delete(::operator new(16));  // the counter works: it sees a real allocation
  EXPECT_GT(evcxx_test::allocations_here, before);
}

// A handler's send() interrupts a send() in progress on the same thread: no lock to deadlock on,
// and the wake-ups still arrive.
TEST(SignalSafety, SendInterruptedBySendFromAHandler) {
  evcxx::Loop loop;
  std::atomic<long> callbacks{0};
  evcxx::Async async(loop, [&] { ++callbacks; });
  Publish<evcxx::Async> publish(g_async, async);
  ScopedSignalHandler handler(SIGUSR1, send_from_handler);
  std::atomic<bool> stop{false};
  std::thread worker([&] {
    while (!stop.load()) async.send();
  });
  const int handled_before = g_handled.load();
  std::thread signaller([&] {
    for (int s = 0; s < 200; ++s) ::pthread_kill(worker.native_handle(), SIGUSR1);
    while (g_handled.load() == handled_before) std::this_thread::yield();
    stop = true;
    loop.stop();
  });
  Watchdog dog(loop);
  loop.run();
  dog.disarm();
  signaller.join();
  worker.join();
  EXPECT_FALSE(dog.fired());
  EXPECT_GT(g_handled.load(), handled_before);
  EXPECT_EQ(g_errno_clobbered, 0);
  // After all that, one more send still wakes the loop.
  const long seen = callbacks.load();
  std::thread([&] { async.send(); }).join();
  loop.run(evcxx::Run::once);
  EXPECT_GT(callbacks.load(), seen);
}
