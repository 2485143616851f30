#include "evcxx/detail/watcher_link.hpp"

#include <stdexcept>
#include <string>

EVCXX_BEGIN_NAMESPACE
namespace detail {

struct ev_loop* detached_loop() noexcept {
  // Select backend and no optional features: only memory, no file descriptors. Never run, never
  // destroyed, so sends to it only set flags nobody reads.
  // (ev.h's flags and backends are two unnamed enums: C++20 deprecates mixing them unconverted.)
  static struct ev_loop* const loop = ev_loop_new(
      static_cast<unsigned>(EVBACKEND_SELECT) |
      static_cast<unsigned>(EVFLAG_NOENV | EVFLAG_NOINOTIFY | EVFLAG_NOSIGMASK | EVFLAG_NOTIMERFD));
  return loop;
}

WatcherLink::WatcherLink(Loop& loop) : loop_(&loop), raw_loop_(loop.native()) {
  if (loop.being_destroyed()) {
    // libev is freeing the loop (a Cleanup callback runs): the watcher would outlive it attached.
    throw std::logic_error(
        "evcxx: a watcher created on a Loop that is being destroyed (inside a Cleanup callback?); "
        "create watchers on a live Loop");
  }
  next_ = loop.watchers_;
  if (next_ != nullptr) next_->prev_ = this;
  loop.watchers_ = this;
}

WatcherLink::~WatcherLink() {
  if (loop_ == nullptr) return;
  if (prev_ != nullptr) {
    prev_->next_ = next_;
  } else {
    loop_->watchers_ = next_;
  }
  if (next_ != nullptr) next_->prev_ = prev_;
}

void WatcherLink::detach(bool stop_native) noexcept {
  if (stop_native) stop_for_detach();
  loop_ = nullptr;
  raw_loop_ = detached_loop();
  prev_ = next_ = nullptr;
}

void WatcherLink::require_attached(const char* operation) const {
  if (loop_ == nullptr) {
    throw std::logic_error(std::string("evcxx: ") + operation +
                           " on a watcher whose Loop was destroyed; create a new watcher on a "
                           "live Loop instead");
  }
}

void WatcherLink::check_priority(int priority) {
  if (priority < EV_MINPRI || priority > EV_MAXPRI) {
    throw std::out_of_range("evcxx: watcher priority " + std::to_string(priority) +
                            " is outside [EV_MINPRI, EV_MAXPRI] = [" + std::to_string(EV_MINPRI) +
                            ", " + std::to_string(EV_MAXPRI) + "]");
  }
}

void WatcherLink::throw_priority_while_active() {
  throw std::logic_error(
      "evcxx: set_priority() on an active or pending watcher; stop() it (which also clears a "
      "pending event) before changing its priority");
}

}  // namespace detail
EVCXX_END_NAMESPACE
