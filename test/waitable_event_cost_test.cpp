// WaitableEvent at the limit: what its cheap paths cost (nothing they should not) and a hand-off
// between two threads that never releases a wait without a set().
#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include <evcxx/loop.hpp>
#include <evcxx/waitable_event.hpp>

#include <atomic>
#include <chrono>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;

constexpr auto kGenerous = 60s;

int open_fds() {
  int count = 0;
  if (DIR* dir = ::opendir("/proc/self/fd")) {
    while (const dirent* entry = ::readdir(dir)) {
      if (entry->d_name[0] != '.') ++count;
    }
    ::closedir(dir);
  }
  return count - 1;  // the directory stream itself
}

// The platform layer's wake-up descriptor is an eventfd (Linux) or a pipe's read end, with its
// write end beside it (EVCXX_PLATFORM=posix).
bool is_pipe(int fd) {
  struct stat info {};
  return ::fstat(fd, &info) == 0 && S_ISFIFO(info.st_mode);
}

// What the descriptor holds, without reading (and so emptying) it: the eventfd's counter as the
// kernel reports it, or the bytes in the pipe.
long unread_count(int fd) {
  if (is_pipe(fd)) {
    int bytes = -1;
    return ::ioctl(fd, FIONREAD, &bytes) == 0 ? bytes : -1;
  }
  std::ifstream info("/proc/self/fdinfo/" + std::to_string(fd));
  std::string key;
  while (info >> key) {
    if (key == "eventfd-count:") {
      std::string value;
      info >> value;
      return std::stol(value, nullptr, 16);
    }
  }
  return -1;
}

TEST(WaitableEventCost, NoFileDescriptorUntilFdIsCalled) {
  evcxx::Loop loop;
  const int before = open_fds();
  std::vector<std::unique_ptr<evcxx::WaitableEvent>> events;
  for (int i = 0; i < 8; ++i) {
    events.push_back(std::make_unique<evcxx::WaitableEvent>(loop));
    events.back()->set();
    EXPECT_TRUE(events.back()->is_set());
    EXPECT_TRUE(events.back()->wait_for(0s));
    events.back()->clear();
    EXPECT_FALSE(events.back()->wait_for(1ms));
  }
  EXPECT_EQ(open_fds(), before) << "set/clear/wait/is_set must not create the eventfd";
  const int fd = events[0]->fd();
  ASSERT_GE(fd, 0);
  const int cost = is_pipe(fd) ? 2 : 1;
  EXPECT_EQ(open_fds(), before + cost);
  EXPECT_EQ(events[0]->fd(), fd);  // created once
  EXPECT_EQ(open_fds(), before + cost);
  events.clear();
  EXPECT_EQ(open_fds(), before);  // and closed with the event
}

TEST(WaitableEventCost, SetOnASetEventTouchesNothing) {
  evcxx::Loop loop;
  evcxx::WaitableEvent event(loop);
  const int fd = event.fd();
  ASSERT_GE(fd, 0);
  EXPECT_EQ(unread_count(fd), 0);
  event.set();
  EXPECT_EQ(unread_count(fd), 1);
  for (int i = 0; i < 100; ++i) event.set();  // idempotent: no write to the descriptor
  EXPECT_EQ(unread_count(fd), 1);
  EXPECT_TRUE(event.is_set());
  event.clear();
  EXPECT_EQ(unread_count(fd), 0);
  for (int i = 0; i < 100; ++i) event.clear();  // likewise no read
  EXPECT_EQ(unread_count(fd), 0);
  EXPECT_FALSE(event.is_set());
}

// Two threads hand a token back and forth; each side clears its own event after its wait, so a
// wait must only ever return with its event set. (A set() that bumped the generation in a second
// step once released the next wait with nothing set, and the ping-pong lost a round.)
TEST(WaitableEventCost, PingPongNeverReleasesAWaitWithoutASet) {
  constexpr int kRoundTrips = 20000;
  evcxx::Loop loop;
  evcxx::WaitableEvent ping(loop);
  evcxx::WaitableEvent pong(loop);
  std::atomic<int> spurious{0};
  std::atomic<int> timeouts{0};
  std::thread partner([&] {
    for (int i = 0; i < kRoundTrips; ++i) {
      if (!ping.wait_for(kGenerous)) {
        timeouts.fetch_add(1);
        return;
      }
      if (!ping.is_set()) spurious.fetch_add(1);
      ping.clear();
      pong.set();
    }
  });
  for (int i = 0; i < kRoundTrips; ++i) {
    ping.set();
    if (!pong.wait_for(kGenerous)) {
      timeouts.fetch_add(1);
      break;
    }
    if (!pong.is_set()) spurious.fetch_add(1);
    pong.clear();
  }
  partner.join();
  EXPECT_EQ(spurious.load(), 0);
  EXPECT_EQ(timeouts.load(), 0);
}

}  // namespace
