// What every watcher type promises through the shared base, checked for all thirteen: deferred
// construction, start/stop, priority rules, feed, invoke, clear_pending, a throwing callback, an
// empty callback, replacing and destroying inside the callback, calling invoke() inside the
// callback, a callback with state of its own however the watcher keeps it, and a Loop destroyed
// first.

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <evcxx/evcxx.hpp>

#include <array>
#include <chrono>
#include <fstream>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "support.hpp"

namespace {

using namespace std::chrono_literals;
using evcxx_test::Boom;
using evcxx_test::Pipe;

std::unique_ptr<evcxx::Loop> new_loop() {
  return std::make_unique<evcxx::Loop>();
}

// The callback arguments of watcher type W, and an object whose member function takes them.
template <class Callback>
struct CallbackArgs;
template <class... Args>
struct CallbackArgs<std::function<void(Args...)>> {
  struct Target {
    int calls = 0;
    bool fail = false;
    void hit(Args...) {
      ++calls;
      if (fail) throw Boom();
    }
  };
};
template <class W>
using CallbackOf = CallbackArgs<typename W::Callback>;

// A callback with state of its own, which the watcher keeps copied (Extra an int), moved (Extra
// a std::unique_ptr) or on the heap (Extra a large array): each call counts in `count`, runs
// `*action` and then records the count it saw, so it reads its own members after the action
// replaced its callback or destroyed the watcher.
template <class Extra>
struct CountingCallback {
  int* seen;
  const std::function<void()>* action;
  int count = 0;
  Extra extra{};
  template <class... Args>
  void operator()(Args&&...) {
    ++count;
    if (*action) (*action)();
    *seen = count;
  }
};
using CopiedCallback = CountingCallback<int>;
using MovedCallback = CountingCallback<std::unique_ptr<int>>;
using HeapCallback = CountingCallback<std::array<char, 64>>;

// Given as it is, or (AsFunction) wrapped in the watcher's std::function type first.
template <class Callback, bool AsFunction = false, class Make, class MakeLoop>
void check_kept_callback(Make& make, MakeLoop& make_loop) {
  auto loop = make_loop();
  auto w = make(*loop, [] {});
  auto* raw = w.get();
  using Watcher = std::remove_reference_t<decltype(*raw)>;
  const auto kept = [](Callback callback) {
    if constexpr (AsFunction) {
      return typename Watcher::Callback(std::move(callback));
    } else {
      return callback;
    }
  };
  int seen = 0;
  std::function<void()> action;
  raw->set_callback(kept(Callback{&seen, &action}));
  const auto fire = [&] {
    raw->feed();
    loop->run(evcxx::Run::nowait);
  };
  fire();
  fire();
  raw->invoke();
  EXPECT_EQ(seen, 3) << "the callback's own state lives on between calls";

  int depth = 0;
  int nested_seen = 0;
  action = [&] {
    if (++depth == 1) {
      raw->invoke();  // runs the same object: its count goes on
      nested_seen = seen;
    }
    --depth;
  };
  fire();
  EXPECT_EQ(nested_seen, 5);
  EXPECT_EQ(seen, 5) << "the outer call sees what the nested call counted";
  action = [] { throw Boom(); };
  EXPECT_THROW(fire(), Boom);
  action = nullptr;
  fire();
  EXPECT_EQ(seen, 7) << "a call that threw keeps what it counted";

  int replacement_calls = 0;
  action = [&] { raw->set_callback([&](auto&&...) { ++replacement_calls; }); };
  fire();
  EXPECT_EQ(seen, 8) << "the replaced callback finishes with its own state";
  fire();
  EXPECT_EQ(replacement_calls, 1);
  EXPECT_EQ(seen, 8);

  raw->set_callback(kept(Callback{&seen, &action}));
  action = [&] { w.reset(); };
  fire();
  EXPECT_EQ(w, nullptr);
  EXPECT_EQ(seen, 1) << "the running callback outlives the watcher it destroyed";
}

// make(loop, on_event) returns a std::unique_ptr to a watcher created with evcxx::deferred whose
// callback calls on_event(). Its event must not fire on its own within one non-blocking iteration
// of an otherwise idle loop while stopped. make_loop() gives each section a fresh Loop.
template <class Make, class MakeLoop = decltype(&new_loop)>
void check_watcher_contract(Make make, MakeLoop make_loop = &new_loop) {
  {
    SCOPED_TRACE("deferred, start, stop");
    auto loop = make_loop();
    int calls = 0;
    auto w = make(*loop, [&] { ++calls; });
    EXPECT_TRUE(w->attached());
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
    EXPECT_EQ(&w->loop(), loop.get());
    EXPECT_NE(w->native(), nullptr);
    EXPECT_EQ(w->native()->data, static_cast<void*>(w.get()));
  }
  {
    SCOPED_TRACE("priority");
    auto loop = make_loop();
    auto w = make(*loop, [] {});
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
    SCOPED_TRACE("feed, clear_pending, invoke, stop drops a pending event");
    auto loop = make_loop();
    int calls = 0;
    auto w = make(*loop, [&] { ++calls; });
    const unsigned pending_before = loop->pending_count();
    w->feed();
    EXPECT_TRUE(w->pending());
    EXPECT_EQ(loop->pending_count(), pending_before + 1);
    EXPECT_EQ(calls, 0);  // feeding only queues
    loop->run(evcxx::Run::nowait);
    EXPECT_EQ(calls, 1);
    EXPECT_FALSE(w->pending());
    w->feed();
    EXPECT_NE(w->clear_pending(), 0);
    EXPECT_EQ(w->clear_pending(), 0);
    loop->run(evcxx::Run::nowait);
    EXPECT_EQ(calls, 1);  // cleared: never delivered
    w->invoke();
    EXPECT_EQ(calls, 2);  // synchronous
    w->feed();
    w->stop();  // stopping drops the pending event too
    EXPECT_FALSE(w->pending());
    loop->run(evcxx::Run::nowait);
    EXPECT_EQ(calls, 2);
  }
  {
    SCOPED_TRACE("a throwing callback");
    auto loop = make_loop();
    int calls = 0;
    bool fail = true;
    auto w = make(*loop, [&] {
      ++calls;
      if (fail) throw Boom();
    });
    EXPECT_THROW(w->invoke(), Boom);
    w->feed();
    EXPECT_THROW(loop->run(evcxx::Run::nowait), Boom);
    EXPECT_EQ(calls, 2);
    fail = false;
    w->feed();  // the loop and the watcher stay usable
    EXPECT_NO_THROW(loop->run(evcxx::Run::nowait));
    EXPECT_EQ(calls, 3);
  }
  {
    SCOPED_TRACE("an empty callback");
    auto loop = make_loop();
    auto w = make(*loop, [] {});
    w->set_callback({});
    w->feed();
    EXPECT_NO_THROW(loop->run(evcxx::Run::nowait));
    EXPECT_FALSE(w->pending());
    EXPECT_NO_THROW(w->invoke());
  }
  {
    SCOPED_TRACE("set_callback inside the callback");
    auto loop = make_loop();
    int first = 0;
    int second = 0;
    auto w = make(*loop, [&] { ++first; });
    auto* raw = w.get();
    raw->set_callback([&, raw](auto&&...) {
      ++second;
      raw->set_callback([&](auto&&...) { ++first; });
      ++second;  // the running callback object is still alive
    });
    raw->feed();
    loop->run(evcxx::Run::nowait);
    raw->feed();
    loop->run(evcxx::Run::nowait);
    EXPECT_EQ(second, 2);
    EXPECT_EQ(first, 1);
  }
  {
    SCOPED_TRACE("invoke() inside the callback runs it again");
    auto loop = make_loop();
    auto w = make(*loop, [] {});
    auto* raw = w.get();
    int depth = 0;
    int calls = 0;
    raw->set_callback([&, raw](auto&&...) {
      ++calls;
      if (++depth < 3) raw->invoke();
      --depth;
    });
    raw->invoke();
    EXPECT_EQ(calls, 3);
    raw->feed();
    loop->run(evcxx::Run::nowait);
    EXPECT_EQ(calls, 6);  // the callback is back in place
  }
  {
    SCOPED_TRACE("destroyed inside the callback, after replacing it");
    auto loop = make_loop();
    auto w = make(*loop, [] {});
    auto* raw = w.get();
    auto witness = std::make_shared<int>(0);
    raw->set_callback([&, raw, witness](auto&&...) {
      raw->set_callback([witness](auto&&...) {});
      w.reset();
      ++*witness;  // captures of the running callback outlive the watcher
    });
    raw->feed();
    loop->run(evcxx::Run::nowait);
    EXPECT_EQ(w, nullptr);
    EXPECT_EQ(*witness, 1);
    EXPECT_EQ(witness.use_count(), 1);  // both callbacks were destroyed
  }
  {
    SCOPED_TRACE("destroyed inside a nested invoke()");
    auto loop = make_loop();
    auto w = make(*loop, [] {});
    auto* raw = w.get();
    int calls = 0;
    raw->set_callback([&, raw](auto&&...) {
      if (++calls == 1) {
        raw->invoke();
        return;
      }
      w.reset();
    });
    raw->feed();
    loop->run(evcxx::Run::nowait);
    EXPECT_EQ(calls, 2);
    EXPECT_EQ(w, nullptr);
  }
  {
    SCOPED_TRACE("compile-time callbacks: a member function and a function object");
    auto loop = make_loop();
    auto w = make(*loop, [] {});
    using W = std::remove_reference_t<decltype(*w)>;
    typename CallbackOf<W>::Target target;
    w->template set_callback<&CallbackOf<W>::Target::hit>(target);
    w->feed();
    loop->run(evcxx::Run::nowait);
    EXPECT_EQ(target.calls, 1);
    w->invoke();
    EXPECT_EQ(target.calls, 2);
    target.fail = true;
    EXPECT_THROW(w->invoke(), Boom);
    w->feed();
    EXPECT_THROW(loop->run(evcxx::Run::nowait), Boom);  // caught on libev's side, rethrown here
    EXPECT_EQ(target.calls, 4);
    target.fail = false;

    int lambda_calls = 0;
    auto lambda = [&](auto&&...) { ++lambda_calls; };
    w->set_callback(std::ref(lambda));
    w->feed();
    loop->run(evcxx::Run::nowait);
    w->invoke();
    EXPECT_EQ(lambda_calls, 2);
    EXPECT_EQ(target.calls, 4);

    int plain_calls = 0;
    w->set_callback([&](auto&&...) { ++plain_calls; });  // back to a lambda, kept by its type
    w->feed();
    loop->run(evcxx::Run::nowait);
    EXPECT_EQ(plain_calls, 1);
    EXPECT_EQ(lambda_calls, 2);

    auto* raw = w.get();
    auto replace_then_destroy = [&, raw](auto&&...) {
      ++lambda_calls;
      raw->set_callback([&](auto&&...) { ++plain_calls; });
      raw->feed();  // runs the replacement in this same iteration
    };
    w->set_callback(std::ref(replace_then_destroy));
    w->feed();
    loop->run(evcxx::Run::nowait);
    EXPECT_EQ(lambda_calls, 3);
    EXPECT_EQ(plain_calls, 2);
    auto destroy = [&](auto&&...) { w.reset(); };
    raw->set_callback(std::ref(destroy));
    raw->feed();
    loop->run(evcxx::Run::nowait);
    EXPECT_EQ(w, nullptr);
  }
  {
    SCOPED_TRACE("a callback with state, kept copied");
    check_kept_callback<CopiedCallback>(make, make_loop);
  }
  {
    SCOPED_TRACE("a callback with state, kept moved");
    check_kept_callback<MovedCallback>(make, make_loop);
  }
  {
    SCOPED_TRACE("a callback with state, kept on the heap");
    check_kept_callback<HeapCallback>(make, make_loop);
  }
  {
    SCOPED_TRACE("a callback with state, given as a std::function");
    check_kept_callback<CopiedCallback, true>(make, make_loop);
  }
  {
    SCOPED_TRACE("the Loop destroyed first");
    auto loop = make_loop();
    auto w = make(*loop, [] {});
    w->start();
    loop.reset();
    EXPECT_FALSE(w->attached());
    EXPECT_FALSE(w->active());
    EXPECT_THROW(w->start(), std::logic_error);
    EXPECT_THROW(w->feed(), std::logic_error);
    w->stop();
    EXPECT_EQ(w->clear_pending(), 0);
    w->set_callback([](auto&&...) {});
  }
}

// Calls on_event() with whatever the watcher type's callback receives.
auto forward(std::function<void()> on_event) {
  return [on_event = std::move(on_event)](auto&&...) { on_event(); };
}

TEST(WatcherContract, Io) {
  auto pipe = std::make_shared<Pipe>();
  check_watcher_contract([pipe](evcxx::Loop& loop, std::function<void()> on_event) {
    return std::make_unique<evcxx::Io>(loop, evcxx::deferred, pipe->read.get(),
                                       evcxx::IoEvent::readable, forward(std::move(on_event)));
  });
}

TEST(WatcherContract, Timer) {
  check_watcher_contract([](evcxx::Loop& loop, std::function<void()> on_event) {
    return std::make_unique<evcxx::Timer>(loop, evcxx::deferred, 1h, std::move(on_event));
  });
}

TEST(WatcherContract, Periodic) {
  check_watcher_contract([](evcxx::Loop& loop, std::function<void()> on_event) {
    return std::make_unique<evcxx::Periodic>(loop, evcxx::deferred, 0s, 1h, std::move(on_event));
  });
}

TEST(WatcherContract, Signal) {
  check_watcher_contract([](evcxx::Loop& loop, std::function<void()> on_event) {
    return std::make_unique<evcxx::Signal>(loop, evcxx::deferred, SIGUSR1, std::move(on_event));
  });
}

TEST(WatcherContract, Child) {
  // Only the default ev_loop watches children; each section wraps it in a Loop of its own.
  evcxx::Loop::default_loop();
  check_watcher_contract(
      [](evcxx::Loop& loop, std::function<void()> on_event) {
        return std::make_unique<evcxx::Child>(loop, evcxx::deferred, ::getpid() + 100000,
                                              std::move(on_event));
      },
      [] { return std::make_unique<evcxx::Loop>(ev_default_loop(0)); });
}

class TempFile {
 public:
  TempFile() {
    std::string pattern = "/tmp/evcxx-contract-XXXXXX";
    const int fd = ::mkstemp(pattern.data());
    if (fd < 0) throw std::runtime_error("mkstemp failed");
    ::close(fd);
    path_ = pattern;
  }
  ~TempFile() { ::unlink(path_.c_str()); }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::string& path() const noexcept { return path_; }

 private:
  std::string path_;
};

TEST(WatcherContract, Stat) {
  auto file = std::make_shared<TempFile>();
  check_watcher_contract([file](evcxx::Loop& loop, std::function<void()> on_event) {
    return std::make_unique<evcxx::Stat>(loop, evcxx::deferred, file->path(),
                                         forward(std::move(on_event)));
  });
}

TEST(WatcherContract, Idle) {
  check_watcher_contract([](evcxx::Loop& loop, std::function<void()> on_event) {
    return std::make_unique<evcxx::Idle>(loop, evcxx::deferred, std::move(on_event));
  });
}

TEST(WatcherContract, Prepare) {
  check_watcher_contract([](evcxx::Loop& loop, std::function<void()> on_event) {
    return std::make_unique<evcxx::Prepare>(loop, evcxx::deferred, std::move(on_event));
  });
}

TEST(WatcherContract, Check) {
  check_watcher_contract([](evcxx::Loop& loop, std::function<void()> on_event) {
    return std::make_unique<evcxx::Check>(loop, evcxx::deferred, std::move(on_event));
  });
}

TEST(WatcherContract, Fork) {
  check_watcher_contract([](evcxx::Loop& loop, std::function<void()> on_event) {
    return std::make_unique<evcxx::Fork>(loop, evcxx::deferred, std::move(on_event));
  });
}

TEST(WatcherContract, Cleanup) {
  check_watcher_contract([](evcxx::Loop& loop, std::function<void()> on_event) {
    return std::make_unique<evcxx::Cleanup>(loop, evcxx::deferred, std::move(on_event));
  });
}

TEST(WatcherContract, Embed) {
  auto inner = std::make_shared<evcxx::Loop>(evcxx::Backend::epoll);
  check_watcher_contract([inner](evcxx::Loop& loop, std::function<void()> on_event) {
    return std::make_unique<evcxx::Embed>(loop, evcxx::deferred, *inner, std::move(on_event));
  });
}

TEST(WatcherContract, Async) {
  check_watcher_contract([](evcxx::Loop& loop, std::function<void()> on_event) {
    return std::make_unique<evcxx::Async>(loop, evcxx::deferred, std::move(on_event));
  });
}

}  // namespace
