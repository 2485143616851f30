#include "evcxx/stat.hpp"

#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>

EVCXX_BEGIN_NAMESPACE

namespace {

void check_interval(Stat::Duration interval) {
  if (!std::isfinite(interval.count()) || interval.count() < 0) {
    throw std::invalid_argument(
        "evcxx: Stat interval must be a non-negative, finite number of seconds (0 lets libev "
        "choose)");
  }
}

bool has_dot_component(const std::string& path) {
  std::size_t begin = 0;
  while (begin <= path.size()) {
    std::size_t end = path.find('/', begin);
    if (end == std::string::npos) end = path.size();
    const std::string_view part(path.data() + begin, end - begin);
    if (part == "." || part == "..") return true;
    begin = end + 1;
  }
  return false;
}

void check_path(const std::string& path) {
  const char* problem = nullptr;
  if (path.empty()) {
    problem = "is empty";
  } else if (path.find('\0') != std::string::npos) {
    problem = "contains a NUL byte";
  } else if (path.size() > 1 && path.back() == '/') {
    problem = "ends in '/'";
  } else if (has_dot_component(path)) {
    problem = R"(contains a "." or ".." component)";
  }
  if (problem != nullptr) {
    throw std::invalid_argument("evcxx: Stat path \"" + path + "\" " + problem +
                                "; libev needs a plain path, preferably absolute, such as "
                                "\"/var/run/app.pid\"");
  }
}

}  // namespace

Stat::Stat(Loop& loop, std::string path, Duration interval, Callable&& callback)
    : Stat(loop, deferred, std::move(path), interval, std::move(callback)) {
  start();
}

Stat::Stat(Loop& loop, std::string path, Callable&& callback)
    : Stat(loop, std::move(path), Duration::zero(), std::move(callback)) {}

Stat::Stat(Loop& loop, deferred_t, std::string path, Duration interval, Callable&& callback)
    : Watcher(loop, std::move(callback)), path_(std::move(path)), interval_(interval) {
  check_path(path_);
  check_interval(interval_);
  std::memset(&watcher_.attr, 0, sizeof watcher_.attr);
  std::memset(&watcher_.prev, 0, sizeof watcher_.prev);
  configure();
}

Stat::Stat(Loop& loop, deferred_t, std::string path, Callable&& callback)
    : Stat(loop, deferred, std::move(path), Duration::zero(), std::move(callback)) {}

Stat::~Stat() {
  stop();  // before path_ goes away
}

void Stat::set(std::string path, Duration interval) {
  check_path(path);
  check_interval(interval);
  restart_with([&] {
    path_ = std::move(path);
    interval_ = interval;
    configure();
  });
}

void Stat::configure() noexcept {
  ev_stat_set(&watcher_, path_.c_str(), interval_.count());
}

EVCXX_END_NAMESPACE
