// The platform layer (src/platform/) through its interface, whichever implementation CMake picked
// (EVCXX_PLATFORM): the wake-up descriptor, the futex-style wait and the heavy/light fence pair.
#include "platform/platform.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

#include "support.hpp"

namespace {

namespace platform = evcxx::detail::platform;
using evcxx_test::readable;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr auto kGenerous = 60s;

int open_descriptors() {
  int count = 0;
  for (int fd = 0; fd < 4096; ++fd) {
    if (::fcntl(fd, F_GETFD) >= 0) ++count;
  }
  return count;
}

void expect_readable_exactly_while_signalled(int wakeup) {
  EXPECT_FALSE(readable(wakeup));
  platform::wakeup_signal(wakeup);
  EXPECT_TRUE(readable(wakeup));
  platform::wakeup_signal(wakeup);  // repeated: still one readable state
  EXPECT_TRUE(readable(wakeup));
  platform::wakeup_drain(wakeup);
  EXPECT_FALSE(readable(wakeup));
  platform::wakeup_drain(wakeup);  // on an empty descriptor: returns at once
  EXPECT_FALSE(readable(wakeup));
  platform::wakeup_signal(wakeup);
  EXPECT_TRUE(readable(wakeup));
  platform::wakeup_drain(wakeup);
  EXPECT_FALSE(readable(wakeup));
}

TEST(PlatformWakeup, ReadableExactlyWhileSignalledNonBlockingAndCloseOnExec) {
  const int before = open_descriptors();
  const int wakeup = platform::wakeup_create();
  ASSERT_GE(wakeup, 0);
  EXPECT_TRUE(::fcntl(wakeup, F_GETFD) & FD_CLOEXEC);
  EXPECT_TRUE(::fcntl(wakeup, F_GETFL) & O_NONBLOCK);
  expect_readable_exactly_while_signalled(wakeup);
  platform::wakeup_close(wakeup);
  EXPECT_EQ(open_descriptors(), before) << "wakeup_close() left a descriptor open";
}

// Many signals without a drain (more than a pipe holds) neither block nor take a second drain.
TEST(PlatformWakeup, ManySignalsNeverBlockAndOneDrainEmptiesIt) {
  const int wakeup = platform::wakeup_create();
  ASSERT_GE(wakeup, 0);
  for (int i = 0; i < 100000; ++i) platform::wakeup_signal(wakeup);
  EXPECT_TRUE(readable(wakeup));
  platform::wakeup_drain(wakeup);
  EXPECT_FALSE(readable(wakeup));
  platform::wakeup_close(wakeup);
}

// With a one-descriptor hole in the table, pipe() hands out separate ends; the descriptor still
// works and closes completely.
TEST(PlatformWakeup, WorksWhenTheDescriptorTableHasAHole) {
  const int before = open_descriptors();
  const int first = ::dup(0);
  const int second = ::dup(0);
  ASSERT_GE(first, 0);
  ASSERT_GE(second, 0);
  ::close(first);  // the lowest free number now has a taken one after it
  const int wakeup = platform::wakeup_create();
  ASSERT_GE(wakeup, 0);
  EXPECT_TRUE(::fcntl(wakeup, F_GETFD) & FD_CLOEXEC);
  expect_readable_exactly_while_signalled(wakeup);
  platform::wakeup_close(wakeup);
  ::close(second);
  EXPECT_EQ(open_descriptors(), before);
}

TEST(PlatformWait, ReturnsAtOnceWhenTheWordDiffers) {
  std::atomic<std::uint32_t> word{1};
  const auto start = Clock::now();
  EXPECT_TRUE(platform::wait(word, 0, Clock::time_point::max()));
  EXPECT_TRUE(platform::wait(word, 0, start + kGenerous));
  EXPECT_LT(Clock::now() - start, 10s);
}

TEST(PlatformWait, ADeadlineExpiresAndOneInThePastReturnsFalseAtOnce) {
  std::atomic<std::uint32_t> word{0};
  const auto start = Clock::now();
  const auto deadline = start + 50ms;
  // Spurious wake-ups are allowed: wait again until it reports the deadline.
  bool in_time = true;
  for (int i = 0; i < 1000 && in_time; ++i) in_time = platform::wait(word, 0, deadline);
  EXPECT_FALSE(in_time);
  EXPECT_GE(Clock::now(), deadline);
  EXPECT_LT(Clock::now() - start, 10s);
  EXPECT_FALSE(platform::wait(word, 0, Clock::now() - 1ms));
}

// A thread blocked in wait() (no deadline) is released by wake_all() from another thread.
TEST(PlatformWait, WakeAllReleasesAThreadBlockedWithoutDeadline) {
  std::atomic<std::uint32_t> word{0};
  std::atomic<bool> waiting{false};
  std::atomic<int> rounds{0};
  std::thread waiter([&] {
    waiting.store(true);
    while (word.load(std::memory_order_seq_cst) == 0 && rounds.load() < 1000000) {
      platform::wait(word, 0, Clock::time_point::max());
      rounds.fetch_add(1);
    }
  });
  while (!waiting.load()) std::this_thread::yield();
  std::this_thread::sleep_for(20ms);  // makes it likely that the waiter is asleep, not required
  word.store(1, std::memory_order_seq_cst);
  platform::wake_all(word);
  waiter.join();
  EXPECT_EQ(word.load(), 1u);
  EXPECT_LT(rounds.load(), 1000000) << "the waiter woke again and again without the word changing";
}

// Many threads (more than a small parking table has slots) waiting on one word, some on another
// word: wake_all() of the first releases all of its waiters before their deadline.
TEST(PlatformWait, WakeAllReleasesEveryWaiterAcrossThreads) {
  constexpr int kWaiters = 160;
  std::atomic<std::uint32_t> word{0};
  std::atomic<std::uint32_t> other{0};
  std::atomic<int> ready{0};
  std::atomic<int> released_in_time{0};
  const auto deadline = Clock::now() + kGenerous;
  std::vector<std::thread> threads;
  for (int i = 0; i < kWaiters; ++i) {
    std::atomic<std::uint32_t>& mine = i % 8 == 7 ? other : word;
    threads.emplace_back([&, &mine = mine] {
      ready.fetch_add(1);
      bool in_time = true;
      while (mine.load(std::memory_order_seq_cst) == 0 && in_time) {
        in_time = platform::wait(mine, 0, deadline);
      }
      if (in_time && mine.load() != 0) released_in_time.fetch_add(1);
    });
  }
  while (ready.load() < kWaiters) std::this_thread::yield();
  word.store(1, std::memory_order_seq_cst);
  platform::wake_all(word);
  other.store(1, std::memory_order_seq_cst);
  platform::wake_all(other);
  for (auto& t : threads) t.join();
  EXPECT_EQ(released_in_time.load(), kWaiters);
}

// Dekker through the fence pair: the hot side stores then loads with light_fence() (or, where the
// pair is not asymmetric, heavy_fence() too: an ordinary fence), the rare side with heavy_fence();
// never do both loads miss the other side's store.
TEST(PlatformFence, HeavyAndLightFencesOrderAStoreBeforeALoad) {
  constexpr int kRounds = 2000;
  std::atomic<int> x{0};
  std::atomic<int> y{0};
  std::atomic<int> round{0};
  std::atomic<int> hot_done{0};
  std::atomic<int> hot_saw{0};
  std::atomic<bool> stop{false};
  const bool asymmetric = platform::asymmetric_fences();
  std::thread hot([&] {
    for (int r = 1; r <= kRounds && !stop.load(); ++r) {
      while (round.load(std::memory_order_acquire) != r && !stop.load()) std::this_thread::yield();
      x.store(1, std::memory_order_relaxed);
      if (asymmetric) {
        platform::light_fence();
      } else {
        platform::heavy_fence();  // then an ordinary seq_cst fence
      }
      hot_saw.store(y.load(std::memory_order_relaxed), std::memory_order_relaxed);
      hot_done.store(r, std::memory_order_release);
    }
  });
  int both_missed = 0;
  int failed_fences = 0;
  const auto give_up = Clock::now() + kGenerous;
  for (int r = 1; r <= kRounds; ++r) {
    x.store(0, std::memory_order_relaxed);
    y.store(0, std::memory_order_relaxed);
    round.store(r, std::memory_order_release);
    y.store(1, std::memory_order_relaxed);
    if (!platform::heavy_fence()) ++failed_fences;
    const int rare_saw = x.load(std::memory_order_relaxed);
    while (hot_done.load(std::memory_order_acquire) != r && Clock::now() < give_up) {
      std::this_thread::yield();
    }
    if (hot_done.load(std::memory_order_acquire) != r) break;
    if (rare_saw == 0 && hot_saw.load(std::memory_order_relaxed) == 0) ++both_missed;
  }
  stop.store(true);
  hot.join();
  EXPECT_EQ(hot_done.load(), kRounds) << "the rounds did not finish in time";
  EXPECT_EQ(failed_fences, 0);
  EXPECT_EQ(both_missed, 0);
}

}  // namespace
