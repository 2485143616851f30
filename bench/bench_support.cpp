#include "bench_support.hpp"

#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

namespace evcxx_bench {

namespace {

std::atomic<bool> any_failure{false};

// One measured operation: "<family>/<peer>/<args>" split up, "/real_time" dropped.
struct BenchmarkId {
  std::string family;
  std::string peer;
  std::string args;
};

BenchmarkId split_name(std::string name) {
  const std::string real_time = "/real_time";
  if (name.size() > real_time.size() &&
      name.compare(name.size() - real_time.size(), real_time.size(), real_time) == 0) {
    name.erase(name.size() - real_time.size());
  }
  BenchmarkId id;
  const auto first = name.find('/');
  id.family = name.substr(0, first);
  if (first == std::string::npos) return id;
  const auto second = name.find('/', first + 1);
  id.peer = name.substr(first + 1, second == std::string::npos ? second : second - first - 1);
  if (second != std::string::npos) id.args = name.substr(second + 1);
  return id;
}

// Wall-clock time for benchmarks registered with UseRealTime() (several threads share the work),
// CPU time for single-threaded ones, which then do not count time spent preempted.
double measured_time(const std::string& name, const benchmark::BenchmarkReporter::Run& run) {
  const std::string real_time = "/real_time";
  const bool uses_real_time =
      name.size() > real_time.size() &&
      name.compare(name.size() - real_time.size(), real_time.size(), real_time) == 0;
  return uses_real_time ? run.GetAdjustedRealTime() : run.GetAdjustedCPUTime();
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const auto n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

// The console table as usual, and each operation's median real time kept for the summary.
class ComparingReporter : public benchmark::ConsoleReporter {
 public:
  ComparingReporter()
      : ConsoleReporter(isatty(STDOUT_FILENO) != 0 ? OO_ColorTabular : OO_Tabular) {}

  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      if (run.error_occurred) continue;
      const std::string name = run.run_name.str();
      Samples& samples = samples_[name];
      const double time = measured_time(name, run);
      if (run.run_type == Run::RT_Aggregate) {
        if (run.aggregate_name == "median") samples.median = time;
        if (run.aggregate_name == "best") samples.best = time;
      } else {
        samples.each.push_back(time);
        samples.unit = benchmark::GetTimeUnitString(run.time_unit);
      }
      if (samples.unit.empty()) samples.unit = benchmark::GetTimeUnitString(run.time_unit);
    }
  }

  void print_comparison() const {
    // family + args -> peer -> time
    std::map<std::string, std::map<std::string, double>> groups;
    std::map<std::string, std::string> units;
    for (const auto& [name, samples] : samples_) {
      const BenchmarkId id = split_name(name);
      if (id.peer.empty()) continue;
      const double value = samples.best >= 0     ? samples.best
                           : samples.median >= 0 ? samples.median
                                                 : median(samples.each);
      const std::string key = id.args.empty() ? id.family : id.family + "/" + id.args;
      groups[key][id.peer] = value;
      units[key] = samples.unit;
    }
    bool header = false;
    for (const auto& [key, peers] : groups) {
      const auto reference = peers.find("evcxx");
      if (reference == peers.end() || peers.size() < 2) continue;
      if (!header) {
        std::printf(
            "\nevcxx beside each peer (time per operation: wall-clock when multi-threaded, "
            "else CPU; the best repetition when repeated):\n");
        std::printf("  %-28s %-12s %12s %12s %12s\n", "operation", "peer", "time", "peer/evcxx",
                    "evcxx/peer");
        header = true;
      }
      const std::string& unit = units.at(key);
      std::printf("  %-28s %-12s %9.1f %-2s %12s %12s\n", key.c_str(), "evcxx", reference->second,
                  unit.c_str(), "1.000", "1.000");
      for (const auto& [peer, value] : peers) {
        if (peer == "evcxx") continue;
        std::printf("  %-28s %-12s %9.1f %-2s %12.3f %12.3f\n", key.c_str(), peer.c_str(), value,
                    unit.c_str(), value / reference->second, reference->second / value);
      }
    }
    std::fflush(stdout);
  }

 private:
  struct Samples {
    std::vector<double> each;
    double median = -1;
    double best = -1;
    std::string unit;
  };
  std::map<std::string, Samples> samples_;
};

}  // namespace

double best(const std::vector<double>& repetitions) {
  return repetitions.empty() ? 0.0 : *std::min_element(repetitions.begin(), repetitions.end());
}

void fail(benchmark::State& state, const std::string& why) {
  any_failure.store(true);
  state.SkipWithError(why.c_str());
}

void expect_count(benchmark::State& state, const char* what, long long got, long long expected) {
  if (got != expected) {
    fail(state, std::string(what) + ": expected " + std::to_string(expected) + ", got " +
                    std::to_string(got));
  }
}

int run_main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  ComparingReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.print_comparison();
  benchmark::Shutdown();
  if (any_failure.load()) {
    std::fprintf(stderr, "a benchmark measured something that went wrong (see above)\n");
    return 1;
  }
  return 0;
}

}  // namespace evcxx_bench
