// The queue behind Loop::post(), driven directly so that lanes, segment recycling and the wake-up
// protocol are all exercised. The "loop" here is a thread that
// waits for wake-ups (coalesced, like ev_async) and runs a batch for each.
#include "task_queue.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

namespace {

using evcxx::detail::TaskQueue;
using namespace std::chrono_literals;

constexpr auto kGenerous = 60s;

// Posts a callable the way Loop::post() does.
template <class F>
bool push(TaskQueue& queue, F task) {
  using Fn = F;
  static_assert(evcxx::detail::task_fits_inline<Fn>);
  return queue.push(evcxx::detail::inline_task_ops<Fn>, &task);
}

// Counts wake-ups and lets a consumer wait for one, like an ev_async.
struct Waker {
  static void wake(void* self) noexcept {
    auto& w = *static_cast<Waker*>(self);
    w.count.fetch_add(1);
    std::lock_guard<std::mutex> lock(w.mutex);
    w.pending = true;
    w.changed.notify_all();
  }
  // False if no wake-up came within the bound (a lost wake-up when work is queued).
  bool wait() {
    std::unique_lock<std::mutex> lock(mutex);
    if (!changed.wait_for(lock, kGenerous, [&] { return pending; })) return false;
    pending = false;
    return true;
  }
  std::atomic<int> count{0};
  std::mutex mutex;
  std::condition_variable changed;
  bool pending = false;
};

void ignore_errors(void*, std::exception_ptr) noexcept {}

// Checks per-producer order on the consumer thread.
struct Order {
  explicit Order(std::size_t producers) : next(producers, 0) {}
  void seen(std::size_t producer, std::size_t seq) {
    if (seq != next[producer]) ++wrong;
    next[producer] = seq + 1;
    ++total;
  }
  std::vector<std::size_t> next;
  std::size_t wrong = 0;
  std::size_t total = 0;
};

TEST(TaskQueue, OneWakeUpPerBatch) {
  Waker waker;
  TaskQueue queue(&Waker::wake, &waker);
  int ran = 0;
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(push(queue, [&ran] { ++ran; }));
  EXPECT_EQ(waker.count.load(), 1);  // only the first post found the consumer asleep
  queue.run_batch(&ignore_errors, nullptr);
  EXPECT_EQ(ran, 1000);
  EXPECT_EQ(waker.count.load(), 1);  // nothing left: it went back to sleep without a wake-up
  ASSERT_TRUE(push(queue, [&ran] { ++ran; }));
  EXPECT_EQ(waker.count.load(), 2);
  queue.run_batch(&ignore_errors, nullptr);
  EXPECT_EQ(ran, 1001);
}

TEST(TaskQueue, TasksPostedByABatchRunInTheNextAndAskForIt) {
  Waker waker;
  TaskQueue queue(&Waker::wake, &waker);
  std::vector<int> order;
  for (int i = 0; i < 700; ++i) {  // several segments
    ASSERT_TRUE(push(queue, [&, i] {
      order.push_back(0);
      if (i == 0) push(queue, [&] { order.push_back(1); });
    }));
  }
  const int wakes = waker.count.load();
  queue.run_batch(&ignore_errors, nullptr);
  EXPECT_EQ(order.size(), 700u);
  EXPECT_GT(waker.count.load(), wakes) << "the batch must ask for the next one";
  queue.run_batch(&ignore_errors, nullptr);
  ASSERT_EQ(order.size(), 701u);
  EXPECT_EQ(order.back(), 1);
}

TEST(TaskQueue, KeepsFifoPerProducerWhileTheConsumerRuns) {
  constexpr std::size_t kProducers = 3;
  constexpr std::size_t kPerProducer = 20000;
  Waker waker;
  TaskQueue queue(&Waker::wake, &waker);
  Order order(kProducers);
  std::atomic<bool> done{false};
  std::thread consumer([&] {
    while (order.total < kProducers * kPerProducer) {
      if (!waker.wait()) return;  // lost wake-up: the check below fails
      queue.run_batch(&ignore_errors, nullptr);
    }
    done = true;
  });
  std::vector<std::thread> producers;
  for (std::size_t p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      for (std::size_t i = 0; i < kPerProducer; ++i) {
        ASSERT_TRUE(push(queue, [&order, p, i] { order.seen(p, i); }));
      }
    });
  }
  for (auto& t : producers) t.join();
  consumer.join();
  EXPECT_TRUE(done.load());
  EXPECT_EQ(order.total, kProducers * kPerProducer);
  EXPECT_EQ(order.wrong, 0u);
}

TEST(TaskQueue, AStreamThatStopsMidSegmentRunsToItsLastTask) {
  // A consumer that caught up with a streaming producer runs whole segments only: the tail of a
  // stream, in a segment the producer never finishes, must still run, whatever its length.
  Waker waker;
  TaskQueue queue(&Waker::wake, &waker);
  std::atomic<bool> stop{false};
  std::thread consumer([&] {
    while (!stop.load()) {
      if (!waker.wait()) return;
      queue.run_batch(&ignore_errors, nullptr);
    }
  });
  std::atomic<std::size_t> ran{0};
  std::size_t posted = 0;
  for (std::size_t length = 1; length <= 3 * TaskQueue::segment_slots + 1; length += 7) {
    for (std::size_t i = 0; i < length; ++i) {
      ASSERT_TRUE(push(queue, [&ran] { ran.fetch_add(1, std::memory_order_release); }));
    }
    posted += length;
    const auto deadline = std::chrono::steady_clock::now() + kGenerous;
    while (ran.load(std::memory_order_acquire) != posted &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::yield();
    }
    ASSERT_EQ(ran.load(), posted) << "the last " << length << "-task stream never finished";
  }
  stop = true;
  push(queue, [] {});
  consumer.join();
}

TEST(TaskQueue, UnderStressNoWakeUpIsLost) {
  // Producers that pause now and then, so the consumer keeps going to sleep and being woken.
  constexpr std::size_t kProducers = 4;
  constexpr std::size_t kPerProducer = 30000;
  Waker waker;
  TaskQueue queue(&Waker::wake, &waker);
  Order order(kProducers);
  std::thread consumer([&] {
    while (order.total < kProducers * kPerProducer) {
      if (!waker.wait()) return;
      queue.run_batch(&ignore_errors, nullptr);
    }
  });
  std::vector<std::thread> producers;
  for (std::size_t p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      for (std::size_t i = 0; i < kPerProducer; ++i) {
        push(queue, [&order, p, i] { order.seen(p, i); });
        if (i % 1000 == 0) std::this_thread::yield();  // vary the interleavings
      }
    });
  }
  for (auto& t : producers) t.join();
  consumer.join();
  EXPECT_EQ(order.total, kProducers * kPerProducer);
  EXPECT_EQ(order.wrong, 0u);
}

// Its move into the queue blocks until released: a producer stalled between claim and publish.
struct StallingTask {
  StallingTask(std::atomic<bool>* stalled, std::atomic<bool>* release, int* ran)
      : stalled(stalled), release(release), ran(ran) {}
  StallingTask(StallingTask&& other) noexcept
      : stalled(other.stalled), release(other.release), ran(other.ran) {
    stalled->store(true);
    while (!release->load()) std::this_thread::yield();
  }
  void operator()() const { ++*ran; }
  std::atomic<bool>* stalled;
  std::atomic<bool>* release;
  int* ran;
};

TEST(TaskQueue, AProducerStalledMidPostWakesTheConsumerWhenItPublishes) {
  Waker waker;
  TaskQueue queue(&Waker::wake, &waker);
  int ran = 0;
  ASSERT_TRUE(push(queue, [&ran] { ++ran; }));  // wakes the consumer, which is now "awake"
  ASSERT_EQ(waker.count.load(), 1);
  std::atomic<bool> stalled{false};
  std::atomic<bool> release{false};
  std::thread producer([&] { push(queue, StallingTask(&stalled, &release, &ran)); });
  while (!stalled.load()) std::this_thread::yield();
  queue.run_batch(&ignore_errors, nullptr);  // runs the first; finds the second claimed only
  EXPECT_EQ(ran, 1);
  EXPECT_EQ(waker.count.load(), 1);  // nothing to wake for yet: the consumer now sleeps
  release = true;
  producer.join();
  EXPECT_EQ(waker.count.load(), 2);  // the stalled producer published and woke it
  queue.run_batch(&ignore_errors, nullptr);
  EXPECT_EQ(ran, 2);
}

TEST(TaskQueue, ExceptionsGoToTheHandlerAndTheBatchGoesOn) {
  Waker waker;
  TaskQueue queue(&Waker::wake, &waker);
  int ran = 0;
  int errors = 0;
  push(queue, [] { throw std::runtime_error("one"); });
  push(queue, [&ran] { ++ran; });
  push(queue, [] { throw std::logic_error("two"); });
  queue.run_batch([](void* count, std::exception_ptr) noexcept { ++*static_cast<int*>(count); },
                  &errors);
  EXPECT_EQ(errors, 2);
  EXPECT_EQ(ran, 1);
}

TEST(TaskQueue, CloseRefusesNewTasksAndReportsDrained) {
  Waker waker;
  TaskQueue queue(&Waker::wake, &waker);
  int ran = 0;
  for (int i = 0; i < 300; ++i) ASSERT_TRUE(push(queue, [&ran] { ++ran; }));
  EXPECT_FALSE(queue.closed_and_drained());
  const int wakes = waker.count.load();
  queue.close();
  EXPECT_GT(waker.count.load(), wakes);  // the consumer is told
  EXPECT_FALSE(push(queue, [&ran] { ran += 1000; }));
  EXPECT_FALSE(queue.closed_and_drained());  // accepted tasks are still queued
  while (!queue.closed_and_drained()) queue.run_batch(&ignore_errors, nullptr);
  EXPECT_EQ(ran, 300);
}

TEST(TaskQueue, QueuedTasksAreDestroyedNotRunWithTheQueue) {
  auto live = std::make_shared<int>(0);
  int ran = 0;
  {
    Waker waker;
    TaskQueue queue(&Waker::wake, &waker);
    for (int i = 0; i < 1000; ++i) {
      push(queue, [&ran, keep = live] { ++ran; });
    }
    queue.run_batch(&ignore_errors, nullptr);  // some run...
    for (int i = 0; i < 1000; ++i) {
      push(queue, [&ran, keep = live] { ++ran; });  // ...and these never do
    }
  }
  EXPECT_EQ(ran, 1000);
  EXPECT_EQ(live.use_count(), 1);
}

TEST(TaskQueue, AThreadThatStartsPostingWakesASleepingConsumer) {
  Waker waker;
  TaskQueue queue(&Waker::wake, &waker);
  int ran = 0;
  ASSERT_TRUE(push(queue, [&ran] { ++ran; }));
  queue.run_batch(&ignore_errors, nullptr);  // runs it, then goes to sleep
  const int wakes = waker.count.load();
  std::thread newcomer([&] { push(queue, [&ran] { ++ran; }); });  // registers a new lane
  newcomer.join();
  EXPECT_EQ(waker.count.load(), wakes + 1);
  queue.run_batch(&ignore_errors, nullptr);
  EXPECT_EQ(ran, 2);
}

// Segments move between lanes, and positions count per lane: a reused segment's old sequence
// numbers must not pass for another lane's. (They once did, and a lingering consumer spun on a
// "published" slot it could not run.)
TEST(TaskQueue, ASegmentReusedByAnotherLaneHoldsNoStaleTask) {
  Waker waker;
  TaskQueue queue(&Waker::wake, &waker);
  std::atomic<int> ran{0};
  constexpr int kFirst = static_cast<int>(TaskQueue::segment_slots) + 1;  // into a 2nd segment
  std::thread first([&] {
    for (int i = 0; i < kFirst; ++i) push(queue, [&ran] { ++ran; });
  });
  first.join();
  queue.run_batch(&ignore_errors, nullptr);  // frees the first segment; a big batch: it lingers
  ASSERT_EQ(ran.load(), kFirst);
  std::thread second([&] { push(queue, [&ran] { ++ran; }); });  // its lane reuses that segment
  second.join();
  queue.run_batch(&ignore_errors, nullptr);  // must return, having run exactly one more
  EXPECT_EQ(ran.load(), kFirst + 1);
}

// A lane registered while a batch runs joins the next batch. (A consumer lingering over the new
// lane list once spun on the newcomer's task while running only the old list.)
TEST(TaskQueue, ALaneRegisteredDuringABatchJoinsTheNext) {
  Waker waker;
  TaskQueue queue(&Waker::wake, &waker);
  std::atomic<int> ran{0};
  std::thread first([&] {
    for (int i = 0; i < 99; ++i) push(queue, [&ran] { ++ran; });
    push(queue, [&] {  // runs on the consumer: a new thread posts meanwhile
      ++ran;
      std::thread newcomer([&] { push(queue, [&ran] { ++ran; }); });
      newcomer.join();
    });
  });
  first.join();
  const int wakes = waker.count.load();
  queue.run_batch(&ignore_errors, nullptr);
  EXPECT_EQ(ran.load(), 100);
  EXPECT_GT(waker.count.load(), wakes);  // it asked for the next batch
  queue.run_batch(&ignore_errors, nullptr);
  EXPECT_EQ(ran.load(), 101);
}

TEST(TaskQueue, LanesOfExitedThreadsAreDroppedOnceRun) {
  Waker waker;
  TaskQueue queue(&Waker::wake, &waker);
  std::atomic<int> ran{0};
  for (int round = 0; round < 3; ++round) {
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
      threads.emplace_back([&] {
        for (int i = 0; i < 100; ++i) push(queue, [&ran] { ran.fetch_add(1); });
      });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(queue.lane_count(), 8u);
    queue.run_batch(&ignore_errors, nullptr);  // runs them and drops the exited threads' lanes
    queue.run_batch(&ignore_errors, nullptr);
    EXPECT_EQ(queue.lane_count(), 0u);
  }
  EXPECT_EQ(ran.load(), 3 * 8 * 100);
}

TEST(TaskQueue, OneThreadPostingToManyQueuesKeepsEachInOrder) {
  Waker waker;
  std::vector<std::unique_ptr<TaskQueue>> queues;
  for (int q = 0; q < 20; ++q) queues.push_back(std::make_unique<TaskQueue>(&Waker::wake, &waker));
  std::vector<std::vector<int>> seen(queues.size());
  for (int i = 0; i < 200; ++i) {
    for (std::size_t q = 0; q < queues.size(); ++q) {
      push(*queues[q], [&seen, q, i] { seen[q].push_back(i); });
    }
  }
  for (std::size_t q = 0; q < queues.size(); ++q) {
    queues[q]->run_batch(&ignore_errors, nullptr);
    ASSERT_EQ(seen[q].size(), 200u);
    for (int i = 0; i < 200; ++i) EXPECT_EQ(seen[q][i], i);
  }
  queues.clear();  // this thread's cache still names them: a new queue must not be confused
  TaskQueue fresh(&Waker::wake, &waker);
  int ran = 0;
  push(fresh, [&ran] { ++ran; });
  fresh.run_batch(&ignore_errors, nullptr);
  EXPECT_EQ(ran, 1);
}

}  // namespace
