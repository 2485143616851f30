#include <gtest/gtest.h>

#include <evcxx/loop.hpp>
#include <evcxx/timer.hpp>

#include <chrono>
#include <cmath>
#include <limits>
#include <memory>
#include <stdexcept>
#include <vector>

#include "support.hpp"

using evcxx::Timer;
using evcxx_test::Watchdog;
using namespace std::chrono_literals;

namespace {

double seconds(evcxx::Timestamp t) {
  return t.time_since_epoch().count();
}

}  // namespace

TEST(Timer, FiresOnceNoEarlierThanItsTimeout) {
  evcxx::Loop loop;
  loop.update_now();
  const auto started = std::chrono::steady_clock::now();
  int calls = 0;
  Timer t(loop, 50ms, [&] { ++calls; });
  EXPECT_TRUE(t.active());
  Watchdog dog(loop, std::chrono::seconds(30));
  EXPECT_FALSE(loop.run());  // a one-shot timer stops itself, so run() returns
  const auto elapsed = std::chrono::steady_clock::now() - started;
  EXPECT_FALSE(dog.fired());
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(t.active());
  EXPECT_GE(elapsed, 49ms);
  EXPECT_LT(elapsed, 10s);
}

TEST(Timer, FireInTheOrderOfTheirTimeouts) {
  evcxx::Loop loop;
  std::vector<int> order;
  Timer c(loop, 90ms, [&] { order.push_back(3); });
  Timer a(loop, 10ms, [&] { order.push_back(1); });
  Timer b(loop, std::chrono::milliseconds(50), [&] { order.push_back(2); });
  Timer zero(loop, 0s, [&] { order.push_back(0); });
  Watchdog dog(loop, std::chrono::seconds(30));
  loop.run();
  EXPECT_FALSE(dog.fired());
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3}));
}

TEST(Timer, RepeatsUntilStopped) {
  evcxx::Loop loop;
  int calls = 0;
  std::vector<double> at;
  const double start = seconds(loop.now());
  Timer t(loop, 0s, 10ms, [&] {
    at.push_back(seconds(loop.now()));
    if (++calls == 5) t.stop();
  });
  EXPECT_EQ(t.repeat(), 10ms);
  Watchdog dog(loop, std::chrono::seconds(30));
  EXPECT_FALSE(loop.run());
  EXPECT_FALSE(dog.fired());
  EXPECT_EQ(calls, 5);
  // The k-th firing is due k repeats after the start (libev keeps that schedule even when one
  // firing was late) and never comes early.
  for (std::size_t k = 0; k < at.size(); ++k) {
    EXPECT_GE(at[k] - start, 0.010 * static_cast<double>(k) - 0.0005) << k;
    if (k > 0) {
      EXPECT_GE(at[k], at[k - 1]);
    }
  }
}

TEST(Timer, AgainPostponesAnInactivityTimeout) {
  evcxx::Loop loop;
  constexpr double kTimeout = 1.0;
  double last_activity = 0;
  double fired_at = 0;
  int fired = 0;
  Timer idle(loop, evcxx::deferred, 0s, std::chrono::duration<double>(kTimeout), [&] {
    ++fired;
    fired_at = seconds(loop.now());
    idle.stop();
  });
  int activity = 0;
  Timer busy(loop, 0s, 20ms, [&] {
    idle.again();  // each activity restarts the countdown
    last_activity = seconds(loop.now());
    EXPECT_TRUE(idle.active());
    EXPECT_GT(idle.remaining(), 0s);
    EXPECT_LE(idle.remaining().count(), kTimeout + 0.001);
    if (++activity == 5) busy.stop();
  });
  Watchdog dog(loop, std::chrono::seconds(30));
  loop.run();
  EXPECT_FALSE(dog.fired());
  EXPECT_EQ(activity, 5);
  EXPECT_EQ(fired, 1);
  EXPECT_GE(fired_at - last_activity, kTimeout - 0.001);  // counted from the last again()
}

TEST(Timer, AgainWithoutRepeatStopsAndWithRepeatStarts) {
  evcxx::Loop loop;
  Timer t(loop, 1h, [] {});
  EXPECT_TRUE(t.active());
  t.again();  // repeat 0: again() stops an active timer
  EXPECT_FALSE(t.active());
  t.again();  // and leaves an inactive one alone
  EXPECT_FALSE(t.active());
  t.set_repeat(2h);
  t.again();  // with a repeat it starts, due after the repeat
  EXPECT_TRUE(t.active());
  EXPECT_GT(t.remaining(), 1h);
  EXPECT_LE(t.remaining(), 2h + 1ms);  // double arithmetic on the loop's clock
}

TEST(Timer, RemainingWhileStoppedIsTheTimeout) {
  evcxx::Loop loop;
  Timer t(loop, evcxx::deferred, 3s, [] {});
  EXPECT_EQ(t.remaining(), 3s);
  t.start();
  EXPECT_GT(t.remaining(), 0s);
  EXPECT_LE(t.remaining(), 3s + 1ms);
}

TEST(Timer, SetRepeatMakesAOneShotTimerRepeat) {
  evcxx::Loop loop;
  int calls = 0;
  Timer t(loop, 5ms, [&] {
    if (++calls == 3) t.stop();
  });
  EXPECT_EQ(t.repeat(), 0s);
  t.set_repeat(5ms);  // takes effect when it fires
  EXPECT_EQ(t.repeat(), 5ms);
  Watchdog dog(loop, std::chrono::seconds(30));
  loop.run();
  EXPECT_FALSE(dog.fired());
  EXPECT_EQ(calls, 3);
}

TEST(Timer, SetRestartsAnActiveTimer) {
  evcxx::Loop loop;
  int calls = 0;
  Timer t(loop, 1h, [&] { ++calls; });
  t.set(0s, 0s);  // restarted: now due at once
  EXPECT_TRUE(t.active());
  EXPECT_EQ(t.repeat(), 0s);
  Watchdog dog(loop, std::chrono::seconds(30));
  EXPECT_FALSE(loop.run());
  EXPECT_FALSE(dog.fired());
  EXPECT_EQ(calls, 1);

  t.set(1h, 2h);  // inactive: stays inactive
  EXPECT_FALSE(t.active());
  EXPECT_EQ(t.repeat(), 2h);
  EXPECT_EQ(t.remaining(), 1h);
}

TEST(Timer, BadDurationsThrowBeforeLibevIsTouched) {
  evcxx::Loop loop;
  const auto nan = Timer::Duration(std::numeric_limits<double>::quiet_NaN());
  const auto inf = Timer::Duration(std::numeric_limits<double>::infinity());
  auto cb = [] {};
  EXPECT_THROW(Timer(loop, -1ms, cb), std::invalid_argument);
  EXPECT_THROW(Timer(loop, nan, cb), std::invalid_argument);
  EXPECT_THROW(Timer(loop, inf, cb), std::invalid_argument);
  EXPECT_THROW(Timer(loop, 1s, -1s, cb), std::invalid_argument);
  EXPECT_THROW(Timer(loop, evcxx::deferred, 1s, nan, cb), std::invalid_argument);
  EXPECT_THROW(Timer(loop, evcxx::deferred, -1ns, cb), std::invalid_argument);
  Timer t(loop, 1h, 2h, cb);
  EXPECT_THROW(t.set(nan), std::invalid_argument);
  EXPECT_THROW(t.set(1s, -1s), std::invalid_argument);
  EXPECT_THROW(t.set_repeat(nan), std::invalid_argument);
  EXPECT_THROW(t.set_repeat(-5min), std::invalid_argument);
  EXPECT_TRUE(t.active());  // rejected changes change nothing
  EXPECT_EQ(t.repeat(), 2h);
  EXPECT_GT(t.remaining(), 59min);
}

TEST(Timer, AgainOnADetachedTimerThrows) {
  auto loop = std::make_unique<evcxx::Loop>();
  Timer t(*loop, 1s, 1s, [] {});
  loop.reset();
  EXPECT_FALSE(t.active());
  EXPECT_THROW(t.again(), std::logic_error);
  t.set(2s, 2s);  // safe while detached
  t.set_repeat(1s);
  EXPECT_EQ(t.repeat(), 1s);
}

TEST(Timer, ExceptionFromARepeatingTimerLeavesItRunning) {
  evcxx::Loop loop;
  int calls = 0;
  Timer t(loop, 0s, 5ms, [&] {
    if (++calls == 1) throw evcxx_test::Boom();
    if (calls == 3) t.stop();
  });
  Watchdog dog(loop, std::chrono::seconds(30));
  EXPECT_THROW(loop.run(), evcxx_test::Boom);
  EXPECT_TRUE(t.active());
  loop.run();
  EXPECT_FALSE(dog.fired());
  EXPECT_EQ(calls, 3);
}
