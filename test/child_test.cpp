#include <gtest/gtest.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

#include <evcxx/child.hpp>
#include <evcxx/periodic.hpp>
#include "support.hpp"

using namespace std::chrono_literals;
using evcxx::Child;
using evcxx::Loop;

using evcxx_test::Deadline;

namespace {

// Forks a child that runs `body` and exits with its result. The default loop must exist first:
// libev installs its SIGCHLD handler when it is created.
template <class Body>
pid_t spawn(Body body) {
  Loop::default_loop();
  const pid_t pid = ::fork();
  if (pid == 0) evcxx_test::exit_child(body());
  return pid;
}

}  // namespace

TEST(Child, ReportsTheExitStatusOfItsProcess) {
  Loop& loop = Loop::default_loop();
  const pid_t pid = spawn([] { return 42; });
  ASSERT_GT(pid, 0);
  int calls = 0;
  Child* self = nullptr;
  Child child(loop, pid, [&] {
    ++calls;
    self->stop();  // libev never stops a child watcher by itself
    loop.break_loop();
  });
  self = &child;
  EXPECT_EQ(child.pid(), pid);
  EXPECT_FALSE(child.trace());
  EXPECT_EQ(child.rpid(), 0);
  Deadline deadline(loop);

  loop.run();

  ASSERT_FALSE(deadline.expired());
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(child.active());
  EXPECT_EQ(child.rpid(), pid);
  EXPECT_TRUE(WIFEXITED(child.rstatus()));
  EXPECT_TRUE(child.exited());
  EXPECT_EQ(child.exit_status(), 42);
  EXPECT_FALSE(child.signaled());
  EXPECT_EQ(child.term_signal(), 0);
  // libev reaped it: nothing is left for waitpid().
  EXPECT_EQ(::waitpid(pid, nullptr, WNOHANG), -1);
}

TEST(Child, ReportsTheSignalThatKilledItsProcess) {
  Loop& loop = Loop::default_loop();
  const pid_t pid = spawn([] {
    ::raise(SIGTERM);
    return 0;  // not reached: SIGTERM's default action terminates
  });
  ASSERT_GT(pid, 0);
  Child child(loop, pid, [&] { loop.break_loop(); });
  Deadline deadline(loop);

  loop.run();
  child.stop();

  ASSERT_FALSE(deadline.expired());
  EXPECT_EQ(child.rpid(), pid);
  EXPECT_TRUE(child.signaled());
  EXPECT_EQ(child.term_signal(), SIGTERM);
  EXPECT_FALSE(child.exited());
  EXPECT_EQ(child.exit_status(), -1);
}

TEST(Child, PidZeroWatchesEveryChild) {
  Loop& loop = Loop::default_loop();
  std::vector<pid_t> seen;
  Child any(loop, 0, [&] {});
  any.set_callback([&] {
    seen.push_back(any.rpid());
    if (seen.size() == 2) loop.break_loop();
  });
  const pid_t first = spawn([] { return 1; });
  const pid_t second = spawn([] { return 2; });
  ASSERT_GT(first, 0);
  ASSERT_GT(second, 0);
  Deadline deadline(loop);

  while (seen.size() < 2 && !deadline.expired()) loop.run(evcxx::Run::once);
  any.stop();

  ASSERT_FALSE(deadline.expired());
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_TRUE((seen[0] == first && seen[1] == second) || (seen[0] == second && seen[1] == first));
}

TEST(Child, TraceReportsStopAndContinueAndOnlyTracingWatchersSeeThem) {
  Loop& loop = Loop::default_loop();
  int release[2];
  ASSERT_EQ(::pipe(release), 0);
  const pid_t pid = spawn([&] {
    ::close(release[1]);
    ::raise(SIGSTOP);
    char byte;
    // Wait until the parent has seen "continued", so that status is not overtaken by the exit.
    return ::read(release[0], &byte, 1) == 1 ? 7 : 99;
  });
  ASSERT_GT(pid, 0);
  ::close(release[0]);

  std::vector<std::string> traced_events;
  std::vector<std::string> plain_events;
  Child traced(loop, pid, true, [] {});
  traced.set_callback([&] {
    if (traced.stopped()) {
      traced_events.push_back("stopped " + std::to_string(traced.stop_signal()));
      ::kill(pid, SIGCONT);
    } else if (traced.continued()) {
      traced_events.push_back("continued");
      ASSERT_EQ(::write(release[1], "x", 1), 1);
    } else if (traced.exited()) {
      traced_events.push_back("exited " + std::to_string(traced.exit_status()));
      traced.stop();
    }
  });
  Child plain(loop, pid, [&] {
    plain_events.push_back(plain.exited() ? "exited " + std::to_string(plain.exit_status())
                                          : "other");
    plain.stop();
  });
  EXPECT_TRUE(traced.trace());
  Deadline deadline(loop);

  while ((traced.active() || plain.active()) && !deadline.expired()) loop.run(evcxx::Run::once);
  ::close(release[1]);

  ASSERT_FALSE(deadline.expired());
  EXPECT_EQ(traced_events, (std::vector<std::string>{"stopped " + std::to_string(SIGSTOP),
                                                     "continued", "exited 7"}));
  EXPECT_EQ(plain_events, (std::vector<std::string>{"exited 7"}));
}

TEST(Child, SetWatchesAnotherProcess) {
  Loop& loop = Loop::default_loop();
  Child child(loop, evcxx::deferred, 1, [&] { loop.break_loop(); });
  EXPECT_FALSE(child.active());
  const pid_t pid = spawn([] { return 3; });
  ASSERT_GT(pid, 0);
  child.set(pid);
  EXPECT_FALSE(child.active());  // set() keeps a stopped watcher stopped
  child.start();
  Deadline deadline(loop);

  loop.run();
  child.stop();

  ASSERT_FALSE(deadline.expired());
  EXPECT_EQ(child.rpid(), pid);
  EXPECT_EQ(child.exit_status(), 3);
}

TEST(Child, OnlyTheDefaultLoopCanWatchChildren) {
  Loop own;
  EXPECT_THROW(Child(own, 0, [] {}), std::logic_error);
  EXPECT_THROW(Child(own, evcxx::deferred, 0, true, [] {}), std::logic_error);
  // A Loop that borrows the default ev_loop is the default loop too.
  Loop borrowed(ev_default_loop(0));
  EXPECT_TRUE(borrowed.is_default());
  Child ok(borrowed, evcxx::deferred, 0, [] {});
  EXPECT_NO_THROW(ok.start());
  EXPECT_TRUE(ok.active());
}

TEST(Child, NegativePidIsAnInvalidArgument) {
  Loop& loop = Loop::default_loop();
  EXPECT_THROW(Child(loop, -1, [] {}), std::invalid_argument);
  EXPECT_THROW(Child(loop, evcxx::deferred, -1234, [] {}), std::invalid_argument);
  Child child(loop, 0, [] {});
  EXPECT_THROW(child.set(-5), std::invalid_argument);
  EXPECT_EQ(child.pid(), 0);
  EXPECT_TRUE(child.active());
}
