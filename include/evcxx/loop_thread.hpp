#pragma once

#include <chrono>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>

#include "evcxx/export.hpp"
#include "evcxx/loop.hpp"

EVCXX_BEGIN_NAMESPACE

/// A Loop running on its own std::thread, started on construction and stopped and joined on
/// destruction.
///
/// Other threads hand it work with post() and submit(); watchers for it are created, started and
/// destroyed by tasks that run on it.
///
/// Shutdown, two ways. Both first close the door: every task whose post()/submit() returned
/// before the call runs (a post racing it either runs or is refused, never lost); from then on
/// post() throws LoopStopped, try_post() returns false and submit() returns a future holding
/// LoopStopped, for the loop's own tasks and callbacks too.
///  - stop(): once the accepted tasks have run, the loop returns, even with watchers still active,
///    and the thread ends. Their callbacks never run again.
///  - stop_when_done(deadline): once the accepted tasks have run, the loop goes on until it is
///    done on its own, as Loop::run(Run::until_done) is: no active watcher holds a reference any
///    more (every watcher stopped, or unref()'d), which is what a C library running its own raw
///    libev watchers on the loop reaches after its disconnect callback. Every active watcher
///    holds exactly one reference (a Cleanup none, as in libev); evcxx's own machinery (the
///    post() wake-up, Io's closed-descriptor checks, a WaitableEvent without on_set) holds
///    none, and neither does the deadline. Then the thread ends, and ended_when_done() is true.
///    If the deadline passes first (or stop() is called meanwhile), it ends as stop() does, with
///    those watchers still active.
///
/// Which to pick: stop() to end now and abandon whatever the watchers were doing (a server's
/// listeners and idle connections); stop_when_done() when libraries or connections on the loop
/// have work in flight that must finish, such as replies to requests already sent: post their
/// disconnects or closes first, then call it, and give the deadline you can afford to wait.
/// join_when_done() does both steps and tells whether the loop finished in time.
///
/// Lifetime: either way the Loop itself lives until the LoopThread is destroyed, so watchers
/// created on it are detached safely then, and after join() other threads may stop raw libev
/// watchers still started on loop().native() (as freeing a C library's context does) until then.
///
/// Errors: an exception thrown by a task given to post() does not stop the thread: it goes to the
/// error handler (by default written to stderr with the thread's name), on the loop thread, and
/// the next task runs. The same holds for a throwing watcher callback. submit() puts its task's
/// exception in the future instead.
///
/// Memory ordering: for any thread X,
///  - everything X did before post(), a try_post() that returned true or submit() is visible to
///    that task when it runs on the loop thread;
///  - everything a submit()ted task did is visible to X once get() or wait() on its future
///    returned (or a wait_for()/wait_until() returned std::future_status::ready);
///  - everything X did before stop() or stop_when_done() is visible to the loop thread before
///    the thread ends;
///  - everything the loop thread did (every task and every callback, down to the last one a C
///    library ran before the loop was done) is visible to X once join() or join_when_done()
///    returned, once ~LoopThread returned, or once X saw ended_when_done() true.
///
/// Thread-safety: every member is for ANY thread, except where a comment says otherwise. As with
/// Loop::post(), the LoopThread must outlive every post()/submit() call still returning.
///
/// fork(): a child process has no copy of the loop thread (only the forking thread survives a
/// fork), so a LoopThread is of no use in the child: do not post to it, submit to it or destroy it
/// there (a child that continues past fork() should exec() or _exit()); make new LoopThreads in
/// the child instead.
class EVCXX_API LoopThread {
 public:
  /// Called on the loop thread with each exception a posted task or a watcher callback threw.
  using ErrorHandler = std::function<void(std::exception_ptr)>;

  /// Starts the thread, named `name` for debuggers (pthread_setname_np), with a Loop(flags).
  /// Throws: std::invalid_argument for a name longer than 15 bytes; what Loop(flags) throws
  /// (evcxx::Error if libev cannot create the loop, std::system_error EMFILE when no descriptor is
  /// left for it, std::bad_alloc); std::system_error if the thread cannot be started. Nothing is
  /// left running then.
  explicit LoopThread(std::string name = "evcxx-loop", ErrorHandler on_error = {},
                      LoopFlags flags = LoopFlags());
  /// stop() (unless stop_when_done() was called: then that goes on, up to its deadline), then
  /// waits for the thread to finish.
  /// On the loop thread itself (a task destroying its own LoopThread) it does not wait: the thread
  /// finishes the accepted tasks and then destroys the Loop itself.
  ~LoopThread();

  /// Not copyable (nor movable).
  LoopThread(const LoopThread&) = delete;
  /// Not copyable (nor movable).
  LoopThread& operator=(const LoopThread&) = delete;

  /// The loop: for tasks running on the loop thread, and for its ANY-thread members elsewhere.
  /// Loop::stop() and break_loop() only make run() return, and the thread then runs the loop
  /// again; LoopThread::stop() is what ends the thread.
  Loop& loop() noexcept { return *loop_; }

  /// Runs `task` on the loop thread: Loop::post() (FIFO per producer thread, no allocation for a
  /// small callable after the thread's first post).
  /// An exception the task throws goes to the error handler.
  /// Throws: LoopStopped after stop(); otherwise as Loop::post().
  template <class F, std::enable_if_t<detail::is_task_v<F>, int> = 0>
  void post(F&& task) {
    if (!try_post(std::forward<F>(task))) throw_stopped();
  }
  /// post() for a std::function.
  /// Throws: as the template.
  void post(std::function<void()> task);

  /// post() that returns false instead of throwing once stop() was called: for producers that
  /// may race the shutdown. A task refused (or whose post threw) is left untouched, as
  /// Loop::try_post() leaves it: it may be posted elsewhere.
  /// Throws: as post(), except LoopStopped.
  template <class F, std::enable_if_t<detail::is_task_v<F>, int> = 0>
  bool try_post(F&& task) {
    using Fn = std::decay_t<F>;
    if constexpr (std::is_pointer_v<Fn>) {
      if (task == nullptr) throw std::invalid_argument("evcxx: post() needs a task, not nullptr");
    }
    if constexpr (std::is_same_v<F, Fn>) {  // an rvalue: moved from only once queued
      return post_reporting(task);
    } else {
      Fn copy(std::forward<F>(task));
      return post_reporting(copy);
    }
  }
  /// try_post() for a std::function.
  /// Throws: as the template.
  bool try_post(std::function<void()> task);

  /// Runs f on the loop thread; the future gets its result or its exception.
  /// After stop() the future is ready at once and holds LoopStopped. Do not wait for the future on
  /// the loop thread.
  template <class F, std::enable_if_t<std::is_invocable_v<std::decay_t<F>&> &&
                                          std::is_constructible_v<std::decay_t<F>, F>,
                                      int> = 0>
  auto submit(F&& f) -> std::future<std::invoke_result_t<std::decay_t<F>&>> {
    using Fn = std::decay_t<F>;
    using Result = std::invoke_result_t<Fn&>;
    Promising<Fn, Result> task{std::promise<Result>(), Fn(std::forward<F>(f))};
    std::future<Result> future = task.promise.get_future();
    if (!loop_->try_post(std::move(task))) {  // not moved from when refused
      task.promise.set_exception(std::make_exception_ptr(stopped_error()));
    }
    return future;
  }

  /// Asks the thread to finish now: see "Shutdown" above. Idempotent; returns at once.
  /// Cuts a stop_when_done() in progress short.
  /// Thread-safety: ANY thread, the loop thread too.
  void stop() noexcept;
  /// Asks the thread to finish once its loop is done on its own, or at the deadline (a duration
  /// from now) at the latest: see "Shutdown" above.
  /// Returns at once; join() waits. An infinite duration waits for the loop to be done however
  /// long it takes. Only the first call counts (a later one neither extends nor shortens its
  /// deadline), and after stop() it changes nothing.
  /// Thread-safety: ANY thread, the loop thread too.
  /// Throws: std::invalid_argument for a negative or NaN duration.
  void stop_when_done(std::chrono::duration<double> deadline);
  /// stop_when_done() with the deadline as a steady_clock time point.
  /// Thread-safety: ANY thread, the loop thread too.
  void stop_when_done(std::chrono::steady_clock::time_point deadline) noexcept;
  /// stop_when_done(deadline), then join(); returns ended_when_done(): true when the loop was
  /// done before the deadline, false when the deadline (or a stop()) ended it first.
  /// Throws: as stop_when_done() and, on the loop thread, as join() (with nothing requested).
  bool join_when_done(std::chrono::duration<double> deadline);
  /// Waits until the thread has finished.
  /// Throws: std::logic_error if neither stop() nor stop_when_done() was called (it would wait
  /// forever) or if called on the loop thread itself (it would deadlock).
  void join();
  /// stop() or stop_when_done() was called.
  bool stopped() const noexcept;
  /// The thread has ended because its loop was done on its own after stop_when_done(); false
  /// while it runs and when stop() or the deadline ended it.
  bool ended_when_done() const noexcept;
  /// The caller is the loop thread.
  bool in_loop_thread() const noexcept;
  /// The name given to the constructor.
  const std::string& name() const noexcept;

 private:
  struct State;

  // What try_post() hands the queue: the task is moved into a Reporting only once queued.
  template <class Fn>
  struct ReportingSource {
    State* state;
    Fn* fn;
  };
  template <class Fn>
  struct Reporting {
    explicit Reporting(ReportingSource<Fn>&& source) noexcept(
        std::is_nothrow_move_constructible_v<Fn>)
        : state(source.state), fn(std::move(*source.fn)) {}
    State* state;
    Fn fn;
    void operator()() {
      try {
        fn();
      } catch (...) {
        report(*state, std::current_exception());
      }
    }
  };

  // Queues fn inside a Reporting, moving from fn only once the post is accepted.
  template <class Fn>
  bool post_reporting(Fn& fn) {
    ReportingSource<Fn> source{state_.get(), std::addressof(fn)};
    return loop_->post_erased(detail::task_ops_for<Reporting<Fn>, ReportingSource<Fn>>(),
                              std::addressof(source));
  }

  template <class Fn, class Result>
  struct Promising {
    std::promise<Result> promise;
    Fn fn;
    void operator()() {
      try {
        if constexpr (std::is_void_v<Result>) {
          fn();
          promise.set_value();
        } else {
          promise.set_value(fn());
        }
      } catch (...) {
        promise.set_exception(std::current_exception());
      }
    }
  };

  friend class LoopPool;

  static void report(State& state, std::exception_ptr error) noexcept;
  static void run(std::shared_ptr<State> state) noexcept;
  static void finish_when_done(State& state) noexcept;
  // stop(), unless stop_when_done() was called: destruction lets that one go on.
  void stop_unless_finishing() noexcept;
  void require_not_loop_thread(const char* operation) const;
  // now + deadline on the steady clock, saturating to time_point::max() (no deadline).
  static std::chrono::steady_clock::time_point deadline_from_now(
      std::chrono::duration<double> deadline);
  [[noreturn]] static void throw_stopped();
  static LoopStopped stopped_error();

  std::shared_ptr<State> state_;  // shared with the thread, which may outlive *this (see dtor)
  Loop* loop_;
  std::mutex join_mutex_;
  std::thread thread_;
};

EVCXX_END_NAMESPACE
