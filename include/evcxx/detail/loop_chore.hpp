#pragma once

#include "evcxx/export.hpp"

EVCXX_BEGIN_NAMESPACE
namespace detail {

// Work handed to a Loop's thread from any thread without allocating (an intrusive list): run at
// the loop's next wake-up, or by ~Loop (the loop still alive) if no run() came. WaitableEvent
// registers and tears down its announcement this way.
struct LoopChore {
  void (*run)(LoopChore* self) noexcept = nullptr;  // may delete *self
  LoopChore* next = nullptr;
};

}  // namespace detail
EVCXX_END_NAMESPACE
