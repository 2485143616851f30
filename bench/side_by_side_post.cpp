// The post() rows of side_by_side_bench: small tasks handed from producer threads to one
// consumer thread, time per task.
//
//   stream_<P>    P producer threads post their share as fast as they can; the clock runs from
//                 their start until the consumer has run the last task.
//   lockstep_<N>  the benchmark thread posts a batch of N tasks, waits until the consumer has
//                 run them, and repeats.
//
// Consumers: evcxx (Loop::post on a Loop running on its own thread), the hand-written peer (a
// std::mutex-guarded std::vector<std::function<void()>> that an ev_async consumer swaps out
// whole, woken only when the vector was empty), and Boost.Asio (io_context post). Every task is
// a lambda capturing one pointer.

#include <ev.h>
#include <evcxx/async.hpp>
#include <evcxx/loop.hpp>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <cstdint>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "post_peers.hpp"
#include "side_by_side.hpp"

namespace evcxx_bench::sbs {

namespace {

using evcxx_bench::AsioConsumer;
using evcxx_bench::EvcxxConsumer;
// The peer the issue names: a mutex-guarded vector swapped out by an ev_async consumer.
using MutexVectorConsumer = evcxx_bench::LibevConsumer;

// Counts tasks on the consumer thread and publishes progress every `every` tasks.
class Sink {
 public:
  explicit Sink(std::uint64_t every) : every_(every) {}
  void run_one() noexcept {
    if (++ran_ % every_ == 0) {
      completed_.store(ran_, std::memory_order_release);
      completed_.notify_one();
    }
  }
  // Producer side: blocks until at least `count` tasks ran (a multiple of `every`).
  void wait_for(std::uint64_t count) const noexcept {
    for (std::uint64_t seen = completed_.load(std::memory_order_acquire); seen < count;
         seen = completed_.load(std::memory_order_acquire)) {
      completed_.wait(seen, std::memory_order_acquire);
    }
  }

 private:
  const std::uint64_t every_;
  std::uint64_t ran_ = 0;  // consumer thread
  std::atomic<std::uint64_t> completed_{0};
};

template <class Consumer>
Sample stream(std::uint64_t ops, int producers) {
  const std::uint64_t share =
      (ops + static_cast<std::uint64_t>(producers) - 1) / static_cast<std::uint64_t>(producers);
  const std::uint64_t total = share * static_cast<std::uint64_t>(producers);
  Sink sink(total);
  double seconds = 0;
  {
    Consumer consumer;
    std::atomic<bool> go{false};
    std::vector<std::thread> threads;
    for (int p = 0; p < producers; ++p) {
      threads.emplace_back([&] {
        go.wait(false, std::memory_order_acquire);
        Sink* const target = &sink;
        for (std::uint64_t i = 0; i < share; ++i) consumer.post([target] { target->run_one(); });
      });
    }
    const auto start = Clock::now();
    go.store(true, std::memory_order_release);
    go.notify_all();
    sink.wait_for(total);
    seconds = seconds_since(start);
    for (auto& t : threads) t.join();
  }
  return {total, seconds};
}

template <class Consumer>
Sample lockstep(std::uint64_t ops, std::uint64_t batch) {
  const std::uint64_t batches = (ops + batch - 1) / batch;
  Sink sink(batch);
  Sink* const target = &sink;
  Consumer consumer;
  const auto start = Clock::now();
  for (std::uint64_t b = 1; b <= batches; ++b) {
    for (std::uint64_t i = 0; i < batch; ++i) consumer.post([target] { target->run_one(); });
    sink.wait_for(b * batch);
  }
  return {batches * batch, seconds_since(start)};
}

Row post_row(std::string name, std::string what, std::uint64_t ops, Sample (*evcxx)(std::uint64_t),
             Sample (*mutex_vector)(std::uint64_t), Sample (*asio)(std::uint64_t)) {
  Row row;
  row.group = "post";
  row.name = std::move(name);
  row.what = std::move(what);
  row.unit = "task";
  row.ops = ops;
  row.evcxx = {"evcxx", "evcxx Loop::post", evcxx};
  row.peers.push_back({"mutex_vector",
                       "std::mutex-guarded vector swapped out by an ev_async consumer",
                       mutex_vector});
  row.peers.push_back({"asio", "Boost.Asio io_context post", asio});
  return row;
}

template <int P>
Row stream_row(const char* name, const char* what) {
  return post_row(
      name, what, 20000, [](std::uint64_t ops) { return stream<EvcxxConsumer>(ops, P); },
      [](std::uint64_t ops) { return stream<MutexVectorConsumer>(ops, P); },
      [](std::uint64_t ops) { return stream<AsioConsumer>(ops, P); });
}

template <std::uint64_t N>
Row lockstep_row(const char* name, const char* what, std::uint64_t ops) {
  return post_row(
      name, what, ops, [](std::uint64_t o) { return lockstep<EvcxxConsumer>(o, N); },
      [](std::uint64_t o) { return lockstep<MutexVectorConsumer>(o, N); },
      [](std::uint64_t o) { return lockstep<AsioConsumer>(o, N); });
}

}  // namespace

std::vector<Row> post_rows() {
  std::vector<Row> rows;
  rows.push_back(stream_row<1>("stream_1", "streaming from 1 producer thread"));
  rows.push_back(stream_row<2>("stream_2", "streaming from 2 producer threads"));
  rows.push_back(lockstep_row<1>(
      "lockstep_1", "lockstep batches of 1: post one task, wait until it ran, repeat", 500));
  rows.push_back(lockstep_row<64>(
      "lockstep_64", "lockstep batches of 64: post 64 tasks, wait until they ran, repeat", 8192));
  return rows;
}

}  // namespace evcxx_bench::sbs
