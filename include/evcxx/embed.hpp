#pragma once

#include <ev.h>

#include <memory>

#include "evcxx/export.hpp"
#include "evcxx/loop.hpp"
#include "evcxx/watcher.hpp"

EVCXX_BEGIN_NAMESPACE
namespace detail {
struct EmbedEdge;
}

/// ev_embed: runs an inner Loop inside an outer one, so that one run() of the outer loop serves
/// the I/O of both, for example to give a group of descriptors their own backend.
///
/// libev supports only I/O watchers (Io) in the inner loop: its timers are served late, and an
/// Async send, Loop::post() or Loop::stop() aimed at the inner loop does not wake anything (an
/// embedded loop never blocks itself, so libev skips the wake-up); they are seen at the next
/// sweep. Both loops belong to the outer loop's thread.
///
/// Not every backend can be embedded: the inner loop's backend must be in
/// Loop::embeddable_backends() (on Linux, epoll: create the inner loop with Backend::epoll, not
/// with a set that includes io_uring, which libev prefers and cannot embed).
///
/// The callback runs when the inner loop may have events; it must call sweep() (directly or later,
/// e.g. from an idle watcher), or it is called again at once. Without a callback the Embed sweeps
/// by itself. (libev also runs the inner loop on its own, before the outer loop waits, whenever
/// I/O watchers of the inner loop were started or changed.)
///
/// While the Embed is active it installs the inner Loop's invoke-pending hook
/// (Loop::set_invoke_pending_hook) and removes it when it stops: an exception thrown by an
/// inner-loop callback, wherever libev ran it from, is handed to the outer loop, whose run()
/// rethrows it. Do not set that hook yourself on an embedded loop. While the Embed is stopped,
/// sweep() rethrows such an exception itself.
///
/// An active Embed holds one reference on the outer loop, like every other watcher (libev starts
/// io, prepare and fork watchers of its own behind it; evcxx counts them as one), so one
/// Loop::unref() beside it lets the outer run() return. The inner loop's watchers hold the inner
/// loop only.
///
/// The inner Loop may be destroyed first: the Embed is then stopped and start() / sweep() throw
/// std::logic_error until set() gives it another inner loop.
///
/// epoll can hold neither a cycle of loops nor more than four of them nested in one another, and
/// libev aborts on either: start() throws std::logic_error for an Embed that would close a cycle
/// or nest a fifth loop. An embedding counts from its first start until one of its two loops is
/// destroyed, even once its Embed stopped (libev leaves the inner loop's epoll set in the outer
/// one).
///
/// Thread-safety: every member is for the outer loop's thread.
class EVCXX_API Embed final : public Watcher<Embed, ev_embed, void()> {
 public:
  /// Embeds `inner` into `loop`; an empty callback sweeps automatically. Active on construction.
  /// Throws: std::invalid_argument if inner's backend cannot be embedded or inner is `loop`
  /// itself; std::logic_error if `loop` uses libev 4.33's io_uring backend (which aborts on the
  /// registration changes an Embed makes).
  Embed(Loop& loop, Loop& inner, Callable&& callback = {});
  /// Created stopped; start() it later.
  /// Throws: as the active constructor.
  Embed(Loop& loop, deferred_t, Loop& inner, Callable&& callback = {});
  /// Stops the watcher.
  ~Embed() override;

  /// Embeds another inner loop; an active watcher is restarted.
  /// Throws: as the constructor.
  void set(Loop& inner);
  /// start() with the parameters it has (the overloads below set them first).
  using Watcher::start;
  /// set(inner), then start().
  /// Throws: std::logic_error if its Loop is gone (changing nothing); as set() and start().
  void start(Loop& inner) {
    require_attached("start(inner)");
    set(inner);
    start();
  }
  /// Runs the inner loop once without blocking (ev_embed_sweep).
  /// Throws: the first exception one of the inner loop's callbacks threw; std::logic_error if
  /// either loop is gone.
  void sweep();

  /// The inner loop, or nullptr once it was destroyed.
  Loop* inner() const noexcept;

 private:
  friend class Watcher<Embed, ev_embed, void()>;
  class InnerLink;

  void start_native();
  void stop_native() noexcept;
  // Without a callback, the Embed sweeps by itself.
  void run_without_callback() { sweep(); }
  void forward_inner_exceptions(bool on) noexcept;
  void check_inner(const Loop& inner) const;

  static void check_inner_fds(struct ev_loop*, ev_prepare* w, int) noexcept;

  // Runs the inner loop's closed-descriptor check before libev's own embed prepare watcher
  // registers the inner loop's descriptors (which the inner loop's check would come too late for).
  ev_prepare inner_fd_check_;
  std::unique_ptr<InnerLink> inner_link_;  // in the inner Loop's list: stops us when it dies
  Loop* hooked_inner_ = nullptr;           // whose invoke-pending hook we installed
  detail::EmbedEdge* edge_ = nullptr;      // from this loop to the inner one (embed_graph.hpp)
};

EVCXX_END_NAMESPACE
