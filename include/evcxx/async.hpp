#pragma once

#include <ev.h>

#include <functional>
#include <utility>

#include "evcxx/detail/tsan.hpp"
#include "evcxx/export.hpp"
#include "evcxx/loop.hpp"
#include "evcxx/watcher.hpp"

EVCXX_BEGIN_NAMESPACE

/// ev_async: wakes a loop from another thread or a signal handler.
///
/// Sends are coalesced: many send() calls before the loop notices may give one callback, but every
/// send() is followed by at least one callback that starts after it. Keeps its loop alive while
/// active, like every active watcher.
///
/// Thread-safety: send() and sent() are for ANY thread and for signal handlers; everything else is
/// for the loop thread.
///
/// Memory ordering: send() is a release operation. Everything a thread wrote before send()
/// happens-before the callback that the send() causes (the first one to start after it).
///
/// Lifetime: create, start, stop and destroy it on the loop thread; it must outlive every send()
/// made on it (a send() may still be returning after its callback ran). Destroying it inside its
/// own callback is safe; after its Loop is destroyed it is detached and send() delivers nothing.
/// A send() from another thread must not race the Loop's destruction: the Loop's destruction must
/// happen-before it, or it before the destruction starts (a signal handler on the loop thread may
/// send at any time).
class EVCXX_API Async final : public Watcher<Async, ev_async, void()> {
 public:
  /// Runs `callback` after send(); active on construction.
  /// Thread-safety: loop thread.
  Async(Loop& loop, Callable&& callback) : Async(loop, deferred, std::move(callback)) { start(); }
  /// Created stopped; start() it later.
  /// Thread-safety: loop thread.
  Async(Loop& loop, deferred_t, Callable&& callback) : Watcher(loop, std::move(callback)) {
    ev_async_set(&watcher_);
  }
  /// Stops the watcher; a send that was not processed yet is dropped, never delivered.
  ~Async() override { stop(); }

  /// Makes the callback run on the loop thread (coalesced, see above).
  /// One libev call, no lock, no allocation. Harmless (and delivers nothing) while stopped or after
  /// the Loop is gone.
  /// Thread-safety: ANY thread and signal handlers.
  void send() noexcept {
    EVCXX_RELEASE_FOR_SEND(&watcher_);
    ev_async_send(raw_loop_, &watcher_);
  }
  /// A send() has not been processed by the loop yet.
  /// Thread-safety: ANY thread.
  bool sent() const noexcept { return __atomic_load_n(&watcher_.sent, __ATOMIC_ACQUIRE) != 0; }

 private:
  friend class Watcher<Async, ev_async, void()>;
  friend class Loop;
  // Started through evcxx, the Async is in its Loop's list, whose sends the busy poll watches.
  void start_native() { loop_->start_async(*this); }
  void stop_native() noexcept { loop_->stop_async(*this); }

  Async* prev_started_ = nullptr;  // the Loop's list of started Asyncs (loop thread)
  Async* next_started_ = nullptr;
  bool listed_ = false;
};

EVCXX_END_NAMESPACE
