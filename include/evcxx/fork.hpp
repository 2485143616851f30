#pragma once

#include <ev.h>

#include <utility>

#include "evcxx/export.hpp"
#include "evcxx/loop.hpp"
#include "evcxx/watcher.hpp"

EVCXX_BEGIN_NAMESPACE

/// ev_fork: runs in a child process after fork(), once the child has told its loop with
/// Loop::notify_fork() (or automatically, for a loop created with LoopFlag::forkcheck). The
/// callback runs at the start of the loop's next iteration, before it waits for events, and only in
/// the process where Loop::notify_fork() was called. An active Fork keeps its loop alive.
///
/// Thread-safety: every member is for the loop thread.
class EVCXX_API Fork final : public Watcher<Fork, ev_fork, void()> {
 public:
  /// Runs `callback` in the child after Loop::notify_fork(); active on construction.
  /// Thread-safety: loop thread.
  Fork(Loop& loop, Callable&& callback) : Fork(loop, deferred, std::move(callback)) { start(); }
  /// Created stopped; start() it later.
  /// Thread-safety: loop thread.
  Fork(Loop& loop, deferred_t, Callable&& callback) : Watcher(loop, std::move(callback)) {
    ev_fork_set(&watcher_);
  }
  /// Stops the watcher.
  ~Fork() override = default;
};

EVCXX_END_NAMESPACE
