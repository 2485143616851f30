#pragma once

// A counting global operator new for the tests that prove some path allocates nothing. It
// replaces the global one, so include it in exactly one source file of a test binary.
//   evcxx_test::allocations_here: operator new calls made by this thread, always counted;
//   evcxx_test::allocations_while_counting: calls by any thread while `counting` is true.

#include <atomic>
#include <cstdlib>
#include <new>

namespace evcxx_test {
inline thread_local long allocations_here = 0;
inline std::atomic<long> allocations_while_counting{0};
inline std::atomic<bool> counting{false};
}  // namespace evcxx_test

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"  // malloc'ed by our own operator new
#endif

void* operator new(std::size_t size) {
  ++evcxx_test::allocations_here;
  if (evcxx_test::counting.load(std::memory_order_relaxed)) {
    evcxx_test::allocations_while_counting.fetch_add(1, std::memory_order_relaxed);
  }
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
