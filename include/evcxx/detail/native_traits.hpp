#pragma once

#include <ev.h>

#include "evcxx/export.hpp"

EVCXX_BEGIN_NAMESPACE
namespace detail {

// What the shared watcher base needs to know about one libev watcher type: its start and stop
// functions and the event its callback receives (invoke() and feed() deliver it).
template <class Native>
struct NativeTraits;

#define EVCXX_NATIVE_TRAITS_(type, event_bits)        \
  template <>                                         \
  struct NativeTraits<ev_##type> {                    \
    static constexpr auto start = &ev_##type##_start; \
    static constexpr auto stop = &ev_##type##_stop;   \
    static constexpr int event = event_bits;          \
  }

EVCXX_NATIVE_TRAITS_(io, EV_READ | EV_WRITE);
EVCXX_NATIVE_TRAITS_(timer, EV_TIMER);
EVCXX_NATIVE_TRAITS_(periodic, EV_PERIODIC);
EVCXX_NATIVE_TRAITS_(signal, EV_SIGNAL);
EVCXX_NATIVE_TRAITS_(child, EV_CHILD);
EVCXX_NATIVE_TRAITS_(stat, EV_STAT);
EVCXX_NATIVE_TRAITS_(idle, EV_IDLE);
EVCXX_NATIVE_TRAITS_(prepare, EV_PREPARE);
EVCXX_NATIVE_TRAITS_(check, EV_CHECK);
EVCXX_NATIVE_TRAITS_(fork, EV_FORK);
EVCXX_NATIVE_TRAITS_(cleanup, EV_CLEANUP);
EVCXX_NATIVE_TRAITS_(embed, EV_EMBED);
EVCXX_NATIVE_TRAITS_(async, EV_ASYNC);

#undef EVCXX_NATIVE_TRAITS_

}  // namespace detail
EVCXX_END_NAMESPACE
