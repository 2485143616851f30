#include "evcxx/loop_pool.hpp"

#include <stdexcept>
#include <string>
#include <thread>
#include <utility>

EVCXX_BEGIN_NAMESPACE

LoopPool::LoopPool(std::size_t size, const std::string& name_prefix,
                   const LoopThread::ErrorHandler& on_error, LoopFlags flags) {
  if (size == 0) throw std::invalid_argument("evcxx: LoopPool needs at least one thread, not 0");
  const std::string longest = name_prefix + "-" + std::to_string(size - 1);
  if (longest.size() > 15) {
    throw std::invalid_argument("evcxx: LoopPool thread name \"" + longest +
                                "\" is longer than the 15 bytes Linux allows; use a shorter "
                                "name prefix");
  }
  threads_.reserve(size);
  try {
    for (std::size_t i = 0; i < size; ++i) {
      threads_.push_back(
          std::make_unique<LoopThread>(name_prefix + "-" + std::to_string(i), on_error, flags));
    }
  } catch (...) {
    stop();  // the threads already started shut down in parallel while the vector joins them
    throw;
  }
}

LoopPool::~LoopPool() {
  for (auto& thread : threads_) thread->stop_unless_finishing();
  threads_.clear();  // each destructor joins a thread that is already finishing
}

std::size_t LoopPool::default_size() noexcept {
  const unsigned cores = std::thread::hardware_concurrency();
  return cores == 0 ? 1 : cores;
}

LoopThread& LoopPool::at(std::size_t index) {
  if (index >= threads_.size()) {
    throw std::out_of_range("evcxx: LoopPool::at(" + std::to_string(index) +
                            ") is past the pool's " + std::to_string(threads_.size()) + " threads");
  }
  return *threads_[index];
}

LoopThread& LoopPool::next() noexcept {
  return *threads_[next_.fetch_add(1, std::memory_order_relaxed) % threads_.size()];
}

std::size_t LoopPool::index_for_hash(std::uint64_t hash) const noexcept {
  // splitmix64's finaliser spreads nearby keys (consecutive ids, an identity std::hash) over all
  // bits, so the modulo below sees well-mixed low bits.
  hash ^= hash >> 30;
  hash *= 0xbf58476d1ce4e5b9ULL;
  hash ^= hash >> 27;
  hash *= 0x94d049bb133111ebULL;
  hash ^= hash >> 31;
  return static_cast<std::size_t>(hash % threads_.size());
}

void LoopPool::stop() noexcept {
  for (auto& thread : threads_) thread->stop();
}

void LoopPool::stop_when_done(std::chrono::duration<double> deadline) {
  stop_when_done(LoopThread::deadline_from_now(deadline));
}

void LoopPool::stop_when_done(std::chrono::steady_clock::time_point deadline) noexcept {
  for (auto& thread : threads_) thread->stop_when_done(deadline);
}

bool LoopPool::join_when_done(std::chrono::duration<double> deadline) {
  for (auto& thread : threads_) thread->require_not_loop_thread("LoopPool::join_when_done()");
  stop_when_done(deadline);
  join();
  return ended_when_done();
}

void LoopPool::join() {
  // From one of the pool's own threads, throw before joining any: the others may never end.
  for (auto& thread : threads_) thread->require_not_loop_thread("LoopPool::join()");
  for (auto& thread : threads_) thread->join();
}

bool LoopPool::ended_when_done() const noexcept {
  for (const auto& thread : threads_) {
    if (!thread->ended_when_done()) return false;
  }
  return true;
}

EVCXX_END_NAMESPACE
