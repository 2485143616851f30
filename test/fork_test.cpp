#include <gtest/gtest.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <memory>
#include <stdexcept>
#include <string>

#include <evcxx/async.hpp>
#include <evcxx/fork.hpp>
#include "support.hpp"

using evcxx::Fork;
using evcxx::Loop;

namespace {

// Runs `body` in a forked child and returns its exit code (128 + signal if it was killed).
// The child reports through its exit code only; it never returns into the test framework.
template <class Body>
int in_child(Body body) {
  const pid_t pid = ::fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    int code = 100;
    try {
      code = body();
    } catch (...) {
      code = 101;
    }
    evcxx_test::exit_child(code);
  }
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid) return -2;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

TEST(Fork, RunsInTheChildAfterLoopForkAndNeverInTheParent) {
  Loop loop;
  int calls = 0;
  Fork watcher(loop, [&] { ++calls; });
  loop.run(evcxx::Run::nowait);
  EXPECT_EQ(calls, 0);

  const int child = in_child([&] {
    loop.notify_fork();
    loop.run(evcxx::Run::nowait);
    return calls == 1 ? 0 : 10 + calls;
  });

  EXPECT_EQ(child, 0) << "exit 10 + n: the Fork callback ran n times in the child";
  loop.run(evcxx::Run::nowait);
  EXPECT_EQ(calls, 0);
  EXPECT_TRUE(watcher.active());
}

// Loop::fork(), the name before notify_fork(), still works for one release (and warns).
TEST(Fork, TheDeprecatedForkNameStillNotifiesTheLoop) {
  Loop loop;
  int calls = 0;
  Fork watcher(loop, [&] { ++calls; });
  const int child = in_child([&] {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    loop.fork();
#pragma GCC diagnostic pop
    loop.run(evcxx::Run::nowait);
    return calls == 1 ? 0 : 10 + calls;
  });
  EXPECT_EQ(child, 0) << "exit 10 + n: the Fork callback ran n times in the child";
}

TEST(Fork, DoesNotRunUnlessTheLoopIsToldAboutTheFork) {
  Loop loop;
  int calls = 0;
  Fork watcher(loop, [&] { ++calls; });
  const int child = in_child([&] {
    loop.run(evcxx::Run::nowait);
    return calls;
  });
  EXPECT_EQ(child, 0);
}

TEST(Fork, ForkcheckLoopsNoticeTheForkByThemselves) {
  Loop loop(evcxx::LoopFlag::forkcheck);
  int calls = 0;
  Fork watcher(loop, [&] { ++calls; });
  const int child = in_child([&] {
    loop.run(evcxx::Run::nowait);
    return calls == 1 ? 0 : 10 + calls;
  });
  EXPECT_EQ(child, 0);
  EXPECT_EQ(calls, 0);
}

TEST(Fork, RunsBeforeOtherEventsAndLeavesBothLoopsWorking) {
  Loop loop;
  std::string order;
  Fork fork_watcher(loop, [&] { order += "fork "; });
  evcxx::Async async(loop, [&] {
    order += "async ";
    loop.break_loop();
  });

  const int child = in_child([&] {
    loop.notify_fork();
    async.send();  // already due when the loop starts, yet the Fork callback runs first
    loop.run(evcxx::Run::once);
    if (order != "fork async ") return 10;
    // The child's loop has its own backend now and still wakes up.
    order.clear();
    async.send();
    loop.run(evcxx::Run::once);
    return order == "async " ? 0 : 11;
  });
  EXPECT_EQ(child, 0) << "10: wrong order, 11: the child's loop no longer wakes";

  // The parent's loop did not see the child's changes to its backend.
  async.send();
  loop.run(evcxx::Run::once);
  EXPECT_EQ(order, "async ");
}

TEST(Fork, DeferredStartsStoppedAndStoppedWatchersDoNotRun) {
  Loop loop;
  int calls = 0;
  Fork watcher(loop, evcxx::deferred, [&] { ++calls; });
  EXPECT_FALSE(watcher.active());
  EXPECT_FALSE(loop.run());  // an inactive Fork does not keep the loop alive
  const int child = in_child([&] {
    loop.notify_fork();
    loop.run(evcxx::Run::nowait);
    if (calls != 0) return 10;
    watcher.start();
    loop.notify_fork();
    loop.run(evcxx::Run::nowait);
    return calls == 1 ? 0 : 11;
  });
  EXPECT_EQ(child, 0);
}

TEST(Fork, StartingAfterItsLoopIsGoneIsALogicError) {
  auto loop = std::make_unique<Loop>();
  Fork watcher(*loop, [] {});
  loop.reset();
  EXPECT_FALSE(watcher.active());
  EXPECT_THROW(watcher.start(), std::logic_error);
  EXPECT_THROW(watcher.feed(), std::logic_error);
}
