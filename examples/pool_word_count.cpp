// Spreads work over a LoopPool the way a server spreads connections over cores: every word of the
// input goes to the loop that owns it (for_key), so each loop's table is touched by its own thread
// only and needs no lock; submit() then collects the tables.
//
//   pool_word_count [--threads N] [file]     (reads standard input without a file)
#include <evcxx/loop_pool.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace {

using Table = std::unordered_map<std::string, long>;

int usage() {
  std::fprintf(stderr, "usage: pool_word_count [--threads N] [file]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t threads = evcxx::LoopPool::default_size();
  const char* path = nullptr;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--threads" && i + 1 < argc) {
      threads = std::strtoul(argv[++i], nullptr, 10);
      if (threads == 0) return usage();
    } else if (arg.rfind("--", 0) == 0 || path != nullptr) {
      return usage();
    } else {
      path = argv[i];
    }
  }
  std::ifstream file;
  if (path != nullptr) {
    file.open(path);
    if (!file) {
      std::fprintf(stderr, "pool_word_count: cannot open %s\n", path);
      return 1;
    }
  }
  std::istream& input = path != nullptr ? file : std::cin;

  evcxx::LoopPool pool(threads, "words");
  std::vector<Table> tables(pool.size());  // tables[i] belongs to pool[i]'s thread
  std::string word;
  while (input >> word) {
    const std::size_t owner = pool.index_for(word);
    pool[owner].post([&tables, owner, word = std::move(word)] { ++tables[owner][word]; });
  }

  // Each loop hands over its table once everything posted before has run (FIFO per producer).
  std::map<std::string, long> totals;
  for (std::size_t i = 0; i < pool.size(); ++i) {
    for (auto& [w, n] : pool[i].submit([&tables, i] { return std::move(tables[i]); }).get()) {
      totals[w] += n;
    }
  }
  std::vector<std::pair<std::string, long>> top(totals.begin(), totals.end());
  std::stable_sort(top.begin(), top.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  std::printf("%zu distinct words over %zu loop threads\n", top.size(), pool.size());
  for (std::size_t i = 0; i < top.size() && i < 10; ++i) {
    std::printf("%8ld  %s\n", top[i].second, top[i].first.c_str());
  }
  return 0;
}
