#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>

#include "evcxx/loop.hpp"

namespace evcxx::detail {

// The queue behind Loop::post(): many producers on any thread, one consumer (the loop thread).
//
// Design. The fast path is a bounded ring of 64-byte slots (Vyukov's sequence-numbered ring): a
// producer claims a position with one CAS on `tail_`, move-constructs the task into the slot's
// inline storage and publishes it by storing the slot's sequence number; no lock, no allocation.
// The consumer runs tasks in place, in position order, so tasks keep the order in which their
// positions were claimed, which is FIFO per producer (and for any two posts ordered by
// happens-before).
//
// When the ring is full the producer takes `overflow_mutex_`, appends the task to a list of
// chunks and raises `overflow_mode_`; while it is up every producer appends there too, so a
// producer's later task never overtakes its earlier one through a free ring slot. A batch runs
// the ring positions claimed before it started, and then, only if all of them have run, the
// overflowed tasks appended before it started (the ring positions claimed before an append are
// among the former, because the mutex orders the append with the batch's snapshot). Taking the
// last of the list lowers the mode in the same critical section, so a ring position claimed
// afterwards belongs to a later batch and runs after the list it follows.
//
// Wake-ups. `signalled_` says "a wake-up is on its way or the consumer will look again". A
// producer publishes, then reads it (both seq_cst) and only the one that flips it from false to
// true calls wake (ev_async_send), so a batch costs one wake-up however many tasks it holds. The
// consumer clears it (seq_cst) before it reads the queue, so every publish is either seen by that
// batch or followed by a new wake-up (the store/load pairs form a Dekker handshake).
//
// Batches. Tasks posted by the tasks of a batch wait for the next batch (after the loop polled for
// I/O), so a task that re-posts itself cannot starve the loop.
class TaskQueue {
 public:
  using WakeFn = void (*)(void* context) noexcept;
  using ErrorFn = void (*)(void* context, std::exception_ptr error) noexcept;

  static constexpr std::size_t ring_capacity = 1024;  // 64 KiB of slots

  TaskQueue(WakeFn wake, void* wake_context);
  // Destroys every task still queued without running it. No producer may still be pushing.
  ~TaskQueue();

  TaskQueue(const TaskQueue&) = delete;
  TaskQueue& operator=(const TaskQueue&) = delete;

  // ANY thread: queues the task at `source`, moving from it only when it returns true. False once
  // close() was called. Throws what the task's move throws, or std::bad_alloc on overflow, with
  // nothing queued.
  bool push(const TaskOps& ops, void* source);

  // Consumer: runs one batch; exceptions thrown by tasks go to on_error, the batch goes on.
  void run_batch(ErrorFn on_error, void* error_context) noexcept;

  // ANY thread: every push from now on returns false; wakes the consumer.
  void close() noexcept;
  // Consumer: close() was called and every task accepted before it has run.
  bool closed_and_drained() const noexcept;

  // Consumer, with no producer left: destroys every queued task without running it.
  void discard_all() noexcept;

 private:
  struct alignas(64) Slot {
    std::atomic<std::uint64_t> sequence;
    const TaskOps* ops;
    alignas(task_inline_align) unsigned char storage[task_inline_size];
  };
  struct alignas(64) Cell {
    const TaskOps* ops;
    alignas(task_inline_align) unsigned char storage[task_inline_size];
  };
  struct Chunk {
    static constexpr std::size_t cells = 63;
    Chunk* next = nullptr;
    std::size_t count = 0;
    Cell cell[cells];
  };
  enum class RingPush { pushed, full, closed };

  static constexpr std::uint64_t closed_bit = std::uint64_t{1} << 63;
  static constexpr std::size_t max_spare_chunks = 2;

  RingPush try_push_ring(const TaskOps& ops, void* source);
  bool push_overflow(const TaskOps& ops, void* source);
  void signal() noexcept;
  Chunk* seal_overflow() noexcept;
  Chunk* take_overflow_through(Chunk* mark) noexcept;
  void recycle(Chunk* chunks) noexcept;
  static void run_chunks(Chunk* chunks, ErrorFn on_error, void* error_context) noexcept;
  static void destroy_chunks(Chunk* chunks) noexcept;

  // Read-mostly, shared by every producer.
  const std::unique_ptr<Slot[]> ring_;
  const WakeFn wake_;
  void* const wake_context_;
  std::atomic<bool> overflow_mode_{false};

  alignas(64) std::atomic<std::uint64_t> tail_{0};  // next position to claim, plus closed_bit
  alignas(64) std::atomic<bool> signalled_{false};
  alignas(64) std::uint64_t head_ = 0;  // consumer only: next position to run

  alignas(64) mutable std::mutex overflow_mutex_;
  Chunk* overflow_head_ = nullptr;  // guarded by overflow_mutex_, like everything below
  Chunk* overflow_tail_ = nullptr;
  Chunk* sealed_ = nullptr;  // the last chunk of the running batch: no appends to it
  Chunk* spare_ = nullptr;
  std::size_t spare_count_ = 0;
  bool closed_ = false;
};

}  // namespace evcxx::detail
