// What the registry knows about one plugin before and after its library is
// loaded, where it learnt of it (the plugin's source), and how a plugin file
// becomes a record: a manifest is only read, a library without one is loaded
// at once, under its SHA-256 pins, to learn what it serves.
// Thread-safety: the functions are stateless; a PluginRecord is guarded by
// its owner (Registry::Impl::mu), apart from load_mu.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "manifest_internal.hpp"
#include "plugin_loader_internal.hpp"
#include "stowage/error.hpp"
#include "stowage/registry.hpp"

namespace stowage::host {

// Where the registry learnt of a plugin, highest first: of two plugins with
// one name, the one from the higher source wins (as in a search path).
enum class PluginSource {
  kApi,         // Registry::add_plugin / add_plugin_folder from the host
  kConfig,      // the config's "plugins" and "plugin_paths"
  kPluginPath,  // a folder of STOWAGE_PLUGIN_PATH
  kDefault,     // a default folder (beside the executable, the library, the prefix)
};

// "api", "config", "STOWAGE_PLUGIN_PATH", "default": PluginInfo::source.
std::string_view source_name(PluginSource source) noexcept;
// The source of one of those names; nullopt for any other string.
std::optional<PluginSource> source_named(std::string_view name) noexcept;
// True when a names a higher source than b.
inline bool outranks(PluginSource a, PluginSource b) noexcept { return a < b; }

// One plugin known to the registry. `info` holds what the manifest (or the
// library added directly) says; Registry::Impl::info_of adds what only the
// registry knows (allowed, source, the loaded plugin's own fields).
struct PluginRecord {
  PluginInfo info;
  PluginSource source = PluginSource::kApi;
  std::optional<Manifest> parsed;
  std::optional<std::string> entry_pin;  // from a config "plugins" entry
  std::optional<Error> broken;           // an unreadable manifest: never loads
  bool named_by_host = false;            // add_plugin from the API: always allowed
  std::shared_ptr<const LoadedPlugin> loaded;
  std::mutex load_mu;  // one load attempt per record at a time

  const std::filesystem::path& file() const {
    return info.manifest.empty() ? info.library : info.manifest;
  }
};

// The config's pin for a plugin name ("sha256": {"<name>": "<hex>"}), if any.
using NamePinLookup = std::function<std::optional<std::string>(const std::string& name)>;

// Every pin a plugin's library must match: the pin of the entry that named
// the file, then the pin of the plugin's name.
std::vector<std::string> pins_for(const std::optional<std::string>& entry_pin,
                                  const std::optional<std::string>& name_pin);

// The record for a plugin file (absolute): a manifest ("*.json") is read,
// nothing loaded; a library has no manifest to say what it serves, so it is
// loaded now, checked against `pin`, and then against the pin of the name it
// gives itself. Throws what read_manifest and load_plugin throw. The caller
// says whether the host named the file (named_by_host).
std::shared_ptr<PluginRecord> record_for(const std::filesystem::path& file, PluginSource source,
                                         const std::optional<std::string>& pin,
                                         const NamePinLookup& name_pin);

// A manifest that could not be read: known by its file name, never loaded.
std::shared_ptr<PluginRecord> broken_record(const std::filesystem::path& manifest,
                                            PluginSource source, Error why);

}  // namespace stowage::host
