#include "task_queue.hpp"

#include "cpu_relax.hpp"
#include "platform/platform.hpp"

#include <algorithm>
#include <chrono>
#include <new>
#include <thread>
#include <utility>

EVCXX_BEGIN_NAMESPACE
namespace detail {

namespace {

// Published in place of a task whose move constructor threw after its slot was claimed.
constexpr TaskOps no_task_ops = {
    [](void*, void*) {},
    [](void*) {},
    [](void*) noexcept {},
    [](void*, void*) noexcept {},
};

std::atomic<std::uint64_t> next_queue_id{1};
std::atomic<std::uint64_t> next_lane_serial{1};

}  // namespace

// One producer thread's queue. The producer owns `word`'s position and `tail_segment`; the
// consumer owns the rest.
struct TaskQueue::Lane {
  Lane(Segment* first, bool closed, std::thread::id thread)
      : word(sleeping_bit | (closed ? closed_bit : 0)),  // a new lane must check for a sleeper
        producer_tag(next_lane_serial.fetch_add(1, std::memory_order_relaxed) << position_bits),
        tail_segment(first),
        tag(producer_tag),
        head_segment(first),
        closed_at(closed ? 0 : no_position),
        owner(thread) {}
  ~Lane() {
    for (Segment* segment = head_segment; segment != nullptr;) {
      delete std::exchange(segment, segment->next.load(std::memory_order_relaxed));
    }
  }

  // The sequence number that says "position is published": positions count per lane and
  // segments move between lanes, so it carries the lane's process-wide serial number.
  std::uint64_t sequence_of(std::uint64_t position) const noexcept { return tag | (position + 1); }
  std::uint64_t producer_sequence_of(std::uint64_t position) const noexcept {
    return producer_tag | (position + 1);
  }

  // The producer's line. The consumer reads it only at the start and end of a batch: every read
  // takes the line away from the producer, whose next fetch_add then waits for it.
  alignas(false_sharing_span) std::atomic<std::uint64_t> word;
  const std::uint64_t producer_tag;
  Segment* tail_segment;  // holds the next position to claim

  // The consumer's lines.
  alignas(false_sharing_span) const std::uint64_t tag;  // producer_tag, off the producer's line
  std::uint64_t head = 0;                               // next position to run
  Segment* head_segment;  // holds positions [head_first, head_first + 64)
  std::uint64_t head_first = 0;
  std::uint64_t batch_limit = 0;         // where the running batch stops
  std::atomic<std::uint64_t> closed_at;  // the position close() found
  std::atomic<bool> abandoned{false};    // its thread has exited
  std::atomic<bool> queue_gone{false};   // its queue was destroyed
  const std::thread::id owner;
};

namespace {
// Set when this thread's LaneCache is destroyed at its exit. Constant-initialised and trivially
// destructible, so that it is still there for a thread-local destructor that runs after the cache's
// (one made before the thread's first post) and posts.
thread_local bool lane_cache_gone = false;
}  // namespace

// Each thread's lanes, one per queue it posted to, found by the queue's id.
struct TaskQueue::LaneCache {
  ~LaneCache() {
    lane_cache_gone = true;
    for (auto& entry : entries) entry.second->abandoned.store(true, std::memory_order_release);
  }
  std::uint64_t last_id = 0;
  Lane* last = nullptr;
  std::vector<std::pair<std::uint64_t, std::shared_ptr<Lane>>> entries;
};

TaskQueue::LaneCache& TaskQueue::lane_cache() noexcept {
  thread_local LaneCache cache;
  return cache;
}

bool TaskQueue::heavy_fence() const noexcept {
  // Without asymmetric fences producers publish with seq_cst, and the seq_cst accesses around
  // this call suffice.
  return !asymmetric_fences_ || platform::heavy_fence();
}

TaskQueue::TaskQueue(WakeFn wake, void* wake_context)
    : id_(next_queue_id.fetch_add(1, std::memory_order_relaxed)),
      asymmetric_fences_(platform::asymmetric_fences()),
      wake_(wake),
      wake_context_(wake_context),
      owned_lanes_(std::make_unique<const Lanes>()) {
  static_assert(sizeof(Slot) == 64, "a slot is one cache line");
  lanes_.store(owned_lanes_.get(), std::memory_order_release);
}

TaskQueue::~TaskQueue() {
  discard_all();
  for (const auto& lane : *owned_lanes_) lane->queue_gone.store(true, std::memory_order_release);
  for (auto& shelf : spare_shelf_) delete shelf.load(std::memory_order_relaxed);
  while (spare_segments_ != nullptr) {
    delete std::exchange(spare_segments_, spare_segments_->next_spare);
  }
}

TaskQueue::Lane& TaskQueue::lane_for_this_thread() {
  LaneCache& cache = lane_cache();
  if (cache.last_id == id_) return *cache.last;
  for (auto& [id, lane] : cache.entries) {
    if (id == id_) {
      cache.last_id = id;
      cache.last = lane.get();
      return *lane;
    }
  }
  return register_lane();
}

TaskQueue::Lane& TaskQueue::register_lane() {
  LaneCache& cache = lane_cache();
  auto& entries = cache.entries;
  entries.erase(std::remove_if(entries.begin(), entries.end(),
                               [](const auto& entry) {
                                 return entry.second->queue_gone.load(std::memory_order_acquire);
                               }),
                entries.end());
  cache.last_id = 0;
  entries.reserve(entries.size() + 1);  // before the lane is published: may throw
  std::shared_ptr<Lane> lane = add_lane();
  entries.emplace_back(id_, lane);
  cache.last_id = id_;
  cache.last = lane.get();
  return *lane;
}

std::shared_ptr<TaskQueue::Lane> TaskQueue::add_lane() {
  // Everything that may throw comes before the lane is published.
  Segment* first = take_spare_segment();
  struct Giveback {
    TaskQueue& queue;
    Segment* segment;
    ~Giveback() {
      if (segment != nullptr) queue.give_spare_segment(segment);
    }
  } giveback{*this, first};
  std::lock_guard<std::mutex> lock(lanes_mutex_);
  auto lane = std::make_shared<Lane>(first, closed_.load(std::memory_order_relaxed),
                                     std::this_thread::get_id());
  giveback.segment = nullptr;
  auto next = std::make_unique<Lanes>(*owned_lanes_);
  next->push_back(lane);
  retired_lanes_.reserve(retired_lanes_.size() + 1);
  // Commit.
  retired_lanes_.push_back(std::move(owned_lanes_));
  owned_lanes_ = std::move(next);
  // seq_cst: rest() compares the array it marked with the current one (see rest()).
  lanes_.store(owned_lanes_.get(), std::memory_order_seq_cst);
  have_retired_.store(true, std::memory_order_release);
  return lane;
}

bool TaskQueue::push(const TaskOps& ops, void* source) {
  // Once this thread's lane cache is gone (a thread-local destructor posts at the thread's
  // exit), each post takes a lane of its own, abandoned as soon as the post is done: lanes run
  // in the order they were added, so this thread's posts still run in order.
  std::shared_ptr<Lane> one_off;
  if (lane_cache_gone) one_off = add_lane();  // may throw std::bad_alloc: nothing queued
  const struct AbandonWhenDone {
    Lane* lane;
    ~AbandonWhenDone() {
      // After the claim (if any): the consumer drops the lane once it ran everything claimed.
      if (lane != nullptr) lane->abandoned.store(true, std::memory_order_release);
    }
  } abandon_when_done{one_off.get()};
  Lane& lane = one_off != nullptr ? *one_off : lane_for_this_thread();  // may throw std::bad_alloc
  const std::uint64_t word = lane.word.load(std::memory_order_relaxed);
  if ((word & closed_bit) != 0) return false;
  const std::uint64_t position = word & position_mask;  // only this thread moves it
  // A claimed position must be published whatever happens, so what could fail comes first.
  Segment* fresh = nullptr;
  if (position % segment_slots == 0 && position != 0) {
    fresh = take_spare_segment();
    // The consumer read this segment last. Taking its lines back in one burst of stores costs
    // far less than a stall in every post, whose fetch_add would wait for its slot's line.
    for (Slot& spare : fresh->slot) spare.sequence.store(0, std::memory_order_relaxed);
  }

  // seq_cst (the same instruction as acq_rel on x86 and AArch64): a rest() that found this lane's
  // sleeping bit already set and no new claim reads the word before this add, and only a seq_cst
  // add puts that read ahead of the sleeping_ exchange below in the single total order, so that
  // the exchange sees rest()'s sleeping_ = true.
  const std::uint64_t seen = lane.word.fetch_add(1, std::memory_order_seq_cst);
  if ((seen & closed_bit) != 0) {  // closed meanwhile: a phantom position, never published
    if (fresh != nullptr) give_spare_segment(fresh);
    return false;
  }
  if (fresh != nullptr) {
    lane.tail_segment->next.store(fresh, std::memory_order_release);
    lane.tail_segment = fresh;
  }
  // The first claim on this lane since the consumer went to sleep: whoever takes `sleeping_`
  // back wakes it, after publishing.
  const bool wake_consumer =
      (seen & sleeping_bit) != 0 &&
      (lane.word.fetch_and(~sleeping_bit, std::memory_order_acq_rel) & sleeping_bit) != 0 &&
      sleeping_.exchange(false, std::memory_order_seq_cst);  // seq_cst: see rest()

  Slot& slot = lane.tail_segment->slot[position % segment_slots];
  try {
    ops.construct(slot.storage, source);
    slot.ops = &ops;
  } catch (...) {
    slot.ops = &no_task_ops;  // the position must still be published and run
    publish(slot, lane.producer_sequence_of(position));
    after_publish(wake_consumer);
    throw;
  }
  publish(slot, lane.producer_sequence_of(position));
  after_publish(wake_consumer);
  return true;
}

void TaskQueue::publish(Slot& slot, std::uint64_t sequence) const noexcept {
  if (asymmetric_fences_) {
    // A plain store: the consumer's rare heavy fence stands in for our half of the fence between
    // this store and after_publish()'s load.
    slot.sequence.store(sequence, std::memory_order_release);
    platform::light_fence();
  } else {
    slot.sequence.store(sequence, std::memory_order_seq_cst);
  }
}

void TaskQueue::after_publish(bool wake_consumer) noexcept {
  // Also when the consumer went to sleep waiting for a publish.
  if (wake_consumer || (publish_watched_.load(asymmetric_fences_ ? std::memory_order_relaxed
                                                                 : std::memory_order_seq_cst) &&
                        publish_watched_.exchange(false, std::memory_order_acq_rel))) {
    wake_(wake_context_);
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
  return new Segment();  // value-initialised: every sequence is 0, which no lane's matches
}

void TaskQueue::give_spare_segment(Segment* segment) noexcept {
  segment->next.store(nullptr, std::memory_order_relaxed);
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

std::uint64_t TaskQueue::claimed_end(const Lane& lane) const noexcept {
  // Positions claimed after close() are phantoms that nobody publishes.
  return std::min(lane.word.load(std::memory_order_acquire) & position_mask,
                  lane.closed_at.load(std::memory_order_acquire));
}

template <class Visit>
std::uint64_t TaskQueue::consume(Lane& lane, std::uint64_t limit, Visit visit) noexcept {
  const std::uint64_t first = lane.head;
  while (lane.head < limit) {
    if (!reach_head_segment(lane)) break;
    Slot& slot = lane.head_segment->slot[lane.head % segment_slots];
    if (slot.sequence.load(std::memory_order_acquire) != lane.sequence_of(lane.head)) break;
    visit(slot);
    ++lane.head;
  }
  return lane.head - first;
}

bool TaskQueue::published(Lane& lane, std::uint64_t position) noexcept {
  Segment* segment = lane.head_segment;
  if (position == lane.head_first + segment_slots) {
    segment = segment->next.load(std::memory_order_seq_cst);
    if (segment == nullptr) return false;
  }
  return segment->slot[position % segment_slots].sequence.load(std::memory_order_seq_cst) ==
         lane.sequence_of(position);
}

bool TaskQueue::segment_filled(Lane& lane) noexcept {
  // The producer links the next segment when it claims its first position, by when it has
  // published every position of this one (consume() checks each all the same).
  return reach_head_segment(lane) &&
         lane.head_segment->next.load(std::memory_order_acquire) != nullptr;
}

bool TaskQueue::reach_head_segment(Lane& lane) noexcept {
  if (lane.head != lane.head_first + segment_slots) return true;
  // Past the end of its segment: on to the next one, once linked.
  Segment* next = lane.head_segment->next.load(std::memory_order_acquire);
  if (next == nullptr) return false;
  give_spare_segment(std::exchange(lane.head_segment, next));
  lane.head_first += segment_slots;
  return true;
}

const TaskQueue::Lanes& TaskQueue::current_lanes() noexcept {
  // Arrays replaced since the last batch are no longer used by this thread: free them, unless a
  // batch is running (a task that runs the loop gets here, and the batch walks an older array).
  if (!in_batch_ && have_retired_.load(std::memory_order_acquire)) {
    std::lock_guard<std::mutex> lock(lanes_mutex_);
    retired_lanes_.clear();
    have_retired_.store(false, std::memory_order_relaxed);
  }
  return *lanes_.load(std::memory_order_acquire);
}

void TaskQueue::run_batch(ErrorFn on_error, void* error_context, bool stay_awake) noexcept {
  // Nested (a task ran the loop, and the wake-up was pending): the outer batch still holds its
  // place in every lane and asks for the next batch itself when it ends.
  if (in_batch_) return;
  in_batch_ = true;
  batch_thread_ = std::this_thread::get_id();
  // Awake: producers need not wake us. (A load first: producers read this line on every post.)
  if (sleeping_.load(std::memory_order_relaxed)) sleeping_.store(false, std::memory_order_relaxed);
  const auto run = [&](Slot& slot) {
    try {
      slot.ops->run(slot.storage);
    } catch (...) {
      on_error(error_context, std::current_exception());
    }
    slot.ops->destroy(slot.storage);
  };
  const Lanes& lanes = current_lanes();
  // The batch: what every lane held when it started...
  // (Staying awake, other threads' lanes are run as far as they are published, not as far as
  // their words say: reading a word takes its line from its producer, whose next post waits.)
  for (const auto& lane : lanes) {
    lane->batch_limit =
        stay_awake && lane->owner != batch_thread_ ? lane->head + extra_budget : claimed_end(*lane);
  }
  std::uint64_t ran = 0;
  bool abandoned = false;
  for (const auto& lane : lanes) {
    ran += consume(*lane, lane->batch_limit, run);
    abandoned = abandoned || lane->abandoned.load(std::memory_order_relaxed);
  }
  // ...then, while producers on other threads keep it busy, up to extra_budget more (what this
  // thread's own tasks posted waits for the next batch).
  bool take_partial = false;  // linger() found the next slot published, not a whole segment
  for (std::uint64_t extra = extra_budget; extra > 0;) {
    std::uint64_t more = 0;
    for (const auto& lane : lanes) {
      if (lane->owner == batch_thread_ || lane->head != lane->batch_limit) continue;
      // Behind the producer by a whole segment: reading slots it is still writing (or the
      // neighbours the hardware prefetches with them) would take their lines away from it.
      if (take_partial) {  // what is published (consume() stops at the first gap)
        lane->batch_limit = lane->head + extra - more;
      } else if (segment_filled(*lane)) {
        lane->batch_limit = std::min(lane->head_first + segment_slots, lane->head + extra - more);
      } else {
        continue;
      }
      more += consume(*lane, lane->batch_limit, run);
      if (more == extra) break;
    }
    ran += more;
    extra -= more;
    if (more != 0) {
      take_partial = false;
      continue;
    }
    const Lingered found = linger(lanes, ran);
    if (found == Lingered::nothing) break;
    take_partial = found == Lingered::published;
  }
  if (abandoned) drop_abandoned_lanes();
  if (stay_awake) {
    awake_ = true;
  } else {
    awake_ = false;
    rest();
  }
  in_batch_ = false;
}

bool TaskQueue::has_runnable() noexcept {
  const Lanes& lanes = current_lanes();
  return std::any_of(lanes.begin(), lanes.end(), [this](const std::shared_ptr<Lane>& lane) {
    return lane->owner == batch_thread_ ? claimed_end(*lane) != lane->head
                                        : published(*lane, lane->head);
  });
}

bool TaskQueue::has_published() noexcept {
  const Lanes& lanes = current_lanes();
  return std::any_of(lanes.begin(), lanes.end(), [this](const std::shared_ptr<Lane>& lane) {
    return published(*lane, lane->head);
  });
}

bool TaskQueue::settle() noexcept {
  if (!awake_) return false;
  awake_ = false;
  rest();
  return true;
}

TaskQueue::Lingered TaskQueue::linger(const Lanes& lanes, std::uint64_t batch_size) noexcept {
  // The batch's lanes: one registered since joins the next batch (rest() sees it).
  if (batch_size >= streaming_batch) linger_misses_ = 0;
  // Posts come one by one: just sleep.
  if (linger_misses_ >= max_linger_misses) return Lingered::nothing;
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + std::chrono::nanoseconds(linger_ns);
  bool patient = true;
  do {
    for (int i = 0; i < 16; ++i) {
      for (const auto& lane : lanes) {
        if (lane->owner == batch_thread_ || lane->head != lane->batch_limit) continue;
        // The segment's link, not the lane's word or the next slot: the producer writes those
        // on every post, and polling them would take their lines away from it every time.
        // After a while (the producer may have stopped mid-segment, as a batch of requests
        // does) the next slot too.
        if (segment_filled(*lane)) {
          linger_misses_ = 0;
          return Lingered::segment;
        }
        if (!patient && published(*lane, lane->head)) {
          linger_misses_ = 0;
          return Lingered::published;
        }
      }
      cpu_relax();
    }
    patient = std::chrono::steady_clock::now() < start + std::chrono::nanoseconds(patience_ns);
  } while (patient || std::chrono::steady_clock::now() < deadline);
  ++linger_misses_;
  return Lingered::nothing;
}

void TaskQueue::drop_abandoned_lanes() noexcept {
  // A lane whose thread exited is dropped once it is empty (its thread can post no more).
  std::lock_guard<std::mutex> lock(lanes_mutex_);
  const auto done = [this](const std::shared_ptr<Lane>& lane) {
    return lane->abandoned.load(std::memory_order_acquire) && lane->head == claimed_end(*lane);
  };
  if (std::none_of(owned_lanes_->begin(), owned_lanes_->end(), done)) return;
  try {
    auto next = std::make_unique<Lanes>();
    for (const auto& lane : *owned_lanes_) {
      if (!done(lane)) next->push_back(lane);
    }
    retired_lanes_.push_back(std::move(owned_lanes_));
    owned_lanes_ = std::move(next);
    lanes_.store(owned_lanes_.get(), std::memory_order_seq_cst);
    have_retired_.store(true, std::memory_order_release);
  } catch (...) {
    // Out of memory: keep the lanes for now, it is only a few kilobytes each.
  }
}

void TaskQueue::rest() noexcept {
  bool yielded = false;
  for (int spins = 0;; ++spins) {
    const Lanes* lanes = lanes_.load(std::memory_order_seq_cst);
    bool in_flight = false;  // a position claimed but not yet published
    for (const auto& lane : *lanes) {
      if (claimed_end(*lane) == lane->head) continue;
      // Published work beyond the batch (posted by its own tasks, or beyond its budget) is for
      // the next batch: ask for it (ev_async_send from the loop's own callback costs no system
      // call; the loop polls I/O first).
      if (published(*lane, lane->head)) {
        wake_(wake_context_);
        return;
      }
      in_flight = true;
    }
    // A claimed position is normally published within nanoseconds: give it a moment.
    if (in_flight && spins < max_rest_spins) {
      cpu_relax();
      continue;
    }
    // Before sleeping, let a producer that shares this core run and post on: once we sleep, each
    // of its posts would wake us (a system call on its side), and the scheduler would hand the
    // core to us at once to run that one task. Alone on the core, yield() returns at once.
    if (yield_before_sleep_ && !yielded) {
      yielded = true;
      std::this_thread::yield();
      continue;  // look again: what was posted meanwhile is the next batch
    }
    // Sleep: the next claim on an empty lane wakes us, and so does the producer of a position
    // still in flight (via publish_watched_).
    sleeping_.store(true, std::memory_order_seq_cst);
    bool awake = false;
    for (const auto& lane : *lanes) {
      std::uint64_t word = lane->word.load(std::memory_order_seq_cst);
      while (!awake && (word & closed_bit) == 0) {  // claims on a closed lane are phantoms
        if ((word & position_mask) != lane->head) {
          // Claimed since we looked: look again at once, unless the watch below covers it.
          awake = !in_flight || published(*lane, lane->head);
          break;
        }
        if ((word & sleeping_bit) != 0) break;  // marked by an earlier rest(), nothing since
        if (lane->word.compare_exchange_weak(word, word | sleeping_bit, std::memory_order_seq_cst,
                                             std::memory_order_seq_cst)) {
          break;
        }
      }
    }
    // A lane registered since we looked started with its sleeping bit set, and its producer
    // sees sleeping_ unless we already missed the lane: look again (seq_cst, see register_lane).
    awake = awake || lanes_.load(std::memory_order_seq_cst) != lanes;
    if (!awake && in_flight) {
      // Announce the watch, then fence against the publish (Dekker), then look again.
      publish_watched_.store(true, std::memory_order_seq_cst);
      if (!heavy_fence()) {
        awake = true;  // cannot sleep safely: come back after the loop polled for I/O
      } else {
        for (const auto& lane : *lanes) {
          if (claimed_end(*lane) != lane->head && published(*lane, lane->head)) awake = true;
        }
        if (awake && !publish_watched_.exchange(false, std::memory_order_acq_rel)) {
          awake = false;  // its producer took the watch back and wakes us itself
        }
      }
    }
    // Not sleeping after all: unless a producer took sleeping_ back (and so wakes us), ask for
    // the next batch ourselves.
    if (awake && sleeping_.exchange(false, std::memory_order_acq_rel)) wake_(wake_context_);
    return;
  }
}

void TaskQueue::close() noexcept {
  {
    std::lock_guard<std::mutex> lock(lanes_mutex_);
    closed_.store(true, std::memory_order_release);
    for (const auto& lane : *owned_lanes_) {
      const std::uint64_t seen = lane->word.fetch_or(closed_bit, std::memory_order_acq_rel);
      if ((seen & closed_bit) == 0) {
        lane->closed_at.store(seen & position_mask, std::memory_order_release);
      }
    }
  }
  wake_(wake_context_);  // the consumer notices it is drained
}

bool TaskQueue::has_pending() noexcept {
  const Lanes& lanes = current_lanes();
  return std::any_of(lanes.begin(), lanes.end(), [this](const std::shared_ptr<Lane>& lane) {
    return claimed_end(*lane) != lane->head;
  });
}

bool TaskQueue::closed_and_drained() noexcept {
  if (!closed_.load(std::memory_order_acquire)) return false;
  const Lanes& lanes = *lanes_.load(std::memory_order_acquire);
  return std::all_of(lanes.begin(), lanes.end(), [](const std::shared_ptr<Lane>& lane) {
    return lane->head == lane->closed_at.load(std::memory_order_acquire);
  });
}

void TaskQueue::discard_all() noexcept {
  // A task's destructor may post again; keep going until nothing is left.
  for (bool found = true; found;) {
    found = false;
    for (const auto& lane : current_lanes()) {
      if (consume(*lane, claimed_end(*lane), [](Slot& slot) { slot.ops->destroy(slot.storage); }) !=
          0) {
        found = true;
      }
    }
  }
}

std::size_t TaskQueue::lane_count() noexcept {
  return current_lanes().size();
}

}  // namespace detail
EVCXX_END_NAMESPACE
