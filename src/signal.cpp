#include "evcxx/signal.hpp"

#include <csignal>

#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>

EVCXX_BEGIN_NAMESPACE

namespace {

// Which loop owns each signal, and how many of our active watchers it has for it. libev keeps the
// same in a process-wide table it does not lock and asserts on a second loop; this registry checks
// first, and its mutex also serialises libev's updates of that table.
struct SignalOwner {
  struct ev_loop* loop = nullptr;
  unsigned watchers = 0;
};

std::mutex registry_mutex;
SignalOwner registry[NSIG];

void check_signum(int signum) {
  if (signum < 1 || signum >= NSIG) {
    throw std::out_of_range("evcxx: signal number " + std::to_string(signum) + " is outside [1, " +
                            std::to_string(NSIG - 1) + "]");
  }
  if (signum == SIGKILL || signum == SIGSTOP) {
    throw std::invalid_argument("evcxx: signal " + std::to_string(signum) +
                                " (SIGKILL or SIGSTOP) cannot be caught, so it cannot be watched");
  }
  if (signum > SIGSYS && signum < SIGRTMIN) {
    throw std::invalid_argument("evcxx: signal " + std::to_string(signum) +
                                " is reserved by the C library for its threads; real-time "
                                "signals start at SIGRTMIN = " +
                                std::to_string(SIGRTMIN));
  }
}

}  // namespace

Signal::Signal(Loop& loop, int signum, Callable&& callback)
    : Signal(loop, deferred, signum, std::move(callback)) {
  start();
}

Signal::Signal(Loop& loop, deferred_t, int signum, Callable&& callback)
    : Watcher(loop, std::move(callback)) {
  check_signum(signum);
  ev_signal_set(&watcher_, signum);
}

Signal::~Signal() {
  stop();
}

void Signal::set(int signum) {
  check_signum(signum);
  restart_with([&] { ev_signal_set(&watcher_, signum); });
}

void Signal::start_native() {
  if (ev_is_active(&watcher_)) return;
  const int signum = watcher_.signum;
  if (signum == SIGCHLD && !ev_is_default_loop(raw_loop_)) {
    throw std::logic_error(
        "evcxx: SIGCHLD can only be watched on Loop::default_loop(): libev's default loop owns "
        "SIGCHLD to reap children for Child watchers, and libev aborts when another loop takes "
        "it while the default loop exists; use a Child watcher, or a Signal on the default loop");
  }
  std::lock_guard<std::mutex> lock(registry_mutex);
  SignalOwner& owner = registry[signum];
  if (owner.loop != nullptr && owner.loop != raw_loop_) {
    throw std::logic_error("evcxx: signal " + std::to_string(signum) +
                           " is already watched by another loop; a signal belongs to one loop "
                           "at a time: stop the Signal watchers for it there first, or watch it "
                           "on that loop");
  }
  ev_signal_start(raw_loop_, &watcher_);
  owner.loop = raw_loop_;
  ++owner.watchers;
}

void Signal::stop_native() noexcept {
  std::lock_guard<std::mutex> lock(registry_mutex);
  const bool was_active = ev_is_active(&watcher_);
  ev_signal_stop(raw_loop_, &watcher_);  // also drops a pending event when inactive
  if (!was_active) return;
  SignalOwner& owner = registry[watcher_.signum];
  if (--owner.watchers == 0) owner.loop = nullptr;
}

EVCXX_END_NAMESPACE
