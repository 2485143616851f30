#pragma once

#include <type_traits>

#include "evcxx/export.hpp"

EVCXX_BEGIN_NAMESPACE

namespace detail {
struct raw_bits_t {
  explicit constexpr raw_bits_t() = default;
};
}  // namespace detail

/// A set of the values of one flag enumeration, held as libev's bits.
///
/// IoEvents, Backends and LoopFlags are Flags; each adds the queries of its own domain. Derived
/// names the set type so the operators return it; `Kept` is the bits from_raw() keeps (all by
/// default).
///
/// Thread-safety: a value type; constexpr throughout.
template <class Derived, class Enum,
          std::underlying_type_t<Enum> Kept = ~std::underlying_type_t<Enum>{}>
class Flags {
 public:
  /// The integer type of libev's bits.
  using Bits = std::underlying_type_t<Enum>;

  /// The empty set.
  constexpr Flags() noexcept = default;
  /// A set of one.
  constexpr Flags(Enum value) noexcept : bits_(static_cast<Bits>(value)) {}  // NOLINT(*-explicit-*)
  /// libev's bits as a set; drops the bits this set type does not carry.
  static constexpr Derived from_raw(Bits bits) noexcept {
    return Derived(detail::raw_bits_t{}, static_cast<Bits>(bits & Kept));
  }
  /// libev's bits, to hand to the C API.
  constexpr Bits raw() const noexcept { return bits_; }

  /// True for the empty set.
  constexpr bool empty() const noexcept { return bits_ == 0; }
  /// True when `value` is in this set.
  constexpr bool contains(Enum value) const noexcept {
    return (bits_ & static_cast<Bits>(value)) != 0;
  }
  /// True when every member of `other` is in this set (always, for an empty `other`).
  constexpr bool contains(Derived other) const noexcept {
    return (bits_ & other.raw()) == other.raw();
  }

  /// The union of two sets.
  friend constexpr Derived operator|(Derived a, Derived b) noexcept {
    return Derived(detail::raw_bits_t{}, static_cast<Bits>(a.raw() | b.raw()));
  }
  /// The intersection of two sets.
  friend constexpr Derived operator&(Derived a, Derived b) noexcept {
    return Derived(detail::raw_bits_t{}, static_cast<Bits>(a.raw() & b.raw()));
  }
  /// Adds the members of `other` to this set.
  constexpr Derived& operator|=(Derived other) noexcept {
    bits_ = static_cast<Bits>(bits_ | other.raw());
    return static_cast<Derived&>(*this);
  }
  /// Keeps only the members this set shares with `other`.
  constexpr Derived& operator&=(Derived other) noexcept {
    bits_ = static_cast<Bits>(bits_ & other.raw());
    return static_cast<Derived&>(*this);
  }
  /// True when both sets hold the same members.
  friend constexpr bool operator==(Derived a, Derived b) noexcept { return a.raw() == b.raw(); }
  /// True when the sets differ in at least one member.
  friend constexpr bool operator!=(Derived a, Derived b) noexcept { return a.raw() != b.raw(); }

  /// For from_raw() and the operators (Derived inherits it): the bits exactly as given.
  constexpr Flags(detail::raw_bits_t, Bits bits) noexcept : bits_(bits) {}

 private:
  Bits bits_ = 0;
};

EVCXX_END_NAMESPACE
