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

namespace evcxx {

// A level-triggered event in the style of a pipe: set from anywhere (threads, signal handlers),
// waited on from any thread, polled as a file descriptor by foreign code, and announced to the
// loop through an ev_async.
//
// Do not wait() on the loop's own thread for a set() that only that loop would make: the loop
// cannot run while its thread is blocked, so that is a deadlock.
//
// Linux only (futex and eventfd).
class EVCXX_API WaitableEvent {
 public:
  // on_set, if given, runs on the loop thread after set() makes the event set: once per time the
  // loop observes it newly set, and not if it was cleared again before the loop got to it. With
  // on_set the event keeps the loop alive like an active Async; without it, it does not.
  // Loop thread.
  explicit WaitableEvent(Loop& loop, std::function<void()> on_set = {});
  // Closes the fd. Threads still waiting must be gone: destroy the event after they return.
  // Loop thread.
  ~WaitableEvent();

  WaitableEvent(const WaitableEvent&) = delete;
  WaitableEvent& operator=(const WaitableEvent&) = delete;

  // ANY thread and signal handlers: sets the event, releases every waiter, makes fd() readable and
  // announces it to the loop. Idempotent while set (then a single atomic operation). Preserves
  // errno. Still works (for waiters and fd()) after the Loop is gone.
  void set() noexcept;
  // ANY thread and signal handlers: clears the event. Never blocks, even when nothing is set.
  void clear() noexcept;
  // ANY thread and signal handlers: a non-blocking probe.
  bool is_set() const noexcept;

  // ANY thread: blocks until the event is set.
  void wait() noexcept;
  // ANY thread: blocks until the event is set or the time is up. Returns true if a set() released
  // the wait (even if the event was cleared again since), false on timeout.
  // A timeout too large for the clock (duration::max()) waits forever; NaN throws
  // std::invalid_argument.
  template <class Rep, class Period>
  bool wait_for(std::chrono::duration<Rep, Period> timeout) {
    return wait_until_steady(steady_deadline_after(timeout));
  }
  template <class ClockType, class Duration>
  bool wait_until(std::chrono::time_point<ClockType, Duration> deadline) {
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

  // ANY thread: a file descriptor that is readable exactly while the event is set, for select,
  // poll or epoll in foreign code. Created on first call (until then the event costs no fd);
  // returns -1 with errno set if it cannot be created. Never read or write it yourself.
  int fd() const noexcept;

  // The Async that announces set() to the loop (for its priority, say). Loop thread.
  Async& async() noexcept { return async_; }
  Loop& loop() const noexcept { return async_.loop(); }

 private:
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

  // Bit 0: set. Bits 1..31: a generation counted up by every set, so a wait is released by a
  // set() even if a clear() follows before the waiter runs.
  std::atomic<std::uint32_t> word_{0};
  std::atomic<std::uint32_t> waiters_{0};
  std::atomic<std::uint32_t> spin_misses_{0};  // adapts how often wait() spins before sleeping
  mutable std::atomic<int> fd_{-1};
  bool announce_;  // an on_set was given: set() sends to the loop
  Async async_;
};

}  // namespace evcxx
