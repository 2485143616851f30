// The single-threaded rows of side_by_side_bench: callback dispatch per watcher type, the Io
// write-interest toggle, 100k timers, and the watcher sizes.
//
// Dispatch: each batch feeds 16 watchers of one type (ev_feed_event on the libev struct, the
// same call on both sides, or ev_feed_signal_event for Signal) and runs the pending callbacks
// (Loop::invoke_pending for evcxx, ev_invoke_pending for libev): callbacks back to back with no
// system call between them. Every callback counts itself through a pointer.

#include <ev.h>
#include <fcntl.h>
#include <unistd.h>
#include <evcxx/async.hpp>
#include <evcxx/check.hpp>
#include <evcxx/child.hpp>
#include <evcxx/cleanup.hpp>
#include <evcxx/embed.hpp>
#include <evcxx/fork.hpp>
#include <evcxx/idle.hpp>
#include <evcxx/io.hpp>
#include <evcxx/loop.hpp>
#include <evcxx/periodic.hpp>
#include <evcxx/prepare.hpp>
#include <evcxx/signal.hpp>
#include <evcxx/stat.hpp>
#include <evcxx/timer.hpp>

#include <csignal>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "side_by_side.hpp"

namespace evcxx_bench::sbs {

namespace {

constexpr int kWatchers = 16;      // watchers fed per batch
constexpr int kSignal = SIGUSR1;   // fed, never raised
constexpr double kFarAway = 3600;  // seconds: a timer that never fires during a sample
constexpr std::uint64_t kTimers = 100000;

struct Counter {
  std::uint64_t hits = 0;
  void hit() noexcept {
    ++hits;
    clobber();
  }
  void hit_io(evcxx::IoEvents) noexcept { hit(); }
};

void expect(std::uint64_t got, std::uint64_t expected, const char* what) {
  if (got != expected) {
    throw std::runtime_error(std::string(what) + ": expected " + std::to_string(expected) +
                             ", got " + std::to_string(got));
  }
}

// A pipe nobody writes to: its read end is never readable, nor ever writable.
class QuietPipe {
 public:
  QuietPipe() {
    if (::pipe2(fds_, O_CLOEXEC | O_NONBLOCK) != 0) throw std::runtime_error("pipe2 failed");
  }
  ~QuietPipe() {
    ::close(fds_[0]);
    ::close(fds_[1]);
  }
  QuietPipe(const QuietPipe&) = delete;
  QuietPipe& operator=(const QuietPipe&) = delete;
  int read_end() const noexcept { return fds_[0]; }

 private:
  int fds_[2];
};

void noop_async(struct ev_loop*, ev_async*, int) {}

// A raw loop shaped like evcxx::Loop's: one started, unref'd ev_async (evcxx keeps one for post()
// and stop()).
class RawLoop {
 public:
  RawLoop() : loop_(ev_loop_new(EVFLAG_AUTO)) {
    if (loop_ == nullptr) throw std::runtime_error("ev_loop_new failed");
    ev_async_init(&async_, noop_async);
    ev_async_start(loop_, &async_);
    ev_unref(loop_);
  }
  ~RawLoop() {
    ev_ref(loop_);
    ev_async_stop(loop_, &async_);
    ev_loop_destroy(loop_);
  }
  RawLoop(const RawLoop&) = delete;
  RawLoop& operator=(const RawLoop&) = delete;
  struct ev_loop* get() const noexcept {
    return loop_;
  }

 private:
  struct ev_loop* loop_;
  ev_async async_;
};

template <class W>
void raw_count(struct ev_loop*, W* w, int) {
  static_cast<Counter*>(w->data)->hit();
}

// Times batches of feed() + invoke() until at least `ops` callbacks ran, and checks they all did.
template <class Feed, class Invoke>
Sample time_batches(std::uint64_t ops, const Counter& counter, Feed&& feed, Invoke&& invoke) {
  const std::uint64_t batches = (ops + kWatchers - 1) / kWatchers;
  const auto start = Clock::now();
  for (std::uint64_t b = 0; b < batches; ++b) {
    feed();
    invoke();
  }
  const double seconds = seconds_since(start);
  expect(counter.hits, batches * kWatchers, "callbacks");
  return {batches * kWatchers, seconds};
}

// --- raw libev: kWatchers started watchers of one type, set up by `init` ---

template <class W, class Init, class Start, class Stop>
Sample raw_dispatch(std::uint64_t ops, int revents, Init init, Start start, Stop stop) {
  RawLoop loop;
  QuietPipe pipe;
  Counter counter;
  W ws[kWatchers];
  for (W& w : ws) {
    init(&w, loop.get(), pipe.read_end());
    w.data = &counter;
    start(loop.get(), &w);
  }
  const Sample s = time_batches(
      ops, counter,
      [&] {
        if (revents == EV_SIGNAL) {
          ev_feed_signal_event(loop.get(), kSignal);
        } else {
          for (W& w : ws) ev_feed_event(loop.get(), &w, revents);
        }
      },
      [&] { ev_invoke_pending(loop.get()); });
  for (W& w : ws) stop(loop.get(), &w);
  return s;
}

// --- evcxx: kWatchers watchers of one type made by `make(loop, fd, callback target)` ---

template <class W, class Make>
Sample evcxx_dispatch(std::uint64_t ops, int revents, Make make) {
  evcxx::Loop loop;
  QuietPipe pipe;
  Counter counter;
  std::optional<W> ws[kWatchers];
  for (auto& w : ws) make(w, loop, pipe.read_end(), &counter);
  return time_batches(
      ops, counter,
      [&] {
        if (revents == EV_SIGNAL) {
          ev_feed_signal_event(loop.native(), kSignal);
        } else {
          for (auto& w : ws) ev_feed_event(loop.native(), w->native(), revents);
        }
      },
      [&] { loop.invoke_pending(); });
}

// The watcher types with no parameters (Idle, Prepare, Check, Async, Fork, Cleanup): one shape
// of row for all.
template <class W>
Sample raw_plain(std::uint64_t ops, int revents, void (*start)(struct ev_loop*, W*),
                 void (*stop)(struct ev_loop*, W*)) {
  return raw_dispatch<W>(
      ops, revents,
      [](W* w, struct ev_loop*, int) {
        *w = W{};  // what each type's ev_TYPE_set leaves (ev_async's sent flag cleared)
        ev_init(w, raw_count<W>);
      },
      start, stop);
}
template <class W>
Sample evcxx_plain(std::uint64_t ops, int revents) {
  return evcxx_dispatch<W>(ops, revents, [](auto& w, evcxx::Loop& loop, int, Counter* c) {
    w.emplace(loop, [c] { c->hit(); });
  });
}

Sample raw_idle(std::uint64_t ops) {
  return raw_plain<ev_idle>(ops, EV_IDLE, ev_idle_start, ev_idle_stop);
}
Sample evcxx_idle(std::uint64_t ops) {
  return evcxx_plain<evcxx::Idle>(ops, EV_IDLE);
}

// Compile-time callbacks (Watcher::set_callback<&K::member>(object)): libev calls the member
// function with no std::function on the way.
Sample evcxx_idle_compile_time_callback(std::uint64_t ops) {
  return evcxx_dispatch<evcxx::Idle>(ops, EV_IDLE, [](auto& w, evcxx::Loop& loop, int, Counter* c) {
    w.emplace(loop, nullptr);
    w->template set_callback<&Counter::hit>(*c);
  });
}

Sample raw_io(std::uint64_t ops) {
  return raw_dispatch<ev_io>(
      ops, EV_READ,
      [](ev_io* w, struct ev_loop*, int fd) { ev_io_init(w, raw_count<ev_io>, fd, EV_READ); },
      ev_io_start, ev_io_stop);
}
Sample evcxx_io(std::uint64_t ops) {
  return evcxx_dispatch<evcxx::Io>(
      ops, EV_READ, [](auto& w, evcxx::Loop& loop, int fd, Counter* c) {
        w.emplace(loop, fd, evcxx::IoEvent::readable, [c](evcxx::IoEvents) { c->hit(); });
      });
}

Sample raw_timer(std::uint64_t ops) {
  return raw_dispatch<ev_timer>(
      ops, EV_TIMER,
      [](ev_timer* w, struct ev_loop*, int) {
        ev_timer_init(w, raw_count<ev_timer>, kFarAway, 0.);
      },
      ev_timer_start, ev_timer_stop);
}
Sample evcxx_timer(std::uint64_t ops) {
  return evcxx_dispatch<evcxx::Timer>(
      ops, EV_TIMER, [](auto& w, evcxx::Loop& loop, int, Counter* c) {
        w.emplace(loop, evcxx::Timer::Duration(kFarAway), [c] { c->hit(); });
      });
}

// The member function an Io binds: the same object and the same one call as libev's side.
Sample evcxx_io_compile_time_callback(std::uint64_t ops) {
  return evcxx_dispatch<evcxx::Io>(ops, EV_READ,
                                   [](auto& w, evcxx::Loop& loop, int fd, Counter* c) {
                                     w.emplace(loop, fd, evcxx::IoEvent::readable, nullptr);
                                     w->template set_callback<&Counter::hit_io>(*c);
                                   });
}
Sample evcxx_timer_compile_time_callback(std::uint64_t ops) {
  return evcxx_dispatch<evcxx::Timer>(ops, EV_TIMER,
                                      [](auto& w, evcxx::Loop& loop, int, Counter* c) {
                                        w.emplace(loop, evcxx::Timer::Duration(kFarAway), nullptr);
                                        w->template set_callback<&Counter::hit>(*c);
                                      });
}

Sample raw_periodic(std::uint64_t ops) {
  return raw_dispatch<ev_periodic>(
      ops, EV_PERIODIC,
      [](ev_periodic* w, struct ev_loop* loop, int) {
        ev_periodic_init(w, raw_count<ev_periodic>, ev_now(loop) + kFarAway, 0., nullptr);
      },
      ev_periodic_start, ev_periodic_stop);
}
Sample evcxx_periodic(std::uint64_t ops) {
  return evcxx_dispatch<evcxx::Periodic>(
      ops, EV_PERIODIC, [](auto& w, evcxx::Loop& loop, int, Counter* c) {
        w.emplace(loop, loop.now() + evcxx::Periodic::Duration(kFarAway), [c] { c->hit(); });
      });
}

Sample raw_prepare(std::uint64_t ops) {
  return raw_plain<ev_prepare>(ops, EV_PREPARE, ev_prepare_start, ev_prepare_stop);
}
Sample evcxx_prepare(std::uint64_t ops) {
  return evcxx_plain<evcxx::Prepare>(ops, EV_PREPARE);
}

Sample raw_check(std::uint64_t ops) {
  return raw_plain<ev_check>(ops, EV_CHECK, ev_check_start, ev_check_stop);
}
Sample evcxx_check(std::uint64_t ops) {
  return evcxx_plain<evcxx::Check>(ops, EV_CHECK);
}

Sample raw_async(std::uint64_t ops) {
  return raw_plain<ev_async>(ops, EV_ASYNC, ev_async_start, ev_async_stop);
}
Sample evcxx_async(std::uint64_t ops) {
  return evcxx_plain<evcxx::Async>(ops, EV_ASYNC);
}

Sample raw_signal(std::uint64_t ops) {
  return raw_dispatch<ev_signal>(
      ops, EV_SIGNAL,
      [](ev_signal* w, struct ev_loop*, int) { ev_signal_init(w, raw_count<ev_signal>, kSignal); },
      ev_signal_start, ev_signal_stop);
}
Sample evcxx_signal(std::uint64_t ops) {
  return evcxx_dispatch<evcxx::Signal>(ops, EV_SIGNAL,
                                       [](auto& w, evcxx::Loop& loop, int, Counter* c) {
                                         w.emplace(loop, kSignal, [c] { c->hit(); });
                                       });
}

// A std::function object passed in (not a lambda): the watcher keeps it as a std::function.
Sample evcxx_idle_std_function(std::uint64_t ops) {
  return evcxx_dispatch<evcxx::Idle>(ops, EV_IDLE, [](auto& w, evcxx::Loop& loop, int, Counter* c) {
    w.emplace(loop, evcxx::Idle::Callback([c] { c->hit(); }));
  });
}
Sample evcxx_timer_std_function(std::uint64_t ops) {
  return evcxx_dispatch<evcxx::Timer>(ops, EV_TIMER,
                                      [](auto& w, evcxx::Loop& loop, int, Counter* c) {
                                        w.emplace(loop, evcxx::Timer::Duration(kFarAway),
                                                  evcxx::Timer::Callback([c] { c->hit(); }));
                                      });
}

Sample raw_fork(std::uint64_t ops) {
  return raw_plain<ev_fork>(ops, EV_FORK, ev_fork_start, ev_fork_stop);
}
Sample evcxx_fork(std::uint64_t ops) {
  return evcxx_plain<evcxx::Fork>(ops, EV_FORK);
}

Sample raw_cleanup(std::uint64_t ops) {
  return raw_plain<ev_cleanup>(ops, EV_CLEANUP, ev_cleanup_start, ev_cleanup_stop);
}
Sample evcxx_cleanup(std::uint64_t ops) {
  return evcxx_plain<evcxx::Cleanup>(ops, EV_CLEANUP);
}

constexpr const char* kStatPath = "/";  // exists everywhere; never changes during a sample
Sample raw_stat(std::uint64_t ops) {
  return raw_dispatch<ev_stat>(
      ops, EV_STAT,
      [](ev_stat* w, struct ev_loop*, int) {
        ev_stat_init(w, raw_count<ev_stat>, kStatPath, kFarAway);
      },
      ev_stat_start, ev_stat_stop);
}
Sample evcxx_stat(std::uint64_t ops) {
  return evcxx_dispatch<evcxx::Stat>(ops, EV_STAT, [](auto& w, evcxx::Loop& loop, int, Counter* c) {
    w.emplace(loop, kStatPath, evcxx::Stat::Duration(kFarAway), [c](auto&&...) { c->hit(); });
  });
}

Row dispatch_row(const char* type, const char* what, Body evcxx, Body raw) {
  Row row;
  row.group = "dispatch";
  row.name = type;
  row.what = what;
  row.unit = "callback";
  row.ops = 4096;
  row.evcxx = {"evcxx", "evcxx watcher, callback given as a lambda", std::move(evcxx)};
  row.peers.push_back({"libev", "libev C", std::move(raw)});
  return row;
}

// --- Io write-interest toggle ---

// Each toggle flips an active watcher between readable and readable|writable on the same
// descriptor, then runs one non-blocking loop iteration, which applies the change (epoll_ctl)
// and polls. The pipe's read end never becomes ready, so no callback runs.
template <class Toggle>
Sample toggles(std::uint64_t ops, Toggle&& toggle) {
  const auto start = Clock::now();
  for (std::uint64_t i = 0; i < ops; ++i) toggle((i & 1) == 0);
  return {ops, seconds_since(start)};
}

Sample evcxx_io_toggle(std::uint64_t ops) {
  evcxx::Loop loop;
  QuietPipe pipe;
  Counter counter;
  evcxx::Io w(loop, pipe.read_end(), evcxx::IoEvent::readable,
              [&counter](evcxx::IoEvents) { counter.hit(); });
  loop.run(evcxx::Run::nowait);
  return toggles(ops, [&](bool with_write) {
    w.set(with_write ? evcxx::IoEvent::readable | evcxx::IoEvent::writable
                     : evcxx::IoEvents(evcxx::IoEvent::readable));
    loop.run(evcxx::Run::nowait);
  });
}

template <class Change>
Sample raw_io_toggle(std::uint64_t ops, Change change) {
  RawLoop loop;
  QuietPipe pipe;
  Counter counter;
  ev_io w;
  ev_io_init(&w, raw_count<ev_io>, pipe.read_end(), EV_READ);
  w.data = &counter;
  ev_io_start(loop.get(), &w);
  ev_run(loop.get(), EVRUN_NOWAIT);
  const Sample s = toggles(ops, [&](bool with_write) {
    change(loop.get(), &w, with_write ? EV_READ | EV_WRITE : EV_READ);
    ev_run(loop.get(), EVRUN_NOWAIT);
  });
  ev_io_stop(loop.get(), &w);
  return s;
}

Sample raw_io_toggle_set(std::uint64_t ops) {
  return raw_io_toggle(ops, [](struct ev_loop* loop, ev_io* w, int events) {
    ev_io_stop(loop, w);
    ev_io_set(w, w->fd, events);
    ev_io_start(loop, w);
  });
}

Sample raw_io_toggle_modify(std::uint64_t ops) {
  // ev_io_modify keeps libev's "same descriptor" hint, so the backend may skip re-registering it.
  return raw_io_toggle(ops, [](struct ev_loop* loop, ev_io* w, int events) {
    ev_io_stop(loop, w);
    ev_io_modify(w, events);
    ev_io_start(loop, w);
  });
}

// --- timers ---

// 100k timers, each due at a different time (the heap has work to do).
double far_after(std::uint64_t i) {
  return kFarAway + static_cast<double>(i) * 1e-6;
}
// Due within 10 microseconds of being started, i.e. by the loop's next iteration.
double soon_after(std::uint64_t i) {
  return static_cast<double>(i % 100000) * 1e-10;
}

using TimerSlots = std::unique_ptr<std::optional<evcxx::Timer>[]>;

Sample evcxx_timers_start_stop(std::uint64_t ops) {
  evcxx::Loop loop;
  Counter counter;
  TimerSlots ts = std::make_unique<std::optional<evcxx::Timer>[]>(ops);
  for (std::uint64_t i = 0; i < ops; ++i) {
    ts[i].emplace(loop, evcxx::deferred, evcxx::Timer::Duration(far_after(i)),
                  [&counter] { counter.hit(); });
  }
  const auto start = Clock::now();
  for (std::uint64_t i = 0; i < ops; ++i) ts[i]->start();
  for (std::uint64_t i = 0; i < ops; ++i) ts[i]->stop();
  return {ops, seconds_since(start)};
}

Sample raw_timers_start_stop(std::uint64_t ops) {
  RawLoop loop;
  Counter counter;
  std::unique_ptr<ev_timer[]> ts(new ev_timer[ops]);
  for (std::uint64_t i = 0; i < ops; ++i) {
    ev_timer_init(&ts[i], raw_count<ev_timer>, far_after(i), 0.);
    ts[i].data = &counter;
  }
  const auto start = Clock::now();
  for (std::uint64_t i = 0; i < ops; ++i) ev_timer_start(loop.get(), &ts[i]);
  for (std::uint64_t i = 0; i < ops; ++i) ev_timer_stop(loop.get(), &ts[i]);
  return {ops, seconds_since(start)};
}

// Storage is allocated before the clock on both sides: this is construction and destruction (an
// active timer each), not the allocator.
Sample evcxx_timers_create_destroy(std::uint64_t ops) {
  evcxx::Loop loop;
  Counter counter;
  TimerSlots ts = std::make_unique<std::optional<evcxx::Timer>[]>(ops);
  const auto start = Clock::now();
  for (std::uint64_t i = 0; i < ops; ++i) {
    ts[i].emplace(loop, evcxx::Timer::Duration(far_after(i)), [&counter] { counter.hit(); });
  }
  for (std::uint64_t i = 0; i < ops; ++i) ts[i].reset();
  return {ops, seconds_since(start)};
}

Sample raw_timers_create_destroy(std::uint64_t ops) {
  RawLoop loop;
  Counter counter;
  std::unique_ptr<ev_timer[]> ts(new ev_timer[ops]);
  const auto start = Clock::now();
  for (std::uint64_t i = 0; i < ops; ++i) {
    ev_timer_init(&ts[i], raw_count<ev_timer>, far_after(i), 0.);
    ts[i].data = &counter;
    ev_timer_start(loop.get(), &ts[i]);
  }
  for (std::uint64_t i = 0; i < ops; ++i) ev_timer_stop(loop.get(), &ts[i]);
  return {ops, seconds_since(start)};
}

// Started, then the loop runs until every one has fired once.
Sample evcxx_timers_fire(std::uint64_t ops) {
  evcxx::Loop loop;
  Counter counter;
  TimerSlots ts = std::make_unique<std::optional<evcxx::Timer>[]>(ops);
  for (std::uint64_t i = 0; i < ops; ++i) {
    ts[i].emplace(loop, evcxx::deferred, evcxx::Timer::Duration(soon_after(i)),
                  [&counter] { counter.hit(); });
  }
  loop.update_now();
  const auto start = Clock::now();
  for (std::uint64_t i = 0; i < ops; ++i) ts[i]->start();
  loop.run();
  const double seconds = seconds_since(start);
  expect(counter.hits, ops, "timers fired");
  return {ops, seconds};
}

Sample raw_timers_fire(std::uint64_t ops) {
  RawLoop loop;
  Counter counter;
  std::unique_ptr<ev_timer[]> ts(new ev_timer[ops]);
  for (std::uint64_t i = 0; i < ops; ++i) {
    ev_timer_init(&ts[i], raw_count<ev_timer>, soon_after(i), 0.);
    ts[i].data = &counter;
  }
  ev_now_update(loop.get());
  const auto start = Clock::now();
  for (std::uint64_t i = 0; i < ops; ++i) ev_timer_start(loop.get(), &ts[i]);
  ev_run(loop.get(), 0);
  const double seconds = seconds_since(start);
  expect(counter.hits, ops, "timers fired");
  return {ops, seconds};
}

Row timer_row(const char* name, const char* what, Body evcxx, Body raw) {
  Row row;
  row.group = "timers";
  row.name = name;
  row.what = what;
  row.unit = "timer";
  row.ops = kTimers;
  row.fixed_ops = true;
  row.evcxx = {"evcxx", "evcxx::Timer", std::move(evcxx)};
  row.peers.push_back({"libev", "ev_timer", std::move(raw)});
  return row;
}

}  // namespace

std::vector<Row> dispatch_rows() {
  std::vector<Row> rows;
  rows.push_back(dispatch_row("Idle", "Idle callbacks", evcxx_idle, raw_idle));
  rows.push_back(dispatch_row("Io", "Io callbacks (readable fed)", evcxx_io, raw_io));
  rows.push_back(dispatch_row("Timer", "Timer callbacks", evcxx_timer, raw_timer));
  rows.push_back(dispatch_row("Periodic", "Periodic callbacks", evcxx_periodic, raw_periodic));
  rows.push_back(dispatch_row("Prepare", "Prepare callbacks", evcxx_prepare, raw_prepare));
  rows.push_back(dispatch_row("Check", "Check callbacks", evcxx_check, raw_check));
  rows.push_back(dispatch_row("Async", "Async callbacks (fed, not sent)", evcxx_async, raw_async));
  rows.push_back(dispatch_row("Signal", "Signal callbacks (ev_feed_signal_event, no signal raised)",
                              evcxx_signal, raw_signal));
  rows.push_back(dispatch_row("Fork", "Fork callbacks (fed)", evcxx_fork, raw_fork));
  rows.push_back(dispatch_row("Cleanup", "Cleanup callbacks (fed)", evcxx_cleanup, raw_cleanup));
  rows.push_back(dispatch_row("Stat", "Stat callbacks (fed)", evcxx_stat, raw_stat));
  rows.push_back(dispatch_row("Idle/std_function", "Idle, callback given as a std::function object",
                              evcxx_idle_std_function, raw_idle));
  rows.push_back(dispatch_row("Timer/std_function",
                              "Timer, callback given as a std::function object",
                              evcxx_timer_std_function, raw_timer));
  rows.push_back(dispatch_row("Idle/compile_time_callback",
                              "Idle, compile-time callback (set_callback<&K::member>(object))",
                              evcxx_idle_compile_time_callback, raw_idle));
  rows.push_back(dispatch_row("Io/compile_time_callback",
                              "Io, compile-time callback (set_callback<&K::member>(object))",
                              evcxx_io_compile_time_callback, raw_io));
  rows.push_back(dispatch_row("Timer/compile_time_callback",
                              "Timer, compile-time callback (set_callback<&K::member>(object))",
                              evcxx_timer_compile_time_callback, raw_timer));
  return rows;
}

std::vector<Row> busy_dispatch_rows() {
  std::vector<Row> rows;
  rows.push_back(dispatch_row("Idle", "Idle callbacks", evcxx_idle, raw_idle));
  rows.push_back(dispatch_row("Io", "Io callbacks (readable fed)", evcxx_io, raw_io));
  rows.push_back(dispatch_row("Timer", "Timer callbacks", evcxx_timer, raw_timer));
  return rows;
}

std::vector<Row> io_rows() {
  Row row;
  row.group = "io";
  row.name = "write_interest_toggle";
  row.what =
      "changing the events of an active Io on the same descriptor, one EVRUN_NOWAIT iteration "
      "after each change";
  row.unit = "toggle";
  row.ops = 2048;
  row.evcxx = {"evcxx", "Io::set(events)", evcxx_io_toggle};
  row.peers.push_back({"libev_set", "ev_io_stop; ev_io_set; ev_io_start", raw_io_toggle_set});
  row.peers.push_back(
      {"libev_modify", "ev_io_stop; ev_io_modify; ev_io_start", raw_io_toggle_modify});
  return {row};
}

std::vector<Row> timer_rows() {
  std::vector<Row> rows;
  rows.push_back(timer_row("start_stop", "100k timers started, then stopped",
                           evcxx_timers_start_stop, raw_timers_start_stop));
  rows.push_back(timer_row("create_destroy",
                           "100k timers created active, then destroyed (storage preallocated)",
                           evcxx_timers_create_destroy, raw_timers_create_destroy));
  rows.push_back(timer_row("fire_once", "100k timers started, the loop runs until each fired once",
                           evcxx_timers_fire, raw_timers_fire));
  return rows;
}

std::vector<SizeRow> watcher_sizes() {
  return {
      {"Io", sizeof(evcxx::Io), sizeof(ev_io)},
      {"Timer", sizeof(evcxx::Timer), sizeof(ev_timer)},
      {"Periodic", sizeof(evcxx::Periodic), sizeof(ev_periodic)},
      {"Signal", sizeof(evcxx::Signal), sizeof(ev_signal)},
      {"Child", sizeof(evcxx::Child), sizeof(ev_child)},
      {"Stat", sizeof(evcxx::Stat), sizeof(ev_stat)},
      {"Idle", sizeof(evcxx::Idle), sizeof(ev_idle)},
      {"Prepare", sizeof(evcxx::Prepare), sizeof(ev_prepare)},
      {"Check", sizeof(evcxx::Check), sizeof(ev_check)},
      {"Fork", sizeof(evcxx::Fork), sizeof(ev_fork)},
      {"Cleanup", sizeof(evcxx::Cleanup), sizeof(ev_cleanup)},
      {"Embed", sizeof(evcxx::Embed), sizeof(ev_embed)},
      {"Async", sizeof(evcxx::Async), sizeof(ev_async)},
  };
}

}  // namespace evcxx_bench::sbs
