// side_by_side_bench: runs the rows of bench/side_by_side_*.cpp pair by pair (see
// side_by_side.hpp), records whether two threads could run at once before, during and after, and
// writes the figures as JSON for scripts/bench_report.py.
//
//   side_by_side_bench [--quick] [--smoke] [--rounds=N] [--target-ms=MS] [--filter=TEXT]
//                      [--no-busy] [--pin-spinner] [--out=FILE.json]
//
// --quick: 3 rounds of ~4 ms samples (a smoke run of well under a minute); --smoke: 1 round of
// tiny samples (ctest); the default is 15 rounds of ~25 ms samples, a couple of minutes.

#include <ev.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/version.hpp>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <exception>
#include <fstream>
#include <list>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "side_by_side.hpp"

namespace evcxx_bench::sbs {

namespace {

struct Options {
  int rounds = 15;
  double target_seconds = 0.025;
  std::string filter;
  bool busy = true;
  bool pin_spinner = false;
  std::string out;
  std::string mode = "full";
};

bool starts_with(const std::string& s, const char* prefix) {
  return s.compare(0, std::strlen(prefix), prefix) == 0;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--quick") {
      o.rounds = 3;
      o.target_seconds = 0.004;
      o.mode = "quick";
    } else if (arg == "--smoke") {
      o.rounds = 1;
      o.target_seconds = 0.0005;
      o.mode = "smoke";
    } else if (starts_with(arg, "--rounds=")) {
      o.rounds = std::max(1, std::atoi(arg.c_str() + 9));
    } else if (starts_with(arg, "--target-ms=")) {
      o.target_seconds = std::max(0.0001, std::atof(arg.c_str() + 12) / 1000);
    } else if (starts_with(arg, "--filter=")) {
      o.filter = arg.substr(9);
    } else if (arg == "--no-busy") {
      o.busy = false;
    } else if (arg == "--pin-spinner") {
      o.pin_spinner = true;
    } else if (starts_with(arg, "--out=")) {
      o.out = arg.substr(6);
    } else {
      std::fprintf(stderr,
                   "usage: %s [--quick|--smoke] [--rounds=N] [--target-ms=MS] [--filter=TEXT] "
                   "[--no-busy] [--pin-spinner] [--out=FILE.json]\n",
                   argv[0]);
      std::exit(2);
    }
  }
  return o;
}

double median(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const auto n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

struct SideResult {
  std::uint64_t ops = 0;  // per sample
  std::string name;
  std::string label;
  std::vector<double> ns;      // per round
  std::vector<double> ratios;  // evcxx / this side, per round (peers only)
};

struct RowResult {
  const Row* row;
  std::vector<SideResult> sides;  // [0] is evcxx
  std::string error;
  std::string state;  // the machine state measured around the row's pass
};

Sample run_side(const Side& side, std::uint64_t ops) {
  const Sample s = side.body(ops);
  if (s.ops == 0 || !(s.seconds > 0)) {
    throw std::runtime_error(side.name + ": the sample timed nothing");
  }
  return s;
}

// Operations per sample so that one sample of `side` takes about `target` seconds.
std::uint64_t calibrate(const Row& row, const Side& side, double target) {
  if (row.fixed_ops) return row.ops;
  // From below the row's guess: growing costs little, a far too long first sample a lot.
  std::uint64_t ops = std::max<std::uint64_t>(1, row.ops / 8);
  for (int attempt = 0;; ++attempt) {
    const double seconds = run_side(side, ops).seconds;
    if (seconds >= target / 4 || attempt == 9) {
      const double scaled = static_cast<double>(ops) * target / std::max(seconds, 1e-9);
      return std::max<std::uint64_t>(1, static_cast<std::uint64_t>(std::min(scaled, 1e9)));
    }
    ops *= 8;
  }
}

RowResult run_row(const Row& row, const Options& o, const std::string& state) {
  RowResult r;
  r.row = &row;
  r.state = state;
  std::vector<const Side*> sides{&row.evcxx};
  for (const Side& p : row.peers) sides.push_back(&p);
  for (const Side* side : sides) r.sides.push_back({0, side->name, side->label, {}, {}});
  const std::size_t n = sides.size();
  try {
    for (std::size_t i = 0; i < n; ++i)
      r.sides[i].ops = calibrate(row, *sides[i], o.target_seconds);
    for (int round = 0; round < o.rounds; ++round) {
      std::vector<double> ns(n);
      for (std::size_t k = 0; k < n; ++k) {
        const std::size_t i = (k + static_cast<std::size_t>(round)) % n;
        const Sample s = run_side(*sides[i], r.sides[i].ops);
        ns[i] = s.seconds * 1e9 / static_cast<double>(s.ops);
      }
      for (std::size_t i = 0; i < n; ++i) {
        r.sides[i].ns.push_back(ns[i]);
        if (i > 0) r.sides[i].ratios.push_back(ns[0] / ns[i]);
      }
    }
  } catch (const std::exception& e) {
    r.error = e.what();
  }
  if (!r.error.empty()) {
    std::printf("  %-10s %-34s FAILED: %s\n", row.group.c_str(), row.name.c_str(), r.error.c_str());
  } else {
    const double evcxx_ns = median(r.sides[0].ns);
    std::printf("  %-10s %-34s evcxx %10.1f ns/%s", row.group.c_str(), row.name.c_str(), evcxx_ns,
                row.unit.c_str());
    for (std::size_t i = 1; i < r.sides.size(); ++i) {
      std::printf("  | %s %.1f ns, x%.2f", r.sides[i].name.c_str(), median(r.sides[i].ns),
                  median(r.sides[i].ratios));
    }
    std::printf("\n");
  }
  std::fflush(stdout);
  return r;
}

void write_json(const std::string& path, const Options& o, const std::vector<MachineState>& states,
                const std::vector<RowResult>& results, int pinned_cpu) {
  std::ostringstream j;
  char date[64];
  const std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S%z", std::localtime(&now));
#if defined(__clang__)
  const std::string compiler = "clang " __clang_version__;
#elif defined(__GNUC__)
  const std::string compiler = "g++ " __VERSION__;
#else
  const std::string compiler = "unknown";
#endif
  j << "{\n  \"context\": {\"mode\": " << json_string(o.mode) << ", \"rounds\": " << o.rounds
    << ", \"target_ms\": " << json_number(o.target_seconds * 1000)
    << ", \"date\": " << json_string(date) << ", \"compiler\": " << json_string(compiler)
    << ", \"num_cpus\": " << sysconf(_SC_NPROCESSORS_ONLN) << ", \"libev\": "
    << json_string(std::to_string(ev_version_major()) + "." + std::to_string(ev_version_minor()))
    << ", \"boost\": "
    << json_string(std::to_string(BOOST_VERSION / 100000) + "." +
                   std::to_string(BOOST_VERSION / 100 % 1000) + "." +
                   std::to_string(BOOST_VERSION % 100))
    << ", \"evcxx_build_type\": " << json_string(EVCXX_BENCH_BUILD_TYPE)
    << ", \"spinner_pinned_cpu\": " << pinned_cpu
    << ", \"co_scheduled_threshold_ns\": " << json_number(kCoScheduledNs) << "},\n";
  j << "  \"machine_states\": [";
  for (std::size_t i = 0; i < states.size(); ++i) {
    const MachineState& s = states[i];
    j << (i ? ",\n    " : "\n    ") << "{\"when\": " << json_string(s.when)
      << ", \"spin_round_trip_ns\": " << json_number(s.median_ns)
      << ", \"spin_round_trip_best_ns\": " << json_number(s.best_ns)
      << ", \"verdict\": " << json_string(s.verdict) << ", \"load\": " << json_string(s.load)
      << "}";
  }
  j << "\n  ],\n  \"sizes\": [";
  const auto sizes = watcher_sizes();
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    j << (i ? ",\n    " : "\n    ") << "{\"type\": " << json_string(sizes[i].type)
      << ", \"evcxx\": " << sizes[i].evcxx << ", \"libev\": " << sizes[i].libev << "}";
  }
  j << "\n  ],\n  \"rows\": [";
  for (std::size_t i = 0; i < results.size(); ++i) {
    const RowResult& r = results[i];
    const Row& row = *r.row;
    j << (i ? ",\n    " : "\n    ") << "{\"group\": " << json_string(row.group)
      << ", \"name\": " << json_string(row.name) << ", \"what\": " << json_string(row.what)
      << ", \"unit\": " << json_string(row.unit)
      << ", \"busy_core\": " << (row.busy_core ? "true" : "false")
      << ", \"slot\": " << (row.slot ? "true" : "false") << ", \"state\": " << json_string(r.state)
      << ", \"error\": " << json_string(r.error) << ", \"sides\": [";
    for (std::size_t k = 0; k < r.sides.size(); ++k) {
      const SideResult& s = r.sides[k];
      const double best = s.ns.empty() ? NAN : *std::min_element(s.ns.begin(), s.ns.end());
      j << (k ? ", " : "") << "{\"name\": " << json_string(s.name)
        << ", \"ops_per_sample\": " << s.ops << ", \"label\": " << json_string(s.label)
        << ", \"median_ns\": " << json_number(median(s.ns))
        << ", \"best_ns\": " << json_number(best);
      if (k > 0) {
        const auto [lo, hi] =
            s.ratios.empty()
                ? std::pair<double, double>{NAN, NAN}
                : std::pair<double, double>{*std::min_element(s.ratios.begin(), s.ratios.end()),
                                            *std::max_element(s.ratios.begin(), s.ratios.end())};
        j << ", \"ratio_median\": " << json_number(median(s.ratios))
          << ", \"ratio_min\": " << json_number(lo) << ", \"ratio_max\": " << json_number(hi)
          << ", \"pairs\": " << s.ratios.size();
      }
      j << "}";
    }
    j << "]}";
  }
  j << "\n  ]\n}\n";
  std::ofstream f(path);
  f << j.str();
  if (!f) throw std::runtime_error("cannot write " + path);
}

bool selected(const Row& row, const Options& o) {
  if (o.filter.empty()) return true;
  return (row.group + "/" + row.name).find(o.filter) != std::string::npos;
}

int run(int argc, char** argv) {
  const Options o = parse(argc, argv);
  std::printf(
      "side_by_side_bench: %s run, %d rounds, ~%.1f ms per sample; figures are medians "
      "over the rounds, xR = median of per-round evcxx/peer ratios (lower is better)\n",
      o.mode.c_str(), o.rounds, o.target_seconds * 1000);
  std::vector<MachineState> states;

  std::vector<RowResult> results;
  std::list<std::vector<Row>> keep;  // results point at their rows
  // Each group's rows are labelled with the state measured just before them.
  const auto run_group = [&](std::vector<Row> rows, bool busy_spinner) {
    keep.push_back(std::move(rows));
    std::vector<const Row*> chosen;
    for (const Row& row : keep.back()) {
      if (selected(row, o)) chosen.push_back(&row);
    }
    if (chosen.empty()) return;
    const std::string group = chosen.front()->group;
    states.push_back(measure_machine_state("before " + group, busy_spinner));
    for (const Row* row : chosen) results.push_back(run_row(*row, o, states.back().verdict));
  };
  run_group(dispatch_rows(), false);
  run_group(io_rows(), false);
  run_group(timer_rows(), false);
  run_group(post_rows(), false);
  run_group(echo_rows(), false);
  run_group(wake_rows(), false);
  run_group(coro_rows(), false);
  int pinned_cpu = -1;
  if (o.busy) {
    std::vector<Row> busy;
    for (std::vector<Row> rows : {post_rows(), busy_dispatch_rows(), coro_rows()}) {
      for (Row& row : rows) {
        row.name = row.group + "/" + row.name;
        row.group = "busy";
        row.busy_core = true;
        busy.push_back(std::move(row));
      }
    }
    BusyCore spinner(o.pin_spinner);
    pinned_cpu = spinner.pinned_cpu();
    run_group(std::move(busy), true);
  }
  states.push_back(measure_machine_state("at the end", false));

  bool failed = false;
  for (const RowResult& r : results) failed = failed || !r.error.empty();
  if (!o.out.empty()) {
    write_json(o.out, o, states, results, pinned_cpu);
    std::printf("wrote %s\n", o.out.c_str());
  }
  if (failed) std::fprintf(stderr, "side_by_side_bench: some rows failed (see above)\n");
  return failed ? 1 : 0;
}

}  // namespace

}  // namespace evcxx_bench::sbs

int main(int argc, char** argv) {
  try {
    return evcxx_bench::sbs::run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "side_by_side_bench: %s\n", e.what());
    return 1;
  }
}
