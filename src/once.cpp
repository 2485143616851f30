// Loop::once(): libev's ev_once built from evcxx watchers, so that a closed descriptor is an error
// event rather than libev's abort, and a throwing callback reaches run().
#include <cmath>
#include <memory>
#include <stdexcept>
#include <utility>

#include "evcxx/io.hpp"
#include "evcxx/loop.hpp"
#include "evcxx/timer.hpp"
#include "once_wait.hpp"

EVCXX_BEGIN_NAMESPACE

namespace detail {

namespace {

void unlink(OnceWait& wait, OnceWait*& head) noexcept {
  if (wait.prev != nullptr) {
    wait.prev->next = wait.next;
  } else {
    head = wait.next;
  }
  if (wait.next != nullptr) wait.next->prev = wait.prev;
}

}  // namespace

void OnceWait::finish(IoEvents fired) {
  std::function<void(IoEvents)> call = std::move(callback);
  unlink(*this, head);
  delete this;  // inside the Io's or the Timer's own callback, which allows it
  call(fired);
}

void discard_once_waits(OnceWait*& head) noexcept {
  while (head != nullptr) {
    OnceWait* wait = head;
    head = wait->next;
    delete wait;
  }
}

}  // namespace detail

void Loop::once(int fd, IoEvents events, std::chrono::duration<double> timeout,
                std::function<void(IoEvents)> callback) {
  if (!callback) throw std::invalid_argument("evcxx: Loop::once() needs a callback");
  const double seconds = timeout.count();
  if (std::isnan(seconds)) throw std::invalid_argument("evcxx: Loop::once() timeout is NaN");
  const bool with_timer = seconds >= 0 && std::isfinite(seconds);
  if (fd < 0 && !with_timer) {
    throw std::invalid_argument(
        "evcxx: Loop::once() with a negative fd and no timeout would never call back: give a "
        "descriptor, a timeout (>= 0) or both");
  }
  if (fd >= 0 && events.empty()) {
    throw std::invalid_argument(
        "evcxx: Loop::once() on a descriptor needs IoEvent::readable and/or IoEvent::writable "
        "(for a timeout only, pass -1 as fd)");
  }
  auto wait = std::make_unique<detail::OnceWait>(once_waits(), std::move(callback));
  if (fd >= 0) {
    wait->io.emplace(*this, deferred, fd, events, Io::Callback());
    wait->io->set_callback<&detail::OnceWait::on_io>(*wait);
  }
  if (with_timer) {
    wait->timer.emplace(*this, deferred, Timer::Duration(seconds), Timer::Callback());
    wait->timer->set_callback<&detail::OnceWait::on_timeout>(*wait);
  }
  if (wait->io) wait->io->start();
  if (wait->timer) wait->timer->start();
  detail::OnceWait*& head = once_waits();
  wait->next = head;
  if (head != nullptr) head->prev = wait.get();
  head = wait.release();
}

EVCXX_END_NAMESPACE
