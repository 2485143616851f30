// Uses a cross-section of evcxx (templates and inline members included), and exports only
// plugin_run(): nothing of the static evcxx inside may show in this library's dynamic symbols.
#include <evcxx/evcxx.hpp>

#include <chrono>

extern "C" __attribute__((visibility("default"))) int plugin_run() {
  evcxx::Loop loop;
  int steps = 0;
  evcxx::WaitableEvent done(loop);  // no on_set: it does not keep the loop running
  evcxx::Async async(loop, [&] {
    ++steps;
    async.stop();
  });
  evcxx::Timer timer(loop, std::chrono::milliseconds(1), [&] {
    ++steps;
    async.send();
  });
  loop.post([&] {
    ++steps;
    done.set();
  });
  try {
    throw evcxx::LoopStopped("stopped");
  } catch (const evcxx::LoopStopped&) {
    ++steps;  // the type's own typeinfo, hidden in this library, still matches here
  }
  loop.run();
  if (done.is_set()) ++steps;
  return steps;  // catch, post, timer, async, done: 5
}
