// Drives examples/echo_server as a separate process: many concurrent clients, the idle timeout,
// and a graceful stop on SIGTERM / SIGINT with exit status 0.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <evcxx/io.hpp>
#include <evcxx/loop.hpp>
#include <evcxx/timer.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "support.hpp"

#ifndef EVCXX_ECHO_SERVER
#error "EVCXX_ECHO_SERVER must name the echo_server executable"
#endif

using evcxx::IoEvent;
using evcxx::IoEvents;
using evcxx_test::Fd;
using evcxx_test::Watchdog;
using namespace std::chrono_literals;

namespace {

// The server as a child process; killed and reaped by the destructor if still running.
class ServerProcess {
 public:
  explicit ServerProcess(std::vector<std::string> args) {
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) evcxx_test::throw_errno("pipe2");
    Fd read_end(out[0]);
    Fd write_end(out[1]);
    std::vector<char*> argv;
    args.insert(args.begin(), EVCXX_ECHO_SERVER);
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ < 0) evcxx_test::throw_errno("fork");
    if (pid_ == 0) {
      ::dup2(write_end.get(), STDOUT_FILENO);
      ::execv(argv[0], argv.data());
      evcxx_test::exit_child(127);
    }
    write_end.reset();
    pidfd_.reset(static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0)));
    if (pidfd_.get() < 0) evcxx_test::throw_errno("pidfd_open");
    port_ = read_port(read_end.get());
  }
  ~ServerProcess() {
    if (!reaped_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  std::uint16_t port() const { return port_; }
  void signal(int signum) { ASSERT_EQ(::kill(pid_, signum), 0); }

  // The wait status once it exits within the limit; nothing if it does not.
  std::optional<int> wait_exit(std::chrono::seconds limit) {
    pollfd p{pidfd_.get(), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(limit.count() * 1000)) != 1) return std::nullopt;
    int status = 0;
    if (::waitpid(pid_, &status, 0) != pid_) return std::nullopt;
    reaped_ = true;
    return status;
  }

 private:
  static std::uint16_t read_port(int fd) {
    std::string line;
    while (line.find('\n') == std::string::npos) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 30000) != 1) throw std::runtime_error("echo_server did not start");
      char buf[128];
      const ssize_t n = ::read(fd, buf, sizeof buf);
      if (n <= 0) throw std::runtime_error("echo_server exited before listening");
      line.append(buf, static_cast<std::size_t>(n));
    }
    const std::string prefix = "listening on 127.0.0.1:";
    if (line.rfind(prefix, 0) != 0) throw std::runtime_error("unexpected output: " + line);
    return static_cast<std::uint16_t>(std::stoi(line.substr(prefix.size())));
  }

  pid_t pid_ = -1;
  Fd pidfd_;
  std::uint16_t port_ = 0;
  bool reaped_ = false;
};

Fd connect_to(std::uint16_t port) {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) evcxx_test::throw_errno("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 &&
      errno != EINPROGRESS) {
    evcxx_test::throw_errno("connect");
  }
  return fd;
}

std::string payload(std::size_t index, std::size_t size) {
  std::string data(size, '\0');
  for (std::size_t i = 0; i < size; ++i) {
    data[i] = static_cast<char>('a' + (i * 7 + index * 13) % 26);
  }
  return data;
}

// A client connection driven by the test's own loop: sends `out`, reads until the server closes
// or `stop_after` bytes came back.
class Client {
 public:
  Client(evcxx::Loop& loop, std::uint16_t port, std::string out, std::size_t stop_after)
      : fd_(connect_to(port)),
        out_(std::move(out)),
        stop_after_(stop_after),
        io_(loop, fd_.get(), out_.empty() ? IoEvents(IoEvent::readable) : IoEvent::writable,
            [this](IoEvents fired) { on_io(fired); }) {}

  const std::string& received() const { return in_; }
  bool eof() const { return eof_; }
  bool failed() const { return failed_; }
  // Keeps reading (and checking what comes back) until the server closes the connection.
  void read_until_eof() {
    stop_after_ = SIZE_MAX;
    io_.set(IoEvent::readable);
    io_.start();
  }
  void send_more(const std::string& data) {
    out_ += data;
    io_.set(IoEvent::readable | IoEvent::writable);
  }

 private:
  void on_io(IoEvents fired) {
    if (fired.error()) {
      failed_ = true;
      return;
    }
    if (fired.writable()) {
      const ssize_t n = ::send(fd_.get(), out_.data() + sent_, out_.size() - sent_, MSG_NOSIGNAL);
      if (n > 0) sent_ += static_cast<std::size_t>(n);
      if (n < 0 && errno != EAGAIN) {
        failed_ = true;
        io_.stop();
        return;
      }
      if (sent_ == out_.size()) io_.set(IoEvent::readable);
    }
    if (fired.readable()) {
      char buf[65536];
      const ssize_t n = ::recv(fd_.get(), buf, sizeof buf, 0);
      if (n > 0) in_.append(buf, static_cast<std::size_t>(n));
      if (n == 0) eof_ = true;
      if (n < 0 && errno != EAGAIN) failed_ = true;
      if (n == 0 || (n < 0 && errno != EAGAIN) || in_.size() >= stop_after_) io_.stop();
    }
  }

  Fd fd_;
  std::string out_;
  std::size_t sent_ = 0;
  std::string in_;
  std::size_t stop_after_;
  bool eof_ = false;
  bool failed_ = false;
  evcxx::Io io_;
};

}  // namespace

namespace {

void many_concurrent_clients_get_their_bytes_back(std::vector<std::string> args) {
  ServerProcess server(std::move(args));
  evcxx::Loop loop;
  constexpr std::size_t kClients = 100;
  constexpr std::size_t kBytes = 64 * 1024;
  std::vector<std::unique_ptr<Client>> clients;
  for (std::size_t i = 0; i < kClients; ++i) {
    clients.push_back(std::make_unique<Client>(loop, server.port(), payload(i, kBytes), kBytes));
  }
  Watchdog dog(loop, std::chrono::seconds(60));
  loop.run();
  EXPECT_FALSE(dog.fired());
  for (std::size_t i = 0; i < kClients; ++i) {
    EXPECT_FALSE(clients[i]->failed()) << i;
    EXPECT_FALSE(clients[i]->eof()) << i;
    EXPECT_TRUE(clients[i]->received() == payload(i, kBytes)) << "client " << i;
  }
  clients.clear();
  server.signal(SIGTERM);
  const auto status = server.wait_exit(std::chrono::seconds(30));
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << *status;
}

}  // namespace

TEST(EchoServer, ManyConcurrentClientsGetTheirBytesBack) {
  many_concurrent_clients_get_their_bytes_back({"0"});
}

// --threads: the main loop accepts and hands each connection to one of four pool loops.
TEST(EchoServer, ManyConcurrentClientsOnAFourLoopPool) {
  many_concurrent_clients_get_their_bytes_back({"0", "--threads", "4"});
}

TEST(EchoServer, IdleConnectionIsClosedAndABusyOneIsNot) {
  ServerProcess server({"0", "--idle-timeout", "1"});
  evcxx::Loop loop;
  Client idle(loop, server.port(), "", 1);  // sends nothing: closed after the timeout
  Client busy(loop, server.port(), "", SIZE_MAX);
  int pings = 0;
  bool busy_closed_while_active = false;
  // Every 100 ms for 2.5 s (2.5 idle timeouts), then silence.
  evcxx::Timer ping(loop, 0s, 100ms, [&] {
    if (busy.eof()) busy_closed_while_active = true;
    if (++pings > 25) return ping.stop();
    busy.send_more("p");
  });
  Watchdog dog(loop, std::chrono::seconds(60));
  loop.run();
  EXPECT_FALSE(dog.fired());
  EXPECT_TRUE(idle.eof());
  EXPECT_TRUE(idle.received().empty());
  EXPECT_FALSE(busy_closed_while_active);
  EXPECT_TRUE(busy.eof());  // closed after it fell silent
  EXPECT_EQ(busy.received(), std::string(25, 'p'));
  EXPECT_FALSE(idle.failed() || busy.failed());
}

namespace {

void sigterm_closes_connections_and_exits_zero(std::vector<std::string> args) {
  ServerProcess server(std::move(args));
  evcxx::Loop loop;
  // Ten open connections, each proven live by one echo, then left waiting for the server.
  std::vector<std::unique_ptr<Client>> open;
  for (std::size_t i = 0; i < 10; ++i) {
    open.push_back(std::make_unique<Client>(loop, server.port(), payload(i, 100), 100));
  }
  Watchdog dog(loop, std::chrono::seconds(60));
  loop.run();
  for (std::size_t i = 0; i < open.size(); ++i) {
    ASSERT_EQ(open[i]->received(), payload(i, 100));
    open[i]->read_until_eof();
  }
  server.signal(SIGTERM);
  loop.run();  // until the server has closed every connection
  EXPECT_FALSE(dog.fired());
  for (auto& c : open) {
    EXPECT_TRUE(c->eof());
    EXPECT_FALSE(c->failed());
  }
  const auto status = server.wait_exit(std::chrono::seconds(30));
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << *status;
  // And nothing listens any more.
  Fd late = connect_to(server.port());
  pollfd p{late.get(), POLLOUT, 0};
  ASSERT_EQ(::poll(&p, 1, 10000), 1);
  int error = 0;
  socklen_t len = sizeof error;
  ::getsockopt(late.get(), SOL_SOCKET, SO_ERROR, &error, &len);
  EXPECT_EQ(error, ECONNREFUSED);
}

}  // namespace

TEST(EchoServer, SigtermClosesConnectionsAndExitsZero) {
  sigterm_closes_connections_and_exits_zero({"0"});
}

TEST(EchoServer, SigtermDrainsEveryPoolLoopAndExitsZero) {
  sigterm_closes_connections_and_exits_zero({"0", "--threads", "3"});
}

TEST(EchoServer, SigintStopsItToo) {
  ServerProcess server({"0"});
  server.signal(SIGINT);
  const auto status = server.wait_exit(std::chrono::seconds(30));
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << *status;
}
