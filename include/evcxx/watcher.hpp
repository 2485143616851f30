#pragma once

#include <ev.h>

#include <cstddef>
#include <cstring>
#include <exception>
#include <functional>
#include <new>
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
/// Callbacks: a watcher keeps its callback by the callback's own type (see Callable), and libev
/// calls a function made for that type, so a lambda runs with no std::function on the way. A
/// std::function passed in is kept as one, on the heap, and runs where it is: each call then costs
/// what calling the std::function costs.
///
/// Errors: out of memory, a constructor (its own bookkeeping) throws std::bad_alloc and changes
/// nothing: the Loop and its other watchers are untouched. Making the Callable argument (a
/// std::function, a callback larger than one, or one whose move may throw, is kept on the heap) may
/// throw
/// std::bad_alloc, or what copying the function object throws, before the call, which then changes
/// nothing. stop() never allocates, and start() never throws std::bad_alloc (Io falls back to a
/// wider check when its bookkeeping cannot allocate). Once its Loop exists no watcher needs a
/// descriptor that could run out (Stat falls back to polling). A callback that throws while the
/// loop runs it is handled as Loop::run() says.
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
  struct Ops;
  struct Running;
  template <class Function>
  struct Stored;

 public:
  /// The std::function type a callback may be given as (any function object will do: see
  /// Callable).
  using Callback = std::function<void(Args...)>;

  /// A callback on its way into a watcher: any function object callable with the callback's
  /// arguments (a lambda, a std::function, a function pointer, a std::reference_wrapper), or
  /// nothing (nullptr, `{}` or an empty std::function). It keeps the function object by its own
  /// type: inline when it fits in a std::function and moves without throwing, on the heap
  /// otherwise. A std::function itself always goes to the heap (one allocation when it is kept),
  /// where a call runs it in place: moving it out and back around each call, as an inline one
  /// would need, costs more than the call. Move-only: watchers take a temporary (what a lambda
  /// argument converts to). Pass the lambda itself rather than a std::function made from it: a
  /// std::function is kept as one, and each call then goes through it (about 1.4 times libev's
  /// dispatch time, against about 1.0 for the lambda).
  ///
  /// A call runs a copy of a small trivially copyable function object that a const call cannot
  /// change (a lambda capturing pointers and references), and a mutable lambda's copy goes back
  /// after the call; state that a const operator() changes in a `mutable` data member of such an
  /// object is therefore not kept between calls: keep it behind a pointer.
  class Callable {
   public:
    /// No callback.
    Callable() noexcept = default;
    /// No callback.
    Callable(std::nullptr_t) noexcept {}  // NOLINT(google-explicit-constructor): as std::function
    /// Keeps `function` (a copy, or what it is moved from); an empty std::function or a null
    /// function pointer keeps nothing.
    /// Throws: what copying or moving `function` throws; std::bad_alloc when it needs the heap.
    template <
        class Function, class Kept = std::decay_t<Function>,
        std::enable_if_t<!std::is_same_v<Kept, Callable> && !std::is_same_v<Kept, std::nullptr_t> &&
                             std::is_invocable_v<Kept&, Args...>,
                         int> = 0>
    Callable(Function&& function) {  // NOLINT(google-explicit-constructor): as std::function
      if constexpr (std::is_same_v<Kept, Callback> || std::is_pointer_v<Kept>) {
        if (!function) return;
      }
      Stored<Kept>::construct(storage_, std::forward<Function>(function));
      ops_ = &Stored<Kept>::ops;
    }
    /// Takes what `other` keeps, leaving it empty.
    Callable(Callable&& other) noexcept { take(other); }
    /// Drops what it keeps, then takes what `other` keeps, leaving it empty.
    Callable& operator=(Callable&& other) noexcept {
      if (this != &other) {
        reset();
        take(other);
      }
      return *this;
    }
    Callable(const Callable&) = delete;
    Callable& operator=(const Callable&) = delete;
    ~Callable() { reset(); }
    /// True when it holds a callback.
    explicit operator bool() const noexcept { return ops_ != nullptr; }

   private:
    friend class Watcher;
    struct Storage {
      alignas(Callback) unsigned char bytes[sizeof(Callback)];
    };

    void take(Callable& other) noexcept {
      ops_ = other.ops_;
      if (ops_ == nullptr) return;
      if (ops_->relocate != nullptr) {
        ops_->relocate(&storage_, &other.storage_);
      } else {
        std::memcpy(&storage_, &other.storage_, sizeof(Storage));
      }
      other.ops_ = nullptr;
    }
    void reset() noexcept {
      if (ops_ != nullptr && ops_->destroy != nullptr) ops_->destroy(&storage_);
      ops_ = nullptr;
    }
    // Gives up a heap-kept object without destroying it (a running frame took it over).
    void release() noexcept { ops_ = nullptr; }

    Storage storage_{};         // zeroed: relocating copies all of it, used or not
    const Ops* ops_ = nullptr;  // what to do with storage_; null: no callback
  };

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
  /// Replaces the callback (any function object: see Callable). Safe inside the callback itself:
  /// the running one finishes first.
  void set_callback(Callable callback) noexcept {
    hand_over_running_callback(true);
    callable_ = std::move(callback);
    ev_set_cb(&watcher_, libev_callback());
  }
  /// Makes the callback the member function `Method` called on `object`, resolved at compile
  /// time, as with the set method of ev++.h: `watcher.set_callback<&Class::member>(object)`.
  /// Replaces the callback as set_callback() does; a later set_callback() replaces it in turn.
  /// Lifetime: `object` must outlive the binding (the watcher, or until the next set_callback()).
  template <auto Method, class Object>
  void set_callback(Object& object) noexcept {
    static_assert(std::is_member_function_pointer_v<decltype(Method)>,
                  "set_callback<&Class::member>(object) takes a member function");
    set_callback(Callable(BoundMember<Method, Object>{std::addressof(object)}));
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
  /// back while its Loop is being destroyed, and do not change its callback.
  Native* native() noexcept { return &watcher_; }
  /// The libev watcher, read-only.
  const Native* native() const noexcept { return &watcher_; }

 protected:
  using NativeTraits = detail::NativeTraits<Native>;

  Watcher(Loop& loop, Callable&& callback) : WatcherLink(loop), callable_(std::move(callback)) {
    ev_init(&watcher_, libev_callback());
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
  // Calls the callback with the arguments libev's revents stand for.
  template <class Function>
  void deliver(Function& callback, int revents) {
    static_assert(sizeof...(Args) == 0, "a callback with arguments needs its own deliver()");
    static_cast<void>(revents);
    callback();
  }
  // What an event does while there is no callback.
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
    if (callable_.ops_ != nullptr) {
      callable_.ops_->run(*this, revents);
    } else {
      if constexpr (std::is_same_v<Native, ev_async>) EVCXX_TSAN_ACQUIRE(&watcher_);
      self().run_without_callback();
    }
  }
  void feed_events(int revents) {
    require_attached("feed()");
    fed_ = true;
    ev_feed_event(raw_loop_, &watcher_, revents);
  }

  // Declared before the libev struct so that what a dispatch reads shares its cache lines.
 private:
  Running* running_ = nullptr;  // the innermost call of the callback in progress
  bool fed_ = false;            // feed() made it pending: check descriptors after its callback

 protected:
  Native watcher_;

 private:
  using LibevCallback = void (*)(struct ev_loop*, Native*, int);

  // What a Callable does with the function object it keeps, made once per type.
  struct Ops {
    LibevCallback on_event;              // libev's callback for a watcher keeping this type
    void (*run)(Watcher&, int revents);  // invoke(): runs it as libev would
    void (*relocate)(void* to, void* from) noexcept;  // null: copy the bytes
    void (*destroy)(void* storage) noexcept;          // null: nothing to do
    bool on_heap;                                     // storage holds a pointer to the object
  };

  // One call of the callback in progress, on the stack, innermost first. It runs its own
  // object (a copy, or the heap object), so the callback may replace itself or destroy the
  // watcher; a copy goes back unless either happened.
  struct Running {
    Running* outer;
    void* object;           // the function object running
    bool alive = true;      // the watcher still exists
    bool replaced = false;  // set_callback() ran meanwhile: the new callback stays
    bool owns = false;      // the object is a heap object this frame must destroy
  };

  // How a function object of type Function is kept and run.
  template <class Function>
  struct Stored {
    using Storage = typename Callable::Storage;
    static constexpr std::size_t room = sizeof(Storage);
    static constexpr std::size_t room_alignment = alignof(Storage);
    // A std::function never fits: moving one into the frame and back around each call costs more
    // than the call, and on the heap it runs in place (its own target may move when it moves).
    static constexpr bool fits = sizeof(Function) <= room && alignof(Function) <= room_alignment &&
                                 !std::is_same_v<Function, Callback>;
    // Copied: the bytes go to the frame (and back, if calling may change them).
    static constexpr bool copied = fits && std::is_trivially_copyable_v<Function>;
    // Moved: into the frame and back (a lambda owning a std::string, say).
    static constexpr bool moved = fits && !copied && std::is_nothrow_move_constructible_v<Function>;
    static constexpr bool on_heap = !copied && !moved;
    static constexpr bool may_change = !std::is_invocable_v<const Function&, Args...>;
    struct Empty {};
    // Room for a copy of the function object on the stack (none for a heap object).
    using Copy = std::conditional_t<on_heap, Empty, Storage>;

    template <class From>
    static void construct(Storage& storage, From&& from) {
      if constexpr (on_heap) {
        ::new (static_cast<void*>(&storage)) Function*(new Function(std::forward<From>(from)));
      } else {
        ::new (static_cast<void*>(&storage)) Function(std::forward<From>(from));
      }
    }
    static Function* kept(void* storage) noexcept {
      if constexpr (on_heap) {
        return *std::launder(static_cast<Function**>(storage));
      } else {
        return std::launder(static_cast<Function*>(storage));
      }
    }
    static void relocate(void* to, void* from) noexcept {
      if constexpr (moved) {  // only moved objects are relocated by a call
        Function* source = kept(from);
        ::new (to) Function(std::move(*source));
        source->~Function();
      } else {
        static_cast<void>(to);
        static_cast<void>(from);
      }
    }
    static void destroy(void* storage) noexcept {
      if constexpr (on_heap) {
        delete kept(storage);
      } else {
        kept(storage)->~Function();
      }
    }

    /// A frame that runs the callable: a copy of it, or the heap object itself (internal).
    class Frame : public Running {
     public:
      /// Enters the call: the innermost frame of `watcher` from now on.
      explicit Frame(Watcher& watcher) noexcept
          : Running{watcher.running_, nullptr}, watcher_(watcher) {
        void* const stored = &watcher.callable_.storage_;
        if constexpr (on_heap) {
          this->object = kept(stored);
        } else if constexpr (copied) {
          std::memcpy(static_cast<void*>(&copy_), stored, sizeof(Function));
          this->object = std::launder(reinterpret_cast<Function*>(&copy_));
        } else {
          this->object = ::new (static_cast<void*>(&copy_)) Function(std::move(*kept(stored)));
        }
        Running* self = this;
#if defined(__GNUC__)
        // ~Frame takes the address back unless the callback destroyed the watcher, a path on
        // which g++ 12 would warn of a dangling pointer: hide the address from that analysis.
        __asm__("" : "+r"(self));
#endif
        watcher.running_ = self;
      }
      ~Frame() {
        auto* const running = static_cast<Function*>(this->object);
        if (this->alive) {
          watcher_.running_ = this->outer;
          if (!this->replaced) put_back(running);
        }
        if constexpr (on_heap) {
          if (this->owns) delete running;
        } else if constexpr (moved) {
          running->~Function();
        }
      }
      Frame(const Frame&) = delete;
      Frame& operator=(const Frame&) = delete;

     private:
      void put_back(Function* running) noexcept {
        void* const stored = &watcher_.callable_.storage_;
        if constexpr (copied && may_change) {
          std::memcpy(stored, static_cast<const void*>(running), sizeof(Function));
        } else if constexpr (moved) {
          Function* const moved_from = kept(stored);
          moved_from->~Function();
          ::new (stored) Function(std::move(*running));
        }
        static_cast<void>(running);
      }

      Watcher& watcher_;
      Copy copy_;
    };

    // Runs the callback for libev or invoke(): again in place when it runs already (invoke() or
    // a nested loop inside its own callback), else in a frame of its own.
    static void run(Watcher& watcher, int revents) {
      if constexpr (std::is_same_v<Native, ev_async>) EVCXX_TSAN_ACQUIRE(&watcher.watcher_);
      if constexpr (copied && !may_change) {
        // Calling cannot change it, so a copy on the stack is all the safety needed: it lives
        // through a replacement or the watcher's destruction, and nothing goes back.
        Copy copy;
        std::memcpy(static_cast<void*>(&copy), &watcher.callable_.storage_, sizeof(Function));
        watcher.self().deliver(*std::launder(reinterpret_cast<Function*>(&copy)), revents);
      } else {
        Running* const running = watcher.running_;
        if (running != nullptr && !running->replaced) {
          watcher.self().deliver(*static_cast<Function*>(running->object), revents);
          return;
        }
        Frame frame(watcher);
        watcher.self().deliver(*static_cast<Function*>(frame.object), revents);
      }
    }

    static void on_event(struct ev_loop*, Native* w, int revents) noexcept {
      auto& watcher = *static_cast<Watcher*>(w->data);
      dispatch_event(watcher, revents, [&] { run(watcher, revents); });
    }

    static constexpr Ops ops{&on_event, &run, moved ? &relocate : nullptr,
                             copied ? nullptr : &destroy, on_heap};
  };

  // A member function bound to its object: set_callback<&Class::member>(object).
  template <auto Method, class Object>
  struct BoundMember {
    Object* object;
    void operator()(Args... args) const { (object->*Method)(std::forward<Args>(args)...); }
  };

  Derived& self() noexcept {
    return static_cast<Derived&>(*this);
  }
  const Derived& self() const noexcept {
    return static_cast<const Derived&>(*this);
  }

  void stop_for_detach() noexcept final {
    self().stop_native();
  }
  bool holds_reference() const noexcept override {
    return active();
  }

  LibevCallback libev_callback() const noexcept {
    return callable_.ops_ != nullptr ? callable_.ops_->on_event : &Watcher::on_empty_event;
  }
  // Only the innermost frame can be running the callback kept now (a replaced one runs an
  // older object): it takes a heap object over, so that the object lives until it returns.
  void hand_over_running_callback(bool replacing) noexcept {
    Running* const running = running_;
    if (running == nullptr || running->replaced) return;
    if (replacing) running->replaced = true;
    if (callable_.ops_ != nullptr && callable_.ops_->on_heap) {
      running->owns = true;
      callable_.release();
    }
  }
  void end_running_callbacks() noexcept {
    hand_over_running_callback(false);
    for (Running* r = running_; r != nullptr; r = r->outer) r->alive = false;
  }

  // What libev's callbacks do around the call: no exception may unwind through libev's frames,
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

  static void on_empty_event(struct ev_loop*, Native* w, int revents) noexcept {
    auto& watcher = *static_cast<Watcher*>(w->data);
    dispatch_event(watcher, revents, [&] { watcher.run_callback(revents); });
  }

  Callable callable_;  // right after the libev struct: a dispatch reads both
};

EVCXX_END_NAMESPACE
