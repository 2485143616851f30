// The coroutine program scripts/deb-test.sh builds against the installed Debian packages
// (evcxx::coro, C++20): a Task sleeps three times on the loop and returns a value.
#include <chrono>
#include <cstdio>

#include <evcxx/coro.hpp>
#include <evcxx/evcxx.hpp>

namespace {

evcxx::Task<int> three_sleeps(evcxx::Loop& loop) {
  int slept = 0;
  for (int i = 0; i < 3; ++i) {
    co_await evcxx::sleep_for(loop, std::chrono::milliseconds(1));
    ++slept;
  }
  co_return slept;
}

}  // namespace

int main() {
  evcxx::Loop loop;
  auto result = evcxx::spawn_future(loop, three_sleeps(loop));
  loop.run();
  const int slept = result.get();
  if (slept != 3) {
    std::fprintf(stderr, "evcxx deb coroutine consumer: FAILED: slept %d times, not 3\n", slept);
    return 1;
  }
  std::printf("evcxx deb coroutine consumer: ok (evcxx %d.%d.%d)\n", EVCXX_VERSION_MAJOR,
              EVCXX_VERSION_MINOR, EVCXX_VERSION_PATCH);
  return 0;
}
