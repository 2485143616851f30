#include "evcxx/async.hpp"

#include <utility>

EVCXX_BEGIN_NAMESPACE

Async::Async(Loop& loop, Callback callback) : Async(loop, deferred, std::move(callback)) {
  start();
}

Async::Async(Loop& loop, deferred_t, Callback callback) : Watcher(loop, std::move(callback)) {
  ev_async_set(&watcher_);
}

EVCXX_END_NAMESPACE
