#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>

#include "evcxx/loop.hpp"

namespace evcxx::detail {

// The queue behind Loop::post(): many producers on any thread, one consumer (the loop thread).
//
// Positions. Every task gets a position from one counter, `tail_`: a producer claims the next
// one with a single CAS (no lock), move-constructs the task into that position's 64-byte slot and
// publishes it by storing the slot's sequence number (Vyukov's bounded-queue scheme). The consumer
// runs tasks in place, in position order, so any two posts ordered by happens-before (in
// particular two posts by one thread) run in that order. A task that fits the slot's inline buffer
// costs no allocation.
//
// Segments. Slots live in segments of 256, found through a directory indexed by segment number
// (mod its size). The consumer hands a segment back to a small spare pool as soon as it has run
// its last task, so memory follows the backlog, not the traffic; a producer that claims the first
// position of a segment takes a spare (allocating only when there is none) before its CAS, so a
// claimed position always has a slot. Producers never touch a segment before their claim, and a
// claimed position pins its segment until it is published, which is what makes recycling safe.
//
// Overflow. A producer never claims a position whose segment is still in use one directory lap
// earlier (a backlog of the full capacity). Beyond that it takes `overflow_mutex_`, appends the
// task to a list of chunks and raises `overflow_mode_`; while it is up every producer appends
// there too, so a producer's later task never overtakes its earlier one through a free slot. A
// batch takes the list only when every claimed position has run (checked under the mutex, so a
// position claimed before an append is always seen); taking the whole list lowers the mode in the
// same critical section, so a position claimed afterwards belongs to a later batch. Tasks that
// the batch's own tasks appended stay in the list for the next batch.
//
// Wake-ups. The consumer goes to sleep by setting sleeping_bit in `tail_`, which it does only when
// every claimed position has run; the next claim is a CAS on that same word, so exactly one
// producer sees the bit (and clears it) and wakes the consumer (ev_async_send) after publishing:
// one wake-up per batch, and publishing is a plain release store, not a fence. If the consumer
// finds a position claimed but not yet published, it spins briefly; should that producer be
// descheduled, the consumer sets `publish_watched_` and the two sides meet in a Dekker handshake
// whose heavy half (membarrier(2), when the kernel has it) is on the consumer's rare path.
//
// Batches. Tasks posted by the tasks of a batch wait for the next batch (after the loop polled for
// I/O), so a task that re-posts itself cannot starve the loop. A batch that has run every
// position claimed before it started goes on with positions other threads claimed since, up to a
// budget: a busy producer then costs the loop fewer iterations, and I/O still gets its turn.
class TaskQueue {
 public:
  using WakeFn = void (*)(void* context) noexcept;
  using ErrorFn = void (*)(void* context, std::exception_ptr error) noexcept;

  static constexpr std::size_t segment_slots = 256;      // 16 KiB of slots per segment
  static constexpr std::size_t default_segments = 1024;  // 256 Ki tasks before the overflow list

  // `segments` (a power of two) bounds the lock-free backlog at segments * segment_slots tasks.
  TaskQueue(WakeFn wake, void* wake_context, std::size_t segments = default_segments);
  // Destroys every task still queued without running it. No producer may still be pushing.
  ~TaskQueue();

  TaskQueue(const TaskQueue&) = delete;
  TaskQueue& operator=(const TaskQueue&) = delete;

  // ANY thread: queues the task at `source`, moving from it only when it returns true. False once
  // close() was called. Throws what the task's move throws, or std::bad_alloc, with nothing
  // queued.
  bool push(const TaskOps& ops, void* source);

  // Consumer: runs one batch; exceptions thrown by tasks go to on_error, the batch goes on.
  void run_batch(ErrorFn on_error, void* error_context) noexcept;

  // ANY thread: every push from now on returns false; wakes the consumer.
  void close() noexcept;
  // Consumer, between batches: tasks are queued that no batch has run yet.
  bool has_pending() const noexcept;
  // Consumer: close() was called and every task accepted before it has run.
  bool closed_and_drained() const noexcept;

  // Consumer, with no producer left: destroys every queued task without running it.
  void discard_all() noexcept;

 private:
  struct alignas(64) Slot {
    std::atomic<std::uint64_t> sequence;  // position + 1 once the task at position is published
    const TaskOps* ops;
    alignas(task_inline_align) unsigned char storage[task_inline_size];
  };
  struct Segment {
    Slot slot[segment_slots];
    Segment* next_spare = nullptr;
  };
  struct alignas(64) Cell {
    const TaskOps* ops;
    alignas(task_inline_align) unsigned char storage[task_inline_size];
  };
  struct Chunk {
    static constexpr std::size_t cells = 255;  // 16 KiB
    Chunk* next = nullptr;
    std::size_t count = 0;
    Cell cell[cells];
  };
  enum class FastPush { pushed, full, closed };

  // tail_: the next position to claim, plus two flags.
  static constexpr std::uint64_t closed_bit = std::uint64_t{1} << 63;
  static constexpr std::uint64_t sleeping_bit = std::uint64_t{1} << 62;  // the consumer waits
  static constexpr std::uint64_t position_mask = sleeping_bit - 1;
  static constexpr int max_rest_spins = 64;
  // Lingering: a consumer that caught up with a busy producer waits this long for its next post
  // before going to sleep (sleeping and being woken cost each side a system call and a context
  // switch, many microseconds); after a few misses in a row it stops until a batch is big again.
  static constexpr std::chrono::nanoseconds linger_time{2000};
  static constexpr std::uint64_t streaming_batch = 16;
  static constexpr int max_linger_misses = 8;
  static constexpr std::uint64_t no_position = ~std::uint64_t{0};
  static constexpr std::uint64_t extra_budget = 2048;
  // Kept after a burst so the next one finds warm memory (a vector keeps its capacity too).
  static constexpr std::size_t spare_shelf_size = 8;
  static constexpr std::size_t max_spare_segments = 256;  // 4 MiB, 64 Ki tasks
  static constexpr std::size_t max_spare_chunks = 8;

  FastPush try_push_fast(const TaskOps& ops, void* source);
  bool push_overflow(const TaskOps& ops, void* source);
  void publish(Slot& slot, std::uint64_t position, bool wake_consumer) noexcept;
  void wake_if_sleeping() noexcept;
  bool linger(std::uint64_t batch_size) noexcept;
  void rest() noexcept;
  bool published(std::uint64_t position) noexcept;
  bool heavy_fence() const noexcept;
  std::atomic<Segment*>& entry_for(std::uint64_t position) const noexcept;
  template <class Visit>
  void consume(std::uint64_t limit, Visit visit) noexcept;
  Segment* take_spare_segment();
  void give_spare_segment(Segment* segment) noexcept;
  Chunk* take_overflow() noexcept;
  void recycle(Chunk* chunks) noexcept;
  static void run_chunks(Chunk* chunks, ErrorFn on_error, void* error_context) noexcept;
  static void destroy_chunks(Chunk* chunks) noexcept;

  // Read-mostly, shared by every producer.
  const std::uint64_t directory_mask_;
  const std::uint64_t capacity_;  // positions claimable ahead of the consumer, segment-aligned
  const std::unique_ptr<std::atomic<Segment*>[]> directory_;
  const bool asymmetric_fences_;  // membarrier(2) stands in for the producers' fences
  const WakeFn wake_;
  void* const wake_context_;
  std::atomic<bool> overflow_mode_{false};
  std::atomic<std::uint64_t> consumed_{0};  // head_ as last published by the consumer

  alignas(64) std::atomic<std::uint64_t> tail_{sleeping_bit};
  alignas(64) std::atomic<bool> publish_watched_{false};  // the consumer sleeps until a publish

  alignas(64) std::uint64_t head_ = 0;     // consumer only: next position to run
  Segment* current_ = nullptr;             // consumer only: head_'s segment, once found
  int linger_misses_ = max_linger_misses;  // consumer only
  std::uint64_t own_first_ = 0;            // consumer only: first position its batch posted

  // Spare segments: a few on a lock-free shelf (the steady state: a producer that starts a
  // segment takes one, the consumer that finishes one puts it back), more in a locked pool that
  // only bursts reach.
  alignas(64) std::atomic<Segment*> spare_shelf_[spare_shelf_size] = {};
  alignas(64) std::mutex spare_mutex_;
  Segment* spare_segments_ = nullptr;  // guarded by spare_mutex_
  std::size_t spare_segment_count_ = 0;

  alignas(64) mutable std::mutex overflow_mutex_;
  Chunk* overflow_head_ = nullptr;  // guarded by overflow_mutex_, like everything below
  Chunk* overflow_tail_ = nullptr;
  Chunk* deferred_ = nullptr;  // first chunk holding what the running batch's tasks appended
  Chunk* spare_chunks_ = nullptr;
  std::size_t spare_chunk_count_ = 0;
  bool closed_ = false;
};

}  // namespace evcxx::detail
