#pragma once

#include <ev.h>

#include <functional>
#include <utility>

#include "evcxx/export.hpp"
#include "evcxx/loop.hpp"
#include "evcxx/watcher.hpp"

EVCXX_BEGIN_NAMESPACE

/// ev_check: runs in every loop iteration just after the loop has collected events (after it woke
/// up), before the callbacks of those events that have the same or a lower priority. Pair with
/// Prepare to integrate another event source.
///
/// Thread-safety: loop thread.
class EVCXX_API Check final : public Watcher<Check, ev_check, void()> {
 public:
  /// Runs `callback` in every iteration after events were collected; active on construction.
  Check(Loop& loop, Callable&& callback) : Check(loop, deferred, std::move(callback)) { start(); }
  /// Created stopped; start() it later.
  Check(Loop& loop, deferred_t, Callable&& callback) : Watcher(loop, std::move(callback)) {
    ev_check_set(&watcher_);
  }
  /// Stops the watcher.
  ~Check() override = default;
};

EVCXX_END_NAMESPACE
