#pragma once

#include "evcxx/version.hpp"

/// @file
/// Symbol visibility and the versioned namespace, for every evcxx header.
///
/// Visibility: the shared library (EVCXX_SHARED, set by CMake and pkg-config for its users) is
/// built with hidden visibility and exports only what carries EVCXX_API. The static library is
/// built hidden too and marks nothing: linked into a user's shared object it exports no evcxx
/// symbol of its own, and the inline functions the user's code instantiates follow the user's
/// flags (build that object with -fvisibility-inlines-hidden, as for any header-heavy library).

#if defined(EVCXX_SHARED) && (defined(__GNUC__) || defined(__clang__))
/// Exports a class or function from the shared library (default visibility); empty otherwise.
#define EVCXX_API __attribute__((visibility("default")))
#else
/// Exports a class or function from the shared library (default visibility); empty otherwise.
#define EVCXX_API
#endif

/// Opens namespace evcxx and its versioned inline namespace (see version.hpp), where every
/// declaration of evcxx lives.
#define EVCXX_BEGIN_NAMESPACE \
  namespace evcxx {           \
  inline namespace EVCXX_ABI_NAMESPACE {
/// Closes what EVCXX_BEGIN_NAMESPACE opened.
#define EVCXX_END_NAMESPACE \
  }                         \
  }
