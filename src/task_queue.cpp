#include "task_queue.hpp"

#include "cpu_relax.hpp"

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <new>
#include <stdexcept>
#include <thread>
#include <utility>

namespace evcxx::detail {

namespace {

// The queue whose batch this thread is running, if any: its tasks' posts wait for the next batch.
thread_local TaskQueue* running_batch = nullptr;

// membarrier(2) with MEMBARRIER_CMD_PRIVATE_EXPEDITED: lets the consumer's rare heavy fence pair
// with a compiler-only fence in every producer, so publishing a task is a plain store.
bool register_membarrier() noexcept {
  // Only the expedited private command: the others disturb the whole machine or sleep.
  const long commands = syscall(__NR_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
  if (commands < 0 || (commands & MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0 ||
      (commands & MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0) {
    return false;
  }
  return syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
}

// Published in place of a task whose move constructor threw after its slot was claimed.
constexpr TaskOps no_task_ops = {
    [](void*, void*) {},
    [](void*) {},
    [](void*) noexcept {},
    [](void*, void*) noexcept {},
};

bool membarrier_registered() noexcept {
  static const bool registered = register_membarrier();
  return registered;
}

}  // namespace

bool TaskQueue::heavy_fence() const noexcept {
  // Without asymmetric fences producers publish with seq_cst, and the seq_cst accesses around
  // this call suffice.
  if (!asymmetric_fences_) return true;
  if (syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0) return true;
  // A forked child inherits the queue but not the registration: register again.
  return syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0 &&
         syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0;
}

TaskQueue::TaskQueue(WakeFn wake, void* wake_context, std::size_t segments)
    : directory_mask_(segments - 1),
      capacity_(segments * segment_slots),
      directory_(new std::atomic<Segment*>[segments]),
      asymmetric_fences_(membarrier_registered()),
      wake_(wake),
      wake_context_(wake_context) {
  static_assert(sizeof(Slot) == 64, "a slot is one cache line");
  if (segments == 0 || (segments & (segments - 1)) != 0) {
    throw std::invalid_argument("evcxx: TaskQueue needs a power-of-two number of segments");
  }
  for (std::size_t i = 0; i < segments; ++i)
    directory_[i].store(nullptr, std::memory_order_relaxed);
}

TaskQueue::~TaskQueue() {
  discard_all();
  for (std::uint64_t i = 0; i <= directory_mask_; ++i) {
    delete directory_[i].load(std::memory_order_relaxed);  // the head's segment, if any
  }
  for (auto& shelf : spare_shelf_) delete shelf.load(std::memory_order_relaxed);
  while (spare_segments_ != nullptr) {
    delete std::exchange(spare_segments_, spare_segments_->next_spare);
  }
  while (spare_chunks_ != nullptr) delete std::exchange(spare_chunks_, spare_chunks_->next);
}

std::atomic<TaskQueue::Segment*>& TaskQueue::entry_for(std::uint64_t position) const noexcept {
  return directory_[(position / segment_slots) & directory_mask_];
}

bool TaskQueue::push(const TaskOps& ops, void* source) {
  if (!overflow_mode_.load(std::memory_order_seq_cst)) {
    switch (try_push_fast(ops, source)) {
      case FastPush::pushed:
        return true;
      case FastPush::closed:
        return false;
      case FastPush::full:
        break;
    }
  }
  return push_overflow(ops, source);
}

TaskQueue::FastPush TaskQueue::try_push_fast(const TaskOps& ops, void* source) {
  // Taken before a claim that may have to install a segment, so a claimed position never waits
  // for an allocation that could fail; handed back if unused.
  struct Spare {
    TaskQueue& queue;
    Segment* segment = nullptr;
    ~Spare() {
      if (segment != nullptr) queue.give_spare_segment(segment);
    }
  } spare{*this};

  std::uint64_t seen = tail_.load(std::memory_order_relaxed);
  for (;;) {
    if ((seen & closed_bit) != 0) return FastPush::closed;
    const std::uint64_t position = seen & position_mask;
    // The directory entry is free only once the segment one lap earlier has been run.
    const std::uint64_t segment_end = (position / segment_slots + 1) * segment_slots;
    if (segment_end - consumed_.load(std::memory_order_acquire) > capacity_) {
      return FastPush::full;
    }
    std::atomic<Segment*>& entry = entry_for(position);
    if (spare.segment == nullptr && entry.load(std::memory_order_acquire) == nullptr) {
      spare.segment = take_spare_segment();  // may throw: nothing is claimed yet
    }
    // Claiming also clears sleeping_bit: whoever takes it wakes the consumer.
    if (!tail_.compare_exchange_weak(seen, position + 1, std::memory_order_acq_rel,
                                     std::memory_order_relaxed)) {
      continue;
    }
    if (running_batch == this && position < own_first_) own_first_ = position;
    // Claimed: this position pins its segment until it is published. The entry is either that
    // segment or still empty (it was empty above, so a spare is at hand).
    Segment* segment = entry.load(std::memory_order_acquire);
    if (segment == nullptr) {
      Segment* expected = nullptr;
      // seq_cst: rest() may look for this segment in its Dekker handshake.
      if (entry.compare_exchange_strong(expected, spare.segment, std::memory_order_seq_cst,
                                        std::memory_order_acquire)) {
        segment = std::exchange(spare.segment, nullptr);
      } else {
        segment = expected;  // another producer of this segment installed one first
      }
    }
    Slot& slot = segment->slot[position % segment_slots];
    try {
      ops.construct(slot.storage, source);
      slot.ops = &ops;
    } catch (...) {
      slot.ops = &no_task_ops;  // the position must still be published and consumed
      publish(slot, position, (seen & sleeping_bit) != 0);
      throw;
    }
    publish(slot, position, (seen & sleeping_bit) != 0);
    return FastPush::pushed;
  }
}

void TaskQueue::publish(Slot& slot, std::uint64_t position, bool wake_consumer) noexcept {
  if (asymmetric_fences_) {
    // A plain store: the consumer's rare membarrier() stands in for our half of the fence.
    slot.sequence.store(position + 1, std::memory_order_release);
    std::atomic_signal_fence(std::memory_order_seq_cst);
  } else {
    slot.sequence.store(position + 1, std::memory_order_seq_cst);
  }
  if (wake_consumer) {
    wake_(wake_context_);
  } else if (publish_watched_.load(asymmetric_fences_ ? std::memory_order_relaxed
                                                      : std::memory_order_seq_cst) &&
             publish_watched_.exchange(false, std::memory_order_acq_rel)) {
    wake_(wake_context_);  // the consumer went to sleep waiting for a publish
  }
}

TaskQueue::Segment* TaskQueue::take_spare_segment() {
  // First the lock-free shelf (exchange hands each segment to exactly one taker)...
  for (auto& shelf : spare_shelf_) {
    if (shelf.load(std::memory_order_relaxed) != nullptr) {
      if (Segment* segment = shelf.exchange(nullptr, std::memory_order_acquire)) return segment;
    }
  }
  // ...then, after a burst that filled it, the locked pool.
  {
    std::lock_guard<std::mutex> lock(spare_mutex_);
    if (spare_segments_ != nullptr) {
      --spare_segment_count_;
      return std::exchange(spare_segments_, spare_segments_->next_spare);
    }
  }
  return new Segment();  // value-initialised: every sequence is 0, which no position matches
}

void TaskQueue::give_spare_segment(Segment* segment) noexcept {
  for (auto& shelf : spare_shelf_) {
    Segment* empty = nullptr;
    if (shelf.load(std::memory_order_relaxed) == nullptr &&
        shelf.compare_exchange_strong(empty, segment, std::memory_order_release,
                                      std::memory_order_relaxed)) {
      return;
    }
  }
  {
    std::lock_guard<std::mutex> lock(spare_mutex_);
    if (spare_segment_count_ < max_spare_segments) {
      segment->next_spare = std::exchange(spare_segments_, segment);
      ++spare_segment_count_;
      return;
    }
  }
  delete segment;
}

bool TaskQueue::push_overflow(const TaskOps& ops, void* source) {
  // A task of the running batch: what it posts must wait for the next batch.
  const bool from_batch = running_batch == this;
  {
    std::lock_guard<std::mutex> lock(overflow_mutex_);
    if (closed_) return false;
    bool queued = false;
    if (!overflow_mode_.load(std::memory_order_relaxed)) {
      // The ring may have drained since; nothing is in the overflow list, so it keeps FIFO.
      switch (try_push_fast(ops, source)) {
        case FastPush::pushed:
          queued = true;
          break;
        case FastPush::closed:
          return false;
        case FastPush::full:
          break;
      }
    }
    if (!queued) {
      Chunk* target = overflow_tail_;
      Chunk* fresh = nullptr;
      const bool first_deferred = from_batch && deferred_ == nullptr;
      if (target == nullptr || target->count == Chunk::cells || first_deferred) {
        if (spare_chunks_ != nullptr) {
          fresh = std::exchange(spare_chunks_, spare_chunks_->next);
          --spare_chunk_count_;
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
          fresh->next = std::exchange(spare_chunks_, fresh);
          ++spare_chunk_count_;
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
        if (first_deferred) deferred_ = fresh;
      }
      // seq_cst: pairs with the consumer's check of the mode after it set sleeping_bit.
      overflow_mode_.store(true, std::memory_order_seq_cst);
    }
    if (queued) return true;  // try_push_fast woke the consumer if that was needed
  }
  wake_if_sleeping();
  return true;
}

void TaskQueue::wake_if_sleeping() noexcept {
  if ((tail_.load(std::memory_order_seq_cst) & sleeping_bit) == 0) return;
  if ((tail_.fetch_and(~sleeping_bit, std::memory_order_seq_cst) & sleeping_bit) != 0) {
    wake_(wake_context_);
  }
}

TaskQueue::Chunk* TaskQueue::take_overflow() noexcept {
  std::lock_guard<std::mutex> lock(overflow_mutex_);
  if (overflow_head_ == nullptr || overflow_head_ == deferred_) return nullptr;
  // Every ring position claimed before an append in the list is visible here (the mutex orders
  // them); all of them must have run first.
  if ((tail_.load(std::memory_order_seq_cst) & position_mask) != head_) return nullptr;
  Chunk* const taken = overflow_head_;
  if (deferred_ == nullptr) {
    overflow_head_ = overflow_tail_ = nullptr;
    overflow_mode_.store(false, std::memory_order_seq_cst);  // producers may use the ring again
  } else {
    Chunk* last = taken;
    while (last->next != deferred_) last = last->next;
    last->next = nullptr;
    overflow_head_ = deferred_;
  }
  return taken;
}

template <class Visit>
void TaskQueue::consume(std::uint64_t limit, Visit visit) noexcept {
  while (head_ != limit) {
    if (current_ == nullptr) {
      current_ = entry_for(head_).load(std::memory_order_acquire);
      if (current_ == nullptr) break;  // not installed yet: claimed, not published
    }
    Slot& slot = current_->slot[head_ % segment_slots];
    if (slot.sequence.load(std::memory_order_acquire) != head_ + 1) break;  // not published yet
    visit(slot);
    ++head_;
    if (head_ % segment_slots == 0) {  // the segment is done: free its entry, keep it as a spare
      entry_for(head_ - 1).store(nullptr, std::memory_order_release);
      give_spare_segment(std::exchange(current_, nullptr));
    }
  }
  // After the entries it freed: a producer that sees this sees them free (try_push_fast).
  consumed_.store(head_, std::memory_order_release);
}

void TaskQueue::run_batch(ErrorFn on_error, void* error_context) noexcept {
  TaskQueue* const outer = std::exchange(running_batch, this);  // loops may nest
  own_first_ = no_position;
  const auto run = [&](Slot& slot) {
    try {
      slot.ops->run(slot.storage);
    } catch (...) {
      on_error(error_context, std::current_exception());
    }
    slot.ops->destroy(slot.storage);
  };
  // The batch: positions claimed before it started, and then, while producers on other threads
  // keep the queue busy, up to extra_budget more; what these tasks post waits for the next batch.
  const std::uint64_t first = head_;
  std::uint64_t limit = tail_.load(std::memory_order_acquire) & position_mask;
  consume(limit, run);
  for (std::uint64_t extra = extra_budget; head_ == limit && extra > 0 && head_ != own_first_;) {
    const std::uint64_t claimed = tail_.load(std::memory_order_acquire) & position_mask;
    if (claimed == head_) {
      if (linger(head_ - first)) continue;
      break;
    }
    limit = std::min({claimed, own_first_, head_ + extra});
    extra -= limit - head_;
    consume(limit, run);
  }
  // Then the overflowed tasks, except those posted by this batch's own tasks; if positions are
  // still unconsumed, the next batch takes the list.
  if (overflow_mode_.load(std::memory_order_acquire)) {
    if (Chunk* const taken = take_overflow()) {
      run_chunks(taken, on_error, error_context);
      recycle(taken);
    }
  }
  running_batch = outer;
  if (deferred_ != nullptr) {  // only this thread writes it
    std::lock_guard<std::mutex> lock(overflow_mutex_);
    deferred_ = nullptr;
  }
  rest();
}

bool TaskQueue::linger(std::uint64_t batch_size) noexcept {
  if (batch_size >= streaming_batch) linger_misses_ = 0;
  if (linger_misses_ >= max_linger_misses) return false;  // posts come one by one: just sleep
  const auto deadline = std::chrono::steady_clock::now() + linger_time;
  do {
    for (int i = 0; i < 32; ++i) {
      if ((tail_.load(std::memory_order_relaxed) & position_mask) != head_) {
        linger_misses_ = 0;
        return true;
      }
      cpu_relax();
    }
  } while (std::chrono::steady_clock::now() < deadline);
  ++linger_misses_;
  return false;
}

void TaskQueue::rest() noexcept {
  for (int spins = 0;; ++spins) {
    std::uint64_t seen = tail_.load(std::memory_order_acquire);
    if ((seen & position_mask) == head_) {
      // Everything claimed has run: sleep, i.e. let the next claim (or append) wake us.
      if (!tail_.compare_exchange_weak(seen, seen | sleeping_bit, std::memory_order_seq_cst,
                                       std::memory_order_acquire)) {
        continue;  // a new claim came in first
      }
      // An overflow append made before the bit was set did not see it: look for one (seq_cst
      // pairs with the mode's store and the appender's load of tail_).
      if (overflow_mode_.load(std::memory_order_seq_cst) &&
          (tail_.fetch_and(~sleeping_bit, std::memory_order_seq_cst) & sleeping_bit) != 0) {
        wake_(wake_context_);  // nobody took the bit back: ask for the next batch ourselves
      }
      return;
    }
    // Positions are claimed beyond the batch. Published ones (posted by its own tasks, or beyond
    // its budget) are for the next batch: ask for it (ev_async_send from the loop's own callback
    // costs no system call; the loop polls I/O first).
    if (published(head_)) {
      wake_(wake_context_);
      return;
    }
    // Claimed but not yet published: its producer is between its claim and its publish, which
    // normally takes nanoseconds. Give it a moment...
    if (spins < max_rest_spins) {
      cpu_relax();
      continue;
    }
    // ...then sleep, and have that producer wake us: announce the watch, then fence against
    // its publish (Dekker), then look again.
    publish_watched_.store(true, std::memory_order_seq_cst);
    if (!heavy_fence()) {
      wake_(wake_context_);  // cannot sleep safely: come back after the loop polled for I/O
      return;
    }
    if (published(head_) && publish_watched_.exchange(false, std::memory_order_acq_rel)) {
      wake_(wake_context_);
    }
    return;
  }
}

bool TaskQueue::published(std::uint64_t position) noexcept {
  if (current_ == nullptr) current_ = entry_for(position).load(std::memory_order_seq_cst);
  return current_ != nullptr && current_->slot[position % segment_slots].sequence.load(
                                    std::memory_order_seq_cst) == position + 1;
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
    while (chunks != nullptr && spare_chunk_count_ < max_spare_chunks) {
      Chunk* chunk = std::exchange(chunks, chunks->next);
      chunk->next = std::exchange(spare_chunks_, chunk);
      ++spare_chunk_count_;
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
  wake_(wake_context_);  // the consumer notices it is drained
}

bool TaskQueue::has_pending() const noexcept {
  return (tail_.load(std::memory_order_acquire) & position_mask) != head_ ||
         overflow_mode_.load(std::memory_order_acquire);
}

bool TaskQueue::closed_and_drained() const noexcept {
  if ((tail_.load(std::memory_order_acquire) & closed_bit) == 0) return false;
  std::lock_guard<std::mutex> lock(overflow_mutex_);
  return closed_ && overflow_head_ == nullptr &&
         (tail_.load(std::memory_order_seq_cst) & position_mask) == head_;
}

void TaskQueue::discard_all() noexcept {
  // A task's destructor may post again; keep going until nothing is left.
  for (bool found = true; found;) {
    found = false;
    const std::uint64_t before = head_;
    consume(tail_.load(std::memory_order_acquire) & position_mask,
            [](Slot& slot) { slot.ops->destroy(slot.storage); });
    found = head_ != before;
    Chunk* overflowed = nullptr;
    {
      std::lock_guard<std::mutex> lock(overflow_mutex_);
      overflowed = std::exchange(overflow_head_, nullptr);
      overflow_tail_ = nullptr;
      deferred_ = nullptr;
      overflow_mode_.store(false, std::memory_order_seq_cst);
    }
    if (overflowed != nullptr) {
      destroy_chunks(overflowed);
      found = true;
    }
  }
}

}  // namespace evcxx::detail
