#include "evcxx/prepare.hpp"

#include <utility>

EVCXX_BEGIN_NAMESPACE

Prepare::Prepare(Loop& loop, Callback callback) : Prepare(loop, deferred, std::move(callback)) {
  start();
}

Prepare::Prepare(Loop& loop, deferred_t, Callback callback) : Watcher(loop, std::move(callback)) {
  ev_prepare_set(&watcher_);
}

EVCXX_END_NAMESPACE
