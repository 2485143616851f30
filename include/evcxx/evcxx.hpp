#pragma once

// The whole evcxx API.
#include "evcxx/async.hpp"
#include "evcxx/child.hpp"
#include "evcxx/cleanup.hpp"
#include "evcxx/embed.hpp"
#include "evcxx/error.hpp"
#include "evcxx/fork.hpp"
#include "evcxx/loop.hpp"
#include "evcxx/periodic.hpp"
#include "evcxx/stat.hpp"
#include "evcxx/waitable_event.hpp"
#include "evcxx/watcher.hpp"
