// Exceptions thrown by callbacks and tasks: rethrown on the loop thread, nothing due is lost, and
// the loop and its watchers stay usable.

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <evcxx/async.hpp>
#include <evcxx/loop.hpp>
#include <evcxx/waitable_event.hpp>

#include "support.hpp"

using evcxx_test::Watchdog;

namespace {

struct Boom : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The message of the exception `run` throws, or "" if it throws none.
template <class Fn>
std::string thrown_by(Fn run) {
  try {
    run();
  } catch (const Boom& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Exceptions, RunRethrowsWhatACallbackThrew) {
  evcxx::Loop loop;
  evcxx::Async async(loop, [] { throw Boom("from the callback"); });
  std::thread([&] { async.send(); }).join();
  EXPECT_EQ(thrown_by([&] { loop.run(); }), "from the callback");
  EXPECT_TRUE(async.active());  // the watcher is untouched
}

TEST(Exceptions, RunRethrowsOnTheLoopThreadWhileTheSenderIsElsewhere) {
  evcxx::Loop loop;
  std::thread::id thrower;
  evcxx::Async async(loop, [&] {
    thrower = std::this_thread::get_id();
    throw Boom("x");
  });
  std::thread sender([&] { async.send(); });
  Watchdog dog(loop);
  EXPECT_THROW(loop.run(), Boom);
  dog.disarm();
  sender.join();
  EXPECT_EQ(thrower, std::this_thread::get_id());
}

TEST(Exceptions, FirstExceptionWinsAndEventsAlreadyDueStillRun) {
  evcxx::Loop loop;
  std::vector<std::string> ran;
  evcxx::Async first(loop, evcxx::deferred, [&] {
    ran.push_back("first");
    throw Boom("first");
  });
  evcxx::Async second(loop, evcxx::deferred, [&] {
    ran.push_back("second");
    throw Boom("second");
  });
  evcxx::Async quiet(loop, evcxx::deferred, [&] { ran.push_back("quiet"); });
  first.set_priority(EV_MAXPRI);
  second.set_priority(1);
  first.start();
  second.start();
  quiet.start();
  first.send();
  second.send();
  quiet.send();
  EXPECT_EQ(thrown_by([&] { loop.run(); }), "first");
  // Due events run before run() returns or, at the latest, in the next run().
  if (ran.size() < 3) {
    try {
      loop.run(evcxx::Run::nowait);
    } catch (const Boom&) {
    }
  }
  EXPECT_EQ(ran, (std::vector<std::string>{"first", "second", "quiet"}));
}

TEST(Exceptions, LoopAndWatchersStayUsableAfterAThrow) {
  evcxx::Loop loop;
  int calls = 0;
  evcxx::Async async(loop, [&] {
    if (++calls == 1) throw Boom("once");
    async.stop();
  });
  async.send();
  EXPECT_THROW(loop.run(), Boom);
  EXPECT_TRUE(async.active());
  std::thread([&] { async.send(); }).join();
  Watchdog dog(loop);
  EXPECT_FALSE(loop.run());  // runs normally now and is not rethrown twice
  dog.disarm();
  EXPECT_EQ(calls, 2);
  int task_runs = 0;
  loop.post([&] { ++task_runs; });
  EXPECT_FALSE(loop.run());
  EXPECT_EQ(task_runs, 1);
}

TEST(Exceptions, ThrowingPostedTaskIsRethrownAndLaterTasksStillRun) {
  evcxx::Loop loop;
  std::vector<int> ran;
  loop.post([&] { ran.push_back(1); });
  loop.post([&] {
    ran.push_back(2);
    throw Boom("task");
  });
  loop.post([&] { ran.push_back(3); });
  EXPECT_EQ(thrown_by([&] { loop.run(); }), "task");
  if (ran.size() < 3) loop.run();
  EXPECT_EQ(ran, (std::vector<int>{1, 2, 3}));
  // And posting still works.
  std::thread([&] { loop.post([&] { ran.push_back(4); }); }).join();
  EXPECT_FALSE(loop.run());
  EXPECT_EQ(ran, (std::vector<int>{1, 2, 3, 4}));
}

TEST(Exceptions, ThrowingTaskPostedFromAnotherThreadWhileRunning) {
  evcxx::Loop loop;
  evcxx::Async keep_alive(loop, [] {});
  std::thread poster([&] { loop.post([] { throw Boom("remote task"); }); });
  Watchdog dog(loop);
  EXPECT_EQ(thrown_by([&] { loop.run(); }), "remote task");
  dog.disarm();
  poster.join();
  EXPECT_FALSE(dog.fired());
  EXPECT_TRUE(keep_alive.active());
}

TEST(Exceptions, InvokePendingRethrows) {
  evcxx::Loop loop;
  int after = 0;
  evcxx::Async thrower(loop, evcxx::deferred, [] { throw Boom("pending"); });
  evcxx::Async other(loop, evcxx::deferred, [&] { ++after; });
  thrower.set_priority(EV_MAXPRI);
  thrower.feed();
  other.feed();
  EXPECT_EQ(thrown_by([&] { loop.invoke_pending(); }), "pending");
  EXPECT_EQ(after, 1);  // the rest of the pending callbacks ran too
  EXPECT_EQ(loop.pending_count(), 0u);
  EXPECT_NO_THROW(loop.run(evcxx::Run::nowait));  // already rethrown: not again
  EXPECT_EQ(loop.take_exception(), nullptr);
}

TEST(Exceptions, InvokeRethrowsDirectly) {
  evcxx::Loop loop;
  evcxx::Async async(loop, [] { throw Boom("invoked"); });
  EXPECT_EQ(thrown_by([&] { async.invoke(); }), "invoked");
  EXPECT_EQ(loop.take_exception(), nullptr);  // not captured by the loop as well
  async.stop();
  EXPECT_NO_THROW(loop.run());
}

TEST(Exceptions, InvokeInsideACallbackIsCaughtByTheCaller) {
  evcxx::Loop loop;
  evcxx::Async thrower(loop, evcxx::deferred, [] { throw Boom("inner"); });
  std::string caught;
  evcxx::Async outer(loop, [&] {
    try {
      thrower.invoke();
    } catch (const Boom& e) {
      caught = e.what();
    }
    outer.stop();
  });
  outer.send();
  EXPECT_NO_THROW(loop.run());
  EXPECT_EQ(caught, "inner");
}

TEST(Exceptions, NestedRunRethrowsIntoTheOuterCallback) {
  evcxx::Loop loop;
  evcxx::Async inner(loop, [] { throw Boom("nested"); });
  std::string caught;
  unsigned depth_in_outer = 0;
  evcxx::Async outer(loop, [&] {
    depth_in_outer = loop.depth();
    inner.send();
    try {
      loop.run();
    } catch (const Boom& e) {
      caught = e.what();
    }
    inner.stop();
    outer.stop();
  });
  outer.send();
  Watchdog dog(loop);
  EXPECT_NO_THROW(loop.run());  // the outer callback handled it
  dog.disarm();
  EXPECT_EQ(caught, "nested");
  EXPECT_EQ(depth_in_outer, 1u);
}

TEST(Exceptions, UncaughtInNestedRunReachesTheOuterRun) {
  evcxx::Loop loop;
  evcxx::Async inner(loop, [] { throw Boom("nested"); });
  int after_nested = 0;
  evcxx::Async outer(loop, [&] {
    inner.send();
    loop.run();
    ++after_nested;  // never reached: the nested run() throws
  });
  outer.send();
  Watchdog dog(loop);
  EXPECT_EQ(thrown_by([&] { loop.run(); }), "nested");
  dog.disarm();
  EXPECT_EQ(after_nested, 0);
  EXPECT_TRUE(outer.active());
  EXPECT_TRUE(inner.active());
}

TEST(Exceptions, TakeExceptionForCodeThatDrivesEvRunItself) {
  evcxx::Loop loop;
  evcxx::Async async(loop, [] { throw Boom("raw"); });
  EXPECT_EQ(loop.take_exception(), nullptr);
  async.send();
  ev_run(loop.native(), EVRUN_NOWAIT);  // no evcxx frame to rethrow through
  std::exception_ptr error = loop.take_exception();
  ASSERT_NE(error, nullptr);
  EXPECT_EQ(thrown_by([&] { std::rethrow_exception(error); }), "raw");
  EXPECT_EQ(loop.take_exception(), nullptr);  // taken out
  async.stop();
  EXPECT_NO_THROW(loop.run());
}

TEST(Exceptions, OnSetThatThrowsIsRethrownByRun) {
  evcxx::Loop loop;
  evcxx::WaitableEvent event(loop, [] { throw Boom("on_set"); });
  std::thread([&] { event.set(); }).join();
  EXPECT_EQ(thrown_by([&] { loop.run(); }), "on_set");
  EXPECT_TRUE(event.is_set());  // the event itself is unaffected
  EXPECT_TRUE(event.async().active());
}

TEST(Exceptions, NonStandardExceptionTypesArePreserved) {
  evcxx::Loop loop;
  evcxx::Async async(loop, [] { throw 7; });
  async.send();
  try {
    loop.run();
    FAIL() << "nothing thrown";
  } catch (int value) {
    EXPECT_EQ(value, 7);
  }
}

TEST(Exceptions, ThrowingInvokePendingHookIsRethrownByRun) {
  evcxx::Loop loop;
  int calls = 0;
  loop.set_invoke_pending_hook([&](evcxx::Loop& l) {
    const bool had_work = l.pending_count() > 0;
    l.invoke_pending();
    if (had_work) throw Boom("hook");
  });
  evcxx::Async async(loop, [&] { ++calls; });
  async.send();
  EXPECT_EQ(thrown_by([&] { loop.run(); }), "hook");
  EXPECT_EQ(calls, 1);
  loop.set_invoke_pending_hook({});
  async.send();
  EXPECT_NO_THROW(loop.run(evcxx::Run::nowait));
  EXPECT_EQ(calls, 2);
}

// The release hook runs right before the loop blocks: its exception must not wait for an event.
TEST(Exceptions, ThrowingReleaseHookIsRethrownWithoutWaitingForAnEvent) {
  evcxx::Loop loop;
  bool thrown = false;
  loop.set_release_hooks(
      [&] {
        if (!thrown) {
          thrown = true;
          throw Boom("release");
        }
      },
      [] {});
  evcxx::Async never_sent(loop, [] {});  // nothing will ever wake the loop
  Watchdog dog(loop, std::chrono::seconds(20));
  EXPECT_EQ(thrown_by([&] { loop.run(); }), "release");
  dog.disarm();
  EXPECT_FALSE(dog.fired()) << "run() blocked until the watchdog stopped it";
  // The loop works normally afterwards, and the next run() is not cut short.
  int rounds = 0;
  never_sent.set_callback([&] {
    if (++rounds < 3) {
      never_sent.send();
    } else {
      never_sent.stop();
    }
  });
  std::thread([&] { never_sent.send(); }).join();
  EXPECT_FALSE(loop.run());
  EXPECT_EQ(rounds, 3);
}

TEST(Exceptions, ThrowingAcquireHookIsRethrownAfterTheEventsDue) {
  evcxx::Loop loop;
  bool thrown = false;
  loop.set_release_hooks([] {},
                         [&] {
                           if (!thrown) {
                             thrown = true;
                             throw Boom("acquire");
                           }
                         });
  int calls = 0;
  evcxx::Async async(loop, [&] { ++calls; });
  std::thread([&] { async.send(); }).join();
  Watchdog dog(loop, std::chrono::seconds(20));
  EXPECT_EQ(thrown_by([&] { loop.run(); }), "acquire");
  dog.disarm();
  EXPECT_FALSE(dog.fired()) << "run() blocked until the watchdog stopped it";
  EXPECT_EQ(calls, 1);  // the event that woke the loop was still delivered
  // The next run() is not cut short by the hook's failure.
  int rounds = 0;
  async.set_callback([&] {
    if (++rounds < 3) {
      async.send();
    } else {
      async.stop();
    }
  });
  async.send();
  EXPECT_FALSE(loop.run());
  EXPECT_EQ(rounds, 3);
}
