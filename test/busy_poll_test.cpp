// Loop::set_busy_poll(): with the loop spinning before it blocks, every way of waking it from
// another thread or a signal handler is still delivered, a loop with nothing to do still blocks
// after the spin, and the loop never spins where it would not block (no watcher, an Idle,
// Run::nowait, a break). No timing is asserted: the long spins below make a wrong spin hang until a
// watchdog ends it, which fails the test.

#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <evcxx/async.hpp>
#include <evcxx/idle.hpp>
#include <evcxx/loop.hpp>
#include <evcxx/loop_thread.hpp>
#include <evcxx/prepare.hpp>
#include <evcxx/signal.hpp>
#include <evcxx/timer.hpp>
#include <evcxx/waitable_event.hpp>

#include <atomic>
#include <chrono>
#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <thread>
#include <vector>

#include "support.hpp"

namespace {

using namespace std::chrono_literals;
using evcxx_test::Watchdog;
using SteadyClock = std::chrono::steady_clock;

// Short, so that the stress loops' sends land before, during and at the end of a spin and while
// the loop is blocked after it.
constexpr auto kSpin = 50us;
// As good as endless: a loop that spins where it must not hangs until a watchdog stops it.
constexpr auto kEndless = std::chrono::hours(1);
constexpr int kRounds = 3000;
constexpr auto kTimeLimit = 10s;        // each stress loop ends after this, done or not
constexpr auto kHangLimit = 20s;        // a watchdog's patience in the tests that must not spin
constexpr auto kStillSpinning = 200ms;  // how long a spinning loop is watched not to block

// The gap before round i's send: none, within the spin, about the spin, well past it.
void gap(int i) {
  static constexpr std::chrono::nanoseconds gaps[] = {0ns, 10us, 50us, 200us};
  const auto end = SteadyClock::now() + gaps[i % 4];
  while (SteadyClock::now() < end) {
  }
}

// Yields until done() holds or `limit` has passed; whether done() held.
template <class Done>
bool yield_until(const Done& done, std::chrono::nanoseconds limit) {
  const auto patience = SteadyClock::now() + limit;
  while (!done()) {
    if (SteadyClock::now() > patience) return false;
    std::this_thread::yield();
  }
  return true;
}

struct Lockstep {
  int rounds = 0;     // sends that were delivered
  bool lost = false;  // a send was not delivered within kPatience
};

// On its own thread: `send` once per round and waits until `delivered` counts it, up to kRounds
// rounds or kTimeLimit, whichever comes first; then `finish`.
std::thread lockstep(Lockstep& result, const std::atomic<int>& delivered,
                     std::function<void()> send, std::function<void()> finish) {
  return std::thread([&result, &delivered, send = std::move(send), finish = std::move(finish)] {
    const auto end = SteadyClock::now() + kTimeLimit;
    for (int i = 0; i < kRounds && SteadyClock::now() < end; ++i) {
      gap(i);
      send();
      result.lost = !yield_until([&] { return delivered.load(std::memory_order_acquire) > i; },
                                 evcxx_test::kPatience);
      if (result.lost) break;
      result.rounds = i + 1;
    }
    finish();
  });
}

void expect_delivered(const Lockstep& result, const Watchdog& dog) {
  EXPECT_FALSE(result.lost);
  EXPECT_FALSE(dog.fired());
  EXPECT_GT(result.rounds, 0);
}

// Runs the iteration that a send from `sender` ends, joins the sender and, if that iteration ran
// no callback, one more. Run::once promises no callback (as libev's EVRUN_ONCE): libev's check
// before the poll can catch the send between setting its "write skipped" flag and clearing it again
// to write the wake-up (the loop was about to poll), so the poll does not block, comes before the
// write and leaves the send to the next iteration, which cannot block and must run it. A send the
// spin misses still spins until the watchdog.
void run_once_for_send(evcxx::Loop& loop, std::thread& sender, const int& calls) {
  const int before = calls;
  loop.run(evcxx::Run::once);
  sender.join();
  if (calls == before) loop.run(evcxx::Run::once);
}

TEST(BusyPoll, OffByDefaultAndRejectsBadSpins) {
  evcxx::Loop loop;
  EXPECT_EQ(loop.busy_poll().count(), 0);
  loop.set_busy_poll(25us);
  EXPECT_DOUBLE_EQ(loop.busy_poll().count(), 25e-6);
  EXPECT_THROW(loop.set_busy_poll(-1us), std::invalid_argument);
  using Seconds = std::chrono::duration<double>;
  EXPECT_THROW(loop.set_busy_poll(Seconds(std::nan(""))), std::invalid_argument);
  EXPECT_THROW(loop.set_busy_poll(Seconds(std::numeric_limits<double>::infinity())),
               std::invalid_argument);
  EXPECT_DOUBLE_EQ(loop.busy_poll().count(), 25e-6);  // a rejected spin changes nothing
  loop.set_busy_poll(Seconds(1e30));                  // huge but finite: fine
  loop.set_busy_poll(0s);
  EXPECT_EQ(loop.busy_poll().count(), 0);
}

TEST(BusyPoll, PostFromAnotherThreadIsDelivered) {
  evcxx::Loop loop;
  loop.set_busy_poll(kSpin);
  std::atomic<int> delivered{0};
  evcxx::Async quit(loop, [&] { loop.break_loop(); });
  Lockstep result;
  Watchdog dog(loop);
  std::thread producer = lockstep(
      result, delivered,
      [&] { loop.post([&] { delivered.fetch_add(1, std::memory_order_release); }); },
      [&] { quit.send(); });
  loop.run();
  producer.join();
  expect_delivered(result, dog);
}

TEST(BusyPoll, AsyncSendFromAnotherThreadIsDelivered) {
  evcxx::Loop loop;
  loop.set_busy_poll(kSpin);
  std::atomic<int> delivered{0};
  evcxx::Async ping(loop, [&] { delivered.fetch_add(1, std::memory_order_release); });
  evcxx::Async quit(loop, [&] { loop.break_loop(); });
  Lockstep result;
  Watchdog dog(loop);
  std::thread producer = lockstep(
      result, delivered, [&] { ping.send(); }, [&] { quit.send(); });
  loop.run();
  producer.join();
  expect_delivered(result, dog);
}

evcxx::Async* g_signalled_async = nullptr;

TEST(BusyPoll, AsyncSendFromSignalHandlerIsDelivered) {
  evcxx::Loop loop;
  loop.set_busy_poll(kSpin);
  std::atomic<int> delivered{0};
  evcxx::Async ping(loop, [&] { delivered.fetch_add(1, std::memory_order_release); });
  evcxx::Async quit(loop, [&] { loop.break_loop(); });
  g_signalled_async = &ping;
  evcxx_test::ScopedSignalHandler handler(SIGUSR1, [](int) { g_signalled_async->send(); });
  const pthread_t loop_thread = ::pthread_self();
  Lockstep result;
  Watchdog dog(loop);
  // The handler runs on the spinning (or blocked) loop thread, or on the producer's own.
  int round = 0;
  std::thread producer = lockstep(
      result, delivered,
      [&] {
        if (round++ % 2 == 0) {
          ::pthread_kill(loop_thread, SIGUSR1);
        } else {
          ::raise(SIGUSR1);
        }
      },
      [&] { quit.send(); });
  loop.run();
  producer.join();
  expect_delivered(result, dog);
  g_signalled_async = nullptr;
}

TEST(BusyPoll, SignalWatcherIsDelivered) {
  evcxx::Loop loop;
  loop.set_busy_poll(kSpin);
  std::atomic<int> delivered{0};
  evcxx::Signal signal(loop, SIGUSR2, [&] { delivered.fetch_add(1, std::memory_order_release); });
  evcxx::Async quit(loop, [&] { loop.break_loop(); });
  const pthread_t loop_thread = ::pthread_self();
  Lockstep result;
  Watchdog dog(loop);
  std::thread producer = lockstep(
      result, delivered, [&] { ::pthread_kill(loop_thread, SIGUSR2); }, [&] { quit.send(); });
  loop.run();
  producer.join();
  expect_delivered(result, dog);
}

TEST(BusyPoll, StopFromAnotherThreadIsDelivered) {
  evcxx::Loop loop;
  loop.set_busy_poll(kSpin);
  evcxx::Async keep_running(loop, [] {});
  std::atomic<int> returned{0};
  std::atomic<bool> finished{false};
  Lockstep result;
  Watchdog dog(loop);
  std::thread stopper = lockstep(
      result, returned, [&] { loop.stop(); },
      [&] {
        finished.store(true, std::memory_order_release);
        loop.stop();
      });
  // Each run() spins and blocks until the stop of its round (or of a later one) makes it return.
  while (true) {
    loop.run();
    if (finished.load(std::memory_order_acquire)) break;
    returned.fetch_add(1, std::memory_order_release);
  }
  stopper.join();
  expect_delivered(result, dog);
}

TEST(BusyPoll, WaitableEventSetFromAnotherThreadIsDelivered) {
  evcxx::Loop loop;
  loop.set_busy_poll(kSpin);
  std::atomic<int> delivered{0};
  std::optional<evcxx::WaitableEvent> event;
  event.emplace(loop, [&] {
    event->clear();  // before the count, so that the next round's set() is a new one
    delivered.fetch_add(1, std::memory_order_release);
  });
  evcxx::Async quit(loop, [&] { loop.break_loop(); });
  Lockstep result;
  Watchdog dog(loop);
  std::thread producer = lockstep(
      result, delivered, [&] { event->set(); }, [&] { quit.send(); });
  loop.run();
  producer.join();
  expect_delivered(result, dog);
  event.reset();
}

TEST(BusyPoll, LoopThreadsPingPongWithAsyncAndPost) {
  evcxx::LoopThread a("busy-poll-a");
  evcxx::LoopThread b("busy-poll-b");
  a.submit([&] { a.loop().set_busy_poll(kSpin); }).get();
  b.submit([&] { b.loop().set_busy_poll(kSpin); }).get();
  std::optional<evcxx::Async> on_a;
  std::optional<evcxx::Async> on_b;
  std::atomic<int> round_trips{0};
  const auto end = SteadyClock::now() + kTimeLimit;
  evcxx::WaitableEvent done;
  a.submit([&] {
     on_a.emplace(a.loop(), [&] {
       if (round_trips.fetch_add(1) + 1 == kRounds || SteadyClock::now() > end) {
         done.set();
       } else {
         on_b->send();
       }
     });
   }).get();
  b.submit([&] { on_b.emplace(b.loop(), [&] { on_a->send(); }); }).get();
  on_b->send();
  EXPECT_TRUE(done.wait_for(evcxx_test::kPatience));
  a.submit([&] { on_a.reset(); }).get();
  b.submit([&] { on_b.reset(); }).get();

  // The same with post(): each side posts the next leg to the other.
  std::atomic<int> posted_trips{0};
  evcxx::WaitableEvent posted_done;
  const auto post_end = SteadyClock::now() + kTimeLimit;
  std::function<void()> ping = [&] {
    b.post([&] {
      a.post([&] {
        if (posted_trips.fetch_add(1) + 1 == kRounds || SteadyClock::now() > post_end) {
          posted_done.set();
        } else {
          ping();
        }
      });
    });
  };
  ping();
  EXPECT_TRUE(posted_done.wait_for(evcxx_test::kPatience));
  EXPECT_GT(round_trips.load(), 0);
  EXPECT_GT(posted_trips.load(), 0);
  a.stop();
  b.stop();
}

// Several producers posting with gaps that land inside the spin, at its end and while the loop
// is blocked after it: the spin's batches leave the task queue awake, so every hand-over between
// the spin and the sleep (settle()) is crossed many times. Nothing may be lost or reordered.
TEST(BusyPoll, ManyProducersAcrossTheSpinsEndLoseNothingAndKeepTheirOrder) {
  constexpr int kProducers = 3;
  // Far beyond any delivery, well short of libev's own wake-up every 59.7 s, which would hide a
  // lost one.
  constexpr auto kDeliveryLimit = kHangLimit / 2;
  evcxx::LoopThread consumer("busy-poll-many");
  consumer.submit([&] { consumer.loop().set_busy_poll(kSpin); }).get();
  std::vector<int> next(kProducers, 0);  // loop thread
  std::atomic<int> wrong{0};
  std::atomic<int> ran[kProducers] = {};
  const auto end = SteadyClock::now() + kTimeLimit;
  std::vector<std::thread> producers;
  std::atomic<bool> lost{false};
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      int posted = 0;
      const auto caught_up = [&] {
        return yield_until([&] { return ran[p].load(std::memory_order_acquire) == posted; },
                           kDeliveryLimit);
      };
      for (int i = 0; i < kRounds && SteadyClock::now() < end; ++i) {
        gap(i + p);
        consumer.post([&, p, i] {
          if (next[static_cast<std::size_t>(p)]++ != i) wrong.fetch_add(1);
          ran[p].fetch_add(1, std::memory_order_release);
        });
        ++posted;
        // Now and then wait for everything posted so far: the loop must get there, awake or not.
        if (i % 64 == 63 && !caught_up()) {
          lost = true;
          return;
        }
      }
      if (!caught_up()) lost = true;
    });
  }
  for (auto& t : producers) t.join();
  consumer.stop();
  EXPECT_FALSE(lost.load());
  EXPECT_EQ(wrong.load(), 0);
  for (int p = 0; p < kProducers; ++p) EXPECT_GT(ran[p].load(), 0);
}

// The release hook runs right before libev's poll: after the spin, never during it.
struct PollProbe {
  explicit PollProbe(evcxx::Loop& loop) {
    loop.set_release_hooks([this] { entered_poll.set(); }, [] {});
  }
  evcxx::WaitableEvent entered_poll;
};

TEST(BusyPoll, NothingToDoStillBlocksAfterTheSpin) {
  evcxx::Loop loop;
  loop.set_busy_poll(1ms);
  int calls = 0;
  evcxx::Async async(loop, [&] { ++calls; });
  PollProbe probe(loop);
  evcxx::WaitableEvent returned;
  bool returned_early = false;
  std::thread waker([&] {
    EXPECT_TRUE(probe.entered_poll.wait_for(evcxx_test::kPatience));  // the spin is over
    // A loop that does not block after its spin returns from run(Run::once) meanwhile.
    returned_early = returned.wait_for(kStillSpinning);
    async.send();
  });
  Watchdog dog(loop);
  loop.run(evcxx::Run::once);
  returned.set();
  waker.join();
  EXPECT_FALSE(returned_early);
  EXPECT_EQ(calls, 1);  // run() returned for the event
  EXPECT_FALSE(dog.fired());
}

TEST(BusyPoll, SpinsBeforeBlockingUntilASend) {
  evcxx::Loop loop;
  loop.set_busy_poll(kEndless);
  int calls = 0;
  evcxx::Async async(loop, [&] { ++calls; });
  evcxx::WaitableEvent prepared;
  evcxx::Prepare prepare(loop, [&] { prepared.set(); });  // runs before the spin
  PollProbe probe(loop);
  bool polled_while_spinning = true;
  std::thread waker([&] {
    EXPECT_TRUE(prepared.wait_for(evcxx_test::kPatience));
    polled_while_spinning = probe.entered_poll.wait_for(kStillSpinning);
    async.send();  // ends the spin
  });
  Watchdog dog(loop, kHangLimit);
  run_once_for_send(loop, waker, calls);
  EXPECT_FALSE(polled_while_spinning);
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(probe.entered_poll.is_set());  // it did poll, once the send came
  EXPECT_FALSE(dog.fired());
}

// The sends and posts the spin sees are served inside it, which goes on: the loop never polls
// while another thread keeps it busy (without serving, each send ended the spin and the loop
// polled once per send), and stop() still ends even an endless spin.
TEST(BusyPoll, ServesSendsAndPostsInsideTheSpinWithoutPolling) {
  evcxx::Loop loop;
  loop.set_busy_poll(kEndless);
  std::atomic<int> delivered{0};
  evcxx::Async ping(loop, [&] { delivered.fetch_add(1, std::memory_order_release); });
  PollProbe probe(loop);
  constexpr int kSends = 200;
  Lockstep result;
  bool polled_while_served = true;
  std::thread producer([&] {
    for (int i = 0; i < kSends && !result.lost; ++i) {
      if (i % 2 == 0) {
        ping.send();
      } else {
        loop.post([&] { delivered.fetch_add(1, std::memory_order_release); });
      }
      result.lost = !yield_until([&] { return delivered.load(std::memory_order_acquire) > i; },
                                 evcxx_test::kPatience);
      result.rounds = i + 1;
    }
    polled_while_served = probe.entered_poll.is_set();
    loop.stop();  // ends the endless spin: the loop polls, and run() returns
  });
  Watchdog dog(loop, kHangLimit);
  loop.run();
  producer.join();
  EXPECT_FALSE(result.lost);
  EXPECT_EQ(result.rounds, kSends);
  EXPECT_EQ(delivered.load(), kSends);
  EXPECT_FALSE(polled_while_served);
  EXPECT_FALSE(dog.fired());
}

// The batches the spin serves leave the task queue awake, so that posts wake nobody. A run()
// nested in a callback the spin serves must still be reached by a task posted from another thread
// meanwhile. `inside` runs in that callback (three tasks in, the later ones served by batches that
// stayed awake): it may prepare the nested run, and calls `run_nested` for it.
void expect_a_run_nested_in_a_served_callback_gets_a_post(
    const std::function<void(evcxx::Loop&, const std::function<void()>& run_nested)>& inside) {
  evcxx::Loop loop;
  loop.set_busy_poll(kEndless);
  std::atomic<int> served{0};
  std::atomic<bool> nested{false};
  bool task_ran = false;
  bool fallback_fired = false;
  evcxx::Async enter(loop, [&] {
    inside(loop, [&] {
      evcxx::Timer fallback(loop, kHangLimit / 2, [&] { fallback_fired = true; });
      nested.store(true, std::memory_order_release);
      while (!task_ran && !fallback_fired) loop.run(evcxx::Run::once);
    });
    loop.break_loop();
  });
  std::thread producer([&] {
    for (int i = 1; i <= 3; ++i) {
      loop.post([&] { served.fetch_add(1, std::memory_order_release); });
      yield_until([&] { return served.load(std::memory_order_acquire) == i; },
                  evcxx_test::kPatience);
    }
    enter.send();
    yield_until([&] { return nested.load(std::memory_order_acquire); }, evcxx_test::kPatience);
    loop.post([&] { task_ran = true; });
  });
  Watchdog dog(loop, kHangLimit);
  loop.run();
  producer.join();
  EXPECT_EQ(served.load(), 3);
  EXPECT_TRUE(task_ran);
  EXPECT_FALSE(fallback_fired) << "the nested run never ran the post";
  EXPECT_FALSE(dog.fired());
}

// It blocks in libev's poll like any other run: the post must wake it.
TEST(BusyPoll, ARunNestedInAServedCallbackIsWokenByAPost) {
  expect_a_run_nested_in_a_served_callback_gets_a_post(
      [](evcxx::Loop&, const std::function<void()>& run_nested) { run_nested(); });
}

// The callback first turns the busy poll off: the nested run has no spin to settle the queue,
// which must settle all the same.
TEST(BusyPoll, ARunNestedInAServedCallbackThatTurnsTheSpinOffIsWokenByAPost) {
  expect_a_run_nested_in_a_served_callback_gets_a_post(
      [](evcxx::Loop& loop, const std::function<void()>& run_nested) {
        loop.set_busy_poll(0s);
        run_nested();
      });
}

// The nested run's loop will not block (an Idle is active), so it skips its own spin: the post
// must still reach it, through the queue's wake-up.
TEST(BusyPoll, ARunNestedInAServedCallbackWithAnIdleActiveRunsPostedTasks) {
  expect_a_run_nested_in_a_served_callback_gets_a_post(
      [](evcxx::Loop& loop, const std::function<void()>& run_nested) {
        evcxx::Idle idle(loop, [] {});
        run_nested();
      });
}

// post() promises that a task posted by a task runs after the loop polled for I/O: a served
// batch that leaves such tasks ends the spin (serving them in the spin would never poll here).
TEST(BusyPoll, ATaskRepostingItselfStillLetsTheLoopPoll) {
  evcxx::Loop loop;
  loop.set_busy_poll(kEndless);
  evcxx::Async keep_running(loop, [] {});
  PollProbe probe(loop);
  constexpr int kLimit = 1000;
  int reposts = 0;
  std::function<void()> repost = [&] {
    if (probe.entered_poll.is_set()) {
      loop.break_loop();
    } else if (++reposts < kLimit) {
      loop.post(repost);
    } else {
      loop.break_loop();  // served kLimit times without a poll
    }
  };
  loop.post(repost);  // the first iteration's spin serves it
  Watchdog dog(loop, kHangLimit);
  loop.run();
  EXPECT_LT(reposts, kLimit);
  EXPECT_TRUE(probe.entered_poll.is_set());
  EXPECT_FALSE(dog.fired());
}

// A callback served in the spin that sets an invoke-pending hook: the next send is run through
// the hook (the spin stops serving), not behind its back.
TEST(BusyPoll, AHookSetByAServedCallbackRunsTheNextCallbacks) {
  evcxx::Loop loop;
  loop.set_busy_poll(kEndless);
  std::atomic<int> calls{0};
  int hooked = 0;
  evcxx::Async async(loop, [&] {
    if (calls.fetch_add(1, std::memory_order_acq_rel) == 0) {
      loop.set_invoke_pending_hook([&](evcxx::Loop& l) {
        ++hooked;
        l.invoke_pending();
      });
    } else {
      loop.break_loop();
    }
  });
  Watchdog dog(loop, kHangLimit);
  std::thread sender([&] {
    async.send();
    while (calls.load(std::memory_order_acquire) == 0) std::this_thread::yield();
    async.send();
  });
  loop.run();
  sender.join();
  EXPECT_EQ(calls.load(), 2);
  EXPECT_GE(hooked, 1);
  EXPECT_FALSE(dog.fired());
}

// What a served callback does to the loop ends the spin as it would end the iteration.
TEST(BusyPoll, AServedCallbackThatThrowsEndsTheSpinAndRunRethrows) {
  evcxx::Loop loop;
  loop.set_busy_poll(kEndless);
  evcxx::Async boom(loop, [] { throw std::runtime_error("from a served callback"); });
  Watchdog dog(loop, kHangLimit);
  std::thread sender([&] { boom.send(); });
  EXPECT_THROW(loop.run(), std::runtime_error);
  sender.join();
  EXPECT_FALSE(dog.fired());
}

TEST(BusyPoll, AServedBreakLoopEndsTheSpin) {
  evcxx::Loop loop;
  loop.set_busy_poll(kEndless);
  int calls = 0;
  evcxx::Async quit(loop, [&] {
    ++calls;
    loop.break_loop();
  });
  Watchdog dog(loop, kHangLimit);
  std::thread sender([&] { quit.send(); });
  EXPECT_TRUE(loop.run());  // broken with the Async still active
  sender.join();
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(dog.fired());
}

TEST(BusyPoll, AServedCallbackStoppingTheLastWatcherLetsRunReturn) {
  evcxx::Loop loop;
  loop.set_busy_poll(kEndless);
  std::optional<evcxx::Async> last;
  last.emplace(loop, [&] { last->stop(); });
  Watchdog dog(loop, kHangLimit);
  std::thread sender([&] { last->send(); });
  EXPECT_FALSE(loop.run());  // nothing keeps it running: no spin, no block
  sender.join();
  EXPECT_FALSE(dog.fired());
}

// A timer a served callback starts fires once the spin is over (so at most the spin late).
TEST(BusyPoll, ATimerStartedByAServedCallbackFiresAfterTheSpin) {
  evcxx::Loop loop;
  loop.set_busy_poll(kSpin);
  int fired = 0;
  evcxx::Timer timer(loop, evcxx::deferred, 0s, [&] {
    ++fired;
    loop.break_loop();
  });
  evcxx::Async start_timer(loop, [&] { timer.start(); });
  Watchdog dog(loop);
  std::thread sender([&] { start_timer.send(); });
  loop.run();
  sender.join();
  EXPECT_EQ(fired, 1);
  EXPECT_FALSE(dog.fired());
}

TEST(BusyPoll, SpinsAfterEveryPrepareOfTheLowestPriority) {
  evcxx::Loop loop;
  int calls = 0;
  evcxx::Async async(loop, [&] { ++calls; });
  evcxx::WaitableEvent prepared;
  // Started before the busy poll, so that libev would run it after the spin's own prepare.
  evcxx::Prepare last(loop, evcxx::deferred, [&] { prepared.set(); });
  last.set_priority(EV_MINPRI);
  last.start();
  loop.set_busy_poll(kEndless);
  PollProbe probe(loop);
  bool prepared_first = false;
  bool polled_while_spinning = true;
  std::thread waker([&] {
    prepared_first = prepared.wait_for(evcxx_test::kPatience);
    polled_while_spinning = probe.entered_poll.wait_for(kStillSpinning);
    async.send();
  });
  Watchdog dog(loop, evcxx_test::kPatience * 2);
  run_once_for_send(loop, waker, calls);
  EXPECT_TRUE(prepared_first);
  EXPECT_FALSE(polled_while_spinning);
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(dog.fired());
}

TEST(BusyPoll, SeesSendsOnEveryStartedAsync) {
  evcxx::Loop loop;
  loop.set_busy_poll(kEndless);
  int calls = 0;
  std::vector<std::unique_ptr<evcxx::Async>> asyncs;
  for (int i = 0; i < 4; ++i) {
    asyncs.push_back(std::make_unique<evcxx::Async>(loop, [&] { ++calls; }));
  }
  asyncs[1]->stop();
  asyncs[1]->start();
  asyncs[2].reset();  // its destructor takes it off the list
  asyncs.push_back(std::make_unique<evcxx::Async>(loop, evcxx::deferred, [&] { ++calls; }));
  asyncs.back()->start();
  Watchdog dog(loop, kHangLimit);
  // A send the spin does not see leaves it spinning until the watchdog stops it.
  for (const auto& async : asyncs) {
    if (!async) continue;
    std::thread sender([&] { async->send(); });
    run_once_for_send(loop, sender, calls);
  }
  EXPECT_EQ(calls, 4);
  EXPECT_FALSE(dog.fired());
}

TEST(BusyPoll, NoWatcherReturnsAtOnce) {
  evcxx::Loop loop;
  loop.set_busy_poll(kEndless);
  Watchdog dog(loop, kHangLimit);
  EXPECT_FALSE(loop.run());
  EXPECT_FALSE(loop.run(evcxx::Run::once));
  EXPECT_FALSE(dog.fired());
}

TEST(BusyPoll, NoSpinWhileAnIdleIsActive) {
  evcxx::Loop loop;
  loop.set_busy_poll(kEndless);
  evcxx::Async keep_running(loop, [] {});
  int idles = 0;
  evcxx::Idle idle(loop, [&] {
    if (++idles == 100) loop.break_loop();
  });
  Watchdog dog(loop, kHangLimit);
  loop.run();
  EXPECT_EQ(idles, 100);
  EXPECT_FALSE(dog.fired());
  // Stopped, the Idle no longer holds the spin back.
  idle.stop();
  PollProbe probe(loop);
  bool polled_while_spinning = true;
  std::thread waker([&] {
    polled_while_spinning = probe.entered_poll.wait_for(kStillSpinning);
    keep_running.send();
  });
  loop.run(evcxx::Run::once);
  waker.join();
  EXPECT_FALSE(polled_while_spinning);
}

TEST(BusyPoll, NoSpinUnderNowait) {
  evcxx::Loop loop;
  loop.set_busy_poll(kEndless);
  evcxx::Async keep_running(loop, [] {});
  Watchdog dog(loop, kHangLimit);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(loop.run(evcxx::Run::nowait));
  EXPECT_FALSE(dog.fired());
}

TEST(BusyPoll, NoSpinAfterABreakOrAThrowInAPrepare) {
  evcxx::Loop loop;
  loop.set_busy_poll(kEndless);
  evcxx::Async keep_running(loop, [] {});
  Watchdog dog(loop, kHangLimit);
  {
    evcxx::Prepare breaker(loop, [&] { loop.break_loop(); });
    EXPECT_TRUE(loop.run());
  }
  {
    evcxx::Prepare thrower(loop, [] { throw evcxx_test::Boom(); });
    EXPECT_THROW(loop.run(), evcxx_test::Boom);
  }
  EXPECT_FALSE(dog.fired());
}

TEST(BusyPoll, TimersFireInOrder) {
  evcxx::Loop loop;
  loop.set_busy_poll(200us);
  evcxx::Async keep_running(loop, [] {});
  std::vector<int> fired;
  std::vector<std::unique_ptr<evcxx::Timer>> timers;
  constexpr std::size_t kTimers = 12;
  for (int i : {5, 0, 11, 3, 8, 1, 10, 6, 2, 9, 4, 7}) {
    timers.push_back(std::make_unique<evcxx::Timer>(loop, std::chrono::milliseconds(2 * i + 1),
                                                    [&fired, &loop, i] {
                                                      fired.push_back(i);
                                                      if (fired.size() == kTimers) {
                                                        loop.break_loop();
                                                      }
                                                    }));
  }
  // Posted work in between keeps waking the spinning loop while the timers are due.
  std::atomic<bool> stop_posting{false};
  std::thread poster([&] {
    for (int i = 0; i < 1000 && !stop_posting.load(); ++i) {
      loop.post([] {});
      std::this_thread::sleep_for(50us);
    }
  });
  Watchdog dog(loop);
  loop.run();
  stop_posting.store(true);
  poster.join();
  ASSERT_EQ(fired.size(), kTimers);
  for (std::size_t i = 0; i < kTimers; ++i) EXPECT_EQ(fired[i], static_cast<int>(i));
  EXPECT_FALSE(dog.fired());
}

TEST(BusyPoll, ChangesBetweenRunsAndInsideACallback) {
  evcxx::Loop loop;
  int calls = 0;
  evcxx::Async async(loop, [&] { ++calls; });
  PollProbe probe(loop);
  Watchdog dog(loop, kHangLimit);
  // Waits until the loop polls (it must, at once, without a spin) and wakes it.
  const auto run_expecting_no_spin = [&] {
    probe.entered_poll.clear();
    bool polled = false;
    std::thread waker([&] {
      polled = probe.entered_poll.wait_for(evcxx_test::kPatience);
      async.send();
    });
    run_once_for_send(loop, waker, calls);
    EXPECT_TRUE(polled);
  };
  // Waits for the loop not to poll (it spins) and ends the spin with a send.
  const auto run_expecting_spin = [&] {
    probe.entered_poll.clear();
    bool polled = true;
    std::thread waker([&] {
      polled = probe.entered_poll.wait_for(kStillSpinning);
      async.send();
    });
    run_once_for_send(loop, waker, calls);
    EXPECT_FALSE(polled);
  };
  loop.set_busy_poll(kEndless);
  loop.set_busy_poll(0s);
  run_expecting_no_spin();
  loop.set_busy_poll(kEndless);
  run_expecting_spin();
  run_expecting_spin();
  // Turned off by a callback: the next iteration no longer spins.
  loop.post([&] { loop.set_busy_poll(0s); });
  loop.run(evcxx::Run::nowait);
  EXPECT_EQ(loop.busy_poll().count(), 0);
  run_expecting_no_spin();
  EXPECT_EQ(calls, 4);
  EXPECT_FALSE(dog.fired());
}

TEST(BusyPoll, ABorrowedLoopOutlivesItsBusyPoll) {
  struct ev_loop* raw = ev_loop_new(EVFLAG_AUTO);
  ASSERT_NE(raw, nullptr);
  {
    evcxx::Loop loop(raw);
    loop.set_busy_poll(kEndless);
    evcxx::Async async(loop, [] {});
    loop.run(evcxx::Run::nowait);
  }
  // The busy poll's prepare is gone with the Loop: libev runs nothing that points at it.
  ev_run(raw, EVRUN_NOWAIT);
  ev_loop_destroy(raw);
}

}  // namespace
