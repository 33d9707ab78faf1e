// Reading a JSON object's keys from files that may come from anywhere: each key present with its
// type, integers in range before any conversion, and messages that name the place and the key.
#include "framework/serialization/json_object.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "framework/core/error.h"
#include "tests/support/thrown_message.h"

namespace facetrain {
namespace {

using Object = serialization::JsonObject<DataError>;
using nlohmann::json;

std::string refusal(const std::string& text, const std::function<void(const Object&)>& read) {
  const json value = json::parse(text);
  return test::thrown_message<DataError>([&] { read(Object(value, "m.json")); });
}

TEST(JsonObjectTest, IntegersAtTheEdgesOfTheirTypesAreRead) {
  const json value = json::parse(
      R"({"a": -9223372036854775808, "b": 9223372036854775807, "c": 4294967295, "d": 0,
          "e": [1, 65535], "x": 2.5, "s": "text", "l": []})");
  const Object j(value, "m.json");
  EXPECT_EQ(j.integer<std::int64_t>("a"), std::numeric_limits<std::int64_t>::min());
  EXPECT_EQ(j.integer<std::int64_t>("b"), std::numeric_limits<std::int64_t>::max());
  EXPECT_EQ(j.integer<std::uint32_t>("c"), 4294967295u);
  EXPECT_EQ(j.integer<int>("d", 0, 0), 0);
  EXPECT_EQ(j.integers<std::int64_t>("e", 2, 1, 65535), (std::vector<std::int64_t>{1, 65535}));
  EXPECT_DOUBLE_EQ(j.number("x", 0, 3), 2.5);
  EXPECT_DOUBLE_EQ(j.number("d", 0, 3), 0.0);
  EXPECT_EQ(j.string("s"), "text");
  EXPECT_TRUE(j.array("l").empty());
}

TEST(JsonObjectTest, NumbersBeyondTheTypeOrTheRangeAreRefusedByKey) {
  const auto int64 = [](const char* key) {
    return [key](const Object& j) { j.integer<std::int64_t>(key); };
  };
  EXPECT_EQ(refusal(R"({"n": 18446744073709551615})", int64("n")),
            "m.json: key \"n\" = 18446744073709551615 is out of range (expected "
            "-9223372036854775808 to 9223372036854775807)");
  EXPECT_EQ(refusal(R"({"n": 1e300})", int64("n")),
            "m.json: key \"n\" has the wrong type (number, expected an integer)");
  EXPECT_EQ(refusal(R"({"n": 1.5})", int64("n")),
            "m.json: key \"n\" has the wrong type (number, expected an integer)");
  EXPECT_EQ(refusal(R"({"n": "7"})", int64("n")),
            "m.json: key \"n\" has the wrong type (string, expected an integer)");
  EXPECT_EQ(refusal(R"({"m": 7})", int64("n")), "m.json: missing key \"n\"");
  const auto crc = [](const Object& j) { j.integer<std::uint32_t>("crc"); };
  EXPECT_EQ(refusal(R"({"crc": -1})", crc),
            "m.json: key \"crc\" = -1 is out of range (expected 0 to 4294967295)");
  EXPECT_EQ(refusal(R"({"crc": 4294967296})", crc),
            "m.json: key \"crc\" = 4294967296 is out of range (expected 0 to 4294967295)");
  const auto world = [](const Object& j) { j.integer<int>("world", 1, 8); };
  EXPECT_EQ(refusal(R"({"world": 0})", world),
            "m.json: key \"world\" = 0 is out of range (expected 1 to 8)");
  EXPECT_EQ(refusal(R"({"world": 2147483648})", world),
            "m.json: key \"world\" = 2147483648 is out of range (expected 1 to 8)");
  const auto scale = [](const Object& j) { j.number("scale", 0, 1e6); };
  EXPECT_EQ(refusal(R"({"scale": -0.5})", scale),
            "m.json: key \"scale\" = -0.5 is out of range (expected 0 to 1000000)");
  EXPECT_EQ(refusal(R"({"scale": null})", scale),
            "m.json: key \"scale\" has the wrong type (null, expected a number)");
}

TEST(JsonObjectTest, ArraysOfIntegersAreCheckedInCountTypeAndRange) {
  const auto size = [](const Object& j) { j.integers<std::int64_t>("size", 2, 1, 100); };
  EXPECT_EQ(refusal(R"({"size": [1, 2, 3]})", size),
            "m.json: key \"size\" holds 3 values, expected 2");
  EXPECT_EQ(refusal(R"({"size": [1, 2.5]})", size),
            "m.json: key \"size[1]\" has the wrong type (number, expected an integer)");
  EXPECT_EQ(refusal(R"({"size": [0, 2]})", size),
            "m.json: key \"size[0]\" = 0 is out of range (expected 1 to 100)");
  EXPECT_EQ(refusal(R"({"size": {"h": 1}})", size),
            "m.json: key \"size\" has the wrong type (object, expected an array)");
}

TEST(JsonObjectTest, OnlyAnObjectIsRead) {
  const json value = json::parse("[1, 2]");
  EXPECT_EQ(test::thrown_message<DataError>([&] { Object(value, "m.json"); }),
            "m.json: expected a JSON object, found array");
}

}  // namespace
}  // namespace facetrain
