#pragma once

#include <ev.h>
#include <poll.h>

#include <atomic>
#include <vector>

#include "evcxx/io.hpp"
#include "evcxx/loop.hpp"
#include "evcxx/watcher.hpp"

EVCXX_BEGIN_NAMESPACE
namespace detail {

// Io::closed_fd_check_interval() in seconds; zero or less turns the periodic check off.
extern std::atomic<double> closed_fd_check_seconds;

// Per Loop, keeps libev (as Debian builds it, with assertions) from ever registering a closed
// file descriptor, and turns a descriptor closed under an active Io watcher into an error event for
// that watcher instead. libev registers a descriptor again whenever the set of events wanted on it
// changes: when an Io on it starts, stops (with other watchers left on it), is destroyed or set();
// after a fork (every descriptor); and, on one-shot backends (io_uring, linuxaio), after every
// event. On a closed descriptor that aborts (epoll_ctl's EBADF, io_uring's -EBADF, poll's
// POLLNVAL) or hangs silently (epoll never reports a closed descriptor). The guard checks, right
// before libev registers and polls:
// - poll, io_uring, linuxaio: the descriptor of every active Io, in every iteration;
// - epoll and the others: the descriptors of the Io watchers started, stopped or destroyed since
//   the last iteration (and every active one after a fork), plus every active one now and then.
// See io.hpp for what each backend costs.
//
// The first Io on a Loop makes it, and it stays until ~Loop (so that Io watchers made one after
// another allocate nothing); Io objects that outlive their Loop keep it until the last of them
// goes. It is itself attached to the Loop so that ~Loop stops its watchers in time. Its prepare
// and timer watchers never keep the loop alive and run only while they have something to check;
// its fork watcher costs nothing until libev registers everything again.
//
// Thread-safety: the registry of guards is process-wide behind a mutex; everything else is for the
// loop thread.
class ClosedFdGuard final : public WatcherLink {
 public:
  // Enrols io with its loop's guard, creating the guard if needed. Returns nullptr (and enrols
  // nothing) for the select backend, where libev already handles closed descriptors.
  static ClosedFdGuard* enrol(Loop& loop, Io& io);
  // Runs the check that is due now, for code that makes libev register the loop's descriptors
  // outside its own iteration: libev's ev_embed prepare watcher calls fd_reify() on the inner
  // loop from the outer loop's prepare phase, before the inner loop's guard ever runs. (Embed
  // should call this from an outer prepare watcher of priority EV_MAXPRI.) Loop thread.
  EVCXX_API static void check_now(Loop& loop) noexcept;  // exported for Embed and the tests
  // Checks what libev is about to register (or, on poll, every active descriptor), after a
  // callback that may have closed or changed descriptors where the guard's own prepare cannot see
  // it in time: a Prepare (libev registers right after the prepare phase, and may run the guard's
  // prepare first or not at all in that iteration), an Io's error callback, an embedded loop's
  // callbacks. Cheap when nothing changed. Loop thread.
  EVCXX_API static void recheck(Loop& loop) noexcept;
  // Removes io; deletes the guard when it was the last Io and the Loop is gone.
  void withdraw(Io& io) noexcept;
  // Called by ~Loop once every watcher is detached: deletes the guard unless Io objects still
  // hold it (then the last one does). Null is allowed.
  static void release_after_detach(ClosedFdGuard* guard) noexcept;
  // Throws std::invalid_argument when fd is the loop's own epoll descriptor, which epoll_ctl()
  // refuses to add to itself (libev aborts on that).
  void check_fd(int fd) {
    if (mode_ == Mode::changed_and_timed && attached() && fd == epoll_fd()) reject_epoll_fd(fd);
  }
  // Called just before io is started: its descriptor is checked before libev registers it.
  void before_start(const Io& io) noexcept;
  // Called just before an active io is stopped: libev registers the descriptor again for the
  // watchers left on it, so it is checked too.
  void before_stop(const Io& io) noexcept {
    // Not while ~Loop detaches everything: the guard may be detached before this Io.
    if (mode_ == Mode::changed_and_timed && attached()) note(io.fd());
  }

 private:
  enum class Mode {
    every_iteration,   // poll, io_uring, linuxaio: every active descriptor before each poll
    changed_and_timed  // epoll and others: changed descriptors, and now and then everything
  };

  ClosedFdGuard(Loop& loop, Mode mode);
  ~ClosedFdGuard() override;

  void stop_for_detach() noexcept override;

  // changed_and_timed: fd is to be checked before the next registration.
  void note(int fd) noexcept;
  // The loop's epoll descriptor (-1 for other backends), remembered until libev replaces it.
  int epoll_fd() noexcept;
  [[noreturn]] static void reject_epoll_fd(int fd);
  void on_prepare() noexcept;
  // recheck() for this guard.
  void check_before_registration() noexcept;
  // Appends fds to pollfds_ (may throw std::bad_alloc).
  void add_to_poll(const std::vector<int>& fds);
  static ClosedFdGuard* of(Loop& loop) noexcept;  // nullptr when the loop has none
  void on_timer() noexcept;
  void on_fork() noexcept;
  // Adds the descriptor of every active Io to pollfds_; returns false when none is active.
  bool collect_active();
  // Polls pollfds_ and fails every active Io whose descriptor is closed.
  void fail_closed();
  // Fails every active Io whose descriptor is in closed_fds_ (sorted).
  void fail_listed() noexcept;
  // The same without allocating, one system call per active Io: for when memory ran out.
  void fail_closed_one_by_one() noexcept;

  void arm_prepare() noexcept;
  void disarm_prepare() noexcept;
  void arm_timer() noexcept;
  void disarm_timer() noexcept;

  Mode mode_;
  Io* ios_ = nullptr;  // every Io enrolled, active or not
  ev_prepare prepare_;
  ev_timer timer_;
  ev_fork fork_;                  // changed_and_timed: libev registers everything again after it
  std::vector<int> changed_fds_;  // changed_and_timed: registrations libev has not made yet
  std::vector<int> phase_fds_;    // changed_and_timed: checked in this prepare phase, not yet
                                  // registered by libev (a recheck looks at them again)
  unsigned phase_iteration_ = 0;  // ev_iteration() of the last check in a prepare phase
  bool phase_checked_ = false;
  bool check_all_ = false;       // too many changes to list, or a fork: check every active Io
  int epoll_fd_ = -2;            // -2: not known (yet, or since a fork replaced it)
  unsigned fork_iteration_ = 0;  // ev_iteration() when libev last announced a fork
  bool forked_ = false;
  bool loop_gone_ = false;       // ~Loop released it: the last withdraw() deletes it
  std::vector<pollfd> pollfds_;  // scratch, kept for its capacity
  std::vector<int> closed_fds_;  // scratch
};

}  // namespace detail
EVCXX_END_NAMESPACE
