#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace facetrain {

// The types a configuration value can have.
enum class ValueType { kBool, kInt, kFloat, kString, kFloatList, kStringList };

// One configuration value; the alternative held always matches the key's ValueType.
using ConfigValue = std::variant<bool, std::int64_t, double, std::string, std::vector<double>,
                                 std::vector<std::string>>;

// The TOML spelling of a type, for error messages: "boolean", "integer", "float", "string",
// "array of floats", "array of strings".
const char* type_name(ValueType type);

// One key of the schema: its dotted name ("optim.lr"), type, default and the constraints its
// value must meet. `arcface_key` is the name of the same setting in insightface's arcface_torch
// (configs/base.py), empty when arcface_torch has none.
struct ConfigKey {
  std::string name;
  ValueType type;
  ConfigValue default_value;
  std::string help;
  std::string arcface_key;
  std::optional<double> min;          // numbers (and every element of a float list) must be >= min
  bool min_exclusive = false;         // ... or > min when set
  std::optional<double> max;          // numbers must be <= max
  bool max_exclusive = false;         // ... or < max when set
  std::vector<std::string> choices;   // strings (and every element of a string list) must be one
  std::optional<std::size_t> length;  // lists must have exactly this many elements
};

// The typed schema of facetrain's configuration: every key, grouped in sections
// (model, loss, data, optim, train, eval, dist, log), in a fixed order.
class ConfigSchema {
 public:
  static const ConfigSchema& instance();

  const std::vector<ConfigKey>& keys() const { return keys_; }
  const ConfigKey* find(std::string_view name) const;
  std::vector<std::string> sections() const;
  // The valid key a user most probably meant by `name` (matched on the whole dotted name and on
  // the part after the last dot, so a bare arcface_torch "lr" suggests "optim.lr").
  std::string nearest(std::string_view name) const;

 private:
  ConfigSchema();
  std::vector<ConfigKey> keys_;
};

// A resolved configuration: schema defaults, then a TOML file, then --set overrides, each value
// checked against the schema as it arrives. Accessors take the dotted name and the expected type;
// asking for a key that does not exist or with the wrong type is a programming error (throws).
//
//   auto cfg = Config::from_file("experiments/ms1mv3_r50.toml");
//   cfg.apply_override("optim.lr=0.2");
//   double lr = cfg.get_float("optim.lr");
class Config {
 public:
  // Every key at its default.
  Config();

  static Config from_file(const std::filesystem::path& path);
  // `source_name` is used in messages in place of a file name.
  static Config from_string(std::string_view toml_text, const std::string& source_name);

  // Applies "section.key=value". The value is read as a TOML value; for string keys a bare word
  // is taken as the string, and for list keys a bare comma-separated list is accepted.
  void apply_override(std::string_view assignment);
  void apply_overrides(const std::vector<std::string>& assignments);

  bool get_bool(std::string_view name) const;
  std::int64_t get_int(std::string_view name) const;
  double get_float(std::string_view name) const;
  const std::string& get_string(std::string_view name) const;
  const std::vector<double>& get_float_list(std::string_view name) const;
  const std::vector<std::string>& get_string_list(std::string_view name) const;

  // Where the value of `name` came from: "default", "FILE:LINE" or "--set".
  const std::string& origin(std::string_view name) const;

  // The whole resolved configuration as TOML that from_string() reads back to an equal Config.
  std::string to_toml() const;
  // to_toml() line by line; `key` is the dotted key a line sets, empty for section headers and
  // blank lines.
  struct TomlLine {
    std::string key;
    std::string text;
  };
  std::vector<TomlLine> to_toml_lines() const;
  // Writes to_toml() to `path` atomically (see write_file_atomic).
  void save(const std::filesystem::path& path) const;

  // Equal when every key has the same value (where the values came from is ignored).
  bool operator==(const Config& other) const;

 private:
  struct Entry {
    ConfigValue value;
    std::string origin;
  };
  void set_checked(const ConfigKey& key, ConfigValue value, const std::string& where);
  const ConfigValue& value_of(std::string_view name, ValueType type) const;

  std::map<std::string, Entry, std::less<>> values_;
};

// Formats a value as TOML ("0.1", "\"sgd\"", "[1.0, 0.5, 0.0]").
std::string to_toml_value(const ConfigValue& value);

}  // namespace facetrain
