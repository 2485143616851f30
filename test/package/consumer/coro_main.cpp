// A coroutine program built against evcxx::coro by each packaging test: a Task sleeps, reads a
// pipe and hops to a LoopThread and back. Exits 0 only if all of it works.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include <evcxx/coro.hpp>

using namespace std::chrono_literals;

namespace {

evcxx::Task<int> work(evcxx::Loop& loop, evcxx::LoopThread& other, int fd) {
  co_await evcxx::sleep_for(loop, 1ms);
  const evcxx::IoEvents fired = co_await evcxx::readable(loop, fd);
  const std::thread::id home = std::this_thread::get_id();
  co_await evcxx::resume_on(other);
  const bool hopped = std::this_thread::get_id() != home;
  co_await evcxx::resume_on(loop);
  co_return (fired.readable() && hopped && std::this_thread::get_id() == home) ? 42 : 0;
}

}  // namespace

int main() {
  evcxx::LoopThread home("consumer-home");
  evcxx::LoopThread other("consumer-other");
  int fds[2];
  if (::pipe(fds) != 0 || ::write(fds[1], "x", 1) != 1) return 2;
  auto result = evcxx::spawn_future(home.loop(), work(home.loop(), other, fds[0]));
  if (result.wait_for(30s) != std::future_status::ready || result.get() != 42) {
    std::fprintf(stderr, "evcxx coroutine consumer: FAILED\n");
    return 1;
  }
  ::close(fds[0]);
  ::close(fds[1]);
  std::printf("evcxx coroutine consumer: ok\n");
  return 0;
}
