#pragma once
// Reading the keys of a JSON object that facetrain writes and later reads back (a dataset's
// manifest.json, a checkpoint's state.json) from a file that may come from anywhere. Every key
// must be present with its JSON type; an integer must be a JSON integer inside the range the
// caller states (a fraction, or a number beyond the C++ type, is an error and never a cast);
// every failure is an ErrorT whose message starts with the object's place ("FILE",
// "FILE: shards[3]") and names the key and what was found.

#include <fmt/format.h>

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace facetrain::serialization {

template <typename ErrorT>
class JsonObject {
 public:
  // ErrorT unless VALUE is a JSON object. VALUE must outlive this reader.
  JsonObject(const nlohmann::json& value, std::string where)
      : value_(value), where_(std::move(where)) {
    if (!value_.is_object())
      throw ErrorT(fmt::format("{}: expected a JSON object, found {}", where_, value_.type_name()));
  }

  const std::string& where() const { return where_; }

  // KEY's integer, which must lie in [LO, HI].
  template <typename T>
  T integer(const char* key, T lo = std::numeric_limits<T>::min(),
            T hi = std::numeric_limits<T>::max()) const {
    const nlohmann::json& v = at(key, value_.contains(key) && value_.at(key).is_number_integer(),
                                 "an integer");
    return in_range(v, key, lo, hi);
  }

  // KEY's array of COUNT integers, each in [LO, HI].
  template <typename T>
  std::vector<T> integers(const char* key, std::size_t count, T lo, T hi) const {
    const nlohmann::json& list = array(key);
    if (list.size() != count) {
      throw ErrorT(fmt::format("{}: key \"{}\" holds {} values, expected {}", where_, key,
                               list.size(), count));
    }
    std::vector<T> values;
    for (std::size_t i = 0; i < count; ++i) {
      const std::string name = fmt::format("{}[{}]", key, i);
      if (!list[i].is_number_integer()) {
        throw ErrorT(fmt::format("{}: key \"{}\" has the wrong type ({}, expected an integer)",
                                 where_, name, list[i].type_name()));
      }
      values.push_back(in_range(list[i], name, lo, hi));
    }
    return values;
  }

  // KEY's number (integer or not), which must be finite and lie in [LO, HI].
  double number(const char* key, double lo, double hi) const {
    const nlohmann::json& v =
        at(key, value_.contains(key) && value_.at(key).is_number(), "a number");
    const double x = v.get<double>();
    if (!(lo <= x && x <= hi)) {
      throw ErrorT(fmt::format("{}: key \"{}\" = {} is out of range (expected {} to {})", where_,
                               key, v.dump(), lo, hi));
    }
    return x;
  }

  std::string string(const char* key) const {
    return at(key, value_.contains(key) && value_.at(key).is_string(), "a string")
        .template get<std::string>();
  }

  const nlohmann::json& array(const char* key) const {
    return at(key, value_.contains(key) && value_.at(key).is_array(), "an array");
  }

 private:
  // KEY's value, after checking that it is there and that TYPE_OK (it has the EXPECTED type).
  const nlohmann::json& at(const char* key, bool type_ok, const char* expected) const {
    if (!value_.contains(key)) throw ErrorT(fmt::format("{}: missing key \"{}\"", where_, key));
    if (!type_ok) {
      throw ErrorT(fmt::format("{}: key \"{}\" has the wrong type ({}, expected {})", where_, key,
                               value_.at(key).type_name(), expected));
    }
    return value_.at(key);
  }

  // The JSON integer V as a T, after checking that it lies in [LO, HI] (it is never cast first).
  template <typename T>
  T in_range(const nlohmann::json& v, const std::string& key, T lo, T hi) const {
    static_assert(std::is_integral_v<T> && (std::is_signed_v<T> || sizeof(T) < 8),
                  "every value of T must fit in an int64");
    const auto low = static_cast<std::int64_t>(lo), high = static_cast<std::int64_t>(hi);
    // A non-negative JSON integer is stored unsigned: beyond int64 it is beyond every T.
    const bool beyond_int64 =
        v.is_number_unsigned() &&
        v.get<std::uint64_t>() > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
    const std::int64_t x = beyond_int64 ? 0 : v.is_number_unsigned()
                                                  ? static_cast<std::int64_t>(v.get<std::uint64_t>())
                                                  : v.get<std::int64_t>();
    if (beyond_int64 || x < low || x > high) {
      throw ErrorT(fmt::format("{}: key \"{}\" = {} is out of range (expected {} to {})", where_,
                               key, v.dump(), lo, hi));
    }
    return static_cast<T>(x);
  }

  const nlohmann::json& value_;
  std::string where_;
};

}  // namespace facetrain::serialization
