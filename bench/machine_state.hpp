#pragma once

#include <pthread.h>

// Which state the machine is in while a benchmark runs: whether two threads really run at once
// (both cores free) or time-share one core (one core busy), measured with a short spinning
// ping-pong; and a spinning thread that keeps one core busy on purpose, for a busy-core pass.

#include <chrono>
#include <cstdint>
#include <string>

namespace evcxx_bench {

// Round trip between two threads spinning on one atomic, in nanoseconds: the wake-up floor, and
// the test of whether two threads really run at once. Bounded by `budget` whatever the machine
// does (a spinner falls back to sched_yield after a while, so two threads on one core still
// make progress). With `pinned`, on a machine of two or more CPUs, the two threads are pinned to
// CPUs 0 and 1 for the run (the floor at its best: a new thread starts on its parent's core, and
// the scheduler may take long to move it); the caller's own affinity is restored afterwards.
struct SpinResult {
  double ns_per_round_trip = 0;
  std::uint64_t round_trips = 0;
};
// Pins `thread` to `cpu`; false when the system refuses.
bool pin_to_cpu(pthread_t thread, int cpu) noexcept;

SpinResult spin_ping_pong(std::uint64_t round_trips, std::chrono::duration<double> budget,
                          bool pinned = false);

// Above this many nanoseconds per spinning round trip, the two threads were not running at once.
constexpr double kCoScheduledNs = 2000;

// Several short spinning ping-pongs; the median burst decides. A cross-core hand-off costs well
// under a microsecond; two threads time-sharing one core cost a context switch or a time slice
// per hand-off. Prints one line and returns what it measured.
struct MachineState {
  std::string when;
  double median_ns = 0;
  double best_ns = 0;
  std::string verdict;  // "both cores free" or "one core busy"
  std::string load;     // the load averages
};
MachineState measure_machine_state(const std::string& when, bool expect_busy_spinner);

// Keeps one core busy with a spinning thread while it exists; `pin` pins it to the last CPU.
class BusyCore {
 public:
  explicit BusyCore(bool pin);
  ~BusyCore();
  BusyCore(const BusyCore&) = delete;
  BusyCore& operator=(const BusyCore&) = delete;
  int pinned_cpu() const noexcept { return pinned_cpu_; }

 private:
  struct State;
  State* state_;
  int pinned_cpu_ = -1;
};

}  // namespace evcxx_bench
