#include "evcxx/embed.hpp"

#include <exception>
#include <stdexcept>
#include <string>
#include <utility>

#include "closed_fd_guard.hpp"
#include "embed_graph.hpp"
#include "io_uring_check.hpp"

EVCXX_BEGIN_NAMESPACE

// Membership in the inner Loop's watcher list, so that the inner Loop's destruction stops the
// Embed before libev would keep polling a backend descriptor that no longer exists.
class Embed::InnerLink final : public detail::WatcherLink {
 public:
  InnerLink(Loop& inner, Embed& embed) : WatcherLink(inner), embed_(embed) {}
  Loop* inner() const noexcept { return loop_; }

 private:
  void stop_for_detach() noexcept override { embed_.stop(); }

  Embed& embed_;
};

namespace {

// ev_embed_start() starts an io, a prepare and (with fork support) a fork watcher of its own in
// the outer loop, each holding a reference besides the embed watcher's.
constexpr int internal_references = 2 + (EV_FORK_ENABLE ? 1 : 0);

std::string backend_name(unsigned backend) {
  switch (backend) {
    case EVBACKEND_SELECT:
      return "select";
    case EVBACKEND_POLL:
      return "poll";
    case EVBACKEND_EPOLL:
      return "epoll";
    case EVBACKEND_KQUEUE:
      return "kqueue";
    case EVBACKEND_DEVPOLL:
      return "devpoll";
    case EVBACKEND_PORT:
      return "port";
    case EVBACKEND_LINUXAIO:
      return "linuxaio";
    case EVBACKEND_IOURING:
      return "iouring";
    default:
      return "backend " + std::to_string(backend);
  }
}

}  // namespace

Embed::Embed(Loop& loop, Loop& inner, Callable&& callback)
    : Embed(loop, deferred, inner, std::move(callback)) {
  start();
}

Embed::Embed(Loop& loop, deferred_t, Loop& inner, Callable&& callback)
    : Watcher(loop, std::move(callback)) {
  detail::reject_broken_io_uring(loop.native(), "Embed");
  check_inner(inner);
  ev_prepare_init(&inner_fd_check_, &Embed::check_inner_fds);
  inner_fd_check_.data = this;
  ev_set_priority(&inner_fd_check_, EV_MAXPRI);  // libev's embed prepare has EV_MINPRI
  inner_link_ = std::make_unique<InnerLink>(inner, *this);
  edge_ = new detail::EmbedEdge{loop.native(), inner.native()};
  ev_embed_set(&watcher_, inner.native());
}

Embed::~Embed() {
  stop();  // before inner_link_ goes away
  detail::release_embedding(edge_);
}

void Embed::set(Loop& inner) {
  check_inner(inner);
  auto link = std::make_unique<InnerLink>(inner, *this);
  auto* const edge = new detail::EmbedEdge{raw_loop_, inner.native()};
  restart_with([&] {
    inner_link_ = std::move(link);
    detail::release_embedding(std::exchange(edge_, edge));
    ev_embed_set(&watcher_, inner.native());
  });
}

void Embed::sweep() {
  require_attached("Embed::sweep()");
  Loop* const inner_loop = inner();
  if (inner_loop == nullptr) {
    throw std::logic_error(
        "evcxx: Embed::sweep() after its inner Loop was destroyed; set() a live inner loop");
  }
  if (inner_loop->in_release_hook()) {
    // libev would abort ("ev_loop recursion during release detected").
    throw std::logic_error(
        "evcxx: Embed::sweep() inside the inner loop's release/acquire hook; the hooks may only "
        "lock and unlock");
  }
  ev_embed_sweep(raw_loop_, &watcher_);
  // Only the inner loop from here on: an inner callback may have destroyed this Embed.
  if (std::exception_ptr error = inner_loop->take_exception()) std::rethrow_exception(error);
}

Loop* Embed::inner() const noexcept {
  return inner_link_ != nullptr ? inner_link_->inner() : nullptr;
}

void Embed::start_native() {
  if (inner() == nullptr) {
    throw std::logic_error(
        "evcxx: Embed::start() after its inner Loop was destroyed; set() a live inner loop");
  }
  if (ev_is_active(&watcher_)) return;
  detail::add_embedding(*edge_);  // throws where libev would abort
  ev_embed_start(raw_loop_, &watcher_);
  // An active Embed holds its loop like any other watcher, once; libev's own fork handler stops
  // and restarts it as a whole, which leaves this balance as it is.
  for (int i = 0; i < internal_references; ++i) ev_unref(raw_loop_);
  ev_prepare_start(raw_loop_, &inner_fd_check_);
  ev_unref(raw_loop_);  // part of the Embed's one reference
  forward_inner_exceptions(true);
}

void Embed::stop_native() noexcept {
  forward_inner_exceptions(false);
  if (ev_is_active(&watcher_)) {
    for (int i = 0; i < internal_references; ++i) ev_ref(raw_loop_);
  }
  if (ev_is_active(&inner_fd_check_)) {
    ev_ref(raw_loop_);
    ev_prepare_stop(raw_loop_, &inner_fd_check_);
  }
  ev_embed_stop(raw_loop_, &watcher_);  // also drops a pending event of an inactive watcher
}

void Embed::check_inner_fds(struct ev_loop*, ev_prepare* w, int) noexcept {
  if (Loop* const inner_loop = static_cast<Embed*>(w->data)->inner()) {
    detail::ClosedFdGuard::check_now(*inner_loop);
  }
}

void Embed::forward_inner_exceptions(bool on) noexcept {
  // libev runs the inner loop from its own prepare watcher too, outside any sweep(): only a hook
  // around every inner invocation sees all exceptions, and the outer loop must rethrow them.
  if (hooked_inner_ != nullptr) {
    hooked_inner_->set_invoke_pending_hook({});
    hooked_inner_ = nullptr;
  }
  Loop* const inner_loop = inner();
  if (!on || inner_loop == nullptr || loop_ == nullptr) return;
  Loop* const outer = loop_;
  try {
    inner_loop->set_invoke_pending_hook([outer](Loop& inner) {
      // A callback below may stop the Embed, which destroys this hook: copy what we need first.
      Loop* const target = outer;
      ev_invoke_pending(inner.native());
      // libev's embed prepare registers what the inner callbacks changed right after this.
      detail::recheck_closed_fds(inner);
      if (std::exception_ptr error = inner.take_exception()) {
        target->capture_exception(std::move(error));
      }
    });
    hooked_inner_ = inner_loop;
  } catch (...) {
    // Out of memory for the hook: sweep() still rethrows what it sees.
  }
}

void Embed::check_inner(const Loop& inner) const {
  if (inner.native() == raw_loop_) {
    throw std::invalid_argument("evcxx: Embed cannot embed a loop into itself");
  }
  const unsigned backend = ev_backend(inner.native());
  if ((backend & Loop::embeddable_backends().raw()) == 0) {
    throw std::invalid_argument(
        "evcxx: Embed: the inner loop uses the " + backend_name(backend) +
        " backend, which libev cannot embed; create the inner Loop with one of "
        "Loop::embeddable_backends() & Loop::supported_backends() (on Linux: Backend::epoll; "
        "libev lists io_uring as embeddable, but cannot embed it)");
  }
}

EVCXX_END_NAMESPACE
