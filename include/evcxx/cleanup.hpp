#pragma once

#include <ev.h>

#include <utility>

#include "evcxx/export.hpp"
#include "evcxx/loop.hpp"
#include "evcxx/watcher.hpp"

EVCXX_BEGIN_NAMESPACE

/// ev_cleanup: runs while its loop is being destroyed (in ~Loop of a Loop that owns its ev_loop).
///
/// By then every other watcher of the loop is already detached and inactive; the
/// callback may stop or destroy watchers (itself included) but must not start or create any.
/// An exception it throws is dropped, as nobody is left to rethrow it to. Afterwards the Cleanup
/// is detached like any other watcher of a dead loop.
///
/// A Cleanup does not keep its loop alive (run() returns when only Cleanups are active).
/// It never runs for a Loop that merely borrows its ev_loop (Loop(ev_loop*), default_loop()):
/// that Loop's destruction just detaches (and stops) it, so it does not run either when the
/// ev_loop's real owner destroys it later.
///
/// Thread-safety: every member is for the loop thread.
class EVCXX_API Cleanup final : public Watcher<Cleanup, ev_cleanup, void()> {
 public:
  /// Runs `callback` while the loop is being destroyed; active on construction.
  /// Thread-safety: loop thread.
  Cleanup(Loop& loop, Callable&& callback) : Cleanup(loop, deferred, std::move(callback)) {
    start();
  }
  /// Created stopped; start() it later.
  /// Thread-safety: loop thread.
  Cleanup(Loop& loop, deferred_t, Callable&& callback) : Watcher(loop, std::move(callback)) {
    ev_cleanup_set(&watcher_);
  }
  /// Stops the watcher.
  ~Cleanup() override = default;

 private:
  bool detach_after_loop_destroy() const noexcept override { return true; }
  bool holds_reference() const noexcept override { return false; }  // libev unrefs it
};

EVCXX_END_NAMESPACE
