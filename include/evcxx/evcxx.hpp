#pragma once

// The whole evcxx API.
#include "evcxx/async.hpp"
#include "evcxx/check.hpp"
#include "evcxx/error.hpp"
#include "evcxx/idle.hpp"
#include "evcxx/io.hpp"
#include "evcxx/loop.hpp"
#include "evcxx/prepare.hpp"
#include "evcxx/signal.hpp"
#include "evcxx/timer.hpp"
#include "evcxx/waitable_event.hpp"
#include "evcxx/watcher.hpp"
