#pragma once

#include <functional>
#include <optional>
#include <utility>

#include "evcxx/io.hpp"
#include "evcxx/loop.hpp"
#include "evcxx/timer.hpp"

EVCXX_BEGIN_NAMESPACE
namespace detail {

// One Loop::once() wait: an Io and/or a Timer, whichever fires first ends it. Owned by its Loop's
// list until then; deletes itself before it calls the callback. Loop thread.
struct OnceWait {
  OnceWait(OnceWait*& list, std::function<void(IoEvents)> call) noexcept
      : head(list), callback(std::move(call)) {}

  void on_io(IoEvents fired) { finish(fired); }
  void on_timeout() { finish(IoEvents()); }
  // Unlinks and deletes this wait, then calls the callback with what fired.
  void finish(IoEvents fired);

  OnceWait*& head;  // the Loop's list
  std::function<void(IoEvents)> callback;
  std::optional<Io> io;
  std::optional<Timer> timer;
  OnceWait* prev = nullptr;
  OnceWait* next = nullptr;
};

// ~Loop: drops every wait still open, without calling back.
void discard_once_waits(OnceWait*& head) noexcept;

}  // namespace detail
EVCXX_END_NAMESPACE
