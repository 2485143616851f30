#pragma once

// Helpers shared by the core tests: a watchdog that turns a hang into a failure, a poll()-based
// readability probe and a scoped signal handler.

#include <poll.h>
#include <signal.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>

#include <evcxx/loop.hpp>

namespace evcxx_test {

// Generous bound for anything that should take milliseconds: the machine is shared and the
// sanitizer builds are slow, so only a real hang (a lost wake-up) should ever reach it.
inline constexpr std::chrono::seconds kPatience{60};

// Stops `loop` (again and again) from another thread if disarm() is not called in time, so a lost
// wake-up fails the test through fired() instead of blocking run() forever.
class Watchdog {
 public:
  explicit Watchdog(evcxx::Loop& loop, std::chrono::seconds limit = kPatience)
      : thread_([this, &loop, limit] {
          std::unique_lock<std::mutex> lock(mutex_);
          if (wake_.wait_for(lock, limit, [this] { return disarmed_; })) return;
          fired_ = true;
          while (!disarmed_) {
            loop.stop();
            wake_.wait_for(lock, std::chrono::milliseconds(100));
          }
        }) {}
  ~Watchdog() {
    disarm();
    thread_.join();
  }
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  void disarm() {
    std::lock_guard<std::mutex> lock(mutex_);
    disarmed_ = true;
    wake_.notify_all();
  }
  bool fired() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return fired_;
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool disarmed_ = false;
  bool fired_ = false;
  std::thread thread_;  // last: starts after the members it uses exist
};

// True when fd is readable right now (poll with a zero timeout).
inline bool readable(int fd) {
  struct pollfd p {};
  p.fd = fd;
  p.events = POLLIN;
  const int n = ::poll(&p, 1, 0);
  if (n < 0) throw std::runtime_error(std::string("poll: ") + std::strerror(errno));
  return n == 1 && (p.revents & POLLIN) != 0;
}

// Installs handler for signum (no SA_RESTART, so blocking calls see EINTR) and restores the
// previous disposition on destruction.
class ScopedSignalHandler {
 public:
  ScopedSignalHandler(int signum, void (*handler)(int)) : signum_(signum) {
    struct sigaction action {};
    action.sa_handler = handler;
    sigemptyset(&action.sa_mask);
    if (::sigaction(signum, &action, &previous_) != 0) throw std::runtime_error("sigaction");
  }
  ~ScopedSignalHandler() { ::sigaction(signum_, &previous_, nullptr); }
  ScopedSignalHandler(const ScopedSignalHandler&) = delete;
  ScopedSignalHandler& operator=(const ScopedSignalHandler&) = delete;

 private:
  int signum_;
  struct sigaction previous_ {};
};

// Runs fn on its own thread and reports whether it returned within `limit`. A call that blocks
// forever is a failure, not a hang: its thread is left behind with the state it shares.
template <class Fn>
bool completes_within(std::chrono::seconds limit, Fn fn) {
  struct State {
    std::mutex mutex;
    std::condition_variable done_cv;
    bool done = false;
  };
  auto state = std::make_shared<State>();
  std::thread([state, fn] {
    fn();
    std::lock_guard<std::mutex> lock(state->mutex);
    state->done = true;
    state->done_cv.notify_all();
  }).detach();
  std::unique_lock<std::mutex> lock(state->mutex);
  return state->done_cv.wait_for(lock, limit, [&] { return state->done; });
}

}  // namespace evcxx_test
