#include <fmt/format.h>

#include "app/cli/commands.h"
#include "framework/config/config.h"
#include "framework/core/error.h"
#include "framework/core/strings.h"
#include "models/backbone.h"

namespace facetrain::cli {

namespace {

// A key's constraints in words: "> 0", "[0, 1)", "sgd | adamw", "3 elements".
std::string constraint_text(const ConfigKey& k) {
  std::vector<std::string> parts;
  if (k.min && k.max) {
    parts.push_back(fmt::format("{}{}, {}{}", k.min_exclusive ? "(" : "[", *k.min, *k.max,
                                k.max_exclusive ? ")" : "]"));
  } else if (k.min) {
    parts.push_back(fmt::format("{} {}", k.min_exclusive ? ">" : ">=", *k.min));
  } else if (k.max) {
    parts.push_back(fmt::format("{} {}", k.max_exclusive ? "<" : "<=", *k.max));
  }
  if (!k.choices.empty()) parts.push_back(join(k.choices, " \\| "));
  if (k.length) parts.push_back(fmt::format("{} elements", *k.length));
  return join(parts, "; ");
}

void print_keys_markdown() {
  fmt::print("| key | type | default | allowed | arcface_torch | meaning |\n");
  fmt::print("|---|---|---|---|---|---|\n");
  for (const auto& k : ConfigSchema::instance().keys()) {
    fmt::print("| `{}` | {} | `{}` | {} | {} | {} |\n", k.name, type_name(k.type),
               to_toml_value(k.default_value), constraint_text(k),
               k.arcface_key.empty() ? std::string("—") : "`" + k.arcface_key + "`", k.help);
  }
  fmt::print("\nBackbones (`model.network`, `--network`): {}.\n", models::backbone_names_help());
}

// One key's resolved value: strings as they are, everything else in TOML.
void print_value(const Config& cfg, const std::string& name) {
  const ConfigKey* key = ConfigSchema::instance().find(name);
  if (key == nullptr) {
    throw ConfigError(fmt::format("--key {}: no such key (did you mean {}?)", name,
                                  ConfigSchema::instance().nearest(name)));
  }
  switch (key->type) {
    case ValueType::kString:
      fmt::print("{}\n", cfg.get_string(name));
      return;
    case ValueType::kBool:
      fmt::print("{}\n", to_toml_value(cfg.get_bool(name)));
      return;
    case ValueType::kInt:
      fmt::print("{}\n", to_toml_value(cfg.get_int(name)));
      return;
    case ValueType::kFloat:
      fmt::print("{}\n", to_toml_value(cfg.get_float(name)));
      return;
    case ValueType::kFloatList:
      fmt::print("{}\n", to_toml_value(cfg.get_float_list(name)));
      return;
    case ValueType::kStringList:
      fmt::print("{}\n", to_toml_value(cfg.get_string_list(name)));
      return;
  }
}

}  // namespace

void add_config_command(CLI::App& app, Context&, std::vector<std::pair<CLI::App*, Action>>& out) {
  auto* config = app.add_subcommand("config", "Inspect configurations");
  config->require_subcommand(1);
  auto* show = config->add_subcommand(
      "show", "Print the resolved configuration (defaults, then --config, then --set) as TOML");
  struct Args {
    std::string file;
    std::vector<std::string> sets;
    bool origins = false;
    std::string key;
  };
  auto args = std::make_shared<Args>();
  show->add_option("-c,--config", args->file, "TOML configuration file")->check(CLI::ExistingFile);
  show->add_option("--set", args->sets, "Override one key: section.key=value (repeatable)");
  show->add_flag("--origins", args->origins,
                 "Follow each value with a comment saying where it came from");
  show->add_option("--key", args->key,
                   "Print only this key's value (a string without quotes), for scripts");
  auto* keys = config->add_subcommand(
      "keys",
      "List every configuration key with its type, default, allowed values and its "
      "arcface_torch name, as a Markdown table");
  out.emplace_back(keys, [] {
    print_keys_markdown();
    return 0;
  });
  out.emplace_back(show, [args] {
    Config cfg = args->file.empty() ? Config() : Config::from_file(args->file);
    cfg.apply_overrides(args->sets);
    if (!args->key.empty()) {
      print_value(cfg, args->key);
      return 0;
    }
    if (!args->origins) {
      fmt::print("{}", cfg.to_toml());
      return 0;
    }
    for (const auto& line : cfg.to_toml_lines()) {
      if (line.key.empty()) {
        fmt::print("{}\n", line.text);
      } else {
        fmt::print("{:<48} # {}\n", line.text, cfg.origin(line.key));
      }
    }
    return 0;
  });
}

}  // namespace facetrain::cli
