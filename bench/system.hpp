#pragma once

// The system-call helpers the benchmarks share: an errno check and a blocking eventfd.

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <system_error>

namespace evcxx_bench {

[[noreturn]] inline void throw_errno(const char* what) {
  throw std::system_error(errno, std::generic_category(), what);
}

// A blocking eventfd: write() adds to its counter, read() waits for a non-zero one and resets it.
class Eventfd {
 public:
  Eventfd() : fd_(::eventfd(0, EFD_CLOEXEC)) {
    if (fd_ < 0) throw_errno("eventfd");
  }
  ~Eventfd() { ::close(fd_); }
  Eventfd(const Eventfd&) = delete;
  Eventfd& operator=(const Eventfd&) = delete;

  void signal() {
    const std::uint64_t one = 1;
    while (::write(fd_, &one, sizeof one) < 0) {
      if (errno != EINTR) throw_errno("write(eventfd)");
    }
  }
  void wait() {
    std::uint64_t count;
    while (::read(fd_, &count, sizeof count) < 0) {
      if (errno != EINTR) throw_errno("read(eventfd)");
    }
  }

 private:
  int fd_;
};

}  // namespace evcxx_bench
