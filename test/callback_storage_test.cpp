// How a watcher keeps its callback: by the callback's own type, so that a lambda, a member
// function bound with set_callback<&K::m>(object) and a std::reference_wrapper cost no
// allocation, a std::function is moved to the heap as it is (one allocation) and runs there, and
// a callback too large for inline storage is allocated, once, and freed with the watcher.
// Dispatch allocates nothing in any case.

#include <gtest/gtest.h>

#include <evcxx/idle.hpp>
#include <evcxx/loop.hpp>
#include <evcxx/timer.hpp>

#include <array>
#include <chrono>
#include <functional>
#include <memory>
#include <utility>

#include "counting_new.hpp"

namespace {

using namespace std::chrono_literals;

long allocations_of(const std::function<void()>& body) {
  const long before = evcxx_test::allocations_here;
  body();
  return evcxx_test::allocations_here - before;
}

struct Target {
  int calls = 0;
  void hit() { ++calls; }
};

TEST(CallbackStorage, SmallCallbacksAreKeptWithoutAllocating) {
  evcxx::Loop loop;
  int calls = 0;
  Target target;
  auto lambda = [&calls] { ++calls; };
  evcxx::Timer warm_up(loop, evcxx::deferred, 1h, [] {});
  EXPECT_EQ(allocations_of([&] {
              for (int i = 0; i < 100; ++i) {
                evcxx::Timer timer(loop, 1h, [&calls, i] { calls += i; });
                timer.set_callback<&Target::hit>(target);
                timer.set_callback(std::ref(lambda));
                timer.set_callback(nullptr);
                timer.set_callback([p = &calls, q = &target, r = &loop, s = 1] {
                  *p += s + q->calls + (r != nullptr);
                });
              }
            }),
            0);
}

TEST(CallbackStorage, AStdFunctionIsMovedToTheHeapInOneAllocation) {
  evcxx::Loop loop;
  std::array<char, 64> big{};
  evcxx::Idle::Callback callback = [big] { static_cast<void>(big); };  // allocates itself
  EXPECT_EQ(allocations_of([&] { evcxx::Idle idle(loop, evcxx::deferred, std::move(callback)); }),
            1);  // the std::function, not its target
}

// Counts the moves and copies of the object a std::function holds.
struct MoveCounter {
  long* moves;
  int* calls;
  MoveCounter(long* m, int* c) noexcept : moves(m), calls(c) {}
  MoveCounter(const MoveCounter& other) noexcept : moves(other.moves), calls(other.calls) {
    ++*moves;
  }
  MoveCounter(MoveCounter&& other) noexcept : moves(other.moves), calls(other.calls) { ++*moves; }
  MoveCounter& operator=(const MoveCounter&) = delete;
  MoveCounter& operator=(MoveCounter&&) = delete;
  ~MoveCounter() = default;
  void operator()() const { ++*calls; }
};

// A std::function small enough for its own inline buffer (libc++ keeps this one there) would be
// moved, target and all, if a call moved the std::function: it runs where it is instead.
TEST(CallbackStorage, AStdFunctionRunsInPlaceWithoutMovingItsTarget) {
  evcxx::Loop loop;
  long moves = 0;
  int calls = 0;
  evcxx::Idle idle(loop, evcxx::deferred, evcxx::Idle::Callback(MoveCounter(&moves, &calls)));
  const long moves_when_kept = moves;
  for (int i = 0; i < 100; ++i) {
    idle.feed();
    loop.run(evcxx::Run::nowait);
    idle.invoke();
  }
  EXPECT_EQ(calls, 200);
  EXPECT_EQ(moves, moves_when_kept);
}

TEST(CallbackStorage, ALargeCallbackIsAllocatedOnceAndFreedWithTheWatcher) {
  evcxx::Loop loop;
  auto witness = std::make_shared<int>(0);
  std::array<char, 128> big{};
  {
    std::unique_ptr<evcxx::Idle> idle;
    EXPECT_EQ(allocations_of([&] {
                idle = std::make_unique<evcxx::Idle>(loop, evcxx::deferred, [witness, big] {
                  ++*witness;
                  static_cast<void>(big);
                });
              }),
              2);  // the watcher and its callback
    EXPECT_EQ(witness.use_count(), 2);
    idle->invoke();
    EXPECT_EQ(*witness, 1);
  }
  EXPECT_EQ(witness.use_count(), 1);
}

TEST(CallbackStorage, DispatchAllocatesNothingHoweverTheCallbackIsKept) {
  evcxx::Loop loop;
  int calls = 0;
  std::array<char, 128> big{};
  Target target;
  evcxx::Idle copied(loop, evcxx::deferred, [&calls] { ++calls; });
  evcxx::Idle moved(loop, evcxx::deferred, evcxx::Idle::Callback([&calls] { ++calls; }));
  evcxx::Idle on_heap(loop, evcxx::deferred, [&calls, big] { calls += 1 + big[0]; });
  evcxx::Idle bound(loop, evcxx::deferred, nullptr);
  bound.set_callback<&Target::hit>(target);
  EXPECT_EQ(allocations_of([&] {
              for (int i = 0; i < 1000; ++i) {
                copied.feed();
                moved.feed();
                on_heap.feed();
                bound.feed();
                loop.run(evcxx::Run::nowait);
                copied.invoke();
              }
            }),
            0);
  EXPECT_EQ(calls, 4000);
  EXPECT_EQ(target.calls, 1000);
}

}  // namespace
