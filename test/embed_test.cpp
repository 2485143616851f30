#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <evcxx/async.hpp>
#include <evcxx/embed.hpp>
#include <evcxx/io.hpp>
#include <evcxx/periodic.hpp>
#include "support.hpp"

using namespace std::chrono_literals;
using evcxx::Embed;
using evcxx::Loop;

using evcxx_test::Deadline;

namespace {

// An inner loop whose backend libev can embed here, or nullptr when this system has none.
std::unique_ptr<Loop> make_embeddable_loop() {
  const evcxx::Backends usable = Loop::embeddable_backends() & Loop::supported_backends();
  if (usable.empty()) return nullptr;
  return std::make_unique<Loop>(evcxx::LoopFlags(usable));
}

#define REQUIRE_EMBEDDABLE(inner)                                                          \
  auto inner = make_embeddable_loop();                                                     \
  if (!inner) {                                                                            \
    GTEST_SKIP() << "libev reports no backend that is both supported and embeddable here " \
                 << "(embeddable: " << Loop::embeddable_backends().raw()                   \
                 << ", supported: " << Loop::supported_backends().raw() << ")";            \
  }

// A plain libev I/O watcher: the kind libev fully supports inside an embedded loop.
class ReadWatcher {
 public:
  ReadWatcher(Loop& loop, int fd, std::function<void()> on_readable)
      : loop_(loop.native()), on_readable_(std::move(on_readable)) {
    ev_io_init(&io_, &ReadWatcher::trampoline, fd, EV_READ);
    io_.data = this;
    ev_io_start(loop_, &io_);
  }
  ~ReadWatcher() { ev_io_stop(loop_, &io_); }
  void stop() { ev_io_stop(loop_, &io_); }

 private:
  static void trampoline(struct ev_loop*, ev_io* w, int) noexcept {
    static_cast<ReadWatcher*>(w->data)->on_readable_();
  }
  struct ev_loop* loop_;
  std::function<void()> on_readable_;
  ev_io io_;
};

class Pipe {
 public:
  Pipe() {
    if (::pipe(fds_) != 0) throw std::runtime_error("pipe failed");
  }
  ~Pipe() {
    ::close(fds_[0]);
    ::close(fds_[1]);
  }
  int read_end() const { return fds_[0]; }
  void put() const { ASSERT_EQ(::write(fds_[1], "x", 1), 1); }
  char take() const {
    char byte = 0;
    return ::read(fds_[0], &byte, 1) == 1 ? byte : '\0';
  }

 private:
  int fds_[2];
};

}  // namespace

TEST(Embed, InnerIoFiresThroughTheOuterLoop) {
  REQUIRE_EMBEDDABLE(inner);
  Loop outer;
  Pipe pipe;
  char received = '\0';
  Embed embed(outer, *inner);  // no callback: sweeps by itself
  ReadWatcher reader(*inner, pipe.read_end(), [&] {
    received = pipe.take();
    outer.break_loop();
  });
  EXPECT_TRUE(embed.active());
  EXPECT_EQ(embed.inner(), inner.get());
  Deadline deadline(outer);
  // libev first runs the inner loop itself to register its new descriptors; after that, only the
  // inner backend's descriptor, watched by the outer loop, can report the pipe.
  outer.run(evcxx::Run::nowait);
  ASSERT_EQ(received, '\0');

  pipe.put();
  outer.run();

  ASSERT_FALSE(deadline.expired()) << "the inner loop's I/O never reached the outer loop";
  EXPECT_EQ(received, 'x');
}

TEST(Embed, CallbackDecidesWhenToSweep) {
  REQUIRE_EMBEDDABLE(inner);
  Loop outer;
  Pipe pipe;
  int embed_calls = 0;
  int reads = 0;
  Embed* self = nullptr;
  Embed embed(outer, *inner, [&] {
    ++embed_calls;
    self->sweep();
  });
  self = &embed;
  ReadWatcher reader(*inner, pipe.read_end(), [&] {
    pipe.take();
    if (++reads == 2) outer.break_loop();
  });
  Deadline deadline(outer);

  pipe.put();
  pipe.put();
  while (reads < 2 && !deadline.expired()) outer.run(evcxx::Run::once);

  ASSERT_FALSE(deadline.expired());
  EXPECT_EQ(reads, 2);
  EXPECT_GE(embed_calls, 1);

  // Replacing the callback by an empty one switches to sweeping automatically.
  embed.set_callback({});
  pipe.put();
  while (reads < 3 && !deadline.expired()) outer.run(evcxx::Run::once);
  EXPECT_EQ(reads, 3);
}

TEST(Embed, InnerCallbackExceptionIsRethrownByOuterRun) {
  REQUIRE_EMBEDDABLE(inner);
  Loop outer;
  Pipe pipe;
  Embed embed(outer, *inner);
  int reads = 0;
  ReadWatcher reader(*inner, pipe.read_end(), [&] {
    pipe.take();
    ++reads;
  });
  // Sent on this thread, so its callback runs within the next sweep of the inner loop; the
  // pipe makes the inner loop ready, hence the outer loop sweep it.
  evcxx::Async inner_async(*inner, [] { throw std::runtime_error("inner failure"); });
  Deadline deadline(outer);

  inner_async.send();
  pipe.put();
  EXPECT_THROW(
      {
        try {
          outer.run();
        } catch (const std::runtime_error& e) {
          EXPECT_STREQ(e.what(), "inner failure");
          throw;
        }
      },
      std::runtime_error);
  EXPECT_FALSE(deadline.expired());
  EXPECT_EQ(reads, 1);  // the inner I/O that was due was still served

  // Both loops stay usable.
  bool ran = false;
  inner_async.set_callback([&] {
    ran = true;
    outer.break_loop();
  });
  inner_async.send();
  pipe.put();
  outer.run();
  EXPECT_FALSE(deadline.expired());
  EXPECT_TRUE(ran);
  EXPECT_EQ(reads, 2);
  EXPECT_TRUE(embed.active());
}

TEST(Embed, InnerCallbackMayStopOrDestroyTheEmbed) {
  REQUIRE_EMBEDDABLE(inner);
  Loop outer;
  Pipe pipe;
  auto embed = std::make_unique<Embed>(outer, *inner);
  ReadWatcher reader(*inner, pipe.read_end(), [&] { pipe.take(); });
  evcxx::Async stopper(*inner, [&] {
    embed->stop();
    outer.break_loop();  // libev may run the inner loop before the outer one waits
  });
  Deadline deadline(outer);
  stopper.send();
  pipe.put();
  while (embed->active() && !deadline.expired()) outer.run(evcxx::Run::once);
  ASSERT_FALSE(deadline.expired());

  embed->start();
  stopper.set_callback([&] {
    embed.reset();
    outer.break_loop();
  });
  stopper.send();
  pipe.put();
  outer.run();
  EXPECT_FALSE(deadline.expired());
  EXPECT_EQ(embed, nullptr);
}

TEST(Embed, SweepRunsTheInnerLoopOnceAndRethrowsItsExceptions) {
  REQUIRE_EMBEDDABLE(inner);
  Loop outer;
  Embed embed(outer, evcxx::deferred, *inner);
  int calls = 0;
  evcxx::Async inner_async(*inner, [&] {
    if (++calls == 2) throw std::logic_error("second");
  });
  // An embedded loop never blocks itself, so libev does not wake it for an Async; the send is
  // seen by the next sweep.
  inner_async.send();
  embed.sweep();
  EXPECT_EQ(calls, 1);
  inner_async.send();
  EXPECT_THROW(embed.sweep(), std::logic_error);
  EXPECT_EQ(calls, 2);
  embed.sweep();  // nothing new: nothing runs, nothing is thrown
  EXPECT_EQ(calls, 2);
}

TEST(Embed, BackendThatCannotBeEmbeddedIsAnInvalidArgument) {
  if (!Loop::supported_backends().contains(evcxx::Backend::select) ||
      Loop::embeddable_backends().contains(evcxx::Backend::select)) {
    GTEST_SKIP() << "select is not a supported, non-embeddable backend here";
  }
  Loop outer;
  Loop select_loop(evcxx::Backend::select);
  try {
    Embed embed(outer, select_loop);
    FAIL() << "embedding a select loop did not throw";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("select"), std::string::npos) << e.what();
  }
  EXPECT_THROW(Embed(outer, evcxx::deferred, select_loop), std::invalid_argument);

  // A rejected set() keeps the previous inner loop.
  auto good = make_embeddable_loop();
  if (!good) return;
  Embed embed(outer, *good);
  EXPECT_THROW(embed.set(select_loop), std::invalid_argument);
  EXPECT_EQ(embed.inner(), good.get());
  EXPECT_TRUE(embed.active());
}

TEST(Embed, IoUringLoopIsRefusedRatherThanAborting) {
  // libev lists io_uring as embeddable, yet ev_embed_start() asserts on an io_uring loop.
  EXPECT_FALSE(Loop::embeddable_backends().contains(evcxx::Backend::iouring));
  if (!Loop::supported_backends().contains(evcxx::Backend::iouring)) {
    GTEST_SKIP() << "io_uring is not supported here";
  }
  Loop outer;
  Loop uring(evcxx::Backend::iouring);
  if (uring.backend() != evcxx::Backend::iouring) GTEST_SKIP() << "libev fell back from io_uring";
  try {
    Embed embed(outer, uring);
    FAIL() << "embedding an io_uring loop did not throw";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("iouring"), std::string::npos) << e.what();
  }
}

TEST(Embed, IoUringOuterLoopIsRefusedRatherThanAborting) {
  // libev 4.33's io_uring backend aborts when the watchers behind an Embed are started and
  // stopped in turn (ev_iouring.c: "io_uring_enter did not consume all sqes").
  std::unique_ptr<Loop> outer;
  try {
    outer = std::make_unique<Loop>(evcxx::LoopFlags(evcxx::Backend::iouring));
  } catch (const std::exception& e) {
    GTEST_SKIP() << "no io_uring loop here: " << e.what();
  }
  const evcxx::Version v = Loop::version();
  if (v.major > 4 || (v.major == 4 && v.minor > 33)) GTEST_SKIP() << "a libev after 4.33";
  REQUIRE_EMBEDDABLE(inner);
  try {
    Embed embed(*outer, *inner);
    FAIL() << "an Embed was started in an io_uring loop";
  } catch (const std::logic_error& e) {
    EXPECT_NE(std::string(e.what()).find("Backend::epoll"), std::string::npos) << e.what();
  }
  EXPECT_THROW(Embed(*outer, evcxx::deferred, *inner), std::logic_error);
  EXPECT_FALSE(outer->run(evcxx::Run::nowait));  // the loop itself is fine
}

// libev's embed prepare watcher registers the inner loop's descriptors from the outer loop,
// before the inner loop's own closed-descriptor check runs; the Embed checks first.
TEST(Embed, InnerDescriptorClosedUnderTwoWatchersNeverReachesLibev) {
  REQUIRE_EMBEDDABLE(inner);
  Loop outer(evcxx::Backend::epoll);
  Embed embed(outer, *inner);
  evcxx_test::SocketPair pair;
  int errors = 0;
  evcxx::Io first(*inner, pair.a.get(), evcxx::IoEvent::writable, [](evcxx::IoEvents) {});
  evcxx::Io second(*inner, pair.a.get(), evcxx::IoEvent::readable, [&](evcxx::IoEvents fired) {
    if (fired.error()) ++errors;
  });
  outer.run(evcxx::Run::nowait);  // both registered with the inner backend
  ::close(pair.a.release());      // the caller's bug: closed under two active watchers
  first.stop();  // libev would now register the closed descriptor again, for reading only
  for (int i = 0; i < 10 && errors == 0; ++i) outer.run(evcxx::Run::nowait);
  EXPECT_EQ(errors, 1);
  EXPECT_FALSE(second.active());
}

// libev asserts ("ev_loop recursion during release detected") when a loop runs inside its own
// release hook; sweep() runs the inner loop.
TEST(Embed, SweepInsideTheInnerLoopsReleaseHookIsALogicErrorNotAnAbort) {
  REQUIRE_EMBEDDABLE(inner);
  Loop outer;
  Embed embed(outer, evcxx::deferred, *inner);
  int attempts = 0;
  int logic_errors = 0;
  auto try_to_sweep = [&] {
    if (attempts++ < 2) {
      try {
        embed.sweep();
      } catch (const std::logic_error&) {
        ++logic_errors;
      }
    }
  };
  inner->set_release_hooks(try_to_sweep, try_to_sweep);
  embed.sweep();
  EXPECT_EQ(attempts, 2);
  EXPECT_EQ(logic_errors, 2);  // from the release and from the acquire hook
}

// libev's embed prepare runs the inner loop, then registers what its callbacks changed, again and
// again (while (fdchangecnt) { fd_reify(inner); ev_run(inner, EVRUN_NOWAIT); }).
TEST(Embed, InnerCallbackClosingASharedDescriptorNeverReachesLibev) {
  REQUIRE_EMBEDDABLE(inner);
  Loop outer(evcxx::Backend::epoll);
  Embed embed(outer, *inner);
  evcxx_test::SocketPair watched;
  evcxx_test::SocketPair other;
  std::unique_ptr<evcxx::Io> writer;
  int reader_errors = 0;
  evcxx::Io reader(*inner, watched.a.get(), evcxx::IoEvent::readable, [&](evcxx::IoEvents e) {
    if (e.error()) {
      ++reader_errors;
      return;
    }
    ::close(watched.a.release());  // the caller's bug, inside an inner callback
    writer->stop();                // libev registers the closed descriptor again
  });
  writer = std::make_unique<evcxx::Io>(*inner, watched.a.get(), evcxx::IoEvent::writable,
                                       [](evcxx::IoEvents) {});
  outer.run(evcxx::Run::nowait);
  outer.run(evcxx::Run::nowait);
  evcxx_test::write_all(watched.b.get(), "x");
  // A change left pending makes libev's embed prepare run the inner loop.
  evcxx::Io pending(*inner, other.a.get(), evcxx::IoEvent::readable, [](evcxx::IoEvents) {});
  for (int i = 0; i < 10 && reader_errors == 0; ++i) outer.run(evcxx::Run::nowait);
  EXPECT_EQ(reader_errors, 1);
  EXPECT_FALSE(reader.active());
}

TEST(Embed, EmbeddingALoopInItselfIsAnInvalidArgument) {
  REQUIRE_EMBEDDABLE(loop);
  EXPECT_THROW(Embed(*loop, *loop), std::invalid_argument);
  Loop alias(loop->native());  // another Loop over the same ev_loop
  EXPECT_THROW(Embed(*loop, alias), std::invalid_argument);
}

// An epoll loop whose backend libev can embed, or nullptr.
std::unique_ptr<Loop> make_epoll_loop() {
  if ((Loop::embeddable_backends() & Loop::supported_backends() & evcxx::Backend::epoll).empty()) {
    return nullptr;
  }
  return std::make_unique<Loop>(evcxx::Backend::epoll);
}

// epoll holds no cycle of epoll sets (libev asserts on the ELOOP), and libev never takes an
// inner set out of the outer one: two loops that embed each other, now or once, are refused when
// the second Embed starts, until one of the loops is destroyed.
TEST(Embed, LoopsEmbeddingEachOtherIsALogicErrorNotAnAbort) {
  auto a = make_epoll_loop();
  auto b = make_epoll_loop();
  auto c = make_epoll_loop();
  if (!a) GTEST_SKIP() << "no embeddable epoll here";
  auto ab = std::make_unique<Embed>(*a, *b);
  EXPECT_THROW(Embed(*b, *a), std::logic_error);
  auto bc = std::make_unique<Embed>(*b, *c);
  EXPECT_THROW(Embed(*c, *a), std::logic_error) << "a cycle through three loops";
  Embed ca(*c, evcxx::deferred, *a);
  EXPECT_THROW(ca.start(), std::logic_error);
  EXPECT_FALSE(ca.active());
  for (int i = 0; i < 3; ++i) a->run(evcxx::Run::nowait);  // nothing registered aborts
  ab.reset();  // the kernel still holds b's set inside a's
  for (int i = 0; i < 3; ++i) a->run(evcxx::Run::nowait);
  EXPECT_THROW(ca.start(), std::logic_error) << "an embedding lasts while its loops do";
  bc.reset();
  b.reset();
  EXPECT_NO_THROW(ca.start()) << "the cycle went with the loop in its middle";
  for (int i = 0; i < 3; ++i) c->run(evcxx::Run::nowait);
}

// epoll nests at most four epoll sets below one another: a longer chain of Embeds is refused,
// wherever the Embed that would make it starts.
TEST(Embed, AChainDeeperThanEpollNestsIsALogicErrorNotAnAbort) {
  std::vector<std::unique_ptr<Loop>> loops;
  for (int i = 0; i < 7; ++i) loops.push_back(make_epoll_loop());
  if (!loops[0]) GTEST_SKIP() << "no embeddable epoll here";
  std::vector<std::unique_ptr<Embed>> chain;
  for (int i = 0; i < 4; ++i) chain.push_back(std::make_unique<Embed>(*loops[i], *loops[i + 1]));
  for (int i = 0; i < 3; ++i) loops[0]->run(evcxx::Run::nowait);  // four deep: registered
  EXPECT_THROW(Embed(*loops[4], *loops[5]), std::logic_error) << "below the bottom";
  EXPECT_THROW(Embed(*loops[5], *loops[0]), std::logic_error) << "above the top";
  Embed side(*loops[5], *loops[6]);  // a chain of its own
  EXPECT_THROW(Embed(*loops[3], *loops[5]), std::logic_error) << "joining the two: five deep";
  loops[4].reset();  // three deep now
  EXPECT_NO_THROW(Embed(*loops[5], *loops[0]));
  for (int i = 0; i < 3; ++i) loops[5]->run(evcxx::Run::nowait);
}

TEST(Embed, DestroyingTheInnerLoopFirstStopsTheEmbed) {
  REQUIRE_EMBEDDABLE(inner);
  Loop outer;
  Embed embed(outer, *inner);
  ASSERT_TRUE(embed.active());

  inner.reset();

  EXPECT_FALSE(embed.active());
  EXPECT_EQ(embed.inner(), nullptr);
  EXPECT_TRUE(embed.attached());  // still belongs to the outer loop
  EXPECT_THROW(embed.start(), std::logic_error);
  EXPECT_THROW(embed.sweep(), std::logic_error);
  EXPECT_FALSE(outer.run());  // nothing keeps the outer loop alive any more

  // Another inner loop revives it.
  auto replacement = make_embeddable_loop();
  ASSERT_NE(replacement, nullptr);
  embed.set(*replacement);
  EXPECT_FALSE(embed.active());  // set() keeps a stopped watcher stopped
  embed.start();
  EXPECT_TRUE(embed.active());
  EXPECT_EQ(embed.inner(), replacement.get());
}

TEST(Embed, DestroyingTheOuterLoopFirstDetachesTheEmbed) {
  REQUIRE_EMBEDDABLE(inner);
  auto outer = std::make_unique<Loop>();
  Embed embed(*outer, *inner);
  outer.reset();
  EXPECT_FALSE(embed.active());
  EXPECT_FALSE(embed.attached());
  EXPECT_THROW(embed.sweep(), std::logic_error);
  EXPECT_THROW(embed.start(), std::logic_error);

  // The inner loop lives on by itself.
  Pipe pipe;
  bool read = false;
  ReadWatcher reader(*inner, pipe.read_end(), [&] {
    pipe.take();
    read = true;
    inner->break_loop();
  });
  pipe.put();
  inner->run();
  EXPECT_TRUE(read);
}

TEST(Embed, ActiveEmbedHoldsTheOuterLoopOnceEvenAcrossLibevsForkHandling) {
  REQUIRE_EMBEDDABLE(inner);
  Loop outer;
  Embed embed(outer, *inner);
  EXPECT_TRUE(outer.run(evcxx::Run::nowait));  // it holds the loop...
  outer.unref();
  EXPECT_FALSE(outer.run(evcxx::Run::nowait));  // ...once: one unref() lets run() return
  evcxx_test::Watchdog watchdog(outer, 10s);
  outer.run();
  outer.notify_fork();  // libev's fork watcher behind the Embed stops and restarts it
  outer.run();
  watchdog.disarm();
  EXPECT_FALSE(watchdog.fired()) << "run() stayed blocked with the Embed unref'd";
  EXPECT_TRUE(embed.active());
  outer.ref();
  embed.stop();
  EXPECT_FALSE(outer.run(evcxx::Run::nowait));  // stopping gave back exactly that reference
}
