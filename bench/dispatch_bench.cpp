// Callback dispatch cost of evcxx watchers beside raw libev C and libev's own ev++.h, in one
// binary.
//
// Each benchmark iteration is one non-blocking loop iteration (ev_run(EVRUN_NOWAIT)) in which one
// watcher is due: an Idle; a Timer with a zero timeout repeating every nanosecond (due again in
// every iteration); an Io on a pipe that is kept readable. "per_dispatch" is the time per callback.
// The Feed benchmarks leave the loop out (ev_feed_event + ev_invoke_pending): the cost of the
// dispatch layer alone.
//
// Every loop, whatever the flavour, has one started, unref'd ev_async like the one evcxx::Loop
// keeps for post() and stop(), so that the three flavours run on loops of the same shape.

#include <benchmark/benchmark.h>

#include <ev++.h>
#include <fcntl.h>
#include <unistd.h>
#include "bench_support.hpp"

#include <evcxx/check.hpp>
#include <evcxx/idle.hpp>
#include <evcxx/io.hpp>
#include <evcxx/loop.hpp>
#include <evcxx/timer.hpp>

#include <chrono>
#include <cstdint>
#include <stdexcept>

namespace {

constexpr double kEveryIteration = 1e-9;  // a repeat that is due again in every iteration

// What every callback does, in every flavour.
struct Counter {
  std::uint64_t dispatches = 0;
  void hit() noexcept {
    ++dispatches;
    benchmark::ClobberMemory();
  }
};

void report(benchmark::State& state, const Counter& counter) {
  if (counter.dispatches == 0) {
    state.SkipWithError("no callback ran");
    return;
  }
  state.counters["per_dispatch"] =
      benchmark::Counter(static_cast<double>(counter.dispatches),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["dispatches/iter"] =
      static_cast<double>(counter.dispatches) / static_cast<double>(state.iterations());
}

void noop_async(struct ev_loop*, ev_async*, int) {}

// The ev_async that evcxx::Loop keeps, added to the C and ev++ loops.
class SameShape {
 public:
  explicit SameShape(struct ev_loop* loop) : loop_(loop) {
    ev_async_init(&async_, noop_async);
    ev_async_start(loop_, &async_);
    ev_unref(loop_);
  }
  ~SameShape() {
    ev_ref(loop_);
    ev_async_stop(loop_, &async_);
  }
  SameShape(const SameShape&) = delete;
  SameShape& operator=(const SameShape&) = delete;

 private:
  struct ev_loop* loop_;
  ev_async async_;
};

// A loop from ev_loop_new(), destroyed last.
class OwnedLoop {
 public:
  OwnedLoop() : loop_(ev_loop_new(EVFLAG_AUTO)) {
    if (loop_ == nullptr) throw std::runtime_error("ev_loop_new failed");
  }
  ~OwnedLoop() { ev_loop_destroy(loop_); }
  OwnedLoop(const OwnedLoop&) = delete;
  OwnedLoop& operator=(const OwnedLoop&) = delete;
  struct ev_loop* get() const noexcept {
    return loop_;
  }

 private:
  struct ev_loop* loop_;
};

class RawLoop {
 public:
  struct ev_loop* get() const noexcept {
    return loop_.get();
  }

 private:
  OwnedLoop loop_;
  SameShape shape_{loop_.get()};
};

// A pipe whose read end stays readable: one byte is written and never read.
class ReadablePipe {
 public:
  ReadablePipe() {
    if (::pipe2(fds_, O_CLOEXEC | O_NONBLOCK) != 0) throw std::runtime_error("pipe2 failed");
    if (::write(fds_[1], "x", 1) != 1) throw std::runtime_error("write failed");
  }
  ~ReadablePipe() {
    ::close(fds_[0]);
    ::close(fds_[1]);
  }
  ReadablePipe(const ReadablePipe&) = delete;
  ReadablePipe& operator=(const ReadablePipe&) = delete;
  int read_end() const noexcept { return fds_[0]; }

 private:
  int fds_[2];
};

// --- raw libev C ---

template <class W>
void count_cb(struct ev_loop*, W* w, int) {
  static_cast<Counter*>(w->data)->hit();
}

void BM_Idle_RawC(benchmark::State& state) {
  RawLoop loop;
  Counter counter;
  ev_idle w;
  ev_idle_init(&w, count_cb<ev_idle>);
  w.data = &counter;
  ev_idle_start(loop.get(), &w);
  for (auto _ : state) ev_run(loop.get(), EVRUN_NOWAIT);
  ev_idle_stop(loop.get(), &w);
  report(state, counter);
}

void BM_Timer_RawC(benchmark::State& state) {
  RawLoop loop;
  Counter counter;
  ev_timer w;
  ev_timer_init(&w, count_cb<ev_timer>, 0., kEveryIteration);
  w.data = &counter;
  ev_timer_start(loop.get(), &w);
  for (auto _ : state) ev_run(loop.get(), EVRUN_NOWAIT);
  ev_timer_stop(loop.get(), &w);
  report(state, counter);
}

void BM_Io_RawC(benchmark::State& state) {
  RawLoop loop;
  ReadablePipe pipe;
  Counter counter;
  ev_io w;
  ev_io_init(&w, count_cb<ev_io>, pipe.read_end(), EV_READ);
  w.data = &counter;
  ev_io_start(loop.get(), &w);
  for (auto _ : state) ev_run(loop.get(), EVRUN_NOWAIT);
  ev_io_stop(loop.get(), &w);
  report(state, counter);
}

void BM_Feed_RawC(benchmark::State& state) {
  RawLoop loop;
  Counter counter;
  ev_check w;
  ev_check_init(&w, count_cb<ev_check>);
  w.data = &counter;
  for (auto _ : state) {
    ev_feed_event(loop.get(), &w, EV_CUSTOM);
    ev_invoke_pending(loop.get());
  }
  report(state, counter);
}

// --- libev's ev++.h ---

template <class W>
struct EvppCounter : Counter {
  void on_event(W&, int) { hit(); }
};

struct EvppLoop {
  ev::dynamic_loop loop{ev::AUTO};
  SameShape shape{loop.raw_loop};
};

void BM_Idle_EvPlusPlus(benchmark::State& state) {
  EvppLoop l;
  EvppCounter<ev::idle> counter;
  ev::idle w(l.loop);
  w.set<EvppCounter<ev::idle>, &EvppCounter<ev::idle>::on_event>(&counter);
  w.start();
  for (auto _ : state) l.loop.run(ev::NOWAIT);
  w.stop();
  report(state, counter);
}

void BM_Timer_EvPlusPlus(benchmark::State& state) {
  EvppLoop l;
  EvppCounter<ev::timer> counter;
  ev::timer w(l.loop);
  w.set<EvppCounter<ev::timer>, &EvppCounter<ev::timer>::on_event>(&counter);
  w.start(0., kEveryIteration);
  for (auto _ : state) l.loop.run(ev::NOWAIT);
  w.stop();
  report(state, counter);
}

void BM_Io_EvPlusPlus(benchmark::State& state) {
  EvppLoop l;
  ReadablePipe pipe;
  EvppCounter<ev::io> counter;
  ev::io w(l.loop);
  w.set<EvppCounter<ev::io>, &EvppCounter<ev::io>::on_event>(&counter);
  w.start(pipe.read_end(), ev::READ);
  for (auto _ : state) l.loop.run(ev::NOWAIT);
  w.stop();
  report(state, counter);
}

void BM_Feed_EvPlusPlus(benchmark::State& state) {
  EvppLoop l;
  EvppCounter<ev::check> counter;
  ev::check w(l.loop);
  w.set<EvppCounter<ev::check>, &EvppCounter<ev::check>::on_event>(&counter);
  for (auto _ : state) {
    w.feed_event(EV_CUSTOM);
    ev_invoke_pending(l.loop.raw_loop);
  }
  report(state, counter);
}

// --- evcxx ---

void BM_Idle_Evcxx(benchmark::State& state) {
  evcxx::Loop loop;
  Counter counter;
  evcxx::Idle w(loop, [&counter] { counter.hit(); });
  for (auto _ : state) loop.run(evcxx::Run::nowait);
  w.stop();
  report(state, counter);
}

void BM_Timer_Evcxx(benchmark::State& state) {
  evcxx::Loop loop;
  Counter counter;
  evcxx::Timer w(loop, evcxx::Timer::Duration::zero(), evcxx::Timer::Duration(kEveryIteration),
                 [&counter] { counter.hit(); });
  for (auto _ : state) loop.run(evcxx::Run::nowait);
  w.stop();
  report(state, counter);
}

void BM_Io_Evcxx(benchmark::State& state) {
  evcxx::Loop loop;
  ReadablePipe pipe;
  Counter counter;
  evcxx::Io w(loop, pipe.read_end(), evcxx::IoEvent::readable,
              [&counter](evcxx::IoEvents) { counter.hit(); });
  for (auto _ : state) loop.run(evcxx::Run::nowait);
  w.stop();
  report(state, counter);
}

void BM_Feed_Evcxx(benchmark::State& state) {
  evcxx::Loop loop;
  Counter counter;
  evcxx::Check w(loop, evcxx::deferred, [&counter] { counter.hit(); });
  for (auto _ : state) {
    w.feed();
    loop.invoke_pending();
  }
  report(state, counter);
}

}  // namespace

BENCHMARK(BM_Idle_RawC)->Name("idle_dispatch/libev")->ComputeStatistics("best", evcxx_bench::best);
BENCHMARK(BM_Idle_EvPlusPlus)
    ->Name("idle_dispatch/ev++")
    ->ComputeStatistics("best", evcxx_bench::best);
BENCHMARK(BM_Idle_Evcxx)->Name("idle_dispatch/evcxx")->ComputeStatistics("best", evcxx_bench::best);
BENCHMARK(BM_Timer_RawC)
    ->Name("timer_dispatch/libev")
    ->ComputeStatistics("best", evcxx_bench::best);
BENCHMARK(BM_Timer_EvPlusPlus)
    ->Name("timer_dispatch/ev++")
    ->ComputeStatistics("best", evcxx_bench::best);
BENCHMARK(BM_Timer_Evcxx)
    ->Name("timer_dispatch/evcxx")
    ->ComputeStatistics("best", evcxx_bench::best);
BENCHMARK(BM_Io_RawC)->Name("io_dispatch/libev")->ComputeStatistics("best", evcxx_bench::best);
BENCHMARK(BM_Io_EvPlusPlus)->Name("io_dispatch/ev++")->ComputeStatistics("best", evcxx_bench::best);
BENCHMARK(BM_Io_Evcxx)->Name("io_dispatch/evcxx")->ComputeStatistics("best", evcxx_bench::best);
BENCHMARK(BM_Feed_RawC)->Name("feed_dispatch/libev")->ComputeStatistics("best", evcxx_bench::best);
BENCHMARK(BM_Feed_EvPlusPlus)
    ->Name("feed_dispatch/ev++")
    ->ComputeStatistics("best", evcxx_bench::best);
BENCHMARK(BM_Feed_Evcxx)->Name("feed_dispatch/evcxx")->ComputeStatistics("best", evcxx_bench::best);

int main(int argc, char** argv) {
  return evcxx_bench::run_main(argc, argv);
}
