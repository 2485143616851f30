#include "evcxx/io.hpp"

#include <cmath>
#include <stdexcept>
#include <string>
#include <utility>

#include "closed_fd_guard.hpp"
#include "io_uring_check.hpp"

EVCXX_BEGIN_NAMESPACE

namespace {

void check_fd_and_events(int fd, IoEvents events) {
  if (fd < 0) {
    throw std::invalid_argument("evcxx: Io needs an open file descriptor, not " +
                                std::to_string(fd));
  }
  if ((events.raw() & ~(EV_READ | EV_WRITE)) != 0) {
    throw std::invalid_argument(
        "evcxx: Io watches IoEvent::readable, IoEvent::writable, both or neither (errors are "
        "reported without being asked for)");
  }
}

Loop& reject_io_uring(Loop& loop) {
  detail::reject_broken_io_uring(loop.native(), "Io");
  return loop;
}

}  // namespace

Io::Io(Loop& loop, int fd, IoEvents events, Callable&& callback)
    : Io(loop, deferred, fd, events, std::move(callback)) {
  start();
}

Io::Io(Loop& loop, deferred_t, int fd, IoEvents events, Callable&& callback)
    : Watcher(reject_io_uring(loop), std::move(callback)) {
  check_fd_and_events(fd, events);
  ev_io_set(&watcher_, fd, events.raw());
  guard_ = detail::ClosedFdGuard::enrol(loop, *this);
  if (guard_ != nullptr) {
    try {
      guard_->check_fd(fd);
    } catch (...) {
      guard_->withdraw(*this);
      throw;
    }
  }
}

Io::Io(Loop& loop, deferred_t, Callable&& callback)
    : Watcher(reject_io_uring(loop), std::move(callback)) {
  ev_io_set(&watcher_, -1, 0);
  guard_ = detail::ClosedFdGuard::enrol(loop, *this);
}

Io::~Io() {
  stop();  // through the guard, which must hear of it
  if (guard_ != nullptr) guard_->withdraw(*this);
}

void Io::set(int fd, IoEvents events) {
  check_fd_and_events(fd, events);
  if (guard_ != nullptr) guard_->check_fd(fd);
  // ev_io_set's "new descriptor" flag makes libev register the descriptor again even when the
  // number and events are the same: it may name another file now.
  restart_with([&] { ev_io_set(&watcher_, fd, events.raw()); });
}

void Io::set(IoEvents events) {
  if (fd() < 0) {
    throw std::logic_error(
        "evcxx: Io::set(events) on an Io that has no descriptor yet: use set(fd, events)");
  }
  check_fd_and_events(fd(), events);
  // ev_io_modify: the same file, so libev skips the backend work of a new descriptor.
  restart_with([&] { ev_io_modify(&watcher_, events.raw()); });
}

void Io::set_closed_fd_check_interval(std::chrono::duration<double> interval) {
  if (std::isnan(interval.count()) || interval.count() < 0) {
    throw std::invalid_argument(
        "evcxx: Io::set_closed_fd_check_interval() needs a non-negative interval (zero turns "
        "the periodic check off)");
  }
  detail::closed_fd_check_seconds.store(interval.count(), std::memory_order_relaxed);
}

std::chrono::duration<double> Io::closed_fd_check_interval() noexcept {
  return std::chrono::duration<double>(
      detail::closed_fd_check_seconds.load(std::memory_order_relaxed));
}

void Io::start_native() {
  if (ev_is_active(&watcher_)) return;
  if (watcher_.fd < 0) {
    throw std::logic_error(
        "evcxx: Io::start() on an Io that has no descriptor yet: use start(fd, events), or "
        "set(fd, events) first");
  }
  if (guard_ != nullptr) {
    guard_->check_fd(watcher_.fd);  // again: the loop's own descriptor changes with a fork
    guard_->before_start(*this);
  }
  ev_io_start(raw_loop_, &watcher_);
}

void Io::stop_native() noexcept {
  if (guard_ != nullptr && ev_is_active(&watcher_)) guard_->before_stop(*this);
  ev_io_stop(raw_loop_, &watcher_);
}

void Io::fail_closed_fd() noexcept {
  ev_io_stop(raw_loop_, &watcher_);
  ev_feed_event(raw_loop_, &watcher_, EV_ERROR | EV_READ | EV_WRITE);
}

EVCXX_END_NAMESPACE
