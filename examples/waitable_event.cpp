// waitable_event: one event, three kinds of waiter.
//
// A loop thread finishes some work and sets a WaitableEvent. Meanwhile
//   - a plain thread waits on it with a timeout (wait_for),
//   - a "foreign" poll()-based loop watches its fd(), as C code or another library would,
//   - and the loop itself is told through on_set.
// Then the event is cleared, and fd() stops being readable: the event is level-triggered.
#include <evcxx/loop.hpp>
#include <evcxx/waitable_event.hpp>

#include <poll.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <future>
#include <thread>

using namespace std::chrono_literals;

namespace {

bool readable(int fd, int timeout_ms) {
  pollfd watched{fd, POLLIN, 0};
  return ::poll(&watched, 1, timeout_ms) == 1 && (watched.revents & POLLIN) != 0;
}

}  // namespace

int main() {
  evcxx::Loop loop;
  std::promise<void> announced;
  // on_set runs on the loop thread; it keeps the loop alive until stop().
  evcxx::WaitableEvent done(loop, [&] {
    std::puts("loop thread: on_set ran");
    announced.set_value();
  });
  const int fd = done.fd();  // created now; costs nothing until asked for
  if (fd < 0) {
    std::perror("WaitableEvent::fd");
    return 1;
  }

  std::atomic<bool> waiter_released{false};
  std::atomic<bool> fd_seen_readable{false};
  std::promise<void> first_wait_over;
  std::thread waiter([&] {
    // Nobody has been asked to set it yet, so this times out.
    if (!done.wait_for(20ms)) std::puts("waiter: not set after 20 ms, waiting on");
    first_wait_over.set_value();
    waiter_released = done.wait_for(10s);
    std::puts(waiter_released ? "waiter: released by set()" : "waiter: timed out (bug)");
  });
  std::thread foreign_loop([&] {
    fd_seen_readable = readable(fd, 10000);
    std::puts(fd_seen_readable ? "poll loop: fd became readable" : "poll loop: timed out (bug)");
  });
  std::thread loop_thread([&] { loop.run(); });

  first_wait_over.get_future().wait();
  loop.post([&] {
    std::puts("loop thread: work done, setting the event");
    done.set();
  });

  waiter.join();
  foreign_loop.join();
  announced.get_future().wait();

  done.clear();
  const bool cleared = !done.is_set() && !readable(fd, 0);
  std::printf("after clear(): is_set() = %s, fd readable = %s\n", done.is_set() ? "true" : "false",
              readable(fd, 0) ? "yes" : "no");

  loop.stop();
  loop_thread.join();
  return waiter_released && fd_seen_readable && cleared ? 0 : 1;
}
