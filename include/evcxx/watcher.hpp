#pragma once

#include <ev.h>

#include <exception>
#include <functional>
#include <type_traits>
#include <utility>

#include "evcxx/export.hpp"
#include "evcxx/loop.hpp"

EVCXX_BEGIN_NAMESPACE

// Pass as a watcher's second constructor argument to create it stopped; start() it later.
struct deferred_t {
  explicit constexpr deferred_t() = default;
};
inline constexpr deferred_t deferred{};

namespace detail {

// A loop that is never run: detached watchers point at it so that thread-safe calls such as
// Async::send() made after their Loop died touch nothing that was freed.
EVCXX_API struct ev_loop* detached_loop() noexcept;

// After a prepare-phase callback that ran after the loop's closed-descriptor check: checks again
// what libev is about to register (see Io). Loop thread.
EVCXX_API void recheck_closed_fds(Loop& loop) noexcept;

// What every watcher shares with its Loop, independent of the libev watcher type: membership in
// the loop's list (so ~Loop can detach it), the liveness flag used while its callback runs, and
// the checks that replace libev's assertions.
class EVCXX_API WatcherLink {
 public:
  WatcherLink(const WatcherLink&) = delete;
  WatcherLink& operator=(const WatcherLink&) = delete;

  // True until the watcher's Loop is destroyed. Loop thread.
  bool attached() const noexcept { return loop_ != nullptr; }

 protected:
  explicit WatcherLink(Loop& loop);
  virtual ~WatcherLink();

  // Stops the libev watcher; called by ~Loop while the loop still exists.
  virtual void stop_for_detach() noexcept = 0;
  // True for watchers libev itself runs while destroying the loop (Cleanup): ~Loop detaches them
  // after ev_loop_destroy() instead of before.
  virtual bool detach_after_loop_destroy() const noexcept { return false; }
  // Whether this link holds one of libev's loop references now (an active user watcher, except
  // Cleanup); Loop::verify() compares them with the caller's unref() calls.
  virtual bool holds_reference() const noexcept { return false; }

  // The loop's closed-descriptor guard (see Io), or nullptr.
  static ClosedFdGuard*& fd_guard_slot(Loop& loop) noexcept { return loop.fd_guard_; }
  // Throws std::logic_error naming the operation when the Loop is gone.
  void require_attached(const char* operation) const;
  // Throws std::out_of_range unless priority is within [EV_MINPRI, EV_MAXPRI].
  static void check_priority(int priority);
  // Throws std::logic_error: libev forbids changing the priority of an active or pending watcher.
  [[noreturn]] static void throw_priority_while_active();

  Loop* loop_;
  struct ev_loop* raw_loop_;
  bool* alive_ = nullptr;  // points at a flag on the stack while the callback runs

 private:
  friend class evcxx::Loop;
  void detach(bool stop_native) noexcept;  // called by ~Loop

  WatcherLink* prev_ = nullptr;
  WatcherLink* next_ = nullptr;
};

}  // namespace detail

// The members every watcher type has. Derived names the libev start/stop functions
// (native_start, native_stop), the event it delivers (event_mask) and, for callbacks that take
// arguments, deliver(callback, revents).
//
// Out of memory, a constructor (storing the callback, or its own bookkeeping) and set_callback()
// throw std::bad_alloc and change nothing: the Loop and its other watchers are untouched, and
// set_callback() keeps the old callback. stop() never allocates, and start() never throws
// std::bad_alloc (Io falls back to a wider check when its bookkeeping cannot allocate). Once its
// Loop exists no watcher needs a descriptor that could run out (Stat falls back to polling).
//
// Lifetime: create, use and destroy a watcher on its loop's thread; it may destroy itself inside
// its own callback. Its Loop may be destroyed first: the watcher is then detached (inactive,
// start() and feed() throw std::logic_error, its destructor touches nothing of the old loop).
// Constructing a watcher on a Loop that is being destroyed (inside a Cleanup callback) throws
// std::logic_error.
//
// Thread-safety: every member is for the loop thread unless it says otherwise.
template <class Derived, class Native, class Signature>
class Watcher;

template <class Derived, class Native, class... Args>
class Watcher<Derived, Native, void(Args...)> : public detail::WatcherLink {
 public:
  using Callback = std::function<void(Args...)>;

  // Starts the watcher (a no-op while active). Throws std::logic_error if its Loop is gone.
  void start() {
    require_attached("start()");
    self().start_native();
  }
  // Stops the watcher and drops a pending event (a no-op while inactive or detached).
  void stop() noexcept {
    if (attached()) self().stop_native();
  }
  // False once detached: libev leaves Cleanup watchers marked active when it destroys a loop.
  bool active() const noexcept { return attached() && ev_is_active(&watcher_) != 0; }
  bool pending() const noexcept { return ev_is_pending(&watcher_) != 0; }
  int priority() const noexcept { return ev_priority(&watcher_); }
  // Throws std::out_of_range outside [EV_MINPRI, EV_MAXPRI], std::logic_error while active or
  // pending (libev forbids it).
  void set_priority(int priority) {
    check_priority(priority);
    if (active() || pending()) throw_priority_while_active();
    ev_set_priority(&watcher_, priority);
  }
  // Replaces the callback; safe inside the callback itself (the running one finishes first).
  void set_callback(Callback callback) {
    callback_ = std::move(callback);
    ++callback_generation_;
  }
  // Runs the callback now, as if its event had fired; rethrows what it throws.
  void invoke() { invoke_with(Derived::event_mask); }
  // Drops a pending event; returns its revents (0 when none was pending).
  int clear_pending() noexcept { return attached() ? ev_clear_pending(raw_loop_, &watcher_) : 0; }
  // Makes the watcher pending as if its event had fired (ev_feed_event).
  // Throws std::logic_error if its Loop is gone.
  void feed() { feed_with(Derived::event_mask); }
  // The Loop this watcher belongs to. Only while attached().
  Loop& loop() const noexcept { return *loop_; }
  // The libev watcher, for code that already uses libev. Do not start or stop it behind evcxx's
  // back while its Loop is being destroyed.
  Native* native() noexcept { return &watcher_; }
  const Native* native() const noexcept { return &watcher_; }

 protected:
  Watcher(Loop& loop, Callback callback) : WatcherLink(loop), callback_(std::move(callback)) {
    ev_init(&watcher_, &Watcher::on_event);
    watcher_.data = this;
  }
  // The derived destructor stops the watcher first when its stop_native() does more than libev's.
  ~Watcher() override {
    if (attached()) Derived::native_stop(raw_loop_, &watcher_);
  }

  // Overridable by Derived: whether the callback about to run for revents may close or change
  // descriptors after the loop's closed-descriptor check (Io errors, lowest-priority Prepares).
  static constexpr bool recheck_fds_after(const Derived&, int) noexcept { return false; }

  // Overridable by Derived (found through self()): the native start/stop plus any bookkeeping.
  void start_native() { Derived::native_start(raw_loop_, &watcher_); }
  void stop_native() noexcept { Derived::native_stop(raw_loop_, &watcher_); }

  // Restarts an active watcher around a parameter change, as set(...) promises.
  template <class Change>
  void restart_with(Change&& change) {
    const bool was_active = active();
    if (was_active) stop();
    std::forward<Change>(change)();
    if (was_active) start();
  }

  void invoke_with(int revents) {
    if (std::exception_ptr error = dispatch(revents)) std::rethrow_exception(error);
  }
  void feed_with(int revents) {
    require_attached("feed()");
    fed_ = true;
    ev_feed_event(raw_loop_, &watcher_, revents);
  }

  Native watcher_;

 private:
  Derived& self() noexcept { return static_cast<Derived&>(*this); }

  void stop_for_detach() noexcept final { self().stop_native(); }
  bool holds_reference() const noexcept override { return active(); }

  // libev calls this; no exception may unwind through its frames.
  static void on_event(struct ev_loop*, Native* w, int revents) noexcept {
    auto* watcher = static_cast<Watcher*>(w->data);
    Loop* loop = watcher->loop_;  // read now: the callback may destroy the watcher
    // A fed callback may run in the prepare phase, right before libev registers descriptors.
    const bool recheck = Derived::recheck_fds_after(watcher->self(), revents) || watcher->fed_;
    watcher->fed_ = false;
    if (std::exception_ptr error = watcher->dispatch(revents)) {
      loop->capture_exception(std::move(error));
    }
    if (recheck) detail::recheck_closed_fds(*loop);
  }

  std::exception_ptr dispatch(int revents) noexcept {
    if constexpr (std::is_same_v<Native, ev_async>) EVCXX_TSAN_ACQUIRE(&watcher_);
    if (!callback_) return nullptr;
    bool alive = true;
    bool* const outer = alive_;
    alive_ = &alive;
    const unsigned generation = callback_generation_;
    // The running callback lives here, so the callback may replace itself or destroy *this.
    Callback running;
    running.swap(callback_);
    std::exception_ptr error;
    try {
      if constexpr (sizeof...(Args) == 0) {
        static_cast<void>(revents);
        running();
      } else {
        Derived::deliver(running, revents);
      }
    } catch (...) {
      error = std::current_exception();
    }
    if (alive) {
      alive_ = outer;
      if (callback_generation_ == generation) callback_.swap(running);
    } else if (outer != nullptr) {
      *outer = false;
    }
    return error;
  }

  Callback callback_;
  unsigned callback_generation_ = 0;
  bool fed_ = false;  // feed() made it pending: check descriptors after its callback (see Io)
};

EVCXX_END_NAMESPACE
