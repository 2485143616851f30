#pragma once

// A C-style client library of the kind that runs its own raw libev watchers on the caller's loop
// (hiredis with its libev adapter): a context struct allocated with calloc, one ev_io for replies
// and one ev_timer for the reply timeout, function-pointer callbacks, and a disconnect that waits
// for the replies still in flight before it stops its watchers and reports. Requests and replies
// are lines on a socket; CPeer is the server side, on its own thread.
//
// Everything but cc_free() runs on the loop's thread, as such a library requires. cc_free() stops
// the watchers on the context's loop (as redisAsyncFree does): it needs that ev_loop to exist.

#include <ev.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>

namespace evcxx_test {

struct cc_context;
using cc_reply_fn = void (*)(cc_context* c, const char* reply, void* data);
using cc_disconnect_fn = void (*)(cc_context* c, int status, void* data);

enum { CC_OK = 0, CC_ERR_EOF = -1, CC_ERR_TIMEOUT = -2 };

struct cc_context {
  struct ev_loop* loop;
  int fd;
  ev_io read_w;
  ev_timer timeout_w;
  char in[4096];
  std::size_t in_len;
  int in_flight;  // requests whose replies have not arrived yet
  int disconnecting;
  int finished;  // watchers stopped, on_disconnect called
  cc_reply_fn on_reply;
  cc_disconnect_fn on_disconnect;
  void* data;
};

inline void cc_finish(cc_context* c, int status) {
  if (c->finished) return;
  c->finished = 1;
  ev_io_stop(c->loop, &c->read_w);
  ev_timer_stop(c->loop, &c->timeout_w);
  if (c->on_disconnect != nullptr) c->on_disconnect(c, status, c->data);
}

inline void cc_read_cb(struct ev_loop*, ev_io* w, int) {
  cc_context* c = static_cast<cc_context*>(w->data);
  const ssize_t n = ::read(c->fd, c->in + c->in_len, sizeof c->in - c->in_len);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (n <= 0) {
    cc_finish(c, CC_ERR_EOF);
    return;
  }
  c->in_len += static_cast<std::size_t>(n);
  char* line = c->in;
  while (char* end = static_cast<char*>(std::memchr(line, '\n', c->in + c->in_len - line))) {
    *end = '\0';
    --c->in_flight;
    if (c->on_reply != nullptr) c->on_reply(c, line, c->data);
    line = end + 1;
  }
  c->in_len -= static_cast<std::size_t>(line - c->in);
  std::memmove(c->in, line, c->in_len);
  if (c->in_flight > 0) {
    ev_timer_again(c->loop, &c->timeout_w);  // a reply arrived: the next one has a full timeout
  } else {
    ev_timer_stop(c->loop, &c->timeout_w);
    if (c->disconnecting) cc_finish(c, CC_OK);
  }
}

inline void cc_timeout_cb(struct ev_loop*, ev_timer* w, int) {
  cc_finish(static_cast<cc_context*>(w->data), CC_ERR_TIMEOUT);
}

inline cc_context* cc_connect(struct ev_loop* loop, int fd, double timeout, cc_reply_fn on_reply,
                              cc_disconnect_fn on_disconnect, void* data) {
  cc_context* c = static_cast<cc_context*>(std::calloc(1, sizeof(cc_context)));
  if (c == nullptr) return nullptr;
  c->loop = loop;
  c->fd = fd;
  c->on_reply = on_reply;
  c->on_disconnect = on_disconnect;
  c->data = data;
  ev_io_init(&c->read_w, cc_read_cb, fd, EV_READ);
  c->read_w.data = c;
  ev_timer_init(&c->timeout_w, cc_timeout_cb, 0., timeout);
  c->timeout_w.data = c;
  ev_io_start(loop, &c->read_w);
  return c;
}

// Sends one request line; its reply goes to on_reply.
inline int cc_command(cc_context* c, const char* request) {
  if (c->finished || c->disconnecting) return -1;
  std::string line = std::string(request) + "\n";
  if (::write(c->fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) return -1;
  if (c->in_flight++ == 0) ev_timer_again(c->loop, &c->timeout_w);
  return 0;
}

// Sends "QUIT" and disconnects once its reply and every reply before it arrived.
inline void cc_disconnect(cc_context* c) {
  if (cc_command(c, "QUIT") == 0) c->disconnecting = 1;
}

// Stops the watchers on c->loop and frees the context.
inline void cc_free(cc_context* c) {
  ev_io_stop(c->loop, &c->read_w);
  ev_timer_stop(c->loop, &c->timeout_w);
  std::free(c);
}

// A one-way gate between threads: open() releases every wait, now and later.
class PeerGate {
 public:
  void open() {
    std::lock_guard<std::mutex> lock(mutex_);
    open_ = true;
    cv_.notify_all();
  }
  bool wait_until(std::chrono::steady_clock::time_point until) {
    std::unique_lock<std::mutex> lock(mutex_);
    return cv_.wait_until(lock, until, [this] { return open_; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool open_ = false;
};

// The server: on its own thread, answers each request line with "re:<line>" once `go` is open,
// and stops after answering "QUIT", at EOF, when destroyed or after `patience`. A silent peer
// never answers (and holds the connection open until then).
class CPeer {
 public:
  enum class Mode { answering, silent };

  CPeer(int fd, PeerGate& go, Mode mode = Mode::answering,
        std::chrono::seconds patience = std::chrono::seconds(60))
      : thread_([this, fd, &go, mode, patience] { serve(fd, go, mode, patience); }) {}
  ~CPeer() { join(); }
  CPeer(const CPeer&) = delete;
  CPeer& operator=(const CPeer&) = delete;

  // Ends the peer (at its next poll) and waits for it.
  void join() {
    done_.store(true);
    if (thread_.joinable()) thread_.join();
  }
  int requests() const { return requests_.load(); }

 private:
  void serve(int fd, PeerGate& go, Mode mode, std::chrono::seconds patience) {
    const auto until = std::chrono::steady_clock::now() + patience;
    std::string pending;
    bool quit = false;
    while (!quit && !done_.load() && std::chrono::steady_clock::now() < until) {
      struct pollfd p {};
      p.fd = fd;
      p.events = POLLIN;
      if (::poll(&p, 1, 10) <= 0) continue;
      char buf[1024];
      const ssize_t n = ::read(fd, buf, sizeof buf);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (n <= 0) return;
      pending.append(buf, static_cast<std::size_t>(n));
      std::string replies;
      for (std::size_t end; (end = pending.find('\n')) != std::string::npos;) {
        const std::string line = pending.substr(0, end);
        pending.erase(0, end + 1);
        requests_.fetch_add(1);
        replies += "re:" + line + "\n";
        if (line == "QUIT") quit = true;
      }
      if (mode == Mode::silent || replies.empty()) continue;
      if (!go.wait_until(until)) return;
      for (std::size_t done = 0; done < replies.size();) {
        const ssize_t w = ::write(fd, replies.data() + done, replies.size() - done);
        if (w < 0 && errno == EAGAIN) {
          std::this_thread::yield();
          continue;
        }
        if (w <= 0) return;
        done += static_cast<std::size_t>(w);
      }
    }
    if (mode == Mode::silent) {
      // Hold the connection open until the client side closes it (or patience runs out).
      while (!done_.load() && std::chrono::steady_clock::now() < until) {
        struct pollfd p {};
        p.fd = fd;
        p.events = POLLIN;
        if (::poll(&p, 1, 10) > 0) {
          char buf[256];
          const ssize_t n = ::read(fd, buf, sizeof buf);
          if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return;
        }
      }
    }
  }

  std::atomic<int> requests_{0};
  std::atomic<bool> done_{false};
  std::thread thread_;  // last: starts after the members it uses exist
};

}  // namespace evcxx_test
