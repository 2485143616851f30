// Cross-thread post throughput: evcxx Loop::post() against Boost.Asio io_context post, side by
// side in one binary. P producer threads post tasks while the consumer (the loop / io_context
// thread) runs them concurrently; an iteration ends when the consumer has run the last task, and
// ns/task = that wall time / tasks posted. At the end the evcxx/asio ratios are printed (the goal
// is <= 0.25).
//
// By default every variant runs 10 times, interleaved at random, and the median and the best run
// are compared.
//
//   post_bench [--benchmark_repetitions=N] [--benchmark_out=f.json --benchmark_out_format=json]
#include <benchmark/benchmark.h>

#include <evcxx/async.hpp>
#include <evcxx/loop.hpp>
#include <evcxx/loop_thread.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <future>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "post_peers.hpp"

namespace {

using evcxx_bench::AsioConsumer;

using Clock = std::chrono::steady_clock;

constexpr std::size_t kTasksPerProducer = 1 << 16;

// The consumer's side: counted by the tasks themselves, on the consumer thread only.
struct Sink {
  std::size_t count = 0;
  std::size_t target = 0;
  Clock::time_point finished;
  std::promise<void> done;
  void reset(std::size_t tasks) {
    count = 0;
    target = tasks;
    done = std::promise<void>();
  }
  void hit() {
    if (++count == target) {
      finished = Clock::now();
      done.set_value();
    }
  }
};

// The consumer thread for evcxx: a Loop kept running by an Async until the fixture ends.
class EvcxxConsumer {
 public:
  EvcxxConsumer() : keepalive_(loop_, [] {}), thread_([this] { loop_.run(); }) {}
  ~EvcxxConsumer() {
    loop_.post([this] { keepalive_.stop(); });
    thread_.join();
  }
  template <class F>
  void post(F&& task) {
    loop_.post(std::forward<F>(task));
  }

 private:
  evcxx::Loop loop_;
  evcxx::Async keepalive_;
  std::thread thread_;
};

// The same through Loop::post(std::function<void()>).
class EvcxxFunctionConsumer : public EvcxxConsumer {
 public:
  template <class F>
  void post(F&& task) {
    EvcxxConsumer::post(std::function<void()>(std::forward<F>(task)));
  }
};

// The same through LoopThread::post() (a Loop on its own thread, with error reporting).
class EvcxxLoopThreadConsumer {
 public:
  template <class F>
  void post(F&& task) {
    thread_.post(std::forward<F>(task));
  }

 private:
  evcxx::LoopThread thread_{"bench-consumer"};
};

template <class Consumer>
void post_throughput(benchmark::State& state) {
  const auto producers = static_cast<std::size_t>(state.range(0));
  const std::size_t tasks = producers * kTasksPerProducer;
  Consumer consumer;
  Sink sink;
  double total_seconds = 0;
  std::size_t total_tasks = 0;
  for (auto _ : state) {
    sink.reset(tasks);
    std::future<void> done = sink.done.get_future();
    std::atomic<bool> go{false};
    std::vector<std::thread> threads;
    for (std::size_t p = 0; p < producers; ++p) {
      threads.emplace_back([&] {
        while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
        Sink* const target = &sink;
        for (std::size_t i = 0; i < kTasksPerProducer; ++i)
          consumer.post([target] { target->hit(); });
      });
    }
    const Clock::time_point start = Clock::now();
    go.store(true, std::memory_order_release);
    done.wait();
    for (auto& t : threads) t.join();
    const double seconds = std::chrono::duration<double>(sink.finished - start).count();
    state.SetIterationTime(seconds);
    total_seconds += seconds;
    total_tasks += tasks;
  }
  state.counters["ns_per_task"] = total_seconds * 1e9 / static_cast<double>(total_tasks);
  state.SetItemsProcessed(static_cast<std::int64_t>(total_tasks));
}

// Best of the repetitions: on a shared machine the least disturbed run.
double best(const std::vector<double>& values) {
  return values.empty() ? 0.0 : *std::min_element(values.begin(), values.end());
}

void configure(benchmark::internal::Benchmark* b) {
  b->Arg(1)->Arg(2)->UseManualTime()->Unit(benchmark::kMillisecond)->ComputeStatistics("min", best);
}

BENCHMARK_TEMPLATE(post_throughput, EvcxxConsumer)->Name("evcxx_post")->Apply(configure);
BENCHMARK_TEMPLATE(post_throughput, EvcxxFunctionConsumer)
    ->Name("evcxx_post_function")
    ->Apply(configure);
BENCHMARK_TEMPLATE(post_throughput, EvcxxLoopThreadConsumer)
    ->Name("evcxx_loopthread_post")
    ->Apply(configure);
BENCHMARK_TEMPLATE(post_throughput, AsioConsumer)->Name("asio_post")->Apply(configure);

// Prints the runs as usual, remembers ns/task per (variant, producers) and finally the ratios
// against Asio. With repetitions, the median is used.
// Prints the runs as usual, remembers ns/task per (variant, producers) and finally the ratios
// against Asio: of the medians over the repetitions, and of the best runs.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      const auto counter = run.counters.find("ns_per_task");
      if (counter == run.counters.end()) continue;
      // function_name "evcxx_post", args "1" (the producers)
      Result& result = results_[run.run_name.args][run.run_name.function_name];
      const double ns = counter->second.value;
      if (run.run_type == Run::RT_Iteration) {
        result.median = result.median == 0 ? ns : result.median;  // one run: it is the median
        result.best = result.best == 0 ? ns : std::min(result.best, ns);
      } else if (run.aggregate_name == "median") {
        result.median = ns;
      } else if (run.aggregate_name == "min") {
        result.best = ns;
      }
    }
  }

  void print_ratios() const {
    std::printf("\nns per task; goal: evcxx <= 0.25 x asio (median and best over repetitions)\n");
    std::printf("%-10s %-24s %10s %10s %10s %10s\n", "producers", "variant", "median", "x asio",
                "best", "x asio");
    for (const auto& [producers, variants] : results_) {
      const auto asio = variants.find("asio_post");
      for (const auto& [name, result] : variants) {
        const bool have_asio = asio != variants.end();
        std::printf("%-10s %-24s %10.1f %10.3f %10.1f %10.3f\n", producers.c_str(), name.c_str(),
                    result.median, have_asio ? result.median / asio->second.median : 0.0,
                    result.best, have_asio ? result.best / asio->second.best : 0.0);
      }
    }
  }

 private:
  struct Result {
    double median = 0;
    double best = 0;
  };
  std::map<std::string, std::map<std::string, Result>> results_;
};

}  // namespace

int main(int argc, char** argv) {
  // Defaults for a fair comparison on a shared machine: repetitions, interleaved at random so
  // that load changes hit every variant alike. Flags given on the command line win.
  std::vector<char*> args(argv, argv + argc);
  char repetitions[] = "--benchmark_repetitions=10";
  char interleave[] = "--benchmark_enable_random_interleaving=true";
  char aggregates[] = "--benchmark_report_aggregates_only=true";
  args.insert(args.begin() + 1, {repetitions, interleave, aggregates});
  argc = static_cast<int>(args.size());
  argv = args.data();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.print_ratios();
  benchmark::Shutdown();
  return 0;
}
