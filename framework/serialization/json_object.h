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
    return to_integer(at(key), key, lo, hi);
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
      values.push_back(to_integer(list[i], fmt::format("{}[{}]", key, i), lo, hi));
    }
    return values;
  }

  // KEY's number (integer or not), which must be finite and lie in [LO, HI].
  double number(const char* key, double lo, double hi) const {
    const nlohmann::json& v = at(key);
    if (!v.is_number()) wrong_type(key, v, "a number");
    const double x = v.get<double>();
    if (!(lo <= x && x <= hi)) out_of_range(key, v, lo, hi);
    return x;
  }

  std::string string(const char* key) const {
    const nlohmann::json& v = at(key);
    if (!v.is_string()) wrong_type(key, v, "a string");
    return v.template get<std::string>();
  }

  const nlohmann::json& object(const char* key) const {
    const nlohmann::json& v = at(key);
    if (!v.is_object()) wrong_type(key, v, "an object");
    return v;
  }

  const nlohmann::json& array(const char* key) const {
    const nlohmann::json& v = at(key);
    if (!v.is_array()) wrong_type(key, v, "an array");
    return v;
  }

 private:
  const nlohmann::json& at(const char* key) const {
    if (!value_.contains(key)) throw ErrorT(fmt::format("{}: missing key \"{}\"", where_, key));
    return value_.at(key);
  }

  // V (KEY's value) as a T, after checking that it is a JSON integer in [LO, HI]: it is never
  // cast before that.
  template <typename T>
  T to_integer(const nlohmann::json& v, const std::string& key, T lo, T hi) const {
    static_assert(std::is_integral_v<T> && (std::is_signed_v<T> || sizeof(T) < 8),
                  "every value of T must fit in an int64");
    if (!v.is_number_integer()) wrong_type(key, v, "an integer");
    // A non-negative JSON integer is stored unsigned: beyond int64 it is beyond every T.
    if (v.is_number_unsigned() &&
        v.get<std::uint64_t>() >
            static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      out_of_range(key, v, lo, hi);
    }
    const std::int64_t x = v.is_number_unsigned()
                               ? static_cast<std::int64_t>(v.get<std::uint64_t>())
                               : v.get<std::int64_t>();
    if (x < static_cast<std::int64_t>(lo) || x > static_cast<std::int64_t>(hi)) {
      out_of_range(key, v, lo, hi);
    }
    return static_cast<T>(x);
  }

  [[noreturn]] void wrong_type(const std::string& key, const nlohmann::json& v,
                               const char* expected) const {
    throw ErrorT(fmt::format("{}: key \"{}\" has the wrong type ({}, expected {})", where_, key,
                             v.type_name(), expected));
  }

  template <typename T>
  [[noreturn]] void out_of_range(const std::string& key, const nlohmann::json& v, T lo,
                                 T hi) const {
    throw ErrorT(fmt::format("{}: key \"{}\" = {} is out of range (expected {} to {})", where_, key,
                             v.dump(), lo, hi));
  }

  const nlohmann::json& value_;
  std::string where_;
};

}  // namespace facetrain::serialization
