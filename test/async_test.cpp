// evcxx::Async: cross-thread wake-ups, coalescing, and the watcher members it shares.

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include <evcxx/async.hpp>
#include <evcxx/loop.hpp>

#include "support.hpp"

using namespace std::chrono_literals;
using evcxx_test::Watchdog;

static_assert(evcxx_test::is_pinned_v<evcxx::Async>);

TEST(Async, ActiveOnConstructionUnlessDeferred) {
  evcxx::Loop loop;
  evcxx::Async started(loop, [] {});
  evcxx::Async deferred(loop, evcxx::deferred, [] {});
  EXPECT_TRUE(started.active());
  EXPECT_FALSE(deferred.active());
  EXPECT_EQ(&started.loop(), &loop);
  EXPECT_EQ(&deferred.loop(), &loop);
  EXPECT_TRUE(ev_is_active(started.native()));
  EXPECT_FALSE(ev_is_active(deferred.native()));

  deferred.start();
  EXPECT_TRUE(deferred.active());
  deferred.start();  // a no-op while active
  EXPECT_TRUE(deferred.active());
  deferred.stop();
  EXPECT_FALSE(deferred.active());
  deferred.stop();  // a no-op while inactive
  EXPECT_FALSE(deferred.active());
}

TEST(Async, ActiveAsyncKeepsRunAliveUntilStopped) {
  evcxx::Loop loop;
  std::thread::id callback_thread;
  evcxx::Async async(loop, [&] {
    callback_thread = std::this_thread::get_id();
    async.stop();
  });
  std::thread sender([&] { async.send(); });
  Watchdog dog(loop);
  EXPECT_FALSE(loop.run());
  dog.disarm();
  sender.join();
  EXPECT_FALSE(dog.fired());
  EXPECT_EQ(callback_thread, std::this_thread::get_id());  // on the loop thread
}

TEST(Async, DeferredAsyncStartedLaterWorks) {
  evcxx::Loop loop;
  int calls = 0;
  evcxx::Async async(loop, evcxx::deferred, [&] {
    ++calls;
    async.stop();
  });
  EXPECT_FALSE(loop.run());  // inactive: keeps nothing alive
  async.start();
  async.send();
  EXPECT_FALSE(loop.run());
  EXPECT_EQ(calls, 1);
}

// Every send() is followed by a callback that starts after it. Each sender publishes a round
// number, sends, and waits for a callback that has read that number; a lost wake-up leaves a
// sender waiting, which the deadline turns into a failure.
TEST(AsyncConcurrency, ManySendersNeverLoseAWakeUp) {
  constexpr int kSenders = 8;
  constexpr int kRounds = 3000;
  evcxx::Loop loop;
  std::array<std::atomic<int>, kSenders> requested{};
  std::mutex mutex;
  std::condition_variable acknowledged_cv;
  std::array<int, kSenders> acknowledged{};  // guarded by mutex
  long callbacks = 0;                        // loop thread
  evcxx::Async async(loop, [&] {
    ++callbacks;
    std::lock_guard<std::mutex> lock(mutex);
    for (int i = 0; i < kSenders; ++i) acknowledged[i] = requested[i].load();
    acknowledged_cv.notify_all();
  });
  std::atomic<int> lost{0};
  std::atomic<int> finished{0};
  std::vector<std::thread> senders;
  for (int s = 0; s < kSenders; ++s) {
    senders.emplace_back([&, s] {
      for (int round = 1; round <= kRounds; ++round) {
        requested[s].store(round);
        async.send();
        std::unique_lock<std::mutex> lock(mutex);
        if (!acknowledged_cv.wait_for(lock, evcxx_test::kPatience,
                                      [&] { return acknowledged[s] >= round; })) {
          ++lost;
          break;
        }
      }
      if (++finished == kSenders) loop.stop();
    });
  }
  Watchdog dog(loop, evcxx_test::kPatience * 2);
  loop.run();
  dog.disarm();
  for (auto& t : senders) t.join();
  EXPECT_EQ(lost.load(), 0) << "a send() was not followed by a callback";
  EXPECT_FALSE(dog.fired());
  EXPECT_GE(callbacks, 1);
  EXPECT_LE(callbacks, long{kSenders} * kRounds);  // coalesced, never more than the sends
}

// Senders on many threads take turns, so no other thread's send can cover for a lost one: each
// send must produce its own callback.
TEST(AsyncConcurrency, SendersTakingTurnsEachGetACallback) {
  constexpr int kSenders = 4;
  constexpr int kRounds = 4000;
  evcxx::Loop loop;
  std::mutex mutex;
  std::condition_variable changed;
  int turn = 0;           // guarded by mutex: the round whose sender may send now
  int acknowledged = -1;  // guarded by mutex: the last round a callback saw
  evcxx::Async async(loop, [&] {
    std::lock_guard<std::mutex> lock(mutex);
    acknowledged = turn;
    changed.notify_all();
  });
  std::atomic<int> lost{0};
  std::vector<std::thread> senders;
  for (int s = 0; s < kSenders; ++s) {
    senders.emplace_back([&, s] {
      std::unique_lock<std::mutex> lock(mutex);
      for (;;) {
        if (!changed.wait_for(lock, evcxx_test::kPatience,
                              [&] { return turn >= kRounds || lost || turn % kSenders == s; })) {
          ++lost;
        }
        if (turn >= kRounds || lost) break;
        const int mine = turn;
        lock.unlock();
        async.send();
        lock.lock();
        if (!changed.wait_for(lock, evcxx_test::kPatience, [&] { return acknowledged >= mine; })) {
          ++lost;
          changed.notify_all();
          break;
        }
        ++turn;
        changed.notify_all();
      }
    });
  }
  std::thread stopper([&] {
    for (auto& t : senders) t.join();
    loop.stop();
  });
  Watchdog dog(loop, evcxx_test::kPatience * 2);
  loop.run();
  dog.disarm();
  stopper.join();
  EXPECT_EQ(lost.load(), 0) << "a send() was not followed by a callback";
  EXPECT_FALSE(dog.fired());
}

// Free-running senders: sends coalesce (fewer callbacks than sends), and the callback that follows
// the very last send sees every send counted.
TEST(AsyncConcurrency, FreeRunningSendersCoalesceAndTheLastSendIsDelivered) {
  constexpr int kSenders = 4;
  constexpr int kSends = 10000;
  constexpr long kTotal = long{kSenders} * kSends;
  evcxx::Loop loop;
  std::atomic<long> sends{0};
  long callbacks = 0;
  evcxx::Async async(loop, [&] {
    ++callbacks;
    if (sends.load() == kTotal) async.stop();
  });
  std::vector<std::thread> senders;
  for (int s = 0; s < kSenders; ++s) {
    senders.emplace_back([&] {
      for (int i = 0; i < kSends; ++i) {
        sends.fetch_add(1);
        async.send();
      }
    });
  }
  Watchdog dog(loop);
  EXPECT_FALSE(loop.run());  // returns only after a callback saw every send
  dog.disarm();
  for (auto& t : senders) t.join();
  EXPECT_FALSE(dog.fired()) << "the last send() was never delivered";
  EXPECT_GE(callbacks, 1);
  EXPECT_LE(callbacks, kTotal);
}

TEST(AsyncConcurrency, BurstOfSendsBeforeRunGivesExactlyOneCallback) {
  evcxx::Loop loop;
  int calls = 0;
  evcxx::Async async(loop, [&] { ++calls; });
  for (int i = 0; i < 1000; ++i) async.send();
  std::vector<std::thread> senders;
  for (int s = 0; s < 4; ++s) {
    senders.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) async.send();
    });
  }
  for (auto& t : senders) t.join();
  EXPECT_TRUE(async.sent());
  loop.run(evcxx::Run::nowait);
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(async.sent());
  loop.run(evcxx::Run::nowait);
  loop.run(evcxx::Run::nowait);
  EXPECT_EQ(calls, 1);
}

TEST(Async, SentIsTrueUntilTheLoopProcessesTheSend) {
  evcxx::Loop loop;
  bool sent_inside_callback = true;
  evcxx::Async async(loop, [&] { sent_inside_callback = async.sent(); });
  EXPECT_FALSE(async.sent());
  std::thread([&] { async.send(); }).join();
  EXPECT_TRUE(async.sent());
  loop.run(evcxx::Run::nowait);
  EXPECT_FALSE(async.sent());
  EXPECT_FALSE(sent_inside_callback);  // cleared before the callback starts
  std::atomic<bool> seen_from_other_thread{false};
  async.send();
  std::thread([&] { seen_from_other_thread = async.sent(); }).join();
  EXPECT_TRUE(seen_from_other_thread.load());
}

TEST(Async, SendWhileStoppedDeliversNothing) {
  evcxx::Loop loop;
  int calls = 0;
  evcxx::Async async(loop, evcxx::deferred, [&] { ++calls; });
  async.send();
  loop.run(evcxx::Run::nowait);
  EXPECT_EQ(calls, 0);
  async.start();  // an earlier send is not replayed
  loop.run(evcxx::Run::nowait);
  EXPECT_EQ(calls, 0);
  async.send();
  async.stop();  // stopping drops a send not yet processed
  async.start();
  loop.run(evcxx::Run::nowait);
  EXPECT_EQ(calls, 0);
  async.send();
  loop.run(evcxx::Run::nowait);
  EXPECT_EQ(calls, 1);
}

TEST(Async, EmptyCallbackIsHarmless) {
  evcxx::Loop loop;
  evcxx::Async async(loop, {});
  async.send();
  loop.run(evcxx::Run::nowait);
  EXPECT_NO_THROW(async.invoke());
  EXPECT_TRUE(async.active());
}

TEST(AsyncPriority, DefaultIsZeroAndRangeIsChecked) {
  evcxx::Loop loop;
  evcxx::Async async(loop, evcxx::deferred, [] {});
  EXPECT_EQ(async.priority(), 0);
  EXPECT_THROW(async.set_priority(EV_MAXPRI + 1), std::out_of_range);
  EXPECT_THROW(async.set_priority(EV_MINPRI - 1), std::out_of_range);
  EXPECT_THROW(async.set_priority(1000), std::out_of_range);
  EXPECT_EQ(async.priority(), 0);
  async.set_priority(EV_MAXPRI);
  EXPECT_EQ(async.priority(), EV_MAXPRI);
  async.set_priority(EV_MINPRI);
  EXPECT_EQ(async.priority(), EV_MINPRI);
}

TEST(AsyncPriority, ChangingItWhileActiveOrPendingIsALogicError) {
  evcxx::Loop loop;
  evcxx::Async async(loop, [] {});
  EXPECT_THROW(async.set_priority(1), std::logic_error);
  EXPECT_EQ(async.priority(), 0);
  // Out of range wins over active: the argument is checked first.
  EXPECT_THROW(async.set_priority(EV_MAXPRI + 1), std::out_of_range);
  async.stop();
  async.feed();  // pending but inactive
  ASSERT_TRUE(async.pending());
  EXPECT_THROW(async.set_priority(1), std::logic_error);
  async.clear_pending();
  async.set_priority(1);
  EXPECT_EQ(async.priority(), 1);
  async.start();
  EXPECT_EQ(async.priority(), 1);  // kept across start
}

TEST(AsyncPriority, HigherPriorityCallbacksRunFirst) {
  evcxx::Loop loop;
  std::vector<int> order;
  evcxx::Async low(loop, evcxx::deferred, [&] { order.push_back(EV_MINPRI); });
  evcxx::Async mid(loop, evcxx::deferred, [&] { order.push_back(0); });
  evcxx::Async high(loop, evcxx::deferred, [&] { order.push_back(EV_MAXPRI); });
  low.set_priority(EV_MINPRI);
  high.set_priority(EV_MAXPRI);
  // Started in an order that differs from the priority order.
  low.start();
  high.start();
  mid.start();
  std::thread([&] {
    low.send();
    mid.send();
    high.send();
  }).join();
  loop.run(evcxx::Run::nowait);
  EXPECT_EQ(order, (std::vector<int>{EV_MAXPRI, 0, EV_MINPRI}));
}

TEST(Async, InvokeRunsTheCallbackNow) {
  evcxx::Loop loop;
  int calls = 0;
  evcxx::Async async(loop, evcxx::deferred, [&] { ++calls; });
  async.invoke();
  EXPECT_EQ(calls, 1);  // synchronous, even while stopped
  EXPECT_FALSE(async.pending());
  async.start();
  async.invoke();
  EXPECT_EQ(calls, 2);
  loop.run(evcxx::Run::nowait);
  EXPECT_EQ(calls, 2);  // invoke() queued nothing
}

TEST(Async, FeedMakesItPendingAndClearPendingDropsIt) {
  evcxx::Loop loop;
  int calls = 0;
  evcxx::Async async(loop, [&] { ++calls; });
  EXPECT_FALSE(async.pending());
  EXPECT_EQ(async.clear_pending(), 0);
  async.feed();
  EXPECT_TRUE(async.pending());
  EXPECT_EQ(async.clear_pending(), EV_ASYNC);
  EXPECT_FALSE(async.pending());
  loop.run(evcxx::Run::nowait);
  EXPECT_EQ(calls, 0);
  async.feed();
  loop.run(evcxx::Run::nowait);
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(async.pending());
}

TEST(Async, NativeIsTheLibevWatcher) {
  evcxx::Loop loop;
  evcxx::Async async(loop, [] {});
  ev_async* raw = async.native();
  ASSERT_NE(raw, nullptr);
  EXPECT_FALSE(ev_async_pending(raw));
  async.send();
  EXPECT_TRUE(ev_async_pending(raw));
  const evcxx::Async& const_async = async;
  EXPECT_EQ(const_async.native(), raw);
  // Raw libev calls on it go through the same callback.
  int calls = 0;
  async.set_callback([&] { ++calls; });
  ev_async_send(loop.native(), raw);
  loop.run(evcxx::Run::nowait);
  EXPECT_EQ(calls, 1);
}

TEST(Async, SetCallbackReplacesItForTheNextEvent) {
  evcxx::Loop loop;
  std::vector<int> calls;
  evcxx::Async async(loop, [&] { calls.push_back(1); });
  async.send();
  loop.run(evcxx::Run::nowait);
  async.set_callback([&] { calls.push_back(2); });
  async.send();
  loop.run(evcxx::Run::nowait);
  EXPECT_EQ(calls, (std::vector<int>{1, 2}));
}
