#pragma once

#include <ev.h>

#include <functional>

#include "evcxx/export.hpp"
#include "evcxx/loop.hpp"
#include "evcxx/watcher.hpp"

EVCXX_BEGIN_NAMESPACE

/// ev_signal: calls back on the loop thread after the process received a signal (synchronously,
/// so the callback may do anything).
///
/// Signals that arrive close together may be reported once.
///
/// A signal belongs to one loop at a time, process-wide: while a Signal for it is active on one
/// loop, starting one for it on another loop throws std::logic_error (libev would abort); any
/// number of Signal watchers for it may be active on the owning loop. The signal is released when
/// the last of them stops, and its disposition is then reset to SIG_DFL by libev. SIGCHLD belongs
/// to the default loop, which reaps children for Child watchers: watch it only there. Watchers
/// started with raw libev calls are not known to evcxx and are not checked.
///
/// Throws: start() (and so the active constructor) throws std::logic_error when another loop owns
/// the signal, or for SIGCHLD on a loop other than the default loop, or if its Loop is gone.
///
/// Thread-safety: loop thread; starting and stopping are serialised process-wide.
class EVCXX_API Signal final : public Watcher<Signal, ev_signal, void()> {
 public:
  /// Watches signal `signum`; active on construction.
  /// Throws: std::out_of_range for a signal number outside [1, NSIG); std::invalid_argument for
  /// SIGKILL, SIGSTOP and the C library's reserved signals (which cannot be caught);
  /// std::logic_error as start() does.
  Signal(Loop& loop, int signum, Callable&& callback);
  /// Created stopped; start() it later.
  /// Throws: the same checks on signum.
  Signal(Loop& loop, deferred_t, int signum, Callable&& callback);
  /// Stops it, releasing the signal if this was the owning loop's last watcher for it.
  ~Signal() override;

  /// Watches another signal; restarts the watcher if it was active.
  /// Throws: as the constructor; if the restart throws, the watcher is left stopped.
  void set(int signum);
  /// start() with the parameters it has (the overloads below set them first).
  using Watcher::start;
  /// set(signum), then start().
  /// Throws: std::logic_error if its Loop is gone (changing nothing); as set() and start().
  void start(int signum) {
    require_attached("start(signum)");
    set(signum);
    start();
  }
  /// The signal watched.
  int signum() const noexcept { return watcher_.signum; }

 private:
  friend class Watcher<Signal, ev_signal, void()>;
  // Take and release the signal in the process-wide registry around libev's start and stop.
  void start_native();
  void stop_native() noexcept;
};

EVCXX_END_NAMESPACE
