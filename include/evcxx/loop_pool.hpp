#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "evcxx/export.hpp"
#include "evcxx/loop_thread.hpp"

EVCXX_BEGIN_NAMESPACE

/// N LoopThreads, for servers that spread connections over cores.
///
/// An acceptor hands each new connection to next() (round-robin) or to for_key(key) (the same key
/// always reaches the same loop, for state that must stay on one thread).
///
/// Shutdown: as for LoopThread, stop() ends every thread once its accepted tasks have run,
/// abandoning active watchers; stop_when_done(deadline) lets every loop first finish on its own
/// (every watcher stopped, as C libraries do after their disconnect callbacks) up to one deadline
/// shared by all. Pick stop() to end now, stop_when_done() / join_when_done() when libraries or
/// connections on the loops have work in flight that must finish (see LoopThread).
///
/// Memory ordering: as for each LoopThread (see loop_thread.hpp). In particular everything every
/// loop thread did is visible to a thread once join() or join_when_done() returned on it.
///
/// Thread-safety: every member is for ANY thread.
///
/// Lifetime: the threads stop and are joined on destruction.
class EVCXX_API LoopPool {
 public:
  /// Starts `size` LoopThreads named `<name_prefix>-<index>`, each reporting task exceptions to
  /// on_error and creating its Loop with `flags` (see LoopThread).
  /// Throws: std::invalid_argument for size 0 or a name longer than 15 bytes; what LoopThread's
  /// constructor throws (then the threads already started are stopped and joined).
  explicit LoopPool(std::size_t size = default_size(),
                    const std::string& name_prefix = "evcxx-pool",
                    const LoopThread::ErrorHandler& on_error = {}, LoopFlags flags = LoopFlags());
  /// Stops every thread (unless stop_when_done() was called: that goes on, up to its deadline),
  /// then joins them all (they shut down in parallel).
  ~LoopPool();

  /// Not copyable (nor movable).
  LoopPool(const LoopPool&) = delete;
  /// Not copyable (nor movable).
  LoopPool& operator=(const LoopPool&) = delete;

  /// std::thread::hardware_concurrency(), or 1 when unknown.
  static std::size_t default_size() noexcept;

  /// The number of threads.
  std::size_t size() const noexcept { return threads_.size(); }
  /// The thread at index, which must be below size().
  LoopThread& operator[](std::size_t index) noexcept { return *threads_[index]; }
  /// The thread at index.
  /// Throws: std::out_of_range past size().
  LoopThread& at(std::size_t index);

  /// Round-robin over the threads; one relaxed atomic increment.
  LoopThread& next() noexcept;

  /// The thread for this key: stable for the life of the pool.
  /// Integral and enum keys are mixed directly (so the mapping is also the same in every process
  /// with the same size()); other keys go through std::hash<Key> first.
  template <class Key>
  LoopThread& for_key(const Key& key) noexcept {
    return *threads_[index_for(key)];
  }
  /// The index of for_key(key)'s thread.
  template <class Key>
  std::size_t index_for(const Key& key) const noexcept {
    if constexpr (std::is_integral_v<Key> || std::is_enum_v<Key>) {
      return index_for_hash(static_cast<std::uint64_t>(key));
    } else {
      return index_for_hash(static_cast<std::uint64_t>(std::hash<Key>{}(key)));
    }
  }

  /// stop() on every thread; returns at once. Cuts a stop_when_done() in progress short.
  void stop() noexcept;
  /// LoopThread::stop_when_done() on every thread with one deadline for all (a duration from
  /// now); returns at once.
  /// Throws: std::invalid_argument for a negative or NaN duration.
  void stop_when_done(std::chrono::duration<double> deadline);
  /// stop_when_done() with the deadline as a steady_clock time point.
  void stop_when_done(std::chrono::steady_clock::time_point deadline) noexcept;
  /// stop_when_done(deadline), then join(); true when every loop was done on its own before the
  /// deadline.
  /// Throws: as stop_when_done(); std::logic_error, with nothing requested, on one of the pool's
  /// own threads.
  bool join_when_done(std::chrono::duration<double> deadline);
  /// Waits for every thread.
  /// Throws: std::logic_error as LoopThread::join() (call stop() or stop_when_done() first, not
  /// from one of the pool's own threads).
  void join();
  /// Every thread ended because its loop was done after stop_when_done() (see LoopThread).
  bool ended_when_done() const noexcept;

 private:
  std::size_t index_for_hash(std::uint64_t hash) const noexcept;

  std::vector<std::unique_ptr<LoopThread>> threads_;
  std::atomic<std::size_t> next_{0};
};

EVCXX_END_NAMESPACE
