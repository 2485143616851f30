#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <evcxx/periodic.hpp>

using namespace std::chrono_literals;
using evcxx::Periodic;
using evcxx::Timestamp;

namespace {

double seconds(Timestamp t) {
  return t.time_since_epoch().count();
}

}  // namespace

TEST(Periodic, AbsoluteTimesFireInOrderAndNotBeforeTheirTime) {
  evcxx::Loop loop;
  const Timestamp start = evcxx::Clock::now();
  const Timestamp later = start + 300ms;
  const Timestamp sooner = start + 100ms;
  std::vector<std::string> order;
  std::vector<double> lateness;
  Periodic second(loop, later, [&] {
    order.push_back("later");
    lateness.push_back(seconds(evcxx::Clock::now()) - seconds(later));
  });
  Periodic first(loop, sooner, [&] {
    order.push_back("sooner");
    lateness.push_back(seconds(evcxx::Clock::now()) - seconds(sooner));
  });
  EXPECT_TRUE(first.active());
  EXPECT_DOUBLE_EQ(seconds(first.at()), seconds(sooner));
  EXPECT_DOUBLE_EQ(seconds(second.at()), seconds(later));

  EXPECT_FALSE(loop.run());  // one-shot periodics stop themselves, so run() runs out of work

  EXPECT_EQ(order, (std::vector<std::string>{"sooner", "later"}));
  ASSERT_EQ(lateness.size(), 2u);
  for (double late : lateness) {
    EXPECT_GE(late, 0.0);   // never early
    EXPECT_LT(late, 30.0);  // and not absurdly late, even on a loaded machine
  }
  EXPECT_FALSE(first.active());
  EXPECT_FALSE(second.active());
}

TEST(Periodic, IntervalFiresOnMultiplesOfTheIntervalPlusOffset) {
  evcxx::Loop loop;
  const auto interval = 50ms;
  const auto offset = 20ms;
  std::vector<double> scheduled;
  Periodic* self = nullptr;
  Periodic tick(loop, offset, interval, [&] {
    scheduled.push_back(seconds(self->at()));  // at() is already the next time
    if (scheduled.size() == 4) self->stop();
  });
  self = &tick;
  EXPECT_DOUBLE_EQ(tick.offset().count(), 0.020);
  EXPECT_DOUBLE_EQ(tick.interval().count(), 0.050);

  EXPECT_FALSE(loop.run());

  ASSERT_EQ(scheduled.size(), 4u);
  for (std::size_t i = 0; i < scheduled.size(); ++i) {
    // Each next time is offset + N * interval.
    const double periods = (scheduled[i] - 0.020) / 0.050;
    EXPECT_NEAR(periods, std::round(periods), 1e-3) << "at " << scheduled[i];
    if (i > 0) {
      EXPECT_GT(scheduled[i], scheduled[i - 1]);
    }
  }
}

TEST(Periodic, RescheduleRuleDecidesWhenToFire) {
  evcxx::Loop loop;
  std::vector<double> rule_nows;
  int fired = 0;
  Periodic* seen = nullptr;
  Periodic ticker(
      loop,
      [&](Periodic& p, Timestamp now) {
        seen = &p;
        rule_nows.push_back(seconds(now));
        return now + 30ms;
      },
      [&] {
        if (++fired == 3) seen->stop();
      });
  EXPECT_TRUE(ticker.has_rule());
  ASSERT_EQ(rule_nows.size(), 1u);  // start() asked the rule once
  EXPECT_EQ(seen, &ticker);
  EXPECT_DOUBLE_EQ(seconds(ticker.at()), rule_nows[0] + 0.030);

  EXPECT_FALSE(loop.run());

  EXPECT_EQ(fired, 3);
  ASSERT_GE(rule_nows.size(), 3u);
  for (std::size_t i = 1; i < rule_nows.size(); ++i) EXPECT_GE(rule_nows[i], rule_nows[i - 1]);
}

TEST(Periodic, RuleThatThrowsWhileFiringIsRethrownByRunAndWatcherStaysUsable) {
  evcxx::Loop loop;
  int rule_calls = 0;
  int fired = 0;
  Periodic p(
      loop,
      [&](Periodic&, Timestamp now) -> Timestamp {
        if (++rule_calls == 2) throw std::runtime_error("rule failed");
        return now + 10ms;
      },
      [&] { ++fired; });

  EXPECT_THROW(
      {
        try {
          loop.run();
        } catch (const std::runtime_error& e) {
          EXPECT_STREQ(e.what(), "rule failed");
          throw;
        }
      },
      std::runtime_error);
  EXPECT_EQ(rule_calls, 2);
  EXPECT_EQ(fired, 1);  // the event that was due is still delivered
  EXPECT_TRUE(p.active());

  // A new rule restarts it and it fires again.
  p.set([&](Periodic&, Timestamp now) { return now + 10ms; });
  p.set_callback([&] {
    ++fired;
    p.stop();
  });
  EXPECT_FALSE(loop.run());
  EXPECT_EQ(fired, 2);
}

TEST(Periodic, RuleThatThrowsOnStartIsRethrownByTheConstructorAndStart) {
  evcxx::Loop loop;
  auto failing = [](Periodic&, Timestamp) -> Timestamp { throw std::domain_error("no time"); };
  EXPECT_THROW(Periodic(loop, failing, [] {}), std::domain_error);

  Periodic deferred(loop, evcxx::deferred, failing, [] {});
  EXPECT_THROW(deferred.start(), std::domain_error);
  EXPECT_FALSE(deferred.active());
  EXPECT_FALSE(loop.run());  // nothing left active, nothing captured
}

TEST(Periodic, RuleReturningATimeInThePastIsALogicErrorNotAnAbort) {
  evcxx::Loop loop;
  auto past = [](Periodic&, Timestamp now) { return now - 1s; };
  EXPECT_THROW(Periodic(loop, past, [] {}), std::logic_error);
  auto nan = [](Periodic&, Timestamp) {
    return Timestamp(evcxx::Clock::duration(std::numeric_limits<double>::quiet_NaN()));
  };
  EXPECT_THROW(Periodic(loop, nan, [] {}), std::logic_error);

  // Past a first good answer, a bad one surfaces from run().
  int calls = 0;
  Periodic p(
      loop,
      [&](Periodic&, Timestamp now) -> Timestamp {
        if (++calls == 1) return now + 5ms;
        return now - 1s;
      },
      [] {});
  EXPECT_THROW(loop.run(), std::logic_error);
  p.stop();
  EXPECT_FALSE(loop.run());
}

TEST(Periodic, ChangingTheWatcherInsideTheRuleIsRefused) {
  evcxx::Loop loop;
  bool refused = false;
  Periodic p(
      loop, evcxx::deferred,
      [&](Periodic& self, Timestamp now) {
        try {
          self.set(now + 1s);
        } catch (const std::logic_error&) {
          refused = true;
        }
        return now + 1s;
      },
      [] {});
  p.start();
  EXPECT_TRUE(refused);
  EXPECT_TRUE(p.active());
  p.stop();
}

TEST(Periodic, AgainAsksTheRuleForANewTime) {
  evcxx::Loop loop;
  double delay = 100.0;
  Periodic p(
      loop, [&](Periodic&, Timestamp now) { return now + evcxx::Clock::duration(delay); }, [] {});
  const double first = seconds(p.at());
  delay = 200.0;
  p.again();
  EXPECT_TRUE(p.active());
  EXPECT_GT(seconds(p.at()), first + 50.0);
  p.stop();
}

TEST(Periodic, SetSwitchesModesAndRestartsAnActiveWatcher) {
  evcxx::Loop loop;
  int fired = 0;
  Periodic p(loop, evcxx::Clock::now() + 1h, [&] { ++fired; });
  ASSERT_TRUE(p.active());

  p.set(evcxx::Clock::now() + 10ms);  // sooner: must be rescheduled, not keep the old hour
  EXPECT_TRUE(p.active());
  EXPECT_FALSE(p.has_rule());
  EXPECT_FALSE(loop.run());
  EXPECT_EQ(fired, 1);

  p.set(0s, 1h);  // stopped: stays stopped
  EXPECT_FALSE(p.active());
  EXPECT_DOUBLE_EQ(p.interval().count(), 3600.0);
}

TEST(Periodic, BadParametersAreInvalidArguments) {
  evcxx::Loop loop;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  using D = Periodic::Duration;
  EXPECT_THROW(Periodic(loop, 0s, D(-1.0), [] {}), std::invalid_argument);
  EXPECT_THROW(Periodic(loop, 0s, D(nan), [] {}), std::invalid_argument);
  EXPECT_THROW(Periodic(loop, 0s, D(inf), [] {}), std::invalid_argument);
  EXPECT_THROW(Periodic(loop, 0s, 0s, [] {}), std::invalid_argument);
  EXPECT_THROW(Periodic(loop, D(-1.0), 1s, [] {}), std::invalid_argument);
  EXPECT_THROW(Periodic(loop, D(nan), 1s, [] {}), std::invalid_argument);
  EXPECT_THROW(Periodic(loop, Timestamp(D(nan)), [] {}), std::invalid_argument);
  EXPECT_THROW(Periodic(loop, evcxx::deferred, Periodic::RescheduleRule(), [] {}),
               std::invalid_argument);

  // A rejected set() leaves the watcher as it was.
  Periodic p(loop, 0s, 1h, [] {});
  const double at = seconds(p.at());
  EXPECT_THROW(p.set(0s, D(-5.0)), std::invalid_argument);
  EXPECT_THROW(p.set(Periodic::RescheduleRule()), std::invalid_argument);
  EXPECT_TRUE(p.active());
  EXPECT_DOUBLE_EQ(seconds(p.at()), at);
  EXPECT_DOUBLE_EQ(p.interval().count(), 3600.0);
}

TEST(Periodic, DetachedWhenTheLoopDiesFirst) {
  auto loop = std::make_unique<evcxx::Loop>();
  Periodic p(*loop, 0s, 1h, [] {});
  loop.reset();
  EXPECT_FALSE(p.active());
  EXPECT_THROW(p.start(), std::logic_error);
  EXPECT_THROW(p.again(), std::logic_error);
  EXPECT_NO_THROW(p.set(0s, 2h));
}
