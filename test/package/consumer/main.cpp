// A program built against evcxx by each packaging test: it wakes the loop from another thread with
// Async, posts a task, and hands a WaitableEvent to a plain thread. Exits 0 only if all of it
// works.
#include <poll.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include <evcxx/evcxx.hpp>

namespace {

int failures = 0;

void expect(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "evcxx consumer: FAILED: %s\n", what);
    ++failures;
  }
}

}  // namespace

int main() {
  evcxx::Loop loop;
  evcxx::WaitableEvent done(loop);
  int wakeups = 0;
  bool posted_ran = false;
  evcxx::Async async(loop, [&] {
    ++wakeups;
    async.stop();  // the last active watcher: run() returns
  });

  bool waiter_released = false;
  std::thread worker([&] {
    loop.post([&] { posted_ran = true; });
    async.send();
    waiter_released = done.wait_for(std::chrono::seconds(30));
  });
  expect(!loop.run(), "run() returns false once the Async stopped itself");
  done.set();
  worker.join();

  expect(wakeups == 1, "the Async callback ran once");
  expect(posted_ran, "the posted task ran on the loop thread");
  expect(waiter_released, "WaitableEvent::set() released the waiting thread");
  pollfd readable{done.fd(), POLLIN, 0};
  expect(poll(&readable, 1, 0) == 1, "WaitableEvent::fd() is readable while set");
  expect(evcxx::Loop::version().major == EV_VERSION_MAJOR, "libev's major version matches ev.h");

  if (failures != 0) return 1;
  std::printf("evcxx consumer: ok (libev %d.%d)\n", evcxx::Loop::version().major,
              evcxx::Loop::version().minor);
  return 0;
}
