#pragma once

#include <ev.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <new>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include "evcxx/detail/loop_chore.hpp"
#include "evcxx/detail/task.hpp"
#include "evcxx/export.hpp"
#include "evcxx/flags.hpp"

EVCXX_BEGIN_NAMESPACE

class LoopThread;
class WaitableEvent;

namespace detail {
class WatcherLink;
class ClosedFdGuard;
}  // namespace detail

// Thrown by post() once the Loop no longer accepts tasks: its LoopThread was stopped.
class EVCXX_API LoopStopped : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

// libev's clock: ev_time(), wall-clock seconds as a double. Timestamps from ev_now() use it.
struct Clock {
  using rep = double;
  using period = std::ratio<1>;
  using duration = std::chrono::duration<double>;
  using time_point = std::chrono::time_point<Clock, duration>;
  static constexpr bool is_steady = false;
  static time_point now() noexcept { return time_point(duration(ev_time())); }
};

// A libev timestamp (double seconds since the epoch) as a typed time point.
using Timestamp = Clock::time_point;

// How run() runs: ev_run()'s flags.
enum class Run : int {
  until_done = 0,         // until no active watchers remain or the loop is broken
  once = EVRUN_ONCE,      // one iteration, blocking until at least one event
  nowait = EVRUN_NOWAIT,  // one iteration, never blocking
};

// How break_loop() breaks: ev_break()'s argument.
enum class Break : int {
  cancel = EVBREAK_CANCEL,  // undo an earlier break
  one = EVBREAK_ONE,        // the innermost run() returns
  all = EVBREAK_ALL,        // every nested run() returns
};

// One libev backend.
enum class Backend : unsigned {
  select = EVBACKEND_SELECT,
  poll = EVBACKEND_POLL,
  epoll = EVBACKEND_EPOLL,
  kqueue = EVBACKEND_KQUEUE,
  devpoll = EVBACKEND_DEVPOLL,
  port = EVBACKEND_PORT,
  linuxaio = EVBACKEND_LINUXAIO,
  iouring = EVBACKEND_IOURING,
};

// A set of backends, as the supported / recommended / embeddable queries return them.
class Backends : public Flags<Backends, Backend> {
 public:
  using Flags::Flags;
};

constexpr Backends operator|(Backend a, Backend b) noexcept {
  return Backends(a) | Backends(b);
}

// One of libev's loop flags (EVFLAG_*), for LoopFlags.
enum class LoopFlag : unsigned {
  noenv = EVFLAG_NOENV,  // ignore the LIBEV_FLAGS environment variable
  // libev then notices a fork itself and recreates the loop's descriptors in the next iteration,
  // where it abort()s if the process is out of descriptors; after Loop::notify_fork() run() checks
  // first.
  forkcheck = EVFLAG_FORKCHECK,
  noinotify = EVFLAG_NOINOTIFY,  // Stat polls instead of using inotify
  signalfd = EVFLAG_SIGNALFD,    // Signal watchers use signalfd
  nosigmask = EVFLAG_NOSIGMASK,  // libev leaves the signal mask alone
  notimerfd = EVFLAG_NOTIMERFD,  // no timerfd for noticing wall-clock jumps
};

// Flags for a new loop: ev_loop_new()'s argument, typed: LoopFlag values and the backends to
// choose from. Empty (EVFLAG_AUTO): libev picks the backend. from_raw() takes libev's bits as they
// are.
class LoopFlags : public Flags<LoopFlags, LoopFlag> {
 public:
  using Flags::Flags;
  constexpr LoopFlags(Backends b) noexcept : Flags(detail::raw_bits_t{}, b.raw()) {}  // NOLINT
  constexpr LoopFlags(Backend b) noexcept : LoopFlags(Backends(b)) {}                 // NOLINT

  // The backends among the flags (none: libev picks).
  constexpr Backends backends() const noexcept {
    return Backends::from_raw(raw() & unsigned{EVBACKEND_MASK});
  }

  // The old spellings of the LoopFlag values, kept for one release.
  [[deprecated("evcxx: use LoopFlag::noenv")]] static constexpr LoopFlags noenv() noexcept {
    return LoopFlag::noenv;
  }
  [[deprecated("evcxx: use LoopFlag::forkcheck")]] static constexpr LoopFlags forkcheck() noexcept {
    return LoopFlag::forkcheck;
  }
  [[deprecated("evcxx: use LoopFlag::noinotify")]] static constexpr LoopFlags noinotify() noexcept {
    return LoopFlag::noinotify;
  }
  [[deprecated("evcxx: use LoopFlag::signalfd")]] static constexpr LoopFlags signalfd() noexcept {
    return LoopFlag::signalfd;
  }
  [[deprecated("evcxx: use LoopFlag::nosigmask")]] static constexpr LoopFlags nosigmask() noexcept {
    return LoopFlag::nosigmask;
  }
  [[deprecated("evcxx: use LoopFlag::notimerfd")]] static constexpr LoopFlags notimerfd() noexcept {
    return LoopFlag::notimerfd;
  }
};

constexpr LoopFlags operator|(LoopFlag a, LoopFlag b) noexcept {
  return LoopFlags(a) | LoopFlags(b);
}
constexpr LoopFlags operator|(LoopFlag a, Backend b) noexcept {
  return LoopFlags(a) | LoopFlags(b);
}
constexpr LoopFlags operator|(Backend a, LoopFlag b) noexcept {
  return LoopFlags(a) | LoopFlags(b);
}
constexpr LoopFlags operator|(LoopFlag a, Backends b) noexcept {
  return LoopFlags(a) | LoopFlags(b);
}
constexpr LoopFlags operator|(Backends a, LoopFlag b) noexcept {
  return LoopFlags(a) | LoopFlags(b);
}

// libev's version, as linked at run time.
struct Version {
  int major;
  int minor;
};

// One libev event loop, owned or borrowed.
//
// Thread-safety: a Loop belongs to the thread that runs it ("the loop thread"); every member is
// for that thread (or for any one thread while the loop is not running) unless its comment says
// ANY thread. Watchers are created, started, stopped and destroyed on the loop thread too.
//
// Memory ordering: post() and stop() are release operations. Everything a thread wrote before
// post(task) happens-before task runs; everything a thread wrote before stop() happens-before the
// run() that it makes return has returned.
//
// Lifetime: destroy a Loop on its thread, outside run(), once no other thread can still be inside
// post() or stop() on it (a call may still be returning after its task ran). Watchers may outlive
// it: they are detached (see watcher.hpp).
class EVCXX_API Loop {
 public:
  // A new loop, ev_loop_new(EVFLAG_AUTO). Throws evcxx::Error if libev cannot create one, and
  // std::system_error (EMFILE or ENFILE) when no descriptor is left for the loop's wakeup
  // (eventfd or pipe, created here so that post(), stop() and Async never need one later).
  // Throws std::bad_alloc when out of memory; libev's own allocations abort instead (libev
  // offers no way to fail them).
  Loop();
  // A new loop with these flags and backends. Throws evcxx::Error if libev cannot create one
  // (for example when none of the requested backends is supported, or there is no descriptor
  // left for the backend), and std::system_error as Loop() does.
  explicit Loop(LoopFlags flags);
  // Wraps a loop created elsewhere (ev_loop_new, ev_default_loop or foreign code); the Loop never
  // destroys it. Throws std::invalid_argument on nullptr, and std::system_error (EMFILE) when no
  // descriptor is free for the wakeup (checked even if the loop already has one).
  explicit Loop(struct ev_loop* borrowed);
  // The process default loop, ev_default_loop(0): the only loop that supports Child watchers.
  // Created on first use; never destroyed. Throws evcxx::Error if libev cannot create it, and
  // std::system_error (EMFILE) when creating it needs two descriptors (backend and wakeup) and
  // the process does not have them; a later call tries again.
  static Loop& default_loop();

  // Detaches every watcher still attached (each becomes inactive; see watcher.hpp), drops tasks
  // that were posted but never run, runs Cleanup watchers and destroys an owned loop. Must not
  // run inside this loop's run().
  ~Loop();

  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;

  // Runs the loop (ev_run). Returns true when it returned with watchers still active, i.e. it was
  // broken or stopped. If a callback or posted task threw, the loop is broken after the events
  // already due have run, and run() rethrows the first such exception; the loop stays usable.
  // After fork(), throws std::system_error (EMFILE) without running while the process has no
  // descriptor free for the wakeup libev recreates then (libev would abort); the fork is handled
  // by the first run() that has one.
  bool run(Run how = Run::until_done);
  // ev_break: makes the innermost (or every) run() return after the current iteration.
  // Loop thread only; use stop() from anywhere else.
  void break_loop(Break how = Break::one) noexcept;
  // ANY thread, and async-signal-safe: the current run() returns soon; if the loop is not
  // running, the next run() returns after one iteration.
  void stop() noexcept;
  // ANY thread (not signal handlers): runs task on the loop thread, in FIFO order per producer
  // thread; tasks from different threads have no order between them (each thread posts through
  // its own queue), so a task that must follow another thread's should be posted by that thread
  // or by the earlier task itself. Tasks posted before run() are run by it; a task posted by a
  // task runs in a later batch (after the loop polled for I/O). A thread's first post to a Loop
  // registers its lane (a lock and a small allocation, once); after that posting takes no lock,
  // writes nothing another producer writes, and costs no allocation for a task that fits in
  // detail::task_inline_size bytes; the loop is woken once per batch. A throwing task is handled
  // like a throwing callback. Tasks still queued when the Loop is destroyed are destroyed without
  // running. The Loop must outlive every post() call, including one whose task has already run (the
  // call may still be returning). Throws std::invalid_argument for an empty task, LoopStopped
  // once the Loop's LoopThread was stopped, and std::bad_alloc (nothing queued, the task not moved
  // from) when the lane or a boxed task cannot be allocated.
  void post(std::function<void()> task);
  // The same for any callable, without std::function (so move-only callables work too): a
  // callable of up to detail::task_inline_size bytes with a noexcept move is stored inline.
  template <class F, std::enable_if_t<detail::is_task_v<F>, int> = 0>
  void post(F&& task) {
    if (!try_post(std::forward<F>(task))) throw_stopped();
  }
  // ANY thread: post() that returns false instead of throwing LoopStopped, leaving task untouched
  // when it returns false or throws.
  template <class F, std::enable_if_t<detail::is_task_v<F>, int> = 0>
  bool try_post(F&& task) {
    using Fn = std::decay_t<F>;
    if constexpr (std::is_pointer_v<Fn>) {
      if (task == nullptr) throw std::invalid_argument("evcxx: post() needs a task, not nullptr");
    }
    constexpr const detail::TaskOps& ops = detail::task_ops_for<Fn>();
    if constexpr (std::is_same_v<F, Fn>) {  // an rvalue: moved from only once queued
      return post_erased(ops, std::addressof(task));
    } else {
      Fn copy(std::forward<F>(task));
      return post_erased(ops, std::addressof(copy));
    }
  }
  bool try_post(std::function<void()> task);

  // The underlying loop, for code that already uses libev. ANY thread.
  struct ev_loop* native() const noexcept {
    return loop_;
  }
  // True when this Loop created its ev_loop and will destroy it. ANY thread.
  bool owns_loop() const noexcept { return owned_; }
  // True for ev_default_loop()'s loop. ANY thread.
  bool is_default() const noexcept;

  // The time of the current iteration (ev_now) and its refresh (ev_now_update).
  Timestamp now() const noexcept { return Timestamp(Clock::duration(ev_now(loop_))); }
  void update_now() noexcept { ev_now_update(loop_); }
  // ev_suspend / ev_resume: pause timers across a process suspension. Called in pairs.
  void suspend() noexcept { ev_suspend(loop_); }
  void resume() noexcept { ev_resume(loop_); }
  // Number of loop iterations so far, and how deeply run() is nested right now.
  unsigned iteration() const noexcept { return ev_iteration(loop_); }
  unsigned depth() const noexcept { return ev_depth(loop_); }
  // Number of watchers with an event waiting for its callback.
  unsigned pending_count() const noexcept { return ev_pending_count(loop_); }
  // Runs the pending callbacks now (ev_invoke_pending); rethrows the first exception one threw.
  void invoke_pending();
  // The backend in use.
  Backend backend() const noexcept { return static_cast<Backend>(ev_backend(loop_)); }
  // Call in the child after fork() before using the loop there (ev_loop_fork). Use this rather
  // than ev_loop_fork(native()): the next run() then checks that libev can recreate the loop's
  // wakeup descriptor (see run()).
  void notify_fork() noexcept;
  // The old name of notify_fork(), kept for one release.
  [[deprecated("evcxx: use Loop::notify_fork()")]] void fork() noexcept { notify_fork(); }
  // ev_ref / ev_unref: whether an active watcher keeps run() from returning. Call unref() after
  // starting a watcher that should not keep the loop alive, and ref() before stopping it.
  void ref() noexcept {
    --unrefs_;
    ev_ref(loop_);
  }
  void unref() noexcept {
    ++unrefs_;
    ev_unref(loop_);
  }
  // Latency/throughput trade-offs (ev_set_io_collect_interval / ev_set_timeout_collect_interval).
  // Throw std::invalid_argument for a negative or NaN interval.
  void set_io_collect_interval(std::chrono::duration<double> interval);
  void set_timeout_collect_interval(std::chrono::duration<double> interval);
  // ev_verify: checks libev's internal consistency. Throws std::logic_error where libev would
  // abort because unref() was called more often than ref() plus the active watchers hold. It
  // counts evcxx's watchers only: raw libev watchers of C code that hold the loop too may make it
  // throw where libev would not (call ev_verify(native()) yourself then).
  void verify();

  // Running the loop under the user's own mutex (libev's ev_set_loop_release_cb): release runs
  // before the loop blocks, acquire after it wakes. Both or neither; empty functions uninstall.
  // They take over ev_userdata() of the loop. Must not throw (an exception is captured and
  // rethrown by run()).
  void set_release_hooks(std::function<void()> release, std::function<void()> acquire);
  // Replaces how pending callbacks are invoked (ev_set_invoke_pending_cb); the hook normally
  // locks something and calls invoke_pending(). An empty function restores libev's default.
  void set_invoke_pending_hook(std::function<void(Loop&)> hook);

  // The first exception a callback threw that no run()/invoke_pending() has rethrown yet, taken
  // out of the loop; for code that drives native() with ev_run() itself.
  std::exception_ptr take_exception() noexcept;

  // Backend queries (ev_supported_backends, ev_recommended_backends, ev_embeddable_backends).
  static Backends supported_backends() noexcept {
    return Backends::from_raw(ev_supported_backends());
  }
  static Backends recommended_backends() noexcept {
    return Backends::from_raw(ev_recommended_backends());
  }
  // Without io_uring: libev (4.33) lists it as embeddable, but an io_uring loop has no backend
  // descriptor and ev_embed_start() aborts on it.
  static Backends embeddable_backends() noexcept {
    return Backends::from_raw(ev_embeddable_backends() & ~unsigned{EVBACKEND_IOURING});
  }
  // The libev this program runs with (ev_version_major / ev_version_minor).
  static Version version() noexcept { return Version{ev_version_major(), ev_version_minor()}; }

  // Called by watchers and tasks on the loop thread: remember the first exception, break the loop.
  void capture_exception(std::exception_ptr error) noexcept;

 private:
  struct Impl;
  friend class detail::WatcherLink;
  friend class LoopThread;
  friend class WaitableEvent;
  friend class Embed;  // sweep() must not run the inner loop inside its release hook
  Loop(struct ev_loop* loop, bool owned);
  // ANY thread (not signal handlers): queues chore for the loop thread (see detail::LoopChore).
  void add_chore(detail::LoopChore& chore) noexcept;
  void run_chores() noexcept;
  // ANY thread: true when the caller is inside this Loop's run() (so it is the loop thread).
  bool running_on_this_thread() const noexcept;
  void rethrow_captured();
  void on_wakeup() noexcept;
  // Queues the task at `source` (moving from it only on success); false once posts are closed.
  bool post_erased(const detail::TaskOps& ops, void* source);
  [[noreturn]] static void throw_stopped();
  // For LoopThread: refuse posts from now on; run() returns once every accepted task ran.
  void close_posts() noexcept;
  bool posts_closed_and_drained() const noexcept;
  // A release or acquire hook (set_release_hooks) is running: libev forbids running the loop.
  bool in_release_hook() const noexcept;
  // ~Loop has begun detaching watchers: no new watcher may attach.
  bool being_destroyed() const noexcept;

  struct ev_loop* loop_;
  bool owned_;
  std::unique_ptr<Impl> impl_;
  detail::WatcherLink* watchers_ = nullptr;    // intrusive list of attached watchers
  int unrefs_ = 0;                             // unref() calls minus ref() calls, for verify()
  detail::ClosedFdGuard* fd_guard_ = nullptr;  // Io's closed-descriptor guard, while Io exist
  std::exception_ptr error_;
};

EVCXX_END_NAMESPACE
