#pragma once

/// @file
/// The whole evcxx API: includes every public header.

/// @namespace evcxx
/// evcxx, a C++17 binding for libev. Every name lives in a versioned inline namespace
/// (evcxx::vMAJOR_MINOR, see version.hpp) that code never needs to spell.

#include "evcxx/async.hpp"
#include "evcxx/check.hpp"
#include "evcxx/child.hpp"
#include "evcxx/cleanup.hpp"
#include "evcxx/embed.hpp"
#include "evcxx/error.hpp"
#include "evcxx/fork.hpp"
#include "evcxx/idle.hpp"
#include "evcxx/io.hpp"
#include "evcxx/loop.hpp"
#include "evcxx/loop_pool.hpp"
#include "evcxx/loop_thread.hpp"
#include "evcxx/periodic.hpp"
#include "evcxx/prepare.hpp"
#include "evcxx/signal.hpp"
#include "evcxx/stat.hpp"
#include "evcxx/timer.hpp"
#include "evcxx/version.hpp"
#include "evcxx/waitable_event.hpp"
#include "evcxx/watcher.hpp"
