#include "evcxx/child.hpp"

#include <sys/wait.h>

#include <stdexcept>
#include <string>
#include <utility>

EVCXX_BEGIN_NAMESPACE

namespace {

void check_pid(pid_t pid) {
  if (pid < 0) {
    throw std::invalid_argument(
        "evcxx: Child needs a process id >= 0 (0 watches every child), not " + std::to_string(pid) +
        "; libev does not watch process groups");
  }
}

Loop& require_default_loop(Loop& loop) {
  if (!loop.is_default()) {
    throw std::logic_error(
        "evcxx: Child watchers work only on the default loop (libev handles SIGCHLD there "
        "alone); create it on evcxx::Loop::default_loop()");
  }
  return loop;
}

}  // namespace

Child::Child(Loop& loop, pid_t pid, Callable&& callback)
    : Child(loop, deferred, pid, false, std::move(callback)) {
  start();
}

Child::Child(Loop& loop, pid_t pid, bool trace, Callable&& callback)
    : Child(loop, deferred, pid, trace, std::move(callback)) {
  start();
}

Child::Child(Loop& loop, deferred_t, pid_t pid, Callable&& callback)
    : Child(loop, deferred, pid, false, std::move(callback)) {}

Child::Child(Loop& loop, deferred_t, pid_t pid, bool trace, Callable&& callback)
    : Watcher(require_default_loop(loop), std::move(callback)) {
  check_pid(pid);
  ev_child_set(&watcher_, pid, trace);
  watcher_.rpid = 0;
  watcher_.rstatus = 0;
}

void Child::set(pid_t pid, bool trace) {
  check_pid(pid);
  restart_with([&] { ev_child_set(&watcher_, pid, trace); });
}

bool Child::exited() const noexcept {
  return reported() && WIFEXITED(watcher_.rstatus);
}

int Child::exit_status() const noexcept {
  return exited() ? WEXITSTATUS(watcher_.rstatus) : -1;
}

bool Child::signaled() const noexcept {
  return reported() && WIFSIGNALED(watcher_.rstatus);
}

int Child::term_signal() const noexcept {
  return signaled() ? WTERMSIG(watcher_.rstatus) : 0;
}

bool Child::core_dumped() const noexcept {
#ifdef WCOREDUMP
  return signaled() && WCOREDUMP(watcher_.rstatus);
#else
  return false;
#endif
}

bool Child::stopped() const noexcept {
  return reported() && WIFSTOPPED(watcher_.rstatus);
}

int Child::stop_signal() const noexcept {
  return stopped() ? WSTOPSIG(watcher_.rstatus) : 0;
}

bool Child::continued() const noexcept {
  return reported() && WIFCONTINUED(watcher_.rstatus);
}

EVCXX_END_NAMESPACE
