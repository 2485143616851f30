#pragma once

#include "evcxx/export.hpp"

EVCXX_BEGIN_NAMESPACE
namespace detail {

// Tells the CPU this thread is spinning on another's store: lets its sibling hyperthread run and
// saves power, without giving up the time slice.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

}  // namespace detail
EVCXX_END_NAMESPACE
