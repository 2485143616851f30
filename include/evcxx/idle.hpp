#pragma once

#include <ev.h>

#include <functional>
#include <utility>

#include "evcxx/export.hpp"
#include "evcxx/loop.hpp"
#include "evcxx/watcher.hpp"

EVCXX_BEGIN_NAMESPACE

/// ev_idle: runs once per loop iteration while the loop has nothing else to do: when no event of
/// the same or a higher priority is pending.
///
/// While active, the loop polls for events
/// without blocking, so an active Idle keeps the CPU busy: stop it when its work is done.
///
/// Thread-safety: loop thread.
class EVCXX_API Idle final : public Watcher<Idle, ev_idle, void()> {
 public:
  /// Runs `callback` in every iteration that has nothing else to do; active on construction.
  Idle(Loop& loop, Callable&& callback) : Idle(loop, deferred, std::move(callback)) { start(); }
  /// Created stopped; start() it later.
  Idle(Loop& loop, deferred_t, Callable&& callback) : Watcher(loop, std::move(callback)) {
    ev_idle_set(&watcher_);
  }
  /// Stops the watcher.
  ~Idle() override { stop(); }

 private:
  friend class Watcher<Idle, ev_idle, void()>;
  // Started through evcxx, the Idle is counted: the Loop's busy poll never spins while one is.
  void start_native() {
    ev_idle_start(raw_loop_, &watcher_);
    if (!counted_) {
      counted_ = true;
      loop_->count_active_idle(1);
    }
  }
  void stop_native() noexcept {
    if (counted_) {
      counted_ = false;
      loop_->count_active_idle(-1);
    }
    ev_idle_stop(raw_loop_, &watcher_);
  }

  bool counted_ = false;
};

EVCXX_END_NAMESPACE
