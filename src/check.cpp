#include "evcxx/check.hpp"

#include <utility>

EVCXX_BEGIN_NAMESPACE

Check::Check(Loop& loop, Callback callback) : Check(loop, deferred, std::move(callback)) {
  start();
}

Check::Check(Loop& loop, deferred_t, Callback callback) : Watcher(loop, std::move(callback)) {
  ev_check_set(&watcher_);
}

EVCXX_END_NAMESPACE
