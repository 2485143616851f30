#pragma once

// What every benchmark binary here shares: a way for a benchmark to report that the thing it
// measured went wrong (so a ctest smoke run fails), and a main() that prints, after the usual
// table, each peer's time beside evcxx's.
//
// Benchmark names follow "<family>/<peer>[/<arg>...]": peers of one family (and the same
// arguments) measure the same operation, and the summary compares them with the "evcxx" peer.

#include <benchmark/benchmark.h>

#include <string>
#include <vector>

namespace evcxx_bench {

// Marks the run as failed: the benchmark is reported as an error and main() returns 1.
// Benchmark thread only.
void fail(benchmark::State& state, const std::string& why);

// Checks a measured count and fails the benchmark when it is not what was expected.
void expect_count(benchmark::State& state, const char* what, long long got, long long expected);

// The fastest of a benchmark's repetitions, registered as an extra statistic ("best") with
// ->ComputeStatistics("best", evcxx_bench::best). On a shared machine other work only ever adds
// time, so the best repetition is the closest to the cost of the mechanism itself.
double best(const std::vector<double>& repetitions);

// Initializes Google Benchmark from the command line, runs the selected benchmarks, prints the
// comparison with evcxx and returns the process exit status.
int run_main(int argc, char** argv);

}  // namespace evcxx_bench
