#include "evcxx/async.hpp"

#include <utility>

namespace evcxx {

Async::Async(Loop& loop, Callback callback) : Async(loop, deferred, std::move(callback)) {
  start();
}

Async::Async(Loop& loop, deferred_t, Callback callback) : Watcher(loop, std::move(callback)) {
  ev_async_set(&watcher_);
}

}  // namespace evcxx
