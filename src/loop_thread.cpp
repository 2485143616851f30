#include "evcxx/loop_thread.hpp"

#include <pthread.h>

#include <atomic>
#include <cstdio>
#include <stdexcept>

namespace evcxx {

struct LoopThread::State {
  State(std::string thread_name, ErrorHandler handler, LoopFlags flags)
      : name(std::move(thread_name)), on_error(std::move(handler)), loop(flags) {}

  const std::string name;
  const ErrorHandler on_error;
  Loop loop;
  std::atomic<std::thread::id> id{};  // the loop thread's, once it started
  std::atomic<bool> stop_requested{false};
};

namespace {

// Linux's limit for a thread name, without the terminating NUL.
constexpr std::size_t max_thread_name = 15;

}  // namespace

LoopThread::LoopThread(std::string name, ErrorHandler on_error, LoopFlags flags) {
  if (name.size() > max_thread_name || name.find('\0') != std::string::npos) {
    throw std::invalid_argument("evcxx: LoopThread name \"" + name +
                                "\" is longer than the 15 bytes Linux allows for a thread name; "
                                "pick a shorter one");
  }
  state_ = std::make_shared<State>(std::move(name), std::move(on_error), flags);
  loop_ = &state_->loop;
  thread_ = std::thread(&LoopThread::run, state_);
}

LoopThread::~LoopThread() {
  stop();
  std::lock_guard<std::mutex> lock(join_mutex_);
  if (!thread_.joinable()) return;
  if (in_loop_thread()) {
    thread_.detach();  // run() holds the state: it finishes the accepted tasks, then frees it
  } else {
    thread_.join();
  }
}

void LoopThread::run(std::shared_ptr<State> state) noexcept {
  pthread_setname_np(pthread_self(), state->name.c_str());
  state->id.store(std::this_thread::get_id(), std::memory_order_release);
  Loop& loop = state->loop;
  loop.ref();  // keep running without any watcher, until stop()
  for (;;) {
    try {
      loop.run();
    } catch (...) {
      report(*state, std::current_exception());
    }
    if (loop.posts_closed_and_drained()) break;
  }
  loop.unref();
}

void LoopThread::report(State& state, std::exception_ptr error) noexcept {
  if (state.on_error) {
    try {
      state.on_error(error);
      return;
    } catch (...) {
      error = std::current_exception();  // the handler itself failed: report that instead
    }
  }
  const char* what = "an exception not derived from std::exception";
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    what = e.what();  // `error` keeps the exception, and so this text, alive
  } catch (...) {
  }
  std::fprintf(stderr, "evcxx: LoopThread \"%s\": uncaught exception in a task: %s\n",
               state.name.c_str(), what);
}

void LoopThread::post(std::function<void()> task) {
  if (!try_post(std::move(task))) throw_stopped();
}

bool LoopThread::try_post(std::function<void()> task) {
  if (!task) throw std::invalid_argument("evcxx: LoopThread::post() needs a callable task");
  return loop_->try_post(Reporting<std::function<void()>>{state_.get(), std::move(task)});
}

void LoopThread::stop() noexcept {
  state_->stop_requested.store(true, std::memory_order_release);
  loop_->close_posts();
}

void LoopThread::join() {
  std::lock_guard<std::mutex> lock(join_mutex_);
  if (!thread_.joinable()) return;
  if (in_loop_thread()) {
    throw std::logic_error(
        "evcxx: LoopThread::join() on the loop thread itself would deadlock; call stop() there "
        "and join from another thread (or just destroy the LoopThread)");
  }
  if (!stopped()) {
    throw std::logic_error(
        "evcxx: LoopThread::join() before stop() would wait forever; call stop() first");
  }
  thread_.join();
}

bool LoopThread::stopped() const noexcept {
  return state_->stop_requested.load(std::memory_order_acquire);
}

bool LoopThread::in_loop_thread() const noexcept {
  return state_->id.load(std::memory_order_acquire) == std::this_thread::get_id();
}

const std::string& LoopThread::name() const noexcept {
  return state_->name;
}

void LoopThread::throw_stopped() {
  throw stopped_error();
}

LoopStopped LoopThread::stopped_error() {
  return LoopStopped(
      "evcxx: LoopThread::post()/submit() after stop(); the thread no longer accepts tasks (use "
      "try_post() where producers may race the shutdown)");
}

}  // namespace evcxx
