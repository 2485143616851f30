// The wake-up floor rows of side_by_side_bench: a round trip between two threads (A wakes B, B
// wakes A back), time per round trip.
//
// evcxx: two LoopThreads waking each other, with Async::send or with post(), with and without
// Loop::set_busy_poll (issue 10.5's opt-in spin before blocking). Peers: two threads spinning on
// one atomic (the floor: no system call, no sleep), a bare futex ping-pong, a bare blocking eventfd
// ping-pong, and two raw libev loops on their own threads waking each other with ev_async.

#include <ev.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <evcxx/async.hpp>
#include <evcxx/loop.hpp>
#include <evcxx/loop_thread.hpp>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <utility>

#include "side_by_side.hpp"
#include "system.hpp"

namespace evcxx_bench::sbs {

void set_busy_poll(evcxx::LoopThread& thread, std::chrono::duration<double> spin, int cpu) {
  thread
      .submit([&thread, spin, cpu] {
        thread.loop().set_busy_poll(spin);
        if (spin.count() > 0) pin_to_cpu_if_two(cpu);
      })
      .get();
}

void pin_to_cpu_if_two(int cpu) {
  if (sysconf(_SC_NPROCESSORS_ONLN) >= 2) pin_to_cpu(pthread_self(), cpu);
}

namespace {

using evcxx_bench::Eventfd;
using evcxx_bench::throw_errno;

// Set by whoever finishes the last round trip; the benchmark thread waits for it.
class Done {
 public:
  void set() noexcept {
    done_.store(true, std::memory_order_release);
    done_.notify_one();
  }
  void wait() const noexcept { done_.wait(false, std::memory_order_acquire); }

 private:
  std::atomic<bool> done_{false};
};

Sample evcxx_async(std::uint64_t ops, std::chrono::duration<double> spin) {
  evcxx::LoopThread a("bench-wake-a");
  evcxx::LoopThread b("bench-wake-b");
  set_busy_poll(a, spin, 0);
  set_busy_poll(b, spin, 1);
  // Each on a line of its own (as in PostPingPong below).
  alignas(128) std::optional<evcxx::Async> on_a;
  alignas(128) std::optional<evcxx::Async> on_b;
  alignas(128) std::uint64_t round_trips = 0;  // thread A
  Done done;  // A's callback may still be in set(): the submit() below waits for it to return
  // Watchers are created and destroyed on their loop's thread.
  a.submit([&] {
     on_a.emplace(a.loop(), [&] {
       if (++round_trips == ops) {
         done.set();
       } else {
         on_b->send();
       }
     });
   }).get();
  b.submit([&] { on_b.emplace(b.loop(), [&] { on_a->send(); }); }).get();
  const auto start = Clock::now();
  on_b->send();
  done.wait();
  const double seconds = seconds_since(start);
  a.submit([&] { on_a.reset(); }).get();
  b.submit([&] { on_b.reset(); }).get();
  return {ops, seconds};
}

struct PostPingPong {
  Done done;  // first, so that it outlives the threads: the last task may still be in set()
  std::uint64_t target = 0;
  // Each on a line of its own: A writes round_trips on every round trip, and B reads `a` to post
  // to it (the spinning floor shares no line by accident either).
  alignas(128) std::uint64_t round_trips = 0;  // thread A
  alignas(128) evcxx::LoopThread a{"bench-wake-a"};
  alignas(128) evcxx::LoopThread b{"bench-wake-b"};

  void ping() {
    b.post([this] { a.post([this] { pong(); }); });
  }
  void pong() {
    if (++round_trips == target) {
      done.set();
    } else {
      ping();
    }
  }
};

Sample evcxx_post(std::uint64_t ops, std::chrono::duration<double> spin) {
  PostPingPong p;
  p.target = ops;
  set_busy_poll(p.a, spin, 0);
  set_busy_poll(p.b, spin, 1);
  const auto start = Clock::now();
  p.ping();
  p.done.wait();
  return {ops, seconds_since(start)};
}

Sample spin(std::uint64_t ops) {
  // The floor at its best: the two threads pinned to two CPUs.
  const SpinResult r = spin_ping_pong(ops, std::chrono::seconds(10), /*pinned=*/true);
  return {r.round_trips, r.ns_per_round_trip * static_cast<double>(r.round_trips) / 1e9};
}

long futex(std::atomic<std::uint32_t>& word, int op, std::uint32_t value) {
  static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t));
  return ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), op, value, nullptr, nullptr,
                   0);
}

}  // namespace

namespace {

// One word: odd values are B's turn, even ones A's; UINT32_MAX tells B to quit. two_cpus: A and B
// each on a thread of its own, pinned to CPUs 0 and 1.
Sample futex_ping_pong_on(std::uint64_t ops, bool two_cpus) {
  std::atomic<std::uint32_t> turn{0};
  constexpr std::uint32_t kQuit = UINT32_MAX;
  const auto wait_until = [&turn](std::uint32_t want) {
    for (std::uint32_t seen = turn.load(std::memory_order_acquire); seen != want;
         seen = turn.load(std::memory_order_acquire)) {
      if (seen == kQuit) return false;
      futex(turn, FUTEX_WAIT_PRIVATE, seen);
    }
    return true;
  };
  std::thread b([&] {
    if (two_cpus) pin_to_cpu_if_two(1);
    for (std::uint32_t i = 0;; ++i) {
      if (!wait_until(2 * i + 1)) return;
      turn.store(2 * i + 2, std::memory_order_release);
      futex(turn, FUTEX_WAKE_PRIVATE, 1);
    }
  });
  const auto play_a = [&] {
    for (std::uint64_t i = 0; i < ops; ++i) {
      const auto n = static_cast<std::uint32_t>(i);
      turn.store(2 * n + 1, std::memory_order_release);
      futex(turn, FUTEX_WAKE_PRIVATE, 1);
      wait_until(2 * n + 2);
    }
  };
  double seconds = 0;
  if (two_cpus) {
    std::thread a([&] {
      pin_to_cpu_if_two(0);
      const auto start = Clock::now();
      play_a();
      seconds = seconds_since(start);
    });
    a.join();
  } else {
    const auto start = Clock::now();
    play_a();
    seconds = seconds_since(start);
  }
  turn.store(kQuit, std::memory_order_release);
  futex(turn, FUTEX_WAKE_PRIVATE, 1);
  b.join();
  return {ops, seconds};
}

}  // namespace

Sample futex_ping_pong(std::uint64_t ops) {
  return futex_ping_pong_on(ops, false);
}

Sample futex_ping_pong_two_cpus(std::uint64_t ops) {
  return futex_ping_pong_on(ops, true);
}

Sample eventfd_ping_pong(std::uint64_t ops) {
  Eventfd to_a;
  Eventfd to_b;
  std::atomic<bool> quit{false};
  std::thread b([&] {
    for (;;) {
      to_b.wait();
      if (quit.load(std::memory_order_acquire)) return;
      to_a.signal();
    }
  });
  const auto start = Clock::now();
  for (std::uint64_t i = 0; i < ops; ++i) {
    to_b.signal();
    to_a.wait();
  }
  const double seconds = seconds_since(start);
  quit.store(true, std::memory_order_release);
  to_b.signal();
  b.join();
  return {ops, seconds};
}

namespace {

// Two raw libev loops, each on its own thread; A's callback counts and breaks its loop at the end.
struct RawPair {
  struct ev_loop* loop_a = ev_loop_new(EVFLAG_AUTO);
  struct ev_loop* loop_b = ev_loop_new(EVFLAG_AUTO);
  ev_async to_a;
  ev_async to_b;
  ev_async quit_b;
  std::uint64_t target = 0;
  std::uint64_t round_trips = 0;

  RawPair() {
    if (loop_a == nullptr || loop_b == nullptr) throw std::runtime_error("ev_loop_new failed");
    ev_async_init(&to_a, [](struct ev_loop* loop, ev_async* w, int) {
      auto* self = static_cast<RawPair*>(w->data);
      if (++self->round_trips == self->target) {
        ev_break(loop, EVBREAK_ALL);
      } else {
        ev_async_send(self->loop_b, &self->to_b);
      }
    });
    ev_async_init(&to_b, [](struct ev_loop*, ev_async* w, int) {
      auto* self = static_cast<RawPair*>(w->data);
      ev_async_send(self->loop_a, &self->to_a);
    });
    ev_async_init(&quit_b,
                  [](struct ev_loop* loop, ev_async*, int) { ev_break(loop, EVBREAK_ALL); });
    to_a.data = to_b.data = this;
    ev_async_start(loop_a, &to_a);
    ev_async_start(loop_b, &to_b);
    ev_async_start(loop_b, &quit_b);
  }
  ~RawPair() {
    ev_async_stop(loop_a, &to_a);
    ev_async_stop(loop_b, &to_b);
    ev_async_stop(loop_b, &quit_b);
    ev_loop_destroy(loop_a);
    ev_loop_destroy(loop_b);
  }
  RawPair(const RawPair&) = delete;
  RawPair& operator=(const RawPair&) = delete;
};

Sample libev_async(std::uint64_t ops) {
  RawPair p;
  p.target = ops;
  std::thread b([&] { ev_run(p.loop_b, 0); });
  std::thread a([&] { ev_run(p.loop_a, 0); });
  const auto start = Clock::now();
  ev_async_send(p.loop_b, &p.to_b);
  a.join();
  const double seconds = seconds_since(start);
  ev_async_send(p.loop_b, &p.quit_b);
  b.join();
  if (p.round_trips != ops) throw std::runtime_error("libev round trips: short count");
  return {ops, seconds};
}

Row wake_row(std::string name, std::string what, std::string label, Body evcxx) {
  Row row;
  row.group = "wake";
  row.name = std::move(name);
  row.what = std::move(what);
  row.unit = "round trip";
  row.ops = 200;
  row.evcxx = {"evcxx", std::move(label), std::move(evcxx)};
  row.peers.push_back(
      {"spin", "two threads spinning on one atomic, pinned to two CPUs (the floor)", spin});
  row.peers.push_back({"futex", "bare futex ping-pong", futex_ping_pong});
  row.peers.push_back({"eventfd", "bare eventfd ping-pong (blocking read)", eventfd_ping_pong});
  row.peers.push_back({"libev", "two raw libev loop threads, ev_async", libev_async});
  return row;
}

}  // namespace

std::vector<Row> wake_rows() {
  using Seconds = std::chrono::duration<double>;
  const auto blocking = [](Sample (*body)(std::uint64_t, Seconds)) -> Body {
    return [body](std::uint64_t ops) { return body(ops, Seconds::zero()); };
  };
  const auto busy = [](Sample (*body)(std::uint64_t, Seconds)) -> Body {
    return [body](std::uint64_t ops) { return body(ops, busy_poll_spin); };
  };
  return {
      wake_row("loop_threads_async", "two LoopThreads waking each other with Async::send",
               "evcxx LoopThreads, Async::send", blocking(evcxx_async)),
      wake_row("loop_threads_post", "two LoopThreads waking each other with post()",
               "evcxx LoopThreads, post()", blocking(evcxx_post)),
      wake_row("loop_threads_async_busy_poll",
               "two LoopThreads busy-polling 50 µs (Loop::set_busy_poll) waking each other with "
               "Async::send",
               "evcxx LoopThreads busy-polling 50 µs, Async::send", busy(evcxx_async)),
      wake_row(
          "loop_threads_post_busy_poll",
          "two LoopThreads busy-polling 50 µs (Loop::set_busy_poll) waking each other with post()",
          "evcxx LoopThreads busy-polling 50 µs, post()", busy(evcxx_post)),
  };
}

}  // namespace evcxx_bench::sbs
