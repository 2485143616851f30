#include "evcxx/loop_thread.hpp"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <stdexcept>

EVCXX_BEGIN_NAMESPACE

struct LoopThread::State {
  State(std::string thread_name, ErrorHandler handler, LoopFlags flags)
      : name(std::move(thread_name)), on_error(std::move(handler)), loop(flags) {}

  const std::string name;
  const ErrorHandler on_error;
  Loop loop;
  std::atomic<std::thread::id> id{};        // the loop thread's, once it started
  std::atomic<bool> stop_requested{false};  // stop() or stop_when_done()
  std::atomic<bool> stop_now{false};        // stop()
  // The first stop_when_done()'s deadline, in steady_clock nanoseconds; no_deadline for none.
  std::atomic<std::int64_t> done_deadline{not_requested};
  std::atomic<bool> ended_when_done{false};

  static constexpr std::int64_t not_requested = std::numeric_limits<std::int64_t>::min();
  static constexpr std::int64_t no_deadline = std::numeric_limits<std::int64_t>::max();
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
  stop_unless_finishing();
  std::lock_guard<std::mutex> lock(join_mutex_);
  if (!thread_.joinable()) return;
  if (in_loop_thread()) {
    thread_.detach();  // run() holds the state: it finishes the accepted tasks, then frees it
  } else {
    thread_.join();
  }
}

// NOLINTNEXTLINE(performance-unnecessary-value-param): the thread's own reference to the state
void LoopThread::run(std::shared_ptr<State> state) noexcept {
  pthread_setname_np(pthread_self(), state->name.c_str());
  state->id.store(std::this_thread::get_id(), std::memory_order_release);
  Loop& loop = state->loop;
  loop.ref();  // keep running without any watcher, until stop() or stop_when_done()
  for (;;) {
    try {
      loop.run();
    } catch (...) {
      report(*state, std::current_exception());
    }
    if (loop.posts_closed_and_drained()) break;
  }
  loop.unref();
  if (!state->stop_now.load(std::memory_order_acquire) &&
      state->done_deadline.load(std::memory_order_acquire) != State::not_requested) {
    finish_when_done(*state);
  }
}

void LoopThread::finish_when_done(State& state) noexcept {
  // Every accepted task has run and no more can come: only the watchers' references keep the
  // loop going now, until they are all gone, the deadline passes or stop() wakes it.
  Loop& loop = state.loop;
  struct ev_loop* const raw = loop.native();
  struct Deadline {
    ev_timer timer;
    bool passed = false;
  } deadline;
  const std::int64_t deadline_ns = state.done_deadline.load(std::memory_order_acquire);
  const bool timed = deadline_ns != State::no_deadline;
  if (timed) {
    const std::int64_t now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                    std::chrono::steady_clock::now().time_since_epoch())
                                    .count();
    const double remaining =
        deadline_ns > now_ns ? static_cast<double>(deadline_ns - now_ns) * 1e-9 : 0.0;
    ev_timer_init(
        &deadline.timer,
        [](struct ev_loop* l, ev_timer* w, int) noexcept {
          ev_ref(l);  // libev stopped the one-shot timer, taking back the reference we gave up
          static_cast<Deadline*>(w->data)->passed = true;
          ev_break(l, EVBREAK_ALL);
        },
        remaining, 0.);
    deadline.timer.data = &deadline;
    loop.update_now();
    ev_timer_start(raw, &deadline.timer);
    ev_unref(raw);  // the deadline itself never keeps the loop going
  }
  for (;;) {
    bool active = true;
    try {
      active = loop.run();  // returns false once no active watcher holds a reference
    } catch (...) {
      report(state, std::current_exception());
    }
    if (!active) {
      state.ended_when_done.store(true, std::memory_order_release);
      break;
    }
    if (deadline.passed || state.stop_now.load(std::memory_order_acquire)) break;
    // Woken for nothing that ends it (Loop::stop(), a throwing callback): run on.
  }
  if (timed && ev_is_active(&deadline.timer)) {
    ev_ref(raw);
    ev_timer_stop(raw, &deadline.timer);
  }
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
  static_cast<void>(std::fprintf(stderr,
                                 "evcxx: LoopThread \"%s\": uncaught exception in a task: %s\n",
                                 state.name.c_str(), what));
}

void LoopThread::post(std::function<void()> task) {
  if (!try_post(std::move(task))) throw_stopped();
}

bool LoopThread::try_post(std::function<void()> task) {
  if (!task) throw std::invalid_argument("evcxx: LoopThread::post() needs a callable task");
  return post_reporting(task);
}

void LoopThread::stop() noexcept {
  state_->stop_now.store(true, std::memory_order_release);
  state_->stop_requested.store(true, std::memory_order_release);
  loop_->close_posts();  // also wakes the loop, which a stop_when_done() in progress needs
}

void LoopThread::stop_when_done(std::chrono::duration<double> deadline) {
  stop_when_done(deadline_from_now(deadline));
}

void LoopThread::stop_when_done(std::chrono::steady_clock::time_point deadline) noexcept {
  if (state_->stop_now.load(std::memory_order_acquire)) return;
  const std::int64_t ns =
      deadline == std::chrono::steady_clock::time_point::max()
          ? State::no_deadline
          : std::chrono::duration_cast<std::chrono::nanoseconds>(deadline.time_since_epoch())
                .count();
  std::int64_t expected = State::not_requested;
  state_->done_deadline.compare_exchange_strong(expected, std::max(ns, State::not_requested + 1),
                                                std::memory_order_acq_rel);
  state_->stop_requested.store(true, std::memory_order_release);
  loop_->close_posts();
}

bool LoopThread::join_when_done(std::chrono::duration<double> deadline) {
  require_not_loop_thread("LoopThread::join_when_done()");
  stop_when_done(deadline);
  join();
  return ended_when_done();
}

void LoopThread::stop_unless_finishing() noexcept {
  if (state_->done_deadline.load(std::memory_order_acquire) == State::not_requested) stop();
}

std::chrono::steady_clock::time_point LoopThread::deadline_from_now(
    std::chrono::duration<double> deadline) {
  if (std::isnan(deadline.count()) || deadline.count() < 0) {
    throw std::invalid_argument(
        "evcxx: stop_when_done() needs a deadline of zero or more seconds (infinity for none)");
  }
  using SteadyClock = std::chrono::steady_clock;
  const SteadyClock::time_point now = SteadyClock::now();
  const double left = std::chrono::duration<double>(SteadyClock::time_point::max() - now).count();
  if (!(deadline.count() < left - 1.0)) return SteadyClock::time_point::max();
  return now + std::chrono::duration_cast<SteadyClock::duration>(deadline);
}

void LoopThread::join() {
  // Before the lock: another thread's join() holds it until the loop thread ends.
  require_not_loop_thread("LoopThread::join()");
  std::lock_guard<std::mutex> lock(join_mutex_);
  if (!thread_.joinable()) return;
  if (!stopped()) {
    throw std::logic_error(
        "evcxx: LoopThread::join() before stop() or stop_when_done() would wait forever; call "
        "one of them first");
  }
  thread_.join();
  // The thread is gone: a later thread that gets its id is not the loop thread.
  state_->id.store(std::thread::id(), std::memory_order_release);
}

void LoopThread::require_not_loop_thread(const char* operation) const {
  if (in_loop_thread()) {
    throw std::logic_error(std::string("evcxx: ") + operation +
                           " on the loop thread itself would deadlock; call stop() or "
                           "stop_when_done() there and join from another thread (or just "
                           "destroy the LoopThread)");
  }
}

bool LoopThread::stopped() const noexcept {
  return state_->stop_requested.load(std::memory_order_acquire);
}

bool LoopThread::ended_when_done() const noexcept {
  return state_->ended_when_done.load(std::memory_order_acquire);
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

EVCXX_END_NAMESPACE
