#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "evcxx/loop.hpp"

EVCXX_BEGIN_NAMESPACE
namespace detail {

// The queue behind Loop::post(): many producers on any thread, one consumer (the loop thread).
//
// Lanes. Every producer thread gets its own lane, a single-producer queue found through a
// thread-local cache, so producers never write a cache line another producer writes: a post is
// an uncontended fetch_add on the lane's word (claiming the next position and reading two flags),
// a move-construction into that position's 64-byte slot and a release store of the slot's
// sequence number. A task that fits the slot's inline buffer costs no allocation. The consumer
// runs each lane in position order, so tasks keep FIFO order per producer thread.
//
// Segments. A lane is a list of segments of 64 slots; the producer links the next one (taken
// from a small pool, allocated only when the pool is empty, and before the claim, so nothing can
// fail once a position is claimed) and the consumer hands each one back to the pool when it has
// run it. Memory follows the backlog, and there is no capacity to overflow.
//
// Wake-ups. When the consumer has run everything it yields its core once (so that a producer
// sharing it posts on instead of waking the consumer for every task), then goes to sleep: it raises
// `sleeping_` and the sleeping bit of every lane (a CAS that fails if the lane got a new claim).
// The next claim on a lane sees its bit in its own fetch_add and, after publishing, the producer
// that takes `sleeping_` back wakes the consumer (ev_async_send): one wake-up per batch, and
// publishing is a plain release store. A position claimed but not yet published is waited for
// briefly; should its producer be descheduled, the consumer sets `publish_watched_` and the two
// sides meet in a Dekker handshake whose heavy half (membarrier(2), when the kernel has it) is on
// the consumer's rare path.
//
// Streaming. A consumer that caught up with a producer stays a whole segment behind it: it runs
// a segment once the next one is linked, and while it waits it polls only that link (after
// patience_ns, the next slot too, for a producer that stopped mid-segment). Reading
// the slots the producer is writing (or their neighbours, which the hardware fetches along)
// would take those lines away from it and stall its next fetch_add on every post. For the same
// reason the producer takes a recycled segment's lines back in one burst before posting into it,
// and what producer and consumer write lives false_sharing_span bytes apart.
//
// Batches. A batch runs what every lane held when it started; then, while producers on other
// threads keep it busy, up to a budget more. Tasks posted by the batch's own tasks wait for the
// next batch (after the loop polled for I/O), so a task that re-posts itself cannot starve the
// loop.
//
// Closing (LoopThread::stop): every lane's word gets the closed bit; a claim that sees it is a
// phantom nobody publishes, and the consumer stops each lane at the position it had then.
class TaskQueue {
 public:
  using WakeFn = void (*)(void* context) noexcept;
  using ErrorFn = void (*)(void* context, std::exception_ptr error) noexcept;

  static constexpr std::size_t segment_slots = 64;  // 4 KiB of slots per segment
  // x86 fetches cache lines in aligned pairs: what two threads write stays this far apart.
  static constexpr std::size_t false_sharing_span = 128;

  TaskQueue(WakeFn wake, void* wake_context);
  // Destroys every task still queued without running it. No producer may still be pushing.
  ~TaskQueue();

  TaskQueue(const TaskQueue&) = delete;
  TaskQueue& operator=(const TaskQueue&) = delete;

  // ANY thread: queues the task at `source`, moving from it only when it returns true. False once
  // close() was called. Throws what the task's move throws, or std::bad_alloc, with nothing
  // queued.
  bool push(const TaskOps& ops, void* source);

  // Consumer: runs one batch; exceptions thrown by tasks go to on_error, the batch goes on.
  // With stay_awake (a busy-polling loop that watches has_published() itself) the queue does not
  // go to sleep after it, so producers post without waking anyone; settle() must follow before
  // the consumer blocks.
  void run_batch(ErrorFn on_error, void* error_context, bool stay_awake = false) noexcept;
  // Consumer: a task is published that no batch has run yet (it reads each lane's next slot).
  bool has_published() noexcept;
  // Consumer, between batches: has_pending() without reading other threads' lane words: this
  // thread's tasks queued, or another thread's published.
  bool has_runnable() noexcept;
  // Consumer, before it blocks: after batches that stayed awake, goes to sleep as a batch does
  // (or asks for the next batch, when there is work); false if there was nothing to settle.
  bool settle() noexcept;

  // ANY thread: every push from now on returns false; wakes the consumer.
  void close() noexcept;
  // Consumer, between batches: tasks are queued that no batch has run yet.
  bool has_pending() noexcept;
  // Consumer: close() was called and every task accepted before it has run.
  bool closed_and_drained() noexcept;

  // Consumer, with no producer left: destroys every queued task without running it.
  void discard_all() noexcept;

  // Consumer: whether a consumer about to sleep first yields its core (see rest()); on by default,
  // off for a busy-polling loop, which spins instead of sleeping.
  void set_yield_before_sleep(bool yield) noexcept { yield_before_sleep_ = yield; }

  // Consumer: lanes currently registered (for tests).
  std::size_t lane_count() noexcept;

 private:
  struct alignas(64) Slot {
    std::atomic<std::uint64_t> sequence;  // Lane::sequence_of(position) once published
    const TaskOps* ops;
    alignas(task_inline_align) unsigned char storage[task_inline_size];
  };
  struct Segment {
    Slot slot[segment_slots];
    std::atomic<Segment*> next{nullptr};  // linked by the producer, followed by the consumer
    Segment* next_spare = nullptr;
  };
  struct Lane;
  struct LaneCache;
  using Lanes = std::vector<std::shared_ptr<Lane>>;

  // A lane's word: the next position to claim, plus two flags.
  static constexpr std::uint64_t closed_bit = std::uint64_t{1} << 63;
  static constexpr std::uint64_t sleeping_bit = std::uint64_t{1} << 62;
  static constexpr std::uint64_t position_mask = sleeping_bit - 1;
  // Sequence numbers: the lane's serial above, the position (up to 2^40 per lane) below.
  static constexpr int position_bits = 40;
  static constexpr std::uint64_t no_position = ~std::uint64_t{0};
  static constexpr std::uint64_t extra_budget = 2048;
  static constexpr int max_rest_spins = 64;
  // Lingering: a consumer that caught up with a busy producer waits this long for its next post
  // before going to sleep (sleeping and being woken cost each side a system call and a context
  // switch, many microseconds); after a few misses in a row it stops until a batch is big again.
  static constexpr std::int64_t linger_ns = 2000;
  static constexpr std::int64_t patience_ns = 500;  // waiting for a whole segment only
  static constexpr std::uint64_t streaming_batch = 16;
  static constexpr int max_linger_misses = 8;
  static constexpr std::size_t spare_shelf_size = 8;
  // Kept after a burst so the next one finds warm memory (a vector keeps its capacity too).
  static constexpr std::size_t max_spare_segments = 1024;  // 4 MiB, 64 Ki tasks

  static LaneCache& lane_cache() noexcept;
  Lane& lane_for_this_thread();
  Lane& register_lane();
  // Makes a lane for this thread and publishes it to the consumer (under lanes_mutex_).
  std::shared_ptr<Lane> add_lane();
  void drop_abandoned_lanes() noexcept;
  void publish(Slot& slot, std::uint64_t sequence) const noexcept;
  void after_publish(bool wake_consumer) noexcept;
  template <class Visit>
  std::uint64_t consume(Lane& lane, std::uint64_t limit, Visit visit) noexcept;
  std::uint64_t claimed_end(const Lane& lane) const noexcept;
  bool published(Lane& lane, std::uint64_t position) noexcept;
  bool segment_filled(Lane& lane) noexcept;
  // Moves a lane that ran to the end of its head segment on to the next, once linked; false
  // while it is not.
  bool reach_head_segment(Lane& lane) noexcept;
  const Lanes& current_lanes() noexcept;
  // What linger() found: a lane's segment filled, or (after patience_ns) its next slot published.
  enum class Lingered { nothing, segment, published };
  Lingered linger(const Lanes& lanes, std::uint64_t batch_size) noexcept;
  void rest() noexcept;
  bool heavy_fence() const noexcept;
  Segment* take_spare_segment();
  void give_spare_segment(Segment* segment) noexcept;

  const std::uint64_t id_;        // never reused: thread-local caches tell queues apart by it
  const bool asymmetric_fences_;  // membarrier(2) stands in for the producers' fences
  const WakeFn wake_;
  void* const wake_context_;

  alignas(false_sharing_span) std::atomic<bool> sleeping_{true};  // until the first batch runs
  std::atomic<bool> publish_watched_{false};  // the consumer sleeps until a publish

  // The lanes, copy-on-write: registration (any thread, under lanes_mutex_) replaces the array;
  // the consumer reads it without the lock and frees replaced arrays at its next batch.
  alignas(false_sharing_span) std::atomic<const Lanes*> lanes_;
  std::mutex lanes_mutex_;
  std::vector<std::unique_ptr<const Lanes>> retired_lanes_;  // guarded by lanes_mutex_
  std::unique_ptr<const Lanes> owned_lanes_;                 // guarded by lanes_mutex_
  std::atomic<bool> have_retired_{false};
  std::atomic<bool> closed_{false};

  // Consumer only.
  alignas(false_sharing_span) std::thread::id batch_thread_;
  int linger_misses_ = max_linger_misses;
  bool yield_before_sleep_ = true;
  bool awake_ = false;     // a batch stayed awake: settle() has not run since
  bool in_batch_ = false;  // a task ran the loop again (nested run()): the outer batch goes on

  // Spare segments: a few on a lock-free shelf (the steady state: a producer that starts a
  // segment takes one, the consumer that finishes one puts it back), more in a locked pool that
  // only bursts reach.
  alignas(false_sharing_span) std::atomic<Segment*> spare_shelf_[spare_shelf_size] = {};
  std::mutex spare_mutex_;
  Segment* spare_segments_ = nullptr;  // guarded by spare_mutex_
  std::size_t spare_segment_count_ = 0;
};

}  // namespace detail
EVCXX_END_NAMESPACE
