// Hand-off latency between two threads: evcxx::WaitableEvent against the usual
// std::condition_variable + std::mutex + bool, side by side in one binary. Two threads ping-pong
// (set() then the other side's wait()); ns/hand-off = wall time / (2 * round trips). At the end
// the WaitableEvent/condvar ratio is printed (the goal is <= 1).
//
//   waitable_event_bench [--benchmark_repetitions=N]
#include <benchmark/benchmark.h>

#include <evcxx/loop.hpp>
#include <evcxx/waitable_event.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

constexpr int kRoundTrips = 2000;

// The event everyone writes by hand.
class CondvarEvent {
 public:
  void set() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      set_ = true;
    }
    changed_.notify_one();  // one waiter here; notify_one is the cheaper, fairer baseline
  }
  // Waits until set, then clears (the ping-pong's consumer side).
  void wait_and_clear() {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [this] { return set_; });
    set_ = false;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  bool set_ = false;
};

class WaitableEventPair {
 public:
  void set(int i) { (i == 0 ? ping_ : pong_).set(); }
  void wait_and_clear(int i) {
    evcxx::WaitableEvent& e = i == 0 ? ping_ : pong_;
    e.wait();
    e.clear();
  }

 private:
  evcxx::Loop loop_;  // never run: the events are only waited on by threads
  evcxx::WaitableEvent ping_{loop_};
  evcxx::WaitableEvent pong_{loop_};
};

class CondvarPair {
 public:
  void set(int i) { events_[i].set(); }
  void wait_and_clear(int i) { events_[i].wait_and_clear(); }

 private:
  CondvarEvent events_[2];
};

template <class Pair>
void ping_pong(benchmark::State& state) {
  Pair pair;
  double total_seconds = 0;
  std::size_t total_handoffs = 0;
  for (auto _ : state) {
    std::thread partner([&] {
      for (int i = 0; i < kRoundTrips; ++i) {
        pair.wait_and_clear(0);
        pair.set(1);
      }
    });
    const Clock::time_point start = Clock::now();
    for (int i = 0; i < kRoundTrips; ++i) {
      pair.set(0);
      pair.wait_and_clear(1);
    }
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    partner.join();
    state.SetIterationTime(seconds);
    total_seconds += seconds;
    total_handoffs += 2 * kRoundTrips;
  }
  state.counters["ns_per_handoff"] = total_seconds * 1e9 / static_cast<double>(total_handoffs);
}

BENCHMARK_TEMPLATE(ping_pong, WaitableEventPair)
    ->Name("waitable_event")
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(ping_pong, CondvarPair)
    ->Name("condvar")
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

// Prints the runs as usual and finally the ratio (medians when repeated).
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      if (run.run_type == Run::RT_Aggregate && run.aggregate_name != "median") continue;
      const auto counter = run.counters.find("ns_per_handoff");
      if (counter == run.counters.end()) continue;
      const bool median = run.run_type == Run::RT_Aggregate;
      auto& slot = results_[run.run_name.function_name];
      if (median || !slot.from_median) slot = {counter->second.value, median};
    }
  }

  void print_ratio() const {
    const auto event = results_.find("waitable_event");
    const auto condvar = results_.find("condvar");
    if (event == results_.end() || condvar == results_.end()) return;
    std::printf(
        "\nns/hand-off: WaitableEvent %.0f, condition_variable %.0f, ratio %.3f (goal <= 1)\n",
        event->second.ns, condvar->second.ns, event->second.ns / condvar->second.ns);
  }

 private:
  struct Result {
    double ns = 0;
    bool from_median = false;
  };
  std::map<std::string, Result> results_;
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.print_ratio();
  benchmark::Shutdown();
  return 0;
}
