// LoopThread: a Loop on its own thread; tasks, futures, naming, shutdown and error handling.
#include <gtest/gtest.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <evcxx/async.hpp>
#include <evcxx/loop_thread.hpp>
#include <evcxx/waitable_event.hpp>

#include <array>
#include <atomic>
#include <chrono>
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
