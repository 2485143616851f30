#pragma once

#include <atomic>

// ThreadSanitizer cannot see the ordering libev's fences give between ev_async_send() and the
// callback; these annotations tell it, and compile to nothing in every other build.
#if defined(__SANITIZE_THREAD__)
#define EVCXX_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define EVCXX_TSAN 1
#endif
#endif

#if defined(EVCXX_TSAN)
extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);
#define EVCXX_TSAN_RELEASE(addr) __tsan_release(static_cast<void*>(addr))
#define EVCXX_TSAN_ACQUIRE(addr) __tsan_acquire(static_cast<void*>(addr))
#else
#define EVCXX_TSAN_RELEASE(addr) static_cast<void>(0)
#define EVCXX_TSAN_ACQUIRE(addr) static_cast<void>(0)
#endif

// Before an ev_async_send() of evcxx's: what the sender wrote before it must be visible to a loop
// that sees the send. libev sets the watcher's `sent` flag with a plain store before its own
// fence, and the busy poll reads that flag directly, so a release fence comes first (on x86 a
// compiler barrier only). Under TSan, which cannot model fences, the annotation says the same.
#if defined(EVCXX_TSAN)
#define EVCXX_RELEASE_FOR_SEND(addr) EVCXX_TSAN_RELEASE(addr)
#else
#define EVCXX_RELEASE_FOR_SEND(addr) std::atomic_thread_fence(std::memory_order_release)
#endif
