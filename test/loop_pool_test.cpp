// LoopPool: N LoopThreads with round-robin and keyed dispatch.
#include <gtest/gtest.h>
#include <pthread.h>

#include <evcxx/loop_pool.hpp>

#include <array>
#include <atomic>
#include <future>
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

TEST(LoopPool, DestructionRunsQueuedTasks) {
  std::atomic<int> ran{0};
  {
    evcxx::LoopPool pool(3);
    for (int i = 0; i < 3000; ++i) pool.next().post([&ran] { ran.fetch_add(1); });
  }
  EXPECT_EQ(ran.load(), 3000);
}

}  // namespace
