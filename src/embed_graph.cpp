#include "embed_graph.hpp"

#include <algorithm>
#include <mutex>
#include <stdexcept>
#include <string>

#include "immortal.hpp"

EVCXX_BEGIN_NAMESPACE
namespace detail {
namespace {

constexpr int max_epoll_nesting = 4;

class EmbedGraph {
 public:
  // Loops may die at exit; a start() allocates nothing.
  static EmbedGraph& instance() noexcept { return immortal<EmbedGraph>(); }

  void add(EmbedEdge& edge) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (edge.in_graph) return;
    for (const EmbedEdge* e = head_; e != nullptr; e = e->next) {
      // Known already (an earlier Embed of the same two loops): one edge each, however many
      // Embeds come and go.
      if (e->outer == edge.outer && e->inner == edge.inner) return;
    }
    if (reaches(edge.inner, edge.outer)) {
      throw std::logic_error(
          "evcxx: Embed::start(): the inner loop embeds this one, or did (directly or through "
          "other Embeds), and epoll cannot hold a cycle of loops (libev would abort); an "
          "embedding lasts until one of its loops is destroyed");
    }
    const int depth = depth_above(edge.outer) + nests(edge.outer) + depth_below(edge.inner);
    if (depth > max_epoll_nesting) {
      throw std::logic_error("evcxx: Embed::start() would nest " + std::to_string(depth) +
                             " epoll loops in each other, more than the " +
                             std::to_string(max_epoll_nesting) +
                             " epoll allows (libev would abort); an embedding lasts until one of "
                             "its loops is destroyed: embed loops side by side in one outer loop");
    }
    edge.next = head_;
    head_ = &edge;
    edge.in_graph = true;
  }

  void release(EmbedEdge* edge) noexcept {
    if (edge == nullptr) return;
    std::lock_guard<std::mutex> lock(mutex_);
    edge->held = false;
    if (!edge->in_graph) delete edge;
  }

  void forget(struct ev_loop* loop) noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    for (EmbedEdge** link = &head_; *link != nullptr;) {
      EmbedEdge* const edge = *link;
      if (edge->outer != loop && edge->inner != loop) {
        link = &edge->next;
        continue;
      }
      *link = edge->next;
      edge->in_graph = false;
      edge->next = nullptr;
      if (!edge->held) delete edge;
    }
  }

 private:
  // Whether `outer` embeds `target`, directly or through other loops.
  bool reaches(struct ev_loop* outer, struct ev_loop* target) const noexcept {
    for (const EmbedEdge* e = head_; e != nullptr; e = e->next) {
      if (e->outer == outer && (e->inner == target || reaches(e->inner, target))) return true;
    }
    return false;
  }
  // Only an epoll outer loop nests the inner loop's epoll set in its own.
  static int nests(struct ev_loop* outer) noexcept {
    return ev_backend(outer) == EVBACKEND_EPOLL ? 1 : 0;
  }
  // The most nestings on a path of edges that ends at (above) or starts at (below) `loop`.
  int depth_above(struct ev_loop* loop) const noexcept {
    int depth = 0;
    for (const EmbedEdge* e = head_; e != nullptr; e = e->next) {
      if (e->inner == loop) depth = std::max(depth, nests(e->outer) + depth_above(e->outer));
    }
    return depth;
  }
  int depth_below(struct ev_loop* loop) const noexcept {
    int depth = 0;
    for (const EmbedEdge* e = head_; e != nullptr; e = e->next) {
      if (e->outer == loop) depth = std::max(depth, nests(loop) + depth_below(e->inner));
    }
    return depth;
  }

  std::mutex mutex_;
  EmbedEdge* head_ = nullptr;  // guarded by mutex_
};

}  // namespace

void add_embedding(EmbedEdge& edge) {
  EmbedGraph::instance().add(edge);
}

void release_embedding(EmbedEdge* edge) noexcept {
  EmbedGraph::instance().release(edge);
}

void forget_embeddings(struct ev_loop* loop) noexcept {
  EmbedGraph::instance().forget(loop);
}

}  // namespace detail
EVCXX_END_NAMESPACE
