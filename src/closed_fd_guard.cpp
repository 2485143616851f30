#include "closed_fd_guard.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <mutex>
#include <unordered_map>

namespace evcxx::detail {

namespace {

// Beyond this many starts between two iterations, checking every active Io is cheaper and keeps
// memory bounded.
constexpr std::size_t kMaxStartedFds = 1024;
// poll() refuses more descriptors than RLIMIT_NOFILE; this many is always fine in practice, and
// EINVAL halves it.
constexpr std::size_t kPollBatch = 1024;

std::mutex& registry_mutex() {
  static std::mutex mutex;
  return mutex;
}

// Never destroyed: Io objects with static storage may outlive main().
std::unordered_map<const Loop*, ClosedFdGuard*>& registry() {
  static auto* guards = new std::unordered_map<const Loop*, ClosedFdGuard*>();
  return *guards;
}

}  // namespace

std::atomic<double> closed_fd_check_seconds{1.0};

ClosedFdGuard* ClosedFdGuard::enrol(Loop& loop, Io& io) {
  const unsigned backend = ev_backend(loop.native());
  if (backend == EVBACKEND_SELECT) return nullptr;
  const Mode mode = backend == EVBACKEND_POLL ? Mode::every_iteration : Mode::started_and_timed;

  ClosedFdGuard* guard = nullptr;
  {
    std::lock_guard<std::mutex> lock(registry_mutex());
    auto found = registry().find(&loop);
    if (found != registry().end()) {
      guard = found->second;
    } else {
      auto inserted = registry().emplace(&loop, nullptr).first;
      try {
        guard = new ClosedFdGuard(loop, mode);
      } catch (...) {
        registry().erase(inserted);
        throw;
      }
      inserted->second = guard;
    }
  }
  io.guard_next_ = guard->ios_;
  if (guard->ios_ != nullptr) guard->ios_->guard_prev_ = &io;
  guard->ios_ = &io;
  return guard;
}

void ClosedFdGuard::withdraw(Io& io) noexcept {
  if (io.guard_prev_ != nullptr) {
    io.guard_prev_->guard_next_ = io.guard_next_;
  } else {
    ios_ = io.guard_next_;
  }
  if (io.guard_next_ != nullptr) io.guard_next_->guard_prev_ = io.guard_prev_;
  io.guard_prev_ = io.guard_next_ = nullptr;
  io.guard_ = nullptr;
  if (ios_ == nullptr) delete this;
}

void ClosedFdGuard::before_start(const Io& io) {
  if (mode_ == Mode::started_and_timed) {
    if (started_fds_.size() < kMaxStartedFds) {
      started_fds_.push_back(io.fd());
    } else {
      check_all_ = true;
    }
    arm_timer();
  }
  arm_prepare();
}

ClosedFdGuard::ClosedFdGuard(Loop& loop, Mode mode) : WatcherLink(loop), mode_(mode) {
  ev_prepare_init(&prepare_, [](struct ev_loop*, ev_prepare* w, int) noexcept {
    static_cast<ClosedFdGuard*>(w->data)->on_prepare();
  });
  prepare_.data = this;
  // Lowest priority: runs after the user's prepare watchers, right before libev registers and
  // polls the descriptors.
  ev_set_priority(&prepare_, EV_MINPRI);
  ev_init(&timer_, [](struct ev_loop*, ev_timer* w, int) noexcept {
    static_cast<ClosedFdGuard*>(w->data)->on_timer();
  });
  timer_.data = this;
  // Lowest priority too: while pending, it holds back only Idle watchers of the lowest priority.
  ev_set_priority(&timer_, EV_MINPRI);
}

ClosedFdGuard::~ClosedFdGuard() {
  if (attached()) stop_for_detach();
}

void ClosedFdGuard::stop_for_detach() noexcept {
  disarm_prepare();
  disarm_timer();
  std::lock_guard<std::mutex> lock(registry_mutex());
  registry().erase(loop_);
}

void ClosedFdGuard::on_prepare() noexcept {
  try {
    pollfds_.clear();
    if (mode_ == Mode::every_iteration || check_all_) {
      check_all_ = false;
      if (!collect_active()) {
        disarm_prepare();
        return;
      }
    } else {
      for (int fd : started_fds_) pollfds_.push_back(pollfd{fd, 0, 0});
    }
    started_fds_.clear();
    if (mode_ == Mode::started_and_timed) disarm_prepare();
    fail_closed();
  } catch (...) {
    // Out of memory: skip this check; the next one may succeed.
  }
}

void ClosedFdGuard::on_timer() noexcept {
  try {
    const double interval = closed_fd_check_seconds.load(std::memory_order_relaxed);
    pollfds_.clear();
    if (interval <= 0 || !collect_active()) {
      disarm_timer();
      return;
    }
    if (interval != timer_.repeat) {
      timer_.repeat = interval;
      ev_timer_again(raw_loop_, &timer_);
    }
    fail_closed();
  } catch (...) {
    // Out of memory: skip this check; the next one may succeed.
  }
}

bool ClosedFdGuard::collect_active() {
  for (Io* io = ios_; io != nullptr; io = io->guard_next_) {
    if (io->active()) pollfds_.push_back(pollfd{io->fd(), 0, 0});
  }
  return !pollfds_.empty();
}

void ClosedFdGuard::fail_closed() {
  // One poll() call (per batch) with no events requested: it reports POLLNVAL for every
  // descriptor that is not open, and never blocks.
  std::size_t batch = kPollBatch;
  for (std::size_t i = 0; i < pollfds_.size();) {
    const std::size_t count = std::min(batch, pollfds_.size() - i);
    if (::poll(&pollfds_[i], static_cast<nfds_t>(count), 0) >= 0) {
      i += count;
    } else if (errno == EINVAL && batch > 1) {
      batch /= 2;
    } else if (errno != EINTR) {
      pollfds_.resize(i);  // keep what was checked; the rest waits for the next check
    }
  }
  closed_fds_.clear();
  for (const pollfd& p : pollfds_) {
    if ((p.revents & POLLNVAL) != 0) closed_fds_.push_back(p.fd);
  }
  if (closed_fds_.empty()) return;
  std::sort(closed_fds_.begin(), closed_fds_.end());
  // Failing only stops and feeds; no callback runs here, so the list stays as it is.
  for (Io* io = ios_; io != nullptr; io = io->guard_next_) {
    if (io->active() && std::binary_search(closed_fds_.begin(), closed_fds_.end(), io->fd())) {
      io->fail_closed_fd();
    }
  }
}

void ClosedFdGuard::arm_prepare() noexcept {
  if (ev_is_active(&prepare_)) return;
  ev_prepare_start(raw_loop_, &prepare_);
  ev_unref(raw_loop_);  // a check never keeps run() from returning
}

void ClosedFdGuard::disarm_prepare() noexcept {
  if (!ev_is_active(&prepare_)) return;
  ev_ref(raw_loop_);
  ev_prepare_stop(raw_loop_, &prepare_);
}

void ClosedFdGuard::arm_timer() noexcept {
  if (ev_is_active(&timer_)) return;
  const double interval = closed_fd_check_seconds.load(std::memory_order_relaxed);
  if (!(interval > 0)) return;
  ev_timer_set(&timer_, interval, interval);
  ev_timer_start(raw_loop_, &timer_);
  ev_unref(raw_loop_);
}

void ClosedFdGuard::disarm_timer() noexcept {
  if (!ev_is_active(&timer_)) return;
  ev_ref(raw_loop_);
  ev_timer_stop(raw_loop_, &timer_);
}

}  // namespace evcxx::detail
