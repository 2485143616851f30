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

#include "bench_support.hpp"

namespace {

using evcxx_bench::expect_count;

// ---- async_round_trip -------------------------------------------------------------------------

void async_round_trip_evcxx(benchmark::State& state) {
  evcxx::Loop loop_a;
  evcxx::Loop loop_b;
  std::int64_t round_trips = 0;
  evcxx::Async* to_b = nullptr;
  // Runs on the benchmark thread: each callback ends one round trip and maybe starts the next.
  evcxx::Async to_a(loop_a, [&] {
    ++round_trips;
    if (state.KeepRunning()) {
      to_b->send();
    } else {
      loop_a.break_loop();
    }
  });
  evcxx::Async back_to_a(loop_b, [&] { to_a.send(); });
  to_b = &back_to_a;
  std::thread thread_b([&] { loop_b.run(); });
  if (state.KeepRunning()) {
    to_b->send();
    loop_a.run();
  }
  loop_b.stop();
  thread_b.join();
  expect_count(state, "round trips", round_trips, state.iterations());
}

struct RawRoundTrip {
  benchmark::State* state;
  struct ev_loop* loop_a;
  struct ev_loop* loop_b;
  ev_async to_a;
  ev_async to_b;
  ev_async quit_b;
  std::int64_t round_trips = 0;
};

void raw_on_a(struct ev_loop* loop, ev_async* w, int) noexcept {
  auto* self = static_cast<RawRoundTrip*>(w->data);
  ++self->round_trips;
  if (self->state->KeepRunning()) {
    ev_async_send(self->loop_b, &self->to_b);
  } else {
    ev_break(loop, EVBREAK_ONE);
  }
}

void raw_on_b(struct ev_loop*, ev_async* w, int) noexcept {
  auto* self = static_cast<RawRoundTrip*>(w->data);
  ev_async_send(self->loop_a, &self->to_a);
}

void raw_quit(struct ev_loop* loop, ev_async*, int) noexcept {
  ev_break(loop, EVBREAK_ALL);
}

void async_round_trip_libev(benchmark::State& state) {
  RawRoundTrip self{&state, ev_loop_new(EVFLAG_AUTO), ev_loop_new(EVFLAG_AUTO), {}, {}, {}};
  if (self.loop_a == nullptr || self.loop_b == nullptr) throw std::runtime_error("ev_loop_new");
  ev_async_init(&self.to_a, raw_on_a);
  ev_async_init(&self.to_b, raw_on_b);
  ev_async_init(&self.quit_b, raw_quit);
  self.to_a.data = self.to_b.data = &self;
  ev_async_start(self.loop_a, &self.to_a);
  ev_async_start(self.loop_b, &self.to_b);
  ev_async_start(self.loop_b, &self.quit_b);
  std::thread thread_b([&] { ev_run(self.loop_b, 0); });
  if (state.KeepRunning()) {
    ev_async_send(self.loop_b, &self.to_b);
    ev_run(self.loop_a, 0);
  }
  ev_async_send(self.loop_b, &self.quit_b);
  thread_b.join();
  ev_async_stop(self.loop_a, &self.to_a);
  ev_async_stop(self.loop_b, &self.to_b);
  ev_async_stop(self.loop_b, &self.quit_b);
  ev_loop_destroy(self.loop_a);
  ev_loop_destroy(self.loop_b);
  expect_count(state, "round trips", self.round_trips, state.iterations());
}

// ---- coalesced_send ---------------------------------------------------------------------------

void coalesced_send_evcxx(benchmark::State& state) {
  evcxx::Loop loop;
  std::int64_t callbacks = 0;
  evcxx::Async async(loop, [&] { ++callbacks; });
  for (auto _ : state) async.send();
  loop.run(evcxx::Run::nowait);
  expect_count(state, "callbacks after coalesced sends", callbacks, 1);
}

void count_callback(struct ev_loop*, ev_async* w, int) noexcept {
  ++*static_cast<std::int64_t*>(w->data);
}

void coalesced_send_libev(benchmark::State& state) {
  struct ev_loop* loop = ev_loop_new(EVFLAG_AUTO);
  if (loop == nullptr) throw std::runtime_error("ev_loop_new");
  std::int64_t callbacks = 0;
  ev_async async;
  ev_async_init(&async, count_callback);
  async.data = &callbacks;
  ev_async_start(loop, &async);
  for (auto _ : state) ev_async_send(loop, &async);
  ev_run(loop, EVRUN_NOWAIT);
  ev_async_stop(loop, &async);
  ev_loop_destroy(loop);
  expect_count(state, "callbacks after coalesced sends", callbacks, 1);
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
  struct ev_loop* loop = ev_loop_new(EVFLAG_AUTO);
  if (loop == nullptr) throw std::runtime_error("ev_loop_new");
  std::int64_t callbacks = 0;
  ev_async async;
  ev_async_init(&async, count_callback);
  async.data = &callbacks;
  ev_async_start(loop, &async);
  for (auto _ : state) {
    ev_feed_event(loop, &async, EV_ASYNC);
    ev_invoke_pending(loop);
  }
  ev_async_stop(loop, &async);
  ev_loop_destroy(loop);
  expect_count(state, "callbacks", callbacks, state.iterations());
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
