#pragma once

#include <ev.h>

#include "evcxx/export.hpp"

EVCXX_BEGIN_NAMESPACE
namespace detail {

// An Embed puts its inner loop's epoll set into its outer loop's, and epoll refuses (ELOOP, on
// which libev aborts) a cycle of epoll sets or a path through more than four of them. libev never
// takes an inner set out of the outer one (it drops EPOLL_CTL_DEL), so an embedding lasts in the
// kernel until one of the two loops is destroyed: the graph keeps each edge from the first start
// of its Embed until then, and checks every start against it.
//
// Thread-safety: any thread (one process-wide mutex).
struct EmbedEdge {
  struct ev_loop* outer;
  struct ev_loop* inner;
  EmbedEdge* next = nullptr;  // in the graph's list
  bool in_graph = false;
  bool held = true;  // by its Embed, which frees it if the graph does not hold it
};

// Adds edge to the graph (no allocation; nothing when the graph has this pair of loops already).
// Throws std::logic_error, adding nothing, when it would close a cycle or nest more epoll sets
// than the kernel allows.
void add_embedding(EmbedEdge& edge);
// Its Embed gives edge up (null is allowed): the graph keeps it while both loops live.
void release_embedding(EmbedEdge* edge) noexcept;
// loop is destroyed: its edges leave the graph.
void forget_embeddings(struct ev_loop* loop) noexcept;

}  // namespace detail
EVCXX_END_NAMESPACE
