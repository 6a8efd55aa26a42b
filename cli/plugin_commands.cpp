// Commands plugins ship: `stowage NAME ARGS...` runs the program that a
// plugin's manifest names for NAME, found beside the manifest (as git runs
// git-NAME), so the command needs nothing of the plugin linked in.
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>

#include "commands_internal.hpp"
#include "stowage/config.hpp"
#include "stowage/registry.hpp"

namespace stowage::cli {
namespace {

namespace fs = std::filesystem;

struct PluginCommand {
  PluginInfo plugin;
  fs::path program;
};

std::string describe(const PluginInfo& plugin) {
  return "plugin '" + plugin.name + "' (" + plugin.manifest.string() + ")";
}

std::vector<PluginCommand> commands_named(const std::string& name) {
  std::vector<PluginCommand> out;
  for (const PluginInfo& p : Registry::global().plugins()) {
    auto it = p.commands.find(name);
    if (it != p.commands.end()) out.push_back({p, it->second});
  }
  return out;
}

// Where argv's command word is: the first word that is neither the
// top-level --config nor its value; -1 when an option comes first (the
// parser then reports it) or there is no word.
int command_index(int argc, char** argv, std::string& config) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view word = argv[i];
    if (word == "--config") {
      if (i + 1 >= argc) return -1;
      config = argv[++i];
    } else if (word.starts_with("--config=")) {
      config = std::string(word.substr(std::string_view("--config=").size()));
    } else {
      return word.starts_with("-") ? -1 : i;
    }
  }
  return -1;
}

bool is_builtin(CLI::App& app, const std::string& word) {
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
    if (sub->check_name(word)) return true;
  }
  return false;
}

// The names and aliases of app's own commands.
std::vector<std::string> builtin_spellings(CLI::App& app) {
  std::vector<std::string> out;
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
    out.push_back(sub->get_name());
    for (const std::string& alias : sub->get_aliases()) out.push_back(alias);
  }
  return out;
}

// Of the plugins naming the command, the one allowed; as for schemes, a
// plugin the config does not allow never runs code, and two are refused.
const PluginCommand& choose(const std::string& name, const std::vector<PluginCommand>& found) {
  std::vector<const PluginCommand*> allowed;
  for (const PluginCommand& c : found) {
    if (c.plugin.allowed) allowed.push_back(&c);
  }
  if (allowed.empty()) {
    throw Error(ErrorCode::kNotFound, "'stowage " + name + "' is a command of " +
                                          describe(found.front().plugin) +
                                          ", which is not in the config's \"allow\" list, so it "
                                          "is never run");
  }
  if (allowed.size() > 1) {
    std::string owners;
    for (const PluginCommand* c : allowed) {
      owners += (owners.empty() ? "" : " and ") + describe(c->plugin);
    }
    throw Error(ErrorCode::kInvalidArgument,
                "command '" + name + "' is named by more than one plugin: " + owners +
                    "; allow only one of them in the config's \"allow\" list");
  }
  return *allowed.front();
}

// The program to run: a regular, executable file that is in the manifest's
// folder also once symbolic links are resolved.
fs::path checked_program(const std::string& name, const PluginCommand& c) {
  const std::string who =
      "the program " + c.program.string() + " of command '" + name + "' of " + describe(c.plugin);
  std::error_code ec;
  const fs::file_status status = fs::status(c.program, ec);
  if (status.type() == fs::file_type::not_found) {
    throw Error(ErrorCode::kNotFound, who + " is not there");
  }
  if (ec) throw Error(ErrorCode::kPermissionDenied, who + " cannot be read: " + ec.message());
  if (status.type() != fs::file_type::regular) {
    throw Error(ErrorCode::kInvalidArgument, who + " is not a regular file");
  }
  std::error_code ec_folder;
  const fs::path real = fs::canonical(c.program, ec);
  const fs::path folder = fs::canonical(c.plugin.manifest.parent_path(), ec_folder);
  if (ec || ec_folder || real.parent_path() != folder) {
    throw Error(
        ErrorCode::kInvalidArgument,
        who + " resolves to " + real.string() + ", outside the plugin's folder " + folder.string());
  }
  if (::access(real.c_str(), X_OK) != 0) {
    throw Error(ErrorCode::kPermissionDenied, who + " is not executable");
  }
  return real;
}

[[noreturn]] void exec_command(const std::string& name, const PluginCommand& c,
                               const std::string& config, int argc, char** argv, int at) {
  const fs::path program = checked_program(name, c);
  if (!config.empty()) {
    // The program reads the same configuration (its defaults, its plugins).
    const std::string absolute = fs::absolute(config).string();
    ::setenv("STOWAGE_CONFIG", absolute.c_str(), 1);
  }
  std::vector<char*> args;
  std::string first = program.string();
  args.push_back(first.data());
  for (int i = at + 1; i < argc; ++i) args.push_back(argv[i]);
  args.push_back(nullptr);
  std::fflush(stdout);
  ::execv(program.c_str(), args.data());
  const int err = errno;
  throw Error(err == EACCES ? ErrorCode::kPermissionDenied : ErrorCode::kInternal,
              "cannot run " + program.string() + " (command '" + name + "' of " +
                  describe(c.plugin) + "): " + std::strerror(err));
}

}  // namespace

std::optional<int> run_plugin_command(CLI::App& app, int argc, char** argv) {
  std::string config;
  const int at = command_index(argc, argv, config);
  if (at < 0 || is_builtin(app, argv[at])) return std::nullopt;
  const std::string name = argv[at];
  std::vector<PluginCommand> found;
  try {
    if (!config.empty()) Registry::global().apply_config(load_config_file(config));
    found = commands_named(name);
  } catch (const std::exception&) {
    // Without the configuration (its folders, its allow-list) nobody knows
    // whether NAME is a plugin's command. A typo of a built-in command gets
    // the parser's hint, as it would without a config; any other word may
    // be a command the configuration would reveal, so its error stands.
    if (!closest_word(name, builtin_spellings(app)).empty()) return std::nullopt;
    const std::exception_ptr failure = std::current_exception();
    return run_reporting_errors([failure]() -> int { std::rethrow_exception(failure); });
  }
  if (found.empty()) return std::nullopt;
  return run_reporting_errors(
      [&]() -> int { exec_command(name, choose(name, found), config, argc, argv, at); });
}

void add_plugin_command_entries(CLI::App& app) {
  std::vector<PluginInfo> plugins;
  try {
    plugins = Registry::global().plugins();
  } catch (const std::exception&) {
    return;  // the command that runs reports it
  }
  std::map<std::string, std::vector<const PluginInfo*>> owners;
  for (const PluginInfo& p : plugins) {
    for (const auto& [name, program] : p.commands) {
      if (!is_builtin(app, name)) owners[name].push_back(&p);
    }
  }
  for (const auto& [name, named_by] : owners) {
    const PluginInfo& p = *named_by.front();
    std::string schemes;
    for (const std::string& s : p.schemes) schemes += (schemes.empty() ? "" : ", ") + s + "://";
    std::string text = "Plugin '" + p.name + "' (" + schemes + ") runs " +
                       p.commands.at(name).filename().string() + "; 'stowage " + name +
                       " --help' tells more";
    if (named_by.size() > 1) text += " (more than one plugin names it)";
    if (!p.allowed) text += " (not allowed by the config)";
    CLI::App* entry = app.add_subcommand(name, text);
    entry->group("Plugin commands");
    // Never parsed: run_plugin_command runs the command before parsing.
    entry->allow_extras();
  }
}

}  // namespace stowage::cli
