#pragma once

#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string_view>
#include <type_traits>

// Checked arithmetic for every count, index, id and size that comes from a file or the command
// line: a product, a sum, a conversion to a narrower type or to a clock's duration that does not
// fit is an exception of the caller's kind E naming `what`, never a wrapped value.
namespace facetrain::checked {

// a * b, or nullopt when it does not fit in T (for checks that gather several conditions).
template <class T>
std::optional<T> try_mul(T a, T b) {
  static_assert(std::is_integral_v<T>);
  T out;
  if (__builtin_mul_overflow(a, b, &out)) return std::nullopt;
  return out;
}

// a + b, or nullopt when it does not fit in T.
template <class T>
std::optional<T> try_add(T a, T b) {
  static_assert(std::is_integral_v<T>);
  T out;
  if (__builtin_add_overflow(a, b, &out)) return std::nullopt;
  return out;
}

// a * b.
template <class E, class T>
T mul(T a, T b, std::string_view what) {
  if (const auto out = try_mul(a, b)) return *out;
  throw E(fmt::format("{}: {} x {} does not fit in {} bits", what, a, b, 8 * sizeof(T)));
}

// a + b.
template <class E, class T>
T add(T a, T b, std::string_view what) {
  if (const auto out = try_add(a, b)) return *out;
  throw E(fmt::format("{}: {} + {} does not fit in {} bits", what, a, b, 8 * sizeof(T)));
}

// Whether integer `v` is representable as To.
template <class To, class From>
constexpr bool fits(From v) {
  static_assert(std::is_integral_v<To> && std::is_integral_v<From>);
  To out;
  return !__builtin_add_overflow(v, From{0}, &out);
}

// An integer converted to the narrower (or differently signed) To.
template <class To, class E, class From>
To narrow(From v, std::string_view what) {
  if (!fits<To>(v)) {
    throw E(fmt::format("{}: {} is out of range [{}, {}]", what, v,
                        std::numeric_limits<To>::min(), std::numeric_limits<To>::max()));
  }
  return static_cast<To>(v);
}

// The longest span any duration in the program holds: far beyond any job, far inside the
// nanosecond clock's ±292 years.
inline constexpr double kMaxSeconds = 100.0 * 365 * 24 * 3600;

// `seconds` (finite, >= 0, at most kMaxSeconds) as a duration of the steady clock.
template <class E>
std::chrono::nanoseconds seconds(double seconds, std::string_view what) {
  if (!std::isfinite(seconds) || seconds < 0 || seconds > kMaxSeconds) {
    throw E(fmt::format("{}: {:g} s is not a duration in [0, {:.0f}] s (100 years)", what, seconds,
                        kMaxSeconds));
  }
  return std::chrono::nanoseconds(static_cast<std::int64_t>(seconds * 1e9));
}

}  // namespace facetrain::checked
