#include "evcxx/waitable_event.hpp"

#include "cpu_relax.hpp"
#include "platform/platform.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <utility>

EVCXX_BEGIN_NAMESPACE

namespace {

constexpr std::uint32_t set_bit = 1;
constexpr std::uint32_t generation_unit = 2;

constexpr std::uint32_t generation_of(std::uint32_t word) noexcept {
  return word >> 1;
}
constexpr std::chrono::microseconds spin_time{5};
// A wasted spin costs spin_miss_cost; a wait spins while the misses are below max_spin_misses and
// each wait that does not spin takes one off: after a run of misses, one wait in 13 spins.
constexpr std::uint32_t spin_miss_cost = 4;
constexpr std::uint32_t max_spin_misses = 4 * spin_miss_cost;

// Spinning only helps when the setter can run meanwhile on another CPU.
const bool spin_before_sleep = std::thread::hardware_concurrency() > 1;

// set() and clear() may run in a signal handler: they leave errno as they found it.
class ErrnoGuard {
 public:
  ErrnoGuard() noexcept : saved_(errno) {}
  ~ErrnoGuard() { errno = saved_; }
  ErrnoGuard(const ErrnoGuard&) = delete;
  ErrnoGuard& operator=(const ErrnoGuard&) = delete;

 private:
  int saved_;
};

}  // namespace

// The loop's side of an event with a Loop. libev's ev_async_start/stop (and evcxx's watcher list)
// are for the loop thread only, so the Async lives here, created and destroyed on the loop thread,
// and this block outlives the event until the loop thread let go of it.
struct WaitableEvent::Announcer final : detail::LoopChore {
  Announcer(Loop& target, WaitableEvent& event, std::function<void()> on_set)
      : loop(target), owner(&event), has_on_set(static_cast<bool>(on_set)) {
    run = &Announcer::run_chore;
    // The Async's callback owns on_set, so on_set may destroy the event.
    callback = [this, on_set = std::move(on_set)] {
      if (on_set) announce(on_set);
    };
  }

  // Loop thread, gate held, owner alive: creates the Async and, with on_set, starts it.
  void start() noexcept {
    if (!async) async.emplace(loop, deferred, std::move(callback));
    if (!has_on_set || sender.load(std::memory_order_relaxed) != nullptr) return;
    loop.start_async(*async);  // as Async::start() does, without its checks
    sender.store(&*async, std::memory_order_seq_cst);
    // A set() before the store above did not send (and libev forgets a send made before the
    // start): announce it now. seq_cst pairs with set(): one of the two sees the other.
    const std::uint32_t word = owner->word_.load(std::memory_order_seq_cst);
    if ((word & set_bit) != 0 && generation_of(word) != announced) {
      async->feed();
    }
  }

  // The Async's callback: runs on_set if the event is set and the loop has not announced this
  // set() yet (a second send, from set() racing start(), is no second set).
  void announce(const std::function<void()>& on_set) {
    std::unique_lock<std::recursive_mutex> lock(gate);
    if (owner == nullptr) return;
    const std::uint32_t word = owner->word_.load(std::memory_order_acquire);
    if ((word & set_bit) == 0 || generation_of(word) == announced) return;
    announced = generation_of(word);
    // The gate stays held while on_set runs, so a destructor on another thread waits for it.
    struct Leave {
      Announcer* self;
      std::unique_lock<std::recursive_mutex>& lock;
      ~Leave() {
        const bool doomed = --self->in_callback == 0 && self->delete_after_callback;
        lock.unlock();
        if (doomed) delete self;  // the event went away inside on_set, and the loop let go
      }
    } leave{this, lock};
    ++in_callback;
    on_set();
  }

  // The event is being destroyed (ANY thread, no set() or clear() in flight).
  void release() noexcept {
    std::unique_lock<std::recursive_mutex> lock(gate);
    owner = nullptr;
    if (in_callback > 0) {  // inside on_set on this thread, which holds the gate
      delete_after_callback = true;
      return;
    }
    if (queued) return;  // the registration chore finds the owner gone and frees this
    if (async && async->attached() && !loop.running_on_this_thread()) {
      loop.add_chore(*this);  // the loop thread stops the Async and frees this
      return;
    }
    lock.unlock();
    delete this;  // on the loop thread, or the Loop is gone (the Async is detached)
  }

  // On the loop thread, or in ~Loop: registers the Async, or frees this once the event is gone.
  static void run_chore(detail::LoopChore* chore) noexcept {
    auto* self = static_cast<Announcer*>(chore);
    std::unique_lock<std::recursive_mutex> lock(self->gate);
    self->queued = false;
    if (self->owner != nullptr) {
      self->start();
      return;
    }
    if (self->in_callback > 0) {  // a nested run() inside on_set
      self->delete_after_callback = true;
      return;
    }
    lock.unlock();
    delete self;
  }

  Loop& loop;
  // Serialises the loop thread's look at the event (and on_set) with the event's destruction;
  // recursive because on_set may destroy the event or run the loop.
  std::recursive_mutex gate;
  WaitableEvent* owner;        // guarded by gate; null once the event is destroyed
  Async::Callable callback;    // moved into the Async when it is created (noexcept: kept already)
  std::optional<Async> async;  // guarded by gate; made on the loop thread
  std::atomic<Async*> sender{nullptr};  // the started Async, for set(); with on_set only
  const bool has_on_set;
  bool queued = false;                 // guarded by gate: the registration chore has not run
  int in_callback = 0;                 // guarded by gate
  bool delete_after_callback = false;  // guarded by gate
  std::uint32_t announced = 0;         // guarded by gate: the generation on_set last ran for
};

WaitableEvent::WaitableEvent() noexcept = default;

WaitableEvent::WaitableEvent(Loop& loop, std::function<void()> on_set)
    : loop_(&loop),
      announcer_([&] {
        if (loop.being_destroyed()) {
          throw std::logic_error(
              "evcxx: a WaitableEvent made for a Loop that is being destroyed (inside a Cleanup "
              "callback?); make it for a live Loop, or standalone with WaitableEvent()");
        }
        auto announcer = std::make_unique<Announcer>(loop, *this, std::move(on_set));
        if (loop.running_on_this_thread()) {
          std::lock_guard<std::recursive_mutex> lock(announcer->gate);
          announcer->start();
        } else {
          announcer->queued = true;  // handed to the loop thread below
        }
        return announcer.release();
      }()),
      announce_(announcer_->has_on_set) {
  if (announcer_->queued) loop.add_chore(*announcer_);
}

WaitableEvent::~WaitableEvent() {
  wait_for_calls_in_flight();
  if (announcer_ != nullptr) announcer_->release();
  const int fd = fd_.load(std::memory_order_acquire);
  if (fd >= 0) detail::platform::wakeup_close(fd);
}

void WaitableEvent::wait_for_calls_in_flight() const noexcept {
  // Bounded by what the caller still has to run: set() and clear() never block.
  for (unsigned spins = 0; calls_in_flight_.load(std::memory_order_acquire) != 0; ++spins) {
    if (spins < 128) {
      detail::cpu_relax();
    } else {
      std::this_thread::yield();
    }
  }
}

Async& WaitableEvent::async() {
  if (announcer_ == nullptr) {
    throw std::logic_error(
        "evcxx: WaitableEvent::async() on a standalone event; construct it with a Loop to have "
        "it announced");
  }
  std::lock_guard<std::recursive_mutex> lock(announcer_->gate);
  announcer_->start();
  return *announcer_->async;  // NOLINT(bugprone-unchecked-optional-access): start() made it
}

Loop& WaitableEvent::loop() const {
  if (loop_ == nullptr) {
    throw std::logic_error(
        "evcxx: WaitableEvent::loop() on a standalone event; it has no Loop (construct it with "
        "one)");
  }
  return *loop_;
}

void WaitableEvent::set() noexcept {
  std::uint32_t word = word_.load(std::memory_order_relaxed);
  if ((word & set_bit) != 0) return;  // already set: this load was the whole cost
  // Counted before the store that may release a waiter, which may then destroy the event.
  calls_in_flight_.fetch_add(1, std::memory_order_relaxed);
  // One atomic step sets the bit and bumps the generation: were they two, a bump delayed past a
  // waiter's wake-up and clear() would release that waiter's next wait() with nothing set.
  do {
    if ((word & set_bit) != 0) {
      calls_in_flight_.fetch_sub(1, std::memory_order_release);
      return;
    }
  } while (!word_.compare_exchange_weak(word, (word + generation_unit) | set_bit,
                                        std::memory_order_seq_cst, std::memory_order_relaxed));
  ErrnoGuard keep_errno;
  if (waiters_.load(std::memory_order_seq_cst) != 0) {
    detail::platform::wake_all(word_);
  }
  if (fd_.load(std::memory_order_seq_cst) >= 0) sync_fd();
  if (announce_) {
    if (Async* async = announcer_->sender.load(std::memory_order_seq_cst)) async->send();
  }
  calls_in_flight_.fetch_sub(1, std::memory_order_release);  // the last access to *this
}

void WaitableEvent::clear() noexcept {
  if ((word_.load(std::memory_order_relaxed) & set_bit) == 0) return;  // nothing to clear
  calls_in_flight_.fetch_add(1, std::memory_order_relaxed);
  if ((word_.fetch_and(~set_bit, std::memory_order_seq_cst) & set_bit) != 0 &&
      fd_.load(std::memory_order_seq_cst) >= 0) {
    ErrnoGuard keep_errno;
    sync_fd();
  }
  calls_in_flight_.fetch_sub(1, std::memory_order_release);
}

bool WaitableEvent::is_set() const noexcept {
  return (word_.load(std::memory_order_acquire) & set_bit) != 0;
}

void WaitableEvent::wait() noexcept {
  wait_until_steady(std::chrono::steady_clock::time_point::max());
}

bool WaitableEvent::wait_until_steady(std::chrono::steady_clock::time_point deadline) noexcept {
  const std::uint32_t seen = word_.load(std::memory_order_acquire);
  if ((seen & set_bit) != 0) return true;
  // A deadline before the clock's epoch has passed (and has no place in a futex's timespec).
  if (deadline.time_since_epoch().count() <= 0) return false;
  // A set() often comes within microseconds (a hand-off between two running threads): look
  // again for a moment before sleeping, which spares both sides a system call. Adaptive: after
  // a few spins in vain (the setter could not run meanwhile, say on a busy machine) only an
  // occasional wait spins, to notice when spinning pays again.
  if (spin_before_sleep) {
    const std::uint32_t misses = spin_misses_.load(std::memory_order_relaxed);
    if (misses < max_spin_misses) {
      const auto spin_until = std::min(deadline, std::chrono::steady_clock::now() + spin_time);
      for (unsigned i = 1;; ++i) {
        if (word_.load(std::memory_order_acquire) != seen) {
          if (misses != 0) spin_misses_.store(0, std::memory_order_relaxed);
          return true;
        }
        detail::cpu_relax();
        if (i % 64 == 0 && std::chrono::steady_clock::now() >= spin_until) break;
      }
      spin_misses_.store(misses + spin_miss_cost, std::memory_order_relaxed);
    } else {
      spin_misses_.store(misses - 1, std::memory_order_relaxed);
    }
  }
  waiters_.fetch_add(1, std::memory_order_seq_cst);
  bool released = false;
  for (;;) {
    // Any change of the word since `seen` means a set() happened (clear() alone cannot undo it).
    if (word_.load(std::memory_order_seq_cst) != seen) {
      released = true;
      break;
    }
    if (!detail::platform::wait(word_, seen, deadline)) {
      released = word_.load(std::memory_order_acquire) != seen;
      break;
    }
  }
  waiters_.fetch_sub(1, std::memory_order_seq_cst);
  return released;
}

int WaitableEvent::fd() const noexcept {
  const int existing = fd_.load(std::memory_order_acquire);
  if (existing >= 0) return existing;
  const int created = detail::platform::wakeup_create();
  if (created < 0) return -1;
  int expected = -1;
  if (!fd_.compare_exchange_strong(expected, created, std::memory_order_seq_cst)) {
    detail::platform::wakeup_close(created);  // another caller created it first
    return expected;
  }
  sync_fd();
  return created;
}

void WaitableEvent::sync_fd() const noexcept {
  // Every caller brings the fd in line itself, so set() and clear() return only once the fd agrees
  // with them. The operations need no lock: a signal leaves the descriptor readable however often
  // it is repeated, a drain always empties it. A caller whose operation raced with a later change
  // of the word sees that change on its re-check and redoes it; whoever made the change does the
  // same after it, so the last operation always matches the word.
  const int fd = fd_.load(std::memory_order_acquire);
  bool want = (word_.load(std::memory_order_seq_cst) & set_bit) != 0;
  for (;;) {
    if (want) {
      detail::platform::wakeup_signal(fd);
    } else {
      detail::platform::wakeup_drain(fd);
    }
    const bool now = (word_.load(std::memory_order_seq_cst) & set_bit) != 0;
    if (now == want) return;
    want = now;
  }
}

EVCXX_END_NAMESPACE
