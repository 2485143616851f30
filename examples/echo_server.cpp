// A TCP echo server on 127.0.0.1 built from evcxx watchers:
// - an Io watcher on the listening socket accepts connections;
// - each connection has an Io watcher (readable, plus writable while output is queued) and an
//   inactivity Timer that again() resets on every read or write;
// - Signal watchers for SIGINT and SIGTERM stop it gracefully: the listener closes, each
//   connection sends what it still owes and closes, a grace Timer closes the rest, and the
//   process exits with status 0 once the loop has nothing left to do.
//
// Usage: echo_server [PORT] [--idle-timeout SECONDS] [--threads N]
//   PORT 0 (the default) picks a free port. Either way the first line on stdout is
//   "listening on 127.0.0.1:PORT".
//   --threads N (N >= 1) serves connections on a LoopPool of N loop threads: the main loop only
//   accepts, and hands each connection round-robin to a pool loop with LoopThread::post(). Without
//   it, everything runs on the main loop.
//
// A Worker owns every connection of one Loop and is only ever touched on that loop's thread.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <evcxx/evcxx.hpp>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

namespace {

using Seconds = std::chrono::duration<double>;

struct Options {
  std::uint16_t port = 0;
  Seconds idle_timeout{60.0};
  Seconds grace{5.0};       // how long a graceful stop waits for connections to drain
  std::size_t threads = 0;  // 0: no pool, the main loop serves the connections too
};

[[noreturn]] void fail(const char* what) {
  throw std::system_error(errno, std::generic_category(), what);
}

// One client connection: echoes what it reads, closes on EOF, error or inactivity.
class Connection {
 public:
  Connection(evcxx::Loop& loop, int fd, Seconds idle_timeout, std::function<void()> on_closed)
      : fd_(fd),
        on_closed_(std::move(on_closed)),
        io_(loop, fd, evcxx::IoEvent::readable, [this](evcxx::IoEvents fired) { on_io(fired); }),
        idle_(loop, evcxx::deferred, Seconds::zero(), idle_timeout, [this] { close(); }) {
    idle_.again();
  }
  ~Connection() { ::close(fd_); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Graceful stop: read nothing more, send what is queued, then close.
  void finish() {
    finishing_ = true;
    if (out_.empty()) {
      close();
    } else {
      io_.set(evcxx::IoEvent::writable);
    }
  }

 private:
  static constexpr std::size_t kMaxQueued = 1 << 20;  // stop reading while this much is unsent

  void on_io(evcxx::IoEvents fired) {
    if (fired.error()) return close();
    if (fired.writable() && !flush()) return;
    if (fired.readable() && !finishing_) read_and_echo();
  }

  void read_and_echo() {
    char buf[16384];
    for (;;) {
      const ssize_t n = ::read(fd_, buf, sizeof buf);
      if (n > 0) {
        idle_.again();
        out_.append(buf, static_cast<std::size_t>(n));
        if (out_.size() >= kMaxQueued) break;
        continue;
      }
      if (n == 0) peer_done_ = true;  // EOF: echo what is queued, then close
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return close();
      break;
    }
    flush();
  }

  // Writes what it can and picks the events to wait for. Returns false if it closed.
  bool flush() {
    while (!out_.empty()) {
      const ssize_t n = ::send(fd_, out_.data(), out_.size(), MSG_NOSIGNAL);
      if (n > 0) {
        idle_.again();
        out_.erase(0, static_cast<std::size_t>(n));
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        break;
      } else {
        close();
        return false;
      }
    }
    if (out_.empty() && (peer_done_ || finishing_)) {
      close();
      return false;
    }
    evcxx::IoEvents wanted;
    if (!out_.empty()) wanted |= evcxx::IoEvent::writable;
    if (out_.size() < kMaxQueued && !peer_done_ && !finishing_) wanted |= evcxx::IoEvent::readable;
    if (wanted != io_.events()) io_.set(wanted);
    return true;
  }

  // Destroys *this (through the Worker): nothing may touch a member afterwards.
  void close() { on_closed_(); }

  int fd_;
  std::function<void()> on_closed_;
  evcxx::Io io_;
  evcxx::Timer idle_;
  std::string out_;
  bool peer_done_ = false;
  bool finishing_ = false;
};

// Owns the connections of one loop.
class Worker {
 public:
  Worker(evcxx::Loop& loop, Seconds idle_timeout, Seconds grace)
      : loop_(loop), idle_timeout_(idle_timeout), grace_(grace) {}

  // Takes over an accepted, non-blocking descriptor. Loop thread.
  void adopt(int fd) {
    const std::uint64_t id = next_id_++;
    connections_.emplace(id, std::make_unique<Connection>(loop_, fd, idle_timeout_, [this, id] {
                           // Erasing destroys this closure: keep what is needed after it.
                           Worker* const self = this;
                           self->connections_.erase(id);
                           if (self->connections_.empty()) self->report_drained();
                         }));
  }

  // Lets every connection send what it owes and close, closes the rest after the grace period,
  // then calls drained. Loop thread.
  void shutdown(std::function<void()> drained) {
    drained_ = std::move(drained);
    std::vector<std::uint64_t> ids;
    for (auto& entry : connections_) ids.push_back(entry.first);
    for (std::uint64_t id : ids) {
      auto found = connections_.find(id);
      if (found != connections_.end()) found->second->finish();  // may erase it
    }
    if (connections_.empty()) {
      report_drained();
    } else {
      grace_timer_.emplace(loop_, grace_, Seconds::zero(), [this] {
        connections_.clear();  // closes them without their on_closed callbacks
        report_drained();
      });
    }
  }

  std::size_t size() const { return connections_.size(); }

 private:
  void report_drained() {
    if (!drained_) return;  // not shutting down
    grace_timer_.reset();
    std::exchange(drained_, nullptr)();
  }

  evcxx::Loop& loop_;
  Seconds idle_timeout_;
  Seconds grace_;
  std::uint64_t next_id_ = 0;
  std::unordered_map<std::uint64_t, std::unique_ptr<Connection>> connections_;
  std::function<void()> drained_;
  std::optional<evcxx::Timer> grace_timer_;
};

// The listening socket; hands every accepted descriptor to hand_over.
class Acceptor {
 public:
  Acceptor(evcxx::Loop& loop, std::uint16_t port, std::function<void(int)> hand_over)
      : fd_(listen_on_loopback(port)),
        hand_over_(std::move(hand_over)),
        io_(loop, fd_, evcxx::IoEvent::readable, [this](evcxx::IoEvents fired) { on_io(fired); }) {}
  ~Acceptor() { close(); }
  Acceptor(const Acceptor&) = delete;
  Acceptor& operator=(const Acceptor&) = delete;

  std::uint16_t port() const {
    sockaddr_in addr{};
    socklen_t len = sizeof addr;
    if (::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) fail("getsockname");
    return ntohs(addr.sin_port);
  }

  void close() {
    if (fd_ < 0) return;
    io_.stop();  // before close(): a watcher must never outlive its descriptor
    ::close(fd_);
    fd_ = -1;
  }

 private:
  static int listen_on_loopback(std::uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) fail("socket");
    const int on = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(fd, SOMAXCONN) != 0) {
      const int saved = errno;
      ::close(fd);
      errno = saved;
      fail("bind/listen on 127.0.0.1");
    }
    return fd;
  }

  void on_io(evcxx::IoEvents fired) {
    if (fired.error()) throw std::runtime_error("the listening socket failed");
    for (;;) {
      const int fd = ::accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd >= 0) {
        hand_over_(fd);
        continue;
      }
      if (errno == EINTR || errno == ECONNABORTED) continue;
      // EAGAIN: all accepted. EMFILE and friends: try again on the next readiness.
      if (errno != EAGAIN && errno != EWOULDBLOCK) std::perror("accept4");
      return;
    }
  }

  int fd_;
  std::function<void(int)> hand_over_;
  evcxx::Io io_;
};

class Server {
 public:
  // With a pool, each pool loop gets a Worker; without one, the main loop's Worker serves all.
  Server(evcxx::Loop& loop, const Options& options, evcxx::LoopPool* pool)
      : pool_(pool),
        acceptor_(loop, options.port, [this](int fd) { hand_over(fd); }),
        sigint_(loop, SIGINT, [this] { stop("SIGINT"); }),
        sigterm_(loop, SIGTERM, [this] { stop("SIGTERM"); }),
        drained_(loop) {
    const std::size_t workers = pool_ != nullptr ? pool_->size() : 1;
    for (std::size_t i = 0; i < workers; ++i) {
      evcxx::Loop& worker_loop = pool_ != nullptr ? (*pool_)[i].loop() : loop;
      workers_.push_back(
          std::make_unique<Worker>(worker_loop, options.idle_timeout, options.grace));
    }
  }

  std::uint16_t port() const { return acceptor_.port(); }

  // Blocks until every Worker has closed its connections after a stop. ANY thread.
  void wait_until_drained() { drained_.wait(); }

 private:
  // Main loop thread.
  void hand_over(int fd) {
    if (pool_ == nullptr) {
      workers_[0]->adopt(fd);
      return;
    }
    const std::size_t i = next_worker_++ % workers_.size();  // round-robin
    Worker* worker = workers_[i].get();
    (*pool_)[i].post([worker, fd] { worker->adopt(fd); });
  }

  // Main loop thread.
  void stop(const char* why) {
    std::fprintf(stderr, "echo_server: %s: stopping\n", why);
    sigint_.stop();
    sigterm_.stop();
    acceptor_.close();
    remaining_ = workers_.size();
    for (std::size_t i = 0; i < workers_.size(); ++i) {
      Worker* worker = workers_[i].get();
      auto shut_down = [this, worker] {
        worker->shutdown([this] {
          if (--remaining_ == 0) drained_.set();
        });
      };
      if (pool_ != nullptr) {
        (*pool_)[i].post(shut_down);
      } else {
        shut_down();
      }
    }
  }

  evcxx::LoopPool* pool_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::size_t next_worker_ = 0;
  std::atomic<std::size_t> remaining_{0};
  Acceptor acceptor_;
  evcxx::Signal sigint_;
  evcxx::Signal sigterm_;
  evcxx::WaitableEvent drained_;  // without on_set: it never keeps the main loop alive
};

Options parse(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--idle-timeout" && i + 1 < argc) {
      options.idle_timeout = Seconds(std::stod(argv[++i]));
    } else if (arg == "--threads" && i + 1 < argc) {
      const long threads = std::stol(argv[++i]);
      if (threads < 1 || threads > 256)
        throw std::out_of_range("--threads must be within [1, 256]");
      options.threads = static_cast<std::size_t>(threads);
    } else if (!arg.empty() && arg[0] != '-') {
      const long port = std::stol(arg);
      if (port < 0 || port > 65535) throw std::out_of_range("port must be within [0, 65535]");
      options.port = static_cast<std::uint16_t>(port);
    } else {
      throw std::invalid_argument(
          "usage: echo_server [PORT] [--idle-timeout SECONDS] [--threads N]");
    }
  }
  return options;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Options options = parse(argc, argv);
    evcxx::Loop loop;
    std::optional<evcxx::LoopPool> pool;
    if (options.threads > 0) pool.emplace(options.threads, "echo");
    Server server(loop, options, pool ? &*pool : nullptr);
    std::printf("listening on 127.0.0.1:%u\n", static_cast<unsigned>(server.port()));
    std::fflush(stdout);
    loop.run();  // returns once stopped (and, without a pool, every connection is closed)
    server.wait_until_drained();
    if (pool) {
      // Join the pool before the Workers go: their watchers belong to the pool's loops.
      pool->stop();
      pool->join();
    }
    std::fprintf(stderr, "echo_server: stopped\n");
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "echo_server: %s\n", e.what());
    return 1;
  }
}
