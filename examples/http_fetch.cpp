// http_fetch: many concurrent HTTP downloads with libcurl's multi-socket interface, driven by
// evcxx watchers on one loop.
//
// What it shows:
// - CURLMOPT_SOCKETFUNCTION gets one evcxx::Io per socket: created deferred (no descriptor yet)
//   and start(fd, events)ed when curl first asks for it, changed with set() when curl wants other
//   events (CURL_POLL_NONE is an empty IoEvents: wait for nothing for a while), destroyed on
//   CURL_POLL_REMOVE; each readiness goes back to curl_multi_socket_action();
// - CURLMOPT_TIMERFUNCTION drives one evcxx::Timer, created deferred and start(after)ed with
//   curl's timeout (-1 stops it);
// - every curl callback body (socket, timer, write) runs inside loop.call_guarded(), so that an
//   exception never unwinds through libcurl's C frames;
// - the loop finishes on its own once the last transfer is done and curl has let go of its sockets.
//
// Usage: http_fetch --base http://127.0.0.1:PORT [--transfers 64] [--max-size 3145728]
//                   [--parallel 64] [--throw-after BYTES]
//   Transfer i downloads BASE/pattern/<i+1>/<size> (sizes from 0 to --max-size bytes), at most
//   --parallel at a time. The server (http_fetch_server.py) answers with a deterministic pattern:
//   the little-endian 64-bit words (seed << 40) + 0, + 1, ..., truncated to size bytes, so every
//   byte's value depends on its offset and a lost, repeated or misplaced chunk is found. The last
//   line is "summary: ..."; the exit status is 0 when every transfer returned HTTP 200 with
//   exactly the expected bytes, and 1 otherwise.
//   --throw-after BYTES shows call_guarded() at work: a write callback that has received more
//   than BYTES throws; the exception stays out of libcurl, loop.run() rethrows it, main() reports
//   it ("http_fetch: ...") and exits with status 2 after cleaning up.

#include <curl/curl.h>

#include <evcxx/evcxx.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <memory>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace {

using Seconds = std::chrono::duration<double>;

struct Options {
  std::string base;
  std::size_t transfers = 64;
  std::uint64_t max_size = 3 << 20;
  std::size_t parallel = 64;
  std::uint64_t throw_after = UINT64_MAX;
};

// Byte `offset` of the pattern for `seed` (see the header comment).
std::uint8_t expected_byte(std::uint64_t seed, std::uint64_t offset) {
  const std::uint64_t word = (seed << 40) + offset / 8;
  return static_cast<std::uint8_t>(word >> (8 * (offset % 8)));
}

// Sizes from 0 bytes to max_size, the edges first.
std::uint64_t size_of(std::size_t index, std::uint64_t max_size) {
  switch (index) {
    case 0:
      return 0;
    case 1:
      return 1;
    case 2:
      return 8;
    case 3:
      return max_size;
    default:
      return (static_cast<std::uint64_t>(index) * 2654435761U) % (max_size + 1);
  }
}

// One download and what arrived of it.
struct Transfer {
  std::uint64_t seed = 0;
  std::uint64_t size = 0;
  std::string url;
  std::uint64_t throw_after = UINT64_MAX;  // --throw-after
  evcxx::Loop* loop = nullptr;             // whose thread curl calls back on, for call_guarded()
  std::uint64_t received = 0;
  std::int64_t first_wrong = -1;  // offset of the first byte that differs from the pattern
  CURLcode result = CURLE_OK;
  long status = 0;  // HTTP response code
  bool done = false;

  // Checks the bytes as they arrive; false stops the transfer (it then fails with
  // CURLE_WRITE_ERROR).
  bool receive(const char* data, std::size_t length) {
    if (received + length > throw_after) {
      throw std::runtime_error("the write callback of " + url + " threw after " +
                               std::to_string(received) + " bytes");
    }
    for (std::size_t i = 0; i < length; ++i) {
      const std::uint64_t offset = received + i;
      if (offset >= size || static_cast<std::uint8_t>(data[i]) != expected_byte(seed, offset)) {
        first_wrong = static_cast<std::int64_t>(offset);
        return false;
      }
    }
    received += length;
    return true;
  }

  bool ok() const {
    return done && result == CURLE_OK && status == 200 && received == size && first_wrong < 0;
  }
};

// A curl multi handle whose sockets and timeout are evcxx watchers on `loop`. Loop thread only.
class Fetcher {
 public:
  Fetcher(evcxx::Loop& loop, std::size_t parallel)
      : loop_(loop),
        multi_(curl_multi_init()),
        timer_(loop, evcxx::deferred, [this] { on_timeout(); }),
        parallel_(parallel) {
    if (multi_ == nullptr) throw std::runtime_error("http_fetch: curl_multi_init failed");
    curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &Fetcher::on_socket_c);
    curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
    curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &Fetcher::on_timer_c);
    curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
  }
  Fetcher(const Fetcher&) = delete;
  Fetcher& operator=(const Fetcher&) = delete;
  ~Fetcher() { finish(); }

  // Queues a transfer; it starts as soon as fewer than `parallel` are running. `transfer` must
  // outlive the Fetcher.
  void add(Transfer& transfer) {
    queued_.push_back(&transfer);
    start_queued();
  }

  std::size_t most_sockets() const { return most_sockets_; }

 private:
  void start_queued() {
    while (running_ < parallel_ && !queued_.empty()) {
      Transfer& transfer = *queued_.front();
      queued_.pop_front();
      CURL* easy = curl_easy_init();
      if (easy == nullptr) throw std::runtime_error("http_fetch: curl_easy_init failed");
      curl_easy_setopt(easy, CURLOPT_URL, transfer.url.c_str());
      curl_easy_setopt(easy, CURLOPT_PRIVATE, &transfer);
      curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &Fetcher::on_write_c);
      curl_easy_setopt(easy, CURLOPT_WRITEDATA, &transfer);
      curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
      curl_easy_setopt(easy, CURLOPT_FAILONERROR, 1L);  // an error page is not the pattern
      curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT, 10L);
      transfer.loop = &loop_;
      transfer.done = false;
      easies_.push_back(easy);
      curl_multi_add_handle(multi_, easy);  // calls on_timer at once: curl starts from there
      ++running_;
    }
  }

  // The C callbacks: each finds its object and runs the body under the loop's guard.
  static int on_socket_c(CURL*, curl_socket_t socket, int what, void* self, void*) {
    Fetcher& fetcher = *static_cast<Fetcher*>(self);
    return fetcher.loop_.call_guarded([&] { fetcher.on_socket(socket, what); }) ? 0 : -1;
  }
  static int on_timer_c(CURLM*, long timeout_ms, void* self) {
    Fetcher& fetcher = *static_cast<Fetcher*>(self);
    return fetcher.loop_.call_guarded([&] { fetcher.on_timer(timeout_ms); }) ? 0 : -1;
  }
  static std::size_t on_write_c(char* data, std::size_t size, std::size_t count, void* target) {
    Transfer& transfer = *static_cast<Transfer*>(target);
    bool keep = false;
    const bool returned =
        transfer.loop->call_guarded([&] { keep = transfer.receive(data, size * count); });
    return returned && keep ? size * count : 0;
  }

  // What curl wants to know about `socket` now.
  void on_socket(curl_socket_t socket, int what) {
    if (what == CURL_POLL_REMOVE) {
      sockets_.erase(socket);  // curl closes it after this returns
      return;
    }
    evcxx::IoEvents events;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT) events |= evcxx::IoEvent::readable;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT) events |= evcxx::IoEvent::writable;
    std::unique_ptr<evcxx::Io>& io = sockets_[socket];
    if (io == nullptr) {
      io = std::make_unique<evcxx::Io>(
          loop_, evcxx::deferred,
          [this, socket](evcxx::IoEvents fired) { on_ready(socket, fired); });
      io->start(socket, events);
      if (sockets_.size() > most_sockets_) most_sockets_ = sockets_.size();
    } else {
      io->set(socket, events);  // CURL_POLL_NONE: empty, it waits for nothing until curl asks again
    }
  }

  void on_timer(long timeout_ms) {
    if (timeout_ms < 0) {
      timer_.stop();
    } else {  // 0 too: curl must not be called back from inside its own callback
      timer_.start(Seconds(static_cast<double>(timeout_ms) / 1000.0));
    }
  }

  void on_ready(curl_socket_t socket, evcxx::IoEvents fired) {
    int action = 0;
    if (fired.readable()) action |= CURL_CSELECT_IN;
    if (fired.writable()) action |= CURL_CSELECT_OUT;
    if (fired.error()) action |= CURL_CSELECT_ERR;
    act(socket, action);  // may destroy this watcher (CURL_POLL_REMOVE): nothing after it
  }

  void on_timeout() { act(CURL_SOCKET_TIMEOUT, 0); }

  void act(curl_socket_t socket, int action) {
    int still_running = 0;
    const CURLMcode code = curl_multi_socket_action(multi_, socket, action, &still_running);
    if (code != CURLM_OK) {
      throw std::runtime_error(std::string("http_fetch: curl_multi_socket_action: ") +
                               curl_multi_strerror(code));
    }
    collect_finished();
    start_queued();
    if (running_ == 0) finish();  // every transfer is done: let go of the loop
  }

  void collect_finished() {
    int left = 0;
    while (CURLMsg* message = curl_multi_info_read(multi_, &left)) {
      if (message->msg != CURLMSG_DONE) continue;
      CURL* easy = message->easy_handle;
      Transfer* transfer = nullptr;
      curl_easy_getinfo(easy, CURLINFO_PRIVATE, &transfer);
      transfer->result = message->data.result;
      curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &transfer->status);
      transfer->done = true;
      forget(easy);
      --running_;
    }
  }

  void forget(CURL* easy) {
    curl_multi_remove_handle(multi_, easy);
    curl_easy_cleanup(easy);
    easies_.erase(std::find(easies_.begin(), easies_.end(), easy));
  }

  // Abandons the transfers still running, closes curl's cached connections (their watchers go with
  // CURL_POLL_REMOVE) and stops the timer: nothing of the Fetcher keeps the loop running.
  void finish() {
    if (multi_ == nullptr) return;
    while (!easies_.empty()) forget(easies_.back());
    curl_multi_cleanup(multi_);
    multi_ = nullptr;
    sockets_.clear();
    timer_.stop();
  }

  evcxx::Loop& loop_;
  CURLM* multi_;
  evcxx::Timer timer_;
  std::unordered_map<curl_socket_t, std::unique_ptr<evcxx::Io>> sockets_;
  std::vector<CURL*> easies_;  // the transfers running
  std::deque<Transfer*> queued_;
  std::size_t parallel_;
  std::size_t running_ = 0;
  std::size_t most_sockets_ = 0;
};

Options parse(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (i + 1 >= argc) throw std::invalid_argument("missing value after " + arg);
    const char* value = argv[++i];
    if (arg == "--base") {
      options.base = value;
    } else if (arg == "--transfers") {
      options.transfers = std::stoul(value);
    } else if (arg == "--max-size") {
      options.max_size = std::stoull(value);
    } else if (arg == "--parallel") {
      options.parallel = std::stoul(value);
    } else if (arg == "--throw-after") {
      options.throw_after = std::stoull(value);
    } else {
      throw std::invalid_argument("unknown option " + arg);
    }
  }
  if (options.base.empty() || options.parallel == 0) {
    throw std::invalid_argument(
        "usage: http_fetch --base http://127.0.0.1:PORT [--transfers 64] [--max-size 3145728] "
        "[--parallel 64] [--throw-after BYTES]");
  }
  return options;
}

int run(const Options& options) {
  std::vector<Transfer> transfers(options.transfers);
  for (std::size_t i = 0; i < transfers.size(); ++i) {
    Transfer& transfer = transfers[i];
    transfer.seed = i + 1;
    transfer.size = size_of(i, options.max_size);
    transfer.throw_after = options.throw_after;
    transfer.url = options.base + "/pattern/" + std::to_string(transfer.seed) + "/" +
                   std::to_string(transfer.size);
  }

  evcxx::Loop loop;
  std::size_t most_sockets = 0;
  {
    Fetcher fetcher(loop, options.parallel);
    // A bound on the whole run: the deadline breaks the loop even if a transfer hangs.
    evcxx::Timer deadline(loop, Seconds(60.0), [&] {
      std::fprintf(stderr, "http_fetch: not done after 60 s\n");
      loop.break_loop();
    });
    loop.unref();  // the deadline alone does not keep the loop running
    for (Transfer& transfer : transfers) fetcher.add(transfer);
    loop.run();
    loop.ref();
    most_sockets = fetcher.most_sockets();
  }

  std::size_t good = 0;
  std::uint64_t bytes = 0;
  for (const Transfer& transfer : transfers) {
    bytes += transfer.received;
    if (transfer.ok()) {
      ++good;
      continue;
    }
    std::printf("FAILED %s: %s, HTTP %ld, %llu of %llu bytes", transfer.url.c_str(),
                transfer.done ? curl_easy_strerror(transfer.result) : "not finished",
                transfer.status, static_cast<unsigned long long>(transfer.received),
                static_cast<unsigned long long>(transfer.size));
    if (transfer.first_wrong >= 0) {
      std::printf(", wrong byte at offset %lld", static_cast<long long>(transfer.first_wrong));
    }
    std::printf("\n");
  }
  std::printf(
      "summary: %zu of %zu transfers complete, %llu bytes, every byte checked; up to %zu "
      "sockets watched at once\n",
      good, transfers.size(), static_cast<unsigned long long>(bytes), most_sockets);
  return good == transfers.size() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    std::fprintf(stderr, "http_fetch: curl_global_init failed\n");
    return 2;
  }
  int status = 2;
  try {
    status = run(parse(argc, argv));
  } catch (const std::exception& error) {
    std::fprintf(stderr, "http_fetch: %s\n", error.what());
  }
  curl_global_cleanup();
  return status;
}
