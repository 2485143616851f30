#pragma once

#include <ev.h>
#include <sys/stat.h>

#include <chrono>
#include <string>
#include <utility>

#include "evcxx/export.hpp"
#include "evcxx/loop.hpp"
#include "evcxx/watcher.hpp"

EVCXX_BEGIN_NAMESPACE

/// ev_stat: changes of a path's attributes (lstat(2)): creation, deletion, size, times, owner,
/// mode, inode.
///
/// Starting the watcher records the current attributes; the callback runs when they differ from
/// the ones recorded last, and then attr() holds the new ones and prev() the old.
///
/// The path need not exist: exists() tells, and "exists" to "does not exist" is a change like any
/// other. libev uses inotify where it can and otherwise polls every `interval` (zero lets libev
/// choose, about five seconds; it polls at most every 0.1 s). A loop whose first Stat starts while
/// the process is out of descriptors (no inotify instance) polls for all its Stats from then on.
/// Times are compared in whole seconds, so two changes within one second that alter nothing else
/// may be reported as one. stat() is a blocking system call: avoid network file systems.
///
/// The Stat keeps its own copy of the path, as libev needs it for as long as the watcher exists.
///
/// Thread-safety: every member is for the loop thread.
class EVCXX_API Stat final : public Watcher<Stat, ev_stat, void()> {
 public:
  /// Seconds, as libev counts them; any std::chrono::duration converts to it.
  using Duration = std::chrono::duration<double>;

  /// Watches `path`, polling every `interval` when inotify cannot be used (zero: libev's default);
  /// active on construction.
  /// The path should be absolute (a relative one follows the working directory of the moment).
  /// Throws: std::invalid_argument for a negative, NaN or infinite interval, an empty path, a path
  /// ending in '/', containing "." or ".." components or a NUL byte (libev cannot watch those).
  Stat(Loop& loop, std::string path, Duration interval, Callable&& callback);
  /// Watches `path` with libev's default polling interval; active on construction.
  /// Throws: as the constructor with an interval.
  Stat(Loop& loop, std::string path, Callable&& callback);
  /// Created stopped; start() it later.
  /// Throws: as the active constructor.
  Stat(Loop& loop, deferred_t, std::string path, Duration interval, Callable&& callback);
  /// Created stopped, with libev's default polling interval; start() it later.
  /// Throws: as the active constructor.
  Stat(Loop& loop, deferred_t, std::string path, Callable&& callback);
  /// Stops the watcher.
  ~Stat() override;

  /// Watches another path (or polls at another interval); an active watcher is restarted, which
  /// records the new path's attributes.
  /// Throws: as the constructor.
  void set(std::string path, Duration interval = Duration::zero());
  /// start() with the parameters it has (the overloads below set them first).
  using Watcher::start;
  /// set(path, interval), then start().
  /// Throws: std::logic_error if its Loop is gone (changing nothing); as set() and start().
  void start(std::string path, Duration interval = Duration::zero()) {
    require_attached("start(path)");
    set(std::move(path), interval);
    start();
  }

  /// The attributes recorded last (by start(), stat() or a detected change).
  /// Zero-filled until the watcher first starts or stat() runs; when the path could not be
  /// stat'ed st_nlink is 0 and the other fields are unspecified.
  const struct stat& attr() const noexcept { return watcher_.attr; }
  /// After a change, the attributes before it (zero-filled, and st_nlink 0, as for attr()).
  const struct stat& prev() const noexcept { return watcher_.prev; }
  /// attr() describes an existing path.
  bool exists() const noexcept { return watcher_.attr.st_nlink != 0; }
  /// prev() described an existing path.
  bool existed() const noexcept { return watcher_.prev.st_nlink != 0; }

  /// Refreshes attr() now (ev_stat_stat), for example after changing the path yourself so that
  /// the watcher does not report your own change. Works on a stopped watcher too.
  void stat() noexcept { ev_stat_stat(raw_loop_, &watcher_); }

  /// The path watched (the Stat's own copy).
  const std::string& path() const noexcept { return path_; }
  /// The polling interval as given (zero: libev's default).
  Duration interval() const noexcept { return interval_; }

 private:
  void configure() noexcept;

  std::string path_;
  Duration interval_;
};

EVCXX_END_NAMESPACE
