// The stowage command: copy, move, list, remove, inspect and verify
// TensorFlow.js models through any URL scheme a plugin serves.
#include "commands_internal.hpp"
#include "stowage/config.hpp"
#include "stowage/registry.hpp"

namespace stowage::cli {
namespace {

int run_main(int argc, char** argv) {
  CLI::App app{
      "stowage: copy, move, list, remove, inspect and verify TensorFlow.js models "
      "(model.json + weight shards) through URL schemes served by plugins.",
      "stowage"};
  configure_program(app, "stowage " STOWAGE_VERSION);

  CommonOptions common;
  app.add_option("--config", common.config,
                 "Host configuration file (plugin folders, allow-list, aliases, defaults)")
      ->check(CLI::ExistingFile);

  Runner run;
  add_copy_commands(app, common, run);
  add_list_commands(app, common, run);
  add_info_command(app, common, run);
  add_verify_command(app, common, run);
  add_plugins_command(app, common, run);
  add_serve_command(app, common, run);
  add_cache_command(app, common, run);

  // A plugin's command takes its arguments as they are, so it is found
  // before parsing; the built-in commands always win over a plugin's.
  if (std::optional<int> code = run_plugin_command(app, argc, argv)) return *code;
  add_plugin_command_entries(app);

  return parse_and_run(app, run, argc, argv, [&common] {
    if (!common.config.empty()) {
      Registry::global().apply_config(load_config_file(common.config));
    }
  });
}

}  // namespace
}  // namespace stowage::cli

int main(int argc, char** argv) {
  return stowage::cli::guarded_main(stowage::cli::run_main, argc, argv);
}
