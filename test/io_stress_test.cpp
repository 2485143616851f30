// Random sequences of what programs do with descriptors shared by several Io watchers (hiredis's
// libev adapter keeps separate read and write watchers on one socket): open, close, create, start,
// stop, destroy, set() elsewhere, feed data and run, on every backend this libev offers. libev
// aborts the process when it trips over a closed descriptor, so each sequence runs in a forked
// child and an abort is a test failure with libev's message, not a crashed test binary.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <evcxx/io.hpp>
#include <evcxx/loop.hpp>
#include <evcxx/timer.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "support.hpp"

using evcxx::Backend;
using evcxx::IoEvent;
using evcxx::IoEvents;
using namespace std::chrono_literals;

namespace {

using SteadyClock = std::chrono::steady_clock;

std::string backend_name(Backend b) {
  switch (b) {
    case Backend::select:
      return "select";
    case Backend::poll:
      return "poll";
    case Backend::epoll:
      return "epoll";
    case Backend::linuxaio:
      return "linuxaio";
    case Backend::iouring:
      return "iouring";
    default:
      return "other";
  }
}

// --- The forked child's diagnostics: the last actions, printed when it fails or aborts ---

constexpr std::size_t kLogLines = 48;
constexpr std::size_t kLogWidth = 120;
std::array<std::array<char, kLogWidth>, kLogLines> action_log;
std::size_t action_count = 0;

void log_action(const char* format, ...) __attribute__((format(printf, 1, 2)));
void log_action(const char* format, ...) {
  va_list args;
  va_start(args, format);
  std::vsnprintf(action_log[action_count % kLogLines].data(), kLogWidth, format, args);
  va_end(args);
  ++action_count;
}

void write_stderr(const char* text) {
  std::size_t left = std::strlen(text);
  while (left > 0) {
    const ssize_t n = ::write(STDERR_FILENO, text, left);
    if (n <= 0) return;
    text += n;
    left -= static_cast<std::size_t>(n);
  }
}

// Async-signal-safe enough for a process that is dying anyway.
void dump_action_log() {
  write_stderr("last actions, oldest first:\n");
  const std::size_t first = action_count > kLogLines ? action_count - kLogLines : 0;
  for (std::size_t i = first; i < action_count; ++i) {
    write_stderr("  ");
    write_stderr(action_log[i % kLogLines].data());
    write_stderr("\n");
  }
}

extern "C" void on_child_abort(int) {
  dump_action_log();
  ::signal(SIGABRT, SIG_DFL);
  ::raise(SIGABRT);
}

[[noreturn]] void child_fails(const std::string& why) {
  write_stderr(("contract broken: " + why + "\n").c_str());
  dump_action_log();
  evcxx_test::exit_child(2);
}

#define CHILD_CHECK(condition, ...)                                 \
  do {                                                              \
    if (!(condition)) {                                             \
      char what_[256];                                              \
      std::snprintf(what_, sizeof what_, __VA_ARGS__);              \
      child_fails(std::string(#condition) + " is false: " + what_); \
    }                                                               \
  } while (0)

// --- Running a body in a forked child, with a time limit ---

struct ChildOutcome {
  bool finished = false;  // exited or was killed by a signal within the limit
  int status = 0;
  std::string output;  // its stderr
  std::string describe() const {
    std::string how;
    if (!finished) {
      how = "did not finish in time (killed)";
    } else if (WIFEXITED(status)) {
      how = "exited with " + std::to_string(WEXITSTATUS(status));
    } else if (WIFSIGNALED(status)) {
      how = std::string("was killed by signal ") + std::to_string(WTERMSIG(status)) + " (" +
            strsignal(WTERMSIG(status)) + ")";
    }
    return "the child " + how + "; its stderr:\n" + output;
  }
  bool clean() const { return finished && WIFEXITED(status) && WEXITSTATUS(status) == 0; }
};

ChildOutcome run_in_child(const std::function<void()>& body, std::chrono::seconds limit) {
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) evcxx_test::throw_errno("pipe2");
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) evcxx_test::throw_errno("fork");
  if (pid == 0) {
    ::dup2(out[1], STDERR_FILENO);
    ::close(out[0]);
    ::close(out[1]);
    try {
      body();
    } catch (const std::exception& e) {
      child_fails(std::string("unexpected exception: ") + e.what());
    } catch (...) {
      child_fails("unexpected exception");
    }
    evcxx_test::exit_child(0);
  }
  ::close(out[1]);
  evcxx_test::Fd reader(out[0]);
  ChildOutcome outcome;
  const auto deadline = SteadyClock::now() + limit;
  bool eof = false;
  while (!eof) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
    if (left <= 0ms) break;
    struct pollfd p {};
    p.fd = reader.get();
    p.events = POLLIN;
    const int n = ::poll(&p, 1, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) continue;
    char buf[4096];
    const ssize_t got = ::read(reader.get(), buf, sizeof buf);
    if (got > 0) {
      if (outcome.output.size() < 64 * 1024)
        outcome.output.append(buf, static_cast<std::size_t>(got));
    } else if (got == 0 || errno != EINTR) {
      eof = true;
    }
  }
  if (!eof) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  outcome.finished = eof;
  outcome.status = status;
  return outcome;
}

// --- The model the random sequence runs against ---

bool fd_open(int fd) {
  return ::fcntl(fd, F_GETFD) != -1;
}

bool is_epoll_fd(int fd) {
  char target[64] = {};
  const std::string link = "/proc/self/fd/" + std::to_string(fd);
  return ::readlink(link.c_str(), target, sizeof target - 1) > 0 &&
         std::string(target) == "anon_inode:[eventpoll]";
}

// Runs f, which watches fd; evcxx refuses only the loop's own epoll descriptor (a closed number
// that epoll_create() took, after Loop::notify_fork()).
std::size_t epoll_fd_refusals = 0;

template <class F>
void unless_epoll_fd(int fd, F&& f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    ++epoll_fd_refusals;
    log_action("  refused fd %d: epoll", fd);
    CHILD_CHECK(is_epoll_fd(fd), "fd %d refused: %s", fd, e.what());
  }
}

struct Descriptor {
  int fd;
  bool can_read;
  bool can_write;
};

struct Slot {
  std::unique_ptr<evcxx::Io> io;
  int fd = -1;
  // When the watcher became active on a descriptor that is not open (closed under it, or started
  // or set() on a closed number); unset when it is not such an orphan, or the number was reused.
  bool orphan = false;
  SteadyClock::time_point orphan_since;
  unsigned errors = 0;
};

class Stress {
 public:
  // pipe_before_loop: a pipe opened before the loop, so that its numbers are below the loop's
  // own: once closed, a Loop::notify_fork() gives one of them to the new epoll instance.
  Stress(Backend backend, unsigned seed, std::chrono::duration<double> budget,
         const int (&pipe_before_loop)[2])
      : loop_(evcxx::LoopFlags(backend)), rng_(seed), budget_(budget) {
    if (loop_.backend() != backend) child_fails("the loop has another backend");
    note_open(pipe_before_loop[0], true, false);
    note_open(pipe_before_loop[1], false, true);
  }

  void run() {
    // Keeps Run::once from blocking for long when no descriptor is ready.
    evcxx::Timer tick(loop_, 2ms, 2ms, [] {});
    const auto end = SteadyClock::now() + budget_;
    while (SteadyClock::now() < end) step();
    log_action("drain: %zu steps done", steps_);
    drain();
  }

  std::size_t steps() const { return steps_; }
  std::size_t forks() const { return forks_; }

 private:
  static constexpr std::size_t kMaxDescriptors = 12;
  static constexpr std::size_t kSlots = 16;
  // Generous: the epoll check interval is set to 20 ms for the stress, but sanitizer builds on a
  // shared machine are slow.
  static constexpr auto kOrphanPatience = 3s;

  unsigned pick(unsigned n) { return std::uniform_int_distribution<unsigned>(0, n - 1)(rng_); }
  bool chance(unsigned one_in) { return pick(one_in) == 0; }

  IoEvents random_events() {
    if (chance(8)) return IoEvents();  // waits for nothing (curl's CURL_POLL_NONE)
    switch (pick(3)) {
      case 0:
        return IoEvent::readable;
      case 1:
        return IoEvent::writable;
      default:
        return IoEvent::readable | IoEvent::writable;
    }
  }

  // Mostly an open descriptor; now and then a number that was closed (and may be reused later).
  int random_fd() {
    if (!closed_.empty() && (descriptors_.empty() || chance(6)))
      return closed_[pick(closed_.size())];
    if (descriptors_.empty()) return -1;
    return descriptors_[pick(descriptors_.size())].fd;
  }

  void note_open(int fd, bool can_read, bool can_write) {
    descriptors_.push_back(Descriptor{fd, can_read, can_write});
    closed_.erase(std::remove(closed_.begin(), closed_.end(), fd), closed_.end());
    // A watcher left on this number by a close now silently watches the new file (io.hpp).
    for (Slot& s : slots_) {
      if (s.io && s.fd == fd) s.orphan = false;
    }
  }

  void open_descriptor() {
    if (descriptors_.size() + 2 > kMaxDescriptors) return;
    int fds[2];
    switch (pick(3)) {
      case 0:
        if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) child_fails("pipe2 failed");
        log_action("open pipe %d <- %d", fds[0], fds[1]);
        note_open(fds[0], true, false);
        note_open(fds[1], false, true);
        break;
      case 1:
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0) {
          child_fails("socketpair failed");
        }
        log_action("open socketpair %d <-> %d", fds[0], fds[1]);
        note_open(fds[0], true, true);
        note_open(fds[1], true, true);
        break;
      default:
        fds[0] = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (fds[0] < 0) child_fails("eventfd failed");
        log_action("open eventfd %d", fds[0]);
        note_open(fds[0], true, true);
        break;
    }
  }

  void close_descriptor(std::size_t index) {
    const int fd = descriptors_[index].fd;
    log_action("close %d", fd);
    descriptors_.erase(descriptors_.begin() + static_cast<std::ptrdiff_t>(index));
    if (::close(fd) != 0) child_fails("close failed");
    closed_.push_back(fd);
    if (closed_.size() > 8) closed_.erase(closed_.begin());
    for (Slot& s : slots_) {
      if (s.io && s.io->active() && s.fd == fd && !s.orphan) {
        s.orphan = true;
        s.orphan_since = SteadyClock::now();
      }
    }
  }

  void became_active(Slot& s) {
    s.fd = s.io->fd();
    s.orphan = s.io->active() && !fd_open(s.fd);
    s.orphan_since = SteadyClock::now();
  }

  void create(std::size_t i) {
    const int fd = random_fd();
    if (fd < 0) return;
    const IoEvents events = random_events();
    const bool start = !chance(4);
    log_action("create #%zu on %d events %d%s", i, fd, events.raw(), start ? " started" : "");
    Slot& s = slots_[i];
    auto callback = [this, i](IoEvents fired) { on_event(i, fired); };
    unless_epoll_fd(fd, [&] {
      if (start) {
        s.io = std::make_unique<evcxx::Io>(loop_, fd, events, callback);
      } else {
        s.io = std::make_unique<evcxx::Io>(loop_, evcxx::deferred, fd, events, callback);
        if (chance(2)) {
          const int priority = static_cast<int>(pick(EV_MAXPRI - EV_MINPRI + 1)) + EV_MINPRI;
          s.io->set_priority(priority);
        }
      }
    });
    if (!s.io) return;
    s.errors = 0;
    became_active(s);
  }

  void destroy(std::size_t i) {
    log_action("destroy #%zu (fd %d, %s)", i, slots_[i].fd,
               slots_[i].io->active() ? "active" : "inactive");
    slots_[i].io.reset();
    slots_[i].orphan = false;
  }

  void stop(std::size_t i) {
    log_action("stop #%zu (fd %d)", i, slots_[i].fd);
    slots_[i].io->stop();
    slots_[i].orphan = false;
  }

  void start(std::size_t i) {
    log_action("start #%zu (fd %d)", i, slots_[i].fd);
    unless_epoll_fd(slots_[i].io->fd(), [&] {
      slots_[i].io->start();
      became_active(slots_[i]);
    });
  }

  void set_elsewhere(std::size_t i) {
    const int fd = random_fd();
    if (fd < 0) return;
    const IoEvents events = random_events();
    log_action("set #%zu from fd %d to fd %d events %d", i, slots_[i].fd, fd, events.raw());
    unless_epoll_fd(fd, [&] {
      slots_[i].io->set(fd, events);
      became_active(slots_[i]);
    });
  }

  void set_events(std::size_t i) {
    const IoEvents events = random_events();
    log_action("set #%zu events %d (fd %d)", i, events.raw(), slots_[i].fd);
    unless_epoll_fd(slots_[i].io->fd(), [&] {
      slots_[i].io->set(events);
      became_active(slots_[i]);
    });
  }

  void misuse(std::size_t i) {
    Slot& s = slots_[i];
    if (chance(2)) {
      log_action("set #%zu to fd -1", i);
      bool threw = false;
      try {
        s.io->set(-1, IoEvent::readable);
      } catch (const std::invalid_argument&) {
        threw = true;
      }
      CHILD_CHECK(threw, "set(-1, ...) on #%zu", i);
      return;
    }
    const bool busy = s.io->active() || s.io->pending();
    log_action("set_priority #%zu (%s)", i, busy ? "busy" : "idle");
    bool threw = false;
    try {
      s.io->set_priority(EV_MAXPRI);
    } catch (const std::logic_error&) {
      threw = true;
    }
    CHILD_CHECK(threw == busy, "set_priority on #%zu: active or pending %d, threw %d", i, busy,
                threw);
  }

  void feed() {
    if (descriptors_.empty()) return;
    const Descriptor& d = descriptors_[pick(descriptors_.size())];
    if (!d.can_write) return;
    const std::uint64_t one = 1;  // eventfd needs 8 bytes; pipes and sockets take them too
    const ssize_t n = ::write(d.fd, &one, sizeof one);
    static_cast<void>(n);  // a full pipe or a closed peer is part of the game
    log_action("feed %d", d.fd);
  }

  void run_loop() {
    const bool once = chance(3);
    log_action("run %s", once ? "once" : "nowait");
    loop_.run(once ? evcxx::Run::once : evcxx::Run::nowait);
  }

  // What a client library does inside its callbacks: read, write, and sometimes stop, destroy or
  // close (its own descriptor or a sibling's).
  void on_event(std::size_t i, IoEvents fired) {
    Slot& s = slots_[i];
    CHILD_CHECK(s.io != nullptr, "callback of destroyed #%zu", i);
    if (fired.error()) {
      CHILD_CHECK(!s.io->active(), "#%zu is still active after its error event", i);
      CHILD_CHECK(!fd_open(s.io->fd()), "error event for #%zu on fd %d, which is open", i,
                  s.io->fd());
      log_action("  #%zu: error (fd %d)", i, s.fd);
      ++s.errors;
      s.orphan = false;
      if (chance(2)) destroy(i);
      return;
    }
    CHILD_CHECK(s.io->active(), "callback (events %d) of inactive #%zu", fired.raw(), i);
    CHILD_CHECK((fired & s.io->events()) == fired, "#%zu fired %d but watches %d", i, fired.raw(),
                s.io->events().raw());
    if (fired.readable()) {
      char buf[256];
      const ssize_t n = ::read(s.fd, buf, sizeof buf);
      static_cast<void>(n);
    }
    if (fired.writable() && chance(2)) {
      const std::uint64_t one = 1;
      const ssize_t n = ::write(s.fd, &one, sizeof one);
      static_cast<void>(n);
    }
    if (!chance(6)) return;
    switch (pick(6)) {
      case 0:
        log_action("  #%zu stops itself", i);
        stop(i);
        break;
      case 1:
        log_action("  #%zu destroys itself", i);
        destroy(i);
        break;
      case 2: {
        const auto d = std::find_if(descriptors_.begin(), descriptors_.end(),
                                    [&](const Descriptor& x) { return x.fd == s.fd; });
        log_action("  #%zu closes its fd %d", i, s.fd);
        if (d != descriptors_.end())
          close_descriptor(static_cast<std::size_t>(d - descriptors_.begin()));
        break;
      }
      case 3:
      case 4: {
        // A sibling on the same descriptor, as a client's read callback stops its write watcher.
        for (std::size_t j = 0; j < kSlots; ++j) {
          if (j == i || !slots_[j].io || slots_[j].fd != s.fd) continue;
          const bool stop_only = chance(2);
          log_action("  #%zu %s sibling #%zu", i, stop_only ? "stops" : "destroys", j);
          if (stop_only) {
            stop(j);
          } else {
            destroy(j);
          }
          break;
        }
        break;
      }
      default:
        log_action("  #%zu moves", i);
        set_elsewhere(i);
        break;
    }
  }

  void check_orphans(bool final_check) {
    const auto now = SteadyClock::now();
    for (std::size_t i = 0; i < kSlots; ++i) {
      Slot& s = slots_[i];
      if (!s.io || !s.orphan) continue;
      if (!s.io->active()) {
        s.orphan = false;
        continue;
      }
      // libev's select backend learns of a closed descriptor from select() itself, which is not
      // given one that nothing waits for; it is reported once the watcher waits for something.
      if (s.io->events().empty() && loop_.backend() == Backend::select) {
        s.orphan_since = now;
        continue;
      }
      CHILD_CHECK(!final_check && now - s.orphan_since < kOrphanPatience,
                  "#%zu stayed active on closed fd %d without an error event for %.1f s", i, s.fd,
                  std::chrono::duration<double>(now - s.orphan_since).count());
    }
  }

  void step() {
    ++steps_;
    std::size_t i = pick(kSlots);
    Slot& s = slots_[i];
    const unsigned action = pick(20);
    if (action < 2) {
      open_descriptor();
    } else if (action < 4) {
      if (!descriptors_.empty()) close_descriptor(pick(descriptors_.size()));
    } else if (!s.io) {
      if (action < 12) create(i);
    } else if (action < 6) {
      start(i);
    } else if (action < 8) {
      stop(i);
    } else if (action < 9) {
      destroy(i);
    } else if (action < 10) {
      set_elsewhere(i);
    } else if (action < 11) {
      set_events(i);
    } else if (action < 12) {
      misuse(i);
    }
    if (action >= 12 && action < 14) feed();
    if (action == 13 && chance(16)) {
      // libev registers every descriptor again (epoll: in a new epoll instance).
      log_action("loop.notify_fork()");
      loop_.notify_fork();
      ++forks_;
    }
    if (action >= 14) run_loop();
    if (steps_ % 64 == 0) check_orphans(false);
  }

  // No more closes: every watcher left on a closed descriptor must get its error event.
  void drain() {
    const auto end = SteadyClock::now() + kOrphanPatience;
    for (;;) {
      bool waiting = false;
      for (Slot& s : slots_) {
        waiting |= s.io && s.orphan && s.io->active() &&
                   !(s.io->events().empty() && loop_.backend() == Backend::select);
      }
      if (!waiting || SteadyClock::now() >= end) break;
      loop_.run(evcxx::Run::once);
    }
    check_orphans(true);
    for (std::size_t i = 0; i < kSlots; ++i) {
      if (slots_[i].io) destroy(i);
    }
    for (const Descriptor& d : descriptors_) ::close(d.fd);
    descriptors_.clear();
    loop_.run(evcxx::Run::nowait);
  }

  evcxx::Loop loop_;
  std::mt19937 rng_;
  std::chrono::duration<double> budget_;
  std::vector<Descriptor> descriptors_;
  std::vector<int> closed_;  // recently closed numbers (not reused yet)
  std::array<Slot, kSlots> slots_;
  std::size_t steps_ = 0;
  std::size_t forks_ = 0;
};

unsigned stress_seed() {
  if (const char* fixed = std::getenv("EVCXX_IO_STRESS_SEED")) {
    return static_cast<unsigned>(std::strtoul(fixed, nullptr, 0));
  }
  return std::random_device{}();
}

class IoStress : public ::testing::TestWithParam<Backend> {};

TEST_P(IoStress, SharedDescriptorsClosedStoppedDestroyedAndMovedInAnyOrderNeverAbort) {
  const Backend backend = GetParam();
  try {
    evcxx::Loop probe{evcxx::LoopFlags(backend)};
    if (probe.backend() != backend) GTEST_SKIP() << "libev gave another backend";
  } catch (const std::exception& e) {
    GTEST_SKIP() << "cannot create a loop with the " << backend_name(backend)
                 << " backend here (libev " << evcxx::Loop::version().major << "."
                 << evcxx::Loop::version().minor << " supports 0x" << std::hex
                 << evcxx::Loop::supported_backends().raw() << "): " << e.what();
  }
  {
    evcxx::Loop probe{evcxx::LoopFlags(backend)};
    try {
      evcxx::Io io(probe, evcxx::deferred, 0, IoEvent::readable, [](IoEvents) {});
    } catch (const std::logic_error& e) {
      // evcxx refuses Io where libev itself aborts (IoUringInLibev shows it): every attempt must
      // be that exception, and nothing else may happen.
      std::printf("[ refused  ] %s\n", e.what());
      EXPECT_THROW(evcxx::Io(probe, 0, IoEvent::writable, [](IoEvents) {}), std::logic_error);
      return;
    }
  }
  const unsigned seed = stress_seed();
  std::printf("[ seed     ] %u (EVCXX_IO_STRESS_SEED=%u repeats it)\n", seed, seed);
  const ChildOutcome outcome = run_in_child(
      [&] {
        struct sigaction action {};
        action.sa_handler = on_child_abort;
        ::sigaction(SIGABRT, &action, nullptr);
        ::signal(SIGPIPE, SIG_IGN);
        evcxx::Io::set_closed_fd_check_interval(20ms);
        int before[2];
        if (::pipe2(before, O_NONBLOCK | O_CLOEXEC) != 0) child_fails("pipe2 failed");
        Stress stress(backend, seed, 2s, before);
        stress.run();
        std::fprintf(stderr,
                     "%zu steps, %zu Loop::notify_fork(), %zu Io refused the loop's epoll fd\n",
                     stress.steps(), stress.forks(), epoll_fd_refusals);
      },
      std::chrono::seconds(90));
  EXPECT_TRUE(outcome.clean()) << "backend " << backend_name(backend) << ", seed " << seed << ": "
                               << outcome.describe();
  if (outcome.clean()) std::printf("[ child    ] %s", outcome.output.c_str());
}

// libev 4.33's io_uring backend on its own, no evcxx: a read watcher stays armed while a write
// watcher on the same pipe comes and goes (as a client library's do). libev reuses submission
// entries without clearing them, the kernel rejects a POLL_REMOVE with a stale poll32_events, and
// libev aborts on the entries left unsubmitted. This is why Io refuses io_uring loops.
TEST(IoUringInLibev, AbortsWhenARegistrationChangesAfterTheRingWrapped) {
  struct ev_loop* probe = ev_loop_new(EVBACKEND_IOURING);
  if (probe == nullptr) GTEST_SKIP() << "no io_uring loop here";
  ev_loop_destroy(probe);
  const evcxx::Version v = evcxx::Loop::version();
  if (v.major > 4 || (v.major == 4 && v.minor > 33)) GTEST_SKIP() << "a libev after 4.33";
  const ChildOutcome outcome = run_in_child(
      [] {
        struct ev_loop* loop = ev_loop_new(EVBACKEND_IOURING);
        int p[2];
        int q[2];
        if (::pipe(p) != 0 || ::pipe(q) != 0) child_fails("pipe failed");
        auto nothing = [](struct ev_loop*, ev_io*, int) {};
        ev_io reader;
        ev_io writer;
        ev_io other;
        ev_io_init(&reader, nothing, p[0], EV_READ);
        ev_io_init(&writer, nothing, p[0], EV_WRITE);
        ev_io_init(&other, nothing, q[0], EV_READ);
        ev_io_start(loop, &reader);
        for (int i = 0; i < 200; ++i) {
          ev_io_start(loop, &writer);
          ev_run(loop, EVRUN_NOWAIT);
          ev_io_stop(loop, &writer);
          ev_io_start(loop, &other);
          ev_run(loop, EVRUN_NOWAIT);
          ev_io_stop(loop, &other);
        }
      },
      std::chrono::seconds(60));
  if (outcome.clean()) {
    GTEST_SKIP() << "this kernel accepts libev's io_uring submissions; evcxx refuses io_uring for "
                    "Io anyway";
  }
  EXPECT_TRUE(outcome.finished && WIFSIGNALED(outcome.status) &&
              WTERMSIG(outcome.status) == SIGABRT)
      << outcome.describe();
  EXPECT_NE(outcome.output.find("did not consume all sqes"), std::string::npos)
      << outcome.describe();
}

INSTANTIATE_TEST_SUITE_P(Backends, IoStress,
                         ::testing::Values(Backend::select, Backend::poll, Backend::epoll,
                                           Backend::linuxaio, Backend::iouring),
                         [](const ::testing::TestParamInfo<Backend>& info) {
                           return backend_name(info.param);
                         });

}  // namespace
