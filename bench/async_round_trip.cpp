#include "async_round_trip.hpp"

#include <ev.h>
#include <evcxx/async.hpp>
#include <evcxx/loop.hpp>

#include <cstdint>
#include <stdexcept>
#include <thread>

#include "bench_support.hpp"

namespace evcxx_bench {

namespace {

struct LibevRoundTrip {
  benchmark::State* state;
  struct ev_loop* loop_a;
  struct ev_loop* loop_b;
  ev_async to_a;
  ev_async to_b;
  ev_async quit_b;
  std::int64_t round_trips = 0;
};

void raw_on_a(struct ev_loop* loop, ev_async* w, int) noexcept {
  auto* self = static_cast<LibevRoundTrip*>(w->data);
  ++self->round_trips;
  if (self->state->KeepRunning()) {
    ev_async_send(self->loop_b, &self->to_b);
  } else {
    ev_break(loop, EVBREAK_ONE);
  }
}

void raw_on_b(struct ev_loop*, ev_async* w, int) noexcept {
  auto* self = static_cast<LibevRoundTrip*>(w->data);
  ev_async_send(self->loop_a, &self->to_a);
}

void raw_quit(struct ev_loop* loop, ev_async*, int) noexcept {
  ev_break(loop, EVBREAK_ALL);
}

}  // namespace

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

void async_round_trip_libev(benchmark::State& state) {
  LibevRoundTrip self{&state, ev_loop_new(EVFLAG_AUTO), ev_loop_new(EVFLAG_AUTO), {}, {}, {}};
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

}  // namespace evcxx_bench
