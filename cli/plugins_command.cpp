// `stowage plugins`: which plugins the registry found, from where, and the
// folders it searched.
#include <iostream>
#include <memory>

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

int run_plugins(const CommonOptions& common, bool load) {
  Registry& registry = Registry::global();
  // Capabilities are known once a library is loaded; --load asks for that.
  const std::vector<std::string> load_errors =
      load ? registry.load_allowed_plugins() : std::vector<std::string>{};
  for (const std::string& e : load_errors) std::cerr << "stowage: cannot load plugin " << e << "\n";
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
      w.key("schemeCapabilities").begin_object();
      for (size_t i = 0; i < p.scheme_capabilities.size() && i < p.schemes.size(); ++i) {
        w.key(p.schemes[i]).begin_array();
        for (const std::string& c : p.scheme_capabilities[i]) w.string(c);
        w.end_array();
      }
      w.end_object();
      w.key("commands").begin_object();
      for (const auto& [name, program] : p.commands) w.key(name).string(program.string());
      w.end_object();
      w.end_object();
    }
    w.end_array();
    w.key("schemes").begin_array();
    for (const std::string& s : schemes) w.string(s);
    w.end_array();
    w.key("searchedFolders").begin_array();
    for (const auto& folder : folders) w.string(folder.string());
    w.end_array();
    if (load) {
      w.key("loadErrors").begin_array();
      for (const std::string& e : load_errors) w.string(e);
      w.end_array();
    }
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
      for (const auto& [name, program] : p.commands) {
        std::cout << "  " << p.name << " command: stowage " << name << " (runs " << program.string()
                  << ")\n";
      }
    }
    bool any_loaded = false;
    for (const PluginInfo& p : plugins) {
      for (size_t i = 0; i < p.scheme_capabilities.size() && i < p.schemes.size(); ++i) {
        if (!any_loaded) std::cout << "capabilities per scheme:\n";
        any_loaded = true;
        const std::vector<std::string>& caps = p.scheme_capabilities[i];
        std::cout << "  " << p.schemes[i] << "://"
                  << " (" << p.name << "): " << (caps.empty() ? "(none)" : joined(caps, ", "))
                  << "\n";
      }
    }
    if (!any_loaded && !plugins.empty() && !common.quiet) {
      std::cout << "capabilities per scheme: shown once loaded (--load)\n";
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
      "manifest, library and commands), each scheme's capabilities once loaded, and the "
      "folders searched");
  add_common_options(*sub, common);
  auto load = std::make_shared<bool>(false);
  sub->add_flag("--load", *load,
                "Load every allowed plugin's library to show each scheme's capabilities");
  sub->callback(
      [&run, &common, load] { run = [&common, load] { return run_plugins(common, *load); }; });
}

}  // namespace stowage::cli
