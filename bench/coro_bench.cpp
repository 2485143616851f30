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

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <cstring>
#include <future>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <evcxx/coro.hpp>
#include <evcxx/evcxx.hpp>

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

evcxx::Task<> ping_pong(evcxx::LoopThread& a, evcxx::LoopThread& b, int rounds) {
  for (int i = 0; i < rounds; ++i) {
    co_await evcxx::resume_on(b);
    co_await evcxx::resume_on(a);
  }
}

void BM_Coro_ResumeOnRoundTrip(benchmark::State& state) {
  evcxx::LoopThread a("bench-a");
  evcxx::LoopThread b("bench-b");
  for (auto _ : state) {
    auto done = evcxx::spawn_future(a.loop(), ping_pong(a, b, kBatch));
    done.get();
  }
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
  for (auto _ : state) {
    auto done = evcxx::spawn_future(a.loop(), ping_pong(a, b, kBatch));
    done.get();
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_Coro_ResumeOnRoundTripBusyPoll)->UseRealTime();

boost::asio::awaitable<void> asio_ping_pong(boost::asio::io_context& a, boost::asio::io_context& b,
                                            int rounds) {
  for (int i = 0; i < rounds; ++i) {
    co_await boost::asio::post(b, boost::asio::use_awaitable);
    co_await boost::asio::post(a, boost::asio::use_awaitable);
  }
}

// Two io_context threads, kept running by a work guard each; with_timers also keeps a timer
// pending on each, as in any program that does I/O with Asio: an idle thread then blocks in the
// reactor's epoll_wait (a post interrupts it through an eventfd) instead of on a condition
// variable.
void asio_round_trips(benchmark::State& state, bool with_timers) {
  boost::asio::io_context a(1);
  boost::asio::io_context b(1);
  auto guard_a = boost::asio::make_work_guard(a);
  auto guard_b = boost::asio::make_work_guard(b);
  boost::asio::steady_timer timer_a(a, std::chrono::hours(1));
  boost::asio::steady_timer timer_b(b, std::chrono::hours(1));
  if (with_timers) {
    timer_a.async_wait([](const boost::system::error_code&) {});
    timer_b.async_wait([](const boost::system::error_code&) {});
  }
  std::thread ta([&] { a.run(); });
  std::thread tb([&] { b.run(); });
  for (auto _ : state) {
    std::promise<void> finished;
    boost::asio::co_spawn(a, asio_ping_pong(a, b, kBatch),
                          [&](std::exception_ptr) { finished.set_value(); });
    finished.get_future().get();
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
  a.stop();
  b.stop();
  ta.join();
  tb.join();
}

void BM_Asio_CoSpawnPostRoundTrip(benchmark::State& state) {
  asio_round_trips(state, false);
}
BENCHMARK(BM_Asio_CoSpawnPostRoundTrip)->UseRealTime();

void BM_Asio_CoSpawnPostRoundTripWithIo(benchmark::State& state) {
  asio_round_trips(state, true);
}
BENCHMARK(BM_Asio_CoSpawnPostRoundTripWithIo)->UseRealTime();

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
