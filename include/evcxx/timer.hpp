#pragma once

#include <ev.h>

#include <chrono>
#include <functional>

#include "evcxx/export.hpp"
#include "evcxx/loop.hpp"
#include "evcxx/watcher.hpp"

EVCXX_BEGIN_NAMESPACE

/// ev_timer: a relative timeout, optionally repeating, on the loop's monotonic clock.
///
/// It fires `after` from the loop's current time (Loop::now(), which is the time the current
/// iteration started: call Loop::update_now() first after a long computation), then every `repeat`
/// if repeat is not zero. For an inactivity timeout that is reset often, set a repeat and call
/// again() on each activity: that is much cheaper than stop() and start().
///
/// Durations are any std::chrono::duration; they must be finite and non-negative.
///
/// Thread-safety: loop thread.
class EVCXX_API Timer final : public Watcher<Timer, ev_timer, void()> {
 public:
  /// Seconds, as libev counts them; any std::chrono::duration converts to it.
  using Duration = std::chrono::duration<double>;

  /// Fires once, `after` from now; active on construction.
  /// Throws: std::invalid_argument for a negative, NaN or infinite duration.
  Timer(Loop& loop, Duration after, Callable&& callback);
  /// Fires `after` from now, then every `repeat` (if not zero); active on construction.
  /// Throws: std::invalid_argument for a negative, NaN or infinite duration.
  Timer(Loop& loop, Duration after, Duration repeat, Callable&& callback);
  /// Created stopped; start() it later.
  /// Throws: the same checks.
  Timer(Loop& loop, deferred_t, Duration after, Callable&& callback);
  /// Created stopped, repeating; start() it later.
  /// Throws: the same checks.
  Timer(Loop& loop, deferred_t, Duration after, Duration repeat, Callable&& callback);
  /// Created stopped with no timeout yet: start(after, repeat) or set(after, repeat) gives it one
  /// (a plain start() fires in the next iteration: `after` and `repeat` are zero).
  Timer(Loop& loop, deferred_t, Callable&& callback);
  /// Stops the watcher.
  ~Timer() override = default;

  /// New timeout and repeat; restarts the timer if it was active (counting `after` from now).
  /// Throws: the constructor's checks.
  void set(Duration after, Duration repeat = Duration::zero());
  /// start() with the parameters it has (the overloads below set them first).
  using Watcher::start;
  /// set(after, repeat), then start(): ev++.h's start(after, repeat).
  /// Throws: std::logic_error if its Loop is gone (changing nothing); the constructor's checks.
  void start(Duration after, Duration repeat = Duration::zero()) {
    require_attached("start(after, repeat)");
    set(after, repeat);
    start();
  }

  /// ev_timer_again: with a non-zero repeat, (re)starts the timer to fire `repeat` from now;
  /// with a zero repeat, stops it.
  /// Throws: std::logic_error if its Loop is gone.
  void again();
  /// Time left until it fires while active; while stopped, the `after` it would start with.
  Duration remaining() const noexcept;
  /// The repeat interval (zero: fires once).
  Duration repeat() const noexcept { return Duration(watcher_.repeat); }
  /// Sets the repeat interval; takes effect the next time the timer fires or again() is called.
  /// Throws: the same checks as set().
  void set_repeat(Duration repeat);
};

EVCXX_END_NAMESPACE
