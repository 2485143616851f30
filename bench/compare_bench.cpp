// The published comparison: waking another thread and handing it work, with evcxx and with what a
// C++ programmer would use instead, all measured the same way in one binary.
//
//   round_trip/<peer>              thread A wakes thread B, B wakes A back; time per round trip.
//   post/<peer>/producers:<n>      n producer threads hand small tasks to one consumer thread;
//                                  time per task, from the first post until the consumer has
//                                  run every task.
//
// Peers: evcxx (Async for the wake, Loop::post for tasks; evcxx_post is the round trip made of
// two posts), libev (ev_async), libuv (uv_async_t), asio (Boost.Asio io_context, post()),
// condvar (std::mutex + std::condition_variable) and eventfd (blocking read/write). The
// hand-written task queues (libev, libuv, condvar, eventfd) are the same std::mutex-guarded
// vector of std::function that the consumer swaps out whole, waking the consumer only when the
// queue was empty.
//
// scripts/bench.sh runs this with JSON output and turns it into docs/benchmarks.md and .svg.

#include <ev.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <uv.h>
#include <evcxx/async.hpp>
#include <evcxx/loop.hpp>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/version.hpp>
#include <cerrno>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "async_round_trip.hpp"
#include "bench_support.hpp"
#include "post_peers.hpp"
#include "system.hpp"

namespace {

using evcxx_bench::Eventfd;
using evcxx_bench::throw_errno;

using evcxx_bench::AsioConsumer;
using evcxx_bench::EvcxxConsumer;
using evcxx_bench::expect_count;
using evcxx_bench::LibevConsumer;
using evcxx_bench::LockedQueue;

void check_uv(int result, const char* what) {
  if (result != 0) throw std::runtime_error(std::string(what) + ": " + uv_strerror(result));
}

// ---- round_trip -------------------------------------------------------------------------------
// The benchmark thread is thread A. Where A runs an event loop, A's callback ends one round trip
// and starts the next, so the clock covers only callbacks and wake-ups.

struct EvcxxPostRoundTrip {
  explicit EvcxxPostRoundTrip(benchmark::State& s) : state(s) {}

  benchmark::State& state;
  evcxx::Loop loop_a;
  evcxx::Loop loop_b;
  // Posted tasks alone do not keep a loop running; these idle watchers do.
  evcxx::Async keep_a{loop_a, [] {}};
  evcxx::Async keep_b{loop_b, [] {}};
  std::int64_t round_trips = 0;

  void ping() {
    loop_b.post([this] { loop_a.post([this] { pong(); }); });
  }
  void pong() {
    ++round_trips;
    if (state.KeepRunning()) {
      ping();
    } else {
      loop_a.break_loop();
    }
  }
};

void round_trip_evcxx_post(benchmark::State& state) {
  EvcxxPostRoundTrip self(state);
  std::thread thread_b([&] { self.loop_b.run(); });
  if (state.KeepRunning()) {
    self.ping();
    self.loop_a.run();
  }
  self.loop_b.stop();
  thread_b.join();
  expect_count(state, "round trips", self.round_trips, state.iterations());
}

struct LibuvRoundTrip {
  benchmark::State* state;
  uv_loop_t loop_a;
  uv_loop_t loop_b;
  uv_async_t to_a;
  uv_async_t to_b;
  uv_async_t quit_b;
  std::int64_t round_trips = 0;
};

void libuv_on_a(uv_async_t* handle) noexcept {
  auto* self = static_cast<LibuvRoundTrip*>(handle->data);
  ++self->round_trips;
  if (self->state->KeepRunning()) {
    uv_async_send(&self->to_b);
  } else {
    uv_stop(&self->loop_a);
  }
}

void libuv_on_b(uv_async_t* handle) noexcept {
  auto* self = static_cast<LibuvRoundTrip*>(handle->data);
  uv_async_send(&self->to_a);
}

void libuv_quit(uv_async_t* handle) noexcept {
  auto* self = static_cast<LibuvRoundTrip*>(handle->data);
  uv_close(reinterpret_cast<uv_handle_t*>(&self->to_b), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&self->quit_b), nullptr);
}

void round_trip_libuv(benchmark::State& state) {
  LibuvRoundTrip self{};
  self.state = &state;
  check_uv(uv_loop_init(&self.loop_a), "uv_loop_init");
  check_uv(uv_loop_init(&self.loop_b), "uv_loop_init");
  check_uv(uv_async_init(&self.loop_a, &self.to_a, libuv_on_a), "uv_async_init");
  check_uv(uv_async_init(&self.loop_b, &self.to_b, libuv_on_b), "uv_async_init");
  check_uv(uv_async_init(&self.loop_b, &self.quit_b, libuv_quit), "uv_async_init");
  self.to_a.data = self.to_b.data = self.quit_b.data = &self;
  std::thread thread_b([&] { uv_run(&self.loop_b, UV_RUN_DEFAULT); });
  if (state.KeepRunning()) {
    uv_async_send(&self.to_b);
    uv_run(&self.loop_a, UV_RUN_DEFAULT);
  }
  uv_async_send(&self.quit_b);
  thread_b.join();
  uv_close(reinterpret_cast<uv_handle_t*>(&self.to_a), nullptr);
  uv_run(&self.loop_a, UV_RUN_DEFAULT);
  check_uv(uv_loop_close(&self.loop_a), "uv_loop_close");
  check_uv(uv_loop_close(&self.loop_b), "uv_loop_close");
  expect_count(state, "round trips", self.round_trips, state.iterations());
}

using AsioWorkGuard = boost::asio::executor_work_guard<boost::asio::io_context::executor_type>;

struct AsioRoundTrip {
  explicit AsioRoundTrip(benchmark::State& s) : state(s) {}

  benchmark::State& state;
  boost::asio::io_context io_a;
  boost::asio::io_context io_b;
  AsioWorkGuard keep_a = boost::asio::make_work_guard(io_a);
  AsioWorkGuard keep_b = boost::asio::make_work_guard(io_b);
  std::int64_t round_trips = 0;

  void ping() {
    boost::asio::post(io_b, [this] { boost::asio::post(io_a, [this] { pong(); }); });
  }
  void pong() {
    ++round_trips;
    if (state.KeepRunning()) {
      ping();
    } else {
      keep_a.reset();
    }
  }
};

void round_trip_asio(benchmark::State& state) {
  AsioRoundTrip self(state);
  std::thread thread_b([&] { self.io_b.run(); });
  if (state.KeepRunning()) {
    self.ping();
    self.io_a.run();
  }
  self.keep_b.reset();
  thread_b.join();
  expect_count(state, "round trips", self.round_trips, state.iterations());
}

void round_trip_condvar(benchmark::State& state) {
  std::mutex mutex;
  std::condition_variable wake_a;
  std::condition_variable wake_b;
  bool ping = false;  // guarded by mutex
  bool pong = false;  // guarded by mutex
  bool quit = false;  // guarded by mutex
  std::int64_t answered = 0;
  std::thread thread_b([&] {
    std::unique_lock<std::mutex> lock(mutex);
    for (;;) {
      wake_b.wait(lock, [&] { return ping || quit; });
      if (quit) return;
      ping = false;
      pong = true;
      ++answered;
      wake_a.notify_one();
    }
  });
  for (auto _ : state) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      ping = true;
    }
    wake_b.notify_one();
    std::unique_lock<std::mutex> lock(mutex);
    wake_a.wait(lock, [&] { return pong; });
    pong = false;
  }
  {
    std::lock_guard<std::mutex> lock(mutex);
    quit = true;
  }
  wake_b.notify_one();
  thread_b.join();
  expect_count(state, "round trips", answered, state.iterations());
}

void round_trip_eventfd(benchmark::State& state) {
  Eventfd to_a;
  Eventfd to_b;
  std::atomic<bool> quit{false};
  std::int64_t answered = 0;
  std::thread thread_b([&] {
    for (;;) {
      to_b.wait();
      if (quit.load(std::memory_order_acquire)) return;
      ++answered;
      to_a.signal();
    }
  });
  for (auto _ : state) {
    to_b.signal();
    to_a.wait();
  }
  quit.store(true, std::memory_order_release);
  to_b.signal();
  thread_b.join();
  expect_count(state, "round trips", answered, state.iterations());
}

// ---- post -------------------------------------------------------------------------------------

// Tasks per benchmark iteration batch; the benchmark's iterations count tasks.
constexpr int kBatch = 8192;

// What every posted task does: count itself on the consumer thread, and tell the producer each
// time another whole batch has run.
class Sink {
 public:
  void run_one() noexcept {
    ++ran_;
    if (--until_signal_ == 0) {
      until_signal_ = kBatch;
      completed_.store(ran_, std::memory_order_release);
      completed_.notify_all();
    }
  }
  // Producer: blocks until at least `count` tasks (a multiple of kBatch) have run.
  void wait_for(std::int64_t count) const noexcept {
    std::int64_t seen = completed_.load(std::memory_order_acquire);
    while (seen < count) {
      completed_.wait(seen, std::memory_order_acquire);
      seen = completed_.load(std::memory_order_acquire);
    }
  }
  std::int64_t completed() const noexcept { return completed_.load(std::memory_order_acquire); }

 private:
  std::int64_t ran_ = 0;                // consumer thread
  std::int64_t until_signal_ = kBatch;  // consumer thread
  std::atomic<std::int64_t> completed_{0};
};

// The producers besides the benchmark thread: each posts its share of every batch.
class ExtraProducers {
 public:
  ExtraProducers(int count, std::function<void()> post_share) : post_share_(std::move(post_share)) {
    for (int i = 0; i < count; ++i) threads_.emplace_back([this] { run(); });
  }
  ~ExtraProducers() {
    stopping_.store(true, std::memory_order_release);
    start_batch();
    for (auto& thread : threads_) thread.join();
  }
  ExtraProducers(const ExtraProducers&) = delete;
  ExtraProducers& operator=(const ExtraProducers&) = delete;

  void start_batch() {
    if (threads_.empty()) return;
    batches_.fetch_add(1, std::memory_order_release);
    batches_.notify_all();
  }

 private:
  void run() {
    std::uint64_t done = 0;
    for (;;) {
      batches_.wait(done, std::memory_order_acquire);
      if (stopping_.load(std::memory_order_acquire)) return;
      for (const std::uint64_t started = batches_.load(std::memory_order_acquire); done < started;
           ++done) {
        post_share_();
      }
    }
  }

  std::function<void()> post_share_;
  std::atomic<std::uint64_t> batches_{0};
  std::atomic<bool> stopping_{false};
  std::vector<std::thread> threads_;
};

// One consumer thread per peer; post() from any thread; the destructor runs what was posted,
// stops the consumer and joins it.
template <class Consumer>
void post_throughput(benchmark::State& state) {
  const int producers = static_cast<int>(state.range(0));
  const int share = kBatch / producers;
  Sink sink;
  {
    Consumer consumer;
    const auto task = [&sink] { sink.run_one(); };
    ExtraProducers extra(producers - 1, [&] {
      for (int i = 0; i < share; ++i) consumer.post(task);
    });
    std::int64_t posted = 0;
    while (state.KeepRunningBatch(kBatch)) {
      extra.start_batch();
      for (int i = share * (producers - 1); i < kBatch; ++i) consumer.post(task);
      posted += kBatch;
      // At most two batches in flight; the clock stops only once the last task has run.
      sink.wait_for(posted >= state.max_iterations ? posted : posted - kBatch);
    }
  }
  expect_count(state, "tasks run", sink.completed(), state.iterations());
}

class LibuvConsumer {
 public:
  LibuvConsumer() {
    check_uv(uv_loop_init(&loop_), "uv_loop_init");
    check_uv(uv_async_init(&loop_, &wake_,
                           [](uv_async_t* handle) noexcept {
                             static_cast<LibuvConsumer*>(handle->data)->queue_.run_all();
                           }),
             "uv_async_init");
    wake_.data = this;
    thread_ = std::thread([this] { uv_run(&loop_, UV_RUN_DEFAULT); });
  }
  ~LibuvConsumer() {
    // Once its only handle is closed, uv_run() returns.
    post([this] { uv_close(reinterpret_cast<uv_handle_t*>(&wake_), nullptr); });
    thread_.join();
    uv_loop_close(&loop_);
  }
  template <class Task>
  void post(Task&& task) {
    if (queue_.push(std::forward<Task>(task))) uv_async_send(&wake_);
  }

 private:
  uv_loop_t loop_;
  uv_async_t wake_;
  LockedQueue queue_;
  std::thread thread_;
};

class CondvarConsumer {
 public:
  CondvarConsumer() : thread_([this] { run(); }) {}
  ~CondvarConsumer() {
    post([this] { quit_ = true; });
    thread_.join();
  }
  template <class Task>
  void post(Task&& task) {
    bool was_empty;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      was_empty = queue_.empty();
      queue_.emplace_back(std::forward<Task>(task));
    }
    if (was_empty) wake_.notify_one();
  }

 private:
  void run() {
    std::vector<std::function<void()>> running;
    while (!quit_) {
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [this] { return !queue_.empty(); });
        running.swap(queue_);
      }
      for (auto& task : running) task();
      running.clear();
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<std::function<void()>> queue_;  // guarded by mutex_
  bool quit_ = false;                         // consumer thread
  std::thread thread_;
};

class EventfdConsumer {
 public:
  EventfdConsumer() : thread_([this] { run(); }) {}
  ~EventfdConsumer() {
    post([this] { quit_ = true; });
    thread_.join();
  }
  template <class Task>
  void post(Task&& task) {
    if (queue_.push(std::forward<Task>(task))) wake_.signal();
  }

 private:
  void run() {
    while (!quit_) {
      wake_.wait();
      queue_.run_all();
    }
  }

  Eventfd wake_;
  LockedQueue queue_;
  bool quit_ = false;  // consumer thread
  std::thread thread_;
};

// Multi-threaded: wall-clock time, since the benchmark thread's CPU time is only part of the work.
BENCHMARK(evcxx_bench::async_round_trip_evcxx)
    ->Name("round_trip/evcxx")
    ->UseRealTime()
    ->ComputeStatistics("best", evcxx_bench::best);
BENCHMARK(round_trip_evcxx_post)
    ->Name("round_trip/evcxx_post")
    ->UseRealTime()
    ->ComputeStatistics("best", evcxx_bench::best);
BENCHMARK(evcxx_bench::async_round_trip_libev)
    ->Name("round_trip/libev")
    ->UseRealTime()
    ->ComputeStatistics("best", evcxx_bench::best);
BENCHMARK(round_trip_libuv)
    ->Name("round_trip/libuv")
    ->UseRealTime()
    ->ComputeStatistics("best", evcxx_bench::best);
BENCHMARK(round_trip_asio)
    ->Name("round_trip/asio")
    ->UseRealTime()
    ->ComputeStatistics("best", evcxx_bench::best);
BENCHMARK(round_trip_condvar)
    ->Name("round_trip/condvar")
    ->UseRealTime()
    ->ComputeStatistics("best", evcxx_bench::best);
BENCHMARK(round_trip_eventfd)
    ->Name("round_trip/eventfd")
    ->UseRealTime()
    ->ComputeStatistics("best", evcxx_bench::best);

#define EVCXX_POST_BENCHMARK(Consumer, peer)    \
  BENCHMARK_TEMPLATE(post_throughput, Consumer) \
      ->Name("post/" peer)                      \
      ->ArgName("producers")                    \
      ->Arg(1)                                  \
      ->Arg(2)                                  \
      ->UseRealTime()                           \
      ->ComputeStatistics("best", evcxx_bench::best)

EVCXX_POST_BENCHMARK(EvcxxConsumer, "evcxx");
EVCXX_POST_BENCHMARK(LibevConsumer, "libev");
EVCXX_POST_BENCHMARK(LibuvConsumer, "libuv");
EVCXX_POST_BENCHMARK(AsioConsumer, "asio");
EVCXX_POST_BENCHMARK(CondvarConsumer, "condvar");
EVCXX_POST_BENCHMARK(EventfdConsumer, "eventfd");

#if defined(__clang__)
constexpr const char* kCompiler = "clang " __clang_version__;
#elif defined(__GNUC__)
constexpr const char* kCompiler = "g++ " __VERSION__;
#else
constexpr const char* kCompiler = "unknown";
#endif

}  // namespace

int main(int argc, char** argv) {
  // Recorded in the JSON output's "context", for the published table.
  benchmark::AddCustomContext("compiler", kCompiler);
  benchmark::AddCustomContext(
      "libev", std::to_string(ev_version_major()) + "." + std::to_string(ev_version_minor()));
  benchmark::AddCustomContext("libuv", uv_version_string());
  benchmark::AddCustomContext("boost", std::to_string(BOOST_VERSION / 100000) + "." +
                                           std::to_string(BOOST_VERSION / 100 % 1000) + "." +
                                           std::to_string(BOOST_VERSION % 100));
  benchmark::AddCustomContext("evcxx_build_type", EVCXX_BENCH_BUILD_TYPE);
  return evcxx_bench::run_main(argc, argv);
}
