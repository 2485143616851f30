// redis_counter: hiredis's own libev adapter on an evcxx loop, used from many threads.
//
// What it shows:
// - redisLibevAttach(loop.native(), context) puts hiredis's raw ev_io watchers on the ev_loop of an
//   evcxx::LoopThread, beside evcxx's own Signal and Timer watchers;
// - hiredis is not thread-safe, so worker threads never touch it: RedisClient::incr() and
//   publish() post the command to the loop thread and hand back a std::future that the reply
//   callback fulfils;
// - every hiredis callback body runs inside loop.call_guarded(), so that an exception never
//   unwinds through hiredis's or libev's C frames;
// - a second connection on the same loop SUBSCRIBEs to a channel and counts the messages the
//   workers PUBLISH there;
// - SIGINT/SIGTERM (evcxx::Signal) stop it gracefully: new commands are refused, every reply
//   already in flight arrives, the counter is read back, both connections disconnect, and
//   LoopThread::join_when_done() sees the loop finish on its own.
//
// Usage: redis_counter --port PORT [--host 127.0.0.1] [--workers 4] [--incrs 2000] [--depth 16]
//                      [--publish-every 10] [--progress-at 1000]
//   Each of --workers threads sends --incrs INCRs of one counter, keeping up to --depth replies
//   outstanding, and PUBLISHes a message after every --publish-every replies. The loop prints
//   "progress: N INCR replies" once N replies arrived. The last line is "summary: ...", ending
//   in "all accounted for" when the counter's final value equals the number of INCR replies,
//   each reply's value came exactly once and every published message was received; the exit
//   status is then 0, and 1 otherwise.

#include <hiredis/adapters/libev.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <unistd.h>

#include <evcxx/evcxx.hpp>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <future>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_set>
#include <utility>
#include <vector>

namespace {

using Seconds = std::chrono::duration<double>;

struct Options {
  std::string host = "127.0.0.1";
  int port = 0;
  int workers = 4;
  long long incrs = 2000;  // per worker
  std::size_t depth = 16;  // replies a worker keeps outstanding
  long long publish_every = 10;
  long long progress_at = 1000;
};

// What a command gets once the client is closing: the worker stops sending.
struct ShuttingDown : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class Kind { incr, publish, get };

struct Request {
  Kind kind;
  std::string message;  // PUBLISH only
  std::promise<long long> reply;
};

// Both hiredis connections and everything they count. Constructed, used and closed on the loop
// thread, except incr() and publish() (ANY thread). After the loop finished (join_when_done()),
// any thread may read the counts.
class RedisClient {
 public:
  RedisClient(evcxx::Loop& loop, const Options& options)
      : loop_(loop),
        key_("evcxx:counter:" + std::to_string(getpid())),
        channel_("evcxx:events:" + std::to_string(getpid())),
        progress_at_(options.progress_at) {
    commands_ = connect(options);
    subscriber_ = connect(options);
    // Confirmed by the first reply on the channel, which arrives before any PUBLISH is sent.
    redisAsyncCommand(subscriber_, &RedisClient::on_message_c, nullptr, "SUBSCRIBE %b",
                      channel_.data(), channel_.size());
    for (int signum : {SIGINT, SIGTERM}) {
      signals_.push_back(std::make_unique<evcxx::Signal>(
          loop_, signum, [this, signum] { close("signal " + std::to_string(signum)); }));
    }
  }
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  // Ready once both connections are up and the subscription is confirmed. ANY thread.
  std::future<void> ready() { return ready_.get_future(); }

  // The counter's new value. ANY thread.
  std::future<long long> incr() { return command(Kind::incr, {}); }
  // How many subscribers received `message`. ANY thread.
  std::future<long long> publish(std::string message) {
    return command(Kind::publish, std::move(message));
  }

  // Refuses new commands; once the replies in flight arrived, reads the counter back, waits
  // (bounded) for the published messages, and disconnects. Idempotent. Loop thread.
  void close(const std::string& reason) {
    if (closing_) return;
    closing_ = true;
    reason_ = reason;
    std::printf("stopping: %s\n", reason.c_str());
    std::fflush(stdout);
    read_back_when_drained();
  }

  // The counter's key in the server (one per process).
  const std::string& key() const { return key_; }

  // The counts, for the summary once the loop has finished.
  const std::string& reason() const { return reason_; }
  long long incr_sent() const { return sent_incrs_; }
  long long incr_replies() const { return incr_replies_; }
  long long refused() const { return refused_; }
  long long failed() const { return failed_; }
  long long final_value() const { return final_value_; }
  bool values_unique() const { return values_unique_ && max_value_ == incr_replies_; }
  long long published() const { return receivers_; }
  long long received() const { return messages_; }
  bool messages_unique() const { return payloads_.size() == static_cast<std::size_t>(messages_); }

 private:
  // Posts the command to the loop thread, where hiredis may be used.
  std::future<long long> command(Kind kind, std::string message) {
    auto request = std::make_unique<Request>();
    request->kind = kind;
    request->message = std::move(message);
    std::future<long long> reply = request->reply.get_future();
    Send task{this, std::move(request)};
    // Loop::try_post leaves the task untouched when the LoopThread has stopped.
    if (!loop_.try_post(std::move(task))) {
      task.request->reply.set_exception(
          std::make_exception_ptr(ShuttingDown("redis_counter: the loop thread has stopped")));
    }
    return reply;
  }

  struct Send {
    RedisClient* client;
    std::unique_ptr<Request> request;
    void operator()() { client->send(std::move(request)); }
  };

  redisAsyncContext* connect(const Options& options) {
    redisAsyncContext* context = redisAsyncConnect(options.host.c_str(), options.port);
    if (context == nullptr) throw std::bad_alloc();
    if (context->err != 0) {
      std::string error = context->errstr;
      redisAsyncFree(context);
      throw std::runtime_error("redis_counter: cannot connect: " + error);
    }
    context->data = this;
    redisLibevAttach(loop_.native(), context);
    redisAsyncSetConnectCallback(context, &RedisClient::on_connect_c);
    redisAsyncSetDisconnectCallback(context, &RedisClient::on_disconnect_c);
    return context;
  }

  void send(std::unique_ptr<Request> request) {
    if (closing_ && request->kind != Kind::get) {
      ++refused_;
      request->reply.set_exception(
          std::make_exception_ptr(ShuttingDown("redis_counter: shutting down")));
      return;
    }
    int status = REDIS_ERR;
    if (commands_ != nullptr) {
      switch (request->kind) {
        case Kind::incr:
          status = redisAsyncCommand(commands_, &RedisClient::on_reply_c, request.get(), "INCR %b",
                                     key_.data(), key_.size());
          break;
        case Kind::publish:
          status = redisAsyncCommand(commands_, &RedisClient::on_reply_c, request.get(),
                                     "PUBLISH %b %b", channel_.data(), channel_.size(),
                                     request->message.data(), request->message.size());
          break;
        case Kind::get:
          status = redisAsyncCommand(commands_, &RedisClient::on_reply_c, request.get(), "GET %b",
                                     key_.data(), key_.size());
          break;
      }
    }
    if (status != REDIS_OK) {
      ++failed_;
      request->reply.set_exception(std::make_exception_ptr(
          std::runtime_error("redis_counter: cannot send the command (disconnected)")));
      return;
    }
    if (request->kind == Kind::incr) ++sent_incrs_;
    ++in_flight_;
    request.release();  // hiredis hands it back to on_reply
  }

  // The C callbacks: each finds its RedisClient and runs the body under the loop's guard.
  static RedisClient& of(const redisAsyncContext* context) {
    return *static_cast<RedisClient*>(context->data);
  }
  static void on_reply_c(redisAsyncContext* context, void* reply, void* data) {
    std::unique_ptr<Request> request(static_cast<Request*>(data));
    RedisClient& self = of(context);
    self.loop_.call_guarded([&] { self.on_reply(*request, static_cast<redisReply*>(reply)); });
  }
  static void on_message_c(redisAsyncContext* context, void* reply, void*) {
    RedisClient& self = of(context);
    self.loop_.call_guarded([&] { self.on_message(static_cast<redisReply*>(reply)); });
  }
  static void on_connect_c(const redisAsyncContext* context, int status) {
    RedisClient& self = of(context);
    self.loop_.call_guarded([&] { self.on_connect(context, status); });
  }
  static void on_disconnect_c(const redisAsyncContext* context, int status) {
    RedisClient& self = of(context);
    self.loop_.call_guarded([&] { self.on_disconnect(context, status); });
  }

  void on_reply(Request& request, const redisReply* reply) {
    --in_flight_;
    if (reply == nullptr) {  // hiredis gives up on the commands still queued when it disconnects
      ++failed_;
      request.reply.set_exception(
          std::make_exception_ptr(std::runtime_error("redis_counter: connection lost")));
    } else if (request.kind == Kind::get) {
      final_value_ = reply->type == REDIS_REPLY_STRING ? std::atoll(reply->str)
                     : reply->type == REDIS_REPLY_NIL  ? 0
                                                       : -1;
      request.reply.set_value(final_value_);
    } else if (reply->type != REDIS_REPLY_INTEGER) {
      ++failed_;
      std::string error = reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply";
      request.reply.set_exception(std::make_exception_ptr(std::runtime_error("redis: " + error)));
    } else if (request.kind == Kind::incr) {
      record_value(reply->integer);
      request.reply.set_value(reply->integer);
    } else {
      receivers_ += reply->integer;
      request.reply.set_value(reply->integer);
    }
    if (request.kind == Kind::get) {
      await_messages();
    } else {
      read_back_when_drained();
    }
  }

  void record_value(long long value) {
    ++incr_replies_;
    if (incr_replies_ == progress_at_) {
      std::printf("progress: %lld INCR replies\n", incr_replies_);
      std::fflush(stdout);
    }
    if (value <= 0) {
      values_unique_ = false;
      return;
    }
    const auto index = static_cast<std::size_t>(value);
    if (seen_.size() <= index) seen_.resize(index + 1 + seen_.size() / 2);
    if (seen_[index]) values_unique_ = false;
    seen_[index] = true;
    if (value > max_value_) max_value_ = value;
  }

  void on_message(const redisReply* reply) {
    // hiredis calls the subscription back with no reply when it disconnects.
    if (reply == nullptr || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3) return;
    const std::string type = reply->element[0]->str;
    if (type == "subscribe") {
      subscribed_ = true;
      announce_ready();
    } else if (type == "message") {
      ++messages_;
      payloads_.emplace(reply->element[2]->str, reply->element[2]->len);
      if (phase_ == Phase::awaiting_messages) await_messages();
    }
  }

  void on_connect(const redisAsyncContext* context, int status) {
    if (status == REDIS_OK) {
      ++connected_;
      announce_ready();
      return;
    }
    // hiredis frees a context whose connection failed, and calls no disconnect callback.
    forget(context);
    fail_ready(std::string("redis_counter: cannot connect: ") + context->errstr);
    close("connection failed");
  }

  void on_disconnect(const redisAsyncContext* context, int status) {
    if (status != REDIS_OK && !closing_) {
      std::fprintf(stderr, "redis_counter: disconnected: %s\n", context->errstr);
    }
    forget(context);
    fail_ready("redis_counter: disconnected");
    close("disconnected");
    disconnect_when_done();
  }

  void forget(const redisAsyncContext* context) {
    if (context == commands_) commands_ = nullptr;
    if (context == subscriber_) subscriber_ = nullptr;
  }

  void announce_ready() {
    if (!ready_set_ && connected_ == 2 && subscribed_) {
      ready_set_ = true;
      ready_.set_value();
    }
  }
  void fail_ready(const std::string& why) {
    if (ready_set_) return;
    ready_set_ = true;
    ready_.set_exception(std::make_exception_ptr(std::runtime_error(why)));
  }

  // Closing, step 1: once no reply is outstanding, reads the counter back.
  void read_back_when_drained() {
    if (!closing_ || in_flight_ != 0 || phase_ != Phase::open) return;
    phase_ = Phase::reading_back;
    auto request = std::make_unique<Request>();
    request->kind = Kind::get;
    send(std::move(request));
    if (in_flight_ == 0) await_messages();  // not sent: disconnected
  }

  // Step 2: waits until every published message was received, for up to 5 s.
  void await_messages() {
    phase_ = Phase::awaiting_messages;
    if (messages_ >= receivers_ || subscriber_ == nullptr) {
      disconnect();
    } else if (!grace_) {
      grace_ = std::make_unique<evcxx::Timer>(loop_, Seconds(5.0), [this] { disconnect(); });
    }
  }

  // Step 3: disconnects both; the loop is done once hiredis has stopped its watchers.
  void disconnect() {
    phase_ = Phase::disconnecting;
    grace_.reset();
    if (commands_ != nullptr) redisAsyncDisconnect(commands_);
    if (subscriber_ != nullptr) redisAsyncDisconnect(subscriber_);
    disconnect_when_done();
  }

  void disconnect_when_done() {
    if (phase_ != Phase::disconnecting || commands_ != nullptr || subscriber_ != nullptr) return;
    signals_.clear();  // the last active watchers: LoopThread::join_when_done() can return
  }

  evcxx::Loop& loop_;
  const std::string key_;
  const std::string channel_;
  const long long progress_at_;
  redisAsyncContext* commands_ = nullptr;    // INCR, PUBLISH, GET
  redisAsyncContext* subscriber_ = nullptr;  // SUBSCRIBE
  std::vector<std::unique_ptr<evcxx::Signal>> signals_;
  std::unique_ptr<evcxx::Timer> grace_;
  std::promise<void> ready_;
  bool ready_set_ = false;
  int connected_ = 0;
  bool subscribed_ = false;

  enum class Phase { open, reading_back, awaiting_messages, disconnecting };
  Phase phase_ = Phase::open;
  bool closing_ = false;
  std::string reason_ = "still running";
  long long in_flight_ = 0;

  long long sent_incrs_ = 0;
  long long incr_replies_ = 0;
  long long refused_ = 0;
  long long failed_ = 0;
  long long final_value_ = -1;
  std::vector<bool> seen_;  // INCR values received
  bool values_unique_ = true;
  long long max_value_ = 0;
  long long receivers_ = 0;  // the sum of PUBLISH replies
  long long messages_ = 0;
  std::unordered_set<std::string> payloads_;
};

// What one worker thread saw.
struct Tally {
  long long answered = 0;   // INCR replies
  long long published = 0;  // PUBLISH replies
  long long refused = 0;
  long long failed = 0;
};

// Sends INCRs (and a PUBLISH now and then), keeping up to `depth` replies outstanding, until done
// or refused.
void work(RedisClient& client, const Options& options, int id, Tally& tally) {
  struct Outstanding {
    bool publish;
    std::future<long long> reply;
  };
  std::deque<Outstanding> outstanding;
  long long sent = 0;
  bool stopping = false;
  auto settle_oldest = [&] {
    Outstanding oldest = std::move(outstanding.front());
    outstanding.pop_front();
    if (oldest.reply.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
      ++tally.failed;  // no reply within 10 s: give up on this one
      stopping = true;
      return;
    }
    try {
      oldest.reply.get();
    } catch (const ShuttingDown&) {
      ++tally.refused;
      stopping = true;
      return;
    } catch (const std::exception& error) {
      std::fprintf(stderr, "worker %d: %s\n", id, error.what());
      ++tally.failed;
      stopping = true;
      return;
    }
    if (oldest.publish) {
      ++tally.published;
      return;
    }
    ++tally.answered;
    if (!stopping && tally.answered % options.publish_every == 0) {
      outstanding.push_back({true, client.publish("worker " + std::to_string(id) + " reply " +
                                                  std::to_string(tally.answered))});
    }
  };
  while (!stopping && sent < options.incrs) {
    if (outstanding.size() >= options.depth) {
      settle_oldest();
    } else {
      outstanding.push_back({false, client.incr()});
      ++sent;
    }
  }
  while (!outstanding.empty()) settle_oldest();
}

Options parse(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (i + 1 >= argc) throw std::invalid_argument("missing value after " + arg);
    const char* value = argv[++i];
    if (arg == "--host") {
      options.host = value;
    } else if (arg == "--port") {
      options.port = std::stoi(value);
    } else if (arg == "--workers") {
      options.workers = std::stoi(value);
    } else if (arg == "--incrs") {
      options.incrs = std::stoll(value);
    } else if (arg == "--depth") {
      options.depth = std::stoul(value);
    } else if (arg == "--publish-every") {
      options.publish_every = std::stoll(value);
    } else if (arg == "--progress-at") {
      options.progress_at = std::stoll(value);
    } else {
      throw std::invalid_argument("unknown option " + arg);
    }
  }
  if (options.port <= 0 || options.workers <= 0 || options.depth == 0 ||
      options.publish_every <= 0) {
    throw std::invalid_argument(
        "usage: redis_counter --port PORT [--host 127.0.0.1] [--workers 4] [--incrs 2000] "
        "[--depth 16] [--publish-every 10] [--progress-at 1000]");
  }
  return options;
}

int run(const Options& options) {
  // What the loop thread caught: exceptions from hiredis callbacks (call_guarded) and from tasks.
  int loop_errors = 0;
  evcxx::LoopThread thread("redis-loop", [&loop_errors](std::exception_ptr error) {
    ++loop_errors;
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& caught) {
      std::fprintf(stderr, "redis_counter: on the loop thread: %s\n", caught.what());
    }
  });
  std::unique_ptr<RedisClient> client =
      thread.submit([&] { return std::make_unique<RedisClient>(thread.loop(), options); }).get();

  std::future<void> ready = client->ready();
  bool started = false;
  if (ready.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    std::fprintf(stderr, "redis_counter: not connected after 10 s\n");
  } else {
    try {
      ready.get();
      started = true;
    } catch (const std::exception& error) {
      std::fprintf(stderr, "%s\n", error.what());
    }
  }

  std::vector<Tally> tallies(static_cast<std::size_t>(options.workers));
  if (started) {
    std::printf("connected to %s:%d; counter %s; %d workers send %lld INCRs each\n",
                options.host.c_str(), options.port, client->key().c_str(), options.workers,
                options.incrs);
    std::fflush(stdout);
    std::vector<std::thread> workers;
    for (int id = 0; id < options.workers; ++id) {
      workers.emplace_back(work, std::ref(*client), std::cref(options), id,
                           std::ref(tallies[static_cast<std::size_t>(id)]));
    }
    for (std::thread& worker : workers) worker.join();
  }
  thread.post([&] { client->close("work done"); });
  if (!thread.join_when_done(Seconds(20.0))) {
    std::fprintf(stderr, "redis_counter: the loop did not finish within 20 s\n");
    return 1;
  }

  Tally total;
  for (const Tally& tally : tallies) {
    total.answered += tally.answered;
    total.published += tally.published;
    total.refused += tally.refused;
    total.failed += tally.failed;
  }
  const bool ok = started && loop_errors == 0 && total.failed == 0 && client->failed() == 0 &&
                  total.answered == client->incr_replies() &&
                  client->incr_replies() == client->incr_sent() &&
                  client->final_value() == client->incr_replies() && client->values_unique() &&
                  client->published() == total.published &&
                  client->received() == client->published() && client->messages_unique();
  std::printf(
      "summary: stopped by %s; INCR sent %lld, answered %lld, refused %lld, failed %lld; counter "
      "%lld; PUBLISH %lld, received %lld; %s\n",
      client->reason().c_str(), client->incr_sent(), total.answered, total.refused,
      total.failed + client->failed(), client->final_value(), client->published(),
      client->received(), ok ? "all accounted for" : "MISMATCH");
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);  // hiredis writes with write(): a lost server must not kill us
  try {
    return run(parse(argc, argv));
  } catch (const std::exception& error) {
    std::fprintf(stderr, "redis_counter: %s\n", error.what());
    return 2;
  }
}
