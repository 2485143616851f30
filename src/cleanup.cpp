#include "evcxx/cleanup.hpp"

#include <utility>

EVCXX_BEGIN_NAMESPACE

Cleanup::Cleanup(Loop& loop, Callback callback) : Cleanup(loop, deferred, std::move(callback)) {
  start();
}

Cleanup::Cleanup(Loop& loop, deferred_t, Callback callback) : Watcher(loop, std::move(callback)) {
  ev_cleanup_set(&watcher_);
}

EVCXX_END_NAMESPACE
