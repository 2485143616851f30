// The echo rows of side_by_side_bench: an echo server on its own thread over loopback TCP, with
// 1, 64 or 512 connections: time per echoed 32-byte message (the run's wall time divided by the
// messages echoed, i.e. the inverse of messages per second).
//
// The client is the same for every server: the benchmark thread, with epoll, keeps one message in
// flight on every connection and sends the next as soon as the echo is back. Servers: evcxx (one
// Io watcher per connection), raw libev (one ev_io per connection) and Boost.Asio (async_read_some
// / async_write per connection). The connections are made before the clock starts; the server
// reads what is there and writes it back.

#include <arpa/inet.h>
#include <ev.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <evcxx/io.hpp>
#include <evcxx/loop.hpp>

#include <algorithm>
#include <atomic>
#include <boost/asio/buffer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "side_by_side.hpp"
#include "system.hpp"

namespace evcxx_bench::sbs {

namespace {

using evcxx_bench::throw_errno;

constexpr std::size_t kMessage = 32;
constexpr std::size_t kBuffer = 4096;

void set_nodelay(int fd) {
  const int one = 1;
  if (::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) throw_errno("TCP_NODELAY");
}

// Writes all of buf to a socket whose buffer has room (a 32-byte echo always has).
bool write_all(int fd, const char* buf, std::size_t n) {
  while (n > 0) {
    const ssize_t w = ::send(fd, buf, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    buf += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

// The connections of one sample: the client ends (non-blocking) and the server ends (handed to
// the server, which closes them).
struct Connections {
  std::vector<int> client;
  std::vector<int> server;

  explicit Connections(int count) {
    const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listener < 0) throw_errno("socket");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(listener, 64) != 0 ||
        ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      ::close(listener);
      throw_errno("listen");
    }
    try {
      for (int i = 0; i < count; ++i) {
        const int c = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c < 0) throw_errno("socket");
        client.push_back(c);
        if (::connect(c, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
          throw_errno("connect");
        }
        const int s = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (s < 0) throw_errno("accept4");
        server.push_back(s);
        set_nodelay(c);
        set_nodelay(s);
      }
      for (const int c : client) {
        if (::fcntl(c, F_SETFL, O_NONBLOCK) != 0) throw_errno("fcntl");
      }
    } catch (...) {
      ::close(listener);
      close_all();
      throw;
    }
    ::close(listener);
  }
  ~Connections() {
    for (const int c : client) ::close(c);
  }
  Connections(const Connections&) = delete;
  Connections& operator=(const Connections&) = delete;

  void close_all() noexcept {
    for (const int c : client) ::close(c);
    for (const int s : server) ::close(s);
    client.clear();
    server.clear();
  }
};

// The client: `ops` round trips spread over every connection, one message in flight on each.
double drive(const std::vector<int>& fds, std::uint64_t ops) {
  const int ep = ::epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) throw_errno("epoll_create1");
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{ep};
  std::vector<std::size_t> received(fds.size(), 0);
  for (std::size_t i = 0; i < fds.size(); ++i) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = i;
    if (::epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev) != 0) throw_errno("epoll_ctl");
  }
  char message[kMessage];
  std::memset(message, 'x', sizeof message);
  char buf[kBuffer];
  std::uint64_t sent = 0;
  std::uint64_t done = 0;
  const auto start = Clock::now();
  for (std::size_t i = 0; i < fds.size() && sent < ops; ++i, ++sent) {
    if (!write_all(fds[i], message, kMessage)) throw_errno("send");
  }
  epoll_event events[256];
  const auto deadline = start + std::chrono::seconds(30);
  while (done < ops) {
    const int n = ::epoll_wait(ep, events, 256, 1000);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("epoll_wait");
    }
    if (Clock::now() > deadline) throw std::runtime_error("echo: no answer within 30 s");
    for (int e = 0; e < n; ++e) {
      const std::size_t i = events[e].data.u64;
      const ssize_t r = ::recv(fds[i], buf, sizeof buf, 0);
      if (r == 0) throw std::runtime_error("echo: the server closed a connection");
      if (r < 0) {
        if (errno == EAGAIN || errno == EINTR) continue;
        throw_errno("recv");
      }
      received[i] += static_cast<std::size_t>(r);
      while (received[i] >= kMessage) {
        received[i] -= kMessage;
        ++done;
        if (sent < ops) {
          if (!write_all(fds[i], message, kMessage)) throw_errno("send");
          ++sent;
        }
      }
    }
  }
  return seconds_since(start);
}

// --- servers: constructed with the server ends, run on their own thread, stopped by the dtor ---

class EvcxxServer {
 public:
  explicit EvcxxServer(const std::vector<int>& fds) {
    for (const int fd : fds) {
      auto& c = connections_.emplace_back(std::make_unique<Connection>());
      c->fd = fd;
      Connection* const self = c.get();
      c->io.emplace(loop_, fd, evcxx::IoEvent::readable, [self](evcxx::IoEvents) {
        char buf[kBuffer];
        const ssize_t r = ::recv(self->fd, buf, sizeof buf, 0);
        if (r > 0) {
          if (!write_all(self->fd, buf, static_cast<std::size_t>(r))) self->io->stop();
        } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
          self->io->stop();
        }
      });
    }
    thread_ = std::thread([this] { loop_.run(); });
  }
  ~EvcxxServer() {
    loop_.stop();
    thread_.join();
    for (auto& c : connections_) {
      c->io.reset();
      ::close(c->fd);
    }
  }

 private:
  struct Connection {
    int fd = -1;
    std::optional<evcxx::Io> io;
  };
  evcxx::Loop loop_;
  std::vector<std::unique_ptr<Connection>> connections_;
  std::thread thread_;
};

class LibevServer {
 public:
  explicit LibevServer(const std::vector<int>& fds) : loop_(ev_loop_new(EVFLAG_AUTO)) {
    if (loop_ == nullptr) throw std::runtime_error("ev_loop_new failed");
    ev_async_init(&quit_,
                  [](struct ev_loop* loop, ev_async*, int) { ev_break(loop, EVBREAK_ALL); });
    ev_async_start(loop_, &quit_);
    for (const int fd : fds) {
      auto& w = watchers_.emplace_back(std::make_unique<ev_io>());
      ev_io_init(w.get(), on_readable, fd, EV_READ);
      ev_io_start(loop_, w.get());
    }
    thread_ = std::thread([this] { ev_run(loop_, 0); });
  }
  ~LibevServer() {
    ev_async_send(loop_, &quit_);
    thread_.join();
    for (auto& w : watchers_) {
      ev_io_stop(loop_, w.get());
      ::close(w->fd);
    }
    ev_async_stop(loop_, &quit_);
    ev_loop_destroy(loop_);
  }

 private:
  static void on_readable(struct ev_loop* loop, ev_io* w, int) {
    char buf[kBuffer];
    const ssize_t r = ::recv(w->fd, buf, sizeof buf, 0);
    if (r > 0) {
      if (!write_all(w->fd, buf, static_cast<std::size_t>(r))) ev_io_stop(loop, w);
    } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
      ev_io_stop(loop, w);
    }
  }

  struct ev_loop* loop_;
  ev_async quit_;
  std::vector<std::unique_ptr<ev_io>> watchers_;
  std::thread thread_;
};

class AsioServer {
 public:
  explicit AsioServer(const std::vector<int>& fds) {
    for (const int fd : fds) {
      auto& s = sessions_.emplace_back(std::make_unique<Session>(io_));
      s->socket.assign(boost::asio::ip::tcp::v4(), fd);
      s->read();
    }
    thread_ = std::thread([this] { io_.run(); });
  }
  ~AsioServer() {
    io_.stop();
    thread_.join();
    sessions_.clear();  // the sockets close their descriptors
  }

 private:
  struct Session {
    explicit Session(boost::asio::io_context& io) : socket(io) {}
    void read() {
      socket.async_read_some(boost::asio::buffer(buf),
                             [this](const boost::system::error_code& error, std::size_t n) {
                               if (!error) write(n);
                             });
    }
    void write(std::size_t n) {
      boost::asio::async_write(socket, boost::asio::buffer(buf, n),
                               [this](const boost::system::error_code& error, std::size_t) {
                                 if (!error) read();
                               });
    }
    boost::asio::ip::tcp::socket socket;
    char buf[kBuffer];
  };
  boost::asio::io_context io_;
  std::vector<std::unique_ptr<Session>> sessions_;
  std::thread thread_;
};

template <class Server>
Sample echo(std::uint64_t ops, int connections) {
  Connections c(connections);
  std::vector<int> server_ends;
  server_ends.swap(c.server);  // the server owns them from here
  Server server(server_ends);
  ops = std::max<std::uint64_t>(ops, static_cast<std::uint64_t>(connections));
  return {ops, drive(c.client, ops)};
}

template <int N>
Row echo_row(const char* name, std::uint64_t ops) {
  Row row;
  row.group = "echo";
  row.name = name;
  row.what = std::to_string(N) + (N == 1 ? " connection" : " connections") +
             ", one 32-byte message in flight on each";
  // With many connections in flight this is the server's and the client's cost per message (the
  // inverse of messages per second), not one message's latency.
  row.unit = "message";
  row.ops = ops;
  row.evcxx = {"evcxx", "evcxx Io watchers",
               [](std::uint64_t o) { return echo<EvcxxServer>(o, N); }};
  row.peers.push_back(
      {"libev", "libev ev_io", [](std::uint64_t o) { return echo<LibevServer>(o, N); }});
  row.peers.push_back({"asio", "Boost.Asio async_read_some / async_write",
                       [](std::uint64_t o) { return echo<AsioServer>(o, N); }});
  return row;
}

}  // namespace

std::vector<Row> echo_rows() {
  return {echo_row<1>("connections_1", 200), echo_row<64>("connections_64", 4096),
          echo_row<512>("connections_512", 8192)};
}

}  // namespace evcxx_bench::sbs
