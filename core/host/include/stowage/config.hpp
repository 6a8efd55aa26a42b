// The host configuration (JSON): where plugins are, which may load, scheme
// aliases and per-scheme default options. Documented key by key in
// docs/config.md.
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace stowage {

// How the host retries the calls a plugin fails with an error it marks
// retryable (plugins never retry on their own). Backoff is exponential with
// full jitter, capped by max_backoff; total_deadline bounds every attempt and
// wait together (a call's own deadline also applies).
struct RetrySettings {
  int max_attempts = 4;  // the first try included; 1 turns retries off
  std::chrono::milliseconds initial_backoff{100};
  std::chrono::milliseconds max_backoff{5000};
  std::chrono::milliseconds total_deadline{60000};
};

struct PluginEntry {
  std::filesystem::path path;         // a manifest (.json) or a library (.so)
  std::optional<std::string> sha256;  // pin of the library file, lowercase hex
};

struct Config {
  std::vector<std::filesystem::path> plugin_paths;  // folders of manifests
  std::vector<PluginEntry> plugins;
  // Plugin names that may load; nullopt allows every plugin found.
  std::optional<std::vector<std::string>> allow;
  // Scheme -> URL prefix or scheme it stands for ("models" ->
  // "s3://bucket/prefix" or "file:///srv/models"); applied before lookup.
  std::map<std::string, std::string> aliases;
  // Scheme -> plugin name: settles two plugins claiming one scheme.
  std::map<std::string, std::string> scheme_plugins;
  // Scheme -> options JSON object merged under each call's options.
  std::map<std::string, std::string> defaults;
  // Plugin name -> SHA-256 pin of its library.
  std::map<std::string, std::string> sha256;
  // The retry policy for every plugin; nullopt keeps the one in force.
  std::optional<RetrySettings> retry;
  // The URLs list_models() with no URL (and `stowage list` with none) lists,
  // in order; nullopt keeps the default: localstorage://, indexeddb:// and
  // memory://, those whose scheme is served.
  std::optional<std::vector<std::string>> list_locations;
  // Schemes whose URLs open through the model cache ("cache": {"schemes":
  // [...]}): "https://h/m" opens as "cache+https://h/m".
  std::vector<std::string> cache_schemes;
  // "offline": the cache's option "offline" for every cache+ URL.
  std::optional<bool> offline;
  // Relative paths in the config resolve against this folder.
  std::filesystem::path base_dir;
  // Where the config came from (its file, for load_config_file), named by
  // errors about its defaults that only show when a URL is opened.
  std::string source;
};

// Throws Error(kInvalidArgument) naming `source` and the key's JSON path
// (e.g. "plugins[1].sha256") for unknown keys and wrong types.
Config parse_config(std::string_view json, std::string_view source,
                    const std::filesystem::path& base_dir);
Config load_config_file(const std::filesystem::path& file);

}  // namespace stowage
