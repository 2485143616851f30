// LoopPool: N LoopThreads with round-robin and keyed dispatch.
#include <gtest/gtest.h>
#include <pthread.h>

#include <evcxx/error.hpp>
#include <evcxx/loop_pool.hpp>
#include <evcxx/timer.hpp>
#include <evcxx/waitable_event.hpp>
#include "c_client.hpp"
#include "support.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

std::string thread_name() {
  std::array<char, 32> name{};
  pthread_getname_np(pthread_self(), name.data(), name.size());
  return name.data();
}

TEST(LoopPool, StartsNamedThreadsOnePerLoop) {
  evcxx::LoopPool pool(3, "pool");
  ASSERT_EQ(pool.size(), 3u);
  std::set<std::thread::id> ids;
  for (std::size_t i = 0; i < pool.size(); ++i) {
    EXPECT_EQ(pool[i].name(), "pool-" + std::to_string(i));
    EXPECT_EQ(pool.at(i).submit([] { return thread_name(); }).get(), "pool-" + std::to_string(i));
    ids.insert(pool[i].submit([] { return std::this_thread::get_id(); }).get());
  }
  EXPECT_EQ(ids.size(), 3u);
  EXPECT_EQ(ids.count(std::this_thread::get_id()), 0u);
  EXPECT_THROW(pool.at(3), std::out_of_range);
}

TEST(LoopPool, DefaultSizeIsTheNumberOfCores) {
  evcxx::LoopPool pool;
  EXPECT_EQ(pool.size(), evcxx::LoopPool::default_size());
  EXPECT_GE(pool.size(), 1u);
}

TEST(LoopPool, BadArgumentsAreRejected) {
  EXPECT_THROW(evcxx::LoopPool(0), std::invalid_argument);
  EXPECT_THROW(evcxx::LoopPool(2, "much-too-long-x"), std::invalid_argument);  // "...-1" is 17
  EXPECT_NO_THROW(evcxx::LoopPool(10, "thirteen-char"));                       // "...-9" is 15
  EXPECT_THROW(evcxx::LoopPool(11, "thirteen-char"), std::invalid_argument);   // "...-10" is 16
}

TEST(LoopPool, EveryLoopIsCreatedWithTheGivenFlags) {
  evcxx::LoopPool pool(2, "flags", {}, evcxx::LoopFlags(evcxx::Backend::poll));
  for (std::size_t i = 0; i < pool.size(); ++i) {
    EXPECT_EQ(pool[i].submit([&] { return pool[i].loop().backend(); }).get(), evcxx::Backend::poll);
  }
  // Flags no loop can be made with: the constructor throws and leaves no thread running.
  EXPECT_THROW(evcxx::LoopPool(2, "none", {}, evcxx::LoopFlags(evcxx::Backend::kqueue)),
               evcxx::Error);
}

TEST(LoopPool, NextGoesRoundRobin) {
  evcxx::LoopPool pool(4);
  std::vector<evcxx::LoopThread*> order;
  for (int i = 0; i < 12; ++i) order.push_back(&pool.next());
  std::size_t start = 0;
  while (&pool[start] != order[0]) ++start;
  for (std::size_t i = 0; i < order.size(); ++i) EXPECT_EQ(order[i], &pool[(start + i) % 4]);
  std::set<evcxx::LoopThread*> distinct(order.begin(), order.begin() + 4);
  EXPECT_EQ(distinct.size(), 4u);
}

TEST(LoopPool, ForKeyIsStableAndSpreads) {
  evcxx::LoopPool pool(4);
  evcxx::LoopPool twin(4);
  std::vector<int> per_thread(4, 0);
  for (std::uint64_t key = 0; key < 4000; ++key) {
    const std::size_t index = pool.index_for(key);
    ASSERT_LT(index, 4u);
    EXPECT_EQ(&pool.for_key(key), &pool[index]);
    EXPECT_EQ(pool.index_for(key), index);  // the same key, the same loop
    EXPECT_EQ(twin.index_for(key), index);  // and the same mapping in an equal pool
    ++per_thread[index];
  }
  for (int count : per_thread) EXPECT_GT(count, 700);  // roughly 1000 each: consecutive ids spread
  const std::string name = "client-17";
  EXPECT_EQ(&pool.for_key(name), &pool.for_key(std::string("client-17")));
  EXPECT_EQ(pool.index_for(-5), pool.index_for(-5));
}

TEST(LoopPool, KeyedTasksForOneKeyStayInOrderOnOneThread) {
  evcxx::LoopPool pool(3);
  constexpr int kTasks = 3000;
  std::vector<std::vector<int>> seen(3);  // each written only by its own loop thread
  std::atomic<int> wrong_thread{0};
  for (int i = 0; i < kTasks; ++i) {
    const int key = i % 7;
    const std::size_t index = pool.index_for(key);
    pool.for_key(key).post([&, index, i] {
      if (!pool[index].in_loop_thread()) wrong_thread.fetch_add(1);
      seen[index].push_back(i);
    });
  }
  pool.stop();
  pool.join();
  EXPECT_EQ(wrong_thread.load(), 0);
  std::size_t total = 0;
  for (const auto& s : seen) {
    total += s.size();
    for (std::size_t j = 1; j < s.size(); ++j) EXPECT_LT(s[j - 1], s[j]);
  }
  EXPECT_EQ(total, static_cast<std::size_t>(kTasks));
}

TEST(LoopPool, StopRefusesNewWorkAndJoinMisuseThrows) {
  evcxx::LoopPool pool(2);
  auto from_inside = pool[0].submit([&] { pool.join(); });
  from_inside.wait();
  pool[0].submit([] {}).get();  // its task and promise are gone: see settled() in loop_thread_test
  EXPECT_THROW(from_inside.get(), std::logic_error);  // before stop(), and on a pool thread
  pool.stop();
  EXPECT_THROW(pool.next().post([] {}), evcxx::LoopStopped);
  EXPECT_FALSE(pool.for_key(1).try_post([] {}));
  pool.join();
}

// join() from the pool's second thread throws at once, before it would wait for the first one
// (which here cannot end until the test lets it).
TEST(LoopPool, JoinFromAPoolThreadThrowsBeforeJoiningTheOthers) {
  evcxx::LoopPool pool(2);
  evcxx::WaitableEvent release_first;
  evcxx::WaitableEvent stopped;
  pool[0].post([&] { release_first.wait(); });
  auto from_second = pool[1].submit([&] {
    stopped.wait();
    pool.join();
  });
  pool.stop();
  stopped.set();
  const bool threw_at_once =
      from_second.wait_for(std::chrono::seconds(20)) == std::future_status::ready;
  release_first.set();
  EXPECT_TRUE(threw_at_once) << "join() on a pool thread waited for another pool thread first";
  EXPECT_THROW(from_second.get(), std::logic_error);
  pool.join();
}

TEST(LoopPool, DestructionRunsQueuedTasks) {
  std::atomic<int> ran{0};
  {
    evcxx::LoopPool pool(3);
    for (int i = 0; i < 3000; ++i) pool.next().post([&ran] { ran.fetch_add(1); });
  }
  EXPECT_EQ(ran.load(), 3000);
}

using namespace std::chrono_literals;
constexpr auto kGenerous = 60s;  // the machine is loaded: bounds, not timings

// One C-style client per loop (see c_client.hpp), each with its own peer thread.
struct Connection {
  evcxx_test::SocketPair pair;
  evcxx_test::PeerGate go;
  std::unique_ptr<evcxx_test::CPeer> peer;
  evcxx_test::cc_context* client = nullptr;
  int replies = 0;  // the client's callbacks (loop thread); read after join()
  int disconnect_status = 1;
  bool disconnected = false;

  Connection(evcxx::LoopThread& thread, evcxx_test::CPeer::Mode mode) {
    peer = std::make_unique<evcxx_test::CPeer>(pair.b.get(), go, mode);
    client = thread
                 .submit([&] {
                   return evcxx_test::cc_connect(
                       thread.loop().native(), pair.a.get(), 60.0,
                       [](evcxx_test::cc_context*, const char*, void* self) {
                         ++static_cast<Connection*>(self)->replies;
                       },
                       [](evcxx_test::cc_context*, int status, void* self) {
                         static_cast<Connection*>(self)->disconnect_status = status;
                         static_cast<Connection*>(self)->disconnected = true;
                       },
                       this);
                 })
                 .get();
    evcxx_test::cc_context* c = client;
    thread.post([c] { evcxx_test::cc_command(c, "GET x"); });
    thread.post([c] { evcxx_test::cc_disconnect(c); });
  }
  ~Connection() {
    if (client != nullptr) evcxx_test::cc_free(client);  // after join: the loops still exist
  }
};

TEST(LoopPoolShutdown, StopWhenDoneLetsEveryLoopFinishItsCLibrarysReplies) {
  constexpr std::size_t kLoops = 3;
  std::vector<std::unique_ptr<Connection>> connections;
  evcxx::LoopPool pool(kLoops, "graceful");
  for (std::size_t i = 0; i < kLoops; ++i) {
    connections.push_back(
        std::make_unique<Connection>(pool[i], evcxx_test::CPeer::Mode::answering));
  }
  pool.stop_when_done(kGenerous);
  for (auto& c : connections) c->go.open();  // the replies are in flight only now
  pool.join();
  EXPECT_TRUE(pool.ended_when_done());
  for (auto& c : connections) {
    EXPECT_TRUE(c->disconnected);
    EXPECT_EQ(c->disconnect_status, evcxx_test::CC_OK);
    EXPECT_EQ(c->replies, 2);
  }
  connections.clear();  // frees the contexts while the pool's loops exist
}

TEST(LoopPoolShutdown, OneDeadlineForAllEndsTheLoopsThatAreNotDone) {
  evcxx::LoopPool pool(3, "deadline");
  Connection stuck0(pool[0], evcxx_test::CPeer::Mode::silent);
  Connection stuck1(pool[1], evcxx_test::CPeer::Mode::silent);
  Connection done(pool[2], evcxx_test::CPeer::Mode::answering);
  done.go.open();
  constexpr auto kDeadline = 200ms;
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(pool.join_when_done(kDeadline));
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_GE(took, kDeadline - 10ms);
  EXPECT_LT(took, kDeadline + kGenerous);
  EXPECT_FALSE(pool[0].ended_when_done());
  EXPECT_FALSE(pool[1].ended_when_done());
  EXPECT_TRUE(pool[2].ended_when_done());
  EXPECT_TRUE(done.disconnected);
  EXPECT_FALSE(stuck0.disconnected);
  EXPECT_FALSE(stuck1.disconnected);
}

TEST(LoopPoolShutdown, DestructionWaitsForAStopWhenDoneInProgress) {
  std::atomic<int> fired{0};
  std::vector<std::unique_ptr<evcxx::Timer>> timers(2);
  {
    evcxx::LoopPool pool(2, "dtor");
    for (std::size_t i = 0; i < 2; ++i) {
      pool[i]
          .submit([&, i] {
            timers[i] =
                std::make_unique<evcxx::Timer>(pool[i].loop(), 20ms, [&] { fired.fetch_add(1); });
          })
          .get();
    }
    pool.stop_when_done(kGenerous);
  }  // ~LoopPool lets both timers fire
  EXPECT_EQ(fired.load(), 2);
}

TEST(LoopPoolShutdown, JoinWhenDoneOnAPoolThreadIsALogicErrorAndRequestsNothing) {
  evcxx::LoopPool pool(2, "misuse");
  auto inside = pool[1].submit([&] { return pool.join_when_done(1s); });
  inside.wait();
  pool[1].submit([] {}).get();  // its task and promise are gone (see settled() in loop_thread_test)
  EXPECT_THROW(inside.get(), std::logic_error);
  EXPECT_FALSE(pool[0].stopped());
  EXPECT_FALSE(pool[1].stopped());
  EXPECT_THROW(pool.stop_when_done(-1s), std::invalid_argument);
  EXPECT_TRUE(pool.join_when_done(kGenerous));
}

}  // namespace
