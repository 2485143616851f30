#pragma once

// Fault injection for the fault tests: an operator new that fails on the Nth call (defined in
// fault_test.cpp, which replaces the global allocation functions), a full descriptor table, and a
// forked child to run code in that might abort.

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <exception>
#include <functional>
#include <new>
#include <stdexcept>
#include <string>
#include <system_error>
#include <typeinfo>
#include <utility>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

#include <evcxx/error.hpp>

#include "support.hpp"

namespace evcxx_fault {

// --- allocation failure ------------------------------------------------------------------------

// Arms the calling thread: its nth call of operator new from now fails (std::bad_alloc, or
// nullptr for the nothrow forms), once. Other threads are not affected.
void arm(long n) noexcept;
// Arms every thread: the nth call from now, on whichever thread makes it, fails once.
void arm_any_thread(long n) noexcept;
// Disarms both; returns true when an armed allocation failed since arm().
bool disarm() noexcept;
// Memory blocks from operator new not yet deleted, over all threads.
long live_allocations() noexcept;

// What an exception_ptr holds, for messages.
inline std::string describe(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    return std::string(typeid(e).name()) + ": " + e.what();
  } catch (...) {
    return "an exception not derived from std::exception";
  }
}

inline bool is_bad_alloc(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const std::bad_alloc&) {
    return true;
  } catch (...) {
    return false;
  }
}

// Makes a callable too big for std::function's and post()'s inline buffers, so that storing it
// allocates.
struct Ballast {
  char bytes[64] = {};
};

struct FaultRun {
  int failures = 0;   // attempts that threw std::bad_alloc
  int swallowed = 0;  // attempts that completed although an allocation failed
};

inline constexpr long kMaxAllocationPoints = 400;

// Runs op with the calling thread's 1st, 2nd, 3rd... allocation failing, until op completes with
// the fault armed (every allocation point in it has failed once). Each failing attempt must throw
// std::bad_alloc; after it, after_failure() checks that everything still works. op must start
// from scratch each time (reset what a swallowed failure left). With check_live, a failing attempt
// must free every block it allocated (only for tests with no other thread allocating).
template <class Op, class AfterFailure>
FaultRun fail_each_allocation(const char* what, Op&& op, AfterFailure&& after_failure,
                              bool check_live = false) {
  FaultRun run;
  for (long n = 1; n <= kMaxAllocationPoints; ++n) {
    const long live_before = live_allocations();
    std::exception_ptr error;
    arm(n);
    try {
      op();
    } catch (...) {
      error = std::current_exception();
    }
    const bool failed = disarm();
    const long live_after = live_allocations();
    if (!failed) {
      if (error) ADD_FAILURE() << what << " threw with no allocation failing: " << describe(error);
      ::testing::Test::RecordProperty(std::string(what) + ": failing allocations", run.failures);
      return run;
    }
    if (error) {
      ++run.failures;
      if (!is_bad_alloc(error)) {
        ADD_FAILURE() << what << ": allocation " << n << " failed, and it threw " << describe(error)
                      << " instead of std::bad_alloc";
      }
      if (check_live && live_after != live_before) {
        ADD_FAILURE() << what << ": allocation " << n << " failed, and " << live_after - live_before
                      << " blocks it allocated were not freed";
      }
    } else {
      ++run.swallowed;
    }
    after_failure();
  }
  ADD_FAILURE() << what << " still allocates after " << kMaxAllocationPoints << " attempts";
  return run;
}

// --- descriptor exhaustion ---------------------------------------------------------------------

// Free slots in the descriptor table, counted by taking them all (and giving them back).
inline int free_descriptors() {
  std::vector<int> taken;
  taken.reserve(1024);
  for (int fd; taken.size() < 1024 && (fd = ::fcntl(2, F_DUPFD_CLOEXEC, 0)) >= 0;) {
    taken.push_back(fd);
  }
  for (int fd : taken) ::close(fd);
  return static_cast<int>(taken.size());
}

// Lowers RLIMIT_NOFILE to `limit` and fills the table, leaving `spare` descriptors free.
class DescriptorHog {
 public:
  explicit DescriptorHog(int spare = 0, rlim_t limit = 64) {
    struct rlimit rl {};
    ::getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur > limit) {
      rl.rlim_cur = limit;
      ::setrlimit(RLIMIT_NOFILE, &rl);
    }
    held_.reserve(limit);
    take_all_but(spare);
  }
  // Takes every free descriptor again, then gives `spare` back.
  void take_all_but(int spare) {
    for (int fd; (fd = ::fcntl(2, F_DUPFD_CLOEXEC, 0)) >= 0;) held_.push_back(fd);
    for (int i = 0; i < spare && !held_.empty(); ++i) {
      ::close(held_.back());
      held_.pop_back();
    }
  }
  ~DescriptorHog() { release(); }
  DescriptorHog(const DescriptorHog&) = delete;
  DescriptorHog& operator=(const DescriptorHog&) = delete;

  void release() noexcept {
    for (int fd : held_) ::close(fd);
    held_.clear();
  }

 private:
  std::vector<int> held_;
};

// A check inside a forked child: gtest's assertions do not reach the parent from there.
struct ChildFailure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

inline void require(bool condition, const std::string& message) {
  if (!condition) throw ChildFailure(message);
}

// fn must throw the contract's exception for an exhausted descriptor table:
// std::system_error with EMFILE, or evcxx::Error (a std::runtime_error) naming descriptors.
template <class Fn>
void require_descriptor_error(const std::string& what, Fn&& fn) {
  try {
    fn();
  } catch (const std::system_error& e) {
    require(e.code().value() == EMFILE,
            what + " threw std::system_error with " + e.code().message() + ", not EMFILE");
    return;
  } catch (const ChildFailure&) {
    throw;
  } catch (const std::runtime_error& e) {
    require(std::strstr(e.what(), "descriptor") != nullptr,
            what + " threw an error that does not say descriptors ran out: " + e.what());
    return;
  } catch (const std::exception& e) {
    throw ChildFailure(what + " threw " + typeid(e).name() + ": " + e.what());
  }
  throw ChildFailure(what + " did not throw although the process is out of descriptors");
}

// Each exception type once, before descriptors run out: UBSan's first type check of a class
// may need a free descriptor.
inline void warm_up_exception_types() {
  const auto touch = [](const std::exception& e) { static_cast<void>(typeid(e).name()); };
  try {
    throw std::system_error(EMFILE, std::generic_category(), "warm-up");
  } catch (const std::system_error& e) {
    static_cast<void>(e.code());
    touch(e);
  }
  try {
    throw std::runtime_error("warm-up");
  } catch (const std::runtime_error& e) {
    touch(e);
  }
  try {
    throw evcxx::Error("warm-up");
  } catch (const std::runtime_error& e) {
    touch(e);
  }
  try {
    throw ChildFailure("warm-up");
  } catch (const std::runtime_error& e) {
    touch(e);
  }
  try {
    throw std::logic_error("warm-up");
  } catch (const std::exception& e) {
    touch(e);
  }
}

// Everything a pipe's read end delivers until the writer closes it (a forked child's stderr).
inline std::string read_to_end(int fd) {
  std::string text;
  char buffer[4096];
  for (ssize_t n; (n = ::read(fd, buffer, sizeof buffer)) != 0;) {
    if (n > 0) text.append(buffer, static_cast<std::size_t>(n));
    if (n < 0 && errno != EINTR) break;
  }
  return text;
}

// Runs body in a forked child (a libev abort() must not take the test binary down), with its
// stderr captured: the test fails when the child dies of a signal, a require() fails, body throws
// or (under ASan) it leaked. The parent must be single-threaded.
inline void run_in_child(const std::function<void()>& body) {
  warm_up_exception_types();
  int out[2];
  ASSERT_EQ(::pipe2(out, O_CLOEXEC), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::dup2(out[1], 2);
    ::close(out[0]);
    ::alarm(60);  // a hang becomes SIGALRM
    int code = 0;
    const auto say = [](const std::string& text) {
      const std::string line = text + "\n";
      static_cast<void>(::write(2, line.data(), line.size()));
    };
    try {
      body();
    } catch (const ChildFailure& e) {
      say(e.what());
      code = 1;
    } catch (const std::exception& e) {
      say(std::string("unexpected exception: ") + typeid(e).name() + ": " + e.what());
      code = 2;
    }
#if defined(__SANITIZE_ADDRESS__)
    if (code == 0 && __lsan_do_recoverable_leak_check() != 0) {
      say("LeakSanitizer found leaks (report above)");
      code = 3;
    }
#endif
    evcxx_test::exit_child(code);
  }
  ::close(out[1]);
  const std::string output = read_to_end(out[0]);
  ::close(out[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  if (WIFSIGNALED(status)) {
    ADD_FAILURE() << "the child was killed by signal " << WTERMSIG(status) << " ("
                  << strsignal(WTERMSIG(status)) << "); its stderr:\n"
                  << output;
  } else if (WEXITSTATUS(status) != 0) {
    ADD_FAILURE() << "the child failed (exit " << WEXITSTATUS(status) << "):\n" << output;
  }
}

}  // namespace evcxx_fault
