#pragma once

// C++20 coroutines over evcxx: Task<T>, spawn() and spawn_future(). Include <evcxx/coro.hpp>.

#if __cplusplus < 202002L && !defined(__cpp_impl_coroutine)
#error "<evcxx/coro.hpp> needs C++20 (link the CMake target evcxx::coro, or pass -std=c++20)"
#endif

#include <atomic>
#include <coroutine>
#include <cstddef>
#include <exception>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "evcxx/coro/stop_token.hpp"
#include "evcxx/detail/watcher_link.hpp"
#include "evcxx/io.hpp"
#include "evcxx/loop.hpp"

EVCXX_BEGIN_NAMESPACE

/// What waits for a task's result gets this when the task was cancelled (by a std::stop_token, a
/// when_any, a with_timeout or the destruction of the Loop it was suspended on) before finishing.
/// Thread-safety: an exception object, as std::runtime_error.
class Cancelled : public std::runtime_error {
 public:
  /// "evcxx: the task was cancelled".
  Cancelled() : std::runtime_error("evcxx: the task was cancelled before it finished") {}
  /// With another message.
  using std::runtime_error::runtime_error;
};

template <class T = void>
class Task;

namespace detail::coro {

class Root;

// Whom a combinator's child reports to from its final suspension, instead of a continuation.
class Completion {
 public:
  // Returns the coroutine to resume next (the parent, or std::noop_coroutine()).
  virtual std::coroutine_handle<> child_done(std::size_t index) noexcept = 0;

 protected:
  ~Completion() = default;
};

// A Task being started inside its awaiter's await_suspend(), on this thread's stack: its final
// suspension, if it comes before the start returns, marks it done instead of resuming the awaiter,
// so that a loop of co_awaits of Tasks that finish at once runs in constant stack (a resumption
// through symmetric transfer is a tail call only where the compiler makes it one: not at -O0, nor
// in the sanitizer trees). A Task that moved to another thread finishes there, unmarked.
struct InlineStart {
  const void* promise;
  bool finished = false;
};
inline InlineStart*& inline_start() noexcept {
  static thread_local InlineStart* current = nullptr;
  return current;
}

// What every Task's promise shares: who continues after it, and the spawned root it belongs to.
// Loop thread (the thread of the loop its root currently runs on).
class PromiseBase {
 public:
  struct FinalAwaiter {
    bool await_ready() const noexcept { return false; }
    template <class Promise>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> self) noexcept {
      return self.promise().on_final(self);
    }
    void await_resume() const noexcept {}
  };

  std::suspend_always initial_suspend() const noexcept { return {}; }
  FinalAwaiter final_suspend() const noexcept { return {}; }
  void unhandled_exception() noexcept { error = std::current_exception(); }

  inline std::coroutine_handle<> on_final(std::coroutine_handle<> self) noexcept;

  std::coroutine_handle<> continuation;  // the awaiting coroutine, for a plain co_await
  Root* root = nullptr;                  // set when awaited or spawned
  Completion* completion = nullptr;      // set for a combinator's child
  std::size_t index = 0;                 // its index there
  bool pinned = false;                   // a combinator's child (or below): no resume_on
  bool started = false;                  // awaited or spawned once already
  std::exception_ptr error;
};

template <class T>
class Promise final : public PromiseBase {
 public:
  Task<T> get_return_object() noexcept;
  template <class U = T>
  void return_value(U&& value) noexcept(std::is_nothrow_constructible_v<T, U&&>) {
    value_.emplace(std::forward<U>(value));
  }
  // The result, or the exception the coroutine threw.
  T take() {
    if (error) std::rethrow_exception(error);
    return std::move(*value_);
  }

 private:
  std::optional<T> value_;
};

template <>
class Promise<void> final : public PromiseBase {
 public:
  inline Task<void> get_return_object() noexcept;
  void return_void() const noexcept {}
  void take() const {
    if (error) std::rethrow_exception(error);
  }
};

// The coroutine's own promise must be an evcxx Task's.
template <class Promise>
PromiseBase& promise_of(std::coroutine_handle<Promise> handle) noexcept {
  static_assert(std::is_base_of_v<PromiseBase, Promise>,
                "evcxx awaitables are for evcxx::Task coroutines (co_await them inside a Task)");
  return handle.promise();
}

// Throws std::logic_error unless the awaiting Task runs on `loop` (the contract of every
// awaitable that watches something on a loop).
inline void require_on(const PromiseBase& promise, const Loop& loop, const char* what);

// One spawned task: its frame, the loop it runs on, and the registry of that loop that destroys
// it if the loop dies while it is suspended.
class Registry final {
 public:
  explicit Registry(Loop& loop) : anchor_(loop), link_(loop, *this), loop_(&loop) {}
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // The registry of `loop`, created on first use. Loop thread.
  static inline Registry& of(Loop& loop);

  inline void add(Root& root) noexcept;
  inline void remove(Root& root) noexcept;
  Loop& loop() const noexcept { return *loop_; }

 private:
  struct Table {
    std::mutex mutex;
    std::unordered_map<const Loop*, std::unique_ptr<Registry>> live;
  };
  static Table& table() {
    static auto* const instance = new Table;  // never destroyed: loops may die at exit
    return *instance;
  }
  // Registries of dead loops, freed on the thread that detached them (~Loop still writes to
  // link_ and anchor_ after stop_for_detach() returns), at its next of() or when it ends.
  static std::vector<std::unique_ptr<Registry>>& graveyard() {
    static thread_local std::vector<std::unique_ptr<Registry>> dead;
    return dead;
  }

  // ~Loop visits its watchers newest first, and next the one made right before the one it
  // detaches. That is the anchor, which no frame owns: a frame destroyed in stop_for_detach() may
  // own (and so free) any other, older watcher, such as one made before the first task came.
  class Anchor final : public detail::WatcherLink {
   public:
    explicit Anchor(Loop& loop) : WatcherLink(loop) {}

   private:
    void stop_for_detach() noexcept override {}
  };
  // Detached by ~Loop after every watcher a coroutine on this loop made (the registry exists
  // before such a coroutine first runs here), so the frames it destroys only hold detached
  // watchers of this loop, or older ones ~Loop has not visited yet.
  class Link final : public detail::WatcherLink {
   public:
    Link(Loop& loop, Registry& registry) : WatcherLink(loop), registry_(registry) {}

   private:
    void stop_for_detach() noexcept override { registry_.stop_for_detach(); }
    Registry& registry_;
  };

  inline void stop_for_detach() noexcept;

  Anchor anchor_;  // made before link_: ~Loop visits it right after link_
  Link link_;
  Loop* const loop_;
  Root* head_ = nullptr;
};

// A spawned Task. Its frame holds one reference, each cancellation request in flight another.
class Root {
 public:
  explicit Root(std::coroutine_handle<> handle, Loop& loop) noexcept
      : handle_(handle), loop_(&loop) {}
  Root(const Root&) = delete;
  Root& operator=(const Root&) = delete;

  Loop& loop() const noexcept { return *loop_.load(std::memory_order_relaxed); }

  // Loop thread of `here`: registers there and resumes `at` (the frame's first resumption, or a
  // resume_on's), unless a stop was requested meanwhile.
  void arrive(Loop& here, std::coroutine_handle<> at) noexcept {
    if (!enlist(here) || stop_requested_.load(std::memory_order_seq_cst)) {
      cancel();
    } else {
      at.resume();
    }
  }
  // Loop thread: about to move to `target` (resume_on).
  void depart(Loop& target) noexcept {
    if (Registry* const registry = registry_.load(std::memory_order_relaxed)) {
      registry->remove(*this);
    }
    loop_.store(&target, std::memory_order_seq_cst);
  }
  // Undoes depart() when the target refused the post.
  void stay(Loop& here) noexcept {
    loop_.store(&here, std::memory_order_seq_cst);
    // Out of memory: the root goes on unlisted (only the loop's death would miss it).
    static_cast<void>(enlist(here));
    // A stop requested since depart() may have sent its check to the loop that refused: check here.
    if (stop_requested_.load(std::memory_order_seq_cst)) post_check(here);
  }
  // Lists the root in the registry of `here`; false when out of memory.
  bool enlist(Loop& here) noexcept {
    try {
      Registry::of(here).add(*this);
      return true;
    } catch (...) {
      return false;
    }
  }
  // Destroys the frame without resuming it; whoever waits gets Cancelled.
  void cancel() noexcept {
    if (Registry* const registry = registry_.load(std::memory_order_relaxed)) {
      registry->remove(*this);
    }
    if (handle_) std::exchange(handle_, {}).destroy();
    stop_callback_.reset();
    on_cancelled();
    release();
  }
  // From the root frame's final suspension: delivers its result and destroys it.
  void finish(std::coroutine_handle<> self) noexcept {
    if (Registry* const registry = registry_.load(std::memory_order_relaxed)) {
      registry->remove(*this);
    }
    stop_callback_.reset();
    handle_ = {};
    on_finished(self);  // destroys the frame
    release();
  }
  // ANY thread: a stop was requested; the loop the task is on destroys it soon.
  void request_cancel() noexcept {
    stop_requested_.store(true, std::memory_order_seq_cst);
    post_check(*loop_.load(std::memory_order_seq_cst));
  }
  void watch(StopToken stop) {
    if (stop.stop_possible()) stop_callback_.emplace(std::move(stop), StopRequest{this});
  }
  std::coroutine_handle<> handle() const noexcept { return handle_; }

  // The task that starts or moves a root onto a loop; destroyed unrun (the loop died or refused
  // it), it cancels the root.
  class Arrival {
   public:
    Arrival(Root* root, Loop* loop, std::coroutine_handle<> at) noexcept
        : root_(root), loop_(loop), at_(at) {}
    Arrival(Arrival&& other) noexcept
        : root_(std::exchange(other.root_, nullptr)), loop_(other.loop_), at_(other.at_) {}
    Arrival& operator=(Arrival&&) = delete;
    ~Arrival() {
      if (root_ != nullptr) root_->cancel();
    }
    void operator()() { std::exchange(root_, nullptr)->arrive(*loop_, at_); }
    // Not queued after all: the caller keeps the root.
    void disarm() noexcept { root_ = nullptr; }

   private:
    Root* root_;
    Loop* loop_;
    std::coroutine_handle<> at_;
  };

 protected:
  virtual ~Root() = default;
  virtual void on_cancelled() noexcept {}
  virtual void on_finished(std::coroutine_handle<> self) noexcept = 0;

 private:
  friend class Registry;
  struct StopRequest {
    Root* root;
    void operator()() const noexcept { root->request_cancel(); }
  };
  // Runs on the loop the task was on when the stop was requested: cancels it if it is still
  // suspended there (one still moving is cancelled by its Arrival).
  struct CheckTask {
    Root* root;
    Loop* loop;
    CheckTask(Root* r, Loop* l) noexcept : root(r), loop(l) {}
    CheckTask(CheckTask&& other) noexcept
        : root(std::exchange(other.root, nullptr)), loop(other.loop) {}
    CheckTask& operator=(CheckTask&&) = delete;
    ~CheckTask() {
      if (root != nullptr) root->release();
    }
    void operator()() {
      Root* const r = std::exchange(root, nullptr);
      // Another loop's thread owns the fields of a root that moved on (its arrival checks the
      // stop); the acquire pairs with depart(), so a root on its way here is read safely.
      // registry_ too may be written meanwhile, by a loop that refused the root (stay()).
      Registry* const registry = r->registry_.load(std::memory_order_acquire);
      if (r->loop_.load(std::memory_order_seq_cst) == loop && registry != nullptr &&
          &registry->loop() == loop && r->handle_) {
        r->cancel();
      }
      r->release();
    }
  };

  // ANY thread: has `loop` cancel the root if it is still suspended there.
  void post_check(Loop& loop) noexcept {
    refs_.fetch_add(1, std::memory_order_relaxed);
    CheckTask check{this, &loop};
    try {
      if (loop.try_post(std::move(check))) return;
    } catch (...) {  // out of memory: the loop's destruction still destroys the frame
    }
    check.root = nullptr;  // NOLINT(bugprone-use-after-move): try_post() left it as it was
    release();
  }
  void release() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  std::coroutine_handle<> handle_;
  std::atomic<Loop*> loop_;
  std::atomic<bool> stop_requested_{false};
  std::atomic<int> refs_{1};
  std::optional<StopCallback<StopRequest>> stop_callback_;
  // Written by the loop thread it names; read by a CheckTask on another loop's thread.
  std::atomic<Registry*> registry_{nullptr};
  Root* prev_ = nullptr;  // in registry_'s list
  Root* next_ = nullptr;
};

inline std::coroutine_handle<> PromiseBase::on_final(std::coroutine_handle<> self) noexcept {
  if (completion != nullptr) return completion->child_done(index);
  if (continuation) {
    InlineStart* const start = inline_start();
    if (start != nullptr && start->promise == this) {
      start->finished = true;  // the awaiter goes on without suspending
      return std::noop_coroutine();
    }
    return continuation;
  }
  if (root != nullptr) root->finish(self);
  return std::noop_coroutine();
}

inline void require_on(const PromiseBase& promise, const Loop& loop, const char* what) {
  if (promise.root == nullptr || &promise.root->loop() != &loop) {
    throw std::logic_error(std::string("evcxx: co_await ") + what +
                           " for a loop other than the one the task runs on; co_await "
                           "resume_on(that loop) first");
  }
}

inline Registry& Registry::of(Loop& loop) {
  graveyard().clear();
  Table& t = table();
  std::lock_guard<std::mutex> lock(t.mutex);
  std::unique_ptr<Registry>& slot = t.live[&loop];
  if (!slot) slot = std::make_unique<Registry>(loop);
  return *slot;
}

inline void Registry::add(Root& root) noexcept {
  root.registry_.store(this, std::memory_order_release);
  root.prev_ = nullptr;
  root.next_ = head_;
  if (head_ != nullptr) head_->prev_ = &root;
  head_ = &root;
}

inline void Registry::remove(Root& root) noexcept {
  if (root.prev_ != nullptr) {
    root.prev_->next_ = root.next_;
  } else {
    head_ = root.next_;
  }
  if (root.next_ != nullptr) root.next_->prev_ = root.prev_;
  root.prev_ = root.next_ = nullptr;
  root.registry_.store(nullptr, std::memory_order_relaxed);
}

inline void Registry::stop_for_detach() noexcept {
  {
    Table& t = table();
    std::lock_guard<std::mutex> lock(t.mutex);
    auto found = t.live.find(loop_);
    if (found != t.live.end() && found->second.get() == this) {
      try {
        graveyard().push_back(std::move(found->second));
      } catch (...) {
        static_cast<void>(found->second.release());  // out of memory: leak it rather than crash
      }
      t.live.erase(found);
    }
  }
  while (head_ != nullptr) head_->cancel();
}

// The root of spawn(): an escaping exception goes to the loop, as a callback's does.
class SpawnRoot final : public Root {
 public:
  using Root::Root;

 private:
  void on_finished(std::coroutine_handle<> self) noexcept override {
    Loop& loop = this->loop();
    std::exception_ptr error = std::move(
        std::coroutine_handle<Promise<void>>::from_address(self.address()).promise().error);
    self.destroy();
    if (error) loop.capture_exception(std::move(error));
  }
};

// The root of spawn_future(): the future gets the result, the exception or Cancelled.
template <class T>
class FutureRoot final : public Root {
 public:
  FutureRoot(std::coroutine_handle<> handle, Loop& loop) noexcept : Root(handle, loop) {}
  std::future<T> get_future() { return promise_.get_future(); }

 private:
  void on_cancelled() noexcept override {
    try {
      promise_.set_exception(std::make_exception_ptr(Cancelled()));
    } catch (...) {  // already satisfied
    }
  }
  void on_finished(std::coroutine_handle<> self) noexcept override {
    auto handle = std::coroutine_handle<Promise<T>>::from_address(self.address());
    // The frame is destroyed before the waiter wakes: its locals are gone by then.
    bool destroyed = false;
    try {
      if constexpr (std::is_void_v<T>) {
        handle.promise().take();
        handle.destroy();
        destroyed = true;
        promise_.set_value();
      } else {
        T value = handle.promise().take();
        handle.destroy();
        destroyed = true;
        promise_.set_value(std::move(value));  // T's move may throw
      }
    } catch (...) {
      if (!destroyed) handle.destroy();
      try {
        promise_.set_exception(std::current_exception());
      } catch (...) {
      }
    }
  }
  std::promise<T> promise_;
};

}  // namespace detail::coro

/// A lazy coroutine returning T: it starts when it is co_awaited (or spawned), and co_await gives
/// its result or rethrows its exception.
///
/// A Task runs on one loop's thread at a time: the loop it was spawned on, or the one a
/// resume_on() moved it to; every awaitable that watches something (sleep_for, readable, ...)
/// takes that loop and throws std::logic_error for another one. A Task co_awaited inside another
/// runs as part of it (started at once on the same thread, in constant stack when it finishes
/// without suspending).
///
/// Thread-safety: a Task object is used by one thread at a time; moving it to another thread
/// (spawn() from any thread) is fine before it started.
///
/// Lifetime: move-only; destroying a Task that has not finished destroys its frame (every local's
/// destructor runs once, the coroutine never resumes). A coroutine's parameters are copied into
/// its frame, but what references or a lambda's captures point at is not: a lambda coroutine's
/// captures die with the lambda, usually at its first suspension (see docs/coroutines.md). Each
/// Task can be co_awaited once.
template <class T>
class [[nodiscard]] Task {
 public:
  /// The coroutine's promise.
  using promise_type = detail::coro::Promise<T>;
  /// What co_await gives.
  using value_type = T;

  /// An empty Task (valid() is false).
  Task() noexcept = default;
  /// Takes the other's coroutine.
  Task(Task&& other) noexcept : handle_(std::exchange(other.handle_, {})) {}
  /// Destroys the own coroutine first.
  Task& operator=(Task&& other) noexcept {
    if (this != &other) {
      reset();
      handle_ = std::exchange(other.handle_, {});
    }
    return *this;
  }
  /// Destroys the coroutine's frame (see Lifetime).
  ~Task() { reset(); }

  /// Holds a coroutine.
  bool valid() const noexcept { return static_cast<bool>(handle_); }
  /// The coroutine finished (returned or threw).
  bool done() const noexcept { return handle_ && handle_.done(); }
  /// Destroys the coroutine's frame now; the Task becomes empty.
  void reset() noexcept {
    if (handle_) std::exchange(handle_, {}).destroy();
  }
  /// The coroutine, for evcxx's combinators; the Task keeps it.
  std::coroutine_handle<promise_type> native_handle() const noexcept { return handle_; }
  /// Gives up the coroutine: the caller destroys it.
  std::coroutine_handle<promise_type> release() noexcept { return std::exchange(handle_, {}); }

  /// What `co_await task` does: runs it inside the awaiting Task. An awaiting Task destroyed
  /// while it waits (cancelled) destroys the awaited one too, also when it only borrowed it (a
  /// reference to a Task another frame owns, which is then left empty): the awaited Task could
  /// never resume its waiter.
  class Awaiter {
   public:
    /// Awaits `task` (which keeps its coroutine).
    explicit Awaiter(Task& task) noexcept : task_(&task), handle_(task.handle_) {}
    Awaiter(const Awaiter&) = delete;
    Awaiter& operator=(const Awaiter&) = delete;
    ~Awaiter() {
      if (waiting_) task_->reset();  // the waiter was destroyed while it waited
    }
    /// Throws: std::logic_error for an empty Task.
    bool await_ready() const {
      if (!handle_) throw std::logic_error("evcxx: co_await on an empty Task");
      return false;
    }
    /// Throws: std::logic_error for a Task that was co_awaited or spawned before.
    template <class Parent>
    bool await_suspend(std::coroutine_handle<Parent> parent) {
      detail::coro::PromiseBase& outer = detail::coro::promise_of(parent);
      promise_type& inner = handle_.promise();
      if (inner.started) {
        throw std::logic_error("evcxx: a Task can be co_awaited only once");
      }
      inner.started = true;
      inner.continuation = parent;
      inner.root = outer.root;
      inner.pinned = outer.pinned;
      // Set before the start: once the Task suspended, another thread may already run it and
      // then resume the waiter (whose await_resume() clears this), so nothing of the awaiter is
      // written after the start.
      waiting_ = true;
      // Runs the Task until it first suspends or finishes (see InlineStart). Once it suspended,
      // another thread may already run it (and the awaiter): only the stack is read afterwards.
      detail::coro::InlineStart start{&inner};
      detail::coro::InlineStart* const enclosing =
          std::exchange(detail::coro::inline_start(), &start);
      handle_.resume();
      detail::coro::inline_start() = enclosing;
      return !start.finished;
    }
    /// The result, or the Task's exception rethrown.
    T await_resume() {
      waiting_ = false;
      return handle_.promise().take();
    }

   private:
    Task* task_;
    std::coroutine_handle<promise_type> handle_;
    bool waiting_ = false;  // started and not finished: the waiter is suspended here
  };
  /// Awaits it (the Task keeps its frame until it is destroyed).
  Awaiter operator co_await() noexcept { return Awaiter(*this); }

 private:
  friend promise_type;
  explicit Task(std::coroutine_handle<promise_type> handle) noexcept : handle_(handle) {}

  std::coroutine_handle<promise_type> handle_;
};

namespace detail::coro {

template <class T>
Task<T> Promise<T>::get_return_object() noexcept {
  return Task<T>(std::coroutine_handle<Promise<T>>::from_promise(*this));
}

inline Task<void> Promise<void>::get_return_object() noexcept {
  return Task<void>(std::coroutine_handle<Promise<void>>::from_promise(*this));
}

// Hands root to loop, or throws LoopStopped (the root then destroyed) when it refuses.
inline void launch(Root* root, Loop& loop) {
  Root::Arrival start(root, &loop, root->handle());
  bool posted = false;
  try {
    posted = loop.try_post(std::move(start));
  } catch (...) {
    start.disarm();
    root->cancel();
    throw;
  }
  if (!posted) {
    start.disarm();  // NOLINT(bugprone-use-after-move): try_post() left it as it was
    root->cancel();
    throw LoopStopped(
        "evcxx: spawn() on a Loop whose LoopThread was stopped; the task was destroyed unrun");
  }
}

template <class T>
std::coroutine_handle<Promise<T>> take_unstarted(Task<T>& task, const char* what) {
  if (!task.valid())
    throw std::invalid_argument(std::string("evcxx: ") + what + " of an empty Task");
  if (task.native_handle().promise().started) {
    throw std::logic_error(std::string("evcxx: ") + what + " of a Task that was already started");
  }
  return task.release();
}

}  // namespace detail::coro

/// Runs `task` on `loop`'s thread, from its next wake-up; returns at once.
///
/// An exception that escapes the task is handled like a callback's: run() rethrows it on the loop
/// thread (a LoopThread's error handler gets it). A stop requested on `stop` (a std::stop_token;
/// evcxx::StopToken is that, or its stand-in where the library lacks one) from any thread
/// cancels the task: the loop it is on destroys its frame without resuming it. So does the
/// destruction of the Loop it is suspended on.
/// Thread-safety: ANY thread (as Loop::post()).
/// Throws: std::invalid_argument for an empty Task, std::logic_error for a started one;
/// LoopStopped (the task destroyed unrun) when the loop's LoopThread was stopped; std::bad_alloc.
/// Lifetime: the Loop must outlive the call, and a stop request made while the task runs (the
/// request posts to the loop the task is on).
inline void spawn(Loop& loop, Task<> task, StopToken stop = {}) {
  auto handle = detail::coro::take_unstarted(task, "spawn()");
  detail::coro::Root* root = nullptr;
  try {
    root = new detail::coro::SpawnRoot(handle, loop);
  } catch (...) {
    handle.destroy();
    throw;
  }
  handle.promise().root = root;
  handle.promise().started = true;
  try {
    root->watch(std::move(stop));
  } catch (...) {
    root->cancel();
    throw;
  }
  detail::coro::launch(root, loop);
}

/// Runs `task` on `loop`'s thread as spawn() does; the future gets its result, its exception, or
/// evcxx::Cancelled when the task was destroyed before finishing (its Loop died, say).
/// By the time the future is ready, the task's frame has been destroyed.
/// Thread-safety: ANY thread. Do not wait for the future on the loop's own thread.
/// Throws: as spawn(), except that a stopped LoopThread gives a future holding LoopStopped.
template <class T>
std::future<T> spawn_future(Loop& loop, Task<T> task) {
  auto handle = detail::coro::take_unstarted(task, "spawn_future()");
  detail::coro::FutureRoot<T>* root = nullptr;
  try {
    root = new detail::coro::FutureRoot<T>(handle, loop);
  } catch (...) {
    handle.destroy();
    throw;
  }
  handle.promise().root = root;
  handle.promise().started = true;
  std::future<T> future = root->get_future();
  try {
    detail::coro::launch(root, loop);
  } catch (const LoopStopped&) {
    std::promise<T> refused;
    refused.set_exception(std::current_exception());
    return refused.get_future();
  }
  return future;
}

EVCXX_END_NAMESPACE
