#pragma once

/// \file
/// C++20 coroutines over evcxx's watchers (CMake target evcxx::coro, pkg-config evcxx-coro):
/// Task<T>, spawn(), spawn_future(), the awaitables (sleep_for, sleep_until, readable, writable,
/// next_signal, until_set, child_exit, stat_changed, resume_on, submit) and the combinators
/// (when_all, when_any, with_timeout). The guarantees and the pitfalls: docs/coroutines.md.
///
/// Not part of <evcxx/evcxx.hpp>, which stays C++17.

#include "evcxx/coro/awaitables.hpp"
#include "evcxx/coro/combinators.hpp"
#include "evcxx/coro/stop_token.hpp"
#include "evcxx/coro/task.hpp"
