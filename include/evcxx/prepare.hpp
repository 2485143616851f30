#pragma once

#include <ev.h>

#include <functional>
#include <utility>

#include "evcxx/export.hpp"
#include "evcxx/loop.hpp"
#include "evcxx/watcher.hpp"

EVCXX_BEGIN_NAMESPACE

/// ev_prepare: runs at the start of every loop iteration, just before the loop collects events
/// (and blocks if nothing is pending). Pair with Check to integrate another event source: set it up
/// here, collect its results in the Check. Starting watchers here affects the coming wait.
///
/// Thread-safety: loop thread.
class EVCXX_API Prepare final : public Watcher<Prepare, ev_prepare, void()> {
 public:
  /// Runs `callback` at the start of every iteration; active on construction.
  Prepare(Loop& loop, Callable&& callback) : Prepare(loop, deferred, std::move(callback)) {
    start();
  }
  /// Created stopped; start() it later.
  Prepare(Loop& loop, deferred_t, Callable&& callback) : Watcher(loop, std::move(callback)) {
    ev_prepare_set(&watcher_);
  }
  /// Stops the watcher.
  ~Prepare() override = default;

 private:
  friend class Watcher<Prepare, ev_prepare, void()>;
  // libev registers descriptors right after the prepare phase: what a Prepare's callback closes
  // or changes is checked before that (see Io).
  bool recheck_fds_after(int) const noexcept { return true; }
};

EVCXX_END_NAMESPACE
