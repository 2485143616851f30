#pragma once
// Round trips between two loop threads written with coroutines, with evcxx::resume_on and with
// Boost.Asio's co_spawn + post, for coro_bench (Google Benchmark) and side_by_side_bench (pair by
// pair).

#include <utility>  // std::exchange, which <boost/asio/awaitable.hpp> uses without including it

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <evcxx/coro.hpp>
#include <evcxx/loop_thread.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <future>
#include <stdexcept>
#include <thread>

namespace evcxx_bench {

// Hops to b and back to a, `rounds` times; returns the round trips made.
inline evcxx::Task<std::uint64_t> resume_on_round_trips(evcxx::LoopThread& a, evcxx::LoopThread& b,
                                                        std::uint64_t rounds) {
  std::uint64_t done = 0;
  for (; done < rounds; ++done) {
    co_await evcxx::resume_on(b);
    co_await evcxx::resume_on(a);
  }
  co_return done;
}

// Runs `rounds` round trips from a's thread and waits for them.
inline void run_resume_on_round_trips(evcxx::LoopThread& a, evcxx::LoopThread& b,
                                      std::uint64_t rounds) {
  if (evcxx::spawn_future(a.loop(), resume_on_round_trips(a, b, rounds)).get() != rounds) {
    throw std::runtime_error("resume_on round trips: short count");
  }
}

// How the two io_context threads of an AsioPair wait for work.
enum class AsioWait {
  idle,         // run(): an idle thread blocks on a condition variable
  with_timers,  // run() with a timer pending on each, as in any program that does I/O with Asio:
                // an idle thread blocks in the reactor's epoll_wait, which a post interrupts
  polling,      // poll() in a loop, never blocking: Asio's counterpart of Loop::set_busy_poll
};

// Two io_context threads, kept running by a work guard each, until destroyed.
class AsioPair {
 public:
  // pin(0) and pin(1) run first on the two threads when they poll.
  explicit AsioPair(AsioWait wait, std::function<void(int)> pin = {})
      : polling_(wait == AsioWait::polling), pin_(std::move(pin)) {
    if (wait == AsioWait::with_timers) {
      timer_a_.async_wait([](const boost::system::error_code&) {});
      timer_b_.async_wait([](const boost::system::error_code&) {});
    }
    thread_a_ = std::thread([this] { serve(a_, 0); });
    thread_b_ = std::thread([this] { serve(b_, 1); });
  }
  ~AsioPair() {
    polling_.store(false, std::memory_order_relaxed);
    a_.stop();
    b_.stop();
    thread_a_.join();
    thread_b_.join();
  }
  AsioPair(const AsioPair&) = delete;
  AsioPair& operator=(const AsioPair&) = delete;

  // Runs `rounds` round trips from a's thread and waits for them.
  void round_trips(std::uint64_t rounds) {
    std::uint64_t done = 0;
    std::promise<void> finished;
    boost::asio::co_spawn(a_, hop(done, rounds),
                          [&finished](const std::exception_ptr&) { finished.set_value(); });
    finished.get_future().get();
    if (done != rounds) throw std::runtime_error("Asio round trips: short count");
  }

 private:
  boost::asio::awaitable<void> hop(std::uint64_t& done, std::uint64_t rounds) {
    for (; done < rounds; ++done) {
      co_await boost::asio::post(b_, boost::asio::use_awaitable);
      co_await boost::asio::post(a_, boost::asio::use_awaitable);
    }
  }
  void serve(boost::asio::io_context& context, int index) {
    if (polling_.load(std::memory_order_relaxed) && pin_) pin_(index);
    while (polling_.load(std::memory_order_relaxed)) context.poll();
    context.run();  // until stop()
  }

  boost::asio::io_context a_{1};
  boost::asio::io_context b_{1};
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_a_ =
      boost::asio::make_work_guard(a_);
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_b_ =
      boost::asio::make_work_guard(b_);
  boost::asio::steady_timer timer_a_{a_, std::chrono::hours(1)};
  boost::asio::steady_timer timer_b_{b_, std::chrono::hours(1)};
  std::atomic<bool> polling_;
  std::function<void(int)> pin_;
  std::thread thread_a_;
  std::thread thread_b_;
};

}  // namespace evcxx_bench
