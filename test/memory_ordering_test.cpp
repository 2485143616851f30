// The release/acquire edge of each cross-thread call on Loop and Async (API.md, "Memory ordering
// and lifetimes under concurrency"): a plain, non-atomic payload written before the call is read
// by the callback, task or run() return that the call caused. Nothing else orders the two
// threads' accesses, so a missing edge is a data race that the ThreadSanitizer tree reports; the
// other trees check the values.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include <evcxx/async.hpp>
#include <evcxx/idle.hpp>
#include <evcxx/loop.hpp>
#include <evcxx/prepare.hpp>

#include "support.hpp"

namespace {

using evcxx_test::kPatience;
using evcxx_test::Watchdog;

constexpr int kRounds = 2000;

// Spins (yielding) until `flag` holds `value`; the acquire load only orders the other direction.
void await_value(const std::atomic<int>& flag, int value) {
  const auto give_up = std::chrono::steady_clock::now() + kPatience;
  while (flag.load(std::memory_order_acquire) != value) {
    ASSERT_LT(std::chrono::steady_clock::now(), give_up) << "the loop thread stopped answering";
    std::this_thread::yield();
  }
}

TEST(MemoryOrdering, AsyncSendPublishesWritesToTheCallback) {
  evcxx::Loop loop;
  std::vector<int> payload(16, 0);  // written by the producer, read by the callback: no lock
  std::atomic<int> seen{0};         // the callback's answer, for the producer's next round
  int failures = 0;
  evcxx::Async async(loop, [&] {
    const int round = payload[0];
    if (round == 0 || round == seen.load(std::memory_order_relaxed)) return;  // coalesced
    for (int v : payload) failures += v == round ? 0 : 1;
    seen.store(round, std::memory_order_release);
    if (round == kRounds) async.stop();
  });
  Watchdog watchdog(loop);
  std::thread producer([&] {
    for (int round = 1; round <= kRounds; ++round) {
      for (int& v : payload) v = round;
      async.send();
      await_value(seen, round);
    }
  });
  loop.run();
  producer.join();
  EXPECT_FALSE(watchdog.fired());
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(seen.load(), kRounds);
}

TEST(MemoryOrdering, PostPublishesWritesToTheTask) {
  evcxx::Loop loop;
  evcxx::Async keep_alive(loop, [] {});
  std::atomic<int> done{0};
  int failures = 0;
  Watchdog watchdog(loop);
  std::thread producer([&] {
    for (int round = 1; round <= kRounds; ++round) {
      // A fresh allocation each round: the task owns data the producer wrote just before post().
      auto* payload = new std::vector<int>(16, round);
      loop.post([&, payload, round] {
        for (int v : *payload) failures += v == round ? 0 : 1;
        delete payload;
        done.store(round, std::memory_order_release);
        if (round == kRounds) keep_alive.stop();
      });
    }
  });
  loop.run();
  producer.join();
  EXPECT_FALSE(watchdog.fired());
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(done.load(), kRounds);
}

TEST(MemoryOrdering, StopPublishesWritesToTheThreadWhoseRunReturns) {
  evcxx::Loop loop;
  // A busy loop: libev then mostly skips its wake-up write, so only evcxx's own ordering (not the
  // eventfd, which ThreadSanitizer also counts as an edge) carries the payload.
  evcxx::Idle keep_busy(loop, [] {});
  constexpr int kStops = kRounds / 4;
  int current_round = 0;  // loop thread only
  std::atomic<int> round_running{0};
  evcxx::Prepare announce(loop, [&] {
    // Tells the stopper which round runs; this orders the loop thread before the stopper only.
    round_running.store(current_round, std::memory_order_release);
  });
  int payload = 0;  // written by the stopping thread, read after run() returns: no lock
  Watchdog watchdog(loop);
  std::thread stopper([&] {
    for (int round = 1; round <= kStops; ++round) {
      await_value(round_running, round);
      payload = round;
      loop.stop();
    }
  });
  int failures = 0;
  for (current_round = 1; current_round <= kStops && !watchdog.fired(); ++current_round) {
    EXPECT_TRUE(loop.run());  // stopped with keep_busy still active
    failures += payload == current_round ? 0 : 1;
  }
  stopper.join();
  EXPECT_FALSE(watchdog.fired());
  EXPECT_EQ(failures, 0);
}

}  // namespace
