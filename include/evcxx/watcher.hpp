#pragma once

#include <ev.h>

#include <exception>
#include <functional>
#include <type_traits>
#include <utility>

#include "evcxx/detail/native_traits.hpp"
#include "evcxx/detail/tsan.hpp"
#include "evcxx/detail/watcher_link.hpp"
#include "evcxx/export.hpp"
#include "evcxx/loop.hpp"

EVCXX_BEGIN_NAMESPACE

/// Tag type of evcxx::deferred.
struct deferred_t {
  explicit constexpr deferred_t() = default;
};
/// Pass as a watcher's second constructor argument to create it stopped; start() it later.
inline constexpr deferred_t deferred{};

/// The base of every watcher; declared for any callback Signature, defined for void(Args...).
template <class Derived, class Native, class Signature>
class Watcher;

/// The base of every watcher, with the members they all share (start, stop, active, pending,
/// priority, set_priority, set_callback, invoke, clear_pending, feed, loop, native).
///
/// Derived is the watcher type, Native its libev struct (whose start and stop functions and event
/// come from detail::NativeTraits), Signature its callback's. A watcher type customises the base
/// one way only: by redefining, privately, any of the hooks below (the base finds them through
/// Derived). Every public member therefore behaves the same through every watcher type.
///
/// Errors: out of memory, a constructor (storing the callback, or its own bookkeeping) and
/// set_callback() throw std::bad_alloc and change nothing: the Loop and its other watchers are
/// untouched, and set_callback() keeps the old callback. stop() never allocates, and start() never
/// throws std::bad_alloc (Io falls back to a wider check when its bookkeeping cannot allocate).
/// Once its Loop exists no watcher needs a descriptor that could run out (Stat falls back to
/// polling). A callback that throws while the loop runs it is handled as Loop::run() says.
///
/// Lifetime: create, use and destroy a watcher on its loop's thread; it may destroy itself, or
/// replace its callback, inside its own callback (the running callback object lives until it
/// returns). Its Loop may be destroyed first: the watcher is then detached (inactive, start() and
/// feed() throw std::logic_error, its destructor touches nothing of the old loop). Constructing a
/// watcher on a Loop that is being destroyed (inside a Cleanup callback) throws std::logic_error.
///
/// Thread-safety: every member is for the loop thread unless it says otherwise.
template <class Derived, class Native, class... Args>
class Watcher<Derived, Native, void(Args...)> : public detail::WatcherLink {
 public:
  /// What the watcher calls when its event fires.
  using Callback = std::function<void(Args...)>;

  /// Starts the watcher; a no-op while active.
  /// Throws: std::logic_error if its Loop is gone; what the watcher type's start checks throw.
  void start() {
    require_attached("start()");
    self().start_native();
  }
  /// Stops the watcher and drops a pending event; a no-op while inactive or detached.
  void stop() noexcept {
    if (attached()) self().stop_native();
  }
  /// True while started. False once detached (libev leaves Cleanup watchers marked active when it
  /// destroys a loop).
  bool active() const noexcept { return attached() && ev_is_active(&watcher_) != 0; }
  /// True while an event waits for the callback.
  bool pending() const noexcept { return ev_is_pending(&watcher_) != 0; }
  /// libev's priority, in [EV_MINPRI, EV_MAXPRI]; higher runs first.
  int priority() const noexcept { return ev_priority(&watcher_); }
  /// Sets the priority.
  /// Throws: std::out_of_range outside [EV_MINPRI, EV_MAXPRI]; std::logic_error while active or
  /// pending (libev forbids it).
  void set_priority(int priority) {
    check_priority(priority);
    if (active() || pending()) throw_priority_while_active();
    ev_set_priority(&watcher_, priority);
  }
  /// Replaces the callback. Safe inside the callback itself: the running one finishes first.
  void set_callback(Callback callback) noexcept {
    if (running_ != nullptr) replace_running_callbacks();
    callback_ = std::move(callback);
    if (bound_object_ != nullptr) unbind();
  }
  /// Makes the callback the member function `Method` called on `object`, resolved at compile
  /// time: libev calls it with no std::function on the way, as with the set method of ev++.h.
  /// Write `watcher.set_callback<&Class::member>(object)`. Replaces the callback as
  /// set_callback() does; a later set_callback() replaces it in turn.
  /// Throws: std::bad_alloc, changing nothing.
  /// Lifetime: `object` must outlive the binding (the watcher, or until the next set_callback()).
  template <auto Method, class Object>
  void set_callback(Object& object) {
    static_assert(std::is_member_function_pointer_v<decltype(Method)>,
                  "set_callback<&Class::member>(object) takes a member function");
    bind<Object, &Watcher::call_member<Method, Object>>(std::addressof(object));
  }
  /// Makes the callback a function object the caller keeps, called through its own type (no
  /// std::function on the way): `watcher.set_callback(std::ref(lambda))`.
  /// Throws: std::bad_alloc, changing nothing.
  /// Lifetime: the function object must outlive the binding, as for the member function form.
  template <class Function>
  void set_callback(std::reference_wrapper<Function> function) {
    static_assert(std::is_invocable_v<Function&, Args...>,
                  "the function object must be callable with the watcher's callback arguments");
    bind<Function, &Watcher::call_function<Function>>(std::addressof(function.get()));
  }
  /// Runs the callback now, as if its event had fired.
  /// Throws: what the callback throws.
  void invoke() { run_callback(self().fired_events()); }
  /// Drops a pending event; returns its revents (0 when none was pending).
  int clear_pending() noexcept { return attached() ? ev_clear_pending(raw_loop_, &watcher_) : 0; }
  /// Makes the watcher pending as if its event had fired (ev_feed_event).
  /// Throws: std::logic_error if its Loop is gone.
  void feed() { feed_events(self().fired_events()); }
  /// The Loop this watcher belongs to. Only while attached().
  Loop& loop() const noexcept { return *loop_; }
  /// The libev watcher, for code that already uses libev. Do not start or stop it behind evcxx's
  /// back while its Loop is being destroyed.
  Native* native() noexcept { return &watcher_; }
  /// The libev watcher, read-only.
  const Native* native() const noexcept { return &watcher_; }

 protected:
  using NativeTraits = detail::NativeTraits<Native>;

  Watcher(Loop& loop, Callback callback) : WatcherLink(loop), callback_(std::move(callback)) {
    ev_init(&watcher_, &Watcher::on_event);
    watcher_.data = this;
  }
  // The derived destructor stops the watcher first when its stop_native() does more than libev's.
  ~Watcher() override {
    if (running_ != nullptr) end_running_callbacks();
    if (attached()) NativeTraits::stop(raw_loop_, &watcher_);
  }

  // The hooks a watcher type may redefine (privately, befriending this base).
  // start() and stop(): libev's start and stop plus any bookkeeping of the type.
  void start_native() { NativeTraits::start(raw_loop_, &watcher_); }
  void stop_native() noexcept { NativeTraits::stop(raw_loop_, &watcher_); }
  // The revents invoke() and feed() deliver.
  int fired_events() const noexcept { return NativeTraits::event; }
  // Calls the callback (a Callback, or a compile-time callback's caller) with the arguments
  // libev's revents stand for.
  template <class Function>
  void deliver(Function&& callback, int revents) {
    static_assert(sizeof...(Args) == 0, "a callback with arguments needs its own deliver()");
    static_cast<void>(revents);
    callback();
  }
  // What an event does while the callback is empty.
  void run_without_callback() {}
  // Whether the callback about to run for revents may close or change descriptors after the
  // loop's closed-descriptor check, which must then run again (Io errors, Prepares; see Io).
  bool recheck_fds_after(int revents) const noexcept {
    static_cast<void>(revents);
    return false;
  }

  // Restarts an active watcher around a parameter change, as set(...) promises.
  template <class Change>
  void restart_with(Change&& change) {
    const bool was_active = active();
    if (was_active) stop();
    std::forward<Change>(change)();
    if (was_active) start();
  }

  // invoke() and feed() with explicit revents, for watcher types that offer them.
  void run_callback(int revents) {
    if constexpr (std::is_same_v<Native, ev_async>) EVCXX_TSAN_ACQUIRE(&watcher_);
    if (callback_) {
      Running frame(*this);
      self().deliver(frame.callback_, revents);
    } else if (running_ != nullptr && !running_->replaced_) {
      self().deliver(running_->callback_, revents);  // again, inside its own callback
    } else {
      self().run_without_callback();
    }
  }
  void feed_events(int revents) {
    require_attached("feed()");
    fed_ = true;
    ev_feed_event(raw_loop_, &watcher_, revents);
  }

  Native watcher_;

 private:
  // One call of the callback in progress, on the stack. It holds the callback object meanwhile,
  // so the callback may replace itself or destroy the watcher; it puts it back unless either
  // happened.
  class Running {
   public:
    explicit Running(Watcher& watcher) noexcept : watcher_(watcher), outer_(watcher.running_) {
      callback_.swap(watcher.callback_);
      watcher.running_ = this;
    }
    ~Running() {
      if (!alive_) return;
      watcher_.running_ = outer_;
      if (!replaced_) watcher_.callback_.swap(callback_);
    }
    Running(const Running&) = delete;
    Running& operator=(const Running&) = delete;

   private:
    friend class Watcher;
    Watcher& watcher_;
    Running* const outer_;
    Callback callback_;
    bool alive_ = true;      // the watcher still exists
    bool replaced_ = false;  // set_callback() ran meanwhile: the new callback stays
  };

  Derived& self() noexcept { return static_cast<Derived&>(*this); }
  const Derived& self() const noexcept { return static_cast<const Derived&>(*this); }

  void stop_for_detach() noexcept final { self().stop_native(); }
  bool holds_reference() const noexcept override { return active(); }

  void replace_running_callbacks() noexcept {
    for (Running* r = running_; r != nullptr; r = r->outer_) r->replaced_ = true;
  }
  void end_running_callbacks() noexcept {
    for (Running* r = running_; r != nullptr; r = r->outer_) r->alive_ = false;
  }

  // A compile-time callback: how libev's callback calls it, with no type erasure on the way.
  template <auto Method, class Object>
  static void call_member(Object* object, Args... args) {
    (object->*Method)(std::forward<Args>(args)...);
  }
  template <class Function>
  static void call_function(Function* function, Args... args) {
    (*function)(std::forward<Args>(args)...);
  }
  // Installs a compile-time callback: on_bound_event runs it for libev; callback_ keeps an
  // equivalent std::function for invoke() (which may throw) and for calls nested inside it.
  template <class Object, void (*Call)(Object*, Args...)>
  void bind(Object* object) {
    callback_ = [object](Args... args) { Call(object, std::forward<Args>(args)...); };
    if (running_ != nullptr) replace_running_callbacks();
    bound_object_ = const_cast<void*>(static_cast<const void*>(object));
    ev_set_cb(&watcher_, (&Watcher::on_bound_event<Object, Call>));
  }
  void unbind() noexcept {
    bound_object_ = nullptr;
    ev_set_cb(&watcher_, &Watcher::on_event);
  }

  // What both libev callbacks do around the call: no exception may unwind through libev's frames,
  // and the closed-descriptor check runs again when the callback may have changed descriptors.
  template <class Call>
  static void dispatch_event(Watcher& watcher, int revents, Call&& call) noexcept {
    Loop* const loop = watcher.loop_;  // read now: the callback may destroy the watcher
    // A fed callback may run in the prepare phase, right before libev registers descriptors.
    bool recheck = watcher.self().recheck_fds_after(revents);
    if (watcher.fed_) {
      watcher.fed_ = false;
      recheck = true;
    }
    try {
      call();
    } catch (...) {
      loop->capture_exception(std::current_exception());
    }
    if (recheck && fd_guard_slot(*loop) != nullptr) detail::recheck_closed_fds(*loop);
  }

  static void on_event(struct ev_loop*, Native* w, int revents) noexcept {
    auto& watcher = *static_cast<Watcher*>(w->data);
    dispatch_event(watcher, revents, [&] { watcher.run_callback(revents); });
  }
  template <class Object, void (*Call)(Object*, Args...)>
  static void on_bound_event(struct ev_loop*, Native* w, int revents) noexcept {
    auto& watcher = *static_cast<Watcher*>(w->data);
    auto* const object = static_cast<Object*>(watcher.bound_object_);
    if constexpr (std::is_same_v<Native, ev_async>) EVCXX_TSAN_ACQUIRE(w);
    dispatch_event(watcher, revents, [&] {
      watcher.self().deliver([object](Args... args) { Call(object, std::forward<Args>(args)...); },
                             revents);
    });
  }

  Callback callback_;
  void* bound_object_ = nullptr;  // the object of a compile-time callback (see bind())
  Running* running_ = nullptr;    // the innermost call of the callback in progress
  bool fed_ = false;              // feed() made it pending: check descriptors after its callback
};

EVCXX_END_NAMESPACE
