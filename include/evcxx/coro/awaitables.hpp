#pragma once

// What a Task can co_await on a loop: timers, descriptors, signals, a WaitableEvent, a child's
// exit, a Stat change, a move to another loop and work on a LoopThread. Include <evcxx/coro.hpp>.

#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <coroutine>
#include <exception>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

#include "evcxx/child.hpp"
#include "evcxx/coro/task.hpp"
#include "evcxx/io.hpp"
#include "evcxx/loop.hpp"
#include "evcxx/loop_thread.hpp"
#include "evcxx/signal.hpp"
#include "evcxx/stat.hpp"
#include "evcxx/timer.hpp"
#include "evcxx/waitable_event.hpp"

EVCXX_BEGIN_NAMESPACE

// Thread-safety, for every awaitable below: co_await it in a Task running on the loop it names
// (std::logic_error otherwise); the Task resumes on that loop's thread only. resume_on() and
// submit() are the ways to another thread.
// Lifetime: an awaitable is co_awaited where it is made (`co_await sleep_for(loop, 1s)`): the
// awaiter, with its watcher, lives in the coroutine frame until the co_await returns, and is
// destroyed with the frame (its watcher stopped) when the Task is cancelled. The Loop must
// outlive the co_await, and a descriptor it watches must stay open until the loop stopped
// watching it (libev unregisters it lazily, in the loop's next iteration).

/// What co_await child_exit() gives: the waitpid() status of the child that terminated.
struct ChildExit {
  pid_t pid = 0;   ///< the child
  int status = 0;  ///< its waitpid() status word
  /// It exited (WIFEXITED).
  bool exited() const noexcept { return WIFEXITED(status); }
  /// Its exit status (WEXITSTATUS); -1 unless exited().
  int exit_status() const noexcept { return exited() ? WEXITSTATUS(status) : -1; }
  /// A signal killed it (WIFSIGNALED).
  bool signaled() const noexcept { return WIFSIGNALED(status); }
  /// The signal that killed it; 0 unless signaled().
  int term_signal() const noexcept { return signaled() ? WTERMSIG(status) : 0; }
};

/// What co_await stat_changed() gives: the path's attributes after and before the change.
struct StatChange {
  struct stat attr {};  ///< now (st_nlink 0: the path does not exist)
  struct stat prev {};  ///< before
  /// The path exists now.
  bool exists() const noexcept { return attr.st_nlink != 0; }
  /// The path existed before.
  bool existed() const noexcept { return prev.st_nlink != 0; }
};

namespace detail::coro {

// The watcher of an awaiter lives in the awaiter, in the coroutine frame: no allocation per
// co_await (its callback is bound at compile time). Each awaiter stops its watcher before
// resuming, so a later event cannot resume the coroutine where it waits for something else.

class SleepAwaiter {
 public:
  SleepAwaiter(Loop& loop, Timer::Duration after) noexcept : loop_(loop), after_(after) {}
  SleepAwaiter(const SleepAwaiter&) = delete;
  SleepAwaiter& operator=(const SleepAwaiter&) = delete;

  bool await_ready() const noexcept { return false; }
  template <class Promise>
  void await_suspend(std::coroutine_handle<Promise> waiter) {
    require_on(promise_of(waiter), loop_, "sleep_for()/sleep_until()");
    timer_.emplace(loop_, deferred, after_, Timer::Callback());
    timer_->template set_callback<&SleepAwaiter::fire>(*this);
    waiter_ = waiter;
    timer_->start();
  }
  void await_resume() const noexcept {}

 private:
  void fire() { waiter_.resume(); }

  Loop& loop_;
  Timer::Duration after_;
  std::coroutine_handle<> waiter_;
  std::optional<Timer> timer_;
};

class IoAwaiter {
 public:
  IoAwaiter(Loop& loop, int fd, IoEvents events) noexcept : loop_(loop), fd_(fd), events_(events) {}
  IoAwaiter(const IoAwaiter&) = delete;
  IoAwaiter& operator=(const IoAwaiter&) = delete;

  bool await_ready() const noexcept { return false; }
  template <class Promise>
  void await_suspend(std::coroutine_handle<Promise> waiter) {
    require_on(promise_of(waiter), loop_, "readable()/writable()");
    io_.emplace(loop_, deferred, fd_, events_, Io::Callback());
    io_->template set_callback<&IoAwaiter::fire>(*this);
    waiter_ = waiter;
    io_->start();
  }
  IoEvents await_resume() const noexcept { return fired_; }

 private:
  void fire(IoEvents fired) {
    fired_ = fired;
    io_->stop();  // NOLINT(bugprone-unchecked-optional-access): its own callback
    waiter_.resume();
  }

  Loop& loop_;
  int fd_;
  IoEvents events_;
  IoEvents fired_;
  std::coroutine_handle<> waiter_;
  std::optional<Io> io_;
};

class SignalAwaiter {
 public:
  SignalAwaiter(Loop& loop, int signum) noexcept : loop_(loop), signum_(signum) {}
  SignalAwaiter(const SignalAwaiter&) = delete;
  SignalAwaiter& operator=(const SignalAwaiter&) = delete;

  bool await_ready() const noexcept { return false; }
  template <class Promise>
  void await_suspend(std::coroutine_handle<Promise> waiter) {
    require_on(promise_of(waiter), loop_, "next_signal()");
    signal_.emplace(loop_, deferred, signum_, Signal::Callback());
    signal_->template set_callback<&SignalAwaiter::fire>(*this);
    waiter_ = waiter;
    signal_->start();
  }
  int await_resume() const noexcept { return signum_; }

 private:
  void fire() {
    signal_->stop();  // NOLINT(bugprone-unchecked-optional-access): its own callback
    waiter_.resume();
  }

  Loop& loop_;
  int signum_;
  std::coroutine_handle<> waiter_;
  std::optional<Signal> signal_;
};

class EventAwaiter {
 public:
  EventAwaiter(Loop& loop, WaitableEvent& event) noexcept : loop_(loop), event_(event) {}
  EventAwaiter(const EventAwaiter&) = delete;
  EventAwaiter& operator=(const EventAwaiter&) = delete;

  bool await_ready() const noexcept { return event_.is_set(); }
  template <class Promise>
  void await_suspend(std::coroutine_handle<Promise> waiter) {
    require_on(promise_of(waiter), loop_, "until_set()");
    const int fd = event_.fd();
    if (fd < 0) {
      throw std::system_error(errno, std::generic_category(),
                              "evcxx: until_set(): the WaitableEvent's fd could not be created");
    }
    io_.emplace(loop_, deferred, fd, IoEvent::readable, Io::Callback());
    io_->template set_callback<&EventAwaiter::fire>(*this);
    waiter_ = waiter;
    io_->start();
  }
  void await_resume() const noexcept {}

 private:
  void fire(IoEvents) {
    if (!event_.is_set()) return;  // cleared again before the loop got here: wait on
    io_->stop();                   // NOLINT(bugprone-unchecked-optional-access): its own callback
    waiter_.resume();
  }

  Loop& loop_;
  WaitableEvent& event_;
  std::coroutine_handle<> waiter_;
  std::optional<Io> io_;
};

class ChildAwaiter {
 public:
  ChildAwaiter(Loop& loop, pid_t pid) noexcept : loop_(loop), pid_(pid) {}
  ChildAwaiter(const ChildAwaiter&) = delete;
  ChildAwaiter& operator=(const ChildAwaiter&) = delete;

  bool await_ready() const noexcept { return false; }
  template <class Promise>
  void await_suspend(std::coroutine_handle<Promise> waiter) {
    require_on(promise_of(waiter), loop_, "child_exit()");
    child_.emplace(loop_, deferred, pid_, Child::Callback());
    child_->template set_callback<&ChildAwaiter::fire>(*this);
    waiter_ = waiter;
    child_->start();
  }
  ChildExit await_resume() const noexcept { return exit_; }

 private:
  void fire() {
    Child& child = *child_;  // NOLINT(bugprone-unchecked-optional-access): its own callback
    exit_.pid = child.rpid();
    exit_.status = child.rstatus();
    child.stop();
    waiter_.resume();
  }

  Loop& loop_;
  pid_t pid_;
  ChildExit exit_;
  std::coroutine_handle<> waiter_;
  std::optional<Child> child_;
};

class StatAwaiter {
 public:
  StatAwaiter(Loop& loop, std::string path, Stat::Duration interval) noexcept
      : loop_(loop), path_(std::move(path)), interval_(interval) {}
  StatAwaiter(const StatAwaiter&) = delete;
  StatAwaiter& operator=(const StatAwaiter&) = delete;

  bool await_ready() const noexcept { return false; }
  template <class Promise>
  void await_suspend(std::coroutine_handle<Promise> waiter) {
    require_on(promise_of(waiter), loop_, "stat_changed()");
    stat_.emplace(loop_, deferred, std::move(path_), interval_, Stat::Callback());
    stat_->template set_callback<&StatAwaiter::fire>(*this);
    waiter_ = waiter;
    stat_->start();
  }
  StatChange await_resume() const noexcept { return change_; }

 private:
  void fire() {
    Stat& stat = *stat_;  // NOLINT(bugprone-unchecked-optional-access): its own callback
    change_.attr = stat.attr();
    change_.prev = stat.prev();
    stat.stop();
    waiter_.resume();
  }

  Loop& loop_;
  std::string path_;
  Stat::Duration interval_;
  StatChange change_;
  std::coroutine_handle<> waiter_;
  std::optional<Stat> stat_;
};

class ResumeOnAwaiter {
 public:
  explicit ResumeOnAwaiter(Loop& target) noexcept : target_(target) {}
  ResumeOnAwaiter(const ResumeOnAwaiter&) = delete;
  ResumeOnAwaiter& operator=(const ResumeOnAwaiter&) = delete;

  bool await_ready() const noexcept { return false; }
  template <class Promise>
  bool await_suspend(std::coroutine_handle<Promise> waiter) {
    PromiseBase& promise = promise_of(waiter);
    Root* const root = promise.root;
    Loop& here = root->loop();
    if (&here == &target_) return false;  // already there: go on without a hop
    if (promise.pinned) {
      throw std::logic_error(
          "evcxx: resume_on() inside a when_all/when_any/with_timeout child, whose siblings stay "
          "on the parent's loop; use submit(), or spawn the work on the other loop");
    }
    root->depart(target_);
    Root::Arrival arrival(root, &target_, waiter);
    bool posted = false;
    try {
      posted = target_.try_post(std::move(arrival));
    } catch (...) {
      arrival.disarm();
      root->stay(here);
      throw;
    }
    if (!posted) {
      arrival.disarm();  // NOLINT(bugprone-use-after-move): try_post() left it as it was
      root->stay(here);
      throw LoopStopped("evcxx: resume_on() a Loop whose LoopThread was stopped");
    }
    // The other loop may already run the coroutine: nothing here touches its frame any more.
    return true;
  }
  void await_resume() const noexcept {}

 private:
  Loop& target_;
};

template <class T>
using Value = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

template <class Function>
class SubmitAwaiter {
 public:
  using Result = std::invoke_result_t<Function&>;

  SubmitAwaiter(LoopThread& worker, Function function)
      : worker_(worker), function_(std::move(function)) {}
  SubmitAwaiter(const SubmitAwaiter&) = delete;
  SubmitAwaiter& operator=(const SubmitAwaiter&) = delete;
  ~SubmitAwaiter() {
    if (state_ == nullptr) return;
    if (state_->holding) state_->home->unref();
    state_->holding = false;
    state_->abandoned = true;  // cancelled meanwhile: the reply resumes nothing
    state_->release();
  }

  bool await_ready() const noexcept { return false; }
  template <class Promise>
  void await_suspend(std::coroutine_handle<Promise> waiter) {
    PromiseBase& promise = promise_of(waiter);
    Loop& home = promise.root->loop();
    auto* state = new State(std::move(*function_), home, waiter);
    function_.reset();
    Work work{state};
    state->refs.fetch_add(1, std::memory_order_relaxed);
    bool posted = false;
    try {
      posted = worker_.try_post(std::move(work));
    } catch (...) {
      work.state = nullptr;
      state->refs.fetch_sub(1, std::memory_order_relaxed);
      state->release();
      throw;
    }
    if (!posted) {
      work.state = nullptr;
      state->refs.fetch_sub(1, std::memory_order_relaxed);
      state->release();
      throw LoopStopped("evcxx: submit() to a LoopThread that was stopped");
    }
    state_ = state;
    home.ref();  // the loop waits for the reply as for an active watcher
    state->holding = true;
  }
  Value<Result> await_resume() {
    if (state_->error) std::rethrow_exception(state_->error);
    if constexpr (std::is_void_v<Result>) {
      return {};
    } else {
      return std::move(*state_->value);
    }
  }

 private:
  struct State {
    State(Function&& f, Loop& loop, std::coroutine_handle<> w)
        : function(std::move(f)), home(&loop), waiter(w) {}
    void release() noexcept {
      if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
    }
    Function function;
    Loop* const home;
    const std::coroutine_handle<> waiter;
    std::atomic<int> refs{1};
    std::optional<Value<Result>> value;
    std::exception_ptr error;
    bool holding = false;    // home thread: the awaiter holds a reference of the home loop
    bool abandoned = false;  // home thread: the awaiter is gone
  };
  // Runs on the home loop with the worker's result.
  struct Reply {
    State* state;
    explicit Reply(State* s) noexcept : state(s) {}
    Reply(Reply&& other) noexcept : state(std::exchange(other.state, nullptr)) {}
    Reply& operator=(Reply&&) = delete;
    ~Reply() {
      if (state != nullptr) state->release();
    }
    void operator()() {
      State* const s = state;
      if (s->holding) s->home->unref();
      s->holding = false;
      if (!s->abandoned) s->waiter.resume();
    }
  };
  // Runs on the worker's loop.
  struct Work {
    State* state;
    explicit Work(State* s) noexcept : state(s) {}
    Work(Work&& other) noexcept : state(std::exchange(other.state, nullptr)) {}
    Work& operator=(Work&&) = delete;
    ~Work() {
      if (state != nullptr) state->release();
    }
    void operator()() {
      State* const s = state;
      try {
        if constexpr (std::is_void_v<Result>) {
          s->function();
          s->value.emplace();
        } else {
          s->value.emplace(s->function());
        }
      } catch (...) {
        s->error = std::current_exception();
      }
      Reply reply(std::exchange(state, nullptr));
      try {
        if (s->home->try_post(std::move(reply))) return;
      } catch (...) {  // out of memory: the home loop's destruction cancels the waiter
      }
    }
  };

  LoopThread& worker_;
  std::optional<Function> function_;
  State* state_ = nullptr;
};

}  // namespace detail::coro

/// Resumes after `duration` (a Timer on `loop`; zero waits for the next loop iteration).
/// For a Task running on `loop`; its thread resumes it.
/// Throws (at the co_await): std::invalid_argument for a negative, NaN or infinite duration;
/// std::logic_error when the Task runs on another loop.
template <class Rep, class Period>
detail::coro::SleepAwaiter sleep_for(Loop& loop, std::chrono::duration<Rep, Period> duration) {
  return detail::coro::SleepAwaiter(loop, std::chrono::duration_cast<Timer::Duration>(duration));
}

/// Resumes at `deadline` on libev's clock (a Timer for the time left from loop.now(), so a later
/// wall-clock jump does not move it); at the next iteration when it has passed.
/// Throws: as sleep_for().
inline detail::coro::SleepAwaiter sleep_until(Loop& loop, Timestamp deadline) {
  const Timer::Duration left = deadline - loop.now();
  return detail::coro::SleepAwaiter(loop, left.count() > 0 ? left : Timer::Duration::zero());
}

/// Resumes once `fd` is readable (or in error); gives the events that fired (see Io).
/// Throws: as the Io constructor; std::logic_error when the Task runs on another loop.
inline detail::coro::IoAwaiter readable(Loop& loop, int fd) {
  return detail::coro::IoAwaiter(loop, fd, IoEvent::readable);
}

/// A descriptor watched across many co_awaits: `IoWatch watch(loop, fd, IoEvent::readable);`
/// then `IoEvents fired = co_await watch;` in a loop. readable() registers and unregisters the
/// descriptor for every wait; an IoWatch keeps its Io registered while the Task comes back to it,
/// so a read loop costs what the same loop written with a callback costs. Level-triggered as Io
/// is: a co_await resumes at the next iteration while the descriptor is still readable. When the
/// events fire while no Task waits, the Io stops until the next co_await (nothing is lost: the
/// descriptor stays ready).
///
/// Thread-safety: loop thread; co_await it in a Task running on `loop` (std::logic_error
/// otherwise), one Task at a time (std::logic_error for a second one).
/// Lifetime: destroy it on the loop thread, after every co_await on it has ended (a local of the
/// Task that awaits it, declared before the loop, is); a Task cancelled while it waits on the
/// IoWatch stops waiting (the IoWatch may outlive it). It may outlive its Loop (the Io is then
/// detached).
class IoWatch {
 public:
  /// Watches `fd` for `events`, from the first co_await on.
  /// Throws: as the Io constructor.
  IoWatch(Loop& loop, int fd, IoEvents events)
      : loop_(loop), io_(loop, deferred, fd, events, Io::Callback()) {
    io_.set_callback<&IoWatch::fire>(*this);
  }
  /// Not copyable (nor movable): a waiting Task points at it.
  IoWatch(const IoWatch&) = delete;
  /// Not copyable (nor movable).
  IoWatch& operator=(const IoWatch&) = delete;
  /// Stops watching.
  ~IoWatch() = default;

  /// What `co_await watch` suspends on.
  class Awaiter {
   public:
    /// For operator co_await.
    explicit Awaiter(IoWatch& watch) noexcept : watch_(watch) {}
    /// Not copyable.
    Awaiter(const Awaiter&) = delete;
    /// Not copyable.
    Awaiter& operator=(const Awaiter&) = delete;
    /// A cancelled Task stops waiting.
    ~Awaiter() {
      if (suspended_ && watch_.waiter_ == suspended_) watch_.waiter_ = nullptr;
    }
    /// Always suspends: the events come from the loop.
    bool await_ready() const noexcept { return false; }
    /// Waits for the events; starts the Io unless it is still registered.
    template <class Promise>
    void await_suspend(std::coroutine_handle<Promise> waiter) {
      detail::coro::require_on(detail::coro::promise_of(waiter), watch_.loop_, "an IoWatch");
      if (watch_.waiter_) {
        throw std::logic_error("evcxx: an IoWatch is co_awaited by one Task at a time");
      }
      watch_.io_.start();
      watch_.waiter_ = waiter;
      suspended_ = waiter;
    }
    /// The events that fired (with error() for a closed descriptor, as for Io).
    IoEvents await_resume() const noexcept { return watch_.fired_; }

   private:
    IoWatch& watch_;
    std::coroutine_handle<> suspended_;
  };
  /// Suspends until the events fire; gives them.
  Awaiter operator co_await() & noexcept { return Awaiter(*this); }

  /// The watcher, for set(fd, events) and the rest of Io's members.
  Io& io() noexcept { return io_; }

 private:
  void fire(IoEvents fired) {
    if (!waiter_) {
      io_.stop();  // nobody waits: the next co_await starts it again
      return;
    }
    fired_ = fired;
    std::exchange(waiter_, nullptr).resume();
  }

  Loop& loop_;
  Io io_;
  std::coroutine_handle<> waiter_;
  IoEvents fired_;
};

/// Resumes once `fd` is writable (or in error); gives the events that fired.
/// Throws: as readable().
inline detail::coro::IoAwaiter writable(Loop& loop, int fd) {
  return detail::coro::IoAwaiter(loop, fd, IoEvent::writable);
}

/// Resumes after the process received `signum` (a Signal on `loop`); gives signum.
/// Throws: as the Signal constructor and start() (another loop owns the signal: logic_error).
inline detail::coro::SignalAwaiter next_signal(Loop& loop, int signum) {
  return detail::coro::SignalAwaiter(loop, signum);
}

/// Resumes once `event` is set (at once if it is): set() may come from any thread or a signal
/// handler, the Task resumes on `loop`'s thread. Watches event.fd().
/// Lifetime: `event` must outlive the co_await.
/// Throws: std::system_error when the event's fd cannot be created; std::logic_error as above.
inline detail::coro::EventAwaiter until_set(Loop& loop, WaitableEvent& event) {
  return detail::coro::EventAwaiter(loop, event);
}

/// Resumes once child `pid` terminated (a Child watcher: `loop` must be the default loop).
/// Start waiting before the loop next runs after fork(), as Child requires.
/// Throws: as the Child constructor (std::logic_error off the default loop).
inline detail::coro::ChildAwaiter child_exit(Loop& loop, pid_t pid) {
  return detail::coro::ChildAwaiter(loop, pid);
}

/// Resumes once the attributes of `path` change after the co_await began (a Stat; see Stat for
/// inotify and polling). Changes between two co_awaits are not seen: keep a Stat for those.
/// Allocates the Stat's copy of the path.
/// Throws: as the Stat constructor.
inline detail::coro::StatAwaiter stat_changed(Loop& loop, std::string path,
                                              Stat::Duration interval = Stat::Duration::zero()) {
  return detail::coro::StatAwaiter(loop, std::move(path), interval);
}

/// Continues the Task on `target`'s thread: the current loop's thread returns to its loop, and
/// `target`'s runs the rest (a post(), no allocation after the first). A no-op when the Task
/// already runs on target. What the Task wrote before is visible after (post()'s ordering).
/// Not inside a when_all/when_any/with_timeout child (std::logic_error): those stay on their
/// parent's loop.
/// Throws: LoopStopped when target's LoopThread was stopped (the Task stays where it was).
/// Lifetime: `target` must outlive the co_await (and the Task's stay there).
inline detail::coro::ResumeOnAwaiter resume_on(Loop& target) {
  return detail::coro::ResumeOnAwaiter(target);
}

/// resume_on(target.loop()).
inline detail::coro::ResumeOnAwaiter resume_on(LoopThread& target) {
  return detail::coro::ResumeOnAwaiter(target.loop());
}

/// LoopThread::submit() as an awaitable: runs `function` on `worker`'s thread and resumes the Task
/// on its own loop with the result (std::monostate for void), or rethrows what it threw.
/// Cost: one small allocation (the hand-off, which may outlive a cancelled Task) and two posts.
/// Throws: LoopStopped when the worker was stopped.
/// Lifetime: the Task's loop must outlive the worker's reply (do not destroy it while a
/// submit() is in flight); a cancelled Task's function still runs, its reply is dropped.
template <class Function>
detail::coro::SubmitAwaiter<std::decay_t<Function>> submit(LoopThread& worker,
                                                           Function&& function) {
  return detail::coro::SubmitAwaiter<std::decay_t<Function>>(worker,
                                                             std::forward<Function>(function));
}

EVCXX_END_NAMESPACE
