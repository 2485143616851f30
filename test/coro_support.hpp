#pragma once

// For the coroutine tests: a time bound on a loop that, unlike evcxx_test::Deadline, does not keep
// the loop running, so run() returns as soon as the coroutines are done; and a probe that counts
// the constructions and destructions of a frame's locals.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>

#include <evcxx/timer.hpp>
#include <evcxx/waitable_event.hpp>

#include "support.hpp"

namespace evcxx_test {

class Bound {
 public:
  explicit Bound(evcxx::Loop& loop, std::chrono::seconds limit = kPatience)
      : loop_(loop), timer_(loop, limit, [this] {
          expired_ = true;
          loop_.ref();  // the one-shot timer stopped itself, taking back what unref() gave up
          armed_ = false;
          loop_.break_loop();
        }) {
    loop_.unref();
  }
  ~Bound() {
    if (armed_) loop_.ref();
  }
  Bound(const Bound&) = delete;
  Bound& operator=(const Bound&) = delete;
  bool expired() const { return expired_; }

 private:
  evcxx::Loop& loop_;
  bool expired_ = false;
  bool armed_ = true;
  evcxx::Timer timer_;
};

// Counts its constructions and destructions; a destructor running twice shows as a negative
// balance or a count above the constructions.
struct Counts {
  std::atomic<int> made{0};
  std::atomic<int> destroyed{0};
  std::atomic<int> resumed{0};         // code after a cancelled suspension ran
  evcxx::WaitableEvent destroyed_one;  // set by every destruction
  int alive() const { return made.load() - destroyed.load(); }
};

// A local of a coroutine frame, counted in its Counts.
class Probe {
 public:
  explicit Probe(Counts& counts) : counts_(&counts) { ++counts_->made; }
  Probe(const Probe&) = delete;
  Probe& operator=(const Probe&) = delete;
  ~Probe() {
    EXPECT_FALSE(gone_) << "a Probe was destroyed twice";
    gone_ = true;
    ++counts_->destroyed;
    counts_->destroyed_one.set();
  }

 private:
  Counts* counts_;
  bool gone_ = false;
};

}  // namespace evcxx_test
