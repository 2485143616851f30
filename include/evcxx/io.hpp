#pragma once

#include <ev.h>

#include <chrono>
#include <functional>

#include "evcxx/export.hpp"
#include "evcxx/flags.hpp"
#include "evcxx/loop.hpp"
#include "evcxx/watcher.hpp"

EVCXX_BEGIN_NAMESPACE

// One kind of readiness an Io watcher waits for.
enum class IoEvent : int {
  readable = EV_READ,
  writable = EV_WRITE,
};

// A set of I/O events: what an Io watcher waits for, and what fired (which may also carry the
// error flag, see Io). from_raw() keeps EV_READ, EV_WRITE and EV_ERROR and drops every other bit.
class IoEvents : public Flags<IoEvents, IoEvent, EV_READ | EV_WRITE | EV_ERROR> {
 public:
  using Flags::Flags;

  constexpr bool readable() const noexcept { return contains(IoEvent::readable); }
  constexpr bool writable() const noexcept { return contains(IoEvent::writable); }
  // The file descriptor is unusable (typically closed under the watcher); see Io.
  constexpr bool error() const noexcept { return (raw() & EV_ERROR) != 0; }
};

constexpr IoEvents operator|(IoEvent a, IoEvent b) noexcept {
  return IoEvents(a) | IoEvents(b);
}

namespace detail {
class ClosedFdGuard;
}

// ev_io: calls back when a file descriptor becomes readable and/or writable.
//
// The callback receives the events that fired. fired.error() means the descriptor is unusable: the
// watcher has already been stopped, and readable() and writable() are set too, so code that simply
// tries its read() or write() sees the failure from the system call. Handle it by closing the
// descriptor (if it is still open) and destroying or re-set()ting the watcher.
//
// A descriptor closed (or never opened) under an active Io watcher reaches its callback as such an
// error event, on every backend, instead of libev's assertion failure or a silent hang, whatever
// other Io watchers share the descriptor and in whatever order it is closed and they are stopped,
// destroyed or set() elsewhere. libev registers a descriptor again whenever the events wanted on
// it change (a watcher on it starts, stops, is destroyed or set()) and after a fork; evcxx checks
// the descriptor before each such registration:
// - select: libev notices it in the next iteration.
// - poll: evcxx checks the active watchers' descriptors once per iteration before libev polls
//   them (one extra poll() call over those descriptors per iteration while Io watchers are
//   active); the error arrives in the next iteration.
// - epoll and the others: descriptors of watchers started, stopped, destroyed or set() since the
//   last iteration are checked before libev registers them again (one poll() call in each
//   iteration that changed one), and every active descriptor after Loop::notify_fork() (or when
//   libev itself rebuilds its epoll set); the error arrives in the next iteration. A descriptor
//   closed while its watchers stay as they are is found by a periodic check
//   (closed_fd_check_interval(), 1 s by default: one poll() call over the active watchers'
//   descriptors, on a timer that does not keep the loop alive and runs only while Io watchers are
//   active), so the error arrives within that interval.
// All of this is a safety net for a bug in the caller: stop (or destroy) the watchers before
// closing their descriptor. If the descriptor's number is reused (by open(), accept(), ...) before
// the check runs, the watchers silently watch the new file and no error can be reported. What the
// checks cannot cover (libev may still abort): a descriptor closed by another thread while the
// loop runs, or inside a raw libev prepare watcher of C code (evcxx Prepare callbacks and
// callbacks made pending by feed() are followed by a second check); raw ev_io watchers (from C
// code on Loop::native()) on a descriptor closed under them; checks skipped because a
// Loop::set_invoke_pending_hook() defers callbacks past the iteration.
//
// Refused with an exception (where libev would abort): watching the loop's own epoll descriptor
// (std::invalid_argument; a stale number closed before the Loop was created can name it), and
// any Io on a Loop with libev 4.33's io_uring backend (std::logic_error: libev aborts with
// "io_uring_enter did not consume all sqes" on current kernels as soon as a registration changes;
// use Backend::epoll). docs/libev-asserts.md lists every libev assertion and what prevents it.
//
// Thread-safety: loop thread, except the static members, which are for ANY thread.
class EVCXX_API Io final : public Watcher<Io, ev_io, void(IoEvents)> {
 public:
  // Active on construction. Throws std::invalid_argument for a negative fd, the loop's own epoll
  // descriptor, or an events set that is empty or holds anything but readable and writable, and
  // std::logic_error on a Loop with libev 4.33's io_uring backend (see above). Loop thread.
  Io(Loop& loop, int fd, IoEvents events, Callback callback);
  // Created stopped; start() it later. Same checks. Loop thread.
  Io(Loop& loop, deferred_t, int fd, IoEvents events, Callback callback);
  ~Io() override;

  // Watches another descriptor and/or other events; restarts the watcher if it was active.
  // Same checks as the constructor.
  void set(int fd, IoEvents events);
  void set(IoEvents events);
  int fd() const noexcept { return watcher_.fd; }
  IoEvents events() const noexcept {
    return IoEvents::from_raw(watcher_.events & (EV_READ | EV_WRITE));
  }

  // invoke() and feed() deliver events() as what fired; these deliver the given events.
  using Watcher::feed;
  using Watcher::invoke;
  void invoke(IoEvents fired) { run_callback(fired.raw()); }
  void feed(IoEvents fired) { feed_events(fired.raw()); }

  // ANY thread: how often a loop with the epoll (or any non-select, non-poll) backend looks for
  // descriptors closed under active Io watchers; see above. Zero turns that periodic check off
  // (the checks that keep libev from aborting stay on). Process-wide; a loop picks up a new
  // interval at its next check, or, where the check was off, when an Io is next started there.
  // Throws std::invalid_argument for a negative or NaN interval.
  static void set_closed_fd_check_interval(std::chrono::duration<double> interval);
  static std::chrono::duration<double> closed_fd_check_interval() noexcept;

 private:
  friend class Watcher<Io, ev_io, void(IoEvents)>;
  friend class detail::ClosedFdGuard;

  int fired_events() const noexcept { return events().raw(); }
  template <class Function>
  void deliver(Function&& callback, int revents) {
    callback(IoEvents::from_raw(revents));
  }
  // An error callback runs right after the check that failed its watcher, before libev
  // registers descriptors: what it closes or changes is checked again.
  bool recheck_fds_after(int revents) const noexcept { return (revents & EV_ERROR) != 0; }

  void start_native();
  // Tells the guard first: libev registers the descriptor again for the watchers left on it.
  void stop_native() noexcept;
  // The descriptor is gone: stop, and report an error event as libev's select backend does.
  void fail_closed_fd() noexcept;

  detail::ClosedFdGuard* guard_ = nullptr;  // null when the backend needs no guard
  Io* guard_prev_ = nullptr;                // the guard's list of every Io on this loop
  Io* guard_next_ = nullptr;
};

EVCXX_END_NAMESPACE
