#pragma once

#include <ev.h>

#include <chrono>
#include <functional>

#include "evcxx/export.hpp"
#include "evcxx/flags.hpp"
#include "evcxx/loop.hpp"
#include "evcxx/watcher.hpp"

EVCXX_BEGIN_NAMESPACE

/// One kind of readiness an Io watcher waits for.
enum class IoEvent : int {
  readable = EV_READ,   ///< the descriptor can be read without blocking (EV_READ)
  writable = EV_WRITE,  ///< the descriptor can be written without blocking (EV_WRITE)
};

/// A set of I/O events: what an Io watcher waits for, and what fired (which may also carry the
/// error flag, see Io).
///
/// from_raw() keeps EV_READ, EV_WRITE and EV_ERROR and drops every other bit.
///
/// Thread-safety: a value type; constexpr throughout.
class IoEvents : public Flags<IoEvents, IoEvent, EV_READ | EV_WRITE | EV_ERROR> {
 public:
  /// The constructors of Flags: the empty set, and a set of one IoEvent.
  using Flags::Flags;

  /// IoEvent::readable is in the set.
  constexpr bool readable() const noexcept { return contains(IoEvent::readable); }
  /// IoEvent::writable is in the set.
  constexpr bool writable() const noexcept { return contains(IoEvent::writable); }
  /// The file descriptor is unusable (typically closed under the watcher); see Io.
  constexpr bool error() const noexcept { return (raw() & EV_ERROR) != 0; }
};

/// A set of two events (IoEvent::readable | IoEvent::writable).
constexpr IoEvents operator|(IoEvent a, IoEvent b) noexcept {
  return IoEvents(a) | IoEvents(b);
}

namespace detail {
class ClosedFdGuard;
}

/// ev_io: calls back when a file descriptor becomes readable and/or writable.
///
/// The callback receives the events that fired. fired.error() means the descriptor is unusable: the
/// watcher has already been stopped, and readable() and writable() are set too, so code that simply
/// tries its read() or write() sees the failure from the system call. Handle it by closing the
/// descriptor (if it is still open) and destroying or re-set()ting the watcher.
///
/// Closed descriptors: a descriptor closed (or never opened) under an active Io watcher reaches its
/// callback as such an error event, on every backend, instead of libev's assertion failure or a
/// silent hang, whatever other Io watchers share the descriptor and in whatever order it is closed
/// and they are stopped, destroyed or set() elsewhere. The error arrives in the next iteration;
/// on backends other than select and poll, a descriptor closed while its watchers stay as they are
/// is found within closed_fd_check_interval() (1 s by default) instead.
///
/// All of this is a safety net for a bug in the caller: stop (or destroy) the watchers before
/// closing their descriptor. If the descriptor's number is reused (by open(), accept(), ...) before
/// the check runs, the watchers silently watch the new file and no error can be reported. What the
/// checks cannot cover (libev may still abort): a descriptor closed by another thread while the
/// loop runs, or inside a raw libev prepare watcher of C code (evcxx Prepare callbacks and
/// callbacks made pending by feed() are covered); raw ev_io watchers (from C code on
/// Loop::native()) on a descriptor closed under them; Io watchers on one descriptor made through
/// two Loop objects that wrap the same ev_loop (each Loop checks its own watchers only); checks
/// skipped because a Loop::set_invoke_pending_hook() defers callbacks past the iteration.
///
/// A descriptor closed while its watcher was stopped and reopened under the same number (dup2(),
/// or the lowest free number) names another file: hand it to the watcher with set(fd, events) or
/// start(fd, events), which make libev register it anew; a plain start() or set(events) assumes
/// the file is the same (as with libev's ev_io_start), and on epoll would leave the new one
/// unregistered.
///
/// Cost, while Io watchers are active: one poll() call per iteration over their descriptors (poll,
/// linuxaio), or one per iteration that changed a watcher plus one per closed_fd_check_interval()
/// (epoll and the others), an fcntl() instead when one descriptor is concerned; nothing on
/// select. How the checks are scheduled on each backend: docs/closed-fd-guard.md.
///
/// Refused with an exception (where libev would abort): watching the loop's own epoll descriptor
/// (std::invalid_argument; a stale number closed before the Loop was created can name it), and
/// any Io on a Loop with libev 4.33's io_uring backend (std::logic_error: libev aborts with
/// "io_uring_enter did not consume all sqes" on current kernels as soon as a registration changes;
/// use Backend::epoll). docs/libev-asserts.md lists every libev assertion and what prevents it.
///
/// Thread-safety: loop thread, except the static members, which are for ANY thread.
class EVCXX_API Io final : public Watcher<Io, ev_io, void(IoEvents)> {
 public:
  /// Watches `fd` for `events`; active on construction. Empty `events`: active, waiting for
  /// nothing until set() gives it events.
  /// Thread-safety: loop thread.
  /// Throws: std::invalid_argument for a negative fd, the loop's own epoll descriptor, or an
  /// events set that holds anything but readable and writable; std::logic_error on a Loop with
  /// libev 4.33's io_uring backend (see above).
  Io(Loop& loop, int fd, IoEvents events, Callable&& callback);
  /// Created stopped; start() it later.
  /// Thread-safety: loop thread.
  /// Throws: as the other constructor.
  Io(Loop& loop, deferred_t, int fd, IoEvents events, Callable&& callback);
  /// Created stopped with no descriptor yet (fd() is -1): start(fd, events) or set(fd, events)
  /// gives it one, for a descriptor that does not exist yet.
  /// Thread-safety: loop thread.
  /// Throws: std::logic_error on a Loop with libev 4.33's io_uring backend (see above).
  Io(Loop& loop, deferred_t, Callable&& callback);
  /// Stops the watcher.
  ~Io() override;

  /// Watches another descriptor and/or other events; restarts the watcher if it was active.
  /// The descriptor may be the same number as before naming another file (closed and reopened
  /// while the watcher was stopped): libev registers it anew.
  /// An empty `events` is valid: the watcher stays as active as it was but waits for nothing
  /// (curl's CURL_POLL_NONE) until set again; a closed descriptor is still reported as an error.
  /// Throws: as the constructor.
  void set(int fd, IoEvents events);
  /// Watches other events on the same descriptor, still naming the same file; restarts the
  /// watcher if it was active. Changing only the events costs what ev_io_modify costs. After
  /// closing the descriptor and reopening its number, use set(fd, events) or start(fd, events)
  /// instead: on epoll this call would leave the new file unregistered.
  /// Throws: as the constructor; std::logic_error while the watcher has no descriptor yet.
  void set(IoEvents events);
  /// start() with the parameters it has (the overloads below set them first).
  using Watcher::start;
  /// set(fd, events), then start(): ev++.h's start(fd, events).
  /// Throws: std::logic_error if its Loop is gone (changing nothing); as set() and start().
  void start(int fd, IoEvents events) {
    require_attached("start(fd, events)");
    set(fd, events);
    start();
  }
  /// The descriptor watched.
  int fd() const noexcept { return watcher_.fd; }
  /// The events waited for.
  IoEvents events() const noexcept {
    return IoEvents::from_raw(watcher_.events & (EV_READ | EV_WRITE));
  }

  /// feed() delivers events() as what fired.
  using Watcher::feed;
  /// invoke() delivers events() as what fired.
  using Watcher::invoke;
  /// Runs the callback now with `fired` as what fired.
  /// Throws: what the callback throws.
  void invoke(IoEvents fired) { run_callback(fired.raw()); }
  /// Makes the watcher pending with `fired` as what fired.
  /// Throws: std::logic_error if its Loop is gone.
  void feed(IoEvents fired) { feed_events(fired.raw()); }

  /// Sets how often a loop with the epoll (or any non-select, non-poll) backend looks for
  /// descriptors closed under active Io watchers; see above.
  /// Zero turns that periodic check off (the checks that keep libev from aborting stay on).
  /// Process-wide; a loop picks up a new interval at its next check, or, where the check was off,
  /// when an Io is next started there.
  /// Thread-safety: ANY thread.
  /// Throws: std::invalid_argument for a negative or NaN interval.
  static void set_closed_fd_check_interval(std::chrono::duration<double> interval);
  /// The interval set_closed_fd_check_interval() set (1 s by default).
  /// Thread-safety: ANY thread.
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
