// The queue behind Loop::post(), driven directly with a tiny directory so that segment recycling,
// the overflow list and the wake-up protocol are all exercised. The "loop" here is a thread that
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
  for (std::size_t before : {10u, 700u}) {  // within the lock-free capacity, and beyond it
    Waker waker;
    TaskQueue queue(&Waker::wake, &waker, 2);  // 512 positions, then the overflow list
    std::vector<int> order;
    for (std::size_t i = 0; i < before; ++i) {
      ASSERT_TRUE(push(queue, [&, i] {
        order.push_back(0);
        if (i == 0) push(queue, [&] { order.push_back(1); });
      }));
    }
    const int wakes = waker.count.load();
    queue.run_batch(&ignore_errors, nullptr);
    EXPECT_EQ(order.size(), before) << before;
    EXPECT_GT(waker.count.load(), wakes) << "the batch must ask for the next one";
    queue.run_batch(&ignore_errors, nullptr);
    ASSERT_EQ(order.size(), before + 1) << before;
    EXPECT_EQ(order.back(), 1);
  }
}

TEST(TaskQueue, OverflowKeepsFifoPerProducerAndRecyclesSegments) {
  constexpr std::size_t kProducers = 3;
  constexpr std::size_t kPerProducer = 20000;
  Waker waker;
  TaskQueue queue(&Waker::wake, &waker, 2);
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

TEST(TaskQueue, OneSegmentDirectoryUnderStressLosesNoWakeUp) {
  // A single directory entry: every segment boundary waits for the consumer, so producers keep
  // switching between the lock-free path and the overflow list.
  constexpr std::size_t kProducers = 4;
  constexpr std::size_t kPerProducer = 30000;
  Waker waker;
  TaskQueue queue(&Waker::wake, &waker, 1);
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
  TaskQueue queue(&Waker::wake, &waker, 1);
  int ran = 0;
  for (int i = 0; i < 300; ++i) ASSERT_TRUE(push(queue, [&ran] { ++ran; }));  // some overflow
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
    TaskQueue queue(&Waker::wake, &waker, 1);
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

TEST(TaskQueue, RejectsADirectoryThatIsNotAPowerOfTwo) {
  Waker waker;
  EXPECT_THROW(TaskQueue(&Waker::wake, &waker, 3), std::invalid_argument);
  EXPECT_THROW(TaskQueue(&Waker::wake, &waker, 0), std::invalid_argument);
}

}  // namespace
