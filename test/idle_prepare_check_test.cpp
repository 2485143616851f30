#include <gtest/gtest.h>

#include <evcxx/check.hpp>
#include <evcxx/idle.hpp>
#include <evcxx/io.hpp>
#include <evcxx/loop.hpp>
#include <evcxx/prepare.hpp>
#include <evcxx/timer.hpp>

#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "support.hpp"

using evcxx_test::Pipe;
using evcxx_test::Watchdog;
using namespace std::chrono_literals;

TEST(PrepareCheck, PrepareRunsBeforeTheLoopBlocksAndCheckAfterItWakes) {
  evcxx::Loop loop;
  Pipe p;
  std::vector<std::pair<std::string, unsigned>> log;
  std::promise<void> prepared;
  std::thread writer([&] {
    prepared.get_future().wait();  // only once the loop is about to wait
    evcxx_test::write_all(p.write.get(), "x");
  });
  bool first = true;
  evcxx::Prepare prepare(loop, [&] {
    log.emplace_back("prepare", loop.iteration());
    if (first) prepared.set_value();
    first = false;
  });
  evcxx::Check check(loop, [&] { log.emplace_back("check", loop.iteration()); });
  evcxx::Io io(loop, p.read.get(), evcxx::IoEvent::readable, [&](evcxx::IoEvents) {
    log.emplace_back("io", loop.iteration());
    prepare.stop();
    check.stop();
    io.stop();
  });
  Watchdog dog(loop, std::chrono::seconds(30));
  loop.run();
  writer.join();
  EXPECT_FALSE(dog.fired());
  // prepare, then exactly one poll (which counts an iteration) that only the writer, released by
  // prepare, could end; then check and the event (libev runs check first among equal
  // priorities).
  const unsigned it = log.empty() ? 0 : log.front().second;
  const std::vector<std::pair<std::string, unsigned>> expected{
      {"prepare", it}, {"check", it + 1}, {"io", it + 1}};
  EXPECT_EQ(log, expected);
}

TEST(PrepareCheck, BothRunOnceInEveryIteration) {
  evcxx::Loop loop;
  int prepares = 0;
  int checks = 0;
  int ticks = 0;
  const unsigned first_iteration = loop.iteration();
  evcxx::Prepare prepare(loop, [&] { ++prepares; });
  evcxx::Check check(loop, [&] { ++checks; });
  evcxx::Timer tick(loop, 0s, 1ms, [&] {
    if (++ticks < 5) return;
    tick.stop();
    prepare.stop();
    check.stop();
  });
  Watchdog dog(loop, std::chrono::seconds(30));
  loop.run();
  EXPECT_FALSE(dog.fired());
  EXPECT_GE(prepares, 5);
  EXPECT_EQ(prepares, checks);
  EXPECT_EQ(static_cast<unsigned>(checks), loop.iteration() - first_iteration);
}

TEST(Idle, RunsOnlyWhenNothingElseIsPending) {
  evcxx::Loop loop;
  Pipe p;
  evcxx_test::write_all(p.write.get(), "never read: always readable");
  int io_calls = 0;
  int io_calls_seen_by_idle = -1;
  evcxx::Io io(loop, p.read.get(), evcxx::IoEvent::readable, [&](evcxx::IoEvents) {
    if (++io_calls == 5) io.stop();
  });
  evcxx::Idle idle(loop, [&] {
    io_calls_seen_by_idle = io_calls;
    idle.stop();
  });
  Watchdog dog(loop, std::chrono::seconds(30));
  loop.run();
  EXPECT_FALSE(dog.fired());
  EXPECT_EQ(io_calls_seen_by_idle, 5);  // not while the same-priority Io had events
}

TEST(Idle, OfAHigherPriorityRunsDespiteLowerPendingEvents) {
  evcxx::Loop loop;
  Pipe p;
  evcxx_test::write_all(p.write.get(), "always readable");
  int io_calls = 0;
  std::vector<int> io_calls_seen_by_idle;
  evcxx::Io io(loop, p.read.get(), evcxx::IoEvent::readable, [&](evcxx::IoEvents) {
    if (++io_calls == 3) io.stop();
  });
  evcxx::Idle idle(loop, evcxx::deferred, [&] {
    io_calls_seen_by_idle.push_back(io_calls);
    if (!io.active()) idle.stop();
  });
  idle.set_priority(EV_MAXPRI);
  idle.start();
  Watchdog dog(loop, std::chrono::seconds(30));
  loop.run();
  EXPECT_FALSE(dog.fired());
  ASSERT_FALSE(io_calls_seen_by_idle.empty());
  EXPECT_EQ(io_calls_seen_by_idle.front(), 0);  // ran first, in the same iteration as the Io
}

TEST(Idle, KeepsTheLoopFromBlocking) {
  evcxx::Loop loop;
  evcxx::Timer far(loop, 1h, [] {});
  int calls = 0;
  evcxx::Idle idle(loop, [&] {
    if (++calls < 100) return;
    idle.stop();
    far.stop();
  });
  Watchdog dog(loop, std::chrono::seconds(30));
  EXPECT_FALSE(loop.run());  // would wait an hour for the timer in every iteration otherwise
  EXPECT_FALSE(dog.fired());
  EXPECT_EQ(calls, 100);
}
