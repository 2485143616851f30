// Bounded soak: four producer threads post (small, large, std::function and throwing tasks),
// send to Asyncs and set/clear WaitableEvents while tasks on the loop thread start and stop
// those watchers at random; then the LoopThread is stopped while the producers keep racing it.
// Bounded by iteration counts and a deadline: seconds, not minutes (also under sanitizers).
#include <gtest/gtest.h>

#include <evcxx/async.hpp>
#include <evcxx/loop.hpp>
#include <evcxx/loop_thread.hpp>
#include <evcxx/waitable_event.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <future>
#include <memory>
#include <random>
#include <stdexcept>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr int kProducers = 4;
constexpr int kAsyncs = 8;
constexpr int kEvents = 4;
constexpr long kMaxOpsPerProducer = 1000000;
constexpr auto kRaceTime = 1500ms;  // before the stop; the producers then race the shutdown

struct Counters {
  std::atomic<long> accepted{0};  // try_post returned true
  std::atomic<long> ran{0};       // a task ran (each accepted task exactly once)
  std::atomic<long> refused{0};
  std::atomic<long> thrown{0};    // tasks that threw on purpose
  std::atomic<long> reported{0};  // exceptions the error handler saw
  std::atomic<long> async_callbacks{0};
  std::atomic<long> event_callbacks{0};
  std::atomic<long> toggles{0};
};

// Watchers owned by the test, created, toggled and destroyed while their loop is not running or
// on the loop thread.
struct Watchers {
  std::vector<std::unique_ptr<evcxx::Async>> asyncs;
  std::vector<std::unique_ptr<evcxx::WaitableEvent>> events;
};

TEST(Soak, ProducersWatchersAndARacingShutdown) {
  Counters counters;
  Watchers watchers;
  auto thread = std::make_unique<evcxx::LoopThread>(
      "soak", [&](std::exception_ptr) { counters.reported.fetch_add(1); });

  // Create the watchers on the loop thread.
  thread
      ->submit([&] {
        for (int i = 0; i < kAsyncs; ++i) {
          watchers.asyncs.push_back(std::make_unique<evcxx::Async>(
              thread->loop(), [&] { counters.async_callbacks.fetch_add(1); }));
        }
        for (int i = 0; i < kEvents; ++i) {
          watchers.events.push_back(std::make_unique<evcxx::WaitableEvent>(
              thread->loop(), [&] { counters.event_callbacks.fetch_add(1); }));
        }
      })
      .get();

  // Runs on the loop thread: start or stop one watcher at random.
  auto toggle = [&](unsigned pick) {
    counters.toggles.fetch_add(1);
    evcxx::Async& async = *watchers.asyncs[pick % kAsyncs];
    if (async.active()) {
      async.stop();
    } else {
      async.start();
    }
    if (pick % 5 == 0) {
      evcxx::Async& announcer = watchers.events[pick % kEvents]->async();
      if (announcer.active()) {
        announcer.stop();
      } else {
        announcer.start();
      }
    }
  };

  std::atomic<bool> stop_requested{false};
  const auto deadline = Clock::now() + kRaceTime;
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      std::minstd_rand random(static_cast<unsigned>(p) * 7919u + 1u);
      for (long op = 0; op < kMaxOpsPerProducer; ++op) {
        const unsigned pick = static_cast<unsigned>(random());
        bool posted = true;
        bool attempted = true;
        switch (pick % 8) {
          case 0:  // a small task
            posted = thread->try_post([&] { counters.ran.fetch_add(1); });
            break;
          case 1: {  // a task too large for a slot
            std::array<long, 16> payload{};
            payload[15] = 1;
            posted = thread->try_post(
                [&, payload] { counters.ran.fetch_add(payload[15], std::memory_order_relaxed); });
            break;
          }
          case 2:  // through std::function
            posted = thread->try_post(std::function<void()>([&] { counters.ran.fetch_add(1); }));
            break;
          case 3:  // a task that throws: reported, the thread goes on
            posted = thread->try_post([&] {
              counters.ran.fetch_add(1);
              counters.thrown.fetch_add(1);
              throw std::runtime_error("soak");
            });
            break;
          case 4:  // a task that toggles a watcher and posts a follow-up from the loop thread
            posted = thread->try_post([&, pick] {
              counters.ran.fetch_add(1);
              toggle(pick);
              if (thread->try_post([&] { counters.ran.fetch_add(1); })) {
                counters.accepted.fetch_add(1);
              }
            });
            break;
          case 5:
            attempted = false;
            watchers.asyncs[pick % kAsyncs]->send();
            break;
          case 6:
            attempted = false;
            watchers.events[pick % kEvents]->set();
            break;
          default:
            attempted = false;
            watchers.events[pick % kEvents]->clear();
            break;
        }
        if (attempted) {
          (posted ? counters.accepted : counters.refused).fetch_add(1);
        }
        if (stop_requested.load(std::memory_order_relaxed) && !posted) break;  // it is over
        if (op % 256 == 0 && Clock::now() > deadline + kRaceTime) break;       // bound the time
      }
    });
  }

  // Let them race for a while, then stop the thread while they keep posting.
  while (Clock::now() < deadline &&
         counters.accepted.load() < kProducers * kMaxOpsPerProducer / 4) {
    std::this_thread::sleep_for(10ms);
  }
  thread->stop();
  stop_requested = true;
  for (auto& t : producers) t.join();
  thread->join();

  std::printf("soak: %ld tasks ran, %ld refused, %ld toggles, %ld async + %ld event callbacks\n",
              counters.ran.load(), counters.refused.load(), counters.toggles.load(),
              counters.async_callbacks.load(), counters.event_callbacks.load());
  // Every accepted task ran exactly once, refused ones never; exceptions were all reported.
  EXPECT_EQ(counters.ran.load(), counters.accepted.load());
  EXPECT_GT(counters.refused.load(), 0) << "the producers should have raced the stop";
  EXPECT_EQ(counters.reported.load(), counters.thrown.load());
  EXPECT_GT(counters.toggles.load(), 0);
  EXPECT_GT(counters.async_callbacks.load() + counters.event_callbacks.load(), 0);

  // The loop has ended: the watchers may be destroyed here, then the loop with the thread.
  watchers.asyncs.clear();
  watchers.events.clear();
  thread.reset();
}

// The same traffic against a plain Loop on a std::thread, which ends by watcher count instead of a
// stop(): every post made before the keep-alive is dropped runs.
TEST(Soak, PlainLoopUnderFourProducers) {
  evcxx::Loop loop;
  std::atomic<long> ran{0};
  evcxx::Async keepalive(loop, [] {});
  std::vector<std::unique_ptr<evcxx::Async>> asyncs;
  for (int i = 0; i < kAsyncs; ++i) {
    asyncs.push_back(std::make_unique<evcxx::Async>(loop, [] {}));
  }
  std::thread runner([&] { loop.run(); });
  const auto deadline = Clock::now() + kRaceTime;
  std::atomic<long> posted{0};
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      std::minstd_rand random(static_cast<unsigned>(p) + 11u);
      for (long op = 0; op < kMaxOpsPerProducer; ++op) {
        const unsigned pick = static_cast<unsigned>(random());
        if (pick % 3 == 0) {
          asyncs[pick % kAsyncs]->send();
        } else {
          loop.post([&, pick] {
            ran.fetch_add(1);
            evcxx::Async& a = *asyncs[pick % kAsyncs];
            if (pick % 7 == 0) a.active() ? a.stop() : a.start();
          });
          posted.fetch_add(1);
        }
        if (op % 256 == 0 && Clock::now() > deadline) break;
      }
    });
  }
  for (auto& t : producers) t.join();
  std::promise<void> stopped;
  loop.post([&] {
    for (auto& a : asyncs) a->stop();
    keepalive.stop();
    stopped.set_value();
  });
  runner.join();  // run() returns once no watcher is active
  EXPECT_EQ(stopped.get_future().wait_for(0s), std::future_status::ready);
  EXPECT_EQ(ran.load(), posted.load());
}

}  // namespace
