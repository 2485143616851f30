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

class Async;
class Idle;
class IoEvents;
class LoopThread;
class WaitableEvent;

namespace detail {
class WatcherLink;
class ClosedFdGuard;
struct OnceWait;
}  // namespace detail

/// Thrown by post() once the Loop no longer accepts tasks: its LoopThread was stopped.
class EVCXX_API LoopStopped : public std::logic_error {
 public:
  /// The constructors of std::logic_error.
  using std::logic_error::logic_error;
};

/// libev's clock: ev_time(), wall-clock seconds as a double. Timestamps from ev_now() use it.
///
/// Thread-safety: now() is for ANY thread.
struct Clock {
  /// Seconds, as libev counts them.
  using rep = double;
  /// One second.
  using period = std::ratio<1>;
  /// Seconds as a double.
  using duration = std::chrono::duration<double>;
  /// A point on libev's clock.
  using time_point = std::chrono::time_point<Clock, duration>;
  /// The wall clock may jump.
  static constexpr bool is_steady = false;
  /// The current time (ev_time()).
  static time_point now() noexcept { return time_point(duration(ev_time())); }
};

/// A libev timestamp (double seconds since the epoch) as a typed time point.
using Timestamp = Clock::time_point;

/// How run() runs: ev_run()'s flags.
enum class Run : int {
  until_done = 0,  ///< until no active watchers remain or the loop is broken
  /// One iteration, blocking until at least one event; the event may be libev's own (a
  /// wake-up caught half-way), so no callback need have run: loop until what you wait for came.
  once = EVRUN_ONCE,
  nowait = EVRUN_NOWAIT,  ///< one iteration, never blocking
};

/// How break_loop() breaks: ev_break()'s argument.
enum class Break : int {
  cancel = EVBREAK_CANCEL,  ///< undo an earlier break
  one = EVBREAK_ONE,        ///< the innermost run() returns
  all = EVBREAK_ALL,        ///< every nested run() returns
};

/// One libev backend.
enum class Backend : unsigned {
  select = EVBACKEND_SELECT,      ///< select(2)
  poll = EVBACKEND_POLL,          ///< poll(2)
  epoll = EVBACKEND_EPOLL,        ///< Linux epoll(7)
  kqueue = EVBACKEND_KQUEUE,      ///< the BSDs' and macOS's kqueue(2)
  devpoll = EVBACKEND_DEVPOLL,    ///< Solaris /dev/poll
  port = EVBACKEND_PORT,          ///< Solaris event ports
  linuxaio = EVBACKEND_LINUXAIO,  ///< Linux AIO
  iouring = EVBACKEND_IOURING,    ///< Linux io_uring
};

/// A set of backends, as the supported / recommended / embeddable queries return them.
class Backends : public Flags<Backends, Backend> {
 public:
  /// The constructors of Flags.
  using Flags::Flags;
};

/// A set of two backends.
constexpr Backends operator|(Backend a, Backend b) noexcept {
  return Backends(a) | Backends(b);
}

/// One of libev's loop flags (EVFLAG_*), for LoopFlags.
enum class LoopFlag : unsigned {
  noenv = EVFLAG_NOENV,  ///< ignore the LIBEV_FLAGS environment variable
  /// libev notices a fork itself and recreates the loop's descriptors in the next iteration,
  /// where it abort()s if the process is out of descriptors; after Loop::notify_fork() run() checks
  /// first.
  forkcheck = EVFLAG_FORKCHECK,
  noinotify = EVFLAG_NOINOTIFY,  ///< Stat polls instead of using inotify
  signalfd = EVFLAG_SIGNALFD,    ///< Signal watchers use signalfd
  nosigmask = EVFLAG_NOSIGMASK,  ///< libev leaves the signal mask alone
  notimerfd = EVFLAG_NOTIMERFD,  ///< no timerfd for noticing wall-clock jumps
};

/// Flags for a new loop: ev_loop_new()'s argument, typed: LoopFlag values and the backends to
/// choose from.
///
/// Empty (EVFLAG_AUTO): libev picks the backend. from_raw() takes libev's bits as they are.
///
/// Thread-safety: a value type; constexpr throughout.
class LoopFlags : public Flags<LoopFlags, LoopFlag> {
 public:
  /// The constructors of Flags: the empty set, and a set of one LoopFlag.
  using Flags::Flags;
  /// These backends to choose from, and no flag.
  constexpr LoopFlags(Backends b) noexcept : Flags(detail::raw_bits_t{}, b.raw()) {}  // NOLINT
  /// This backend, and no flag.
  constexpr LoopFlags(Backend b) noexcept : LoopFlags(Backends(b)) {}  // NOLINT

  /// The backends among the flags (none: libev picks).
  constexpr Backends backends() const noexcept {
    return Backends::from_raw(raw() & unsigned{EVBACKEND_MASK});
  }

  // The old spellings of the LoopFlag values, kept for one release.
  /// LoopFlag::noenv, as a set. \deprecated Use LoopFlag::noenv; kept for one release.
  [[deprecated("evcxx: use LoopFlag::noenv")]] static constexpr LoopFlags noenv() noexcept {
    return LoopFlag::noenv;
  }
  /// LoopFlag::forkcheck, as a set. \deprecated Use LoopFlag::forkcheck; kept for one release.
  [[deprecated("evcxx: use LoopFlag::forkcheck")]] static constexpr LoopFlags forkcheck() noexcept {
    return LoopFlag::forkcheck;
  }
  /// LoopFlag::noinotify, as a set. \deprecated Use LoopFlag::noinotify; kept for one release.
  [[deprecated("evcxx: use LoopFlag::noinotify")]] static constexpr LoopFlags noinotify() noexcept {
    return LoopFlag::noinotify;
  }
  /// LoopFlag::signalfd, as a set. \deprecated Use LoopFlag::signalfd; kept for one release.
  [[deprecated("evcxx: use LoopFlag::signalfd")]] static constexpr LoopFlags signalfd() noexcept {
    return LoopFlag::signalfd;
  }
  /// LoopFlag::nosigmask, as a set. \deprecated Use LoopFlag::nosigmask; kept for one release.
  [[deprecated("evcxx: use LoopFlag::nosigmask")]] static constexpr LoopFlags nosigmask() noexcept {
    return LoopFlag::nosigmask;
  }
  /// LoopFlag::notimerfd, as a set. \deprecated Use LoopFlag::notimerfd; kept for one release.
  [[deprecated("evcxx: use LoopFlag::notimerfd")]] static constexpr LoopFlags notimerfd() noexcept {
    return LoopFlag::notimerfd;
  }
};

/// A set of a flag and a flag.
constexpr LoopFlags operator|(LoopFlag a, LoopFlag b) noexcept {
  return LoopFlags(a) | LoopFlags(b);
}
/// A set of a flag and a backend.
constexpr LoopFlags operator|(LoopFlag a, Backend b) noexcept {
  return LoopFlags(a) | LoopFlags(b);
}
/// A set of a backend and a flag.
constexpr LoopFlags operator|(Backend a, LoopFlag b) noexcept {
  return LoopFlags(a) | LoopFlags(b);
}
/// A set of a flag and backends.
constexpr LoopFlags operator|(LoopFlag a, Backends b) noexcept {
  return LoopFlags(a) | LoopFlags(b);
}
/// A set of backends and a flag.
constexpr LoopFlags operator|(Backends a, LoopFlag b) noexcept {
  return LoopFlags(a) | LoopFlags(b);
}

/// libev's version, as linked at run time.
struct Version {
  int major;  ///< ev_version_major()
  int minor;  ///< ev_version_minor()
};

/// One libev event loop, owned or borrowed.
///
/// Thread-safety: a Loop belongs to the thread that runs it ("the loop thread"); every member is
/// for that thread (or for any one thread while the loop is not running) unless its comment says
/// ANY thread. Watchers are created, started, stopped and destroyed on the loop thread too.
///
/// Memory ordering: post() and stop() are release operations. Everything a thread wrote before
/// post(task) happens-before task runs; everything a thread wrote before stop() happens-before the
/// run() that it makes return has returned.
///
/// Lifetime: destroy a Loop on its thread, outside run(), once no other thread can still be inside
/// post() or stop() on it (a call may still be returning after its task ran). Watchers may outlive
/// it: they are detached (see watcher.hpp).
class EVCXX_API Loop {
 public:
  /// A new loop, ev_loop_new(EVFLAG_AUTO).
  /// Its wakeup descriptor (eventfd or pipe) is created here, so that post(), stop() and Async
  /// never need one later.
  /// Throws: evcxx::Error if libev cannot create one; std::system_error (EMFILE or ENFILE) when no
  /// descriptor is left for the loop's wakeup; std::bad_alloc when out of memory (libev's own
  /// allocations abort instead: libev offers no way to fail them).
  Loop();
  /// A new loop with these flags and backends.
  /// Throws: evcxx::Error if libev cannot create one (for example when none of the requested
  /// backends is supported, or there is no descriptor left for the backend); std::system_error as
  /// Loop() does.
  explicit Loop(LoopFlags flags);
  /// Wraps a loop created elsewhere (ev_loop_new, ev_default_loop or foreign code).
  /// Throws: std::invalid_argument on nullptr; std::system_error (EMFILE) when no descriptor is
  /// free for the wakeup (checked even if the loop already has one).
  /// Lifetime: the Loop never destroys the borrowed ev_loop.
  explicit Loop(struct ev_loop* borrowed);
  /// The process default loop, ev_default_loop(0): the only loop that supports Child watchers.
  /// Throws: evcxx::Error if libev cannot create it; std::system_error (EMFILE) when creating it
  /// needs two descriptors (backend and wakeup) and the process does not have them (a later call
  /// tries again).
  /// Lifetime: created on first use; never destroyed.
  static Loop& default_loop();

  /// Detaches every watcher still attached (each becomes inactive; see watcher.hpp), drops tasks
  /// that were posted but never run, runs Cleanup watchers and destroys an owned loop.
  /// Must not run inside this loop's run(), nor inside a callback that invoke_pending() or an
  /// Embed's sweep() of this loop runs.
  ~Loop();

  /// Not copyable (nor movable).
  Loop(const Loop&) = delete;
  /// Not copyable (nor movable).
  Loop& operator=(const Loop&) = delete;

  /// Runs the loop (ev_run); returns true when it returned with watchers still active (it was
  /// broken or stopped).
  /// If a callback or posted task threw, the loop is broken after the events already due have run,
  /// and run() rethrows the first such exception; the loop stays usable.
  /// Throws: what a callback or posted task threw (the first one); after fork(),
  /// std::system_error (EMFILE) without running while the process has no descriptor free for the
  /// wakeup libev recreates then (libev would abort); the fork is handled by the first run() that
  /// has one.
  bool run(Run how = Run::until_done);
  /// ev_break: makes the innermost (or every) run() return after the current iteration.
  /// Thread-safety: loop thread only; use stop() from anywhere else.
  void break_loop(Break how = Break::one) noexcept;
  /// The current run() returns soon; if the loop is not running, the next run() returns after one
  /// iteration.
  /// Thread-safety: ANY thread, and async-signal-safe.
  void stop() noexcept;
  /// Runs `task` on the loop thread, in FIFO order per producer thread.
  /// Tasks from different threads have no order between them, so a task that must follow another
  /// thread's should be posted by that thread or by the earlier task itself. Tasks posted before
  /// run() are run by it; a task posted by a task runs in a later batch (after the loop polled for
  /// I/O). A throwing task is handled like a throwing callback (see run()).
  /// Cost: a thread's first post to a Loop takes a lock and a small allocation, once; after that
  /// posting takes no lock and no allocation for a task that fits in detail::task_inline_size
  /// bytes, and the loop is woken once per batch (how: docs/post.md). At a thread's exit, a
  /// thread_local destructor may still post (in order); if evcxx's own thread-local state is
  /// already gone by then, each such post takes the lock and an allocation.
  /// Thread-safety: ANY thread (not signal handlers).
  /// Throws: std::invalid_argument for an empty task; LoopStopped once the Loop's LoopThread was
  /// stopped; std::bad_alloc (nothing queued, the task not moved from) when the thread's lane or a
  /// boxed task cannot be allocated.
  /// Lifetime: tasks still queued when the Loop is destroyed are destroyed without running. The
  /// Loop must outlive every post() call, including one whose task has already run (the call may
  /// still be returning).
  void post(std::function<void()> task);
  /// post() for any callable, without std::function (so move-only callables work too).
  /// A callable of up to detail::task_inline_size bytes with a noexcept move is stored inline.
  /// Thread-safety, Throws and Lifetime: as post(std::function).
  template <class F, std::enable_if_t<detail::is_task_v<F>, int> = 0>
  void post(F&& task) {
    if (!try_post(std::forward<F>(task))) throw_stopped();
  }
  /// post() that returns false instead of throwing LoopStopped, leaving task untouched when it
  /// returns false or throws.
  /// Thread-safety: ANY thread (not signal handlers).
  /// Throws: as post(), except LoopStopped.
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
  /// try_post() for a std::function.
  /// Thread-safety and Throws: as the template.
  bool try_post(std::function<void()> task);

  /// The underlying loop, for code that already uses libev.
  /// Thread-safety: ANY thread.
  struct ev_loop* native() const noexcept {
    return loop_;
  }
  /// The evcxx Loop that owns or first wrapped `loop` (the earliest such Loop still alive), or
  /// nullptr when there is none: for a C library's callback that receives only the ev_loop*.
  /// A Loop stops being found once its destructor has begun.
  /// Thread-safety: ANY thread (not signal handlers); the caller must know that the Loop it gets
  /// is not being destroyed meanwhile (from a callback on that loop's thread it cannot be).
  static Loop* from_native(struct ev_loop* loop) noexcept;

  /// True when this Loop created its ev_loop and will destroy it.
  /// Thread-safety: ANY thread.
  bool owns_loop() const noexcept { return owned_; }
  /// True for ev_default_loop()'s loop.
  /// Thread-safety: ANY thread.
  bool is_default() const noexcept;

  /// The time of the current iteration (ev_now).
  Timestamp now() const noexcept { return Timestamp(Clock::duration(ev_now(loop_))); }
  /// Refreshes now() to the current time (ev_now_update).
  void update_now() noexcept { ev_now_update(loop_); }
  /// ev_suspend: pauses timers across a process suspension. Called in pairs with resume().
  void suspend() noexcept { ev_suspend(loop_); }
  /// ev_resume: resumes timers after suspend(). Called in pairs with suspend().
  void resume() noexcept { ev_resume(loop_); }
  /// Number of loop iterations so far.
  unsigned iteration() const noexcept { return ev_iteration(loop_); }
  /// How deeply run() is nested right now.
  unsigned depth() const noexcept { return ev_depth(loop_); }
  /// Number of watchers with an event waiting for its callback.
  unsigned pending_count() const noexcept { return ev_pending_count(loop_); }
  /// Runs the pending callbacks now (ev_invoke_pending).
  /// Throws: the first exception one of them threw.
  void invoke_pending();
  /// The backend in use.
  Backend backend() const noexcept { return static_cast<Backend>(ev_backend(loop_)); }
  /// Call in the child after fork() before using the loop there (ev_loop_fork).
  /// Use this rather than ev_loop_fork(native()): the next run() then checks that libev can
  /// recreate the loop's wakeup descriptor (see run()).
  void notify_fork() noexcept;
  /// The old name of notify_fork(). \deprecated Use notify_fork(); kept for one release.
  [[deprecated("evcxx: use Loop::notify_fork()")]] void fork() noexcept { notify_fork(); }
  /// ev_ref: undoes one unref(), so that an active watcher keeps run() from returning again.
  /// Call it before stopping a watcher that unref() was called for.
  void ref() noexcept {
    --unrefs_;
    ev_ref(loop_);
  }
  /// ev_unref: one active watcher no longer keeps run() from returning.
  /// Call it after starting a watcher that should not keep the loop alive.
  void unref() noexcept {
    ++unrefs_;
    ev_unref(loop_);
  }
  /// Latency/throughput trade-off for I/O (ev_set_io_collect_interval).
  /// Throws: std::invalid_argument for a negative or NaN interval.
  void set_io_collect_interval(std::chrono::duration<double> interval);
  /// Latency/throughput trade-off for timeouts (ev_set_timeout_collect_interval).
  /// Throws: std::invalid_argument for a negative or NaN interval.
  void set_timeout_collect_interval(std::chrono::duration<double> interval);
  /// Busy polling, for latency-critical loops: before it blocks, the loop spins for up to `spin`
  /// watching for post(), stop(), WaitableEvent::set() and Async::send() on its started Asyncs.
  /// What it sees it serves at once, inside the spin: the tasks and callbacks run there and the
  /// spin goes on (unless tasks posted by those tasks are left, which run after the loop polled
  /// for I/O, as post() promises), so that neither side makes a system call (the sender skips its
  /// wake-up write, the loop its poll). While it serves, the loop watches its task queue itself,
  /// so a post() to it is only the queueing (no wake-up at all). Under Run::once, or with an
  /// invoke-pending hook, the first
  /// send ends the spin instead and the iteration handles it as usual. break_loop(), stop() and a
  /// callback that throws end the spin at once (an ev_break() on native() only when it is over).
  /// Zero, the default, turns it off; a change takes effect at the next iteration.
  /// The loop does not spin where it would not block: with an event pending or an Idle active,
  /// once broken in this iteration, when no evcxx watcher keeps it running and under Run::nowait;
  /// nor outside run() (an ev_run() of native(), an Embed's sweep). I/O, timers, signals and sends
  /// to raw ev_async watchers that come meanwhile, and the timers and I/O that served callbacks
  /// start, are handled when the spin ends, up to `spin` late (Loop::now() stays the time the
  /// iteration started): keep it short, and use it only where the loop thread has a core of its
  /// own (a spin on a shared core delays the very threads that would wake it). The spin is a
  /// lowest-priority prepare watcher, so it runs inside an invoke-pending hook and before the
  /// release hook (with their lock held).
  /// Thread-safety: loop thread, also inside a callback.
  /// Throws: std::invalid_argument for a negative, infinite or NaN spin.
  void set_busy_poll(std::chrono::duration<double> spin);
  /// The spin set by set_busy_poll(); zero when busy polling is off.
  /// Thread-safety: loop thread.
  std::chrono::duration<double> busy_poll() const noexcept;
  /// ev_verify: checks libev's internal consistency.
  /// It counts evcxx's watchers only: raw libev watchers of C code that hold the loop too may make
  /// it throw where libev would not (call ev_verify(native()) yourself then).
  /// Throws: std::logic_error where libev would abort because unref() was called more often than
  /// ref() plus the active watchers hold.
  void verify();

  /// Runs the loop under the user's own mutex (libev's ev_set_loop_release_cb): release runs
  /// before the loop blocks, acquire after it wakes.
  /// Both or neither; empty functions uninstall. They take over ev_userdata() of the loop. They
  /// must not throw (an exception is captured and rethrown by run()).
  void set_release_hooks(std::function<void()> release, std::function<void()> acquire);
  /// Replaces how pending callbacks are invoked (ev_set_invoke_pending_cb).
  /// The hook normally locks something and calls invoke_pending(). An empty function restores
  /// libev's default.
  void set_invoke_pending_hook(std::function<void(Loop&)> hook);

  /// Waits once for `events` on `fd` or for `timeout`, whichever comes first, then calls
  /// `callback` once with what fired: the events (with error() when the descriptor is closed under
  /// it, as for Io), or an empty IoEvents on timeout. libev's ev_once, with evcxx's watchers.
  /// A negative fd waits for the timeout only; a negative timeout waits for the descriptor only.
  /// The callback is handled like a watcher's (its exception reaches run()). Waits still open
  /// when the Loop is destroyed are dropped without a call.
  /// Thread-safety: loop thread.
  /// Throws: std::invalid_argument for an empty callback, a NaN timeout, a negative fd together
  /// with a negative timeout (it would never fire), or an fd with empty or invalid events; what
  /// Io's constructor throws for the descriptor; std::logic_error on a Loop being destroyed;
  /// std::bad_alloc.
  void once(int fd, IoEvents events, std::chrono::duration<double> timeout,
            std::function<void(IoEvents)> callback);

  /// Runs `body` as evcxx runs a callback: an exception it throws is captured as a watcher
  /// callback's is (run() or invoke_pending() rethrows the first one; take_exception() takes it)
  /// and call_guarded() returns false, so that nothing unwinds into a C library's frames. For the
  /// body of a C library's callback on this loop (hiredis, libcurl): `[](redisAsyncContext* c,
  /// void* reply, void* data) { loop.call_guarded([&] { on_reply(reply); }); }`.
  /// Returns: true when `body` returned normally.
  /// Thread-safety: loop thread (where the C library calls back).
  template <class Body>
  bool call_guarded(Body&& body) noexcept {
    try {
      std::forward<Body>(body)();
      return true;
    } catch (...) {
      capture_exception(std::current_exception());
      return false;
    }
  }

  /// Takes out of the loop the first exception a callback threw that no run()/invoke_pending()
  /// has rethrown yet; for code that drives native() with ev_run() itself.
  std::exception_ptr take_exception() noexcept;

  /// The backends libev was built with (ev_supported_backends).
  /// Thread-safety: ANY thread (static).
  static Backends supported_backends() noexcept {
    return Backends::from_raw(ev_supported_backends());
  }
  /// The backends libev recommends on this system (ev_recommended_backends).
  /// Thread-safety: ANY thread (static).
  static Backends recommended_backends() noexcept {
    return Backends::from_raw(ev_recommended_backends());
  }
  /// The backends an Embed can embed (ev_embeddable_backends), without io_uring.
  /// libev (4.33) lists io_uring as embeddable, but an io_uring loop has no backend descriptor and
  /// ev_embed_start() aborts on it.
  /// Thread-safety: ANY thread (static).
  static Backends embeddable_backends() noexcept {
    return Backends::from_raw(ev_embeddable_backends() & ~unsigned{EVBACKEND_IOURING});
  }
  /// The libev this program runs with (ev_version_major / ev_version_minor).
  /// Thread-safety: ANY thread (static).
  static Version version() noexcept { return Version{ev_version_major(), ev_version_minor()}; }

  /// Remembers the first exception and breaks the loop; called by watchers and tasks.
  /// Thread-safety: loop thread.
  void capture_exception(std::exception_ptr error) noexcept;

 private:
  struct Impl;
  friend class detail::WatcherLink;
  friend class LoopThread;
  friend class WaitableEvent;
  friend class Embed;  // sweep() must not run the inner loop inside its release hook
  friend class Async;  // the busy poll watches the sends of started Asyncs
  friend class Idle;   // and does not spin while an Idle is active
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
  // Loop thread: starts or stops an Async, listing the started ones for the busy poll.
  void start_async(Async& async) noexcept;
  void stop_async(Async& async) noexcept;
  // Loop thread: an Idle was started (+1) or stopped (-1) through evcxx.
  void count_active_idle(int change) noexcept;
  // The busy poll's prepare callback: spins until the spin is over, serving the sends it sees
  // (or, under Run::once or an invoke-pending hook, until the first send).
  void spin_before_block() noexcept;
  // Whether the loop is about to block (the busy poll's condition for spinning).
  bool would_block() const noexcept;
  // Whether the wakeup or a started Async has a send the loop has not processed.
  bool has_sends() const noexcept;
  // Clears every such send and makes its watcher pending, as libev's wake-up does; true if any.
  bool take_sends() noexcept;
  bool take_send(ev_async& async) noexcept;
  // Loop thread: queued tasks keep run() going (ev_ref), like an active watcher, or no longer.
  void hold_ref_for_tasks(bool pending) noexcept;
  // The busy poll stops serving: the task queue its batches left awake settles (goes to sleep,
  // or asks for the next batch) and the tasks' reference is brought up to date.
  void stop_serving_spin() noexcept;
  // Whether an active watcher of evcxx's (or queued tasks) keeps run() from returning.
  bool has_referencing_watchers() const noexcept;
  // The waits once() started and that have not fired yet (see once.cpp).
  detail::OnceWait*& once_waits() noexcept;

  struct ev_loop* loop_;
  bool owned_;
  std::unique_ptr<Impl> impl_;
  detail::WatcherLink* watchers_ = nullptr;    // intrusive list of attached watchers
  int unrefs_ = 0;                             // unref() calls minus ref() calls, for verify()
  detail::ClosedFdGuard* fd_guard_ = nullptr;  // Io's closed-descriptor guard, made by the first Io
  std::exception_ptr error_;
};

EVCXX_END_NAMESPACE
