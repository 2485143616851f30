// evcxx::coro cancellation: a when_any loser, a with_timeout, a std::stop_token (from the loop's
// thread and from another) and the Loop's destruction each destroy the frame, run every local's
// destructor exactly once and never resume it; thousands of suspended frames at shutdown leak
// nothing (the ASan tree checks that).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <thread>
#include <vector>

#include <evcxx/coro.hpp>

#include "coro_support.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using evcxx::Loop;
using evcxx::LoopThread;
using evcxx::Task;
using evcxx_test::Counts;
using evcxx_test::Probe;

namespace {

Task<int> suspended_forever(Loop& loop, Counts& counts) {
  Probe outer(counts);
  {
    Probe inner(counts);
    co_await evcxx::sleep_for(loop, 1h);
    ++counts.resumed;
  }
  co_return 0;
}

// Two frames deep, with the inner one suspended on a descriptor that never becomes readable.
Task<> nested_forever(Loop& loop, int fd, Counts& counts) {
  Probe mine(counts);
  auto inner = [](Loop& l, int f, Counts& c) -> Task<> {
    Probe theirs(c);
    co_await evcxx::readable(l, f);
    ++c.resumed;
  };
  co_await inner(loop, fd, counts);
  ++counts.resumed;
}

TEST(CoroCancel, WhenAnyDestroysTheLosersBeforeItReturns) {
  Loop loop;
  evcxx_test::Bound deadline(loop);
  Counts counts;
  int alive_at_return = -1;
  evcxx::spawn(loop, [](Loop& l, Counts& c, int& alive) -> Task<> {
    auto quick = [](Loop& lp) -> Task<int> {
      co_await evcxx::sleep_for(lp, 0s);
      co_return 7;
    };
    auto first =
        co_await evcxx::when_any(suspended_forever(l, c), quick(l), suspended_forever(l, c));
    alive = c.alive();
    EXPECT_EQ(first.index(), 1u);
  }(loop, counts, alive_at_return));
  loop.run();
  EXPECT_FALSE(deadline.expired());
  EXPECT_EQ(alive_at_return, 0);
  EXPECT_EQ(counts.made.load(), 4);
  EXPECT_EQ(counts.destroyed.load(), 4);
  EXPECT_EQ(counts.resumed.load(), 0);
}

// Named tasks, and the probe read inside the co_await's full-expression: only the combinator's
// destruction of the losers before it returns can have run their destructors by then.
TEST(CoroCancel, WhenAnyDestroysNamedLosersBeforeItReturns) {
  Loop loop;
  evcxx_test::Bound deadline(loop);
  Counts counts;
  int alive_at_return = -1;
  bool losers_reset = false;
  evcxx::spawn(loop, [](Loop& l, Counts& c, int& alive, bool& reset) -> Task<> {
    auto quick = [](Loop& lp) -> Task<int> {
      co_await evcxx::sleep_for(lp, 0s);
      co_return 7;
    };
    Task<int> slow_a = suspended_forever(l, c);
    Task<int> fast = quick(l);
    Task<int> slow_b = suspended_forever(l, c);
    // A braced list runs left to right: c.alive() runs right after the co_await returned, before
    // the end of the full-expression destroys the awaiter.
    struct Seen {
      std::variant<int, int, int> first;
      int alive;
    } seen{co_await evcxx::when_any(slow_a, fast, slow_b), c.alive()};
    alive = seen.alive;
    reset = !slow_a.valid() && !slow_b.valid() && fast.valid();
    EXPECT_EQ(std::get<1>(seen.first), 7);
  }(loop, counts, alive_at_return, losers_reset));
  loop.run();
  EXPECT_FALSE(deadline.expired());
  EXPECT_EQ(alive_at_return, 0);
  EXPECT_TRUE(losers_reset);
  EXPECT_EQ(counts.made.load(), 4);
  EXPECT_EQ(counts.destroyed.load(), 4);
  EXPECT_EQ(counts.resumed.load(), 0);
}

TEST(CoroCancel, WithTimeoutDestroysTheTaskBeforeItReturns) {
  Loop loop;
  evcxx_test::Bound deadline(loop);
  Counts counts;
  int alive_at_return = -1;
  bool empty = false;
  evcxx::spawn(loop, [](Loop& l, Counts& c, int& alive, bool& e) -> Task<> {
    // Read inside the full-expression (a braced list runs left to right), before the awaiter dies.
    struct Seen {
      std::optional<int> result;
      int alive;
    } seen{co_await evcxx::with_timeout(l, 1ms, suspended_forever(l, c)), c.alive()};
    alive = seen.alive;
    e = !seen.result.has_value();
  }(loop, counts, alive_at_return, empty));
  loop.run();
  EXPECT_FALSE(deadline.expired());
  EXPECT_TRUE(empty);
  EXPECT_EQ(alive_at_return, 0);
  EXPECT_EQ(counts.made.load(), 2);
  EXPECT_EQ(counts.destroyed.load(), 2);
  EXPECT_EQ(counts.resumed.load(), 0);
}

// A coroutine cancelled while it co_awaits a Task it borrowed (a reference to a Task another
// frame owns): the borrowed Task is destroyed with it, as when_any and with_timeout destroy a
// borrowed child, instead of later resuming the destroyed waiter (heap-use-after-free).
TEST(CoroCancel, CancellingAWaiterOfABorrowedTaskDestroysThatTask) {
  Loop loop;
  evcxx_test::Bound deadline(loop);
  Counts counts;
  bool borrowed_reset = false;
  bool timed_out = false;
  evcxx::spawn(loop, [](Loop& l, Counts& c, bool& reset, bool& out) -> Task<> {
    auto finishes_later = [](Loop& lp, Counts& cs) -> Task<int> {
      Probe probe(cs);
      co_await evcxx::sleep_for(lp, 20ms);
      co_return 1;
    };
    auto waiter = [](Task<int>& borrowed, Counts& cs) -> Task<int> {
      Probe probe(cs);
      const int value = co_await borrowed;
      ++cs.resumed;  // never: with_timeout cancelled this frame
      co_return value;
    };
    Task<int> owned = finishes_later(l, c);
    out = !(co_await evcxx::with_timeout(l, 1ms, waiter(owned, c))).has_value();
    reset = !owned.valid();
    co_await evcxx::sleep_for(l, 50ms);  // past the borrowed task's own wake-up
  }(loop, counts, borrowed_reset, timed_out));
  loop.run();
  EXPECT_FALSE(deadline.expired());
  EXPECT_TRUE(timed_out);
  EXPECT_TRUE(borrowed_reset) << "the borrowed Task outlived the waiter that was awaiting it";
  EXPECT_EQ(counts.made.load(), 2);
  EXPECT_EQ(counts.destroyed.load(), 2);
  EXPECT_EQ(counts.resumed.load(), 0);
}

TEST(CoroCancel, AStopTokenCancelsASuspendedTaskOnTheLoopThread) {
  Loop loop;
  evcxx_test::Bound deadline(loop);
  Counts counts;
  evcxx_test::Pipe pipe;
  evcxx::StopSource stop;
  evcxx::spawn(loop, nested_forever(loop, pipe.read.get(), counts), stop.get_token());
  evcxx::spawn(loop, [](Loop& l, evcxx::StopSource& s) -> Task<> {
    co_await evcxx::sleep_for(l, 0s);
    s.request_stop();
  }(loop, stop));
  loop.run();  // returns once the cancelled task's Io is gone
  EXPECT_FALSE(deadline.expired());
  EXPECT_EQ(counts.made.load(), 2);
  EXPECT_EQ(counts.destroyed.load(), 2);
  EXPECT_EQ(counts.resumed.load(), 0);
}

TEST(CoroCancel, AStopTokenCancelsFromAnotherThread) {
  Counts counts;
  evcxx_test::Pipe pipe;  // outlives the loop thread, which may still touch its descriptors
  evcxx::StopSource stop;
  evcxx::WaitableEvent suspended;
  LoopThread thread("coro-stop");
  auto body = [](Loop& l, int fd, Counts& c, evcxx::WaitableEvent& s) -> Task<int> {
    Probe mine(c);
    s.set();
    co_await evcxx::readable(l, fd);
    ++c.resumed;
    co_return 1;
  };
  // spawn_future has no token: the future shows the cancellation of a spawn()ed twin instead.
  evcxx::spawn(
      thread.loop(),
      [](Loop& l, int fd, Counts& c, evcxx::WaitableEvent& s, auto& b) -> Task<> {
        co_await b(l, fd, c, s);
      }(thread.loop(), pipe.read.get(), counts, suspended, body),
      stop.get_token());
  ASSERT_TRUE(suspended.wait_for(evcxx_test::kPatience));
  std::thread stopper([&] { stop.request_stop(); });
  stopper.join();
  ASSERT_TRUE(counts.destroyed_one.wait_for(evcxx_test::kPatience));
  thread.submit([] {}).wait();  // a resumption would have come by now too
  EXPECT_EQ(counts.made.load(), 1);
  EXPECT_EQ(counts.destroyed.load(), 1);
  EXPECT_EQ(counts.resumed.load(), 0);
}

TEST(CoroCancel, AStopRequestedBeforeTheStartDestroysTheTaskUnrun) {
  Loop loop;
  Counts counts;
  evcxx::StopSource stop;
  stop.request_stop();
  evcxx::spawn(
      loop, [](Loop& l, Counts& c) -> Task<> { co_await suspended_forever(l, c); }(loop, counts),
      stop.get_token());
  loop.run();
  EXPECT_EQ(counts.made.load(), 0);
}

TEST(CoroCancel, TheLoopsDestructionDestroysSuspendedFramesAndCancelsFutures) {
  Counts counts;
  std::future<int> future;
  evcxx_test::Pipe pipe;
  {
    Loop loop;
    future = evcxx::spawn_future(loop, suspended_forever(loop, counts));
    evcxx::spawn(loop, nested_forever(loop, pipe.read.get(), counts));
    loop.run(evcxx::Run::nowait);
    EXPECT_EQ(counts.alive(), 4);
  }
  EXPECT_EQ(counts.made.load(), 4);
  EXPECT_EQ(counts.destroyed.load(), 4);
  EXPECT_EQ(counts.resumed.load(), 0);
  EXPECT_THROW(future.get(), evcxx::Cancelled);
}

TEST(CoroCancel, TheLoopsDestructionDestroysTasksThatNeverStarted) {
  Counts counts;
  std::future<int> future;
  {
    Loop loop;
    future = evcxx::spawn_future(loop, [](Counts& c) -> Task<int> {
      Probe p(c);
      co_return 1;
    }(counts));
  }
  EXPECT_EQ(counts.made.load(), 0);
  EXPECT_THROW(future.get(), evcxx::Cancelled);
}

TEST(CoroCancel, ThousandsOfSuspendedCoroutinesAtShutdownAreAllDestroyed) {
  constexpr int tasks = 5000;
  Counts counts;
  evcxx_test::Pipe pipe;
  {
    LoopThread thread("coro-many");
    for (int i = 0; i < tasks; ++i) {
      if (i % 2 == 0) {
        evcxx::spawn(thread.loop(), nested_forever(thread.loop(), pipe.read.get(), counts));
      } else {
        evcxx::spawn(thread.loop(), [](Loop& l, Counts& c) -> Task<> {
          co_await suspended_forever(l, c);
        }(thread.loop(), counts));
      }
    }
    thread.submit([] {}).wait();  // every one has started and suspended
    EXPECT_EQ(counts.alive(), 2 * tasks);
  }
  EXPECT_EQ(counts.made.load(), 2 * tasks);
  EXPECT_EQ(counts.destroyed.load(), 2 * tasks);
  EXPECT_EQ(counts.resumed.load(), 0);
}

TEST(CoroCancel, ATaskInFlightToADyingLoopIsDestroyed) {
  Counts counts;
  auto future = std::make_unique<std::future<int>>();
  {
    LoopThread home("coro-home");
    Loop target;  // never run: the hop waits in its queue until it dies
    *future = evcxx::spawn_future(home.loop(), [](Loop& t, Counts& c) -> Task<int> {
      Probe p(c);
      co_await evcxx::resume_on(t);
      ++c.resumed;
      co_return 1;
    }(target, counts));
    home.submit([] {}).wait();  // the hop was posted
    home.stop();
    home.join();
  }
  EXPECT_EQ(counts.made.load(), 1);
  EXPECT_EQ(counts.destroyed.load(), 1);
  EXPECT_EQ(counts.resumed.load(), 0);
  EXPECT_THROW(future->get(), evcxx::Cancelled);
}

}  // namespace

// ~Loop visits its watchers newest first; the registry of the loop's tasks is made when the first
// task arrives, so a watcher made before that and owned by a frame is the one ~Loop visits next.
TEST(CoroCancel, TheLoopsDestructionDestroysAFrameOwningAnOlderWatcher) {
  Counts counts;
  bool fired = false;
  {
    Loop loop;
    auto older =
        std::make_unique<evcxx::Timer>(loop, evcxx::deferred, 1h, [&fired] { fired = true; });
    evcxx::spawn(loop, [](Loop& l, std::unique_ptr<evcxx::Timer> owned, Counts& c) -> Task<> {
      Probe p(c);
      co_await evcxx::sleep_for(l, 1h);
      ++c.resumed;
      owned.reset();
    }(loop, std::move(older), counts));
    loop.run(evcxx::Run::nowait);
    EXPECT_EQ(counts.alive(), 1);
  }
  EXPECT_EQ(counts.made.load(), 1);
  EXPECT_EQ(counts.destroyed.load(), 1);
  EXPECT_EQ(counts.resumed.load(), 0);
  EXPECT_FALSE(fired);
}
