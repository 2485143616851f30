#pragma once

#include <cstddef>
#include <functional>
#include <new>
#include <type_traits>
#include <utility>

#include "evcxx/export.hpp"

EVCXX_BEGIN_NAMESPACE
namespace detail {

// A posted task, type-erased without std::function: post() moves the callable straight into a
// queue slot of task_inline_size bytes, or boxes it on the heap when it is bigger, over-aligned or
// has a move constructor that may throw.
inline constexpr std::size_t task_inline_size = 48;
inline constexpr std::size_t task_inline_align = alignof(std::max_align_t);

struct TaskOps {
  void (*construct)(void* storage, void* source);  // moves *source into storage; may throw
  void (*run)(void* storage);                      // may throw
  void (*destroy)(void* storage) noexcept;
  void (*relocate)(void* to, void* from) noexcept;  // construct at `to`, destroy `from`
};

template <class Fn>
inline constexpr bool task_fits_inline =
    // NOLINTNEXTLINE(misc-redundant-expression): clang-tidy 16 misreads a variable template
    (sizeof(Fn) <= task_inline_size) &&
    (alignof(Fn) <= task_inline_align) && std::is_nothrow_move_constructible_v<Fn>;

// Source: what post() hands the queue, from which Fn is made once the task is queued (Fn itself,
// or a wrapper's source that points at the caller's callable, so that a refused post leaves it
// untouched).
template <class Fn, class Source = Fn>
inline constexpr TaskOps inline_task_ops = {
    [](void* storage, void* source) {
      ::new (storage) Fn(std::move(*static_cast<Source*>(source)));
    },
    [](void* storage) { (*static_cast<Fn*>(storage))(); },
    [](void* storage) noexcept { static_cast<Fn*>(storage)->~Fn(); },
    [](void* to, void* from) noexcept {
      ::new (to) Fn(std::move(*static_cast<Fn*>(from)));
      static_cast<Fn*>(from)->~Fn();
    },
};

template <class Fn, class Source = Fn>
inline constexpr TaskOps boxed_task_ops = {
    [](void* storage, void* source) {
      ::new (storage) Fn*(new Fn(std::move(*static_cast<Source*>(source))));
    },
    [](void* storage) { (**static_cast<Fn**>(storage))(); },
    [](void* storage) noexcept { delete *static_cast<Fn**>(storage); },
    [](void* to, void* from) noexcept { ::new (to) Fn*(*static_cast<Fn**>(from)); },
};

template <class F, class Fn = std::decay_t<F>>
inline constexpr bool is_task_v =
    std::is_invocable_v<Fn&>&& std::is_move_constructible_v<Fn>&& std::is_constructible_v<Fn, F> &&
    !std::is_same_v<Fn, std::function<void()>>;

// The ops for one callable type: inline when it fits, boxed otherwise.
template <class Fn, class Source = Fn>
constexpr const TaskOps& task_ops_for() noexcept {
  if constexpr (task_fits_inline<Fn>) {
    return inline_task_ops<Fn, Source>;
  } else {
    return boxed_task_ops<Fn, Source>;
  }
}

}  // namespace detail
EVCXX_END_NAMESPACE
