#include "closed_fd_guard.hpp"

#include <fcntl.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <mutex>
#include <stdexcept>
#include <string>

EVCXX_BEGIN_NAMESPACE
namespace detail {

namespace {

// libev has no call that returns a loop's backend descriptor, but ev_embed_start() copies it into
// the embed watcher's io: embed the loop into a private loop that never runs, read it, unembed.
int backend_fd_of(struct ev_loop* loop) noexcept {
  static std::mutex mutex;
  std::lock_guard<std::mutex> lock(mutex);
  // (ev.h's flags and backends are two unnamed enums: C++20 deprecates mixing them unconverted.)
  static struct ev_loop* const scratch = ev_loop_new(
      static_cast<unsigned>(EVBACKEND_SELECT) |
      static_cast<unsigned>(EVFLAG_NOENV | EVFLAG_NOINOTIFY | EVFLAG_NOSIGMASK | EVFLAG_NOTIMERFD));
  if (scratch == nullptr || (ev_backend(loop) & ev_embeddable_backends()) == 0) return -1;
  ev_embed embed;
  ev_embed_init(&embed, nullptr, loop);
  ev_embed_start(scratch, &embed);
  const int fd = embed.io.fd;
  ev_embed_stop(scratch, &embed);
  return fd;
}

// Beyond this many changes between two iterations, checking every active Io is cheaper and keeps
// memory bounded.
constexpr std::size_t max_changed_fds = 1024;
// poll() refuses more descriptors than RLIMIT_NOFILE; this many is always fine in practice, and
// EINVAL halves it.
constexpr std::size_t poll_batch = 1024;

}  // namespace

std::atomic<double> closed_fd_check_seconds{1.0};

ClosedFdGuard* ClosedFdGuard::enrol(Loop& loop, Io& io) {
  const unsigned backend = ev_backend(loop.native());
  if (backend == EVBACKEND_SELECT) return nullptr;
  // poll() aborts on any closed descriptor in its set; the one-shot backends register every
  // descriptor that fired again in the next iteration.
  const bool every_iteration =
      backend == EVBACKEND_POLL || backend == EVBACKEND_IOURING || backend == EVBACKEND_LINUXAIO;
  const Mode mode = every_iteration ? Mode::every_iteration : Mode::changed_and_timed;

  ClosedFdGuard*& slot = fd_guard_slot(loop);
  if (slot == nullptr) slot = new ClosedFdGuard(loop, mode);
  ClosedFdGuard* const guard = slot;
  io.guard_next_ = guard->ios_;
  if (guard->ios_ != nullptr) guard->ios_->guard_prev_ = &io;
  guard->ios_ = &io;
  return guard;
}

ClosedFdGuard* ClosedFdGuard::of(Loop& loop) noexcept {
  return fd_guard_slot(loop);
}

void ClosedFdGuard::check_now(Loop& loop) noexcept {
  // Only the loop thread creates or deletes its guard, so it stays valid here.
  ClosedFdGuard* guard = of(loop);
  if (guard != nullptr && ev_is_active(&guard->prepare_)) guard->on_prepare();
}

void recheck_closed_fds(Loop& loop) noexcept {
  ClosedFdGuard::recheck(loop);
}

void ClosedFdGuard::recheck(Loop& loop) noexcept {
  if (ClosedFdGuard* const guard = of(loop)) guard->check_before_registration();
}

void ClosedFdGuard::check_before_registration() noexcept {
  // What libev registers next: the changes not yet checked by the guard's own prepare (kept for
  // it, so that what is closed later is still caught there) and, once that prepare ran in this
  // iteration, what it checked, which libev has not registered yet.
  const bool in_phase = phase_checked_ && ev_iteration(raw_loop_) == phase_iteration_;
  const bool all = check_all_ || (mode_ == Mode::every_iteration && in_phase);
  if (!all && changed_fds_.empty() && (!in_phase || phase_fds_.empty())) return;
  pollfds_.clear();
  try {
    if (all) {
      collect_active();
    } else {
      if (in_phase) add_to_poll(phase_fds_);
      add_to_poll(changed_fds_);
    }
    fail_closed();
  } catch (...) {
    fail_closed_one_by_one();
  }
}

void ClosedFdGuard::add_to_poll(const std::vector<int>& fds) {
  for (int fd : fds) pollfds_.push_back(pollfd{fd, 0, 0});
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
  if (ios_ != nullptr) return;
  if (loop_gone_) {
    delete this;
    return;
  }
  // No Io left: nothing to check (libev makes no system call for a descriptor nothing watches
  // any more). The guard stays for the next Io, which so costs no allocation.
  disarm_prepare();
  disarm_timer();
  changed_fds_.clear();
  phase_fds_.clear();
  check_all_ = false;
}

void ClosedFdGuard::release_after_detach(ClosedFdGuard* guard) noexcept {
  if (guard == nullptr) return;
  guard->loop_gone_ = true;
  if (guard->ios_ == nullptr) delete guard;
}

void ClosedFdGuard::before_start(const Io& io) noexcept {
  // Listed in either mode: a recheck before the guard's prepare ran (a watcher started by a
  // Prepare) goes by the list.
  note(io.fd());
  if (mode_ == Mode::changed_and_timed) arm_timer();
}

int ClosedFdGuard::epoll_fd() noexcept {
  if (epoll_fd_ != -2) return epoll_fd_;
  const int fd = ev_backend(raw_loop_) == EVBACKEND_EPOLL ? backend_fd_of(raw_loop_) : -1;
  // libev replaces the descriptor after the fork watchers ran, just before it polls: until that
  // iteration's poll (which increments the count) the value is only good for now.
  if (!forked_ || ev_iteration(raw_loop_) != fork_iteration_) {
    forked_ = false;
    epoll_fd_ = fd;
  }
  return fd;
}

void ClosedFdGuard::reject_epoll_fd(int fd) {
  throw std::invalid_argument(
      "evcxx: Io cannot watch descriptor " + std::to_string(fd) +
      ", which is its own Loop's epoll descriptor (a stale number of a descriptor closed before "
      "the Loop was created?); epoll cannot watch itself");
}

void ClosedFdGuard::note(int fd) noexcept {
  // A watcher started and stopped again and again (a client's write watcher) is listed once.
  if (!check_all_ && (changed_fds_.empty() || changed_fds_.back() != fd)) {
    if (changed_fds_.size() < max_changed_fds) {
      try {
        changed_fds_.push_back(fd);
      } catch (...) {
        check_all_ = true;  // out of memory: check everything instead
      }
    } else {
      check_all_ = true;
    }
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
  ev_fork_init(&fork_, [](struct ev_loop*, ev_fork* w, int) noexcept {
    static_cast<ClosedFdGuard*>(w->data)->on_fork();
  });
  fork_.data = this;
  if (mode_ == Mode::changed_and_timed) {
    // Runs whenever libev is about to register every descriptor again (ev_loop_fork, or epoll's
    // own recovery from stale registrations), before the prepare watchers.
    ev_fork_start(raw_loop_, &fork_);
    ev_unref(raw_loop_);
  }
}

ClosedFdGuard::~ClosedFdGuard() {
  if (attached()) stop_for_detach();
}

void ClosedFdGuard::stop_for_detach() noexcept {
  disarm_prepare();
  disarm_timer();
  if (ev_is_active(&fork_)) {
    ev_ref(raw_loop_);
    ev_fork_stop(raw_loop_, &fork_);
  }
  fd_guard_slot(*loop_) = nullptr;
}

void ClosedFdGuard::on_prepare() noexcept {
  const bool all = mode_ == Mode::every_iteration || check_all_;
  check_all_ = false;
  if (mode_ == Mode::changed_and_timed) disarm_prepare();
  pollfds_.clear();
  phase_fds_.clear();
  phase_checked_ = true;
  phase_iteration_ = ev_iteration(raw_loop_);
  try {
    if (!all) {
      add_to_poll(changed_fds_);
      phase_fds_.swap(changed_fds_);
    } else if (!collect_active()) {
      disarm_prepare();
    }
    changed_fds_.clear();
    fail_closed();
  } catch (...) {
    // Out of memory: libev must still never meet a closed descriptor, so ask one by one.
    changed_fds_.clear();
    check_all_ = true;  // the list may be incomplete: a recheck looks at everything
    fail_closed_one_by_one();
  }
}

void ClosedFdGuard::fail_closed_one_by_one() noexcept {
  for (Io* io = ios_; io != nullptr; io = io->guard_next_) {
    if (io->active() && ::fcntl(io->fd(), F_GETFD) == -1 && errno == EBADF) io->fail_closed_fd();
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

void ClosedFdGuard::on_fork() noexcept {
  check_all_ = true;
  arm_prepare();
  epoll_fd_ = -2;  // libev creates a new one
  forked_ = true;
  fork_iteration_ = ev_iteration(raw_loop_);
}

bool ClosedFdGuard::collect_active() {
  for (Io* io = ios_; io != nullptr; io = io->guard_next_) {
    if (io->active()) pollfds_.push_back(pollfd{io->fd(), 0, 0});
  }
  return !pollfds_.empty();
}

void ClosedFdGuard::fail_closed() {
  closed_fds_.clear();
  if (pollfds_.size() == 1) {
    // One descriptor (the usual case: a watcher started, stopped or set): fcntl() answers for a
    // third less than poll() on this path.
    const int fd = pollfds_.front().fd;
    if (::fcntl(fd, F_GETFD) != -1 || errno != EBADF) return;
    closed_fds_.push_back(fd);
    fail_listed();
    return;
  }
  // One poll() call (per batch) with no events requested: it reports POLLNVAL for every
  // descriptor that is not open, and never blocks.
  std::size_t batch = poll_batch;
  for (std::size_t i = 0; i < pollfds_.size();) {
    const std::size_t count = std::min(batch, pollfds_.size() - i);
    if (::poll(&pollfds_[i], static_cast<nfds_t>(count), 0) >= 0) {
      i += count;
    } else if (errno == EINVAL && batch > 1) {
      batch /= 2;
    } else if (errno != EINTR) {
      fail_closed_one_by_one();  // out of kernel memory: libev must still not meet one
      return;
    }
  }
  for (const pollfd& p : pollfds_) {
    if ((p.revents & POLLNVAL) != 0) closed_fds_.push_back(p.fd);
  }
  if (closed_fds_.empty()) return;
  std::sort(closed_fds_.begin(), closed_fds_.end());
  fail_listed();
}

void ClosedFdGuard::fail_listed() noexcept {
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

}  // namespace detail
EVCXX_END_NAMESPACE
