#include "evcxx/idle.hpp"

#include <utility>

namespace evcxx {

Idle::Idle(Loop& loop, Callback callback) : Idle(loop, deferred, std::move(callback)) {
  start();
}

Idle::Idle(Loop& loop, deferred_t, Callback callback) : Watcher(loop, std::move(callback)) {
  ev_idle_set(&watcher_);
}

}  // namespace evcxx
