#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>

#include <evcxx/periodic.hpp>
#include <evcxx/stat.hpp>
#include "support.hpp"

using namespace std::chrono_literals;
using evcxx::Loop;
using evcxx::Stat;

using evcxx_test::Deadline;

namespace {

// A fresh directory under TMPDIR (or /tmp), removed with what the test left in it.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string pattern =
        std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/evcxx-stat-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() { static_cast<void>(std::system(("rm -rf '" + path_ + "'").c_str())); }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

void write_file(const std::string& path, const std::string& text, bool append = false) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC), 0600);
  ASSERT_GE(fd, 0) << path;
  ASSERT_EQ(::write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  ::close(fd);
}

// Runs the loop until `done` or the deadline.
template <class Done>
void run_until(Loop& loop, Done done) {
  Deadline deadline(loop);
  while (!done() && !deadline.expired()) loop.run(evcxx::Run::once);
  ASSERT_FALSE(deadline.expired()) << "the Stat watcher never reported the change";
}

}  // namespace

TEST(Stat, ReportsCreation) {
  TempDir dir;
  Loop loop;
  const std::string path = dir.file("created");
  int changes = 0;
  Stat watcher(loop, path, 100ms, [&] { ++changes; });
  EXPECT_TRUE(watcher.active());
  EXPECT_FALSE(watcher.exists());  // start() recorded "does not exist"

  write_file(path, "hello");
  run_until(loop, [&] { return changes > 0 && watcher.exists(); });

  EXPECT_TRUE(watcher.exists());
  EXPECT_EQ(watcher.attr().st_size, 5);
  EXPECT_TRUE(S_ISREG(watcher.attr().st_mode));
}

TEST(Stat, ReportsModificationWithPreviousAttributes) {
  TempDir dir;
  Loop loop;
  const std::string path = dir.file("modified");
  write_file(path, "12345");
  int changes = 0;
  Stat watcher(loop, path, 100ms, [&] { ++changes; });
  ASSERT_TRUE(watcher.exists());
  EXPECT_EQ(watcher.attr().st_size, 5);

  write_file(path, "6789", /*append=*/true);
  run_until(loop, [&] { return watcher.attr().st_size == 9; });

  EXPECT_GE(changes, 1);
  EXPECT_EQ(watcher.attr().st_size, 9);
  EXPECT_TRUE(watcher.existed());
  EXPECT_LT(watcher.prev().st_size, 9);
  EXPECT_EQ(watcher.attr().st_ino, watcher.prev().st_ino);
}

TEST(Stat, ReportsDeletion) {
  TempDir dir;
  Loop loop;
  const std::string path = dir.file("deleted");
  write_file(path, "bye");
  int changes = 0;
  Stat watcher(loop, path, 100ms, [&] { ++changes; });
  ASSERT_TRUE(watcher.exists());

  ASSERT_EQ(::unlink(path.c_str()), 0);
  run_until(loop, [&] { return !watcher.exists(); });

  EXPECT_GE(changes, 1);
  EXPECT_FALSE(watcher.exists());
  EXPECT_EQ(watcher.attr().st_nlink, 0u);
  EXPECT_TRUE(watcher.existed());
  EXPECT_EQ(watcher.prev().st_size, 3);
}

TEST(Stat, PollingAloneAlsoDetectsChanges) {
  // Without inotify libev can only poll at the interval.
  TempDir dir;
  Loop loop(evcxx::LoopFlag::noinotify);
  const std::string path = dir.file("polled");
  int changes = 0;
  Stat watcher(loop, path, 100ms, [&] { ++changes; });
  write_file(path, "x");
  run_until(loop, [&] { return changes > 0; });
  EXPECT_TRUE(watcher.exists());
}

TEST(Stat, StatRefreshesAttributesWithoutAnEvent) {
  TempDir dir;
  Loop loop;
  const std::string path = dir.file("refreshed");
  Stat watcher(loop, evcxx::deferred, path, [] {});
  EXPECT_FALSE(watcher.exists());  // zero-filled before the first stat
  write_file(path, "abc");
  watcher.stat();
  EXPECT_TRUE(watcher.exists());
  EXPECT_EQ(watcher.attr().st_size, 3);
  EXPECT_FALSE(watcher.active());
}

TEST(Stat, StatRecordsOurOwnChangeSoOnlyOthersAreReported) {
  TempDir dir;
  Loop loop;
  const std::string path = dir.file("own");
  write_file(path, "1");
  int changes = 0;
  Stat watcher(loop, path, 100ms, [&] { ++changes; });
  write_file(path, "22");                    // our own change, known to us...
  watcher.stat();                            // ...so we record it ourselves
  write_file(path, "333", /*append=*/true);  // a change by "someone else"
  run_until(loop, [&] { return changes > 0; });
  EXPECT_EQ(watcher.prev().st_size, 2);  // the change reported is the append, not ours
  EXPECT_EQ(watcher.attr().st_size, 5);
}

TEST(Stat, KeepsItsOwnCopyOfThePath) {
  TempDir dir;
  Loop loop;
  int changes = 0;
  auto watcher = [&] {
    std::string temporary = dir.file("copied");
    return std::make_unique<Stat>(loop, temporary, 100ms, [&] { ++changes; });
  }();  // the caller's string is gone; libev still reads the path
  EXPECT_EQ(watcher->path(), dir.file("copied"));
  write_file(dir.file("copied"), "data");
  run_until(loop, [&] { return changes > 0; });
  EXPECT_TRUE(watcher->exists());
}

TEST(Stat, SetMovesAnActiveWatcherToAnotherPath) {
  TempDir dir;
  Loop loop;
  const std::string first = dir.file("first");
  const std::string second = dir.file("second");
  write_file(second, "exists");
  int changes = 0;
  Stat watcher(loop, first, 100ms, [&] { ++changes; });
  EXPECT_FALSE(watcher.exists());

  watcher.set(second, 200ms);
  EXPECT_TRUE(watcher.active());
  EXPECT_EQ(watcher.path(), second);
  EXPECT_DOUBLE_EQ(watcher.interval().count(), 0.2);
  EXPECT_TRUE(watcher.exists());  // restarting recorded the new path

  ASSERT_EQ(::unlink(second.c_str()), 0);
  run_until(loop, [&] { return changes > 0; });
  EXPECT_FALSE(watcher.exists());
}

TEST(Stat, BadParametersAreInvalidArguments) {
  Loop loop;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  using D = Stat::Duration;
  EXPECT_THROW(Stat(loop, "/tmp/x", D(-1.0), [] {}), std::invalid_argument);
  EXPECT_THROW(Stat(loop, "/tmp/x", D(nan), [] {}), std::invalid_argument);
  EXPECT_THROW(Stat(loop, "/tmp/x", D(std::numeric_limits<double>::infinity()), [] {}),
               std::invalid_argument);
  EXPECT_THROW(Stat(loop, "", [] {}), std::invalid_argument);
  EXPECT_THROW(Stat(loop, "/tmp/dir/", [] {}), std::invalid_argument);
  EXPECT_THROW(Stat(loop, "/tmp/../etc/passwd", [] {}), std::invalid_argument);
  EXPECT_THROW(Stat(loop, "./relative", [] {}), std::invalid_argument);
  EXPECT_THROW(Stat(loop, std::string("/tmp/a\0b", 8), [] {}), std::invalid_argument);
  EXPECT_NO_THROW(Stat(loop, "/", [] {}));
  EXPECT_NO_THROW(Stat(loop, "relative.name", [] {}));

  Stat watcher(loop, "/tmp", [] {});
  EXPECT_THROW(watcher.set("/tmp/", 1s), std::invalid_argument);
  EXPECT_THROW(watcher.set("/tmp/y", D(-2.0)), std::invalid_argument);
  EXPECT_EQ(watcher.path(), "/tmp");
  EXPECT_TRUE(watcher.active());
}
