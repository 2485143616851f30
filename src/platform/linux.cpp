// The Linux platform layer: an eventfd as the wake-up descriptor, futex(2) for waits and
// membarrier(2) as the heavy side of the fence pair.
#include "platform.hpp"

#include <linux/futex.h>
#include <linux/membarrier.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <ctime>

EVCXX_BEGIN_NAMESPACE
namespace detail::platform {

namespace {

long futex(const std::atomic<std::uint32_t>& word, int op, std::uint32_t value,
           const struct timespec* deadline) noexcept {
  static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t));
  return syscall(SYS_futex, reinterpret_cast<const std::uint32_t*>(&word), op, value, deadline,
                 nullptr, FUTEX_BITSET_MATCH_ANY);
}

// MEMBARRIER_CMD_PRIVATE_EXPEDITED lets the rare heavy fence pair with a compiler-only fence in
// every other thread.
bool register_membarrier() noexcept {
  // Only the expedited private command: the others disturb the whole machine or sleep.
  const long commands = syscall(__NR_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
  if (commands < 0 || (commands & MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0 ||
      (commands & MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0) {
    return false;
  }
  return syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
}

}  // namespace

int wakeup_create() noexcept {
  return ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}

void wakeup_signal(int wakeup) noexcept {
  const std::uint64_t value = 1;
  while (::write(wakeup, &value, sizeof value) < 0 && errno == EINTR) {
  }
}

void wakeup_drain(int wakeup) noexcept {
  std::uint64_t value = 0;  // one read empties the eventfd's counter
  while (::read(wakeup, &value, sizeof value) < 0 && errno == EINTR) {
  }
}

void wakeup_close(int wakeup) noexcept {
  ::close(wakeup);
}

bool wait(const std::atomic<std::uint32_t>& word, std::uint32_t expected,
          std::chrono::steady_clock::time_point deadline) noexcept {
  struct timespec until {};
  const struct timespec* until_ptr = nullptr;
  if (deadline != std::chrono::steady_clock::time_point::max()) {
    // steady_clock is CLOCK_MONOTONIC (libstdc++ and libc++), FUTEX_WAIT_BITSET's default clock.
    const auto ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(deadline.time_since_epoch()).count();
    if (ns <= 0) return false;
    until.tv_sec = static_cast<time_t>(ns / 1000000000);
    until.tv_nsec = static_cast<long>(ns % 1000000000);
    until_ptr = &until;
  }
  return futex(word, FUTEX_WAIT_BITSET_PRIVATE, expected, until_ptr) == 0 || errno != ETIMEDOUT;
}

void wake_all(const std::atomic<std::uint32_t>& word) noexcept {
  futex(word, FUTEX_WAKE_PRIVATE, INT_MAX, nullptr);
}

bool asymmetric_fences() noexcept {
  static const bool registered = register_membarrier();
  return registered;
}

bool heavy_fence() noexcept {
  if (!asymmetric_fences()) {
    seq_cst_fence();
    return true;
  }
  if (syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0) return true;
  // A forked child inherits the registration's result but not the registration: register again.
  return syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0 &&
         syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0;
}

}  // namespace detail::platform
EVCXX_END_NAMESPACE
