#pragma once

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

namespace evcxx {

// A Loop running on its own std::thread, started on construction and stopped and joined on
// destruction. Other threads hand it work with post() and submit(); watchers for it are created,
// started and destroyed by tasks that run on it.
//
// Shutdown. stop() closes the door: every task whose post()/submit() returned before stop() was
// called runs (a post racing stop() either runs or is refused, never lost); from then on post()
// throws LoopStopped, try_post() returns false and submit() returns a future holding LoopStopped.
// Once the accepted tasks have run, the loop returns (even with watchers still active) and the
// thread ends. The Loop itself lives until the LoopThread is destroyed, so watchers created on it
// are detached safely then.
//
// Errors. An exception thrown by a task given to post() does not stop the thread: it goes to the
// error handler (by default written to stderr with the thread's name), on the loop thread, and
// the next task runs. The same holds for a throwing watcher callback. submit() puts its task's
// exception in the future instead.
//
// Thread-safety: every member is for ANY thread, except where a comment says otherwise. As with
// Loop::post(), the LoopThread must outlive every post()/submit() call still returning.
class EVCXX_API LoopThread {
 public:
  // Called on the loop thread with each exception a posted task or a watcher callback threw.
  using ErrorHandler = std::function<void(std::exception_ptr)>;

  // Starts the thread, named `name` for debuggers (pthread_setname_np; at most 15 bytes, else
  // std::invalid_argument). Throws evcxx::Error if the loop cannot be created and
  // std::system_error if the thread cannot be started.
  explicit LoopThread(std::string name = "evcxx-loop", ErrorHandler on_error = {},
                      LoopFlags flags = LoopFlags());
  // stop(), then waits for the thread to finish. On the loop thread itself (a task destroying its
  // own LoopThread) it does not wait: the thread finishes the accepted tasks and then destroys
  // the Loop itself.
  ~LoopThread();

  LoopThread(const LoopThread&) = delete;
  LoopThread& operator=(const LoopThread&) = delete;

  // The loop: for tasks running on the loop thread, and for its ANY-thread members elsewhere.
  // Loop::stop() and break_loop() only make run() return, and the thread then runs the loop
  // again; LoopThread::stop() is what ends the thread.
  Loop& loop() noexcept { return *loop_; }

  // ANY thread: Loop::post() (FIFO per producer thread, no allocation for a small callable after
  // the thread's first post). Throws LoopStopped after stop().
  template <class F, std::enable_if_t<detail::is_task_v<F>, int> = 0>
  void post(F&& task) {
    if (!try_post(std::forward<F>(task))) throw_stopped();
  }
  void post(std::function<void()> task);

  // post() that returns false instead of throwing once stop() was called: for producers that
  // may race the shutdown.
  template <class F, std::enable_if_t<detail::is_task_v<F>, int> = 0>
  bool try_post(F&& task) {
    using Fn = std::decay_t<F>;
    if constexpr (std::is_pointer_v<Fn>) {
      if (task == nullptr) throw std::invalid_argument("evcxx: post() needs a task, not nullptr");
    }
    return loop_->try_post(Reporting<Fn>{state_.get(), Fn(std::forward<F>(task))});
  }
  bool try_post(std::function<void()> task);

  // Runs f on the loop thread; the future gets its result or its exception. After stop() the
  // future is ready at once and holds LoopStopped. Do not wait for the future on the loop thread.
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

  // Asks the thread to finish: see "Shutdown" above. Idempotent; returns at once. Safe on the
  // loop thread too.
  void stop() noexcept;
  // Waits until the thread has finished. Throws std::logic_error if stop() was not called (it
  // would wait forever) or if called on the loop thread itself (it would deadlock).
  void join();
  // stop() was called.
  bool stopped() const noexcept;
  // The caller is the loop thread.
  bool in_loop_thread() const noexcept;
  // The name given to the constructor.
  const std::string& name() const noexcept;

 private:
  struct State;

  template <class Fn>
  struct Reporting {
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

  static void report(State& state, std::exception_ptr error) noexcept;
  static void run(std::shared_ptr<State> state) noexcept;
  [[noreturn]] static void throw_stopped();
  static LoopStopped stopped_error();

  std::shared_ptr<State> state_;  // shared with the thread, which may outlive *this (see dtor)
  Loop* loop_;
  std::mutex join_mutex_;
  std::thread thread_;
};

}  // namespace evcxx
