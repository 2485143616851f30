#pragma once

#include <ev.h>
#include <sys/types.h>

#include "evcxx/export.hpp"
#include "evcxx/loop.hpp"
#include "evcxx/watcher.hpp"

EVCXX_BEGIN_NAMESPACE

/// ev_child: status changes of a child process (exit, death by a signal and, when tracing, stop
/// and continue).
///
/// Only Loop::default_loop() (or a Loop wrapping ev_default_loop()) can watch
/// children, because only it handles SIGCHLD.
///
/// libev reaps every child of the process (waitpid(-1, ...)) while the default loop runs, watched
/// or not: do not call waitpid() yourself for children it may see. Start the watcher before the
/// loop next runs after fork()/posix_spawn(), i.e. in the same callback or before run(): a child
/// that exits before any watcher for it exists has its status reaped and lost. Create the default
/// loop before the first fork(): libev installs its SIGCHLD handler then, and a child that exits
/// earlier is noticed only at the next SIGCHLD.
///
/// libev never stops a child watcher on its own: stop it in the callback once the child has
/// terminated, or the loop stays alive. libev handles child events at EV_MAXPRI and resets the
/// watcher's priority to that when it fires.
///
/// Thread-safety: every member is for the loop thread (the default loop's thread).
class EVCXX_API Child final : public Watcher<Child, ev_child, void()> {
 public:
  /// Watches `pid` (0: any child); active on construction.
  /// Throws: std::logic_error unless `loop` is the default loop; std::invalid_argument for a
  /// negative pid (libev does not watch process groups).
  Child(Loop& loop, pid_t pid, Callable&& callback);
  /// Watches `pid`; with `trace`, also reports when the child stops or continues.
  /// Throws: as Child(loop, pid, callback).
  Child(Loop& loop, pid_t pid, bool trace, Callable&& callback);
  /// Created stopped; start() it later.
  /// Throws: as Child(loop, pid, callback).
  Child(Loop& loop, deferred_t, pid_t pid, Callable&& callback);
  /// Created stopped, with `trace`; start() it later.
  /// Throws: as Child(loop, pid, callback).
  Child(Loop& loop, deferred_t, pid_t pid, bool trace, Callable&& callback);
  /// Stops the watcher.
  ~Child() override = default;

  /// Watches another pid; an active watcher is restarted.
  /// Throws: as the constructor.
  void set(pid_t pid, bool trace = false);
  /// start() with the parameters it has (the overloads below set them first).
  using Watcher::start;
  /// set(pid, trace), then start().
  /// Throws: std::logic_error if its Loop is gone (changing nothing); as set() and start().
  void start(pid_t pid, bool trace = false) {
    require_attached("start(pid)");
    set(pid, trace);
    start();
  }

  /// The pid watched (0: any).
  pid_t pid() const noexcept { return watcher_.pid; }
  /// Whether stops and continues are reported.
  bool trace() const noexcept { return (watcher_.flags & 1) != 0; }

  /// What the last event reported: the pid whose status changed. Zero before the first event.
  pid_t rpid() const noexcept { return watcher_.rpid; }
  /// What the last event reported: its waitpid() status word. Zero before the first event.
  int rstatus() const noexcept { return watcher_.rstatus; }

  // rstatus() decoded (<sys/wait.h>). Each value is meaningful only when its predicate is true.
  /// rstatus() decoded (`WIFEXITED`): the child exited.
  bool exited() const noexcept;
  /// rstatus() decoded (`WEXITSTATUS`): its exit status; -1 unless exited().
  int exit_status() const noexcept;
  /// rstatus() decoded (`WIFSIGNALED`): a signal killed the child.
  bool signaled() const noexcept;
  /// rstatus() decoded (`WTERMSIG`): the signal that killed it; 0 unless signaled().
  int term_signal() const noexcept;
  /// rstatus() decoded (`WCOREDUMP`): it dumped core; false unless signaled().
  bool core_dumped() const noexcept;
  /// rstatus() decoded (`WIFSTOPPED`): the child stopped (reported with `trace` only).
  bool stopped() const noexcept;
  /// rstatus() decoded (`WSTOPSIG`): the signal that stopped it; 0 unless stopped().
  int stop_signal() const noexcept;
  /// rstatus() decoded (`WIFCONTINUED`): the child continued (reported with `trace` only).
  bool continued() const noexcept;

 private:
  bool reported() const noexcept { return watcher_.rpid != 0; }
};

EVCXX_END_NAMESPACE
