#pragma once

// Helpers shared by the tests: owned descriptors, pipes and socket pairs, exiting a forked child,
// two ways to turn a hang into a failure (Watchdog, Deadline), a readability probe and a scoped
// signal handler.

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <type_traits>
#include <utility>

#include <evcxx/loop.hpp>
#include <evcxx/periodic.hpp>

namespace evcxx_test {

// What test callbacks throw.
struct Boom : std::runtime_error {
  Boom() : std::runtime_error("boom") {}
};

// An owned file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(other.release()) {}
  Fd& operator=(Fd&& other) noexcept {
    reset(other.release());
    return *this;
  }
  ~Fd() { reset(); }
  int get() const noexcept { return fd_; }
  int release() noexcept { return std::exchange(fd_, -1); }
  void reset(int fd = -1) noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

// Ends a forked child at once. The raw exit_group system call skips the sanitizers' _exit
// interceptors, whose exit-time work can deadlock in a child forked from a threaded process.
[[noreturn]] inline void exit_child(int code) {
  ::syscall(SYS_exit_group, code);
  __builtin_unreachable();
}

inline void throw_errno(const char* what) {
  throw std::system_error(errno, std::generic_category(), what);
}

struct Pipe {
  Fd read;
  Fd write;
  Pipe() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) throw_errno("pipe2");
    read.reset(fds[0]);
    write.reset(fds[1]);
  }
};

struct SocketPair {
  Fd a;
  Fd b;
  SocketPair() {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0) {
      throw_errno("socketpair");
    }
    a.reset(fds[0]);
    b.reset(fds[1]);
  }
};

inline void write_all(int fd, const std::string& data) {
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) throw_errno("write");
    done += static_cast<std::size_t>(n);
  }
}

// libev keeps pointers to its watchers and loops: such a type can be neither copied nor moved.
template <class T>
inline constexpr bool is_pinned_v =
    !std::is_copy_constructible_v<T> && !std::is_copy_assignable_v<T> &&
    !std::is_move_constructible_v<T> && !std::is_move_assignable_v<T>;

// Generous bound for anything that should take milliseconds: the machine is shared and the
// sanitizer builds are slow, so only a real hang (a lost wake-up) should ever reach it. Well
// below libev's longest block (59.743 s with nothing else to wait for), after which a loop that
// lost its wake-up looks again and would deliver it just in time for a longer bound.
inline constexpr std::chrono::seconds kPatience{30};

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

// Breaks the loop from inside it (a Periodic) if the awaited event never comes. Unlike Watchdog it
// starts no thread, so tests that fork stay single-threaded.
class Deadline {
 public:
  explicit Deadline(evcxx::Loop& loop, std::chrono::seconds limit = kPatience)
      : periodic_(loop, evcxx::Clock::now() + limit, [this, &loop] {
          expired_ = true;
          loop.break_loop();
        }) {}
  bool expired() const { return expired_; }

 private:
  bool expired_ = false;
  evcxx::Periodic periodic_;
};

// Blocks in poll() until fd is readable or `limit` passes; returns poll()'s count and revents.
inline std::pair<int, short> poll_readable(int fd, std::chrono::seconds limit = kPatience) {
  struct pollfd p {};
  p.fd = fd;
  p.events = POLLIN;
  const int n = ::poll(&p, 1, static_cast<int>(limit.count() * 1000));
  return {n, p.revents};
}

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
  std::thread([state, fn = std::move(fn)]() mutable {
    {
      // Destroyed before `done`: what fn holds (a shared_ptr to an event, say) is released by
      // the time the caller sees it finish, so the caller may then destroy what it depends on.
      Fn running(std::move(fn));
      running();
    }
    std::lock_guard<std::mutex> lock(state->mutex);
    state->done = true;
    state->done_cv.notify_all();
  }).detach();
  std::unique_lock<std::mutex> lock(state->mutex);
  return state->done_cv.wait_for(lock, limit, [&] { return state->done; });
}

}  // namespace evcxx_test
