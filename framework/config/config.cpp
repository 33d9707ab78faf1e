#include "framework/config/config.h"

#include <fmt/format.h>
#include <toml++/toml.h>

#include <cmath>
#include <fstream>
#include <sstream>
#include <system_error>

#include "framework/core/atomic_file.h"
#include "framework/core/error.h"
#include "framework/core/input_file.h"
#include "framework/core/strings.h"

namespace facetrain {
namespace {

std::string trim(std::string_view s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return {};
  const auto e = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(b, e - b + 1));
}

const char* toml_type_name(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::boolean:
      return "boolean";
    case toml::node_type::integer:
      return "integer";
    case toml::node_type::floating_point:
      return "float";
    case toml::node_type::string:
      return "string";
    case toml::node_type::array:
      return "array";
    case toml::node_type::table:
      return "table";
    case toml::node_type::date:
      return "date";
    case toml::node_type::time:
      return "time";
    case toml::node_type::date_time:
      return "date-time";
    default:
      return "nothing";
  }
}

std::string where_of(const std::string& source, const toml::source_region& region) {
  const auto& begin = region.begin;
  if (begin.line == 0) return source;
  return fmt::format("{}:{}:{}", source, begin.line, begin.column);
}

std::string describe(const toml::node& node) {
  if (const auto* arr = node.as_array()) {
    if (arr->empty()) return "empty array";
    return fmt::format("array of {}s", toml_type_name(*arr->get(0)));
  }
  return toml_type_name(node);
}

// Converts a TOML node to the key's type; nullopt when the types do not fit. Integers are
// accepted where floats are expected (lr = 1), never the other way round.
std::optional<ConfigValue> convert(const toml::node& node, ValueType type) {
  switch (type) {
    case ValueType::kBool:
      if (auto v = node.as_boolean()) return ConfigValue(v->get());
      return std::nullopt;
    case ValueType::kInt:
      if (auto v = node.as_integer()) return ConfigValue(static_cast<std::int64_t>(v->get()));
      return std::nullopt;
    case ValueType::kFloat:
      if (auto v = node.as_floating_point()) return ConfigValue(v->get());
      if (auto v = node.as_integer()) return ConfigValue(static_cast<double>(v->get()));
      return std::nullopt;
    case ValueType::kString:
      if (auto v = node.as_string()) return ConfigValue(v->get());
      return std::nullopt;
    case ValueType::kFloatList: {
      const auto* arr = node.as_array();
      if (arr == nullptr) return std::nullopt;
      std::vector<double> out;
      for (const auto& el : *arr) {
        if (auto f = el.as_floating_point()) {
          out.push_back(f->get());
        } else if (auto i = el.as_integer()) {
          out.push_back(static_cast<double>(i->get()));
        } else {
          return std::nullopt;
        }
      }
      return ConfigValue(std::move(out));
    }
    case ValueType::kStringList: {
      const auto* arr = node.as_array();
      if (arr == nullptr) return std::nullopt;
      std::vector<std::string> out;
      for (const auto& el : *arr) {
        auto s = el.as_string();
        if (s == nullptr) return std::nullopt;
        out.push_back(s->get());
      }
      return ConfigValue(std::move(out));
    }
  }
  return std::nullopt;
}

// The constraint a number breaks, or empty.
std::string check_number(const ConfigKey& k, double v) {
  if (k.min && (k.min_exclusive ? !(v > *k.min) : !(v >= *k.min))) {
    return fmt::format("must be {} {}", k.min_exclusive ? ">" : ">=", *k.min);
  }
  if (k.max && (k.max_exclusive ? !(v < *k.max) : !(v <= *k.max))) {
    return fmt::format("must be {} {}", k.max_exclusive ? "<" : "<=", *k.max);
  }
  if (!std::isfinite(v)) return "must be finite";
  return {};
}

std::string check_choice(const ConfigKey& k, const std::string& v) {
  if (k.choices.empty()) return {};
  for (const auto& c : k.choices) {
    if (c == v) return {};
  }
  return fmt::format("must be one of {} (did you mean \"{}\"?)", join(k.choices, ", "),
                     nearest_word(v, k.choices));
}

// The constraint `value` breaks, or empty.
std::string violation(const ConfigKey& k, const ConfigValue& value) {
  return std::visit(
      [&](const auto& v) -> std::string {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::int64_t> || std::is_same_v<T, double>) {
          return check_number(k, static_cast<double>(v));
        } else if constexpr (std::is_same_v<T, std::string>) {
          return check_choice(k, v);
        } else if constexpr (std::is_same_v<T, std::vector<double>> ||
                             std::is_same_v<T, std::vector<std::string>>) {
          if (k.length && v.size() != *k.length) {
            return fmt::format("must have {} elements, found {}", *k.length, v.size());
          }
          for (std::size_t i = 0; i < v.size(); ++i) {
            std::string why;
            if constexpr (std::is_same_v<T, std::vector<double>>) {
              why = check_number(k, v[i]);
            } else {
              why = check_choice(k, v[i]);
            }
            if (!why.empty()) return fmt::format("element {} {}", i, why);
          }
          return {};
        } else {
          return {};
        }
      },
      value);
}

std::string format_double(double v) {
  std::string s = fmt::format("{}", v);
  if (std::isfinite(v) && s.find_first_of(".eE") == std::string::npos) s += ".0";
  return s;
}

// `s` as a TOML basic string that reads back as `s`: quote and backslash escaped, every control
// character (U+0000–U+001F, U+007F) as \uXXXX. TOML holds Unicode only: bytes that are not
// UTF-8 (a path on a file system of other bytes) are written as U+FFFD each, the one loss.
std::string quote(const std::string& s) {
  std::string out = "\"";
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const std::size_t n = utf8_sequence_length(s, i);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7F) {
      out += fmt::format("\\u{:04X}", c);
    } else if (n == 0) {
      out += "\xEF\xBF\xBD";
      i += 1;
      continue;
    } else {
      out.append(s, i, n);
      i += n;
      continue;
    }
    i += 1;
  }
  return out + "\"";
}

}  // namespace

const char* type_name(ValueType type) {
  switch (type) {
    case ValueType::kBool:
      return "boolean";
    case ValueType::kInt:
      return "integer";
    case ValueType::kFloat:
      return "float";
    case ValueType::kString:
      return "string";
    case ValueType::kFloatList:
      return "array of floats";
    case ValueType::kStringList:
      return "array of strings";
  }
  return "?";
}

std::string to_toml_value(const ConfigValue& value) {
  return std::visit(
      [](const auto& v) -> std::string {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, bool>) {
          return v ? "true" : "false";
        } else if constexpr (std::is_same_v<T, std::int64_t>) {
          return std::to_string(v);
        } else if constexpr (std::is_same_v<T, double>) {
          return format_double(v);
        } else if constexpr (std::is_same_v<T, std::string>) {
          return quote(v);
        } else if constexpr (std::is_same_v<T, std::vector<double>>) {
          std::vector<std::string> parts;
          for (double d : v) parts.push_back(format_double(d));
          return "[" + join(parts, ", ") + "]";
        } else {
          std::vector<std::string> parts;
          for (const auto& s : v) parts.push_back(quote(s));
          return "[" + join(parts, ", ") + "]";
        }
      },
      value);
}

Config::Config() {
  for (const auto& k : ConfigSchema::instance().keys()) {
    values_.emplace(k.name, Entry{k.default_value, "default"});
  }
}

void Config::set_checked(const ConfigKey& key, ConfigValue value, const std::string& where) {
  const std::string why = violation(key, value);
  if (!why.empty()) {
    throw ConfigError(fmt::format("{}: {} = {}: {}", where, key.name, to_toml_value(value), why));
  }
  values_[key.name] = Entry{std::move(value), where};
}

Config Config::from_file(const std::filesystem::path& path) {
  const InputFile file = InputFile::open(path);
  if (!file.problem().empty()) {
    throw ConfigError(fmt::format("{}: cannot open config file ({})", path.string(), file.problem()));
  }
  // A configuration is a page of keys; 16 MiB is no configuration.
  return from_string(file.read_all<ConfigError>(std::int64_t{16} << 20, "a config file"),
                     path.string());
}

Config Config::from_string(std::string_view toml_text, const std::string& source_name) {
  toml::table root;
  try {
    root = toml::parse(toml_text, source_name);
  } catch (const toml::parse_error& e) {
    throw ConfigError(fmt::format("{}:{}:{}: invalid TOML: {}", source_name, e.source().begin.line,
                                  e.source().begin.column, e.description()));
  }
  const auto& schema = ConfigSchema::instance();
  const auto sections = schema.sections();
  Config cfg;
  for (const auto& [section_key, section_node] : root) {
    const std::string section(section_key.str());
    const auto* table = section_node.as_table();
    if (table == nullptr) {
      throw ConfigError(
          fmt::format("{}: unknown key '{}' (every key belongs to a section: {}); "
                      "did you mean '{}'?",
                      where_of(source_name, section_key.source()), section, join(sections, ", "),
                      schema.nearest(section)));
    }
    for (const auto& [leaf_key, node] : *table) {
      const std::string name = section + "." + std::string(leaf_key.str());
      const ConfigKey* k = schema.find(name);
      if (k == nullptr) {
        throw ConfigError(fmt::format("{}: unknown key '{}'; did you mean '{}'?",
                                      where_of(source_name, leaf_key.source()), name,
                                      schema.nearest(name)));
      }
      auto value = convert(node, k->type);
      if (!value) {
        throw ConfigError(fmt::format("{}: key '{}': expected {}, found {}",
                                      where_of(source_name, node.source()), name,
                                      type_name(k->type), describe(node)));
      }
      cfg.set_checked(*k, std::move(*value), where_of(source_name, node.source()));
    }
  }
  return cfg;
}

void Config::apply_override(std::string_view assignment) {
  const auto eq = assignment.find('=');
  if (eq == std::string_view::npos) {
    throw ConfigError(fmt::format("--set {}: expected section.key=value", assignment));
  }
  const std::string name = trim(assignment.substr(0, eq));
  const std::string text = trim(assignment.substr(eq + 1));
  const auto& schema = ConfigSchema::instance();
  const ConfigKey* k = schema.find(name);
  if (k == nullptr) {
    throw ConfigError(fmt::format("--set {}: unknown key '{}'; did you mean '{}'?", assignment,
                                  name, schema.nearest(name)));
  }
  std::optional<ConfigValue> value;
  std::string found = "nothing";
  try {
    const std::string doc = "v = " + text;
    toml::table parsed = toml::parse(std::string_view(doc), std::string_view("--set"));
    if (const toml::node* node = parsed.get("v")) {
      value = convert(*node, k->type);
      found = describe(*node);
    }
  } catch (const toml::parse_error&) {
    found = "a bare word";
  }
  if (!value && k->type == ValueType::kString) {
    value = ConfigValue(text);
  }
  if (!value && (k->type == ValueType::kFloatList || k->type == ValueType::kStringList)) {
    // Bare lists without brackets or quotes: "1.0,0.5,0" or "lfw,cfp_fp".
    std::string body = text;
    if (body.size() >= 2 && body.front() == '[' && body.back() == ']') {
      body = body.substr(1, body.size() - 2);
    }
    std::vector<std::string> items;
    std::stringstream ss(body);
    for (std::string item; std::getline(ss, item, ',');) {
      item = trim(item);
      if (!item.empty()) items.push_back(item);
    }
    if (k->type == ValueType::kStringList) {
      value = ConfigValue(items);
    } else {
      std::vector<double> numbers;
      bool ok = true;
      for (const auto& item : items) {
        try {
          std::size_t used = 0;
          numbers.push_back(std::stod(item, &used));
          ok = ok && used == item.size();
        } catch (const std::exception&) {
          ok = false;
        }
      }
      if (ok) value = ConfigValue(numbers);
    }
  }
  if (!value) {
    throw ConfigError(fmt::format("--set {}: key '{}': expected {}, found {}", assignment, name,
                                  type_name(k->type), found));
  }
  set_checked(*k, std::move(*value), "--set");
}

void Config::apply_overrides(const std::vector<std::string>& assignments) {
  for (const auto& a : assignments) apply_override(a);
}

const ConfigValue& Config::value_of(std::string_view name, ValueType type) const {
  const auto it = values_.find(name);
  const ConfigKey* k = ConfigSchema::instance().find(name);
  if (it == values_.end() || k == nullptr) {
    throw ConfigError(fmt::format("no configuration key '{}'", name));
  }
  if (k->type != type) {
    throw ConfigError(fmt::format("configuration key '{}' is {}, read as {}", name,
                                  type_name(k->type), type_name(type)));
  }
  return it->second.value;
}

bool Config::get_bool(std::string_view n) const {
  return std::get<bool>(value_of(n, ValueType::kBool));
}
std::int64_t Config::get_int(std::string_view n) const {
  return std::get<std::int64_t>(value_of(n, ValueType::kInt));
}
double Config::get_float(std::string_view n) const {
  return std::get<double>(value_of(n, ValueType::kFloat));
}
const std::string& Config::get_string(std::string_view n) const {
  return std::get<std::string>(value_of(n, ValueType::kString));
}
const std::vector<double>& Config::get_float_list(std::string_view n) const {
  return std::get<std::vector<double>>(value_of(n, ValueType::kFloatList));
}
const std::vector<std::string>& Config::get_string_list(std::string_view n) const {
  return std::get<std::vector<std::string>>(value_of(n, ValueType::kStringList));
}

const std::string& Config::origin(std::string_view name) const {
  const auto it = values_.find(name);
  if (it == values_.end()) throw ConfigError(fmt::format("no configuration key '{}'", name));
  return it->second.origin;
}

std::vector<Config::TomlLine> Config::to_toml_lines() const {
  std::vector<TomlLine> lines;
  std::string section;
  for (const auto& k : ConfigSchema::instance().keys()) {
    const auto dot = k.name.find('.');
    const std::string s = k.name.substr(0, dot);
    if (s != section) {
      if (!section.empty()) lines.push_back({"", ""});
      lines.push_back({"", fmt::format("[{}]", s)});
      section = s;
    }
    lines.push_back({k.name, fmt::format("{} = {}", k.name.substr(dot + 1),
                                         to_toml_value(values_.at(k.name).value))});
  }
  return lines;
}

std::string Config::to_toml() const {
  std::string out;
  for (const auto& line : to_toml_lines()) {
    out += line.text;
    out += '\n';
  }
  return out;
}

bool Config::operator==(const Config& other) const {
  for (const auto& [name, entry] : values_) {
    const auto it = other.values_.find(name);
    if (it == other.values_.end() || !(it->second.value == entry.value)) return false;
  }
  return values_.size() == other.values_.size();
}

void Config::save(const std::filesystem::path& path) const {
  write_file_atomic(path, to_toml());
}

}  // namespace facetrain
