#pragma once

#include <ev.h>

#include "evcxx/export.hpp"

#include <stdexcept>
#include <string>

EVCXX_BEGIN_NAMESPACE
namespace detail {

// libev (up to 4.33 at least) reuses io_uring submission entries without clearing them, and
// current kernels reject a POLL_REMOVE whose stale poll32_events is set; the entries after it stay
// unsubmitted and libev aborts ("io_uring_enter did not consume all sqes"). That happens as soon as
// an armed descriptor's registration changes (a stop, set() or a second watcher), so the watchers
// that register descriptors (Io, Embed) refuse such a loop. `what` names the watcher type.
inline void reject_broken_io_uring(struct ev_loop* loop, const char* what) {
  const bool fixed_libev =
      ev_version_major() > 4 || (ev_version_major() == 4 && ev_version_minor() > 33);
  if (ev_backend(loop) == EVBACKEND_IOURING && !fixed_libev) {
    throw std::logic_error(
        std::string("evcxx: ") + what +
        " cannot be used on a Loop with the io_uring backend of libev " +
        std::to_string(ev_version_major()) + "." + std::to_string(ev_version_minor()) +
        ": libev aborts (\"io_uring_enter did not consume all sqes\") when it changes a "
        "registration on current kernels; create the Loop with Backend::epoll (or let libev pick, "
        "it never picks io_uring by itself)");
  }
}

}  // namespace detail
EVCXX_END_NAMESPACE
