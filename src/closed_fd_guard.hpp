#pragma once

#include <ev.h>
#include <poll.h>

#include <atomic>
#include <vector>

#include "evcxx/io.hpp"
#include "evcxx/loop.hpp"
#include "evcxx/watcher.hpp"

namespace evcxx::detail {

// Io::closed_fd_check_interval() in seconds; zero or less turns the periodic check off.
extern std::atomic<double> closed_fd_check_seconds;

// Per Loop, turns a file descriptor closed under an active Io watcher into an error event for that
// watcher, where libev (as Debian builds it, with assertions) would abort (poll backend; epoll when
// it registers a closed descriptor) or hang silently (epoll never reports a closed descriptor).
// See io.hpp for what each backend costs.
//
// It exists while Io objects exist on its Loop (each one holds it; the last one deletes it), and
// is itself attached to the Loop so that ~Loop stops its watchers in time. Its prepare and timer
// watchers never keep the loop alive and run only while they have something to check.
//
// Thread-safety: the registry of guards is process-wide behind a mutex; everything else is for the
// loop thread.
class ClosedFdGuard final : public WatcherLink {
 public:
  // Enrols io with its loop's guard, creating the guard if needed. Returns nullptr (and enrols
  // nothing) for the select backend, where libev already handles closed descriptors.
  static ClosedFdGuard* enrol(Loop& loop, Io& io);
  // Removes io; deletes the guard when it was the last Io.
  void withdraw(Io& io) noexcept;
  // Called just before io is started: arranges for its descriptor to be checked in time.
  void before_start(const Io& io);

 private:
  enum class Mode {
    every_iteration,   // poll backend: libev asserts on any closed descriptor in its poll set
    started_and_timed  // epoll and others: check new registrations, and now and then everything
  };

  ClosedFdGuard(Loop& loop, Mode mode);
  ~ClosedFdGuard() override;

  void stop_for_detach() noexcept override;

  void on_prepare() noexcept;
  void on_timer() noexcept;
  // Adds the descriptor of every active Io to pollfds_; returns false when none is active.
  bool collect_active();
  // Polls pollfds_ and fails every active Io whose descriptor is closed.
  void fail_closed();

  void arm_prepare() noexcept;
  void disarm_prepare() noexcept;
  void arm_timer() noexcept;
  void disarm_timer() noexcept;

  Mode mode_;
  Io* ios_ = nullptr;  // every Io enrolled, active or not
  ev_prepare prepare_;
  ev_timer timer_;
  std::vector<int> started_fds_;  // started_and_timed: registrations libev has not seen yet
  bool check_all_ = false;        // too many starts to list: check every active Io instead
  std::vector<pollfd> pollfds_;   // scratch, kept for its capacity
  std::vector<int> closed_fds_;   // scratch
};

}  // namespace evcxx::detail
