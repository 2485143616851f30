// wake_other_thread: worker threads report progress to the main thread's loop.
//
//   wake_other_thread [--workers N] [--steps M] [--step-ms K]
//
// Two ways to reach another thread's loop, each where it fits:
//   - Async::send() for "something changed, look": workers bump an atomic counter and send; many
//     sends before the loop looks coalesce into one callback, so a fast worker cannot flood it.
//   - Loop::post() for "run this on your thread": one message per finished worker, in order.
// Ctrl-C: the SIGINT handler may only call async-signal-safe functions; Async::send() is one.
#include <evcxx/async.hpp>
#include <evcxx/loop.hpp>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

struct Options {
  int workers = 4;
  int steps = 10;
  int step_ms = 50;
};

Options parse(int argc, char** argv) {
  Options options;
  for (int i = 1; i + 1 < argc; i += 2) {
    const int value = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--workers") == 0) {
      options.workers = value;
    } else if (std::strcmp(argv[i], "--steps") == 0) {
      options.steps = value;
    } else if (std::strcmp(argv[i], "--step-ms") == 0) {
      options.step_ms = value;
    } else {
      std::fprintf(stderr, "usage: %s [--workers N] [--steps M] [--step-ms K]\n", argv[0]);
      std::exit(2);
    }
  }
  if (options.workers < 1 || options.steps < 1 || options.step_ms < 0) {
    std::fprintf(stderr, "workers and steps must be at least 1, step-ms at least 0\n");
    std::exit(2);
  }
  return options;
}

// The handler reaches the loop only through this; set before SIGINT is handled, cleared after.
evcxx::Async* interrupt_async = nullptr;

extern "C" void on_sigint(int) {
  interrupt_async->send();
}

}  // namespace

int main(int argc, char** argv) {
  const Options options = parse(argc, argv);
  const int total_steps = options.workers * options.steps;

  evcxx::Loop loop;
  std::vector<std::atomic<int>> progress(static_cast<std::size_t>(options.workers));
  std::atomic<bool> cancel{false};
  int reported = 0;  // loop thread only
  int last_printed = -1;
  bool interrupted = false;

  evcxx::Async progress_changed(loop, [&] {
    int done = 0;
    for (const auto& steps : progress) done += steps.load(std::memory_order_relaxed);
    if (done == last_printed) return;
    last_printed = done;
    std::printf("progress: %d/%d steps\n", done, total_steps);
    std::fflush(stdout);
  });
  evcxx::Async interrupt(loop, [&] {
    if (interrupted) return;
    interrupted = true;
    std::printf("interrupt: asking %d workers to stop\n", options.workers - reported);
    std::fflush(stdout);
    cancel.store(true);
  });

  interrupt_async = &interrupt;
  struct sigaction action {};
  action.sa_handler = on_sigint;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);

  std::printf("working: %d workers x %d steps (Ctrl-C to stop)\n", options.workers, options.steps);
  std::fflush(stdout);

  std::vector<std::thread> workers;
  for (int id = 0; id < options.workers; ++id) {
    workers.emplace_back([&, id] {
      int step = 0;
      while (step < options.steps && !cancel.load()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(options.step_ms));  // the "work"
        progress[static_cast<std::size_t>(id)].store(++step, std::memory_order_relaxed);
        progress_changed.send();
      }
      // The last report travels as a task: it runs on the loop thread, after earlier sends.
      loop.post([&, id, step] {
        // The ping for this worker's last step may still be pending behind this task (the
        // wake-up runs first): bring the progress line up to date before reporting.
        progress_changed.invoke();
        std::printf("worker %d %s after %d steps\n", id,
                    step == options.steps ? "finished" : "stopped", step);
        std::fflush(stdout);
        if (++reported == options.workers) {
          // Nothing left to wait for: with no active watcher, run() returns.
          progress_changed.stop();
          interrupt.stop();
        }
      });
    });
  }

  loop.run();
  for (auto& worker : workers) worker.join();

  std::signal(SIGINT, SIG_DFL);  // before the Async the handler uses goes away
  interrupt_async = nullptr;

  int done = 0;
  for (const auto& steps : progress) done += steps.load();
  if (interrupted) {
    std::printf("interrupted: stopped cleanly after %d of %d steps\n", done, total_steps);
  } else {
    std::printf("all %d workers finished: %d steps\n", options.workers, done);
  }
  return 0;
}
