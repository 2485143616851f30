// evcxx::coro under stress: races between cancellation and the event that would resume a frame
// (the same loop iteration, another thread's stop request, a LoopThread stopping), deep chains of
// synchronous co_awaits, and combinators of every size. Each test is bounded by a count and a
// time limit (at most about 2 s) and stops by itself; the sanitizer trees check the frames.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
#include <memory>
#include <stdexcept>
#include <thread>
#include <vector>

#include <evcxx/coro.hpp>

#include "coro_support.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using evcxx::Loop;
using evcxx::LoopThread;
using evcxx::Task;
using evcxx_test::Boom;
using evcxx_test::Counts;
using evcxx_test::Probe;

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kBudget = 2s;  // per test, of stress; the counts below usually end it sooner

Task<int> at_once(int x) {
  co_return x;
}

Task<> void_at_once() {
  co_return;
}

Task<int> throws_at_once() {
  throw Boom();
  co_return 0;
}

// The stack pointer of the caller's frame, not inlined, so the coroutine's depth shows.
[[gnu::noinline]] std::uintptr_t stack_here() {
  return reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0));
}

std::uintptr_t distance(std::uintptr_t a, std::uintptr_t b) {
  return a > b ? a - b : b - a;
}

TEST(CoroStress, HundredThousandSynchronousAwaitsKeepTheStackFlat) {
  constexpr int awaits = 100000;
  Loop loop;
  evcxx_test::Bound deadline(loop);
  long sum = 0;
  std::uintptr_t deepest = 0;
  evcxx::spawn(loop, [](Loop& l, long& s, std::uintptr_t& d) -> Task<> {
    const std::uintptr_t start = stack_here();
    auto note = [&] { d = std::max(d, distance(start, stack_here())); };
    for (int i = 0; i < awaits; ++i) {
      s += co_await at_once(1);
      note();
    }
    for (int i = 0; i < awaits; ++i) {
      co_await void_at_once();
      note();
    }
    for (int i = 0; i < awaits; ++i) {
      co_await evcxx::resume_on(l);  // already there: no hop
      note();
    }
    for (int i = 0; i < awaits / 10; ++i) {
      auto [a, b] = co_await evcxx::when_all(at_once(1), at_once(2));
      s += a + b;
      auto first = co_await evcxx::when_any(at_once(4), at_once(5));
      s += std::get<0>(first);
      s += (co_await evcxx::with_timeout(l, 1h, at_once(1))).value_or(100);
      note();
    }
  }(loop, sum, deepest));
  loop.run();
  EXPECT_FALSE(deadline.expired());
  EXPECT_EQ(sum, 2L * awaits / 2 + awaits / 10 * 8);
  // A non-tail transfer costs a frame per await: 100000 of them would be megabytes deep.
  EXPECT_LT(deepest, 64u * 1024u);
}

TEST(CoroStress, CombinatorsOfZeroOneAndManyChildrenNestedAndThrowing) {
  Loop loop;
  evcxx_test::Bound deadline(loop);
  Counts counts;
  int checks = 0;
  evcxx::spawn(loop, [](Loop& l, Counts& c, int& n) -> Task<> {
    auto later = [](Loop& lp, Counts& cs, int x) -> Task<int> {
      Probe p(cs);
      co_await evcxx::sleep_for(lp, 0s);
      co_return x;
    };
    auto forever = [](Loop& lp, Counts& cs) -> Task<int> {
      Probe p(cs);
      co_await evcxx::sleep_for(lp, 1h);
      ++cs.resumed;
      co_return -1;
    };
    std::tuple<> none = co_await evcxx::when_all();
    static_cast<void>(none);
    ++n;
    auto [one] = co_await evcxx::when_all(later(l, c, 1));
    EXPECT_EQ(one, 1);
    ++n;
    auto single = co_await evcxx::when_any(later(l, c, 2));
    EXPECT_EQ(std::get<0>(single), 2);
    ++n;
    auto many = co_await evcxx::when_all(later(l, c, 1), later(l, c, 2), at_once(3), later(l, c, 4),
                                         at_once(5), later(l, c, 6), later(l, c, 7), at_once(8));
    EXPECT_EQ(std::get<0>(many) + std::get<3>(many) + std::get<7>(many), 13);
    ++n;
    // Nested: the inner when_any's loser and the outer with_timeout's timer are both cancelled.
    auto nested = co_await evcxx::when_all(
        [](Loop& lp, Counts& cs, auto& f, auto& lt) -> Task<int> {
          auto first = co_await evcxx::when_any(f(lp, cs), lt(lp, cs, 10));
          co_return std::get<1>(first);
        }(l, c, forever, later),
        [](Loop& lp, Counts& cs, auto& lt) -> Task<int> {
          auto r = co_await evcxx::with_timeout(lp, 1h, lt(lp, cs, 20));
          co_return r.value_or(-1);
        }(l, c, later));
    EXPECT_EQ(std::get<0>(nested) + std::get<1>(nested), 30);
    ++n;
    // A child that throws synchronously, first, in the middle and alone.
    for (int where = 0; where < 3; ++where) {
      bool caught = false;
      try {
        if (where == 0) co_await evcxx::when_all(throws_at_once(), forever(l, c));
        if (where == 1) co_await evcxx::when_any(forever(l, c), throws_at_once(), later(l, c, 1));
        if (where == 2) co_await evcxx::with_timeout(l, 1h, throws_at_once());
      } catch (const Boom&) {
        caught = true;
      }
      EXPECT_TRUE(caught) << where;
      ++n;
    }
    EXPECT_EQ(c.alive(), 0);
  }(loop, counts, checks));
  loop.run();
  EXPECT_FALSE(deadline.expired());
  EXPECT_EQ(checks, 8);
  EXPECT_EQ(counts.alive(), 0);
  EXPECT_GT(counts.made.load(), 10);
  EXPECT_EQ(counts.resumed.load(), 0);
}

// The winner and the loser are due in the same loop iteration, in either order: the loser is
// destroyed while libev has its event pending, and must never resume.
TEST(CoroStress, WinnerAndLoserDueInTheSameIteration) {
  evcxx_test::Pipe pipe;
  evcxx_test::write_all(pipe.write.get(), "x");  // stays readable
  Loop loop;
  Counts counts;
  int winners = 0;
  int rounds = 0;
  const auto end = Clock::now() + kBudget;
  for (; rounds < 2000 && Clock::now() < end; ++rounds) {
    evcxx::spawn(loop, [](Loop& l, int fd, Counts& c, int& w, int round) -> Task<> {
      auto on_timer = [](Loop& lp, Counts& cs, int& wn) -> Task<> {
        Probe p(cs);
        co_await evcxx::sleep_for(lp, 0s);
        ++wn;
      };
      auto on_fd = [](Loop& lp, int f, Counts& cs, int& wn) -> Task<> {
        Probe p(cs);
        co_await evcxx::readable(lp, f);
        ++wn;
      };
      if (round % 3 == 0) {
        co_await evcxx::when_any(on_timer(l, c, w), on_fd(l, fd, c, w));
      } else if (round % 3 == 1) {
        co_await evcxx::when_any(on_fd(l, fd, c, w), on_timer(l, c, w));
      } else {
        const bool in_time = co_await evcxx::with_timeout(l, 0s, on_fd(l, fd, c, w));
        if (!in_time) ++w;  // the timeout won
      }
    }(loop, pipe.read.get(), counts, winners, rounds));
    loop.run();
    ASSERT_EQ(counts.alive(), 0) << "round " << rounds;
  }
  EXPECT_EQ(winners, rounds);  // exactly one winner each round; a resumed loser counts twice
}

// A task hopping between two loop threads, cancelled by a stop request from a third thread at
// any point of its hops.
TEST(CoroStress, AStopFromAnotherThreadDuringAPingPong) {
  evcxx::WaitableEvent hopping;
  LoopThread a("coro-ping");
  LoopThread b("coro-pong");
  Counts counts;
  int rounds = 0;
  const auto end = Clock::now() + kBudget;
  for (; rounds < 200 && Clock::now() < end; ++rounds) {
    hopping.clear();
    evcxx::StopSource stop;
    evcxx::spawn(
        a.loop(),
        [](LoopThread& x, LoopThread& y, Counts& c, evcxx::WaitableEvent& h) -> Task<> {
          Probe p(c);
          for (long i = 0;; ++i) {
            co_await evcxx::resume_on(y);
            co_await evcxx::resume_on(x);
            if (i == 3) h.set();
          }
        }(a, b, counts, hopping),
        stop.get_token());
    ASSERT_TRUE(hopping.wait_for(evcxx_test::kPatience));
    std::thread stopper([&] {
      for (int spin = 0; spin < rounds * 37 % 5000; ++spin) {
        std::atomic_signal_fence(std::memory_order_seq_cst);  // a delay the compiler keeps
      }
      stop.request_stop();
    });
    stopper.join();
    counts.destroyed_one.clear();
    if (counts.alive() != 0) {
      ASSERT_TRUE(counts.destroyed_one.wait_for(evcxx_test::kPatience)) << "round " << rounds;
    }
    ASSERT_EQ(counts.alive(), 0);
  }
  EXPECT_GT(rounds, 0);
  // Both threads end before either Loop is destroyed: the post() of the last hop may still be
  // returning on one thread when the other loop has already destroyed the task.
  a.stop();
  b.stop();
  a.join();
  b.join();
}

// A stop requested while the task is between depart and stay of a refused resume_on() is lost
// unless stay() looks at it: the task must still be destroyed.
TEST(CoroStress, AStopDuringARefusedResumeOnIsNotLost) {
  LoopThread dead("coro-dead");
  dead.stop();
  dead.join();
  evcxx::WaitableEvent looping;
  LoopThread home("coro-home");
  Counts counts;
  int rounds = 0;
  int refused = 0;
  const auto end = Clock::now() + kBudget;
  for (; rounds < 3000 && Clock::now() < end; ++rounds) {
    looping.clear();
    counts.destroyed_one.clear();
    evcxx::StopSource stop;
    evcxx::spawn(
        home.loop(),
        [](Loop& h, Loop& d, Counts& c, evcxx::WaitableEvent& l, int& r) -> Task<> {
          Probe p(c);
          for (int i = 0;; ++i) {
            for (int k = 0; k < 16; ++k) {  // mostly refused hops: a wide window for the race
              try {
                co_await evcxx::resume_on(d);
              } catch (const evcxx::LoopStopped&) {
                ++r;
              }
            }
            if (i == 2) l.set();
            co_await evcxx::sleep_for(h, 0s);
          }
        }(home.loop(), dead.loop(), counts, looping, refused),
        stop.get_token());
    ASSERT_TRUE(looping.wait_for(evcxx_test::kPatience));
    stop.request_stop();
    ASSERT_TRUE(counts.destroyed_one.wait_for(2s)) << "the stop was lost in round " << rounds;
    ASSERT_EQ(counts.alive(), 0);
  }
  EXPECT_GT(refused, 0);
}

// Threads spawn while the LoopThread stops: each future becomes ready with the value,
// evcxx::Cancelled (accepted, then destroyed with the loop) or LoopStopped (refused).
TEST(CoroStress, SpawnFromOtherThreadsWhileTheLoopThreadStops) {
  Counts counts;
  int rounds = 0;
  int values = 0;
  int cancelled = 0;
  int refused = 0;
  const auto end = Clock::now() + kBudget;
  for (; rounds < 40 && Clock::now() < end; ++rounds) {
    std::vector<std::future<int>> futures[2];
    {
      LoopThread thread("coro-stopping");
      std::atomic<int> spawned{0};
      auto spawner = [&](std::vector<std::future<int>>& out) {
        for (int i = 0; i < 200; ++i) {
          out.push_back(
              evcxx::spawn_future(thread.loop(), [](Loop& l, Counts& c, int n) -> Task<int> {
                Probe p(c);
                co_await evcxx::sleep_for(l, 0s);
                if (n % 2 == 0) co_await evcxx::sleep_for(l, 1h);
                co_return n;
              }(thread.loop(), counts, i)));
          ++spawned;
        }
      };
      std::thread first(spawner, std::ref(futures[0]));
      std::thread second(spawner, std::ref(futures[1]));
      while (spawned.load() < 20 + rounds * 7) std::this_thread::yield();
      thread.stop();
      first.join();
      second.join();
    }
    for (auto& list : futures) {
      for (auto& future : list) {
        ASSERT_EQ(future.wait_for(0s), std::future_status::ready);
        try {
          EXPECT_EQ(future.get() % 2, 1);
          ++values;
        } catch (const evcxx::Cancelled&) {
          ++cancelled;
        } catch (const evcxx::LoopStopped&) {
          ++refused;
        }
      }
    }
    ASSERT_EQ(counts.alive(), 0);
  }
  EXPECT_EQ(values + cancelled + refused, rounds * 400);
  EXPECT_GT(cancelled, 0);
  EXPECT_EQ(counts.resumed.load(), 0);
}

// The Loop dies while another thread keeps making the awaited descriptors readable.
TEST(CoroStress, TheLoopDiesWhileItsEventsArrive) {
  constexpr int kTasks = 16;
  Counts counts;
  int rounds = 0;
  const auto end = Clock::now() + kBudget;
  for (; rounds < 30 && Clock::now() < end; ++rounds) {
    std::vector<evcxx_test::Pipe> pipes(kTasks);  // outlive the loop thread
    std::atomic<long> reads{0};
    std::atomic<bool> writing{true};
    std::thread writer([&] {
      for (long n = 0; writing.load() && n < 2000000; ++n) {
        const char byte = 'x';
        static_cast<void>(
            ::write(pipes[static_cast<std::size_t>(n % kTasks)].write.get(), &byte, 1));
        if (n % 64 == 0) std::this_thread::yield();
      }
    });
    {
      LoopThread thread("coro-dying");
      for (auto& pipe : pipes) {
        evcxx::spawn(thread.loop(), [](Loop& l, int fd, Counts& c, std::atomic<long>& r) -> Task<> {
          Probe p(c);
          char buffer[64];
          for (;;) {
            co_await evcxx::readable(l, fd);
            if (::read(fd, buffer, sizeof buffer) > 0) ++r;
          }
        }(thread.loop(), pipe.read.get(), counts, reads));
      }
      const auto busy_until = Clock::now() + 2s;
      while (reads.load() < 50 + rounds * 10 && Clock::now() < busy_until) {
        std::this_thread::yield();
      }
    }
    writing = false;
    writer.join();
    ASSERT_EQ(counts.alive(), 0);
  }
  EXPECT_EQ(counts.made.load(), rounds * kTasks);
}

// An awaitable whose watcher cannot be made throws at the co_await and leaves nothing behind.
TEST(CoroStress, AnAwaitableThatCannotStartThrowsAtTheAwaiter) {
  Loop loop;
  evcxx_test::Bound deadline(loop);
  int caught = 0;
  evcxx::spawn(loop, [](Loop& l, int& n) -> Task<> {
    for (int i = 0; i < 1000; ++i) {
      try {
        co_await evcxx::readable(l, -1);
      } catch (const std::invalid_argument&) {
        ++n;
      }
      try {
        co_await evcxx::sleep_for(l, -1s);
      } catch (const std::invalid_argument&) {
        ++n;
      }
      try {
        co_await evcxx::with_timeout(l, -1s, at_once(1));
      } catch (const std::invalid_argument&) {
        ++n;
      }
    }
  }(loop, caught));
  loop.run();  // returns at once: nothing stayed registered
  EXPECT_FALSE(deadline.expired());
  EXPECT_EQ(caught, 3000);
}

}  // namespace
