// A child-process supervisor on evcxx's default loop: it runs a worker (a /bin/sh script),
// watches it with a Child watcher, restarts it whenever it exits (after a short back-off, at most
// --restarts times) and, on SIGINT or SIGTERM, terminates the worker and exits cleanly.
//
//   supervisor [--restarts N] [--backoff SECONDS] [--worker 'SHELL SCRIPT']
//
// Exit status: 0 after giving up or after a stop signal, 1 if a worker could not be started,
// 2 for bad arguments.

#include <signal.h>
#include <spawn.h>
#include <sys/types.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <optional>
#include <string>

#include <evcxx/async.hpp>
#include <evcxx/child.hpp>
#include <evcxx/loop.hpp>
#include <evcxx/periodic.hpp>

extern char** environ;

namespace {

struct Options {
  int restarts = 3;
  double backoff_seconds = 0.5;
  std::string worker = "echo \"worker $$ running\"; sleep 2; exit 3";
};

std::optional<Options> parse_options(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    try {
      if (arg == "--restarts" && has_value) {
        options.restarts = std::stoi(argv[++i]);
        if (options.restarts < 0) return std::nullopt;
      } else if (arg == "--backoff" && has_value) {
        options.backoff_seconds = std::stod(argv[++i]);
        if (!(options.backoff_seconds >= 0)) return std::nullopt;  // also rejects NaN
      } else if (arg == "--worker" && has_value) {
        options.worker = argv[++i];
      } else {
        return std::nullopt;
      }
    } catch (const std::exception&) {
      return std::nullopt;
    }
  }
  return options;
}

// The signal handler's only links to the loop: Async::send() is async-signal-safe.
evcxx::Async* stop_request = nullptr;
volatile sig_atomic_t stop_signal = 0;

extern "C" void on_stop_signal(int signo) {
  stop_signal = signo;
  stop_request->send();
}

std::string describe(const evcxx::Child& child) {
  if (child.exited()) return "exited with status " + std::to_string(child.exit_status());
  if (child.signaled()) return "was killed by signal " + std::to_string(child.term_signal());
  return "changed state (status " + std::to_string(child.rstatus()) + ")";
}

class Supervisor {
 public:
  Supervisor(evcxx::Loop& loop, Options options)
      : options_(std::move(options)),
        worker_(loop, evcxx::deferred, 0, [this] { on_worker_status(); }),
        // Periodic fires on the wall clock, which is good enough for a back-off of moments.
        backoff_(loop, evcxx::deferred, evcxx::Clock::now(), [this] { spawn_worker(); }),
        stop_request_(loop, [this] { on_stop_request(); }) {}

  evcxx::Async& stop_request() { return stop_request_; }
  int exit_code() const { return exit_code_; }

  void spawn_worker() {
    char sh[] = "sh";
    char dash_c[] = "-c";
    char* argv[] = {sh, dash_c, options_.worker.data(), nullptr};
    pid_t pid = 0;
    const int error = ::posix_spawn(&pid, "/bin/sh", nullptr, nullptr, argv, environ);
    if (error != 0) {
      std::cerr << "supervisor: cannot start /bin/sh: " << std::strerror(error) << std::endl;
      exit_code_ = 1;
      shut_down();
      return;
    }
    // Watched before the loop runs again: libev reaps every child, watched or not.
    worker_.set(pid);
    worker_.start();
    worker_pid_ = pid;
    std::cout << "supervisor: started worker " << pid << " (run " << restarts_ + 1 << ")"
              << std::endl;
  }

 private:
  void on_worker_status() {
    worker_.stop();  // libev leaves child watchers active; this one is done with this pid
    worker_pid_ = 0;
    std::cout << "supervisor: worker " << worker_.rpid() << " " << describe(worker_) << std::endl;
    if (stopping_) {
      shut_down();
    } else if (restarts_ == options_.restarts) {
      std::cout << "supervisor: gave up after " << restarts_ << " restarts" << std::endl;
      shut_down();
    } else {
      ++restarts_;
      std::cout << "supervisor: restart " << restarts_ << " of " << options_.restarts << " in "
                << options_.backoff_seconds << "s" << std::endl;
      backoff_.set(evcxx::Clock::now() + evcxx::Clock::duration(options_.backoff_seconds));
      backoff_.start();
    }
  }

  void on_stop_request() {
    stopping_ = true;
    std::cout << "supervisor: stopping on signal " << stop_signal << " after " << restarts_
              << " restarts" << std::endl;
    if (worker_pid_ != 0) {
      ::kill(worker_pid_, SIGTERM);  // its Child event completes the shutdown
    } else {
      shut_down();
    }
  }

  // Stopping every watcher lets run() return.
  void shut_down() {
    backoff_.stop();
    worker_.stop();
    stop_request_.stop();
  }

  Options options_;
  evcxx::Child worker_;
  evcxx::Periodic backoff_;
  evcxx::Async stop_request_;
  pid_t worker_pid_ = 0;
  int restarts_ = 0;
  bool stopping_ = false;
  int exit_code_ = 0;
};

void handle_stop_signals(void (*handler)(int)) {
  struct sigaction action {};
  action.sa_handler = handler;
  sigemptyset(&action.sa_mask);
  ::sigaction(SIGINT, &action, nullptr);
  ::sigaction(SIGTERM, &action, nullptr);
}

}  // namespace

int main(int argc, char** argv) {
  const std::optional<Options> options = parse_options(argc, argv);
  if (!options) {
    std::cerr << "usage: " << argv[0]
              << " [--restarts N>=0] [--backoff SECONDS>=0] [--worker 'SHELL SCRIPT']\n";
    return 2;
  }
  // The default loop is the one that handles SIGCHLD, hence the only one for Child watchers.
  evcxx::Loop& loop = evcxx::Loop::default_loop();
  Supervisor supervisor(loop, *options);
  stop_request = &supervisor.stop_request();
  handle_stop_signals(on_stop_signal);

  supervisor.spawn_worker();
  loop.run();

  handle_stop_signals(SIG_DFL);  // before stop_request goes away with the supervisor
  return supervisor.exit_code();
}
