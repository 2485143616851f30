// evcxx::coro allocates nothing per co_await: a counting global operator new sees no allocation
// while a warm coroutine awaits a timer, a descriptor, a nested Task, an event and hops between
// two loops many times (only the frames themselves are allocated, once).
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <future>
#include <new>
#include <vector>

#include <evcxx/coro.hpp>

#include "counting_new.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using evcxx::Loop;
using evcxx::Task;
using evcxx_test::counting;

namespace {

constexpr int kAwaits = 1000;

Task<int> plain_value(int x) {
  co_return x + 1;
}

// Warms up (first posts, first watchers), then counts allocations over kAwaits awaits of each kind.
Task<long> measure(Loop& loop, Loop& other, int fd, evcxx::WaitableEvent& event) {
  evcxx::IoWatch watch(loop, fd, evcxx::IoEvent::readable);
  for (int pass = 0; pass < 2; ++pass) {
    if (pass == 1) {
      evcxx_test::allocations_while_counting = 0;
      counting = true;
    }
    for (int i = 0; i < kAwaits; ++i) {
      co_await evcxx::sleep_for(loop, 0s);
      co_await evcxx::readable(loop, fd);
      co_await watch;
      co_await evcxx::until_set(loop, event);
      co_await evcxx::resume_on(other);
      co_await evcxx::resume_on(loop);
    }
    counting = false;
  }
  co_return evcxx_test::allocations_while_counting.load();
}

TEST(CoroAlloc, NoAllocationPerCoAwait) {
  evcxx_test::Pipe pipe;  // outlives the loop threads, which may still touch its descriptors
  evcxx_test::write_all(pipe.write.get(), "x");  // stays readable
  evcxx::WaitableEvent event;
  event.set();
  evcxx::LoopThread home("coro-home");
  evcxx::LoopThread other("coro-other");
  evcxx::Task<long> task = measure(home.loop(), other.loop(), pipe.read.get(), event);
  auto future = evcxx::spawn_future(home.loop(), std::move(task));
  ASSERT_EQ(future.wait_for(evcxx_test::kPatience), std::future_status::ready);
  EXPECT_EQ(future.get(), 0) << "allocations during " << 6 * kAwaits << " co_awaits";
}

TEST(CoroAlloc, TheCounterSeesAllocations) {
  // The counter works: a spawned coroutine's frame escapes, so it is allocated (clang may elide
  // the frame of a Task destroyed where it was made), and so is an explicit operator new call.
  Loop loop;
  evcxx_test::allocations_while_counting = 0;
  counting = true;
  void* block = ::operator new(16);
  auto future = evcxx::spawn_future(loop, plain_value(1));
  counting = false;
  ::operator delete(block);
  EXPECT_GE(evcxx_test::allocations_while_counting.load(), 2);
  loop.run();
  EXPECT_EQ(future.get(), 2);
}

Task<> sleep_a_moment(Loop& loop) {
  co_await evcxx::sleep_for(loop, 0s);
}

// Allocations per co_await of each remaining awaitable and combinator, measured over kAwaits
// awaits after a warm-up: none beyond the frames of the Tasks it is given (clang may elide some).
Task<std::vector<long>> measure_each(Loop& loop, int fd, evcxx::LoopThread& worker) {
  std::vector<long> per_kind;
  per_kind.reserve(8);
  for (int kind = 0; kind < 7; ++kind) {
    for (int pass = 0; pass < 2; ++pass) {
      if (pass == 1) {
        evcxx_test::allocations_while_counting = 0;
        counting = true;
      }
      for (int i = 0; i < kAwaits; ++i) {
        switch (kind) {
          case 0:
            co_await evcxx::writable(loop, fd);
            break;
          case 1:
            co_await evcxx::sleep_until(loop, loop.now());
            break;
          case 2:
            co_await sleep_a_moment(loop);
            break;
          case 3:
            co_await evcxx::with_timeout(loop, 1h, sleep_a_moment(loop));
            break;
          case 4:
            co_await evcxx::when_all(sleep_a_moment(loop), plain_value(1));
            break;
          case 5:
            co_await evcxx::when_any(sleep_a_moment(loop), sleep_a_moment(loop));
            break;
          default:
            co_await evcxx::submit(worker, [] { return 1; });
            break;
        }
      }
      counting = false;
    }
    per_kind.push_back(evcxx_test::allocations_while_counting.load());
  }
  co_return per_kind;
}

TEST(CoroAlloc, EveryOtherAwaitableAllocatesNothingBeyondTheFramesItIsGiven) {
  evcxx_test::Pipe pipe;  // stays writable
  evcxx::LoopThread home("coro-home");
  evcxx::LoopThread worker("coro-worker");
  auto future =
      evcxx::spawn_future(home.loop(), measure_each(home.loop(), pipe.write.get(), worker));
  ASSERT_EQ(future.wait_for(evcxx_test::kPatience), std::future_status::ready);
  const std::vector<long> counts = future.get();
  ASSERT_EQ(counts.size(), 7u);
  EXPECT_EQ(counts[0], 0) << "writable()";
  EXPECT_EQ(counts[1], 0) << "sleep_until()";
  EXPECT_LE(counts[2], 1L * kAwaits) << "a nested Task: its frame";
  EXPECT_LE(counts[3], 1L * kAwaits) << "with_timeout(): the child's frame";
  EXPECT_LE(counts[4], 2L * kAwaits) << "when_all() of two: their frames";
  EXPECT_LE(counts[5], 2L * kAwaits) << "when_any() of two: their frames";
  EXPECT_LE(counts[6], 1L * kAwaits) << "submit(): the documented hand-off block";
}

}  // namespace
