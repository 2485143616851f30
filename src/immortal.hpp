#pragma once

#include <new>

#include "evcxx/export.hpp"

EVCXX_BEGIN_NAMESPACE
namespace detail {

// The process's one T, made on first use and never destroyed (objects that outlive the other
// statics may still use it at exit), in static storage rather than on the heap (so that getting it
// never allocates). T's default constructor must not throw.
template <class T>
T& immortal() noexcept {
  alignas(T) static unsigned char storage[sizeof(T)];
  static T* const object = ::new (static_cast<void*>(storage)) T;
  return *object;
}

}  // namespace detail
EVCXX_END_NAMESPACE
