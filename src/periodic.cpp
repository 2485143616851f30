#include "evcxx/periodic.hpp"

#include <cmath>
#include <stdexcept>
#include <string>
#include <utility>

EVCXX_BEGIN_NAMESPACE

namespace {

// What "stop firing" means to libev: a time so far ahead that it never comes.
constexpr double never_seconds = 1e30;

void check_at(Timestamp at) {
  if (!std::isfinite(at.time_since_epoch().count())) {
    throw std::invalid_argument("evcxx: Periodic needs a finite time to fire at, not NaN or inf");
  }
}

void check_offset_interval(Periodic::Duration offset, Periodic::Duration interval) {
  if (!std::isfinite(interval.count()) || interval.count() <= 0) {
    throw std::invalid_argument(
        "evcxx: Periodic interval must be a positive, finite number of seconds (to fire once, "
        "pass a Timestamp instead)");
  }
  if (!std::isfinite(offset.count()) || offset.count() < 0) {
    throw std::invalid_argument(
        "evcxx: Periodic offset must be a non-negative, finite number of seconds (usually "
        "between 0 and the interval)");
  }
}

void check_rule(const Periodic::RescheduleRule& rule) {
  if (!rule) throw std::invalid_argument("evcxx: Periodic needs a reschedule rule, not empty");
}

}  // namespace

template <class LibevCall>
void Periodic::call_rule_through(LibevCall&& call) {
  std::exception_ptr error;
  rule_error_ = &error;
  std::forward<LibevCall>(call)();
  rule_error_ = nullptr;
  if (error) {
    ev_periodic_stop(raw_loop_, &watcher_);
    std::rethrow_exception(error);
  }
}

Periodic::Periodic(Loop& loop, Timestamp at, Callable&& callback)
    : Periodic(loop, deferred, at, std::move(callback)) {
  start();
}

Periodic::Periodic(Loop& loop, deferred_t, Timestamp at, Callable&& callback)
    : Watcher(loop, std::move(callback)) {
  check_at(at);
  ev_periodic_set(&watcher_, at.time_since_epoch().count(), 0., nullptr);
}

Periodic::Periodic(Loop& loop, Duration offset, Duration interval, Callable&& callback)
    : Periodic(loop, deferred, offset, interval, std::move(callback)) {
  start();
}

Periodic::Periodic(Loop& loop, deferred_t, Duration offset, Duration interval, Callable&& callback)
    : Watcher(loop, std::move(callback)) {
  check_offset_interval(offset, interval);
  ev_periodic_set(&watcher_, offset.count(), interval.count(), nullptr);
}

Periodic::Periodic(Loop& loop, RescheduleRule rule, Callable&& callback)
    : Periodic(loop, deferred, std::move(rule), std::move(callback)) {
  start();
}

Periodic::Periodic(Loop& loop, deferred_t, RescheduleRule rule, Callable&& callback)
    : Watcher(loop, std::move(callback)), rule_(std::move(rule)) {
  check_rule(rule_);
  ev_periodic_set(&watcher_, 0., 0., &Periodic::reschedule_trampoline);
}

Periodic::~Periodic() {
  stop();  // before rule_ goes away
}

void Periodic::set(Timestamp at) {
  reject_inside_rule("set()");
  check_at(at);
  restart_with([&] {
    rule_ = nullptr;
    ev_periodic_set(&watcher_, at.time_since_epoch().count(), 0., nullptr);
  });
}

void Periodic::set(Duration offset, Duration interval) {
  reject_inside_rule("set()");
  check_offset_interval(offset, interval);
  restart_with([&] {
    rule_ = nullptr;
    ev_periodic_set(&watcher_, offset.count(), interval.count(), nullptr);
  });
}

void Periodic::set(RescheduleRule rule) {
  reject_inside_rule("set()");
  check_rule(rule);
  restart_with([&] {
    rule_ = std::move(rule);
    ev_periodic_set(&watcher_, 0., 0., &Periodic::reschedule_trampoline);
  });
}

void Periodic::again() {
  require_attached("again()");
  reject_inside_rule("again()");
  call_rule_through([this] { ev_periodic_again(raw_loop_, &watcher_); });
}

void Periodic::start_native() {
  reject_inside_rule("start()");
  call_rule_through([this] { ev_periodic_start(raw_loop_, &watcher_); });
}

void Periodic::reject_inside_rule(const char* operation) const {
  if (in_rule_) {
    throw std::logic_error(std::string("evcxx: Periodic::") + operation +
                           " inside its reschedule rule; libev forbids changing watchers there. "
                           "Return a far-future time and change it from the callback instead");
  }
}

ev_tstamp Periodic::reschedule_trampoline(ev_periodic* w, ev_tstamp now) noexcept {
  auto& self = static_cast<Periodic&>(*static_cast<Watcher*>(w->data));
  ev_tstamp next = now + never_seconds;
  std::exception_ptr error;
  self.in_rule_ = true;
  try {
    const double answer = self.rule_(self, Timestamp(Duration(now))).time_since_epoch().count();
    if (std::isnan(answer) || answer < now) {
      throw std::logic_error(
          "evcxx: a Periodic reschedule rule returned a time before the `now` it was given (or "
          "NaN); it must return a time at or after now");
    }
    next = answer;
  } catch (...) {
    error = std::current_exception();
  }
  self.in_rule_ = false;
  if (error) {
    if (self.rule_error_ != nullptr) {
      if (!*self.rule_error_) *self.rule_error_ = std::move(error);
    } else if (self.loop_ != nullptr) {
      self.loop_->capture_exception(std::move(error));
    }
  }
  return next;
}

EVCXX_END_NAMESPACE
