#include <gtest/gtest.h>

#include <csignal>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include <evcxx/async.hpp>
#include <evcxx/cleanup.hpp>
#include <evcxx/signal.hpp>
#include <evcxx/waitable_event.hpp>

using evcxx::Cleanup;
using evcxx::Loop;

TEST(Cleanup, RunsOnceWhenItsOwnedLoopIsDestroyedThenIsDetached) {
  auto loop = std::make_unique<Loop>();
  int calls = 0;
  Cleanup cleanup(*loop, [&] { ++calls; });
  EXPECT_TRUE(cleanup.active());
  loop->run(evcxx::Run::nowait);
  EXPECT_EQ(calls, 0);

  loop.reset();

  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(cleanup.attached());
  EXPECT_FALSE(cleanup.active());
  EXPECT_THROW(cleanup.start(), std::logic_error);
  EXPECT_NO_THROW(cleanup.set_priority(1));  // inactive now, so allowed
}

TEST(Cleanup, DoesNotKeepItsLoopAlive) {
  Loop loop;
  int calls = 0;
  Cleanup cleanup(loop, [&] { ++calls; });
  EXPECT_FALSE(loop.run());  // returns at once: only a Cleanup is active
  EXPECT_TRUE(cleanup.active());
  EXPECT_EQ(calls, 0);
}

TEST(Cleanup, StoppedOrDestroyedCleanupsDoNotRun) {
  auto loop = std::make_unique<Loop>();
  int calls = 0;
  Cleanup stopped(*loop, [&] { ++calls; });
  stopped.stop();
  Cleanup never_started(*loop, evcxx::deferred, [&] { ++calls; });
  {
    Cleanup destroyed(*loop, [&] { ++calls; });
  }
  loop.reset();
  EXPECT_EQ(calls, 0);
}

TEST(Cleanup, OtherWatchersAreAlreadyDetachedWhenItRuns) {
  auto loop = std::make_unique<Loop>();
  evcxx::Async async(*loop, [] {});
  bool async_attached = true;
  bool async_active = true;
  bool own_loop_owned = false;
  Cleanup* self = nullptr;
  Cleanup cleanup(*loop, [&] {
    async_attached = async.attached();
    async_active = async.active();
    own_loop_owned = self->loop().owns_loop();
  });
  self = &cleanup;
  loop.reset();
  EXPECT_FALSE(async_attached);
  EXPECT_FALSE(async_active);
  EXPECT_TRUE(own_loop_owned);
}

TEST(Cleanup, EveryCleanupRunsEvenWhenOneThrowsOrDestroysItself) {
  auto loop = std::make_unique<Loop>();
  std::string ran;
  Cleanup thrower(*loop, [&] {
    ran += "thrower ";
    throw std::runtime_error("dropped: nobody is left to catch it");
  });
  std::unique_ptr<Cleanup> self_destroying;
  self_destroying = std::make_unique<Cleanup>(*loop, [&] {
    ran += "self_destroying ";
    self_destroying.reset();
  });
  Cleanup last(*loop, [&] { ran += "last "; });

  EXPECT_NO_THROW(loop.reset());

  EXPECT_NE(ran.find("thrower "), std::string::npos);
  EXPECT_NE(ran.find("self_destroying "), std::string::npos);
  EXPECT_NE(ran.find("last "), std::string::npos);
  EXPECT_EQ(self_destroying, nullptr);
  EXPECT_FALSE(thrower.active());
}

TEST(Cleanup, ABorrowedLoopOnlyDetachesItAndTheRealOwnerDoesNotRunIt) {
  struct ev_loop* raw = ev_loop_new(EVFLAG_AUTO);
  ASSERT_NE(raw, nullptr);
  auto borrowed = std::make_unique<Loop>(raw);
  int calls = 0;
  Cleanup cleanup(*borrowed, [&] { ++calls; });
  EXPECT_TRUE(cleanup.active());

  borrowed.reset();  // the wrapper dies; the ev_loop lives on
  EXPECT_EQ(calls, 0);
  EXPECT_FALSE(cleanup.attached());
  EXPECT_FALSE(cleanup.active());

  ev_loop_destroy(raw);  // the real owner destroys it: the detached Cleanup is not run
  EXPECT_EQ(calls, 0);
}

// A watcher made inside a Cleanup callback would belong to a loop libev is freeing: a Signal made
// there kept its signal owned by the dead loop, so no later Loop could watch it.
TEST(Cleanup, WatchersCannotBeCreatedOnALoopBeingDestroyed) {
  std::optional<evcxx::Signal> late;
  std::optional<evcxx::Cleanup> cleanup;  // outlives the loop, so that the loop runs it
  std::string error;
  {
    evcxx::Loop loop;
    cleanup.emplace(loop, [&] {
      try {
        late.emplace(loop, SIGUSR1, [] {});
      } catch (const std::logic_error& e) {
        error = e.what();
      }
    });
  }
  EXPECT_FALSE(late.has_value());
  EXPECT_NE(error.find("being destroyed"), std::string::npos) << error;
  evcxx::Loop next;
  evcxx::Signal signal(next, SIGUSR1, [] {});  // the signal is free for another loop
  EXPECT_TRUE(signal.active());
}

TEST(Cleanup, AWaitableEventCannotBeMadeForALoopBeingDestroyed) {
  std::optional<evcxx::Cleanup> cleanup;
  std::string error;
  {
    evcxx::Loop loop;
    cleanup.emplace(loop, [&] {
      try {
        evcxx::WaitableEvent late(loop, [] {});
      } catch (const std::logic_error& e) {
        error = e.what();
      }
    });
  }
  EXPECT_NE(error.find("being destroyed"), std::string::npos) << error;
}
