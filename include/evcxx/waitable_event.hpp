#pragma once

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <type_traits>

#include "evcxx/async.hpp"
#include "evcxx/export.hpp"
#include "evcxx/loop.hpp"

EVCXX_BEGIN_NAMESPACE

/// A level-triggered event in the style of a pipe: set from anywhere (threads, signal handlers),
/// waited on from any thread, polled as a file descriptor by foreign code, and, when made with a
/// Loop, announced to that loop through an ev_async.
///
/// Thread-safety: set(), clear() and is_set() are for ANY thread and for signal handlers; wait(),
/// wait_for(), wait_until() and fd() for ANY thread; the constructors and the destructor for ANY
/// thread; async() for the loop thread. on_set runs on the loop thread.
///
/// Lifetime: as with std::latch and absl::Notification, a thread whose wait(), wait_for() or
/// wait_until() returned true, or that saw is_set() return true, may destroy the event at once,
/// even while the set() that released it is still returning on another thread: the destructor
/// waits for the few instructions set() and clear() have left (they never block). Any other call
/// must have returned. Once the destructor returned, on_set does not run again; on another thread
/// than the loop's it waits for an on_set that is running, so on_set must not wait for that
/// thread. The Loop may be destroyed first: waiters, is_set(), set() and fd() keep working. What
/// the Loop's destruction must not race (as for Loop::post): a set() on an event with a Loop, or
/// the construction or destruction of such an event on another thread; those must have returned
/// before ~Loop begins. Making one while the Loop is being destroyed (inside a Cleanup callback)
/// throws std::logic_error. An event with a Loop may be made and destroyed on another thread even
/// after the Loop's LoopThread was stopped: that does not go through Loop::post (how it reaches
/// the loop thread: docs/waitable-event.md).
///
/// Memory ordering: everything a thread wrote before set() is visible to a thread whose wait(),
/// wait_for() or wait_until() returned true, or whose is_set() returned true, because of that
/// set(), and to the on_set it causes: set() is a release, each of those an acquire.
///
/// Do not wait() on the loop's own thread for a set() that only that loop would make: the loop
/// cannot run while its thread is blocked, so that is a deadlock.
///
/// Linux, the BSDs and macOS (src/platform/: futex and eventfd on Linux, elsewhere a pipe and
/// POSIX semaphores).
class EVCXX_API WaitableEvent {
 public:
  /// A standalone event: set / clear / is_set / wait* / fd, no loop and no on_set.
  /// Allocates nothing.
  WaitableEvent() noexcept;
  /// An event announced to loop.
  /// on_set, if given, runs on the loop thread after set() makes the event set: once per time the
  /// loop observes it newly set, and not if it was cleared again before the loop got to it. With
  /// on_set the event keeps the loop alive like an active Async; without it, it does not.
  /// Allocates a small block shared with the loop thread. Inside the loop's run() its Async is set
  /// up at once; elsewhere (another thread, or outside run()) at the loop's next wake-up, or by
  /// async() on the loop thread, whichever comes first.
  /// Thread-safety: ANY thread.
  /// Throws: std::logic_error while the Loop is being destroyed (see Lifetime).
  explicit WaitableEvent(Loop& loop, std::function<void()> on_set = {});
  /// Closes the fd.
  /// Thread-safety: ANY thread.
  /// Lifetime: threads still blocked in a wait must be gone (see the class's Lifetime).
  ~WaitableEvent();

  /// Not copyable (nor movable).
  WaitableEvent(const WaitableEvent&) = delete;
  /// Not copyable (nor movable).
  WaitableEvent& operator=(const WaitableEvent&) = delete;

  /// Sets the event, releases every waiter, makes fd() readable and announces it to the loop.
  /// Idempotent while set (then a single atomic operation). Preserves errno. Still works (for
  /// waiters and fd()) after the Loop is gone.
  /// Thread-safety: ANY thread and signal handlers.
  void set() noexcept;
  /// Clears the event. Never blocks, even when nothing is set.
  /// Thread-safety: ANY thread and signal handlers.
  void clear() noexcept;
  /// A non-blocking probe: true while the event is set.
  /// Thread-safety: ANY thread and signal handlers.
  bool is_set() const noexcept;

  /// Blocks until the event is set.
  /// Thread-safety: ANY thread.
  void wait() noexcept;
  /// Blocks until the event is set or the time is up; returns true if a set() released the wait
  /// (even if the event was cleared again since), false on timeout.
  /// A timeout too large for the clock (duration::max()) waits forever.
  /// Thread-safety: ANY thread.
  /// Throws: std::invalid_argument for a NaN timeout.
  template <class Rep, class Period>
  bool wait_for(std::chrono::duration<Rep, Period> timeout) {
    return wait_until_steady(steady_deadline_after(timeout));
  }
  /// wait_for() until a time point of any clock, judged by that clock (one that may jump is
  /// re-checked as the wait goes on); returns true if a set() released the wait, false on timeout.
  /// Thread-safety: ANY thread.
  template <class ClockType, class Duration>
  bool wait_until(std::chrono::time_point<ClockType, Duration> deadline) {
    // A deadline more than half the range of the finest unit involved away from its clock's epoch
    // would overflow when converted or compared (time_point<Clock, seconds>::max(), say): it is
    // forever, or long past.
    using Finest = std::common_type_t<Duration, typename ClockType::duration,
                                      std::chrono::steady_clock::duration>;
    const std::chrono::duration<double> since_epoch = deadline.time_since_epoch();
    const std::chrono::duration<double> half_range =
        std::chrono::duration<double>(Finest::max()) / 2;
    if (since_epoch >= half_range)
      return wait_until_steady(std::chrono::steady_clock::time_point::max());
    if (since_epoch <= -half_range) return is_set();
    if constexpr (std::is_same_v<ClockType, std::chrono::steady_clock>) {
      return wait_until_steady(std::chrono::ceil<std::chrono::steady_clock::duration>(deadline));
    } else {
      // Other clocks may jump: wait in steady slices and re-check against the caller's clock.
      for (;;) {
        const auto now = ClockType::now();
        if (deadline <= now) return is_set();
        if (wait_until_steady(steady_deadline_after(deadline - now))) return true;
      }
    }
  }

  /// A file descriptor that is readable exactly while the event is set, for select, poll or epoll
  /// in foreign code; -1 with errno set if it cannot be created.
  /// Created on first call (until then the event costs no fd). Never read or write it yourself.
  /// Thread-safety: ANY thread.
  int fd() const noexcept;

  /// The Async that announces set() to the loop (for its priority, say).
  /// Completes a registration made off the loop thread that the loop has not reached yet. Works
  /// after the Loop died (it is then detached).
  /// Thread-safety: loop thread.
  /// Throws: std::logic_error on a standalone event.
  Async& async();
  /// The Loop given to the constructor; only while it lives.
  /// Throws: std::logic_error on a standalone event.
  Loop& loop() const;

 private:
  // Shared with the loop thread: the Async, on_set and the state of its registration.
  struct Announcer;

  // now + timeout on the steady clock, saturated to time_point::max() (no deadline) instead of
  // overflowing.
  template <class Rep, class Period>
  static std::chrono::steady_clock::time_point steady_deadline_after(
      std::chrono::duration<Rep, Period> timeout) {
    using std::chrono::steady_clock;
    if constexpr (std::is_floating_point_v<Rep>) {
      if (std::isnan(timeout.count())) {
        throw std::invalid_argument("evcxx: WaitableEvent wait timeout is NaN");
      }
    }
    const auto now = steady_clock::now();
    if (timeout <= std::chrono::duration<Rep, Period>::zero()) return now;
    const std::chrono::duration<double> room = steady_clock::time_point::max() - now;
    if (std::chrono::duration<double>(timeout) >= room - std::chrono::seconds(1)) {
      return steady_clock::time_point::max();
    }
    return now + std::chrono::ceil<steady_clock::duration>(timeout);
  }
  bool wait_until_steady(std::chrono::steady_clock::time_point deadline) noexcept;
  // Makes fd() readable exactly when the event is set; lock-free and async-signal-safe.
  void sync_fd() const noexcept;
  // Returns once no set() or clear() is still running on another thread.
  void wait_for_calls_in_flight() const noexcept;

  // Bit 0: set. Bits 1..31: a generation counted up by every set, so a wait is released by a
  // set() even if a clear() follows before the waiter runs.
  std::atomic<std::uint32_t> word_{0};
  std::atomic<std::uint32_t> waiters_{0};
  std::atomic<std::uint32_t> spin_misses_{0};  // adapts how often wait() spins before sleeping
  // set() and clear() calls between their first write and their last access: the destructor
  // waits for none to be left, so the set() that released a waiter never touches freed memory.
  std::atomic<std::uint32_t> calls_in_flight_{0};
  mutable std::atomic<int> fd_{-1};
  Loop* const loop_ = nullptr;
  Announcer* const announcer_ = nullptr;  // with a Loop
  const bool announce_ = false;           // an on_set was given: set() sends to the loop
};

EVCXX_END_NAMESPACE
