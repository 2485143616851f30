#pragma once

// The whole evcxx API.
#include "evcxx/async.hpp"
#include "evcxx/error.hpp"
#include "evcxx/loop.hpp"
#include "evcxx/loop_pool.hpp"
#include "evcxx/loop_thread.hpp"
#include "evcxx/waitable_event.hpp"
#include "evcxx/watcher.hpp"
