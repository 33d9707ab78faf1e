#include <fmt/format.h>

#include "framework/cli/commands.h"
#include "framework/config/config.h"

namespace facetrain::cli {

void add_config_command(CLI::App& app, Context&, std::vector<std::pair<CLI::App*, Action>>& out) {
  auto* config = app.add_subcommand("config", "Inspect configurations");
  config->require_subcommand(1);
  auto* show = config->add_subcommand(
      "show", "Print the resolved configuration (defaults, then --config, then --set) as TOML");
  struct Args {
    std::string file;
    std::vector<std::string> sets;
    bool origins = false;
  };
  auto args = std::make_shared<Args>();
  show->add_option("-c,--config", args->file, "TOML configuration file")->check(CLI::ExistingFile);
  show->add_option("--set", args->sets, "Override one key: section.key=value (repeatable)");
  show->add_flag("--origins", args->origins,
                 "Follow each value with a comment saying where it came from");
  out.emplace_back(show, [args] {
    Config cfg = args->file.empty() ? Config() : Config::from_file(args->file);
    cfg.apply_overrides(args->sets);
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
