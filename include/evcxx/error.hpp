#pragma once

#include <stdexcept>
#include <string>

#include "evcxx/export.hpp"

EVCXX_BEGIN_NAMESPACE

/// Thrown when libev itself fails (for example ev_loop_new() finding no usable backend).
/// System calls that fail with an errno throw std::system_error instead.
class EVCXX_API Error : public std::runtime_error {
 public:
  /// The constructors of std::runtime_error.
  using std::runtime_error::runtime_error;
};

EVCXX_END_NAMESPACE
