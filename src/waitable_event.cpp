#include "evcxx/waitable_event.hpp"

#include "cpu_relax.hpp"

#include <linux/futex.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <ctime>
#include <thread>

namespace evcxx {

namespace {

constexpr std::uint32_t kSetBit = 1;
constexpr std::uint32_t kGeneration = 2;
constexpr std::chrono::microseconds kSpinTime{5};
// A wasted spin costs kSpinMissCost; a wait spins while the misses are below kMaxSpinMisses and
// each wait that does not spin takes one off: after a run of misses, one wait in 13 spins.
constexpr std::uint32_t kSpinMissCost = 4;
constexpr std::uint32_t kMaxSpinMisses = 4 * kSpinMissCost;

// Spinning only helps when the setter can run meanwhile on another CPU.
const bool spin_before_sleep = std::thread::hardware_concurrency() > 1;

long futex(std::atomic<std::uint32_t>& word, int op, std::uint32_t value,
           const struct timespec* deadline) noexcept {
  static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t));
  return syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), op, value, deadline, nullptr,
                 FUTEX_BITSET_MATCH_ANY);
}

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

WaitableEvent::WaitableEvent(Loop& loop, std::function<void()> on_set)
    : announce_(static_cast<bool>(on_set)),
      // The Async's callback owns on_set, so on_set may destroy this event.
      async_(loop, deferred, [this, on_set = std::move(on_set)] {
        if (on_set && is_set()) on_set();
      }) {
  if (announce_) async_.start();
}

WaitableEvent::~WaitableEvent() {
  const int fd = fd_.load(std::memory_order_acquire);
  if (fd >= 0) ::close(fd);
}

void WaitableEvent::set() noexcept {
  // One atomic step sets the bit and bumps the generation: were they two, a bump delayed past a
  // waiter's wake-up and clear() would release that waiter's next wait() with nothing set.
  std::uint32_t word = word_.load(std::memory_order_relaxed);
  do {
    if ((word & kSetBit) != 0) return;  // already set: this load was the whole cost
  } while (!word_.compare_exchange_weak(word, (word + kGeneration) | kSetBit,
                                        std::memory_order_seq_cst, std::memory_order_relaxed));
  ErrnoGuard keep_errno;
  if (waiters_.load(std::memory_order_seq_cst) != 0) {
    futex(word_, FUTEX_WAKE_PRIVATE, INT_MAX, nullptr);
  }
  if (fd_.load(std::memory_order_seq_cst) >= 0) sync_fd();
  if (announce_) async_.send();
}

void WaitableEvent::clear() noexcept {
  if ((word_.fetch_and(~kSetBit, std::memory_order_seq_cst) & kSetBit) == 0) return;
  ErrnoGuard keep_errno;
  if (fd_.load(std::memory_order_seq_cst) >= 0) sync_fd();
}

bool WaitableEvent::is_set() const noexcept {
  return (word_.load(std::memory_order_acquire) & kSetBit) != 0;
}

void WaitableEvent::wait() noexcept {
  wait_until_steady(std::chrono::steady_clock::time_point::max());
}

bool WaitableEvent::wait_until_steady(std::chrono::steady_clock::time_point deadline) noexcept {
  const std::uint32_t seen = word_.load(std::memory_order_acquire);
  if ((seen & kSetBit) != 0) return true;
  struct timespec until {};
  const struct timespec* until_ptr = nullptr;
  if (deadline != std::chrono::steady_clock::time_point::max()) {
    // libstdc++'s steady_clock is CLOCK_MONOTONIC, FUTEX_WAIT_BITSET's default clock.
    const auto ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(deadline.time_since_epoch()).count();
    if (ns <= 0) return false;
    until.tv_sec = static_cast<time_t>(ns / 1000000000);
    until.tv_nsec = static_cast<long>(ns % 1000000000);
    until_ptr = &until;
  }
  // A set() often comes within microseconds (a hand-off between two running threads): look
  // again for a moment before sleeping, which spares both sides a system call. Adaptive: after
  // a few spins in vain (the setter could not run meanwhile, say on a busy machine) only an
  // occasional wait spins, to notice when spinning pays again.
  if (spin_before_sleep) {
    const std::uint32_t misses = spin_misses_.load(std::memory_order_relaxed);
    if (misses < kMaxSpinMisses) {
      const auto spin_until = std::min(deadline, std::chrono::steady_clock::now() + kSpinTime);
      for (unsigned i = 1;; ++i) {
        if (word_.load(std::memory_order_acquire) != seen) {
          if (misses != 0) spin_misses_.store(0, std::memory_order_relaxed);
          return true;
        }
        detail::cpu_relax();
        if (i % 64 == 0 && std::chrono::steady_clock::now() >= spin_until) break;
      }
      spin_misses_.store(misses + kSpinMissCost, std::memory_order_relaxed);
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
    if (futex(word_, FUTEX_WAIT_BITSET_PRIVATE, seen, until_ptr) != 0 && errno == ETIMEDOUT) {
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
  const int created = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (created < 0) return -1;
  int expected = -1;
  if (!fd_.compare_exchange_strong(expected, created, std::memory_order_seq_cst)) {
    ::close(created);  // another caller created it first
    return expected;
  }
  sync_fd();
  return created;
}

void WaitableEvent::sync_fd() const noexcept {
  // Every caller brings the fd in line itself, so set() and clear() return only once the fd agrees
  // with them. The operations need no lock: a write leaves the eventfd readable however often it
  // is repeated, a read always empties it. A caller whose operation raced with a later change of
  // the word sees that change on its re-check and redoes it; whoever made the change does the
  // same after it, so the last operation always matches the word.
  const int fd = fd_.load(std::memory_order_acquire);
  bool want = (word_.load(std::memory_order_seq_cst) & kSetBit) != 0;
  for (;;) {
    std::uint64_t value = 1;
    if (want) {
      while (::write(fd, &value, sizeof value) < 0 && errno == EINTR) {
      }
    } else {
      while (::read(fd, &value, sizeof value) < 0 && errno == EINTR) {
      }
    }
    const bool now = (word_.load(std::memory_order_seq_cst) & kSetBit) != 0;
    if (now == want) return;
    want = now;
  }
}

}  // namespace evcxx
