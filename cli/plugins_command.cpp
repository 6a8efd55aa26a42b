// `stowage plugins`: which plugins the registry found, from where, and the
// folders it searched.
#include <iostream>

#include "commands_internal.hpp"
#include "stowage/registry.hpp"

namespace stowage::cli {
namespace {

std::string joined(const std::vector<std::string>& items, const char* separator) {
  std::string out;
  for (const std::string& item : items) {
    if (!out.empty()) out += separator;
    out += item;
  }
  return out;
}

int run_plugins(const CommonOptions& common) {
  Registry& registry = Registry::global();
  const std::vector<PluginInfo> plugins = registry.plugins();
  const std::vector<std::string> schemes = registry.schemes();
  const std::vector<std::filesystem::path> folders = registry.searched_folders();

  if (common.json) {
    JsonWriter w;
    w.begin_object();
    w.key("plugins").begin_array();
    for (const PluginInfo& p : plugins) {
      w.begin_object();
      w.key("name").string(p.name);
      w.key("version").string(p.version);
      w.key("schemes").begin_array();
      for (const std::string& s : p.schemes) w.string(s);
      w.end_array();
      w.key("abi").string(std::to_string(p.abi_major) + "." + std::to_string(p.abi_minor));
      w.key("loaded").boolean(p.loaded);
      w.key("allowed").boolean(p.allowed);
      w.key("source").string(p.source);
      w.key("manifest");
      p.manifest.empty() ? w.null() : w.string(p.manifest.string());
      w.key("library").string(p.library.string());
      w.key("capabilities").begin_array();
      for (const std::string& c : p.capabilities) w.string(c);
      w.end_array();
      w.end_object();
    }
    w.end_array();
    w.key("schemes").begin_array();
    for (const std::string& s : schemes) w.string(s);
    w.end_array();
    w.key("searchedFolders").begin_array();
    for (const auto& folder : folders) w.string(folder.string());
    w.end_array();
    w.end_object();
    std::cout << w.str();
    return kExitOk;
  }
  // -q keeps notes away, never a query's answer.
  if (plugins.empty()) {
    std::cout << "no plugins found\n";
  } else {
    Table table({"NAME", "VERSION", "SCHEMES", "ABI", "LOADED", "ALLOWED", "SOURCE", "FILE"});
    for (const PluginInfo& p : plugins) {
      table.add({p.name, p.version, joined(p.schemes, ","),
                 std::to_string(p.abi_major) + "." + std::to_string(p.abi_minor),
                 p.loaded ? "yes" : "no", p.allowed ? "yes" : "no", p.source,
                 (p.manifest.empty() ? p.library : p.manifest).string()});
    }
    std::cout << table.render();
    for (const PluginInfo& p : plugins) {
      if (!p.manifest.empty() && !p.library.empty()) {
        std::cout << "  " << p.name << " library: " << p.library.string() << "\n";
      }
    }
  }
  std::cout << "schemes available: " << (schemes.empty() ? "(none)" : joined(schemes, ", "))
            << "\n";
  std::cout << "folders searched:" << (folders.empty() ? " (none)" : "") << "\n";
  for (const auto& folder : folders) std::cout << "  " << folder.string() << "\n";
  return kExitOk;
}

}  // namespace

void add_plugins_command(CLI::App& app, CommonOptions& common, Runner& run) {
  CLI::App* sub = app.add_subcommand(
      "plugins",
      "Show the plugins found (name, version, schemes, ABI version, loaded or not, allowed, "
      "manifest and library) and the folders searched");
  add_common_options(*sub, common);
  sub->callback([&run, &common] { run = [&common] { return run_plugins(common); }; });
}

}  // namespace stowage::cli
