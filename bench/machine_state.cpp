#include "machine_state.hpp"

#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "../src/cpu_relax.hpp"  // the library's own spin hint

namespace evcxx_bench {

using Clock = std::chrono::steady_clock;

namespace {

std::string load_average() {
  double loads[3];
  if (getloadavg(loads, 3) != 3) return "";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f, %.2f, %.2f", loads[0], loads[1], loads[2]);
  return buf;
}

}  // namespace

MachineState measure_machine_state(const std::string& when, bool expect_busy_spinner) {
  std::vector<double> bursts;
  for (int i = 0; i < 7; ++i) {
    bursts.push_back(spin_ping_pong(2000, std::chrono::milliseconds(15)).ns_per_round_trip);
  }
  MachineState s;
  s.when = expect_busy_spinner ? when + " (a third thread spinning)" : when;
  std::sort(bursts.begin(), bursts.end());
  s.median_ns = bursts[bursts.size() / 2];
  s.best_ns = bursts.front();
  s.verdict = s.median_ns <= kCoScheduledNs ? "both cores free" : "one core busy";
  s.load = load_average();
  std::printf("machine state %-44s spin round trip median %.0f ns (best %.0f ns): %s\n",
              s.when.c_str(), s.median_ns, s.best_ns, s.verdict.c_str());
  std::fflush(stdout);
  return s;
}

bool pin_to_cpu(pthread_t thread, int cpu) noexcept {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return pthread_setaffinity_np(thread, sizeof set, &set) == 0;
}

SpinResult spin_ping_pong(std::uint64_t round_trips, std::chrono::duration<double> budget,
                          bool pinned) {
  // Odd: the other thread's turn; even: ours. The other thread quits when it sees `quit`.
  std::atomic<std::uint64_t> turn{0};
  std::atomic<bool> quit{false};
  const auto wait_for = [&](std::uint64_t value) {
    for (int spins = 0; turn.load(std::memory_order_acquire) != value;) {
      if (quit.load(std::memory_order_relaxed)) return false;
      // Long past a cross-core hand-off (well under a microsecond): the other thread is not
      // running, let it.
      if (++spins > 2000) {
        sched_yield();
      } else {
        evcxx::detail::cpu_relax();
      }
    }
    return true;
  };
  std::thread other([&] {
    for (std::uint64_t i = 0;; ++i) {
      if (!wait_for(2 * i + 1)) return;
      turn.store(2 * i + 2, std::memory_order_release);
    }
  });
  cpu_set_t caller_cpus;
  const bool pin = pinned && sysconf(_SC_NPROCESSORS_ONLN) >= 2 &&
                   pthread_getaffinity_np(pthread_self(), sizeof caller_cpus, &caller_cpus) == 0;
  if (pin) {
    pin_to_cpu(pthread_self(), 0);
    pin_to_cpu(other.native_handle(), 1);
  }
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::duration_cast<Clock::duration>(budget);
  std::uint64_t done = 0;
  while (done < round_trips) {
    turn.store(2 * done + 1, std::memory_order_release);
    wait_for(2 * done + 2);
    ++done;
    if ((done & 63) == 0 && Clock::now() > deadline) break;
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  quit.store(true, std::memory_order_relaxed);
  other.join();
  if (pin) pthread_setaffinity_np(pthread_self(), sizeof caller_cpus, &caller_cpus);
  return {seconds * 1e9 / static_cast<double>(done), done};
}

struct BusyCore::State {
  std::atomic<bool> stop{false};
  std::thread thread;
};

BusyCore::BusyCore(bool pin) : state_(new State) {
  state_->thread = std::thread([s = state_] {
    // Spins without a pause hint: the point is to keep the core busy.
    while (!s->stop.load(std::memory_order_relaxed)) {
    }
  });
  if (pin) {
    const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    const int cpu = static_cast<int>(std::max(0L, cpus - 1));
    if (pin_to_cpu(state_->thread.native_handle(), cpu)) pinned_cpu_ = cpu;
  }
}

BusyCore::~BusyCore() {
  state_->stop.store(true, std::memory_order_relaxed);
  state_->thread.join();
  delete state_;
}

}  // namespace evcxx_bench
