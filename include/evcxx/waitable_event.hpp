#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>

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
  template <class Rep, class Period>
  bool wait_for(std::chrono::duration<Rep, Period> timeout) {
    return wait_until(std::chrono::steady_clock::now() +
                      std::chrono::ceil<std::chrono::steady_clock::duration>(timeout));
  }
  template <class ClockType, class Duration>
  bool wait_until(std::chrono::time_point<ClockType, Duration> deadline) {
    if constexpr (std::is_same_v<ClockType, std::chrono::steady_clock>) {
      return wait_until_steady(std::chrono::ceil<std::chrono::steady_clock::duration>(deadline));
    } else {
      // Other clocks may jump: wait in steady slices and re-check against the caller's clock.
      for (;;) {
        const auto left = deadline - ClockType::now();
        if (left <= Duration::zero()) return is_set();
        if (wait_until_steady(std::chrono::steady_clock::now() +
                              std::chrono::ceil<std::chrono::steady_clock::duration>(left))) {
          return true;
        }
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
  bool wait_until_steady(std::chrono::steady_clock::time_point deadline) noexcept;
  void sync_fd() const noexcept;

  // Bit 0: set. Bits 1..31: a generation counted up by every set, so a wait is released by a
  // set() even if a clear() follows before the waiter runs.
  std::atomic<std::uint32_t> word_{0};
  std::atomic<std::uint32_t> waiters_{0};
  std::atomic<std::uint32_t> spin_misses_{0};  // adapts how often wait() spins before sleeping
  mutable std::atomic<int> fd_{-1};
  // fd reconciliation: whoever raises the count from 0 brings the fd in line with word_ until the
  // count drops back to 0; nobody blocks, so it is safe in signal handlers.
  mutable std::atomic<std::uint32_t> sync_requests_{0};
  mutable int synced_fd_ = -1;        // touched only by the reconciling caller
  mutable bool fd_readable_ = false;  // likewise
  bool announce_;                     // an on_set was given: set() sends to the loop
  Async async_;
};

}  // namespace evcxx
