// evcxx::Async beside raw libev's ev_async doing exactly the same, in the same binary.
//
//   async_round_trip   loop A's callback sends to loop B's async, B's callback sends back;
//                      time per round trip between two loop threads.
//   coalesced_send     send() on an async whose loop is not running (every send after the
//                      first coalesces into the pending one); time per send().
//   callback_dispatch  feed the watcher and invoke the pending callback on the loop thread: the
//                      binding's own per-callback cost, without the system calls around it.
//
// The summary printed at the end gives evcxx/libev for each; the goal is within 5%.

#include <ev.h>
#include <evcxx/async.hpp>
#include <evcxx/loop.hpp>

#include <cstdint>
#include <stdexcept>
#include <thread>

#include "async_round_trip.hpp"
#include "bench_support.hpp"

namespace {

using evcxx_bench::expect_count;

// async_round_trip: see async_round_trip.hpp.
using evcxx_bench::async_round_trip_evcxx;
using evcxx_bench::async_round_trip_libev;

// ---- coalesced_send ---------------------------------------------------------------------------

void coalesced_send_evcxx(benchmark::State& state) {
  evcxx::Loop loop;
  std::int64_t callbacks = 0;
  evcxx::Async async(loop, [&] { ++callbacks; });
  for (auto _ : state) async.send();
  loop.run(evcxx::Run::nowait);
  expect_count(state, "callbacks after coalesced sends", callbacks, 1);
}

// A raw libev loop with one started ev_async that counts its callbacks: the C side of the
// single-threaded benchmarks, set up and torn down outside the timed loop.
struct RawCountingAsync {
  RawCountingAsync() : loop(ev_loop_new(EVFLAG_AUTO)) {
    if (loop == nullptr) throw std::runtime_error("ev_loop_new");
    ev_async_init(&async, [](struct ev_loop*, ev_async* w, int) noexcept {
      ++*static_cast<std::int64_t*>(w->data);
    });
    async.data = &callbacks;
    ev_async_start(loop, &async);
  }
  ~RawCountingAsync() {
    ev_async_stop(loop, &async);
    ev_loop_destroy(loop);
  }
  RawCountingAsync(const RawCountingAsync&) = delete;
  RawCountingAsync& operator=(const RawCountingAsync&) = delete;

  struct ev_loop* const loop;
  ev_async async;
  std::int64_t callbacks = 0;
};

void coalesced_send_libev(benchmark::State& state) {
  RawCountingAsync raw;
  for (auto _ : state) ev_async_send(raw.loop, &raw.async);
  ev_run(raw.loop, EVRUN_NOWAIT);
  expect_count(state, "callbacks after coalesced sends", raw.callbacks, 1);
}

// ---- callback_dispatch ------------------------------------------------------------------------

void callback_dispatch_evcxx(benchmark::State& state) {
  evcxx::Loop loop;
  std::int64_t callbacks = 0;
  evcxx::Async async(loop, [&] { ++callbacks; });
  for (auto _ : state) {
    async.feed();
    loop.invoke_pending();
  }
  expect_count(state, "callbacks", callbacks, state.iterations());
}

void callback_dispatch_libev(benchmark::State& state) {
  RawCountingAsync raw;
  for (auto _ : state) {
    ev_feed_event(raw.loop, &raw.async, EV_ASYNC);
    ev_invoke_pending(raw.loop);
  }
  expect_count(state, "callbacks", raw.callbacks, state.iterations());
}

// Multi-threaded ones measure wall-clock time: the CPU time of the benchmark thread alone would
// leave out the other thread's half of the work.
BENCHMARK(async_round_trip_evcxx)
    ->Name("async_round_trip/evcxx")
    ->UseRealTime()
    ->ComputeStatistics("best", evcxx_bench::best);
BENCHMARK(async_round_trip_libev)
    ->Name("async_round_trip/libev")
    ->UseRealTime()
    ->ComputeStatistics("best", evcxx_bench::best);
BENCHMARK(coalesced_send_evcxx)
    ->Name("coalesced_send/evcxx")
    ->ComputeStatistics("best", evcxx_bench::best);
BENCHMARK(coalesced_send_libev)
    ->Name("coalesced_send/libev")
    ->ComputeStatistics("best", evcxx_bench::best);
BENCHMARK(callback_dispatch_evcxx)
    ->Name("callback_dispatch/evcxx")
    ->ComputeStatistics("best", evcxx_bench::best);
BENCHMARK(callback_dispatch_libev)
    ->Name("callback_dispatch/libev")
    ->ComputeStatistics("best", evcxx_bench::best);

}  // namespace

int main(int argc, char** argv) {
  return evcxx_bench::run_main(argc, argv);
}
