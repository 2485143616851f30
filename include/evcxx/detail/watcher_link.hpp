#pragma once

#include <ev.h>

#include "evcxx/export.hpp"
#include "evcxx/loop.hpp"

EVCXX_BEGIN_NAMESPACE
namespace detail {

// A loop that is never run: detached watchers point at it so that thread-safe calls such as
// Async::send() made after their Loop died touch nothing that was freed.
EVCXX_API struct ev_loop* detached_loop() noexcept;

// After a prepare-phase callback that ran after the loop's closed-descriptor check: checks again
// what libev is about to register (see Io). Loop thread.
EVCXX_API void recheck_closed_fds(Loop& loop) noexcept;

// What every watcher shares with its Loop, independent of the libev watcher type: membership in
// the loop's list (so ~Loop can detach it) and the checks that replace libev's assertions.
class EVCXX_API WatcherLink {
 public:
  WatcherLink(const WatcherLink&) = delete;
  WatcherLink& operator=(const WatcherLink&) = delete;

  // True until the watcher's Loop is destroyed. Loop thread.
  bool attached() const noexcept { return loop_ != nullptr; }

 protected:
  // Throws std::logic_error on a Loop that is being destroyed (inside a Cleanup callback).
  explicit WatcherLink(Loop& loop);
  virtual ~WatcherLink();

  // Stops the libev watcher; called by ~Loop while the loop still exists.
  virtual void stop_for_detach() noexcept = 0;
  // True for watchers libev itself runs while destroying the loop (Cleanup): ~Loop detaches them
  // after ev_loop_destroy() instead of before.
  virtual bool detach_after_loop_destroy() const noexcept { return false; }
  // Whether this link holds one of libev's loop references now (an active user watcher, except
  // Cleanup); Loop::verify() compares them with the caller's unref() calls.
  virtual bool holds_reference() const noexcept { return false; }

  // The loop's closed-descriptor guard (see Io), or nullptr.
  static ClosedFdGuard*& fd_guard_slot(Loop& loop) noexcept { return loop.fd_guard_; }
  // Throws std::logic_error naming the operation when the Loop is gone.
  void require_attached(const char* operation) const;
  // Throws std::out_of_range unless priority is within [EV_MINPRI, EV_MAXPRI].
  static void check_priority(int priority);
  // Throws std::logic_error: libev forbids changing the priority of an active or pending watcher.
  [[noreturn]] static void throw_priority_while_active();

  Loop* loop_;
  struct ev_loop* raw_loop_;  // detached_loop() once detached, so thread-safe calls stay safe

 private:
  friend class evcxx::Loop;
  void detach(bool stop_native) noexcept;  // called by ~Loop

  WatcherLink* prev_ = nullptr;
  WatcherLink* next_ = nullptr;
};

}  // namespace detail
EVCXX_END_NAMESPACE
