#include "task_queue.hpp"

#include <new>
#include <utility>

namespace evcxx::detail {

namespace {

// Published in place of a task whose move constructor threw after its slot was claimed.
constexpr TaskOps no_task_ops = {
    [](void*, void*) {},
    [](void*) {},
    [](void*) noexcept {},
    [](void*, void*) noexcept {},
};

constexpr std::uint64_t ring_mask = TaskQueue::ring_capacity - 1;
static_assert((TaskQueue::ring_capacity & ring_mask) == 0, "the ring capacity is a power of two");

}  // namespace

TaskQueue::TaskQueue(WakeFn wake, void* wake_context)
    : ring_(new Slot[ring_capacity]), wake_(wake), wake_context_(wake_context) {
  static_assert(sizeof(Slot) == 64, "a slot is one cache line");
  for (std::size_t i = 0; i < ring_capacity; ++i) {
    ring_[i].sequence.store(i, std::memory_order_relaxed);
    ring_[i].ops = nullptr;
  }
}

TaskQueue::~TaskQueue() {
  discard_all();
  while (spare_ != nullptr) delete std::exchange(spare_, spare_->next);
}

bool TaskQueue::push(const TaskOps& ops, void* source) {
  if (!overflow_mode_.load(std::memory_order_seq_cst)) {
    switch (try_push_ring(ops, source)) {
      case RingPush::pushed:
        signal();
        return true;
      case RingPush::closed:
        return false;
      case RingPush::full:
        break;
    }
  }
  return push_overflow(ops, source);
}

TaskQueue::RingPush TaskQueue::try_push_ring(const TaskOps& ops, void* source) {
  std::uint64_t position = tail_.load(std::memory_order_relaxed);
  for (;;) {
    if ((position & closed_bit) != 0) return RingPush::closed;
    Slot& slot = ring_[position & ring_mask];
    const std::uint64_t sequence = slot.sequence.load(std::memory_order_acquire);
    const auto lag = static_cast<std::int64_t>(sequence - position);
    if (lag == 0) {
      // seq_cst: the wake-up handshake relies on this claim being ordered with run_batch's read
      // of tail_ (see signal()).
      if (tail_.compare_exchange_weak(position, position + 1, std::memory_order_seq_cst,
                                      std::memory_order_relaxed)) {
        try {
          ops.construct(slot.storage, source);
          slot.ops = &ops;
        } catch (...) {
          slot.ops = &no_task_ops;  // the position must still be published and consumed
          slot.sequence.store(position + 1, std::memory_order_seq_cst);
          signal();
          throw;
        }
        slot.sequence.store(position + 1, std::memory_order_seq_cst);
        return RingPush::pushed;
      }
    } else if (lag < 0) {
      return RingPush::full;  // the slot still holds a task from the previous lap
    } else {
      position = tail_.load(std::memory_order_relaxed);  // another producer took it
    }
  }
}

bool TaskQueue::push_overflow(const TaskOps& ops, void* source) {
  {
    std::lock_guard<std::mutex> lock(overflow_mutex_);
    if (closed_) return false;
    bool queued = false;
    if (!overflow_mode_.load(std::memory_order_relaxed)) {
      // The ring may have drained since; nothing is in the overflow list, so it keeps FIFO.
      switch (try_push_ring(ops, source)) {
        case RingPush::pushed:
          queued = true;
          break;
        case RingPush::closed:
          return false;
        case RingPush::full:
          break;
      }
    }
    if (!queued) {
      Chunk* target = overflow_tail_;
      Chunk* fresh = nullptr;
      if (target == nullptr || target->count == Chunk::cells || target == sealed_) {
        if (spare_ != nullptr) {
          fresh = std::exchange(spare_, spare_->next);
          --spare_count_;
          fresh->next = nullptr;
          fresh->count = 0;
        } else {
          fresh = new Chunk;  // std::bad_alloc leaves nothing queued
        }
        target = fresh;
      }
      Cell& cell = target->cell[target->count];
      try {
        ops.construct(cell.storage, source);
      } catch (...) {
        if (fresh != nullptr) {
          fresh->next = std::exchange(spare_, fresh);
          ++spare_count_;
        }
        throw;
      }
      cell.ops = &ops;
      ++target->count;
      if (fresh != nullptr) {
        if (overflow_tail_ != nullptr) {
          overflow_tail_->next = fresh;
        } else {
          overflow_head_ = fresh;
        }
        overflow_tail_ = fresh;
      }
      // seq_cst pairs with run_batch's first read, as the ring's publish does (see signal()).
      overflow_mode_.store(true, std::memory_order_seq_cst);
    }
  }
  signal();
  return true;
}

void TaskQueue::signal() noexcept {
  // The producer's publish (seq_cst store) precedes this seq_cst load; run_batch's seq_cst clear
  // precedes its reads of the queue. In the single total order one of the two comes first: either
  // the batch sees the task, or this load sees the clear and the wake-up is sent.
  if (signalled_.load(std::memory_order_seq_cst)) return;
  if (!signalled_.exchange(true, std::memory_order_seq_cst)) wake_(wake_context_);
}

TaskQueue::Chunk* TaskQueue::seal_overflow() noexcept {
  std::lock_guard<std::mutex> lock(overflow_mutex_);
  sealed_ = overflow_tail_;  // later appends start a new chunk
  return sealed_;
}

TaskQueue::Chunk* TaskQueue::take_overflow_through(Chunk* mark) noexcept {
  std::lock_guard<std::mutex> lock(overflow_mutex_);
  Chunk* taken = overflow_head_;
  overflow_head_ = std::exchange(mark->next, nullptr);
  if (overflow_head_ == nullptr) {
    overflow_tail_ = nullptr;
    overflow_mode_.store(false, std::memory_order_seq_cst);  // producers may use the ring again
  }
  sealed_ = nullptr;
  return taken;
}

void TaskQueue::run_batch(ErrorFn on_error, void* error_context) noexcept {
  signalled_.store(false, std::memory_order_seq_cst);
  // The batch: overflowed tasks appended before this point, and the ring positions claimed before
  // `limit`. Whatever these tasks post goes to the next batch.
  Chunk* const mark = overflow_mode_.load(std::memory_order_seq_cst) ? seal_overflow() : nullptr;
  const std::uint64_t limit = tail_.load(std::memory_order_seq_cst) & ~closed_bit;
  while (head_ != limit) {
    Slot& slot = ring_[head_ & ring_mask];
    // Claimed but not yet published: its producer sends a wake-up once it publishes.
    if (slot.sequence.load(std::memory_order_seq_cst) != head_ + 1) break;
    try {
      slot.ops->run(slot.storage);
    } catch (...) {
      on_error(error_context, std::current_exception());
    }
    slot.ops->destroy(slot.storage);
    slot.sequence.store(head_ + ring_capacity, std::memory_order_release);
    ++head_;
  }
  // The overflowed tasks up to the mark follow only ring positions below `limit` (while the mode
  // is up nobody claims a position behind their own overflowed task), so they run once those did;
  // otherwise the producer still filling a position wakes us for another batch.
  if (mark != nullptr && head_ == limit) {
    Chunk* const taken = take_overflow_through(mark);
    run_chunks(taken, on_error, error_context);
    recycle(taken);
  }
  // Overflowed tasks left behind with the ring empty: make sure a next batch comes for them.
  if (overflow_mode_.load(std::memory_order_seq_cst) &&
      (tail_.load(std::memory_order_seq_cst) & ~closed_bit) == head_) {
    signal();
  }
}

void TaskQueue::run_chunks(Chunk* chunks, ErrorFn on_error, void* error_context) noexcept {
  for (Chunk* chunk = chunks; chunk != nullptr; chunk = chunk->next) {
    for (std::size_t i = 0; i < chunk->count; ++i) {
      Cell& cell = chunk->cell[i];
      try {
        cell.ops->run(cell.storage);
      } catch (...) {
        on_error(error_context, std::current_exception());
      }
      cell.ops->destroy(cell.storage);
    }
    chunk->count = 0;
  }
}

void TaskQueue::destroy_chunks(Chunk* chunks) noexcept {
  while (chunks != nullptr) {
    for (std::size_t i = 0; i < chunks->count; ++i) {
      chunks->cell[i].ops->destroy(chunks->cell[i].storage);
    }
    delete std::exchange(chunks, chunks->next);
  }
}

void TaskQueue::recycle(Chunk* chunks) noexcept {
  {
    std::lock_guard<std::mutex> lock(overflow_mutex_);
    while (chunks != nullptr && spare_count_ < max_spare_chunks) {
      Chunk* chunk = std::exchange(chunks, chunks->next);
      chunk->next = std::exchange(spare_, chunk);
      ++spare_count_;
    }
  }
  while (chunks != nullptr) delete std::exchange(chunks, chunks->next);
}

void TaskQueue::close() noexcept {
  tail_.fetch_or(closed_bit, std::memory_order_seq_cst);
  {
    std::lock_guard<std::mutex> lock(overflow_mutex_);
    closed_ = true;
  }
  signal();
}

bool TaskQueue::closed_and_drained() const noexcept {
  if ((tail_.load(std::memory_order_acquire) & closed_bit) == 0) return false;
  std::lock_guard<std::mutex> lock(overflow_mutex_);
  return closed_ && overflow_head_ == nullptr &&
         (tail_.load(std::memory_order_seq_cst) & ~closed_bit) == head_;
}

void TaskQueue::discard_all() noexcept {
  // A task's destructor may post again; keep going until nothing is left.
  for (bool found = true; found;) {
    found = false;
    const std::uint64_t limit = tail_.load(std::memory_order_seq_cst) & ~closed_bit;
    while (head_ != limit) {
      Slot& slot = ring_[head_ & ring_mask];
      if (slot.sequence.load(std::memory_order_acquire) != head_ + 1) break;
      slot.ops->destroy(slot.storage);
      slot.sequence.store(head_ + ring_capacity, std::memory_order_release);
      ++head_;
      found = true;
    }
    Chunk* overflowed = nullptr;
    {
      std::lock_guard<std::mutex> lock(overflow_mutex_);
      overflowed = std::exchange(overflow_head_, nullptr);
      overflow_tail_ = nullptr;
      sealed_ = nullptr;
      overflow_mode_.store(false, std::memory_order_seq_cst);
    }
    if (overflowed != nullptr) {
      destroy_chunks(overflowed);
      found = true;
    }
  }
}

}  // namespace evcxx::detail
