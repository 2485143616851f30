// LoopThread: a Loop on its own thread; tasks, futures, naming, shutdown and error handling.
#include <gtest/gtest.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <evcxx/async.hpp>
#include <evcxx/loop_thread.hpp>
#include <evcxx/timer.hpp>
#include <evcxx/waitable_event.hpp>
#include "c_client.hpp"
#include "support.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <fstream>
#include <future>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;

constexpr auto kGenerous = 60s;  // the machine is loaded: bounds, not timings

std::string thread_name() {
  std::array<char, 32> name{};
  pthread_getname_np(pthread_self(), name.data(), name.size());
  return name.data();
}

// Waits until the loop thread is done with f's task (its promise destroyed too), so that the
// exception the future holds is released by this thread alone. (The reference count libstdc++
// keeps on an exception is invisible to ThreadSanitizer, which would otherwise report the other
// thread's release racing with our reads.)
template <class T>
std::future<T>& settled(evcxx::LoopThread& thread, std::future<T>& f) {
  f.wait();
  thread.submit([] {}).get();
  return f;
}

// An event that the test thread can wait on without a Loop: WaitableEvent needs one.
struct Gate {
  evcxx::Loop loop;
  evcxx::WaitableEvent event{loop};
};

TEST(LoopThread, RunsTasksOnItsOwnNamedThread) {
  evcxx::LoopThread thread("worker-1");
  EXPECT_EQ(thread.name(), "worker-1");
  EXPECT_FALSE(thread.in_loop_thread());
  auto info = thread.submit([&] {
    return std::make_tuple(std::this_thread::get_id(), thread_name(), thread.in_loop_thread());
  });
  ASSERT_EQ(info.wait_for(kGenerous), std::future_status::ready);
  const auto [id, name, in_loop] = info.get();
  EXPECT_NE(id, std::this_thread::get_id());
  EXPECT_EQ(name, "worker-1");
  EXPECT_TRUE(in_loop);
}

TEST(LoopThread, DefaultNameAndLoopFlags) {
  evcxx::LoopThread thread("", {}, evcxx::Backend::poll);
  evcxx::LoopThread named;
  EXPECT_EQ(named.name(), "evcxx-loop");
  EXPECT_EQ(named.submit([] { return thread_name(); }).get(), "evcxx-loop");
  EXPECT_EQ(thread.submit([&] { return thread.loop().backend(); }).get(), evcxx::Backend::poll);
}

TEST(LoopThread, NameLongerThanLinuxAllowsIsRejected) {
  EXPECT_NO_THROW(evcxx::LoopThread("fifteen-chars-x"));
  EXPECT_THROW(evcxx::LoopThread("sixteen-chars-xx"), std::invalid_argument);
}

TEST(LoopThread, SubmitDeliversResultsAndExceptions) {
  evcxx::LoopThread thread;
  EXPECT_EQ(thread.submit([] { return 6 * 7; }).get(), 42);
  auto owned = thread.submit([] { return std::make_unique<std::string>("moved"); });
  EXPECT_EQ(*owned.get(), "moved");
  int side_effect = 0;
  thread.submit([&] { side_effect = 1; }).get();
  EXPECT_EQ(side_effect, 1);
  auto failed = thread.submit([]() -> int { throw std::out_of_range("no such thing"); });
  try {
    settled(thread, failed).get();
    ADD_FAILURE() << "the future should hold the task's exception";
  } catch (const std::out_of_range& e) {
    EXPECT_STREQ(e.what(), "no such thing");
  }
  const std::function<int()> function = [] { return 11; };
  EXPECT_EQ(thread.submit(function).get(), 11);
  std::function<void()> nothing = [&side_effect] { side_effect = 2; };
  thread.submit(nothing).get();
  EXPECT_EQ(side_effect, 2);
  // A move-only callable with a move-only capture.
  auto data = std::make_unique<int>(5);
  EXPECT_EQ(thread.submit([d = std::move(data)] { return *d + 1; }).get(), 6);
}

TEST(LoopThread, PostKeepsFifoPerProducer) {
  constexpr int kProducers = 3;
  constexpr int kPerProducer = 10000;
  std::vector<int> next(kProducers, 0);  // loop thread only
  std::atomic<int> out_of_order{0};
  {
    evcxx::LoopThread thread;
    std::vector<std::thread> producers;
    for (int p = 0; p < kProducers; ++p) {
      producers.emplace_back([&, p] {
        for (int i = 0; i < kPerProducer; ++i) {
          thread.post([&, p, i] {
            if (next[p] != i) out_of_order.fetch_add(1);
            next[p] = i + 1;
          });
        }
      });
    }
    for (auto& t : producers) t.join();
  }  // destruction runs everything that was posted
  EXPECT_EQ(out_of_order.load(), 0);
  for (int p = 0; p < kProducers; ++p) EXPECT_EQ(next[p], kPerProducer);
}

TEST(LoopThread, EveryTaskPostedBeforeStopRuns) {
  constexpr int kTasks = 5000;  // more than the ring holds: some overflow
  Gate release;
  int ran = 0;
  {
    evcxx::LoopThread thread;
    thread.post([&] { release.event.wait(); });  // hold the loop so the tasks pile up
    for (int i = 0; i < kTasks; ++i) thread.post([&ran] { ++ran; });
    thread.stop();
    EXPECT_TRUE(thread.stopped());
    release.event.set();
  }
  EXPECT_EQ(ran, kTasks);
}

TEST(LoopThread, AfterStopPostThrowsTryPostFailsAndSubmitHoldsLoopStopped) {
  evcxx::LoopThread thread;
  thread.stop();
  EXPECT_THROW(thread.post([] {}), evcxx::LoopStopped);
  EXPECT_THROW(thread.post(std::function<void()>([] {})), evcxx::LoopStopped);
  EXPECT_THROW(thread.loop().post([] {}), evcxx::LoopStopped);
  EXPECT_FALSE(thread.try_post([] {}));
  auto future = thread.submit([] { return 1; });
  ASSERT_EQ(future.wait_for(0s), std::future_status::ready);
  EXPECT_THROW(future.get(), evcxx::LoopStopped);
  static_assert(std::is_base_of_v<std::logic_error, evcxx::LoopStopped>);
  thread.stop();  // idempotent
  thread.join();
  thread.join();  // a second join is a no-op
}

// As Loop::try_post: a refused task is left untouched, so that it can go to another thread.
TEST(LoopThread, ARefusedTryPostLeavesTheTaskUntouched) {
  evcxx::LoopThread stopped_thread("stopped");
  evcxx::LoopThread other("other");
  stopped_thread.stop();
  auto witness = std::make_shared<int>(42);
  auto task = [witness] { return *witness; };
  EXPECT_FALSE(stopped_thread.try_post(std::move(task)));
  EXPECT_EQ(witness.use_count(), 2) << "the refused task gave up what it captured";
  std::promise<int> ran;
  EXPECT_TRUE(other.try_post([&ran, task = std::move(task)] { ran.set_value(task()); }));
  auto result = ran.get_future();
  ASSERT_EQ(result.wait_for(kGenerous), std::future_status::ready);
  EXPECT_EQ(result.get(), 42);
}

TEST(LoopThread, PostsRacingStopEitherRunOrAreRefused) {
  constexpr int kProducers = 4;
  std::atomic<long> accepted{0};
  std::atomic<long> ran{0};
  std::atomic<int> refused_producers{0};
  {
    evcxx::LoopThread thread;
    std::atomic<int> started{0};
    std::vector<std::thread> producers;
    for (int p = 0; p < kProducers; ++p) {
      producers.emplace_back([&] {
        started.fetch_add(1);
        for (;;) {  // until stop() refuses
          if (!thread.try_post([&ran] { ran.fetch_add(1, std::memory_order_relaxed); })) {
            refused_producers.fetch_add(1);
            return;
          }
          accepted.fetch_add(1, std::memory_order_relaxed);
        }
      });
    }
    while (started.load() < kProducers || accepted.load() < 10000) std::this_thread::yield();
    thread.stop();
    for (auto& t : producers) t.join();
  }
  EXPECT_EQ(refused_producers.load(), kProducers);
  EXPECT_EQ(ran.load(), accepted.load());
}

TEST(LoopThread, ThrowingTasksGoToTheErrorHandlerAndTheThreadGoesOn) {
  std::vector<std::string> errors;  // loop thread only
  std::atomic<bool> handler_on_loop_thread{true};
  evcxx::LoopThread* self = nullptr;
  evcxx::LoopThread thread("errors", [&](std::exception_ptr error) {
    if (!self->in_loop_thread()) handler_on_loop_thread = false;
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      errors.push_back(e.what());
    }
  });
  self = &thread;
  thread.post([] { throw std::runtime_error("first"); });
  thread.post([] { throw std::logic_error("second"); });  // even in one batch, none is lost
  EXPECT_EQ(thread.submit([] { return 3; }).get(), 3);
  EXPECT_EQ(thread.submit([&] { return errors; }).get(),
            (std::vector<std::string>{"first", "second"}));
  EXPECT_TRUE(handler_on_loop_thread.load());
}

TEST(LoopThread, ThrowingWatcherCallbackIsReportedAndTheThreadGoesOn) {
  std::atomic<int> reported{0};
  evcxx::LoopThread thread("watch", [&](std::exception_ptr) { reported.fetch_add(1); });
  auto async = thread
                   .submit([&] {
                     return std::make_unique<evcxx::Async>(
                         thread.loop(), [] { throw std::runtime_error("callback failed"); });
                   })
                   .get();
  async->send();
  // The callback may run before or after the next task (tasks go first within an iteration), so
  // go round the loop until the report arrived.
  while (reported.load() == 0) {
    ASSERT_TRUE(thread.submit([] {}).wait_for(kGenerous) == std::future_status::ready);
  }
  EXPECT_EQ(reported.load(), 1);
  EXPECT_EQ(thread.submit([] { return 9; }).get(), 9);
  thread.submit([&] { async.reset(); }).get();  // watchers die on their loop thread
}

TEST(LoopThread, DefaultErrorHandlerWritesToStderr) {
  testing::internal::CaptureStderr();
  {
    evcxx::LoopThread thread("noisy");
    thread.post([] { throw std::runtime_error("nobody listens"); });
    thread.post([] { throw 42; });
  }
  const std::string output = testing::internal::GetCapturedStderr();
  EXPECT_NE(output.find("\"noisy\""), std::string::npos) << output;
  EXPECT_NE(output.find("nobody listens"), std::string::npos) << output;
  EXPECT_NE(output.find("not derived from std::exception"), std::string::npos) << output;
}

TEST(LoopThread, ThrowingErrorHandlerIsReportedOnStderrAndTheThreadGoesOn) {
  testing::internal::CaptureStderr();
  int after = 0;
  {
    evcxx::LoopThread thread("bad-handler",
                             [](std::exception_ptr) { throw std::runtime_error("handler broke"); });
    thread.post([] { throw std::runtime_error("task broke"); });
    after = thread.submit([] { return 1; }).get();
  }
  const std::string output = testing::internal::GetCapturedStderr();
  EXPECT_EQ(after, 1);
  EXPECT_NE(output.find("handler broke"), std::string::npos) << output;
}

TEST(LoopThread, LoopStopDoesNotEndTheThread) {
  evcxx::LoopThread thread;
  thread.submit([&] { thread.loop().stop(); }).get();
  thread.submit([&] { thread.loop().break_loop(evcxx::Break::all); }).get();
  EXPECT_EQ(thread.submit([] { return 2; }).get(), 2);
}

TEST(LoopThread, StopFromALoopTask) {
  Gate posted;
  Gate stopped;
  evcxx::LoopThread thread;
  int later = 0;
  thread.post([&] { posted.event.wait(); });  // both posts below come before the stop()
  thread.post([&] {
    thread.stop();
    stopped.event.set();
  });
  thread.post([&] { later = 1; });  // accepted before the stop, so it runs
  posted.event.set();
  ASSERT_TRUE(stopped.event.wait_for(kGenerous));
  EXPECT_THROW(thread.post([] {}), evcxx::LoopStopped);
  thread.join();
  EXPECT_EQ(later, 1);
}

TEST(LoopThread, JoinMisuseThrowsLogicError) {
  evcxx::LoopThread thread;
  EXPECT_THROW(thread.join(), std::logic_error);  // before stop(): it would wait forever
  auto from_inside = thread.submit([&] {
    thread.stop();
    thread.join();  // on its own thread: it would deadlock
  });
  EXPECT_THROW(settled(thread, from_inside).get(), std::logic_error);
  EXPECT_NO_THROW(thread.join());
}

// True once thread `tid` of this process sleeps in the kernel (bounded by kGenerous).
bool becomes_blocked(pid_t tid) {
  const std::string path = "/proc/self/task/" + std::to_string(tid) + "/stat";
  const auto deadline = std::chrono::steady_clock::now() + kGenerous;
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream stat(path);
    std::string line;
    std::getline(stat, line);
    const auto end_of_name = line.rfind(')');  // "tid (name) S ...": the state follows the name
    if (end_of_name != std::string::npos && line.size() > end_of_name + 2 &&
        line[end_of_name + 2] == 'S') {
      return true;
    }
    std::this_thread::yield();
  }
  return false;
}

// join() on the loop thread throws even while another thread is inside join(): it used to wait
// for that thread's lock first, which is held until the loop thread ends (a deadlock).
TEST(LoopThread, JoinOnTheLoopThreadThrowsWhileAnotherThreadJoins) {
  // Left to the threads (never freed) if they deadlock, so that the failure is not a crash.
  struct Scene {
    evcxx::LoopThread thread{"joined-twice"};
    Gate go;
    std::atomic<pid_t> joiner{0};
    std::promise<void> joined;
  };
  auto* scene = new Scene;
  auto inside = scene->thread.submit([scene] {
    scene->go.event.wait();
    scene->thread.join();  // throws: this is the loop thread
  });
  scene->thread.stop();
  std::thread([scene] {
    scene->joiner.store(gettid(), std::memory_order_release);
    scene->thread.join();
    scene->joined.set_value();
  }).detach();
  while (scene->joiner.load(std::memory_order_acquire) == 0) std::this_thread::yield();
  ASSERT_TRUE(becomes_blocked(scene->joiner.load())) << "the joiner never blocked in join()";
  scene->go.event.set();
  auto joined = scene->joined.get_future();
  ASSERT_EQ(joined.wait_for(20s), std::future_status::ready)
      << "join() on the loop thread deadlocked with the other thread's join()";
  EXPECT_THROW(inside.get(), std::logic_error);
  delete scene;
}

TEST(LoopThread, DestroyedByItsOwnTaskFinishesTheAcceptedTasksThenExits) {
  auto thread = std::make_unique<evcxx::LoopThread>("self-destruct");
  std::promise<pid_t> tid;
  std::promise<int> last;
  Gate posted;  // every post() has returned before the destruction can start
  thread->post([&] {
    tid.set_value(gettid());
    posted.event.wait();
  });
  thread->post([&thread] { thread.reset(); });   // ~LoopThread on its own thread
  thread->post([&last] { last.set_value(7); });  // accepted before the destruction
  posted.event.set();
  auto last_value = last.get_future();
  ASSERT_EQ(last_value.wait_for(kGenerous), std::future_status::ready);
  EXPECT_EQ(last_value.get(), 7);
  EXPECT_TRUE(thread == nullptr);
  // The detached thread ends on its own; wait (bounded) until the kernel has reaped it.
  const std::string task = "/proc/self/task/" + std::to_string(tid.get_future().get());
  const auto deadline = std::chrono::steady_clock::now() + kGenerous;
  struct stat info {};
  while (::stat(task.c_str(), &info) == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
  }
  EXPECT_NE(::stat(task.c_str(), &info), 0) << "the loop thread did not exit";
}

TEST(LoopThread, WatchersOutlivingTheThreadAreDetachedSafely) {
  std::unique_ptr<evcxx::Async> async;
  {
    evcxx::LoopThread thread;
    async =
        thread.submit([&] { return std::make_unique<evcxx::Async>(thread.loop(), [] {}); }).get();
  }  // the loop ends with the Async still active; ~Loop detaches it
  EXPECT_FALSE(async->attached());
  EXPECT_FALSE(async->active());
  async->send();  // still safe
  EXPECT_THROW(async->start(), std::logic_error);
}

}  // namespace

namespace {

using evcxx_test::cc_command;
using evcxx_test::cc_connect;
using evcxx_test::cc_context;
using evcxx_test::cc_disconnect;
using evcxx_test::cc_free;
using evcxx_test::CPeer;
using evcxx_test::PeerGate;

// What the C client reported, written by its callbacks on the loop thread only: plain fields,
// read by the test thread after join() (ThreadSanitizer checks that join() publishes them).
struct ClientLog {
  std::vector<std::string> replies;
  int disconnect_status = 1;  // CC_OK (0) or an error once on_disconnect ran
  bool disconnected = false;
};

void log_reply(cc_context*, const char* reply, void* data) {
  static_cast<ClientLog*>(data)->replies.emplace_back(reply);
}

void log_disconnect(cc_context*, int status, void* data) {
  auto* log = static_cast<ClientLog*>(data);
  log->disconnect_status = status;
  log->disconnected = true;
}

// A C client on the loop thread, as a library like hiredis runs it: created by a task, its raw
// watchers started on the loop's ev_loop.
cc_context* connect_on(evcxx::LoopThread& thread, int fd, ClientLog& log, double timeout = 60.0) {
  return thread
      .submit([&thread, fd, &log, timeout] {
        return cc_connect(thread.loop().native(), fd, timeout, log_reply, log_disconnect, &log);
      })
      .get();
}

TEST(LoopThreadShutdown, StopWhenDoneLetsACLibraryFinishItsInFlightReplies) {
  evcxx_test::SocketPair pair;
  PeerGate go;
  CPeer peer(pair.b.get(), go);
  ClientLog log;
  evcxx::LoopThread thread("c-client");
  cc_context* client = connect_on(thread, pair.a.get(), log);
  ASSERT_NE(client, nullptr);
  thread.post([client] { cc_command(client, "GET a"); });
  thread.post([client] { cc_command(client, "GET b"); });
  thread.post([client] { cc_disconnect(client); });
  thread.stop_when_done(kGenerous);
  go.open();  // the replies are in flight only now, after the door closed
  thread.join();
  EXPECT_TRUE(thread.ended_when_done());
  EXPECT_TRUE(log.disconnected);
  EXPECT_EQ(log.disconnect_status, evcxx_test::CC_OK);
  EXPECT_EQ(log.replies, (std::vector<std::string>{"re:GET a", "re:GET b", "re:QUIT"}));
  // The thread has ended but the Loop lives with the LoopThread: freeing the context stops its
  // (already stopped) raw watchers on an ev_loop that still exists.
  cc_free(client);
  EXPECT_FALSE(thread.loop().run(evcxx::Run::nowait));  // no reference left behind
}

TEST(LoopThreadShutdown, JoinWhenDoneTellsTheLoopFinishedInTime) {
  evcxx_test::SocketPair pair;
  PeerGate go;
  go.open();
  CPeer peer(pair.b.get(), go);
  ClientLog log;
  evcxx::LoopThread thread("c-client");
  cc_context* client = connect_on(thread, pair.a.get(), log);
  thread.post([client] { cc_disconnect(client); });
  EXPECT_TRUE(thread.join_when_done(kGenerous));
  EXPECT_TRUE(log.disconnected);
  EXPECT_EQ(log.replies, std::vector<std::string>{"re:QUIT"});
  cc_free(client);
}

TEST(LoopThreadShutdown, StopAbandonsTheCLibrarysActiveWatchers) {
  evcxx_test::SocketPair pair;
  PeerGate go;
  CPeer peer(pair.b.get(), go);
  ClientLog log;
  evcxx::LoopThread thread("c-client");
  cc_context* client = connect_on(thread, pair.a.get(), log);
  thread.post([client] { cc_disconnect(client); });
  thread.stop();
  thread.join();
  go.open();  // the reply comes only after the thread has ended: nobody reads it
  peer.join();
  EXPECT_FALSE(thread.ended_when_done());
  EXPECT_FALSE(log.disconnected);
  EXPECT_TRUE(log.replies.empty());
  EXPECT_TRUE(ev_is_active(&client->read_w));  // still started on the (still existing) loop
  cc_free(client);                             // safe from this thread: the loop is not running
}

TEST(LoopThreadShutdown, StopWhenDoneEndsAtTheDeadlineWithAWatcherThatNeverStops) {
  evcxx_test::SocketPair pair;
  PeerGate go;
  CPeer peer(pair.b.get(), go, CPeer::Mode::silent);
  ClientLog log;
  evcxx::LoopThread thread("c-client");
  cc_context* client = connect_on(thread, pair.a.get(), log);
  thread.post([client] { cc_disconnect(client); });  // never answered
  constexpr auto kDeadline = 200ms;
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(thread.join_when_done(kDeadline));
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_GE(took, kDeadline - 10ms);  // the loop was not done: it ran up to the deadline
  EXPECT_LT(took, kDeadline + kGenerous);
  EXPECT_FALSE(log.disconnected);
  EXPECT_TRUE(ev_is_active(&client->read_w));
  cc_free(client);
  // The thread and its deadline gave back every reference they took: with the C watchers
  // stopped, nothing is left holding the (still existing, no longer running) loop.
  EXPECT_FALSE(thread.loop().run(evcxx::Run::nowait));
}

TEST(LoopThreadShutdown, StopWhenDoneReturnsAtOnceAndStopCutsItShort) {
  evcxx_test::SocketPair pair;
  PeerGate go;
  CPeer peer(pair.b.get(), go, CPeer::Mode::silent);
  ClientLog log;
  evcxx::LoopThread thread("c-client");
  cc_context* client = connect_on(thread, pair.a.get(), log);
  thread.post([client] { cc_disconnect(client); });
  thread.stop_when_done(std::chrono::duration<double>::max());  // no deadline at all
  thread.stop_when_done(0s);                                    // only the first call counts
  EXPECT_TRUE(thread.stopped());
  EXPECT_FALSE(thread.try_post([] {}));
  EXPECT_THROW(thread.submit([] {}).get(), evcxx::LoopStopped);
  // The thread is still running for the client (the peer saw the request that keeps it so).
  const auto until = std::chrono::steady_clock::now() + kGenerous;
  while (peer.requests() < 1 && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(1ms);
  }
  ASSERT_EQ(peer.requests(), 1);
  thread.stop();
  EXPECT_TRUE(evcxx_test::completes_within(kGenerous, [&] { thread.join(); }));
  EXPECT_FALSE(thread.ended_when_done());
  EXPECT_FALSE(log.disconnected);
  cc_free(client);
}

TEST(LoopThreadShutdown, StopWhenDoneWithNothingActiveEndsOnceTheTasksRan) {
  evcxx::LoopThread thread;
  int ran = 0;  // written by the tasks, read after join: join() publishes it
  for (int i = 0; i < 100; ++i) thread.post([&ran] { ++ran; });
  EXPECT_TRUE(thread.join_when_done(kGenerous));
  EXPECT_EQ(ran, 100);
}

TEST(LoopThreadShutdown, StopWhenDoneWaitsForEvcxxWatchersAndUnrefCountsAsDone) {
  evcxx::LoopThread thread;
  std::unique_ptr<evcxx::Timer> timer;
  std::unique_ptr<evcxx::Async> unreffed;
  int fired = 0;
  thread
      .submit([&] {
        timer = std::make_unique<evcxx::Timer>(thread.loop(), 20ms, [&] { ++fired; });
        unreffed = std::make_unique<evcxx::Async>(thread.loop(), [] {});
        thread.loop().unref();  // the Async does not keep the loop going
      })
      .get();
  EXPECT_TRUE(thread.join_when_done(kGenerous));
  EXPECT_EQ(fired, 1);  // the one-shot timer fired, then nothing held the loop
  EXPECT_TRUE(unreffed->active());
  thread.loop().ref();  // balance it before the Async is destroyed
  unreffed.reset();
  timer.reset();
}

TEST(LoopThreadShutdown, StopWhenDoneAfterStopChangesNothing) {
  evcxx::LoopThread thread;
  auto timer =
      thread.submit([&] { return std::make_unique<evcxx::Timer>(thread.loop(), 1h, [] {}); }).get();
  thread.stop();
  thread.stop_when_done(kGenerous);
  EXPECT_TRUE(evcxx_test::completes_within(kGenerous, [&] { thread.join(); }));
  EXPECT_FALSE(thread.ended_when_done());
}

TEST(LoopThreadShutdown, DestructionWaitsForAStopWhenDoneInProgress) {
  int fired = 0;
  std::unique_ptr<evcxx::Timer> timer;
  {
    evcxx::LoopThread thread;
    thread
        .submit(
            [&] { timer = std::make_unique<evcxx::Timer>(thread.loop(), 20ms, [&] { ++fired; }); })
        .get();
    thread.stop_when_done(kGenerous);
  }  // ~LoopThread lets the timer fire rather than cutting the loop short
  EXPECT_EQ(fired, 1);
}

TEST(LoopThreadShutdown, BadDeadlinesAndJoinWhenDoneOnTheLoopThreadAreRejected) {
  evcxx::LoopThread thread;
  EXPECT_THROW(thread.stop_when_done(-1s), std::invalid_argument);
  EXPECT_THROW(thread.stop_when_done(std::chrono::duration<double>(std::nan(""))),
               std::invalid_argument);
  EXPECT_FALSE(thread.stopped());  // nothing was requested
  auto inside = thread.submit([&] { return thread.join_when_done(1s); });
  EXPECT_THROW(settled(thread, inside).get(), std::logic_error);
  EXPECT_FALSE(thread.stopped());
  thread.submit([&] { thread.stop_when_done(kGenerous); }).get();  // fine on the loop thread
  EXPECT_TRUE(evcxx_test::completes_within(kGenerous, [&] { thread.join(); }));
  EXPECT_TRUE(thread.ended_when_done());
}

TEST(LoopThreadShutdown, ADeadlineAlreadyPassedStillLetsAnIdleLoopEndAsDone) {
  evcxx::LoopThread past;
  past.stop_when_done(std::chrono::steady_clock::time_point::min());
  EXPECT_TRUE(past.stopped());
  past.join();
  EXPECT_TRUE(past.ended_when_done());  // nothing was active: done, even at the deadline
  evcxx::LoopThread zero;
  EXPECT_TRUE(zero.join_when_done(0s));
}

TEST(LoopThreadShutdown, PostsRacingStopWhenDoneEitherRunOrAreRefused) {
  constexpr int kProducers = 4;
  std::atomic<long> accepted{0};
  std::atomic<long> ran{0};
  std::atomic<long> submitted{0};
  std::atomic<long> refused{0};
  evcxx::LoopThread thread;
  std::atomic<int> started{0};
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      started.fetch_add(1);
      for (;;) {  // until the door closes
        if (p % 2 == 0) {
          if (!thread.try_post([&ran] { ran.fetch_add(1, std::memory_order_relaxed); })) break;
          accepted.fetch_add(1, std::memory_order_relaxed);
        } else {
          auto f = thread.submit([] { return 1; });
          if (f.wait_for(kGenerous) != std::future_status::ready) {
            ADD_FAILURE() << "a future never became ready";
            return;
          }
          try {
            submitted.fetch_add(f.get(), std::memory_order_relaxed);
          } catch (const evcxx::LoopStopped&) {
            break;
          }
        }
      }
      refused.fetch_add(1);
    });
  }
  // Both kinds of producer are under way before the door closes (a submit round trip is far
  // slower than a try_post).
  while (started.load() < kProducers || accepted.load() < 1000 || submitted.load() == 0) {
    std::this_thread::yield();
  }
  thread.stop_when_done(kGenerous);
  for (auto& t : producers) t.join();
  thread.join();
  EXPECT_TRUE(thread.ended_when_done());
  EXPECT_EQ(refused.load(), kProducers);
  EXPECT_EQ(ran.load(), accepted.load());
  EXPECT_GT(submitted.load(), 0);
}

// The memory-ordering promise for submit(): a plain payload written before submit() is seen by
// the task, and the task's plain writes are seen after get() (ThreadSanitizer checks both).
TEST(LoopThreadShutdown, SubmitPublishesPlainWritesBothWays) {
  evcxx::LoopThread thread;
  for (int round = 0; round < 200; ++round) {
    std::vector<int> input(64, round);
    std::string output;
    auto f = thread.submit([&] {
      long sum = 0;
      for (int v : input) sum += v;
      output = std::to_string(sum);
      return sum;
    });
    ASSERT_EQ(f.wait_for(kGenerous), std::future_status::ready);
    EXPECT_EQ(f.get(), 64L * round);
    EXPECT_EQ(output, std::to_string(64L * round));
  }
}

}  // namespace
