#include "evcxx/loop.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "closed_fd_guard.hpp"
#include "cpu_relax.hpp"
#include "embed_graph.hpp"
#include "evcxx/async.hpp"
#include "evcxx/detail/tsan.hpp"
#include "evcxx/error.hpp"
#include "evcxx/watcher.hpp"
#include "immortal.hpp"
#include "once_wait.hpp"
#include "platform/platform.hpp"
#include "task_queue.hpp"

EVCXX_BEGIN_NAMESPACE

// What post() and stop() need: one ev_async that does not keep the loop alive, and the queue.
struct Loop::Impl {
  explicit Impl(struct ev_loop* loop) : raw_loop(loop), tasks(&Impl::wake, this) {}

  // The queue's wake-up: ev_async_send is safe from any thread.
  static void wake(void* self) noexcept {
    Impl& impl = *static_cast<Impl*>(self);
    EVCXX_RELEASE_FOR_SEND(&impl.wakeup);
    ev_async_send(impl.raw_loop, &impl.wakeup);
  }
  // A task threw: handled like a throwing callback.
  static void task_failed(void* loop, std::exception_ptr error) noexcept {
    static_cast<Loop*>(loop)->capture_exception(std::move(error));
  }
  // ev_break() was called: the busy poll does not spin in this iteration (libev hides its flag).
  void note_break(bool cancel) noexcept {
    broken = !cancel;
    broken_iteration = ev_iteration(raw_loop);
  }

  ev_async wakeup;
  struct ev_loop* const raw_loop;
  std::atomic<bool> stop_requested{false};
  std::atomic<detail::LoopChore*> chores{nullptr};  // newest first
  std::atomic<std::thread::id> running_thread{};    // inside run(), else none
  detail::TaskQueue tasks;
  std::function<void()> release_hook;
  std::function<void()> acquire_hook;
  std::function<void(Loop&)> invoke_hook;
  bool in_poll_hook = false;  // loop thread: a release/acquire hook is running
  bool holds_ref = false;     // loop thread: queued tasks keep run() going, like an active watcher
  bool destroying = false;
  bool fork_pending = false;  // loop thread: fork() was called and no iteration has run since

  // The busy poll (set_busy_poll); loop thread.
  ev_prepare spin;  // started (and unref'd) while the busy poll is on
  std::chrono::duration<double> busy_poll{0};
  std::chrono::steady_clock::duration spin_length{0};
  Async* started_asyncs = nullptr;   // the Asyncs started through evcxx, newest first
  int active_idles = 0;              // the Idles started through evcxx
  int run_depth = 0;                 // ev_depth() inside the innermost run(); 0 outside
  int run_flags = 0;                 // that run()'s ev_run() flags
  bool broken = false;               // ev_break() was called in iteration broken_iteration
  bool tasks_wait_for_poll = false;  // the last batch left tasks that must wait for the poll
  bool serving_spin = false;         // the busy poll serves: batches leave the task queue awake
  unsigned broken_iteration = 0;

  detail::OnceWait* once_waits = nullptr;  // Loop::once() waits not yet over; loop thread
};

namespace {

// Loop::from_native(): every live Loop with its ev_loop, oldest first (few entries).
class NativeRegistry {
 public:
  // A Loop may outlive the other statics.
  static NativeRegistry& instance() noexcept { return detail::immortal<NativeRegistry>(); }
  void add(struct ev_loop* native, Loop* loop) {
    const std::lock_guard<std::mutex> lock(mutex_);
    entries_.emplace_back(native, loop);
  }
  // pthread_mutex_lock on a default mutex does not fail, so these stay noexcept.
  void remove(Loop* loop) noexcept {
    const std::lock_guard<std::mutex> lock(mutex_);
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      if (it->second == loop) {
        entries_.erase(it);
        return;
      }
    }
  }
  Loop* find(struct ev_loop* native) noexcept {
    const std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& [raw, loop] : entries_) {
      if (raw == native) return loop;
    }
    return nullptr;
  }

 private:
  std::mutex mutex_;
  std::vector<std::pair<struct ev_loop*, Loop*>> entries_;
};

Loop& loop_of(struct ev_loop* loop) noexcept {
  return *static_cast<Loop*>(ev_userdata(loop));
}

void check_interval(std::chrono::duration<double> interval, const char* what) {
  if (std::isnan(interval.count()) || interval.count() < 0) {
    throw std::invalid_argument(std::string("evcxx: ") + what +
                                " must be a non-negative number of seconds");
  }
}

// libev abort()s when it cannot create a loop's wakeup eventfd (or pipe), so check first that it
// could, with `count` (1 or 2) descriptors free: the platform's wake-up descriptor is the same
// kind (an eventfd on Linux, else a pipe). Another thread may still take the last descriptor in
// between; this catches the usual case.
void check_wakeup_fd_available(int count = 1) {
  int taken[2] = {-1, -1};
  int error = 0;
  for (int i = 0; i < count && i < 2 && error == 0; ++i) {
    taken[i] = detail::platform::wakeup_create();
    if (taken[i] < 0) error = errno;
  }
  for (int fd : taken) {
    if (fd >= 0) detail::platform::wakeup_close(fd);
  }
  if (error != 0) {
    throw std::system_error(error, std::generic_category(),
                            "evcxx: cannot create the loop's wakeup eventfd or pipe (is the "
                            "process out of file descriptors?)");
  }
}

}  // namespace

Loop::Loop() : Loop(LoopFlags()) {}

Loop::Loop(LoopFlags flags) : Loop(ev_loop_new(flags.raw()), true) {}

Loop::Loop(struct ev_loop* borrowed) : Loop(borrowed, false) {}

Loop::Loop(struct ev_loop* loop, bool owned) : loop_(loop), owned_(owned) {
  if (loop_ == nullptr) {
    if (owned) {
      throw Error(
          "evcxx: ev_loop_new() failed: none of the requested backends is usable here "
          "(see Loop::supported_backends()), or the process is out of file descriptors");
    }
    throw std::invalid_argument("evcxx: Loop(ev_loop*) needs a loop, not nullptr");
  }
  if (detail::detached_loop() == nullptr) {
    if (owned_) ev_loop_destroy(loop_);
    throw Error("evcxx: could not create the internal placeholder loop (out of memory)");
  }
  try {
    check_wakeup_fd_available();
    impl_ = std::make_unique<Impl>(loop_);
    NativeRegistry::instance().add(loop_, this);  // last: nothing after it throws
  } catch (...) {
    if (owned_) ev_loop_destroy(loop_);
    throw;
  }
  ev_async_init(&impl_->wakeup, [](struct ev_loop*, ev_async* w, int) noexcept {
    EVCXX_TSAN_ACQUIRE(w);
    static_cast<Loop*>(w->data)->on_wakeup();
  });
  impl_->wakeup.data = this;
  ev_set_priority(&impl_->wakeup, EV_MAXPRI);
  ev_async_start(loop_, &impl_->wakeup);
  ev_unref(loop_);  // the wakeup alone never keeps run() from returning
  ev_prepare_init(&impl_->spin, [](struct ev_loop*, ev_prepare* w, int) noexcept {
    static_cast<Loop*>(w->data)->spin_before_block();
  });
  impl_->spin.data = this;
  // Lowest priority: the other prepare watchers have run (and may have made work) before it.
  ev_set_priority(&impl_->spin, EV_MINPRI);
}

Loop& Loop::default_loop() {
  // Never destroyed: watchers and other threads may use it until the very end of the process.
  static Loop* const instance = [] {
    // A new default loop takes its backend's and its wakeup's descriptors and starts its SIGCHLD
    // watcher, and libev abort()s if the wakeup's cannot be created.
    if (ev_default_loop_uc_() == nullptr) check_wakeup_fd_available(2);
    struct ev_loop* loop = ev_default_loop(0);
    if (loop == nullptr) {
      throw Error("evcxx: ev_default_loop() failed: no usable backend (check LIBEV_FLAGS)");
    }
    return new Loop(loop, false);
  }();
  return *instance;
}

Loop::~Loop() {
  NativeRegistry::instance().remove(this);
  impl_->tasks.discard_all();  // while the loop and its watchers still work for their destructors
  detail::discard_once_waits(impl_->once_waits);
  while (impl_->chores.load(std::memory_order_acquire) != nullptr) run_chores();
  impl_->destroying = true;
  detail::ClosedFdGuard* const fd_guard = fd_guard_;  // detached below with the watchers
  for (detail::WatcherLink* w = watchers_; w != nullptr;) {
    detail::WatcherLink* next = w->next_;
    if (!(owned_ && w->detach_after_loop_destroy())) {
      if (w->prev_ != nullptr)
        w->prev_->next_ = next;
      else
        watchers_ = next;
      if (next != nullptr) next->prev_ = w->prev_;
      w->detach(true);
    }
    w = next;
  }
  detail::ClosedFdGuard::release_after_detach(fd_guard);
  if (!owned_) {
    // The borrowed loop lives on: it must not call hooks that point at this object.
    if (impl_->release_hook) ev_set_loop_release_cb(loop_, nullptr, nullptr);
    if (impl_->invoke_hook) ev_set_invoke_pending_cb(loop_, ev_invoke_pending);
    if (ev_userdata(loop_) == this) ev_set_userdata(loop_, nullptr);
  }
  if (impl_->holds_ref) ev_unref(loop_);
  if (ev_is_active(&impl_->spin)) {
    ev_ref(loop_);
    ev_prepare_stop(loop_, &impl_->spin);
  }
  ev_ref(loop_);
  ev_async_stop(loop_, &impl_->wakeup);
  if (owned_) {
    ev_loop_destroy(loop_);            // runs the Cleanup watchers still attached
    detail::forget_embeddings(loop_);  // its epoll set is gone, and with it what it held
  }
  while (watchers_ != nullptr) {
    detail::WatcherLink* w = watchers_;
    watchers_ = w->next_;
    w->detach(false);
  }
}

Loop* Loop::from_native(struct ev_loop* loop) noexcept {
  return loop == nullptr ? nullptr : NativeRegistry::instance().find(loop);
}

detail::OnceWait*& Loop::once_waits() noexcept {
  return impl_->once_waits;
}

bool Loop::is_default() const noexcept {
  return ev_is_default_loop(loop_) != 0;
}

bool Loop::run(Run how) {
  if (impl_->in_poll_hook) {
    // libev would abort ("ev_loop recursion during release detected").
    throw std::logic_error(
        "evcxx: Loop::run() inside a release/acquire hook; the hooks may only lock and unlock");
  }
  rethrow_captured();
  // After fork() libev recreates the wakeup's descriptor in its next iteration, and abort()s if
  // it cannot.
  if (impl_->fork_pending) check_wakeup_fd_available();
  const unsigned iteration = ev_iteration(loop_);
  const std::thread::id outer =
      impl_->running_thread.exchange(std::this_thread::get_id(), std::memory_order_relaxed);
  const int outer_depth = std::exchange(impl_->run_depth, static_cast<int>(ev_depth(loop_)) + 1);
  const int outer_flags = std::exchange(impl_->run_flags, static_cast<int>(how));
  impl_->broken = false;  // ev_run() forgets an earlier ev_break() too
  const bool active = ev_run(loop_, static_cast<int>(how)) != 0;
  impl_->run_depth = outer_depth;
  impl_->run_flags = outer_flags;
  impl_->running_thread.store(outer, std::memory_order_relaxed);
  if (ev_iteration(loop_) != iteration) impl_->fork_pending = false;  // an iteration handled it
  rethrow_captured();
  return active;
}

void Loop::notify_fork() noexcept {
  impl_->fork_pending = true;
  ev_loop_fork(loop_);
}

void Loop::break_loop(Break how) noexcept {
  impl_->note_break(how == Break::cancel);
  ev_break(loop_, static_cast<int>(how));
}

void Loop::stop() noexcept {
  impl_->stop_requested.store(true, std::memory_order_release);
  EVCXX_RELEASE_FOR_SEND(&impl_->wakeup);
  ev_async_send(loop_, &impl_->wakeup);
}

void Loop::post(std::function<void()> task) {
  if (!try_post(std::move(task))) throw_stopped();
}

bool Loop::try_post(std::function<void()> task) {
  if (!task) throw std::invalid_argument("evcxx: Loop::post() needs a callable task, not empty");
  using Function = std::function<void()>;
  static_assert(detail::task_fits_inline<Function>, "a std::function is queued without boxing");
  return post_erased(detail::inline_task_ops<Function>, &task);
}

bool Loop::post_erased(const detail::TaskOps& ops, void* source) {
  return impl_->tasks.push(ops, source);
}

void Loop::throw_stopped() {
  throw LoopStopped(
      "evcxx: post() on a Loop whose LoopThread was stopped; tasks are no longer accepted (use "
      "try_post() where producers may race the shutdown)");
}

void Loop::close_posts() noexcept {
  impl_->tasks.close();
}

bool Loop::posts_closed_and_drained() const noexcept {
  return impl_->tasks.closed_and_drained();
}

bool Loop::in_release_hook() const noexcept {
  return impl_->in_poll_hook;
}

bool Loop::being_destroyed() const noexcept {
  return impl_->destroying;
}

void Loop::verify() {
  if (unrefs_ > 0) {
    // libev allows its count of referencing watchers down to -1 and aborts below; raw libev
    // watchers of C code are not counted here, so this errs towards throwing.
    int held = 0;
    for (const detail::WatcherLink* w = watchers_; w != nullptr; w = w->next_) {
      if (w->holds_reference()) ++held;
    }
    if (unrefs_ > held + 1) {
      throw std::logic_error("evcxx: Loop::verify(): unref() was called " +
                             std::to_string(unrefs_) + " times more than ref(), but only " +
                             std::to_string(held) +
                             " active watchers hold the loop (libev would abort); call ref() "
                             "before stopping a watcher whose reference you gave up");
    }
  }
  ev_verify(loop_);
}

void Loop::add_chore(detail::LoopChore& chore) noexcept {
  detail::LoopChore* head = impl_->chores.load(std::memory_order_relaxed);
  do {
    chore.next = head;
  } while (!impl_->chores.compare_exchange_weak(head, &chore, std::memory_order_release,
                                                std::memory_order_relaxed));
  EVCXX_RELEASE_FOR_SEND(&impl_->wakeup);
  ev_async_send(loop_, &impl_->wakeup);
}

void Loop::run_chores() noexcept {
  // A load first: the exchange is a full fence, and there is rarely a chore.
  if (impl_->chores.load(std::memory_order_relaxed) == nullptr) return;
  detail::LoopChore* newest_first = impl_->chores.exchange(nullptr, std::memory_order_acquire);
  detail::LoopChore* oldest_first = nullptr;
  while (newest_first != nullptr) {
    detail::LoopChore* next = newest_first->next;
    newest_first->next = oldest_first;
    oldest_first = newest_first;
    newest_first = next;
  }
  while (oldest_first != nullptr) {
    detail::LoopChore* next = oldest_first->next;  // read first: the chore may free itself
    oldest_first->run(oldest_first);
    oldest_first = next;
  }
}

bool Loop::running_on_this_thread() const noexcept {
  // Relaxed is enough: only this thread ever stores its own id.
  return impl_->running_thread.load(std::memory_order_relaxed) == std::this_thread::get_id();
}

void Loop::on_wakeup() noexcept {
  run_chores();
  impl_->tasks.run_batch(&Impl::task_failed, this, impl_->serving_spin);
  // Tasks those tasks posted are work too: run() must not return before it reaches them (the
  // queue has re-armed the wakeup for them).
  // Serving the busy poll, the cheaper look (other threads' lane words stay with their
  // producers); the reference is brought up to date when the spin ends.
  const bool more = impl_->serving_spin ? impl_->tasks.has_runnable() : impl_->tasks.has_pending();
  impl_->tasks_wait_for_poll = more;
  if (!impl_->serving_spin) hold_ref_for_tasks(more);
  if (impl_->tasks.closed_and_drained()) {
    impl_->note_break(false);
    ev_break(loop_, EVBREAK_ALL);
  }
  if (impl_->stop_requested.load(std::memory_order_relaxed) &&
      impl_->stop_requested.exchange(false, std::memory_order_acq_rel)) {
    impl_->note_break(false);
    ev_break(loop_, EVBREAK_ONE);
  }
}

void Loop::stop_serving_spin() noexcept {
  Impl& impl = *impl_;
  impl.serving_spin = false;
  if (impl.tasks.settle()) hold_ref_for_tasks(impl.tasks.has_pending());
}

void Loop::hold_ref_for_tasks(bool pending) noexcept {
  if (pending == impl_->holds_ref) return;
  if (pending) {
    ev_ref(loop_);
  } else {
    ev_unref(loop_);
  }
  impl_->holds_ref = pending;
}

void Loop::invoke_pending() {
  ev_invoke_pending(loop_);
  rethrow_captured();
}

void Loop::set_io_collect_interval(std::chrono::duration<double> interval) {
  check_interval(interval, "the io collect interval");
  ev_set_io_collect_interval(loop_, interval.count());
}

void Loop::set_timeout_collect_interval(std::chrono::duration<double> interval) {
  check_interval(interval, "the timeout collect interval");
  ev_set_timeout_collect_interval(loop_, interval.count());
}

void Loop::set_busy_poll(std::chrono::duration<double> spin) {
  if (!std::isfinite(spin.count()) || spin.count() < 0) {
    throw std::invalid_argument(
        "evcxx: the busy poll must be a finite, non-negative number of seconds (zero turns it "
        "off)");
  }
  // Beyond 30 years the spin is as good as endless, and its nanoseconds still fit.
  constexpr double longest = 1e9;
  impl_->busy_poll = spin;
  impl_->spin_length = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(std::min(spin.count(), longest)));
  const bool on = spin.count() > 0;
  impl_->tasks.set_yield_before_sleep(!on);  // a busy-polling loop spins instead of sleeping
  if (on == (ev_is_active(&impl_->spin) != 0)) return;
  if (on) {
    ev_prepare_start(loop_, &impl_->spin);
    ev_unref(loop_);  // the busy poll never keeps run() from returning
  } else {
    ev_ref(loop_);
    ev_prepare_stop(loop_, &impl_->spin);
    // Turned off by a callback the spin serves: a run nested in it has no spin to settle the
    // queue, so it settles now.
    stop_serving_spin();
  }
}

std::chrono::duration<double> Loop::busy_poll() const noexcept {
  return impl_->busy_poll;
}

void Loop::start_async(Async& async) noexcept {
  ev_async_start(loop_, async.native());
  if (async.listed_) return;
  async.listed_ = true;
  async.prev_started_ = nullptr;
  async.next_started_ = impl_->started_asyncs;
  if (async.next_started_ != nullptr) async.next_started_->prev_started_ = &async;
  impl_->started_asyncs = &async;
}

void Loop::stop_async(Async& async) noexcept {
  ev_async_stop(loop_, async.native());
  if (!async.listed_) return;
  if (async.prev_started_ != nullptr) {
    async.prev_started_->next_started_ = async.next_started_;
  } else {
    impl_->started_asyncs = async.next_started_;
  }
  if (async.next_started_ != nullptr) async.next_started_->prev_started_ = async.prev_started_;
  async.prev_started_ = async.next_started_ = nullptr;
  async.listed_ = false;
}

void Loop::count_active_idle(int change) noexcept {
  impl_->active_idles += change;
}

bool Loop::has_referencing_watchers() const noexcept {
  // libev has no query for its count of active watchers: count evcxx's as verify() does, up to
  // one more than unref() took away. Raw libev watchers are not seen (the loop does not spin).
  int held = impl_->holds_ref ? 1 : 0;
  for (const detail::WatcherLink* w = watchers_; w != nullptr && held <= unrefs_; w = w->next_) {
    if (w->holds_reference()) ++held;
  }
  return held > unrefs_;
}

void Loop::spin_before_block() noexcept {
  Impl& impl = *impl_;
  // Only where libev is about to block: directly inside run() (not Run::nowait, an ev_run() of
  // native() or an Embed's sweep).
  if (static_cast<int>(ev_depth(loop_)) != impl.run_depth || (impl.run_flags & EVRUN_NOWAIT) != 0) {
    // A run nested in a callback the spin serves is about to block: producers must wake it.
    stop_serving_spin();
    return;
  }
  // Lowest-priority prepare watchers started before this one run after it (libev runs them last
  // first), as do events they fed: run them now, as libev allows a callback to, so that the spin
  // comes last. A hook of the user's decides how callbacks run: then skip the spin instead.
  if (ev_pending_count(loop_) != 0 && !impl.invoke_hook) ev_invoke_pending(loop_);
  if (!would_block()) {
    // No spin: a run nested in a served callback cannot count on one to watch the queue.
    stop_serving_spin();
    return;
  }
  using SteadyClock = std::chrono::steady_clock;
  const SteadyClock::time_point deadline = SteadyClock::now() + impl.spin_length;
  // A send seen is served right here, so that two loops busy-polling each other never make a
  // system call; not under Run::once (one iteration, as libev's poll would end it) nor with an
  // invoke-pending hook (which decides how callbacks run): there the spin ends for libev instead.
  const bool serve = (impl.run_flags & EVRUN_ONCE) == 0 && !impl.invoke_hook;
  // Serving, the spin also watches the task queue itself, which its batches leave awake: posts
  // then wake nobody (no send, no fence). Whatever way the spin ends, the queue settles first:
  // it goes to sleep, or asks for the next batch through the wakeup.
  struct Settle {
    Loop& loop;
    ~Settle() { loop.stop_serving_spin(); }
  } settle_on_return{*this};
  // (Not serving, as in a Run::once nested in a served callback, the queue settles first.)
  if (serve) {
    impl.serving_spin = true;
  } else {
    stop_serving_spin();
  }
  const auto take_tasks = [&] {
    if (!impl.tasks.has_published()) return false;
    ev_feed_event(loop_, &impl.wakeup, EV_ASYNC);
    return true;
  };
  // The clock is read every few rounds only: it costs more than a look at the flags.
  for (unsigned round = 1;; ++round) {
    if (serve ? (take_sends() || take_tasks()) : has_sends()) {
      if (!serve) return;
      impl.tasks_wait_for_poll = false;
      ev_invoke_pending(loop_);
      // The callbacks ran in the prepare phase, after the closed-descriptor guard's check.
      if (fd_guard_ != nullptr) detail::recheck_closed_fds(*this);
      // Tasks posted by tasks run after the loop polled for I/O, as post() promises; a hook set
      // meanwhile decides how the next callbacks run.
      if (impl.tasks_wait_for_poll || impl.invoke_hook || !would_block()) return;
    } else {
      detail::cpu_relax();
    }
    if (round % 16 == 0 && SteadyClock::now() >= deadline) return;
  }
}

bool Loop::would_block() const noexcept {
  // Not when something is pending, an Idle is active, the loop was broken in this iteration or
  // nothing keeps it running (or a callback just turned the busy poll off).
  const Impl& impl = *impl_;
  if (ev_pending_count(loop_) != 0 || impl.active_idles != 0 || impl.busy_poll.count() == 0)
    return false;
  if (impl.broken && impl.broken_iteration == ev_iteration(loop_)) return false;
  return has_referencing_watchers();
}

bool Loop::has_sends() const noexcept {
  // A send sets `sent` before libev's wake-up logic, which then either finds no wake-up wanted
  // yet and skips the write (the coming poll does not block) or writes it (and wakes the poll).
  if (__atomic_load_n(&impl_->wakeup.sent, __ATOMIC_ACQUIRE) != 0) return true;
  for (const Async* async = impl_->started_asyncs; async != nullptr; async = async->next_started_) {
    if (async->sent()) return true;
  }
  return false;
}

bool Loop::take_sends() noexcept {
  bool taken = take_send(impl_->wakeup);
  for (Async* async = impl_->started_asyncs; async != nullptr; async = async->next_started_) {
    taken = take_send(*async->native()) || taken;
  }
  return taken;
}

bool Loop::take_send(ev_async& async) noexcept {
  // What libev's own wake-up callback does, with a full fence (the exchange) between clearing the
  // flag and the callback, so that a send coming meanwhile is seen again rather than lost. libev's
  // "async pending" flag stays set: later sends skip the wake-up write, and the next poll does not
  // block and finds nothing left to deliver.
  if (__atomic_load_n(&async.sent, __ATOMIC_RELAXED) == 0) return false;
  if (__atomic_exchange_n(&async.sent, 0, __ATOMIC_SEQ_CST) == 0) return false;
  ev_feed_event(loop_, &async, EV_ASYNC);
  return true;
}

void Loop::set_release_hooks(std::function<void()> release, std::function<void()> acquire) {
  if (static_cast<bool>(release) != static_cast<bool>(acquire)) {
    throw std::invalid_argument(
        "evcxx: set_release_hooks() needs both release and acquire, or neither");
  }
  impl_->release_hook = std::move(release);
  impl_->acquire_hook = std::move(acquire);
  if (!impl_->release_hook) {
    ev_set_loop_release_cb(loop_, nullptr, nullptr);
    return;
  }
  ev_set_userdata(loop_, this);
  ev_set_loop_release_cb(
      loop_,
      [](struct ev_loop* l) noexcept {
        Loop& self = loop_of(l);
        self.impl_->in_poll_hook = true;
        try {
          self.impl_->release_hook();
          self.impl_->in_poll_hook = false;
        } catch (...) {
          self.impl_->in_poll_hook = false;
          self.capture_exception(std::current_exception());
          // libev drops an ev_break() made around its poll, and is about to block: break through
          // the wakeup instead, woken now rather than at the next event.
          self.impl_->stop_requested.store(true, std::memory_order_relaxed);
          EVCXX_RELEASE_FOR_SEND(&self.impl_->wakeup);
          ev_async_send(l, &self.impl_->wakeup);
        }
      },
      [](struct ev_loop* l) noexcept {
        Loop& self = loop_of(l);
        self.impl_->in_poll_hook = true;
        try {
          self.impl_->acquire_hook();
          self.impl_->in_poll_hook = false;
        } catch (...) {
          self.impl_->in_poll_hook = false;
          self.capture_exception(std::current_exception());
          // As above; the wakeup runs with the events of this iteration.
          self.impl_->stop_requested.store(true, std::memory_order_relaxed);
          ev_feed_event(l, &self.impl_->wakeup, EV_ASYNC);
        }
      });
}

void Loop::set_invoke_pending_hook(std::function<void(Loop&)> hook) {
  impl_->invoke_hook = std::move(hook);
  if (!impl_->invoke_hook) {
    ev_set_invoke_pending_cb(loop_, ev_invoke_pending);
    return;
  }
  ev_set_userdata(loop_, this);
  ev_set_invoke_pending_cb(loop_, [](struct ev_loop* l) noexcept {
    Loop& self = loop_of(l);
    try {
      self.impl_->invoke_hook(self);
    } catch (...) {
      self.capture_exception(std::current_exception());
    }
  });
}

std::exception_ptr Loop::take_exception() noexcept {
  return std::exchange(error_, nullptr);
}

void Loop::capture_exception(std::exception_ptr error) noexcept {
  if (impl_->destroying) return;  // nobody is left to rethrow it to
  if (!error_) error_ = std::move(error);
  impl_->note_break(false);
  ev_break(loop_, EVBREAK_ONE);
}

void Loop::rethrow_captured() {
  if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
}

EVCXX_END_NAMESPACE
