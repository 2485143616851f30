#pragma once

// The consumers both post benchmarks (compare_bench, side_by_side_bench) hand tasks to: one
// thread running evcxx, raw libev with the usual hand-written queue, or Boost.Asio.

#include <ev.h>
#include <evcxx/async.hpp>
#include <evcxx/loop.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

namespace evcxx_bench {

class EvcxxConsumer {
 public:
  EvcxxConsumer() : thread_([this] { loop_.run(); }) {}
  ~EvcxxConsumer() {
    loop_.stop();
    thread_.join();
  }
  template <class Task>
  void post(Task&& task) {
    loop_.post(std::forward<Task>(task));
  }

 private:
  evcxx::Loop loop_;
  evcxx::Async keep_alive_{loop_, [] {}};  // posted tasks alone do not keep run() going
  std::thread thread_;
};

// The hand-written peers' queue: producers append under a mutex, the consumer swaps it out whole.
class LockedQueue {
 public:
  // True when the queue was empty: only then can the consumer be waiting for a wake-up.
  template <class Task>
  bool push(Task&& task) {
    std::lock_guard<std::mutex> lock(mutex_);
    const bool was_empty = queue_.empty();
    queue_.emplace_back(std::forward<Task>(task));
    return was_empty;
  }
  // Consumer thread: runs every task queued so far.
  void run_all() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      running_.swap(queue_);
    }
    for (auto& task : running_) task();
    running_.clear();
  }

 private:
  std::mutex mutex_;
  std::vector<std::function<void()>> queue_;  // guarded by mutex_
  std::vector<std::function<void()>> running_;
};

// Raw libev: the hand-written queue, drained by an ev_async callback on the consumer's loop.
class LibevConsumer {
 public:
  LibevConsumer() : loop_(ev_loop_new(EVFLAG_AUTO)) {
    if (loop_ == nullptr) throw std::runtime_error("ev_loop_new");
    ev_async_init(&wake_, [](struct ev_loop*, ev_async* w, int) noexcept {
      static_cast<LibevConsumer*>(w->data)->queue_.run_all();
    });
    wake_.data = this;
    ev_async_start(loop_, &wake_);
    thread_ = std::thread([this] { ev_run(loop_, 0); });
  }
  ~LibevConsumer() {
    post([this] { ev_break(loop_, EVBREAK_ALL); });
    thread_.join();
    ev_async_stop(loop_, &wake_);
    ev_loop_destroy(loop_);
  }
  template <class Task>
  void post(Task&& task) {
    if (queue_.push(std::forward<Task>(task))) ev_async_send(loop_, &wake_);
  }

 private:
  struct ev_loop* loop_;
  ev_async wake_;
  LockedQueue queue_;
  std::thread thread_;
};

using AsioWorkGuard = boost::asio::executor_work_guard<boost::asio::io_context::executor_type>;

class AsioConsumer {
 public:
  AsioConsumer() : thread_([this] { io_.run(); }) {}
  ~AsioConsumer() {
    keep_alive_.reset();
    thread_.join();
  }
  template <class Task>
  void post(Task&& task) {
    boost::asio::post(io_, std::forward<Task>(task));
  }

 private:
  boost::asio::io_context io_;
  AsioWorkGuard keep_alive_ = boost::asio::make_work_guard(io_);
  std::thread thread_;
};

}  // namespace evcxx_bench
