#pragma once

// The Async round trip between two loop threads (loop A's callback sends to loop B's async, B's
// callback sends back; time per round trip), once with evcxx and once in raw libev C. Shared by
// async_bench (evcxx beside libev) and compare_bench (beside the other peers).

#include <benchmark/benchmark.h>

namespace evcxx_bench {

void async_round_trip_evcxx(benchmark::State& state);
void async_round_trip_libev(benchmark::State& state);

}  // namespace evcxx_bench
