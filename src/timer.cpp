#include "evcxx/timer.hpp"

#include <cmath>
#include <stdexcept>
#include <string>
#include <utility>

EVCXX_BEGIN_NAMESPACE

namespace {

double checked_seconds(Timer::Duration d, const char* what) {
  const double seconds = d.count();
  if (!std::isfinite(seconds) || seconds < 0) {
    throw std::invalid_argument(std::string("evcxx: Timer ") + what +
                                " must be a finite, non-negative duration, not " +
                                std::to_string(seconds) + " s");
  }
  return seconds;
}

}  // namespace

Timer::Timer(Loop& loop, Duration after, Callable&& callback)
    : Timer(loop, deferred, after, Duration::zero(), std::move(callback)) {
  start();
}

Timer::Timer(Loop& loop, Duration after, Duration repeat, Callable&& callback)
    : Timer(loop, deferred, after, repeat, std::move(callback)) {
  start();
}

Timer::Timer(Loop& loop, deferred_t, Duration after, Callable&& callback)
    : Timer(loop, deferred, after, Duration::zero(), std::move(callback)) {}

Timer::Timer(Loop& loop, deferred_t, Duration after, Duration repeat, Callable&& callback)
    : Watcher(loop, std::move(callback)) {
  ev_timer_set(&watcher_, checked_seconds(after, "after"), checked_seconds(repeat, "repeat"));
}

Timer::Timer(Loop& loop, deferred_t, Callable&& callback) : Watcher(loop, std::move(callback)) {
  ev_timer_set(&watcher_, 0., 0.);
}

void Timer::set(Duration after, Duration repeat) {
  const double after_s = checked_seconds(after, "after");
  const double repeat_s = checked_seconds(repeat, "repeat");
  restart_with([&] { ev_timer_set(&watcher_, after_s, repeat_s); });
}

void Timer::again() {
  require_attached("Timer::again()");
  ev_timer_again(raw_loop_, &watcher_);
}

Timer::Duration Timer::remaining() const noexcept {
  return Duration(ev_timer_remaining(raw_loop_, const_cast<ev_timer*>(&watcher_)));
}

void Timer::set_repeat(Duration repeat) {
  watcher_.repeat = checked_seconds(repeat, "repeat");
}

EVCXX_END_NAMESPACE
