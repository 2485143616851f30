#pragma once

// when_all, when_any and with_timeout: several Tasks awaited at once, on the awaiting Task's loop.
// Include <evcxx/coro.hpp>.

#include <coroutine>
#include <cstddef>
#include <exception>
#include <optional>
#include <stdexcept>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>

#include "evcxx/coro/awaitables.hpp"
#include "evcxx/coro/task.hpp"
#include "evcxx/timer.hpp"

EVCXX_BEGIN_NAMESPACE
namespace detail::coro {

template <class T>
struct IsTask : std::false_type {};
template <class T>
struct IsTask<Task<T>> : std::true_type {};

// A named Task is borrowed (it keeps its frame), a temporary one is owned by the awaiter.
template <class T>
using Held = std::conditional_t<std::is_lvalue_reference_v<T>, std::remove_cvref_t<T>&,
                                std::remove_cvref_t<T>>;
template <class T>
using ValueOf = Value<typename std::remove_cvref_t<T>::value_type>;

// Makes `task` a child of the combinator `completion` under `parent`, ready to be resumed.
template <class T>
std::coroutine_handle<> adopt(Task<T>& task, PromiseBase& parent, Completion& completion,
                              std::size_t index) {
  if (!task.valid()) throw std::invalid_argument("evcxx: an empty Task given to a combinator");
  auto& child = task.native_handle().promise();
  if (child.started) throw std::logic_error("evcxx: a Task given to a combinator already started");
  child.started = true;
  child.root = parent.root;
  child.completion = &completion;
  child.index = index;
  child.pinned = true;
  return task.native_handle();
}

template <class T>
Value<T> take_value(Task<T>& task) {
  if constexpr (std::is_void_v<T>) {
    task.native_handle().promise().take();
    return {};
  } else {
    return task.native_handle().promise().take();
  }
}

// when_all (Any = false) and when_any (Any = true) over the tasks in Held form.
template <bool Any, class... Tasks>
class Combinator final : public Completion {
 public:
  template <class... Args>
  explicit Combinator(Args&&... tasks) : tasks_(std::forward<Args>(tasks)...) {}
  Combinator(const Combinator&) = delete;
  Combinator& operator=(const Combinator&) = delete;
  // Children still suspended (the parent was cancelled) are destroyed with it.
  ~Combinator() { destroy_unfinished(npos); }

  bool await_ready() const noexcept { return sizeof...(Tasks) == 0; }
  template <class Promise>
  bool await_suspend(std::coroutine_handle<Promise> parent) {
    PromiseBase& outer = promise_of(parent);
    parent_ = parent;
    std::coroutine_handle<> children[sizeof...(Tasks) + 1];  // + 1: no zero-length array
    std::apply(
        [&](auto&... task) {
          std::size_t i = 0;
          ((children[i] = adopt(task, outer, *this, i), ++i), ...);
        },
        tasks_);
    remaining_ = sizeof...(Tasks);
    starting_ = true;
    // Each child runs until it first suspends; one that finishes the combinator (when_any's first,
    // when_all's first failure) stops the others from starting.
    for (std::size_t i = 0; i < sizeof...(Tasks) && !finished_; ++i) {
      started_[i] = true;
      children[i].resume();
    }
    starting_ = false;
    return !finished_;
  }
  auto await_resume() {
    if (error_) std::rethrow_exception(error_);
    if constexpr (Any) {
      return result_any(std::index_sequence_for<Tasks...>{});
    } else {
      return result_all(std::index_sequence_for<Tasks...>{});
    }
  }

  std::coroutine_handle<> child_done(std::size_t index) noexcept override {
    done_[index] = true;
    --remaining_;
    if (!finished_) {
      std::exception_ptr failed = child_error(index);
      if (Any || failed) {
        finished_ = true;
        winner_ = index;
        error_ = std::move(failed);
        destroy_unfinished(index);  // the losers, before the parent resumes
      } else if (remaining_ == 0) {
        finished_ = true;
      }
    }
    if (finished_ && !starting_) return parent_;
    return std::noop_coroutine();
  }

 private:
  static constexpr std::size_t npos = static_cast<std::size_t>(-1);

  std::exception_ptr child_error(std::size_t index) noexcept {
    std::exception_ptr error;
    for_each_task([&](auto& task, std::size_t i) {
      if (i == index) error = task.native_handle().promise().error;
    });
    return error;
  }
  void destroy_unfinished(std::size_t keep) noexcept {
    for_each_task([&](auto& task, std::size_t i) {
      if (i != keep && !done_[i]) task.reset();
    });
  }
  template <class F>
  void for_each_task(F&& f) {
    std::apply(
        [&](auto&... task) {
          std::size_t i = 0;
          ((f(task, i), ++i), ...);
        },
        tasks_);
  }
  template <std::size_t... I>
  std::tuple<ValueOf<Tasks>...> result_all(std::index_sequence<I...>) {
    return std::tuple<ValueOf<Tasks>...>(take_value(std::get<I>(tasks_))...);
  }
  template <std::size_t... I>
  std::variant<ValueOf<Tasks>...> result_any(std::index_sequence<I...>) {
    std::optional<std::variant<ValueOf<Tasks>...>> result;
    ((winner_ == I ? static_cast<void>(
                         result.emplace(std::in_place_index<I>, take_value(std::get<I>(tasks_))))
                   : static_cast<void>(0)),
     ...);
    return std::move(*result);
  }

  std::tuple<Held<Tasks>...> tasks_;
  std::coroutine_handle<> parent_;
  bool started_[sizeof...(Tasks) + 1] = {};
  bool done_[sizeof...(Tasks) + 1] = {};
  std::size_t remaining_ = 0;
  std::size_t winner_ = npos;
  std::exception_ptr error_;
  bool starting_ = false;
  bool finished_ = false;
};

template <class T>
class TimeoutAwaiter final : public Completion {
 public:
  using Result = std::conditional_t<std::is_void_v<typename std::remove_cvref_t<T>::value_type>,
                                    bool, std::optional<ValueOf<T>>>;

  template <class Arg>
  TimeoutAwaiter(Loop& loop, Timer::Duration limit, Arg&& task)
      : loop_(loop), limit_(limit), task_(std::forward<Arg>(task)) {}
  TimeoutAwaiter(const TimeoutAwaiter&) = delete;
  TimeoutAwaiter& operator=(const TimeoutAwaiter&) = delete;
  ~TimeoutAwaiter() {
    if (!child_done_) task_.reset();
  }

  bool await_ready() const noexcept { return false; }
  template <class Promise>
  bool await_suspend(std::coroutine_handle<Promise> parent) {
    PromiseBase& outer = promise_of(parent);
    require_on(outer, loop_, "with_timeout()");
    std::coroutine_handle<> child = adopt(task_, outer, *this, 0);
    timer_.emplace(loop_, deferred, limit_, Timer::Callback());
    timer_->template set_callback<&TimeoutAwaiter::expire>(*this);
    parent_ = parent;
    timer_->start();
    starting_ = true;
    child.resume();
    starting_ = false;
    return !child_done_;
  }
  Result await_resume() {
    if (timed_out_) return Result();
    if constexpr (std::is_same_v<Result, bool>) {
      task_.native_handle().promise().take();
      return true;
    } else {
      return Result(take_value(task_));
    }
  }

  std::coroutine_handle<> child_done(std::size_t) noexcept override {
    child_done_ = true;
    timer_.reset();
    return starting_ ? std::noop_coroutine() : parent_;
  }

 private:
  void expire() {
    timed_out_ = true;
    task_.reset();  // destroyed before the parent resumes
    parent_.resume();
  }

  Loop& loop_;
  Timer::Duration limit_;
  Held<T> task_;
  std::coroutine_handle<> parent_;
  std::optional<Timer> timer_;
  bool starting_ = false;
  bool child_done_ = false;
  bool timed_out_ = false;
};

}  // namespace detail::coro

/// Runs the tasks concurrently on the awaiting Task's loop and gives a tuple of their results
/// (std::monostate for a Task<void>) once all finished. The first one to throw cancels the others
/// (their frames are destroyed) and its exception is rethrown.
/// Named Tasks are borrowed (they keep their frames, and each can be given once); temporaries
/// are owned by the co_await. The children stay on the loop: resume_on() inside one throws.
template <class... Tasks>
requires(detail::coro::IsTask<std::remove_cvref_t<Tasks>>::value&&...)
    detail::coro::Combinator<false, Tasks...> when_all(Tasks&&... tasks) {
  return detail::coro::Combinator<false, Tasks...>(std::forward<Tasks>(tasks)...);
}

/// Runs the tasks concurrently as when_all() does and gives the first to finish as a variant
/// (by index: variant<int, int> tells which). The others are cancelled: their frames are
/// destroyed before the co_await returns. The first to finish by throwing rethrows instead.
template <class... Tasks>
requires(detail::coro::IsTask<std::remove_cvref_t<Tasks>>::value&&...)
    detail::coro::Combinator<true, Tasks...> when_any(Tasks&&... tasks) {
  return detail::coro::Combinator<true, Tasks...>(std::forward<Tasks>(tasks)...);
}

/// Runs `task` with a deadline on `loop` (the awaiting Task's): gives std::optional<T> (bool for
/// Task<void>), empty (false) when the time ran out first; the task is then destroyed before the
/// co_await returns. An exception of the task is rethrown.
/// Throws: as sleep_for().
template <class T, class Rep, class Period>
requires detail::coro::IsTask<std::remove_cvref_t<T>>::value detail::coro::TimeoutAwaiter<T>
with_timeout(Loop& loop, std::chrono::duration<Rep, Period> limit, T&& task) {
  return detail::coro::TimeoutAwaiter<T>(loop, std::chrono::duration_cast<Timer::Duration>(limit),
                                         std::forward<T>(task));
}

EVCXX_END_NAMESPACE
