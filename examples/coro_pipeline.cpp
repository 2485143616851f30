// A pipeline with evcxx::coro: a producer thread hands items to a loop thread (the hub), whose
// Task for each item computes two things at once on a worker pool (when_all of two submit()s),
// moves itself to a worker for one more stage (resume_on) and back to the hub to record the
// result, where only the hub's thread touches the totals.
//
// Usage: coro_pipeline [--items N] [--workers N]
// Prints "pipeline: N items, checksum C (expected C)" and exits 0 when they agree.

#include <evcxx/coro.hpp>
#include <evcxx/evcxx.hpp>

#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <thread>

namespace {

using evcxx::LoopThread;
using evcxx::Task;

// Hub thread only (every Task below touches them after its resume_on(hub)).
struct Totals {
  long long checksum = 0;
  long items_done = 0;
  long items_wanted = 0;
  bool wrong_thread = false;
  evcxx::WaitableEvent all_done;
};

long long square(long long x) {
  return x * x;
}
long long cube(long long x) {
  return x * x * x;
}

// LoopThread::submit as a Task, so that when_all can run two at once.
template <class F>
Task<long long> on_worker(LoopThread& worker, F function) {
  co_return co_await evcxx::submit(worker, std::move(function));
}

Task<> handle(LoopThread& hub, evcxx::LoopPool& workers, long long item, Totals& totals) {
  // Stage 1, on two workers at once; the Task waits on the hub.
  auto [squared, cubed] = co_await evcxx::when_all(
      on_worker(workers[0], [item] { return square(item); }),
      on_worker(workers[workers.size() - 1], [item] { return cube(item); }));
  // Stage 2, the Task itself on a worker.
  LoopThread& worker = workers.next();
  co_await evcxx::resume_on(worker);
  const bool ran_on_worker = worker.in_loop_thread();
  const long long combined = squared + cubed;
  // Stage 3, back on the hub: only its thread touches the totals.
  co_await evcxx::resume_on(hub);
  if (!ran_on_worker || !hub.in_loop_thread()) totals.wrong_thread = true;
  totals.checksum += combined;
  if (++totals.items_done == totals.items_wanted) totals.all_done.set();
}

}  // namespace

int main(int argc, char** argv) {
  try {
    long items = 1000;
    std::size_t worker_count = 2;
    for (int i = 1; i < argc; ++i) {
      const std::string arg = argv[i];
      if (arg == "--items" && i + 1 < argc) {
        items = std::stol(argv[++i]);
      } else if (arg == "--workers" && i + 1 < argc) {
        worker_count = static_cast<std::size_t>(std::stoul(argv[++i]));
      } else {
        throw std::invalid_argument("usage: coro_pipeline [--items N] [--workers N]");
      }
    }
    if (items < 1 || worker_count < 1) throw std::invalid_argument("--items and --workers >= 1");

    LoopThread hub("pipeline-hub");
    evcxx::LoopPool workers(worker_count, "pipeline-w");
    Totals totals;
    totals.items_wanted = items;

    std::thread producer([&] {
      for (long i = 1; i <= items; ++i) evcxx::spawn(hub.loop(), handle(hub, workers, i, totals));
    });
    producer.join();
    if (!totals.all_done.wait_for(std::chrono::seconds(60))) {
      std::fprintf(stderr, "coro_pipeline: bug: the items did not all come through in 60 s\n");
      return 1;
    }
    long long expected = 0;
    for (long long i = 1; i <= items; ++i) expected += square(i) + cube(i);
    // all_done.set() on the hub happens-before wait_for() returned: the totals are complete.
    std::printf("pipeline: %ld items, checksum %lld (expected %lld)\n", items, totals.checksum,
                expected);
    if (totals.wrong_thread) std::printf("pipeline: bug: a stage ran on the wrong thread\n");
    return totals.checksum == expected && !totals.wrong_thread ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "coro_pipeline: %s\n", e.what());
    return 1;
  }
}
