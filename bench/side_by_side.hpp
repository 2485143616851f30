#pragma once

// side_by_side_bench: every row of issue 10's table, each evcxx figure beside its peers (raw
// libev C doing the same work, and Boost.Asio or bare system calls where the issue names them),
// in one binary and one run.
//
// A row is one operation written once per side. Every side of a row runs one sample per round,
// the sides' order rotating from round to round, so a change in the machine's load hits the
// sides of a pair alike; the figure published for each peer is the median over the rounds of
// evcxx's time divided by the peer's time in the same round (lower is better). Google Benchmark
// is not used here: its repetitions are shuffled across all benchmarks, so it has no pairs.

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <evcxx/loop_thread.hpp>

#include "machine_state.hpp"

namespace evcxx_bench::sbs {

using Clock = std::chrono::steady_clock;

// Seconds from `start` until now, for a Sample.
inline double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// What one sample of one side did: the operations it timed and the seconds they took (setup and
// teardown are outside the clock).
struct Sample {
  std::uint64_t ops = 0;
  double seconds = 0;
};

// Runs about `ops` operations (a body may round up to its batch size) and times them. Throws
// std::runtime_error when what it measured went wrong (a lost callback, a short count).
using Body = std::function<Sample(std::uint64_t ops)>;

struct Side {
  std::string name;   // "evcxx", "libev", "libev_modify", "asio", ...
  std::string label;  // what the report calls it
  Body body;
};

struct Row {
  std::string group;  // dispatch, io, timers, post, busy, echo, wake
  std::string name;   // unique within the group
  std::string what;   // one line for the report
  std::string unit;   // what one operation is: "callback", "toggle", "timer", "task", ...
  // Operations per sample: a fixed count when fixed_ops, else the first guess of a calibration
  // that aims each sample at the run's target time.
  std::uint64_t ops = 1000;
  bool fixed_ops = false;
  bool busy_core = false;  // run while another thread keeps one core busy
  // A placeholder row: its evcxx side measures a stand-in (said in `what`) until the API exists.
  bool slot = false;
  Side evcxx;
  std::vector<Side> peers;
};

// The busy-poll rows' spin: far longer than a round trip between two spinning loops, so that
// each side is still spinning when the other's wake-up comes.
inline constexpr std::chrono::microseconds busy_poll_spin{50};

// Turns on thread's Loop::set_busy_poll(spin) and, for a non-zero spin, pins it to `cpu` (loop A
// to CPU 0, B to CPU 1): busy-polling sides are compared on the spinning floor's placement, and
// blocking ones run where the scheduler puts them.
void set_busy_poll(evcxx::LoopThread& thread, std::chrono::duration<double> spin, int cpu);
// Pins the calling thread to `cpu` when the machine has two CPUs or more.
void pin_to_cpu_if_two(int cpu);
// Two threads waking each other with a bare futex / a blocking eventfd read, where the scheduler
// puts them (side_by_side_wake.cpp): when it keeps both on one CPU a hand-off is a context switch.
Sample futex_ping_pong(std::uint64_t ops);
Sample eventfd_ping_pong(std::uint64_t ops);
// The futex ping-pong pinned to CPUs 0 and 1: the floor of a blocking hand-off between threads on
// two CPUs, where each one wakes a CPU that went idle.
Sample futex_ping_pong_two_cpus(std::uint64_t ops);

// The rows of each group, in the order of issue 10's table (and issue 11's coroutine rows).
std::vector<Row> dispatch_rows();
std::vector<Row> io_rows();
std::vector<Row> timer_rows();
std::vector<Row> post_rows();
std::vector<Row> echo_rows();
std::vector<Row> wake_rows();
std::vector<Row> coro_rows();

// Dispatch rows worth repeating while a core is busy.
std::vector<Row> busy_dispatch_rows();

// sizeof each evcxx watcher beside its libev struct.
struct SizeRow {
  std::string type;
  std::size_t evcxx;
  std::size_t libev;
};
std::vector<SizeRow> watcher_sizes();

// The machine-state probe and the busy-core spinner (machine_state.hpp).
using evcxx_bench::BusyCore;
using evcxx_bench::spin_ping_pong;
using evcxx_bench::SpinResult;

// Keeps the compiler from dropping or merging what a callback counts.
inline void clobber() noexcept {
  asm volatile("" ::: "memory");
}

}  // namespace evcxx_bench::sbs
