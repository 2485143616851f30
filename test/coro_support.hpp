#pragma once

// For the coroutine tests: a time bound on a loop that, unlike evcxx_test::Deadline, does not keep
// the loop running, so run() returns as soon as the coroutines are done.

#include <chrono>

#include <evcxx/timer.hpp>

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

}  // namespace evcxx_test
