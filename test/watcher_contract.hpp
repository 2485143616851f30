#pragma once

// What every watcher type promises through the shared base, checked for one type at a time:
// deferred construction, start/stop, priority rules, feed, invoke, clear_pending, a throwing
// callback, and a Loop destroyed first.

#include <gtest/gtest.h>

#include <evcxx/loop.hpp>
#include <evcxx/watcher.hpp>

#include <functional>
#include <memory>
#include <stdexcept>

namespace evcxx_test {

struct Boom : std::runtime_error {
  Boom() : std::runtime_error("boom") {}
};

// make(loop, on_event) returns a std::unique_ptr to a watcher created with evcxx::deferred whose
// callback calls on_event(). Its event must not fire on its own within one non-blocking iteration
// of an otherwise idle loop unless it is started (Idle, Prepare and Check are fed while stopped).
template <class Make>
void check_watcher_contract(Make make) {
  {
    SCOPED_TRACE("deferred, start, stop");
    evcxx::Loop loop;
    int calls = 0;
    auto w = make(loop, [&] { ++calls; });
    EXPECT_FALSE(w->active());
    EXPECT_FALSE(w->pending());
    w->start();
    EXPECT_TRUE(w->active());
    w->start();  // a no-op while active
    EXPECT_TRUE(w->active());
    w->stop();
    EXPECT_FALSE(w->active());
    w->stop();
    EXPECT_EQ(calls, 0);
    EXPECT_EQ(&w->loop(), &loop);
    EXPECT_NE(w->native(), nullptr);
  }
  {
    SCOPED_TRACE("priority");
    evcxx::Loop loop;
    auto w = make(loop, [] {});
    EXPECT_EQ(w->priority(), 0);
    EXPECT_THROW(w->set_priority(EV_MAXPRI + 1), std::out_of_range);
    EXPECT_THROW(w->set_priority(EV_MINPRI - 1), std::out_of_range);
    w->set_priority(EV_MAXPRI);
    EXPECT_EQ(w->priority(), EV_MAXPRI);
    w->start();
    EXPECT_THROW(w->set_priority(0), std::logic_error);
    EXPECT_EQ(w->priority(), EV_MAXPRI);
    w->stop();
    w->feed();
    EXPECT_THROW(w->set_priority(0), std::logic_error);  // pending
    EXPECT_NE(w->clear_pending(), 0);
    w->set_priority(EV_MINPRI);
    EXPECT_EQ(w->priority(), EV_MINPRI);
  }
  {
    SCOPED_TRACE("feed, clear_pending, invoke");
    evcxx::Loop loop;
    int calls = 0;
    auto w = make(loop, [&] { ++calls; });
    w->feed();
    EXPECT_TRUE(w->pending());
    EXPECT_EQ(loop.pending_count(), 1u);
    EXPECT_EQ(calls, 0);  // feeding only queues
    loop.run(evcxx::Run::nowait);
    EXPECT_EQ(calls, 1);
    EXPECT_FALSE(w->pending());
    w->feed();
    EXPECT_NE(w->clear_pending(), 0);
    EXPECT_EQ(w->clear_pending(), 0);
    loop.run(evcxx::Run::nowait);
    EXPECT_EQ(calls, 1);  // cleared: never delivered
    w->invoke();
    EXPECT_EQ(calls, 2);  // synchronous
  }
  {
    SCOPED_TRACE("a throwing callback");
    evcxx::Loop loop;
    int calls = 0;
    bool fail = true;
    auto w = make(loop, [&] {
      ++calls;
      if (fail) throw Boom();
    });
    EXPECT_THROW(w->invoke(), Boom);
    w->feed();
    EXPECT_THROW(loop.run(evcxx::Run::nowait), Boom);
    EXPECT_EQ(calls, 2);
    fail = false;
    w->feed();  // the loop and the watcher stay usable
    EXPECT_NO_THROW(loop.run(evcxx::Run::nowait));
    EXPECT_EQ(calls, 3);
  }
  {
    SCOPED_TRACE("set_callback and destruction inside the callback");
    evcxx::Loop loop;
    int first = 0;
    int second = 0;
    auto w = make(loop, [&] { ++first; });
    auto* raw = w.get();
    raw->set_callback([&, raw](auto&&...) {
      ++second;
      raw->set_callback([&](auto&&...) { ++first; });
    });
    raw->feed();
    loop.run(evcxx::Run::nowait);
    raw->feed();
    loop.run(evcxx::Run::nowait);
    EXPECT_EQ(second, 1);
    EXPECT_EQ(first, 1);
    raw->set_callback([&](auto&&...) { w.reset(); });
    raw->feed();
    loop.run(evcxx::Run::nowait);
    EXPECT_EQ(w, nullptr);
  }
  {
    SCOPED_TRACE("the Loop destroyed first");
    auto loop = std::make_unique<evcxx::Loop>();
    auto w = make(*loop, [] {});
    w->start();
    loop.reset();
    EXPECT_FALSE(w->attached());
    EXPECT_FALSE(w->active());
    EXPECT_THROW(w->start(), std::logic_error);
    EXPECT_THROW(w->feed(), std::logic_error);
    w->stop();
    EXPECT_EQ(w->clear_pending(), 0);
  }
}

}  // namespace evcxx_test
