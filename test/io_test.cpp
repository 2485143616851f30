#include <gtest/gtest.h>
#include <unistd.h>

#include <evcxx/io.hpp>
#include <evcxx/loop.hpp>
#include <evcxx/prepare.hpp>
#include <evcxx/timer.hpp>

#include <chrono>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "../src/closed_fd_guard.hpp"
#include "counting_new.hpp"  // the guard test below counts allocations
#include "support.hpp"

using evcxx::IoEvent;
using evcxx::IoEvents;
using evcxx_test::Pipe;
using evcxx_test::SocketPair;
using evcxx_test::Watchdog;
using evcxx_test::write_all;
using namespace std::chrono_literals;

namespace {

std::string read_some(int fd) {
  char buf[256];
  const ssize_t n = ::read(fd, buf, sizeof buf);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

// Restores the process-wide check interval when a test changed it.
struct CheckInterval {
  explicit CheckInterval(std::chrono::duration<double> interval)
      : saved(evcxx::Io::closed_fd_check_interval()) {
    evcxx::Io::set_closed_fd_check_interval(interval);
  }
  ~CheckInterval() { evcxx::Io::set_closed_fd_check_interval(saved); }
  std::chrono::duration<double> saved;
};

}  // namespace

TEST(IoEvents, SetOperations) {
  constexpr IoEvents none;
  constexpr IoEvents both = IoEvent::readable | IoEvent::writable;
  static_assert(none.empty());
  static_assert(both.readable() && both.writable() && !both.error());
  static_assert(both.contains(IoEvent::readable) && both.contains(IoEvents(IoEvent::writable)));
  static_assert(!IoEvents(IoEvent::readable).contains(both));
  static_assert((both & IoEvent::writable) == IoEvent::writable);
  static_assert(both.raw() == (EV_READ | EV_WRITE));
  IoEvents e = IoEvent::readable;
  e |= IoEvent::writable;
  EXPECT_EQ(e, both);
  e &= IoEvent::readable;
  EXPECT_EQ(e, IoEvents(IoEvent::readable));
  EXPECT_NE(e, both);

  const IoEvents fired = IoEvents::from_raw(EV_ERROR | EV_READ | EV_WRITE | EV_TIMER);
  EXPECT_TRUE(fired.error());
  EXPECT_TRUE(fired.readable());
  EXPECT_TRUE(fired.writable());
  EXPECT_EQ(fired.raw(), EV_ERROR | EV_READ | EV_WRITE);  // foreign bits dropped
}

// The closed-descriptor guard a Loop makes for its first Io stays until the Loop is destroyed:
// Io watchers made and destroyed one after another (a write watcher per write) allocate nothing
// after the first, and each one still reports its event.
TEST(Io, MadeAndDestroyedOneAfterAnotherAllocateNothingAfterTheFirst) {
  evcxx::Loop loop;
  Pipe pipe;
  int fired = 0;
  const auto make_and_run = [&] {
    evcxx::Io io(loop, pipe.write.get(), IoEvent::writable, [&](IoEvents) { ++fired; });
    loop.run(evcxx::Run::nowait);
  };
  make_and_run();
  const long before = evcxx_test::allocations_here;
  for (int i = 0; i < 100; ++i) make_and_run();
  EXPECT_EQ(evcxx_test::allocations_here - before, 0) << "allocations over 100 Io watchers";
  EXPECT_EQ(fired, 101);
}

TEST(Io, ReadableOnAPipe) {
  evcxx::Loop loop;
  Pipe p;
  write_all(p.write.get(), "hello");
  std::vector<IoEvents> fired;
  std::string got;
  evcxx::Io io(loop, p.read.get(), IoEvent::readable, [&](IoEvents e) {
    fired.push_back(e);
    got += read_some(p.read.get());
    io.stop();
  });
  EXPECT_TRUE(io.active());
  EXPECT_EQ(io.fd(), p.read.get());
  EXPECT_EQ(io.events(), IoEvent::readable);
  EXPECT_FALSE(loop.run());
  ASSERT_EQ(fired.size(), 1u);
  EXPECT_EQ(fired[0], IoEvent::readable);
  EXPECT_EQ(got, "hello");
}

TEST(Io, ReadableOnlyOnceDataArrivesFromAnotherThread) {
  evcxx::Loop loop;
  Watchdog dog(loop, std::chrono::seconds(30));
  Pipe p;
  std::string got;
  evcxx::Io io(loop, p.read.get(), IoEvent::readable, [&](IoEvents e) {
    EXPECT_EQ(e, IoEvent::readable);
    got += read_some(p.read.get());
    if (got.size() >= 3) io.stop();
  });
  std::thread writer([&] { write_all(p.write.get(), "abc"); });
  loop.run();
  writer.join();
  EXPECT_FALSE(dog.fired());
  EXPECT_EQ(got, "abc");
}

TEST(Io, WritableOnAPipe) {
  evcxx::Loop loop;
  Pipe p;
  int calls = 0;
  evcxx::Io io(loop, p.write.get(), IoEvent::writable, [&](IoEvents e) {
    ++calls;
    EXPECT_EQ(e, IoEvent::writable);
    write_all(p.write.get(), "x");
    io.stop();
  });
  loop.run();
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(read_some(p.read.get()), "x");
}

TEST(Io, BothOnASocketPair) {
  evcxx::Loop loop;
  SocketPair s;
  write_all(s.b.get(), "ping");
  IoEvents seen;
  evcxx::Io io(loop, s.a.get(), IoEvent::readable | IoEvent::writable, [&](IoEvents e) {
    seen = e;
    io.stop();
  });
  loop.run();
  EXPECT_EQ(seen, IoEvent::readable | IoEvent::writable);
  EXPECT_FALSE(seen.error());
}

TEST(Io, SetEventsRestartsAnActiveWatcher) {
  evcxx::Loop loop;
  SocketPair s;  // nothing to read on a: only writable could fire
  std::vector<IoEvents> fired;
  evcxx::Io io(loop, s.a.get(), IoEvent::readable, [&](IoEvents e) {
    fired.push_back(e);
    io.stop();
  });
  evcxx::Timer change(loop, 0s, [&] {
    EXPECT_TRUE(fired.empty());
    io.set(IoEvent::writable);
    EXPECT_TRUE(io.active());
    EXPECT_EQ(io.events(), IoEvent::writable);
    EXPECT_EQ(io.fd(), s.a.get());
  });
  Watchdog dog(loop, std::chrono::seconds(30));
  loop.run();
  EXPECT_FALSE(dog.fired());
  ASSERT_EQ(fired.size(), 1u);
  EXPECT_EQ(fired[0], IoEvent::writable);
}

TEST(Io, SetFdAndEventsMovesTheWatcher) {
  evcxx::Loop loop;
  SocketPair s;
  Pipe p;
  write_all(p.write.get(), "moved");
  std::string got;
  evcxx::Io io(loop, s.a.get(), IoEvent::readable, [&](IoEvents e) {
    EXPECT_EQ(e, IoEvent::readable);
    got = read_some(io.fd());
    io.stop();
  });
  io.set(p.read.get(), IoEvent::readable);
  EXPECT_TRUE(io.active());
  EXPECT_EQ(io.fd(), p.read.get());
  loop.run();
  EXPECT_EQ(got, "moved");
}

TEST(Io, SetWhileStoppedStaysStopped) {
  evcxx::Loop loop;
  Pipe p;
  int calls = 0;
  evcxx::Io io(loop, evcxx::deferred, p.read.get(), IoEvent::readable, [&](IoEvents) { ++calls; });
  io.set(p.write.get(), IoEvent::writable);
  EXPECT_FALSE(io.active());
  EXPECT_EQ(io.fd(), p.write.get());
  EXPECT_EQ(io.events(), IoEvent::writable);
  EXPECT_FALSE(loop.run());
  EXPECT_EQ(calls, 0);
}

TEST(Io, BadArgumentsThrowBeforeLibevIsTouched) {
  evcxx::Loop loop;
  Pipe p;
  auto cb = [](IoEvents) {};
  EXPECT_THROW(evcxx::Io(loop, -1, IoEvent::readable, cb), std::invalid_argument);
  EXPECT_THROW(evcxx::Io(loop, evcxx::deferred, -5, IoEvent::readable, cb), std::invalid_argument);
  EXPECT_THROW(evcxx::Io(loop, p.read.get(), IoEvents::from_raw(EV_READ | EV_ERROR), cb),
               std::invalid_argument);
  evcxx::Io io(loop, p.read.get(), IoEvent::readable, cb);
  EXPECT_THROW(io.set(-1, IoEvent::readable), std::invalid_argument);
  EXPECT_THROW(io.set(IoEvents::from_raw(EV_ERROR)), std::invalid_argument);
  EXPECT_TRUE(io.active());  // a rejected set() changes nothing
  EXPECT_EQ(io.fd(), p.read.get());
  EXPECT_EQ(io.events(), IoEvent::readable);
  EXPECT_THROW(evcxx::Io::set_closed_fd_check_interval(-1s), std::invalid_argument);
  EXPECT_THROW(evcxx::Io::set_closed_fd_check_interval(
                   std::chrono::duration<double>(std::numeric_limits<double>::quiet_NaN())),
               std::invalid_argument);
}

TEST(Io, InvokeAndFeedCarryEvents) {
  evcxx::Loop loop;
  Pipe p;
  std::vector<IoEvents> fired;
  evcxx::Io io(loop, evcxx::deferred, p.write.get(), IoEvent::writable,
               [&](IoEvents e) { fired.push_back(e); });
  io.invoke();
  io.invoke(IoEvent::readable | IoEvent::writable);
  io.feed(IoEvent::readable);
  loop.run(evcxx::Run::nowait);
  io.feed();
  loop.run(evcxx::Run::nowait);
  const std::vector<IoEvents> expected{IoEvent::writable, IoEvent::readable | IoEvent::writable,
                                       IoEvent::readable, IoEvent::writable};
  EXPECT_EQ(fired, expected);
}

TEST(Io, PriorityOrdersCallbacksOfOneIteration) {
  evcxx::Loop loop;
  Pipe p1;
  Pipe p2;
  write_all(p1.write.get(), "1");
  write_all(p2.write.get(), "2");
  std::vector<int> order;
  evcxx::Io low(loop, evcxx::deferred, p1.read.get(), IoEvent::readable, [&](IoEvents) {
    order.push_back(EV_MINPRI);
    low.stop();
  });
  evcxx::Io high(loop, evcxx::deferred, p2.read.get(), IoEvent::readable, [&](IoEvents) {
    order.push_back(EV_MAXPRI);
    high.stop();
  });
  low.set_priority(EV_MINPRI);
  high.set_priority(EV_MAXPRI);
  low.start();
  high.start();
  loop.run();
  EXPECT_EQ(order, (std::vector<int>{EV_MAXPRI, EV_MINPRI}));
}

// --- A descriptor closed under an active watcher, for each backend ---

// Every backend this libev offers; a backend whose Loop cannot be created here is skipped.
class ClosedFd : public ::testing::TestWithParam<evcxx::Backend> {
 protected:
  void SetUp() override {
    if (loop.backend() != GetParam()) {
      GTEST_SKIP() << "no loop with this backend can be created here (libev supports 0x" << std::hex
                   << evcxx::Loop::supported_backends().raw() << ")";
    }
    try {
      evcxx::Io probe(loop, evcxx::deferred, 0, IoEvent::readable, [](IoEvents) {});
    } catch (const std::logic_error& e) {
      GTEST_SKIP() << "evcxx refuses Io here (see IoOnIoUring): " << e.what();
    }
  }
  static evcxx::LoopFlags wanted_or_select() {
    try {
      evcxx::Loop probe{evcxx::LoopFlags(GetParam())};
      return evcxx::LoopFlags(GetParam());
    } catch (const std::exception&) {
      return evcxx::LoopFlags(evcxx::Backend::select);  // SetUp skips the test
    }
  }
  evcxx::Loop loop{wanted_or_select()};
};

TEST_P(ClosedFd, ClosedUnderAnActiveWatcherIsOneErrorEventAndStopsIt) {
  ASSERT_EQ(loop.backend(), GetParam());
  Pipe p;
  int calls = 0;
  IoEvents seen;
  bool active_in_callback = true;
  evcxx::Io io(loop, p.read.get(), IoEvent::readable, [&](IoEvents e) {
    ++calls;
    seen = e;
    active_in_callback = io.active();
  });
  // Closes the descriptor after the backend has registered it (the timer fires after the poll).
  evcxx::Timer closer(loop, 0s, [&] { p.read.reset(); });
  Watchdog dog(loop, std::chrono::seconds(30));
  const unsigned first_iteration = loop.iteration();
  EXPECT_FALSE(loop.run());  // returns: the watcher stopped and nothing else keeps the loop
  EXPECT_FALSE(dog.fired());
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(seen.error());
  EXPECT_TRUE(seen.readable());  // so that a plain read() sees the failure too
  EXPECT_FALSE(active_in_callback);
  EXPECT_FALSE(io.active());
  EXPECT_LT(loop.iteration() - first_iteration, 100u);  // no busy loop while waiting
}

// Another watcher keeps the loop alive and would let it block: the error must still arrive in the
// next iteration, not when that watcher happens to fire.
TEST_P(ClosedFd, ClosedWhileALongTimerKeepsTheLoopAliveArrivesWithoutWaitingForIt) {
  Pipe p;
  int calls = 0;
  bool kept_waiting = false;
  evcxx::Timer keeper(loop, 10s, [&] {
    kept_waiting = true;
    loop.break_loop();
  });
  evcxx::Io io(loop, p.read.get(), IoEvent::readable, [&](IoEvents e) {
    ++calls;
    EXPECT_TRUE(e.error());
    keeper.stop();
  });
  evcxx::Timer closer(loop, 0s, [&] { p.read.reset(); });
  Watchdog dog(loop, std::chrono::seconds(30));
  loop.run();
  EXPECT_FALSE(dog.fired());
  EXPECT_FALSE(kept_waiting);
  EXPECT_EQ(calls, 1);
}

TEST_P(ClosedFd, StartedOnAClosedDescriptorIsAnErrorEventNotAnAbort) {
  Pipe p;
  const int closed = p.read.get();
  p.read.reset();
  int errors = 0;
  evcxx::Io io(loop, closed, IoEvent::readable, [&](IoEvents e) { errors += e.error(); });
  Watchdog dog(loop, std::chrono::seconds(30));
  EXPECT_FALSE(loop.run());
  EXPECT_FALSE(dog.fired());
  EXPECT_EQ(errors, 1);
  EXPECT_FALSE(io.active());
}

TEST_P(ClosedFd, SetToAClosedDescriptorIsAnErrorEvent) {
  Pipe p;
  Pipe q;
  const int closed = q.read.get();
  q.read.reset();
  int errors = 0;
  int reads = 0;
  evcxx::Io io(loop, p.read.get(), IoEvent::readable, [&](IoEvents e) {
    if (e.error()) {
      ++errors;
    } else {
      ++reads;
      io.set(closed, IoEvent::readable);  // restarts it on a descriptor that is not open
    }
  });
  write_all(p.write.get(), "x");
  Watchdog dog(loop, std::chrono::seconds(30));
  EXPECT_FALSE(loop.run());
  EXPECT_FALSE(dog.fired());
  EXPECT_EQ(reads, 1);
  EXPECT_EQ(errors, 1);
}

TEST_P(ClosedFd, ReadAndWriteWatchersOnOneDescriptorBothFail) {
  SocketPair s;
  int read_errors = 0;
  int write_errors = 0;
  evcxx::Io reader(loop, s.a.get(), IoEvent::readable,
                   [&](IoEvents e) { read_errors += e.error(); });
  evcxx::Io writer(loop, s.a.get(), IoEvent::writable,
                   [&](IoEvents e) { write_errors += e.error(); });
  evcxx::Timer closer(loop, 0s, [&] { s.a.reset(); });
  Watchdog dog(loop, std::chrono::seconds(30));
  EXPECT_FALSE(loop.run());
  EXPECT_FALSE(dog.fired());
  EXPECT_EQ(read_errors, 1);
  EXPECT_EQ(write_errors, 1);
  EXPECT_FALSE(reader.active());
  EXPECT_FALSE(writer.active());
}

TEST_P(ClosedFd, OnlyTheWatcherOfTheClosedDescriptorFails) {
  Pipe p[3];
  std::vector<std::unique_ptr<evcxx::Io>> ios;
  std::vector<int> errors(3, 0);
  bool others_active = false;
  for (int i = 0; i < 3; ++i) {
    ios.push_back(
        std::make_unique<evcxx::Io>(loop, p[i].read.get(), IoEvent::readable, [&, i](IoEvents e) {
          errors[i] += e.error();
          others_active = ios[0]->active() && ios[2]->active();
          for (auto& io : ios) io->stop();
        }));
  }
  evcxx::Timer closer(loop, 0s, [&] { p[1].read.reset(); });
  Watchdog dog(loop, std::chrono::seconds(30));
  loop.run();
  EXPECT_FALSE(dog.fired());
  EXPECT_EQ(errors, (std::vector<int>{0, 1, 0}));
  EXPECT_TRUE(others_active);
}

TEST_P(ClosedFd, ClosedWhileADuplicateKeepsTheFileOpen) {
  CheckInterval fast(0.05s);
  Pipe p;
  evcxx_test::Fd duplicate(::dup(p.read.get()));
  ASSERT_GE(duplicate.get(), 0);
  write_all(p.write.get(), "stays readable");
  int errors = 0;
  int readable = 0;
  evcxx::Io io(loop, p.read.get(), IoEvent::readable, [&](IoEvents e) {
    if (e.error()) {
      ++errors;
      return;
    }
    ++readable;
    p.read.reset();  // epoll keeps reporting the still-open file under the stale number
  });
  Watchdog dog(loop, std::chrono::seconds(30));
  EXPECT_FALSE(loop.run());
  EXPECT_FALSE(dog.fired());
  EXPECT_GE(readable, 1);
  EXPECT_EQ(errors, 1);
  EXPECT_FALSE(io.active());
}

TEST_P(ClosedFd, ErrorCallbackMayDestroyTheWatcher) {
  Pipe p;
  std::unique_ptr<evcxx::Io> io;
  int errors = 0;
  io = std::make_unique<evcxx::Io>(loop, p.read.get(), IoEvent::readable, [&](IoEvents e) {
    errors += e.error();
    io.reset();
  });
  evcxx::Timer closer(loop, 0s, [&] { p.read.reset(); });
  Watchdog dog(loop, std::chrono::seconds(30));
  loop.run();
  EXPECT_FALSE(dog.fired());
  EXPECT_EQ(errors, 1);
  EXPECT_EQ(io, nullptr);
}

// --- Two watchers on one descriptor (hiredis's adapter: a read and a write watcher), closed ---

// What happens to the second watcher once the descriptor is gone.
enum class Sibling { stopped, destroyed, moved };

// reader and writer share a socket; in one callback the socket is closed and the writer is
// stopped, destroyed or set() to another descriptor, in either order. The reader gets its one
// error event; libev must not re-register the closed descriptor for it.
void close_and_drop_the_sibling(evcxx::Loop& loop, Sibling what, bool close_first,
                                bool reader_stays) {
  SocketPair s;
  Pipe elsewhere;
  int reader_errors = 0;
  int reader_reads = 0;
  int writer_errors = 0;
  int writer_calls_elsewhere = 0;
  const int shared = s.a.get();
  auto reader = std::make_unique<evcxx::Io>(loop, shared, IoEvent::readable, [&](IoEvents e) {
    if (e.error()) {
      ++reader_errors;
    } else {
      ++reader_reads;
    }
  });
  std::unique_ptr<evcxx::Io> writer;
  writer = std::make_unique<evcxx::Io>(loop, shared, IoEvent::writable, [&](IoEvents e) {
    if (e.error()) {
      ++writer_errors;
    } else if (writer->fd() == elsewhere.write.get()) {
      ++writer_calls_elsewhere;
      writer->stop();
    }
  });
  auto drop_the_writer = [&] {
    switch (what) {
      case Sibling::stopped:
        writer->stop();
        break;
      case Sibling::destroyed:
        writer.reset();
        break;
      case Sibling::moved:
        writer->set(elsewhere.write.get(), IoEvent::writable);
        break;
    }
  };
  // Runs after the backend registered both watchers (timers fire after the poll).
  evcxx::Timer closer(loop, 0s, [&] {
    if (close_first) s.a.reset();
    drop_the_writer();
    if (!close_first) s.a.reset();
    if (!reader_stays) reader->stop();
  });
  Watchdog dog(loop, std::chrono::seconds(30));
  EXPECT_FALSE(loop.run());
  EXPECT_FALSE(dog.fired());
  EXPECT_EQ(reader_errors, reader_stays ? 1 : 0);
  EXPECT_EQ(reader_reads, 0);
  EXPECT_FALSE(reader->active());
  EXPECT_EQ(writer_errors, 0);
  EXPECT_EQ(writer_calls_elsewhere, what == Sibling::moved ? 1 : 0);
}

TEST_P(ClosedFd, SharedByTwoWatchersClosedThenOneStopped) {
  close_and_drop_the_sibling(loop, Sibling::stopped, true, true);
}

TEST_P(ClosedFd, SharedByTwoWatchersClosedThenOneDestroyed) {
  close_and_drop_the_sibling(loop, Sibling::destroyed, true, true);
}

TEST_P(ClosedFd, SharedByTwoWatchersClosedThenOneSetToAnotherDescriptor) {
  close_and_drop_the_sibling(loop, Sibling::moved, true, true);
}

TEST_P(ClosedFd, SharedByTwoWatchersOneStoppedThenClosed) {
  close_and_drop_the_sibling(loop, Sibling::stopped, false, true);
}

TEST_P(ClosedFd, SharedByTwoWatchersOneDestroyedThenClosed) {
  close_and_drop_the_sibling(loop, Sibling::destroyed, false, true);
}

TEST_P(ClosedFd, SharedByTwoWatchersClosedThenBothStopped) {
  close_and_drop_the_sibling(loop, Sibling::stopped, true, false);
}

TEST_P(ClosedFd, SharedByTwoWatchersClosedThenTheOtherStoppedInTheNextIteration) {
  SocketPair s;
  int reader_errors = 0;
  int writer_errors = 0;
  evcxx::Io reader(loop, s.a.get(), IoEvent::readable,
                   [&](IoEvents e) { reader_errors += e.error(); });
  evcxx::Io writer(loop, s.a.get(), IoEvent::writable,
                   [&](IoEvents e) { writer_errors += e.error(); });
  // Started by the closer, so it fires in the iteration after the close.
  evcxx::Timer stopper(loop, evcxx::deferred, 0s, [&] { reader.stop(); });
  evcxx::Timer closer(loop, 0s, [&] {
    s.a.reset();
    stopper.start();
  });
  Watchdog dog(loop, std::chrono::seconds(30));
  EXPECT_FALSE(loop.run());
  EXPECT_FALSE(dog.fired());
  // Backends that look at every descriptor each iteration fail the reader before its stop.
  EXPECT_EQ(writer_errors, 1);
  EXPECT_LE(reader_errors, 1);
  EXPECT_FALSE(reader.active());
  EXPECT_FALSE(writer.active());
}

// Correct use: stopped, then its descriptor closed and the number reopened on another file, then
// started again with start(fd, events), all in one callback (no iteration in between): the new
// file is watched. (epoll forgot the old file at its close; libev must register the new one.)
TEST_P(ClosedFd, StoppedThenClosedAndTheNumberReopenedIsWatchedAgain) {
  Pipe first;
  Pipe second;
  const int number = first.read.get();
  int reads = 0;
  evcxx::Io io(loop, number, IoEvent::readable, [&](IoEvents e) {
    EXPECT_FALSE(e.error());
    ++reads;
    read_some(number);
    io.stop();
  });
  evcxx::Timer swap(loop, 0s, [&] {  // after the first poll registered the first pipe
    io.stop();
    first.read.reset();
    ASSERT_EQ(::dup2(second.read.get(), number), number);
    first.read.reset(number);
    io.start(number, IoEvent::readable);
    write_all(second.write.get(), "x");
  });
  Watchdog dog(loop, std::chrono::seconds(10));
  EXPECT_FALSE(loop.run());
  EXPECT_FALSE(dog.fired()) << "the reopened descriptor was never watched";
  EXPECT_EQ(reads, 1);
}

TEST_P(ClosedFd, SharedByTwoWatchersNumberReusedBeforeOneStops) {
  SocketPair s;
  Pipe replacement;
  const int shared = s.a.get();
  int reader_errors = 0;
  int reader_reads = 0;
  evcxx::Io reader(loop, shared, IoEvent::readable, [&](IoEvents e) {
    if (e.error()) {
      ++reader_errors;
      return;
    }
    ++reader_reads;
    read_some(shared);
    reader.stop();
  });
  evcxx::Io writer(loop, shared, IoEvent::writable, [](IoEvents) {});
  evcxx::Timer closer(loop, 0s, [&] {
    s.a.reset();
    // The number now names another file: as io.hpp says, the reader silently watches that.
    ASSERT_EQ(::dup2(replacement.read.get(), shared), shared);
    s.a.reset(shared);
    writer.stop();
    write_all(replacement.write.get(), "x");
  });
  Watchdog dog(loop, std::chrono::seconds(30));
  EXPECT_FALSE(loop.run());
  EXPECT_FALSE(dog.fired());
  EXPECT_EQ(reader_reads, 1);
  EXPECT_EQ(reader_errors, 0);
}

// A Prepare of the lowest priority runs after evcxx's own check when libev happens to order it
// so (it runs same-priority prepares in reverse order of queueing: the one started first, last),
// right before libev registers and polls the descriptors.
TEST_P(ClosedFd, ClosedByALowestPriorityPrepareUnderAnActiveWatcher) {
  SocketPair s;
  int errors = 0;
  std::unique_ptr<evcxx::Io> reader;
  evcxx::Prepare closer(loop, evcxx::deferred, [&] {
    s.a.reset();  // the reader stays active on the closed descriptor
    closer.stop();
  });
  closer.set_priority(EV_MINPRI);
  closer.start();
  reader = std::make_unique<evcxx::Io>(loop, s.a.get(), IoEvent::readable,
                                       [&](IoEvents e) { errors += e.error(); });
  Watchdog dog(loop, std::chrono::seconds(30));
  EXPECT_FALSE(loop.run());
  EXPECT_FALSE(dog.fired());
  EXPECT_EQ(errors, 1);
  EXPECT_FALSE(reader->active());
}

TEST_P(ClosedFd, SharedByTwoWatchersOneStoppedAndClosedByALowestPriorityPrepare) {
  SocketPair s;
  int reader_errors = 0;
  std::unique_ptr<evcxx::Io> reader;
  std::unique_ptr<evcxx::Io> writer;
  evcxx::Prepare closer(loop, evcxx::deferred, [&] {
    writer->stop();  // libev registers the descriptor again, for the reader
    s.a.reset();
    closer.stop();
  });
  closer.set_priority(EV_MINPRI);
  closer.start();
  reader = std::make_unique<evcxx::Io>(loop, s.a.get(), IoEvent::readable,
                                       [&](IoEvents e) { reader_errors += e.error(); });
  writer = std::make_unique<evcxx::Io>(loop, s.a.get(), IoEvent::writable, [](IoEvents) {});
  Watchdog dog(loop, std::chrono::seconds(30));
  EXPECT_FALSE(loop.run());
  EXPECT_FALSE(dog.fired());
  EXPECT_EQ(reader_errors, 1);
  EXPECT_FALSE(reader->active());
}

// A Prepare of any priority runs when the guard's own prepare was not queued for the iteration
// (nothing had changed before it): its changes are registered right after it.
TEST_P(ClosedFd, SharedByTwoWatchersClosedAndOneStoppedByAPrepareOfDefaultPriority) {
  SocketPair s;
  int reader_errors = 0;
  evcxx::Io reader(loop, s.a.get(), IoEvent::readable,
                   [&](IoEvents e) { reader_errors += e.error(); });
  evcxx::Io writer(loop, s.a.get(), IoEvent::writable, [](IoEvents) {});
  for (int i = 0; i < 3; ++i) loop.run(evcxx::Run::nowait);  // registered, guard idle
  evcxx::Prepare closer(loop, evcxx::deferred, [&] {
    s.a.reset();
    writer.stop();
    closer.stop();
  });
  closer.start();
  for (int i = 0; i < 3 && reader_errors == 0; ++i) loop.run(evcxx::Run::nowait);
  EXPECT_EQ(reader_errors, 1);
  EXPECT_FALSE(reader.active());
}

// A callback that a Prepare feed()s runs in the same prepare phase, after the Prepare's check.
TEST_P(ClosedFd, SharedByTwoWatchersClosedAndOneStoppedByACallbackAPrepareFed) {
  SocketPair s;
  int reader_errors = 0;
  evcxx::Io reader(loop, s.a.get(), IoEvent::readable,
                   [&](IoEvents e) { reader_errors += e.error(); });
  evcxx::Io writer(loop, s.a.get(), IoEvent::writable, [](IoEvents) {});
  for (int i = 0; i < 3; ++i) loop.run(evcxx::Run::nowait);
  evcxx::Timer closer(loop, evcxx::deferred, std::chrono::hours(1), [&] {
    s.a.reset();
    writer.stop();
  });
  bool fed = false;
  evcxx::Prepare feeder(loop, [&] {
    if (!fed) closer.feed();
    fed = true;
  });
  for (int i = 0; i < 3 && reader_errors == 0; ++i) loop.run(evcxx::Run::nowait);
  EXPECT_EQ(reader_errors, 1);
  EXPECT_FALSE(reader.active());
}

TEST_P(ClosedFd, StartedOnAClosedDescriptorByAPrepare) {
  SocketPair s;
  const int stale = s.a.get();
  s.a.reset();
  int errors = 0;
  std::unique_ptr<evcxx::Io> io;
  evcxx::Prepare maker(loop, [&] {
    if (io) return;
    io = std::make_unique<evcxx::Io>(loop, stale, IoEvent::readable,
                                     [&](IoEvents e) { errors += e.error(); });
  });
  for (int i = 0; i < 3 && errors == 0; ++i) loop.run(evcxx::Run::nowait);
  EXPECT_EQ(errors, 1);
  ASSERT_TRUE(io);
  EXPECT_FALSE(io->active());
}

TEST_P(ClosedFd, ClosedInsideItsOwnReadCallback) {
  Pipe p;
  write_all(p.write.get(), "x");
  int reads = 0;
  int errors = 0;
  evcxx::Io io(loop, p.read.get(), IoEvent::readable, [&](IoEvents e) {
    if (e.error()) {
      ++errors;
      return;
    }
    ++reads;
    p.read.reset();  // still active: libev re-arms a one-shot backend's descriptor next
  });
  Watchdog dog(loop, std::chrono::seconds(30));
  EXPECT_FALSE(loop.run());
  EXPECT_FALSE(dog.fired());
  EXPECT_EQ(reads, 1);
  EXPECT_EQ(errors, 1);
  EXPECT_FALSE(io.active());
}

TEST_P(ClosedFd, ClosedThenTheLoopIsToldOfAFork) {
  Pipe p;
  int errors = 0;
  evcxx::Io io(loop, p.read.get(), IoEvent::readable, [&](IoEvents e) { errors += e.error(); });
  evcxx::Timer closer(loop, 0s, [&] {
    p.read.reset();
    loop.notify_fork();  // epoll and io_uring register every descriptor again
  });
  Watchdog dog(loop, std::chrono::seconds(30));
  EXPECT_FALSE(loop.run());
  EXPECT_FALSE(dog.fired());
  EXPECT_EQ(errors, 1);
  EXPECT_FALSE(io.active());
}

std::string backend_param_name(const ::testing::TestParamInfo<evcxx::Backend>& info) {
  switch (info.param) {
    case evcxx::Backend::select:
      return "select";
    case evcxx::Backend::poll:
      return "poll";
    case evcxx::Backend::epoll:
      return "epoll";
    case evcxx::Backend::linuxaio:
      return "linuxaio";
    case evcxx::Backend::iouring:
      return "iouring";
    default:
      return "other";
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, ClosedFd,
                         ::testing::Values(evcxx::Backend::select, evcxx::Backend::poll,
                                           evcxx::Backend::epoll, evcxx::Backend::linuxaio,
                                           evcxx::Backend::iouring),
                         backend_param_name);

TEST(IoOnIoUring, RefusedWithALogicErrorWhereLibevWouldAbort) {
  std::unique_ptr<evcxx::Loop> loop;
  try {
    loop = std::make_unique<evcxx::Loop>(evcxx::LoopFlags(evcxx::Backend::iouring));
  } catch (const std::exception& e) {
    GTEST_SKIP() << "no io_uring loop here: " << e.what();
  }
  const evcxx::Version v = evcxx::Loop::version();
  if (v.major > 4 || (v.major == 4 && v.minor > 33)) GTEST_SKIP() << "a libev after 4.33";
  Pipe p;
  try {
    evcxx::Io io(*loop, p.read.get(), IoEvent::readable, [](IoEvents) {});
    ADD_FAILURE() << "Io was created on libev 4.33's io_uring backend";
  } catch (const std::logic_error& e) {
    EXPECT_NE(std::string(e.what()).find("Backend::epoll"), std::string::npos) << e.what();
  }
  EXPECT_THROW(evcxx::Io(*loop, evcxx::deferred, p.read.get(), IoEvent::readable, {}),
               std::logic_error);
  EXPECT_FALSE(loop->run(evcxx::Run::nowait));  // the loop itself is fine
}

// Why (libev's own calls, in a child): see io_stress_test's IoUringInLibev.

TEST(Io, CannotWatchItsOwnLoopsEpollDescriptor) {
  // A number closed before the Loop existed is what epoll_create() hands out next: a stale
  // descriptor number in a program then names the loop's own epoll instance.
  Pipe p;
  const int stale = p.read.get();
  p.read.reset();
  evcxx::Loop loop{evcxx::LoopFlags(evcxx::Backend::epoll)};
  char target[64] = {};
  const std::string link = "/proc/self/fd/" + std::to_string(stale);
  if (::readlink(link.c_str(), target, sizeof target - 1) < 0 ||
      std::string(target) != "anon_inode:[eventpoll]") {
    GTEST_SKIP() << "epoll_create() did not reuse descriptor " << stale;
  }
  Pipe q;
  EXPECT_THROW(evcxx::Io(loop, stale, IoEvent::readable, {}), std::invalid_argument);
  evcxx::Io io(loop, evcxx::deferred, q.read.get(), IoEvent::readable, {});
  EXPECT_THROW(io.set(stale, IoEvent::readable), std::invalid_argument);
  EXPECT_FALSE(io.active());
  io.set(q.write.get(), IoEvent::writable);
  int calls = 0;
  io.set_callback([&](IoEvents) {
    ++calls;
    io.stop();
  });
  io.start();
  Watchdog dog(loop, std::chrono::seconds(30));
  EXPECT_FALSE(loop.run());
  EXPECT_FALSE(dog.fired());
  EXPECT_EQ(calls, 1);
}

TEST(IoClosedFdCheck, NeverKeepsTheLoopAlive) {
  CheckInterval slow(3600s);  // if the check's timer kept the loop alive, run() would not return
  evcxx::Loop loop{evcxx::LoopFlags(evcxx::Backend::epoll)};
  Pipe p;
  int calls = 0;
  evcxx::Io io(loop, p.write.get(), IoEvent::writable, [&](IoEvents) {
    ++calls;
    io.stop();
  });
  Watchdog dog(loop, std::chrono::seconds(30));
  EXPECT_FALSE(loop.run());
  EXPECT_FALSE(dog.fired());
  EXPECT_EQ(calls, 1);
  // Started again and stopped before any iteration: still nothing keeps the loop.
  io.start();
  io.stop();
  EXPECT_FALSE(loop.run());
  EXPECT_FALSE(dog.fired());
}

TEST(IoClosedFdCheck, PeriodicCheckCanBeTurnedOffAndOn) {
  CheckInterval fast(0.05s);
  evcxx::Loop loop{evcxx::LoopFlags(evcxx::Backend::epoll)};
  Pipe p;
  int errors = 0;
  evcxx::Io io(loop, p.read.get(), IoEvent::readable, [&](IoEvents e) { errors += e.error(); });
  evcxx::Timer closer(loop, 0s, [&] {
    evcxx::Io::set_closed_fd_check_interval(0s);
    EXPECT_EQ(evcxx::Io::closed_fd_check_interval(), 0s);
    p.read.reset();
  });
  // Ten would-be checks later nothing was noticed (epoll itself never reports the closed
  // descriptor); turning the check on again takes effect when an Io is next started.
  evcxx::Timer on(loop, 0.5s, [&] {
    EXPECT_EQ(errors, 0);
    EXPECT_TRUE(io.active());
    evcxx::Io::set_closed_fd_check_interval(0.05s);
    io.set(IoEvent::readable);
  });
  Watchdog dog(loop, std::chrono::seconds(30));
  EXPECT_FALSE(loop.run());
  EXPECT_FALSE(dog.fired());
  EXPECT_EQ(errors, 1);
}

TEST(IoClosedFdCheck, SurvivesTheLoopDyingFirst) {
  CheckInterval fast(0.05s);
  Pipe p;
  auto first = std::make_unique<evcxx::Loop>(evcxx::LoopFlags(evcxx::Backend::epoll));
  auto orphan = std::make_unique<evcxx::Io>(*first, p.read.get(), IoEvent::readable,
                                            [](IoEvents) { ADD_FAILURE() << "detached"; });
  first.reset();
  EXPECT_FALSE(orphan->active());
  EXPECT_THROW(orphan->start(), std::logic_error);
  orphan->set(p.write.get(), IoEvent::writable);  // safe while detached

  // A new loop (perhaps at the same address) gets a guard of its own.
  auto second = std::make_unique<evcxx::Loop>(evcxx::LoopFlags(evcxx::Backend::epoll));
  Pipe q;
  int errors = 0;
  evcxx::Io io(*second, q.read.get(), IoEvent::readable, [&](IoEvents e) { errors += e.error(); });
  orphan.reset();  // the detached guard goes away without touching the new loop
  evcxx::Timer closer(*second, 0s, [&] { q.read.reset(); });
  Watchdog dog(*second, std::chrono::seconds(30));
  EXPECT_FALSE(second->run());
  EXPECT_FALSE(dog.fired());
  EXPECT_EQ(errors, 1);
}

TEST(IoClosedFdCheck, LoopDyingWithActiveWatchersLeavesNothingOnTheDetachedLoop) {
  Pipe p;
  auto loop = std::make_unique<evcxx::Loop>(evcxx::LoopFlags(evcxx::Backend::epoll));
  // The first Io comes before its loop's guard in the loop's list, so ~Loop detaches it last.
  auto first = std::make_unique<evcxx::Io>(*loop, p.read.get(), IoEvent::readable, [](IoEvents) {});
  auto second =
      std::make_unique<evcxx::Io>(*loop, p.write.get(), IoEvent::writable, [](IoEvents) {});
  loop.reset();
  EXPECT_FALSE(first->active());
  first.reset();
  second.reset();  // the last one deletes the guard
  // Nothing of the guard may be left on the loop that detached watchers point at: running it
  // would call into freed memory (AddressSanitizer reports it).
  EXPECT_EQ(ev_run(evcxx::detail::detached_loop(), EVRUN_NOWAIT), 0);
}

// libev's ev_embed registers an embedded loop's descriptors from the outer loop's prepare phase,
// before the inner loop's own check runs; the hook Embed needs for that does the check at once.
TEST(IoClosedFdCheck, CheckNowFailsWatchersOfAClosedSharedDescriptorBeforeAnyIteration) {
  evcxx::Loop loop{evcxx::LoopFlags(evcxx::Backend::epoll)};
  SocketPair s;
  int reader_errors = 0;
  evcxx::Io reader(loop, s.a.get(), IoEvent::readable,
                   [&](IoEvents e) { reader_errors += e.error(); });
  evcxx::Io writer(loop, s.a.get(), IoEvent::writable, [](IoEvents) {});
  loop.run(evcxx::Run::nowait);  // registered with epoll
  writer.stop();  // writable fired once: stop it, as a client does once its output is written
  s.a.reset();
  evcxx::detail::ClosedFdGuard::check_now(loop);
  EXPECT_FALSE(reader.active());
  EXPECT_TRUE(reader.pending());
  loop.run(evcxx::Run::nowait);  // libev registers nothing for the closed descriptor
  EXPECT_EQ(reader_errors, 1);
  evcxx::detail::ClosedFdGuard::check_now(loop);  // nothing due: a no-op
}

TEST(IoClosedFdCheck, ManyWatchersOnTheEveryIterationPath) {
  // The poll backend checks every active descriptor in every iteration.
  evcxx::Loop loop{evcxx::LoopFlags(evcxx::Backend::poll)};
  constexpr int kPipes = 64;
  std::vector<Pipe> pipes(kPipes);
  std::vector<std::unique_ptr<evcxx::Io>> ios;
  int errors = 0;
  int reads = 0;
  for (auto& p : pipes) {
    write_all(p.write.get(), "x");
    ios.push_back(std::make_unique<evcxx::Io>(loop, p.read.get(), IoEvent::readable,
                                              [&, fd = p.read.get()](IoEvents e) {
                                                if (e.error()) {
                                                  ++errors;
                                                  return;
                                                }
                                                ++reads;
                                                read_some(fd);
                                              }));
  }
  // Close every other read end once all were read; the rest stay quiet but active.
  evcxx::Timer closer(loop, 0s, [&] {
    for (int i = 0; i < kPipes; i += 2) pipes[static_cast<std::size_t>(i)].read.reset();
  });
  evcxx::Timer end(loop, 0.5s, [&] {
    for (auto& io : ios) io->stop();
  });
  Watchdog dog(loop, std::chrono::seconds(30));
  loop.run();
  EXPECT_FALSE(dog.fired());
  EXPECT_EQ(errors, kPipes / 2);
  EXPECT_GE(reads, kPipes / 2);
}
