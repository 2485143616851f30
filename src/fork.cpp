#include "evcxx/fork.hpp"

#include <utility>

EVCXX_BEGIN_NAMESPACE

Fork::Fork(Loop& loop, Callback callback) : Fork(loop, deferred, std::move(callback)) {
  start();
}

Fork::Fork(Loop& loop, deferred_t, Callback callback) : Watcher(loop, std::move(callback)) {
  ev_fork_set(&watcher_);
}

EVCXX_END_NAMESPACE
