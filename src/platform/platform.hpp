#pragma once

// The system-specific primitives evcxx needs, behind one internal interface (not installed).
// CMake's EVCXX_PLATFORM picks the implementation: linux.cpp (eventfd, futex, membarrier) or
// posix.cpp (a pipe, semaphore parking, ordinary fences). Every function is for ANY thread.

#include <atomic>
#include <chrono>
#include <cstdint>

#include "evcxx/detail/tsan.hpp"
#include "evcxx/export.hpp"

EVCXX_BEGIN_NAMESPACE
namespace detail::platform {

// --- wake-up descriptor: one int that foreign code polls, readable exactly while signalled ---

// A new wake-up descriptor (non-blocking, close-on-exec), not signalled; the int is also the fd
// to poll. Returns -1 with errno set on failure. Takes one descriptor (eventfd) or two (a pipe).
int wakeup_create() noexcept;
// Makes it readable (repeating it is harmless). Async-signal-safe; may change errno.
void wakeup_signal(int wakeup) noexcept;
// Makes it unreadable until the next signal. Async-signal-safe; may change errno.
void wakeup_drain(int wakeup) noexcept;
// Closes what wakeup_create() opened.
void wakeup_close(int wakeup) noexcept;

// --- futex-style wait on a 32-bit atomic word ---

// Blocks while word holds expected, until a wake_all(word), the deadline (steady clock;
// time_point::max() waits without one), or spuriously. Returns false only once the deadline has
// passed. Callers re-check the word in a loop. May change errno.
bool wait(const std::atomic<std::uint32_t>& word, std::uint32_t expected,
          std::chrono::steady_clock::time_point deadline) noexcept;
// Wakes every wait() on word. Async-signal-safe; call it after changing the word with a seq_cst
// store. May change errno.
void wake_all(const std::atomic<std::uint32_t>& word) noexcept;

// --- the heavy/light fence pair ---

// True if the pair is asymmetric (membarrier): light_fence() on the hot side then costs only a
// compiler fence and heavy_fence() on the rare side does the work for both. False: there is no
// such pair; both sides use seq_cst accesses or fences, and heavy_fence() is an ordinary one.
bool asymmetric_fences() noexcept;
// The rare side: as if every other thread of the process ran a seq_cst fence where it is now.
// Returns false if it could not (the caller must then not rely on the pairing).
bool heavy_fence() noexcept;
// An ordinary seq_cst fence, for the implementations. GCC's ThreadSanitizer does not model
// fences (and warns, -Wtsan): there a seq_cst read-modify-write, a full barrier on x86, stands in.
inline void seq_cst_fence() noexcept {
#if defined(EVCXX_TSAN)
  static std::atomic<unsigned> word{0};
  word.fetch_add(1, std::memory_order_seq_cst);
#else
  std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
}
// The hot side, only where asymmetric_fences() is true: a compiler-only fence.
inline void light_fence() noexcept {
  std::atomic_signal_fence(std::memory_order_seq_cst);
}

}  // namespace detail::platform
EVCXX_END_NAMESPACE
