// evcxx::coro's cost, side by side in one binary:
//  - a co_await sleep_for(loop, 0s), a co_await readable(loop, fd) and a co_await of an IoWatch
//    resumption against the same wait written with a callback (goal: at most 1.3x the callback's
//    time). readable() registers its descriptor anew for each wait, as libev's own one-shot
//    ev_once does; its callback twin makes a new Io per wait, and the rows with an Io restarted
//    or left active show what keeping the registration saves (IoWatch's job);
//  - a resume_on round trip between two loop threads against Boost.Asio's co_spawn + post round
//    trip between two io_context threads, idle and with a timer pending (then Asio's threads
//    block in epoll_wait, as evcxx's do).
// Each benchmark iteration is a batch of kBatch waits (or round trips); items/s counts single ones.
//
//   coro_bench [--busy-core [--pin-spinner]] [Google Benchmark flags]
//
// --busy-core runs everything while a third thread spins (the machine's "one core busy" state).
// The machine state is measured before (recorded in the JSON context) and after (printed).
#include <benchmark/benchmark.h>
#include <ev.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <evcxx/coro.hpp>
#include <evcxx/evcxx.hpp>

#include "coro_round_trip.hpp"
#include "machine_state.hpp"

using namespace std::chrono_literals;

namespace {

constexpr int kBatch = 1000;

// A pipe that stays readable (one byte never read).
struct ReadablePipe {
  int fds[2] = {-1, -1};
  ReadablePipe() {
    if (::pipe(fds) != 0 || ::write(fds[1], "x", 1) != 1) throw std::runtime_error("pipe");
  }
  ~ReadablePipe() {
    ::close(fds[0]);
    ::close(fds[1]);
  }
};

void BM_Callback_Timer0(benchmark::State& state) {
  evcxx::Loop loop;
  int left = 0;
  evcxx::Timer timer(loop, evcxx::deferred, 0s, [&] {
    if (--left > 0) timer.start();
  });
  for (auto _ : state) {
    left = kBatch;
    timer.start();
    loop.run();
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_Callback_Timer0);

evcxx::Task<> sleeps(evcxx::Loop& loop) {
  for (int i = 0; i < kBatch; ++i) co_await evcxx::sleep_for(loop, 0s);
}

void BM_Coro_SleepFor0(benchmark::State& state) {
  evcxx::Loop loop;
  for (auto _ : state) {
    evcxx::spawn(loop, sleeps(loop));
    loop.run();
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_Coro_SleepFor0);

// An Io left active: each iteration of the loop calls it once (the pipe stays readable).
void BM_Callback_Readable(benchmark::State& state) {
  evcxx::Loop loop;
  ReadablePipe pipe;
  int left = 0;
  evcxx::Io io(loop, evcxx::deferred, pipe.fds[0], evcxx::IoEvent::readable, [&](evcxx::IoEvents) {
    if (--left == 0) io.stop();
  });
  for (auto _ : state) {
    left = kBatch;
    io.start();
    loop.run();
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_Callback_Readable);

// The callback written as the coroutine behaves: one wait per start, stopped when it fired.
void BM_Callback_ReadableOneShot(benchmark::State& state) {
  evcxx::Loop loop;
  ReadablePipe pipe;
  int left = 0;
  evcxx::Io io(loop, evcxx::deferred, pipe.fds[0], evcxx::IoEvent::readable, [&](evcxx::IoEvents) {
    io.stop();
    if (--left > 0) io.start();
  });
  for (auto _ : state) {
    left = kBatch;
    io.start();
    loop.run();
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_Callback_ReadableOneShot);

// The callback twin of readable(): each wait a new Io (made in the callback of the one before,
// which that destroys), so each registers the descriptor anew.
void BM_Callback_ReadableFreshIo(benchmark::State& state) {
  evcxx::Loop loop;
  ReadablePipe pipe;
  struct Reads {
    evcxx::Loop& loop;
    int fd;
    int left = 0;
    std::optional<evcxx::Io> io;
    void arm() {
      io.emplace(loop, fd, evcxx::IoEvent::readable, [this](evcxx::IoEvents) {
        if (--left > 0) {
          arm();
        } else {
          io.reset();
        }
      });
    }
  } reads{loop, pipe.fds[0], 0, std::nullopt};
  for (auto _ : state) {
    reads.left = kBatch;
    reads.arm();
    loop.run();
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_Callback_ReadableFreshIo);

// libev's own one-shot wait in C: ev_once, armed again from its callback.
void BM_Libev_ReadableEvOnce(benchmark::State& state) {
  struct ev_loop* loop = ev_loop_new(EVFLAG_AUTO);
  ReadablePipe pipe;
  struct Reads {
    struct ev_loop* loop;
    int fd;
    int left;
    static void fired(int, void* self) {
      auto* r = static_cast<Reads*>(self);
      if (--r->left > 0) ev_once(r->loop, r->fd, EV_READ, -1., &Reads::fired, r);
    }
  } reads{loop, pipe.fds[0], 0};
  for (auto _ : state) {
    reads.left = kBatch;
    ev_once(loop, reads.fd, EV_READ, -1., &Reads::fired, &reads);
    ev_run(loop, 0);
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
  ev_loop_destroy(loop);
}
BENCHMARK(BM_Libev_ReadableEvOnce);

evcxx::Task<> reads(evcxx::Loop& loop, int fd) {
  for (int i = 0; i < kBatch; ++i) co_await evcxx::readable(loop, fd);
}

void BM_Coro_Readable(benchmark::State& state) {
  evcxx::Loop loop;
  ReadablePipe pipe;
  for (auto _ : state) {
    evcxx::spawn(loop, reads(loop, pipe.fds[0]));
    loop.run();
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_Coro_Readable);

// The same reads through an IoWatch, which keeps its Io registered between the co_awaits: the
// coroutine counterpart of BM_Callback_Readable.
evcxx::Task<> watched_reads(evcxx::Loop& loop, int fd) {
  evcxx::IoWatch watch(loop, fd, evcxx::IoEvent::readable);
  for (int i = 0; i < kBatch; ++i) co_await watch;
}

void BM_Coro_IoWatch(benchmark::State& state) {
  evcxx::Loop loop;
  ReadablePipe pipe;
  for (auto _ : state) {
    evcxx::spawn(loop, watched_reads(loop, pipe.fds[0]));
    loop.run();
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_Coro_IoWatch);

void BM_Coro_ResumeOnRoundTrip(benchmark::State& state) {
  evcxx::LoopThread a("bench-a");
  evcxx::LoopThread b("bench-b");
  for (auto _ : state) evcxx_bench::run_resume_on_round_trips(a, b, kBatch);
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_Coro_ResumeOnRoundTrip)->UseRealTime();

// The same with both loops busy-polling for 50 us before they block (Loop::set_busy_poll, opt-in
// for latency-critical loops that have a core each): a hop reaches the other loop without a system
// call on either side.
void BM_Coro_ResumeOnRoundTripBusyPoll(benchmark::State& state) {
  evcxx::LoopThread a("bench-a");
  evcxx::LoopThread b("bench-b");
  for (evcxx::LoopThread* t : {&a, &b}) {
    t->submit([t] { t->loop().set_busy_poll(std::chrono::microseconds(50)); }).get();
  }
  for (auto _ : state) evcxx_bench::run_resume_on_round_trips(a, b, kBatch);
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_Coro_ResumeOnRoundTripBusyPoll)->UseRealTime();

void asio_round_trips(benchmark::State& state, evcxx_bench::AsioWait wait) {
  evcxx_bench::AsioPair pair(wait);
  for (auto _ : state) pair.round_trips(kBatch);
  state.SetItemsProcessed(state.iterations() * kBatch);
}

void BM_Asio_CoSpawnPostRoundTrip(benchmark::State& state) {
  asio_round_trips(state, evcxx_bench::AsioWait::idle);
}
BENCHMARK(BM_Asio_CoSpawnPostRoundTrip)->UseRealTime();

void BM_Asio_CoSpawnPostRoundTripWithIo(benchmark::State& state) {
  asio_round_trips(state, evcxx_bench::AsioWait::with_timers);
}
BENCHMARK(BM_Asio_CoSpawnPostRoundTripWithIo)->UseRealTime();

// Both threads polling without ever blocking: the peer of BM_Coro_ResumeOnRoundTripBusyPoll.
void BM_Asio_CoSpawnPostRoundTripPolling(benchmark::State& state) {
  asio_round_trips(state, evcxx_bench::AsioWait::polling);
}
BENCHMARK(BM_Asio_CoSpawnPostRoundTripPolling)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  bool busy_core = false;
  bool pin_spinner = false;
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    if (std::strcmp(argv[i], "--busy-core") == 0) {
      busy_core = true;
    } else if (std::strcmp(argv[i], "--pin-spinner") == 0) {
      pin_spinner = true;
    } else {
      args.push_back(argv[i]);
    }
  }
  int count = static_cast<int>(args.size());
  benchmark::Initialize(&count, args.data());
  if (benchmark::ReportUnrecognizedArguments(count, args.data())) return 1;
  std::unique_ptr<evcxx_bench::BusyCore> spinner;
  if (busy_core) spinner = std::make_unique<evcxx_bench::BusyCore>(pin_spinner);
  // The state before goes into the JSON context (written when the run starts); the one after is
  // printed, so a change during the run shows in the log.
  const evcxx_bench::MachineState before =
      evcxx_bench::measure_machine_state("before the coroutine rows", busy_core);
  benchmark::AddCustomContext("busy_core", busy_core ? "a third thread spinning" : "no");
  benchmark::AddCustomContext("machine_state", before.verdict);
  benchmark::AddCustomContext("machine_state_spin_ns",
                              std::to_string(static_cast<long>(before.median_ns)));
  benchmark::AddCustomContext("load_average", before.load);
  benchmark::RunSpecifiedBenchmarks();
  evcxx_bench::measure_machine_state("after the coroutine rows", busy_core);
  spinner.reset();
  benchmark::Shutdown();
  return 0;
}
