// The program scripts/deb-test.sh builds against the installed Debian packages, through CMake and
// through pkg-config: a repeating Timer fires three times and stops itself, which ends run(); a
// one-shot Timer stops the loop if that has not happened within 10 seconds.
#include <chrono>
#include <cstdio>

#include <evcxx/evcxx.hpp>

int main() {
  evcxx::Loop loop;
  int fired = 0;
  evcxx::Timer deadline(loop, std::chrono::seconds(10), [&] { loop.break_loop(); });
  evcxx::Timer ticks(loop, std::chrono::milliseconds(1), std::chrono::milliseconds(1), [&] {
    if (++fired == 3) {
      ticks.stop();
      deadline.stop();  // the last active watcher: run() returns
    }
  });
  loop.run();
  if (fired != 3) {
    std::fprintf(stderr, "evcxx deb consumer: FAILED: the timer fired %d times, not 3\n", fired);
    return 1;
  }
  std::printf("evcxx deb consumer: ok (evcxx %d.%d.%d, %s library)\n", EVCXX_VERSION_MAJOR,
              EVCXX_VERSION_MINOR, EVCXX_VERSION_PATCH,
#ifdef EVCXX_SHARED
              "shared"
#else
              "static"
#endif
  );
  return 0;
}
