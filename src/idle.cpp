#include "evcxx/idle.hpp"

#include <utility>

EVCXX_BEGIN_NAMESPACE

Idle::Idle(Loop& loop, Callback callback) : Idle(loop, deferred, std::move(callback)) {
  start();
}

Idle::Idle(Loop& loop, deferred_t, Callback callback) : Watcher(loop, std::move(callback)) {
  ev_idle_set(&watcher_);
}

EVCXX_END_NAMESPACE
