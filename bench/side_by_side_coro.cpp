// The coroutine rows of side_by_side_bench (issue 11): a coroutine hopping to another loop thread
// and back with evcxx::resume_on, beside Boost.Asio's co_spawn + post round trip between two
// io_context threads; time per round trip. coro_bench measures the same with Google Benchmark,
// one benchmark after another; here the sides of a pair alternate round by round, so that the
// machine's changes of state (which move an idle wake-up from tens to hundreds of microseconds on
// this VM) hit both alike.

#include <chrono>
#include <cstdint>

#include "coro_round_trip.hpp"
#include "side_by_side.hpp"

namespace evcxx_bench::sbs {

namespace {

using Seconds = std::chrono::duration<double>;

// spin > 0: both loops busy-poll that long before they block (Loop::set_busy_poll), pinned.
Sample evcxx_resume_on(std::uint64_t ops, Seconds spin) {
  evcxx::LoopThread a("sbs-coro-a");
  evcxx::LoopThread b("sbs-coro-b");
  set_busy_poll(a, spin, 0);
  set_busy_poll(b, spin, 1);
  const auto start = Clock::now();
  run_resume_on_round_trips(a, b, ops);
  return {ops, seconds_since(start)};
}

// Polling threads are pinned as the busy-polling evcxx loops are.
Sample asio_round_trips(std::uint64_t ops, AsioWait wait) {
  AsioPair pair(wait, pin_to_cpu_if_two);
  const auto start = Clock::now();
  pair.round_trips(ops);
  return {ops, seconds_since(start)};
}

Row coro_row(const char* name, const char* what, const char* label, Body evcxx) {
  Row row;
  row.group = "coro";
  row.name = name;
  row.what = what;
  row.unit = "round trip";
  row.ops = 200;
  row.evcxx = {"evcxx", label, std::move(evcxx)};
  return row;
}

}  // namespace

std::vector<Row> coro_rows() {
  Row blocking = coro_row(
      "resume_on", "a coroutine hops to the other loop thread and back, both threads idle between",
      "evcxx::resume_on between two LoopThreads",
      [](std::uint64_t ops) { return evcxx_resume_on(ops, Seconds::zero()); });
  blocking.peers.push_back(
      {"asio", "Boost.Asio co_spawn + post between two io_context threads",
       [](std::uint64_t ops) { return asio_round_trips(ops, AsioWait::idle); }});
  blocking.peers.push_back(
      {"asio_io",
       "the same with a timer pending on each io_context (its threads block in epoll_wait)",
       [](std::uint64_t ops) { return asio_round_trips(ops, AsioWait::with_timers); }});
  // The floor of a blocking hand-off between two CPUs: what no library goes below without
  // spinning (or keeping both threads on one CPU).
  blocking.peers.push_back({"futex_two_cpus",
                            "bare futex ping-pong, the two threads pinned to CPUs 0 and 1",
                            futex_ping_pong_two_cpus});
  Row busy = coro_row(
      "resume_on_busy_poll",
      "the same hops with both sides polling: evcxx loops busy-polling 50 µs before they block "
      "(Loop::set_busy_poll), Asio threads calling poll() in a loop",
      "evcxx::resume_on between two LoopThreads busy-polling 50 µs",
      [](std::uint64_t ops) { return evcxx_resume_on(ops, busy_poll_spin); });
  busy.peers.push_back(
      {"asio_polling", "Boost.Asio co_spawn + post, both io_context threads polling, pinned",
       [](std::uint64_t ops) { return asio_round_trips(ops, AsioWait::polling); }});
  return {blocking, busy};
}

}  // namespace evcxx_bench::sbs
