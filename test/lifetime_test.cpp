// Destruction orders: loops dying before their watchers, watchers dying inside their own
// callbacks, borrowed loops, and the process default loop.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <evcxx/async.hpp>
#include <evcxx/loop.hpp>
#include <evcxx/waitable_event.hpp>

#include "support.hpp"

using namespace std::chrono_literals;
using evcxx_test::kPatience;
using evcxx_test::readable;
using evcxx_test::Watchdog;

// --- the Loop dies first -----------------------------------------------------------------------

TEST(LoopDiesFirst, AsyncIsDetached) {
  auto loop = std::make_unique<evcxx::Loop>();
  int calls = 0;
  evcxx::Async async(*loop, [&] { ++calls; });
  evcxx::Async pending(*loop, evcxx::deferred, [&] { ++calls; });
  ASSERT_TRUE(async.active());
  async.send();    // a send the dead loop never processes
  pending.feed();  // an event the dead loop never delivers
  loop.reset();

  EXPECT_FALSE(async.attached());
  EXPECT_FALSE(async.active());
  EXPECT_FALSE(pending.pending());
  EXPECT_THROW(async.start(), std::logic_error);
  EXPECT_THROW(async.feed(), std::logic_error);
  EXPECT_FALSE(async.active());
  EXPECT_NO_THROW(async.stop());
  EXPECT_EQ(async.clear_pending(), 0);
  async.send();  // harmless
  std::thread([&] {
    for (int i = 0; i < 1000; ++i) async.send();
  }).join();
  EXPECT_EQ(calls, 0);
  async.set_priority(1);  // inactive now, so allowed
  EXPECT_EQ(async.priority(), 1);
  try {
    async.start();
  } catch (const std::logic_error& e) {
    EXPECT_NE(std::string(e.what()).find("Loop was destroyed"), std::string::npos) << e.what();
  }
  // invoke() needs no loop: it runs the callback directly.
  async.invoke();
  EXPECT_EQ(calls, 1);
}  // the destructors touch nothing of the dead loop (ASan would say so)

TEST(LoopDiesFirst, AnotherLoopAtTheSameAddressIsNotTouched) {
  std::optional<evcxx::Loop> loop;
  loop.emplace();
  auto async = std::make_unique<evcxx::Async>(*loop, [] {});
  loop.reset();
  loop.emplace();  // likely the same address
  int calls = 0;
  evcxx::Async fresh(*loop, [&] {
    ++calls;
    fresh.stop();
  });
  async->send();
  async.reset();  // must not unlink anything from the new loop
  fresh.send();
  EXPECT_FALSE(loop->run());
  EXPECT_EQ(calls, 1);
}

TEST(LoopDiesFirst, WaitableEventStillWorksForWaitersAndItsFd) {
  auto loop = std::make_unique<evcxx::Loop>();
  int on_set_calls = 0;
  evcxx::WaitableEvent with_fd(*loop, [&] { ++on_set_calls; });
  evcxx::WaitableEvent without_fd(*loop);
  const int fd = with_fd.fd();
  with_fd.set();  // announced to a loop that then dies
  loop.reset();

  EXPECT_FALSE(with_fd.async().active());
  EXPECT_THROW(with_fd.async().start(), std::logic_error);
  EXPECT_TRUE(with_fd.is_set());
  EXPECT_TRUE(readable(fd));
  with_fd.clear();
  EXPECT_FALSE(readable(fd));

  // A waiter blocked across and after the loop's death is released by set() from another thread.
  std::atomic<bool> released{false};
  std::thread waiter([&] { released = with_fd.wait_for(kPatience); });
  std::thread([&] { with_fd.set(); }).join();
  waiter.join();
  EXPECT_TRUE(released.load());
  EXPECT_TRUE(readable(fd));

  // The fd can even be created after the loop died.
  without_fd.set();
  const int late_fd = without_fd.fd();
  ASSERT_GE(late_fd, 0);
  EXPECT_TRUE(readable(late_fd));
  without_fd.clear();
  EXPECT_FALSE(readable(late_fd));
  EXPECT_FALSE(without_fd.wait_for(1ms));
  EXPECT_EQ(on_set_calls, 0);
}

TEST(LoopDiesFirst, WaitersBlockedWhileTheLoopDiesAreReleasedLater) {
  auto loop = std::make_unique<evcxx::Loop>();
  evcxx::WaitableEvent event(*loop, [] {});
  std::atomic<int> released{0};
  std::vector<std::thread> waiters;
  for (int i = 0; i < 4; ++i) {
    waiters.emplace_back([&] {
      if (event.wait_for(kPatience)) ++released;
    });
  }
  std::this_thread::sleep_for(20ms);  // makes it likely they block before the loop dies
  loop.reset();
  event.set();
  for (auto& t : waiters) t.join();
  EXPECT_EQ(released.load(), 4);
}

TEST(LoopDiesFirst, QueuedTasksAreDroppedNotRun) {
  auto loop = std::make_unique<evcxx::Loop>();
  auto token = std::make_shared<int>(0);
  int ran = 0;
  loop->post([&, token] { ++ran; });
  loop->post([&, token] { ++ran; });
  EXPECT_EQ(token.use_count(), 3);
  loop.reset();
  EXPECT_EQ(ran, 0);
  EXPECT_EQ(token.use_count(), 1);  // the tasks were destroyed with the loop
}

TEST(LoopDiesFirst, WatchersDestroyedInAnyOrderAroundIt) {
  auto loop = std::make_unique<evcxx::Loop>();
  auto a = std::make_unique<evcxx::Async>(*loop, [] {});
  auto b = std::make_unique<evcxx::Async>(*loop, [] {});
  auto c = std::make_unique<evcxx::Async>(*loop, [] {});
  auto d = std::make_unique<evcxx::Async>(*loop, [] {});
  b.reset();  // the middle of the loop's list
  d.reset();  // its head
  loop.reset();
  EXPECT_FALSE(a->active());
  EXPECT_FALSE(c->active());
  c.reset();
  a.reset();
}

// --- watchers die while the loop lives ---------------------------------------------------------

TEST(AsyncLifetime, DestroyedInsideItsOwnCallback) {
  evcxx::Loop loop;
  auto token = std::make_shared<int>(7);
  int seen = 0;
  std::unique_ptr<evcxx::Async> async;
  async = std::make_unique<evcxx::Async>(loop, [&, token] {
    async.reset();
    seen = *token;  // its captures outlive the destruction until it returns
  });
  std::thread([&] { async->send(); }).join();
  Watchdog dog(loop);
  EXPECT_FALSE(loop.run());  // nothing left to keep it alive
  dog.disarm();
  EXPECT_EQ(async, nullptr);
  EXPECT_EQ(seen, 7);
  EXPECT_EQ(token.use_count(), 1);
}

TEST(AsyncLifetime, ReplacementInvokedInsideTheCallbackDestroysIt) {
  evcxx::Loop loop;
  std::vector<std::string> log;
  std::unique_ptr<evcxx::Async> async;
  async = std::make_unique<evcxx::Async>(loop, [&, name = std::string("outer")] {
    async->set_callback([&] {
      log.push_back("replacement");
      async.reset();  // destroys the watcher while the outer callback is still running
    });
    async->invoke();
    log.push_back(name);  // the outer callback's state is intact
  });
  async->send();
  EXPECT_FALSE(loop.run());
  EXPECT_EQ(async, nullptr);
  EXPECT_EQ(log, (std::vector<std::string>{"replacement", "outer"}));
}

TEST(AsyncLifetime, DestroyedByAnotherCallbackWhileItsOwnIsStillRunning) {
  evcxx::Loop loop;
  std::vector<std::string> log;
  std::unique_ptr<evcxx::Async> outer;
  evcxx::Async killer(loop, [&] {
    outer.reset();  // `outer` is in the middle of its callback, further up this stack
    log.push_back("killer");
    killer.stop();
  });
  outer = std::make_unique<evcxx::Async>(loop, [&, name = std::string("outer")] {
    killer.send();
    loop.run();  // nested: runs `killer`, which destroys this watcher
    log.push_back(name + " finished");
  });
  outer->send();
  Watchdog dog(loop);
  EXPECT_FALSE(loop.run());
  dog.disarm();
  EXPECT_FALSE(dog.fired());
  EXPECT_EQ(outer, nullptr);
  EXPECT_EQ(log, (std::vector<std::string>{"killer", "outer finished"}));
}

TEST(AsyncLifetime, SetCallbackInsideItsOwnCallback) {
  evcxx::Loop loop;
  std::vector<std::string> log;
  auto old_token = std::make_shared<int>(0);
  std::unique_ptr<evcxx::Async> holder = std::make_unique<evcxx::Async>(loop, [] {});
  evcxx::Async& async = *holder;
  async.set_callback([&, old_token, name = std::string("old")] {
    async.set_callback([&] {
      log.push_back("new");
      async.stop();
    });
    log.push_back(name + " finished");  // the running callback's state is still alive
  });
  async.send();
  loop.run(evcxx::Run::nowait);
  EXPECT_EQ(log, (std::vector<std::string>{"old finished"}));
  EXPECT_EQ(old_token.use_count(), 1);  // the old callback is gone once it returned
  async.send();
  EXPECT_FALSE(loop.run());
  EXPECT_EQ(log, (std::vector<std::string>{"old finished", "new"}));
}

TEST(AsyncLifetime, CallbackThatReplacesItselfAndThenThrows) {
  evcxx::Loop loop;
  int new_calls = 0;
  evcxx::Async async(loop, [&] {
    async.set_callback([&] { ++new_calls; });
    throw std::runtime_error("after replacing");
  });
  async.send();
  EXPECT_THROW(loop.run(), std::runtime_error);
  async.send();
  loop.run(evcxx::Run::nowait);
  EXPECT_EQ(new_calls, 1);
}

TEST(AsyncLifetime, DestroyedWithAnUnprocessedSendNeverDeliversIt) {
  evcxx::Loop loop;
  auto calls = std::make_shared<int>(0);
  auto async = std::make_unique<evcxx::Async>(loop, [calls] { ++*calls; });
  std::thread([&] { async->send(); }).join();
  async.reset();
  evcxx::Async witness(loop, evcxx::deferred, [] {});
  loop.run(evcxx::Run::nowait);
  loop.run(evcxx::Run::nowait);
  EXPECT_EQ(*calls, 0);
  EXPECT_FALSE(loop.run());
}

TEST(AsyncLifetime, DestroyedWhilePendingInTheLoopNeverDeliversIt) {
  evcxx::Loop loop;
  int victim_calls = 0;
  std::unique_ptr<evcxx::Async> victim;
  victim = std::make_unique<evcxx::Async>(loop, [&] { ++victim_calls; });
  evcxx::Async killer(loop, evcxx::deferred, [&] {
    EXPECT_TRUE(victim->pending());  // both sends were noticed in this iteration
    victim.reset();
  });
  killer.set_priority(EV_MAXPRI);
  killer.start();
  std::thread([&] {
    victim->send();
    killer.send();
  }).join();
  loop.run(evcxx::Run::nowait);
  EXPECT_EQ(victim, nullptr);
  EXPECT_EQ(victim_calls, 0);
  killer.stop();
  EXPECT_FALSE(loop.run());
}

TEST(AsyncLifetime, OneCallbackDestroysAnotherThatIsPending) {
  evcxx::Loop loop;
  std::vector<std::unique_ptr<evcxx::Async>> asyncs;
  int calls = 0;
  for (int i = 0; i < 4; ++i) {
    asyncs.push_back(std::make_unique<evcxx::Async>(loop, [&] {
      ++calls;
      asyncs.clear();  // the first one to run destroys all, itself included
    }));
  }
  for (auto& a : asyncs) a->send();
  loop.run(evcxx::Run::nowait);
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(asyncs.empty());
  EXPECT_FALSE(loop.run());
}

TEST(WaitableEventLifetime, DestroyedWithAnAnnouncementInFlight) {
  evcxx::Loop loop;
  int calls = 0;
  auto event = std::make_unique<evcxx::WaitableEvent>(loop, [&] { ++calls; });
  const int fd = event->fd();
  ASSERT_GE(fd, 0);
  std::thread([&] { event->set(); }).join();
  event.reset();
  loop.run(evcxx::Run::nowait);
  EXPECT_EQ(calls, 0);
  EXPECT_FALSE(loop.run());
}

// --- borrowed and default loops ----------------------------------------------------------------

namespace {

// A plain libev async on a raw loop, no evcxx involved: proves the raw loop still works on its
// own. It counts its calls and stops itself on the first, so ev_run() then has nothing left.
struct RawOneShotAsync {
  explicit RawOneShotAsync(struct ev_loop* loop) : loop(loop) {
    ev_async_init(&async, [](struct ev_loop* l, ev_async* w, int) {
      ++static_cast<RawOneShotAsync*>(w->data)->calls;
      ev_async_stop(l, w);
    });
    async.data = this;
    ev_async_start(loop, &async);
  }
  void send() { ev_async_send(loop, &async); }

  struct ev_loop* const loop;
  ev_async async;
  int calls = 0;
};

}  // namespace

TEST(BorrowedLoop, IsNeverDestroyedByTheWrapper) {
  struct ev_loop* raw = ev_loop_new(EVFLAG_AUTO);
  ASSERT_NE(raw, nullptr);
  int wrapped_calls = 0;
  std::unique_ptr<evcxx::Async> survivor;
  {
    evcxx::Loop wrapper(raw);
    EXPECT_FALSE(wrapper.owns_loop());
    EXPECT_EQ(wrapper.native(), raw);
    evcxx::Async async(wrapper, [&] {
      ++wrapped_calls;
      async.stop();
    });
    wrapper.post([&] { ++wrapped_calls; });
    async.send();
    EXPECT_FALSE(wrapper.run());
    EXPECT_EQ(wrapped_calls, 2);
    wrapper.post([&] { ++wrapped_calls; });  // dropped with the wrapper
    survivor = std::make_unique<evcxx::Async>(wrapper, [&] { ++wrapped_calls; });
    survivor->send();
  }
  EXPECT_FALSE(survivor->active());
  // The raw loop is alive and balanced: no watcher of the wrapper is left on it.
  EXPECT_EQ(ev_run(raw, EVRUN_NOWAIT), 0) << "the wrapper left an active watcher behind";
  survivor->send();
  survivor.reset();
  RawOneShotAsync raw_async(raw);
  std::thread([&] { raw_async.send(); }).join();
  EXPECT_EQ(ev_run(raw, 0), 0);
  EXPECT_EQ(raw_async.calls, 1);
  EXPECT_EQ(wrapped_calls, 2);
  ev_loop_destroy(raw);
}

TEST(BorrowedLoop, HooksDoNotOutliveTheWrapper) {
  struct ev_loop* raw = ev_loop_new(EVFLAG_AUTO);
  ASSERT_NE(raw, nullptr);
  int hook_calls = 0;
  {
    evcxx::Loop wrapper(raw);
    wrapper.set_release_hooks([&] { ++hook_calls; }, [&] { ++hook_calls; });
    wrapper.set_invoke_pending_hook([&](evcxx::Loop& l) {
      ++hook_calls;
      l.invoke_pending();
    });
    wrapper.run(evcxx::Run::nowait);
    EXPECT_GT(hook_calls, 0);
  }
  const int calls_with_wrapper = hook_calls;
  // Running the raw loop must not call into the dead wrapper (ASan would report it).
  RawOneShotAsync raw_async(raw);
  raw_async.send();
  EXPECT_EQ(ev_run(raw, 0), 0);
  EXPECT_EQ(raw_async.calls, 1);  // libev's own invocation is back
  EXPECT_EQ(hook_calls, calls_with_wrapper);
  EXPECT_EQ(ev_userdata(raw), nullptr);
  ev_loop_destroy(raw);
}

TEST(BorrowedLoop, TwoWrappersInTurnOnOneLoop) {
  struct ev_loop* raw = ev_loop_new(EVFLAG_AUTO);
  ASSERT_NE(raw, nullptr);
  for (int round = 0; round < 3; ++round) {
    evcxx::Loop wrapper(raw);
    int ran = 0;
    wrapper.post([&] { ++ran; });
    EXPECT_FALSE(wrapper.run());
    EXPECT_EQ(ran, 1) << "round " << round;
  }
  {
    // Destroyed while a task posted by a task is still queued (and keeping run() going).
    evcxx::Loop wrapper(raw);
    int ran = 0;
    wrapper.post([&] { wrapper.post([&] { ++ran; }); });
    wrapper.run(evcxx::Run::nowait);
    EXPECT_EQ(ran, 0);
  }
  EXPECT_EQ(ev_run(raw, EVRUN_NOWAIT), 0) << "the wrapper left the loop referenced";
  ev_loop_destroy(raw);
}

TEST(DefaultLoop, IsTheProcessDefaultAndAlwaysTheSameObject) {
  evcxx::Loop& first = evcxx::Loop::default_loop();
  evcxx::Loop& second = evcxx::Loop::default_loop();
  EXPECT_EQ(&first, &second);
  EXPECT_EQ(first.native(), ev_default_loop(0));
  EXPECT_TRUE(first.is_default());
  EXPECT_FALSE(first.owns_loop());
  EXPECT_TRUE(ev_is_default_loop(first.native()));
  evcxx::Loop other;
  EXPECT_FALSE(other.is_default());

  // Same object from another thread, and it works like any loop.
  evcxx::Loop* from_thread = nullptr;
  std::thread([&] { from_thread = &evcxx::Loop::default_loop(); }).join();
  EXPECT_EQ(from_thread, &first);
  int ran = 0;
  first.post([&] { ++ran; });
  EXPECT_FALSE(first.run());
  EXPECT_EQ(ran, 1);
}

TEST(DefaultLoop, WrappingItAgainBorrows) {
  evcxx::Loop& def = evcxx::Loop::default_loop();
  {
    evcxx::Loop again(ev_default_loop(0));
    EXPECT_TRUE(again.is_default());
    EXPECT_FALSE(again.owns_loop());
    evcxx::Async async(again, [] {});
  }
  // The default loop survived the extra wrapper and still runs.
  int ran = 0;
  def.post([&] { ++ran; });
  EXPECT_FALSE(def.run());
  EXPECT_EQ(ran, 1);
}
