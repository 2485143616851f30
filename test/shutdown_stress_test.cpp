// Shutdown of a LoopThread racing producers (post / try_post / submit) and C-style raw libev
// watchers (ev_io on socket pairs, ev_timer) that stop themselves after a few events, round after
// round for a bounded time, with stop(), stop_when_done() and stop_when_done() cut short by
// stop(). Every accepted task runs exactly once, every refused one is reported as refused, no
// future hangs, and after a graceful stop every C watcher has finished its work.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <evcxx/loop_thread.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <future>
#include <memory>
#include <random>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;

constexpr auto kGenerous = 60s;   // a future that is not ready by then hangs: a failure
constexpr auto kBudget = 2500ms;  // the whole test, whatever the build's speed
constexpr int kProducers = 3;
constexpr int kTasksPerProducer = 4000;  // per round, at most
constexpr std::size_t kMaxGroups = 32;   // per round: two descriptors each

// A C-style component: a timer that writes a byte to its socket pair three times, and an I/O
// watcher that reads them; each stops its own watcher when its part is done.
struct RawGroup {
  struct ev_loop* loop;
  int fds[2];
  ev_io io;
  ev_timer timer;
  int bytes_read;
  int fires;
  int finished;  // watchers that stopped themselves: 2 when the group is done
};

void group_io_cb(struct ev_loop* loop, ev_io* w, int) {
  RawGroup* g = static_cast<RawGroup*>(w->data);
  char buf[16];
  const ssize_t n = ::read(g->fds[0], buf, sizeof buf);
  if (n > 0) g->bytes_read += static_cast<int>(n);
  if (g->bytes_read >= 3) {
    ev_io_stop(loop, w);
    ++g->finished;
  }
}

void group_timer_cb(struct ev_loop* loop, ev_timer* w, int) {
  RawGroup* g = static_cast<RawGroup*>(w->data);
  const char byte = 'x';
  if (::write(g->fds[1], &byte, 1) != 1) return;  // the socket buffer has room for three bytes
  if (++g->fires >= 3) {
    ev_timer_stop(loop, w);
    ++g->finished;
  }
}

// Loop thread: creates and starts a group.
RawGroup* start_group(struct ev_loop* loop) {
  auto* g = new RawGroup{};
  g->loop = loop;
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, g->fds) != 0) {
    delete g;
    return nullptr;
  }
  ev_io_init(&g->io, group_io_cb, g->fds[0], EV_READ);
  g->io.data = g;
  ev_timer_init(&g->timer, group_timer_cb, 0.0005, 0.0005);
  g->timer.data = g;
  ev_io_start(loop, &g->io);
  ev_timer_start(loop, &g->timer);
  return g;
}

// Any thread once the loop thread has ended (the ev_loop still exists): as freeing a C context.
void free_group(RawGroup* g) {
  ev_io_stop(g->loop, &g->io);
  ev_timer_stop(g->loop, &g->timer);
  ::close(g->fds[0]);
  ::close(g->fds[1]);
  delete g;
}

enum class Shutdown { stop, when_done, when_done_cut_short };

enum Outcome : std::uint8_t { not_tried = 0, accepted = 1, refused = 2 };

struct Round {
  std::vector<std::atomic<std::uint8_t>> runs =
      std::vector<std::atomic<std::uint8_t>>(kProducers * kTasksPerProducer);
  std::vector<Outcome> outcome = std::vector<Outcome>(kProducers * kTasksPerProducer, not_tried);
  std::vector<RawGroup*> groups;  // loop thread; read after join()
  std::atomic<long> accepted_count{0};
  std::atomic<bool> hung{false};
};

// A task: records that it ran, and now and then starts a raw group.
struct Task {
  Round* round;
  evcxx::LoopThread* thread;
  int id;
  int operator()() const {
    round->runs[id].fetch_add(1, std::memory_order_relaxed);
    if (id % 16 == 0 && round->groups.size() < kMaxGroups) {
      if (RawGroup* g = start_group(thread->loop().native())) round->groups.push_back(g);
    }
    return id;
  }
};

void produce(Round& round, evcxx::LoopThread& thread, int producer, unsigned seed) {
  std::minstd_rand random(seed);
  int refusals = 0;
  for (int k = 0; k < kTasksPerProducer && refusals < 3; ++k) {  // a few more after the door shut
    const int id = producer * kTasksPerProducer + k;
    const Task task{&round, &thread, id};
    bool ok = false;
    switch (random() % 3) {
      case 0:
        try {
          thread.post([task] { task(); });
          ok = true;
        } catch (const evcxx::LoopStopped&) {
        }
        break;
      case 1:
        ok = thread.try_post([task] { task(); });
        break;
      default: {
        std::future<int> f = thread.submit(task);
        if (f.wait_for(kGenerous) != std::future_status::ready) {
          round.hung.store(true);
          return;
        }
        try {
          ok = f.get() == id;
        } catch (const evcxx::LoopStopped&) {
        }
      }
    }
    round.outcome[id] = ok ? accepted : refused;
    if (ok) {
      round.accepted_count.fetch_add(1, std::memory_order_relaxed);
    } else {
      ++refusals;
    }
  }
}

TEST(ShutdownStress, StopAndStopWhenDoneRacingProducersAndRawCWatchers) {
  const auto until = std::chrono::steady_clock::now() + kBudget;
  std::minstd_rand random(12345);
  int rounds = 0;
  int graceful_rounds = 0;
  long tasks = 0;
  long groups_finished_late = 0;  // groups a plain stop() left unfinished
  while (std::chrono::steady_clock::now() < until && !testing::Test::HasFailure()) {
    const auto how = static_cast<Shutdown>(rounds % 3);
    auto round = std::make_unique<Round>();
    auto thread = std::make_unique<evcxx::LoopThread>("stress");
    // Some raw groups exist before the producers start, more are started by their tasks.
    thread
        ->submit([&] {
          for (int i = 0; i < 4; ++i) {
            if (RawGroup* g = start_group(thread->loop().native())) round->groups.push_back(g);
          }
        })
        .get();
    std::vector<std::thread> producers;
    for (int p = 0; p < kProducers; ++p) {
      producers.emplace_back(produce, std::ref(*round), std::ref(*thread), p,
                             static_cast<unsigned>(random()));
    }
    const long threshold = static_cast<long>(random() % 2000);
    while (round->accepted_count.load() < threshold && std::chrono::steady_clock::now() < until &&
           !round->hung.load()) {
      std::this_thread::yield();
    }
    switch (how) {
      case Shutdown::stop:
        thread->stop();
        break;
      case Shutdown::when_done:
        thread->stop_when_done(kGenerous);
        break;
      case Shutdown::when_done_cut_short:
        thread->stop_when_done(kGenerous);
        std::this_thread::yield();
        thread->stop();
        break;
    }
    for (auto& t : producers) t.join();
    thread->join();
    ASSERT_FALSE(round->hung.load()) << "a submit() future never became ready";

    long accepted_here = 0;
    for (std::size_t id = 0; id < round->outcome.size(); ++id) {
      const int runs = round->runs[id].load();
      switch (round->outcome[id]) {
        case accepted:
          ++accepted_here;
          EXPECT_EQ(runs, 1) << "accepted task " << id << " ran " << runs << " times";
          break;
        case refused:
        case not_tried:
          EXPECT_EQ(runs, 0) << "task " << id << " ran without being accepted";
          break;
      }
    }
    tasks += accepted_here;
    int unfinished = 0;
    for (RawGroup* g : round->groups) unfinished += g->finished == 2 ? 0 : 1;
    if (how == Shutdown::when_done) {
      ++graceful_rounds;
      EXPECT_TRUE(thread->ended_when_done());
      EXPECT_EQ(unfinished, 0) << "a graceful stop ended the loop with raw C watchers unfinished";
    } else {
      groups_finished_late += unfinished;
    }
    // The loop thread has ended and the Loop still exists: the C side frees its watchers now.
    for (RawGroup* g : round->groups) free_group(g);
    thread.reset();
    ++rounds;
  }
  EXPECT_GE(graceful_rounds, 1);
  std::printf(
      "%d rounds (%d graceful), %ld accepted tasks, %ld raw groups left unfinished by "
      "stop()\n",
      rounds, graceful_rounds, tasks, groups_finished_late);
}

}  // namespace
