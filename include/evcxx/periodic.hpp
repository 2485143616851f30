#pragma once

#include <ev.h>

#include <chrono>
#include <exception>
#include <functional>
#include <utility>

#include "evcxx/export.hpp"
#include "evcxx/loop.hpp"
#include "evcxx/watcher.hpp"

EVCXX_BEGIN_NAMESPACE

/// ev_periodic: a timer on the wall clock (Clock, like Timestamp) rather than on elapsed time, so
/// it follows changes of the system time.
///
/// Three modes:
///  - at a Timestamp: fires once when the wall clock reaches it, then stops;
///  - offset and interval: fires whenever the wall clock reads offset + N * interval (offset 0s,
///    interval 1h fires on every full hour, UTC);
///  - a reschedule rule: a function that returns the next time to fire after `now`.
/// The callback runs only once its time has passed. An active Periodic keeps its loop alive.
///
/// Thread-safety: every member is for the loop thread.
class EVCXX_API Periodic final : public Watcher<Periodic, ev_periodic, void()> {
 public:
  /// Seconds, as libev counts them; any std::chrono::duration converts to it.
  using Duration = std::chrono::duration<double>;
  /// Returns the next time to fire, no earlier than `now`.
  ///
  /// libev calls the rule from inside its own bookkeeping (when the watcher starts, when it
  /// fires, after a time jump and on Loop::resume()), so the rule must not start, stop, set or
  /// destroy any watcher, nor run the loop: it may only read (at(), the clock, its own state).
  /// To stop the watcher, return a time far in the future and stop it from its callback.
  /// An exception thrown by the rule, or a returned time that is NaN or before `now`, is rethrown
  /// by start()/again()/set() when one of them called the rule, and otherwise by run(); the
  /// watcher then stays active but will not fire until it is restarted.
  using RescheduleRule = std::function<Timestamp(Periodic&, Timestamp now)>;

  /// Fires once at `at`; active on construction.
  /// Throws: std::invalid_argument unless `at` is finite.
  Periodic(Loop& loop, Timestamp at, Callable&& callback);
  /// Fires once at `at`; created stopped, start() it later.
  /// Throws: std::invalid_argument unless `at` is finite.
  Periodic(Loop& loop, deferred_t, Timestamp at, Callable&& callback);
  /// Fires at every offset + N * interval; active on construction.
  /// Throws: std::invalid_argument unless interval is positive and finite and offset is
  /// non-negative and finite.
  Periodic(Loop& loop, Duration offset, Duration interval, Callable&& callback);
  /// Fires at every offset + N * interval; created stopped, start() it later.
  /// Throws: as the active constructor.
  Periodic(Loop& loop, deferred_t, Duration offset, Duration interval, Callable&& callback);
  /// Fires when `rule` says; active on construction.
  /// Throws: std::invalid_argument for an empty rule; what the rule throws when the constructor
  /// starts the watcher.
  Periodic(Loop& loop, RescheduleRule rule, Callable&& callback);
  /// Fires when `rule` says; created stopped, start() it later.
  /// Throws: std::invalid_argument for an empty rule.
  Periodic(Loop& loop, deferred_t, RescheduleRule rule, Callable&& callback);
  /// Stops the watcher.
  ~Periodic() override;

  /// Switches to firing once at `at`; an active watcher is restarted.
  /// Throws: the constructor's checks; on an exception the watcher keeps its previous parameters.
  void set(Timestamp at);
  /// Switches to firing at every offset + N * interval; an active watcher is restarted.
  /// Throws: the constructor's checks; on an exception the watcher keeps its previous parameters.
  void set(Duration offset, Duration interval);
  /// Switches to firing when `rule` says; an active watcher is restarted.
  /// Throws: the constructor's checks; on an exception the watcher keeps its previous parameters
  /// (and, for a rule that throws on restart, is left stopped).
  void set(RescheduleRule rule);
  /// start() with the parameters it has (the overloads below set them first).
  using Watcher::start;
  /// set(at), then start().
  /// Throws: std::logic_error if its Loop is gone (changing nothing); as set() and start().
  void start(Timestamp at) {
    require_attached("start(at)");
    set(at);
    start();
  }
  /// set(offset, interval), then start().
  /// Throws: std::logic_error if its Loop is gone (changing nothing); as set() and start().
  void start(Duration offset, Duration interval) {
    require_attached("start(offset, interval)");
    set(offset, interval);
    start();
  }
  /// set(rule), then start().
  /// Throws: std::logic_error if its Loop is gone (changing nothing); as set() and start().
  void start(RescheduleRule rule) {
    require_attached("start(rule)");
    set(std::move(rule));
    start();
  }

  /// Stops and restarts the watcher, recomputing its next time (ev_periodic_again): for a rule
  /// whose answer changed.
  /// Throws: std::logic_error if its Loop is gone; what the rule throws.
  void again();

  /// When an active watcher fires next (ev_periodic_at); meaningless while stopped.
  Timestamp at() const noexcept { return Timestamp(Duration(ev_periodic_at(&watcher_))); }
  /// The offset as given (it doubles as the absolute time in the one-shot mode; zero in the rule
  /// mode).
  Duration offset() const noexcept { return Duration(watcher_.offset); }
  /// The interval as given (zero in the one-shot and the rule mode).
  Duration interval() const noexcept { return Duration(watcher_.interval); }
  /// The watcher fires when a RescheduleRule says.
  bool has_rule() const noexcept { return static_cast<bool>(rule_); }

 private:
  friend class Watcher<Periodic, ev_periodic, void()>;

  void start_native();
  // Runs a libev call that may call the rule; rethrows the rule's failure here.
  template <class LibevCall>
  void call_rule_through(LibevCall&& call);
  void reject_inside_rule(const char* operation) const;
  static ev_tstamp reschedule_trampoline(ev_periodic* w, ev_tstamp now) noexcept;

  RescheduleRule rule_;
  bool in_rule_ = false;
  std::exception_ptr* rule_error_ = nullptr;  // set while start()/again() can call the rule
};

EVCXX_END_NAMESPACE
