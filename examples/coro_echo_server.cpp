// The TCP echo server of echo_server.cpp, written with evcxx::coro coroutines:
// - an acceptor Task waits for the listening socket and spawns one session Task per connection;
// - a session echoes what it reads and ends on EOF, an error, inactivity (idle timeout) or a stop;
// - a stopper Task waits for SIGINT or SIGTERM, cancels the acceptor (a std::stop_token), tells
//   every session to finish (a WaitableEvent they all await), waits until they have, and returns:
//   the process exits with status 0.
//
// Usage: coro_echo_server [PORT] [--idle-timeout SECONDS] [--threads N]
//   PORT 0 (the default) picks a free port; the first line on stdout is
//   "listening on 127.0.0.1:PORT". --threads N runs the sessions on a LoopPool of N loop threads
//   (spawn() from the acceptor's thread; each session then lives on its pool loop).

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <evcxx/coro.hpp>
#include <evcxx/evcxx.hpp>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>

namespace {

using Seconds = std::chrono::duration<double>;
using evcxx::Loop;
using evcxx::Task;

struct Options {
  std::uint16_t port = 0;
  Seconds idle_timeout{60.0};
  std::size_t threads = 0;
};

[[noreturn]] void fail(const char* what) {
  throw std::system_error(errno, std::generic_category(), what);
}

// An owned descriptor: a session's frame closes its connection however the session ends.
class Fd {
 public:
  explicit Fd(int fd) noexcept : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const noexcept { return fd_; }

 private:
  int fd_;
};

// What the sessions share: the stop announcement and the count of those still open.
struct Shutdown {
  evcxx::WaitableEvent stopping;  // set once: sessions finish, the acceptor is cancelled
  evcxx::WaitableEvent drained;   // set when stopping and no session is left
  std::atomic<int> open{0};

  void session_ended() noexcept {
    if (open.fetch_sub(1) == 1 && stopping.is_set()) drained.set();
  }
};

// The waits a session chooses between, as Tasks for when_any.
Task<> wait_readable(Loop& loop, int fd) {
  co_await evcxx::readable(loop, fd);
}
Task<> wait_writable(Loop& loop, int fd) {
  co_await evcxx::writable(loop, fd);
}
Task<> wait_stop(Loop& loop, evcxx::WaitableEvent& stopping) {
  co_await evcxx::until_set(loop, stopping);
}
Task<> wait_idle(Loop& loop, Seconds timeout) {
  co_await evcxx::sleep_for(loop, timeout);
}

// One connection. Every wait is bounded by the idle timeout; a stop ends it between requests,
// when it owes the client nothing.
Task<> session(Loop& loop, Fd fd, Seconds idle_timeout, Shutdown& shutdown) {
  struct Ended {
    Shutdown& shutdown;
    ~Ended() { shutdown.session_ended(); }
  } ended{shutdown};
  char buffer[16384];
  for (;;) {
    auto woke =
        co_await evcxx::when_any(wait_readable(loop, fd.get()), wait_stop(loop, shutdown.stopping),
                                 wait_idle(loop, idle_timeout));
    if (woke.index() != 0) co_return;  // stopping, or idle for too long
    const ssize_t n = ::recv(fd.get(), buffer, sizeof buffer, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) co_return;
    std::size_t sent = 0;
    while (n > 0 && sent < static_cast<std::size_t>(n)) {
      const ssize_t w =
          ::send(fd.get(), buffer + sent, static_cast<std::size_t>(n) - sent, MSG_NOSIGNAL);
      if (w > 0) {
        sent += static_cast<std::size_t>(w);
      } else if (w < 0 && errno == EAGAIN) {
        const bool in_time =
            co_await evcxx::with_timeout(loop, idle_timeout, wait_writable(loop, fd.get()));
        if (!in_time) co_return;
      } else if (w < 0 && errno != EINTR) {
        co_return;
      }
    }
  }
}

// Accepts until cancelled (its frame, and with it the listening socket, is then destroyed).
Task<> acceptor(Loop& loop, Fd listener, Options options, evcxx::LoopPool* pool,
                Shutdown& shutdown) {
  for (;;) {
    co_await evcxx::readable(loop, listener.get());
    for (;;) {
      const int fd = ::accept4(listener.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) break;  // EAGAIN, or a connection that went away meanwhile
      Loop& home = pool != nullptr ? pool->next().loop() : loop;
      shutdown.open.fetch_add(1);
      evcxx::spawn(home, session(home, Fd(fd), options.idle_timeout, shutdown));
    }
  }
}

Task<> stopper(Loop& loop, evcxx::StopSource& stop_accepting, Shutdown& shutdown) {
  auto next = [](Loop& l, int signum) -> Task<int> {
    co_return co_await evcxx::next_signal(l, signum);
  };
  auto which = co_await evcxx::when_any(next(loop, SIGINT), next(loop, SIGTERM));
  std::fprintf(stderr, "coro_echo_server: %s: stopping\n",
               which.index() == 0 ? "SIGINT" : "SIGTERM");
  stop_accepting.request_stop();
  shutdown.stopping.set();
  if (shutdown.open.load() == 0) shutdown.drained.set();
  co_await evcxx::until_set(loop, shutdown.drained);
}

Fd listen_on(std::uint16_t port) {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) fail("socket");
  const int on = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) fail("bind");
  if (::listen(fd.get(), SOMAXCONN) != 0) fail("listen");
  return fd;
}

std::uint16_t port_of(int fd) {
  sockaddr_in addr{};
  socklen_t len = sizeof addr;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) fail("getsockname");
  return ntohs(addr.sin_port);
}

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
      options.port = static_cast<std::uint16_t>(std::stoul(arg));
    } else {
      throw std::invalid_argument(
          "usage: coro_echo_server [PORT] [--idle-timeout SECONDS] [--threads N]");
    }
  }
  return options;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Options options = parse(argc, argv);
    Loop loop;
    Shutdown shutdown;
    std::unique_ptr<evcxx::LoopPool> pool;
    if (options.threads > 0) pool = std::make_unique<evcxx::LoopPool>(options.threads, "coro-echo");
    Fd listener = listen_on(options.port);
    const std::uint16_t port = port_of(listener.get());
    evcxx::StopSource stop_accepting;
    evcxx::spawn(loop, stopper(loop, stop_accepting, shutdown));
    evcxx::spawn(loop, acceptor(loop, std::move(listener), options, pool.get(), shutdown),
                 stop_accepting.get_token());
    loop.run(evcxx::Run::nowait);  // the stopper watches the signals before anyone can send one
    std::printf("listening on 127.0.0.1:%u\n", static_cast<unsigned>(port));
    std::fflush(stdout);
    loop.run();  // until the stopper returned and the acceptor was cancelled
    pool.reset();
    std::fprintf(stderr, "coro_echo_server: stopped\n");
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "coro_echo_server: %s\n", e.what());
    return 1;
  }
}
