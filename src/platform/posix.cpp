// The portable POSIX platform layer: a pipe as the wake-up descriptor, waits parked on
// semaphores (sem_post is async-signal-safe, unlike a condition variable) and ordinary fences.
#include "platform.hpp"

#include <fcntl.h>
#include <semaphore.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <thread>

EVCXX_BEGIN_NAMESPACE
namespace detail::platform {

namespace {

bool make_nonblocking_cloexec(int fd) noexcept {
  const int status = ::fcntl(fd, F_GETFL);
  const int descriptor = ::fcntl(fd, F_GETFD);
  return status >= 0 && descriptor >= 0 && ::fcntl(fd, F_SETFL, status | O_NONBLOCK) == 0 &&
         ::fcntl(fd, F_SETFD, descriptor | FD_CLOEXEC) == 0;
}

void close_keeping_errno(int fd) noexcept {
  const int saved = errno;
  ::close(fd);
  errno = saved;
}

// A waiting thread parks on a slot's semaphore, with the slot naming the word it waits on;
// wake_all posts every slot that names the word. Slots are never freed, so a waker that read a
// slot just before its waiter left posts a semaphore that still exists: its next waiter only
// wakes once spuriously.
struct ParkingSlot {
  std::atomic<bool> taken{false};
  std::atomic<const void*> word{nullptr};  // while a waiter is parked here
  bool initialised = false;                // only its current holder looks at it
  sem_t semaphore{};
};

constexpr int parking_slots = 128;
ParkingSlot parking[parking_slots];

ParkingSlot* take_slot() noexcept {
  for (ParkingSlot& slot : parking) {
    if (!slot.taken.load(std::memory_order_relaxed) &&
        !slot.taken.exchange(true, std::memory_order_acquire)) {
      if (!slot.initialised) {
        if (::sem_init(&slot.semaphore, 0, 0) != 0) {  // e.g. no unnamed semaphores (macOS)
          slot.taken.store(false, std::memory_order_release);
          return nullptr;
        }
        slot.initialised = true;
      }
      while (::sem_trywait(&slot.semaphore) == 0) {  // posts meant for an earlier waiter
      }
      return &slot;
    }
  }
  return nullptr;
}

// Without a slot (more waiters than slots, or no semaphores): sleep a moment and let the caller
// look at the word again; correct, only slower to notice a wake-up.
bool nap(std::chrono::steady_clock::time_point deadline) noexcept {
  const auto now = std::chrono::steady_clock::now();
  if (now >= deadline) return false;
  std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
      deadline - now, std::chrono::microseconds(200)));
  return true;
}

}  // namespace

int wakeup_create() noexcept {
  // WaitableEvent keeps one int: the pipe's write end sits at the next number (found below), so
  // wakeup_signal() needs no lookup and stays async-signal-safe.
  int ends[2];
  if (::pipe(ends) != 0) return -1;
  if (!make_nonblocking_cloexec(ends[0]) || !make_nonblocking_cloexec(ends[1])) {
    close_keeping_errno(ends[0]);
    close_keeping_errno(ends[1]);
    return -1;
  }
  if (ends[1] == ends[0] + 1) return ends[0];
  // Copy the ends to the lowest free pair of adjacent numbers; another thread opening
  // descriptors meanwhile only makes us try higher ones, until the table's end fails it.
  for (int from = 0;;) {
    const int read_end = ::fcntl(ends[0], F_DUPFD_CLOEXEC, from);
    const int write_end = read_end < 0 ? -1 : ::fcntl(ends[1], F_DUPFD_CLOEXEC, read_end + 1);
    if (write_end == read_end + 1) {
      ::close(ends[0]);
      ::close(ends[1]);
      return read_end;
    }
    if (read_end >= 0) close_keeping_errno(read_end);
    if (write_end >= 0) close_keeping_errno(write_end);
    if (read_end < 0 || write_end < 0) {
      if (errno == EINVAL) errno = EMFILE;  // past the table's end: no adjacent pair is free
      close_keeping_errno(ends[0]);
      close_keeping_errno(ends[1]);
      return -1;
    }
    from = read_end + 1;
  }
}

void wakeup_signal(int wakeup) noexcept {
  const char byte = 1;
  // A full pipe (EAGAIN) is readable already.
  while (::write(wakeup + 1, &byte, 1) < 0 && errno == EINTR) {
  }
}

void wakeup_drain(int wakeup) noexcept {
  char bytes[64];
  for (;;) {
    const ssize_t got = ::read(wakeup, bytes, sizeof bytes);
    if (got < 0 && errno == EINTR) continue;
    if (got < static_cast<ssize_t>(sizeof bytes)) return;  // empty now (or EAGAIN)
  }
}

void wakeup_close(int wakeup) noexcept {
  ::close(wakeup);
  ::close(wakeup + 1);
}

bool wait(const std::atomic<std::uint32_t>& word, std::uint32_t expected,
          std::chrono::steady_clock::time_point deadline) noexcept {
  ParkingSlot* slot = take_slot();
  if (slot == nullptr) return word.load(std::memory_order_seq_cst) != expected || nap(deadline);
  // seq_cst, and wake_all's caller stores the word seq_cst before looking at the slot: either
  // this load sees the new word or wake_all sees the slot naming it.
  slot->word.store(&word, std::memory_order_seq_cst);
  bool in_time = true;
  if (word.load(std::memory_order_seq_cst) == expected) {
    if (deadline == std::chrono::steady_clock::time_point::max()) {
      ::sem_wait(&slot->semaphore);  // EINTR is a spurious wake-up
    } else {
      // sem_timedwait counts on CLOCK_REALTIME, which may jump: wait at most a second at a time
      // and measure the deadline on the steady clock.
      const auto now = std::chrono::steady_clock::now();
      if (now >= deadline) {
        in_time = false;
      } else {
        const auto slice =
            std::min<std::chrono::steady_clock::duration>(deadline - now, std::chrono::seconds(1));
        struct timespec until {};
        ::clock_gettime(CLOCK_REALTIME, &until);
        const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(slice).count() +
                        static_cast<long long>(until.tv_nsec);
        until.tv_sec += static_cast<time_t>(ns / 1000000000);
        until.tv_nsec = static_cast<long>(ns % 1000000000);
        if (::sem_timedwait(&slot->semaphore, &until) != 0 && errno == ETIMEDOUT) {
          in_time = std::chrono::steady_clock::now() < deadline;
        }
      }
    }
  }
  slot->word.store(nullptr, std::memory_order_relaxed);
  slot->taken.store(false, std::memory_order_release);
  return in_time;
}

void wake_all(const std::atomic<std::uint32_t>& word) noexcept {
  for (ParkingSlot& slot : parking) {
    if (slot.word.load(std::memory_order_seq_cst) == &word) ::sem_post(&slot.semaphore);
  }
}

bool asymmetric_fences() noexcept {
  return false;
}

bool heavy_fence() noexcept {
  seq_cst_fence();
  return true;
}

}  // namespace detail::platform
EVCXX_END_NAMESPACE
