// WaitableEvent under create-set-wait-destroy hand-offs from many threads: each waiter destroys its
// event the moment its wait returns (or it sees is_set()), while the set() that released it may
// still be returning on the setter's thread. Bounded by time; meant for the ASan and TSan trees.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include <evcxx/loop.hpp>
#include <evcxx/loop_thread.hpp>
#include <evcxx/waitable_event.hpp>

#include "support.hpp"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using evcxx_test::kPatience;

// Waiter/setter thread pairs: one per CPU (at least two). More only queue for the CPUs, and the
// hand-offs then wait for time slices instead of racing.
const int kPairs = static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 2u, 8u));
constexpr auto kBudget = 2500ms;
constexpr long kMaxRounds = 2'000'000;  // per pair, should the clock be slow

// Hands one event at a time from a waiter to its setter.
struct Mailbox {
  std::atomic<evcxx::WaitableEvent*> event{nullptr};
  std::atomic<bool> closed{false};
};

// Sets each event it is handed, then forgets it: the waiter owns it and deletes it.
void run_setter(Mailbox& mailbox) {
  for (unsigned idle = 0; !mailbox.closed.load(std::memory_order_acquire);) {
    if (evcxx::WaitableEvent* event = mailbox.event.exchange(nullptr, std::memory_order_acquire)) {
      event->set();  // the waiter may free *event before this returns
      idle = 0;
    } else if (++idle % 64 == 0) {
      std::this_thread::yield();
    }
  }
}

enum class WaitMode { wait, wait_for, wait_until, poll_is_set };

struct Totals {
  std::atomic<long> rounds{0};
  std::atomic<long> lost{0};  // a wait that timed out although set() was called
  std::atomic<long> on_set_calls{0};
  std::atomic<long> late_on_set{0};  // on_set that ran after its event's destructor returned
};

// Where a round's event lives: no loop, the waiter's own loop (the waiter is its loop thread but
// not inside run(), so its Async is registered at the next run), or a LoopThread's loop (the
// waiter is a foreign thread, on_set races the destruction).
enum class Kind { standalone, own_loop, loop_thread };

// One waiter: a round makes an event of a kind picked at random, hands it to the setter, waits in
// a way picked at random and deletes the event at once.
void run_waiter(int index, Mailbox& mailbox, Totals& totals, evcxx::Loop& shared_loop,
                Clock::time_point deadline) {
  evcxx::Loop own_loop;  // this thread's loop, run now and then between rounds
  std::minstd_rand random(static_cast<unsigned>(index) * 7919u + 17u);
  long round = 0;
  for (; round < kMaxRounds && Clock::now() < deadline; ++round) {
    const unsigned pick = static_cast<unsigned>(random());
    const auto kind = static_cast<Kind>(pick % 3);
    const bool with_on_set = (pick >> 2) & 1;
    const bool with_fd = (pick >> 3) & 1;
    const auto mode = static_cast<WaitMode>((pick >> 4) % 4);
    auto destroyed = std::make_shared<std::atomic<bool>>(false);
    auto on_set = [&totals, destroyed] {
      totals.on_set_calls.fetch_add(1, std::memory_order_relaxed);
      if (destroyed->load(std::memory_order_acquire)) totals.late_on_set.fetch_add(1);
    };
    std::unique_ptr<evcxx::WaitableEvent> event;
    if (kind == Kind::standalone) {
      event = std::make_unique<evcxx::WaitableEvent>();
    } else {
      evcxx::Loop& loop = kind == Kind::own_loop ? own_loop : shared_loop;
      event = with_on_set ? std::make_unique<evcxx::WaitableEvent>(loop, on_set)
                          : std::make_unique<evcxx::WaitableEvent>(loop);
    }
    if (with_fd) {
      ASSERT_GE(event->fd(), 0);
    }
    mailbox.event.store(event.get(), std::memory_order_release);
    bool released = true;
    switch (mode) {
      case WaitMode::wait:
        event->wait();
        break;
      case WaitMode::wait_for:
        released = event->wait_for(kPatience);
        break;
      case WaitMode::wait_until:
        released = event->wait_until(Clock::now() + kPatience);
        break;
      case WaitMode::poll_is_set: {
        const auto give_up = Clock::now() + kPatience;
        while (!event->is_set() && Clock::now() < give_up) {
        }
        released = event->is_set();
        break;
      }
    }
    if (!released) totals.lost.fetch_add(1);
    event.reset();  // at once: the set() that released us may still be running
    destroyed->store(true, std::memory_order_release);
    if (round % 32 == 0) own_loop.run(evcxx::Run::nowait);
  }
  totals.rounds.fetch_add(round);
}

TEST(WaitableEventStress, WaiterDestroysTheEventAsSoonAsItIsReleased) {
  Totals totals;
  evcxx::LoopThread loop_thread("stress");
  std::vector<Mailbox> mailboxes(kPairs);
  const auto deadline = Clock::now() + kBudget;
  std::vector<std::thread> threads;
  for (int i = 0; i < kPairs; ++i) {
    threads.emplace_back(run_setter, std::ref(mailboxes[i]));
  }
  std::vector<std::thread> waiters;
  for (int i = 0; i < kPairs; ++i) {
    waiters.emplace_back(run_waiter, i, std::ref(mailboxes[i]), std::ref(totals),
                         std::ref(loop_thread.loop()), deadline);
  }
  for (auto& t : waiters) t.join();
  for (auto& m : mailboxes) m.closed.store(true, std::memory_order_release);
  for (auto& t : threads) t.join();
  EXPECT_EQ(totals.lost.load(), 0);
  EXPECT_EQ(totals.late_on_set.load(), 0);
  EXPECT_GT(totals.rounds.load(), kPairs * 10) << "the machine did almost no rounds";
  std::printf("%ld hand-offs, %ld on_set calls\n", totals.rounds.load(),
              totals.on_set_calls.load());
}

}  // namespace
