// The scheme registry: which plugin serves which URL scheme, loading plugin
// libraries on first use through Boost.DLL, and handing out handlers.
//
// Sources, highest first: API calls (add_plugin, register_scheme), the host
// config (apply_config, or STOWAGE_CONFIG for Registry::global), folders in
// STOWAGE_PLUGIN_PATH, then the default folders found relative to the
// running executable (<exe>/../lib/stowage/plugins) and the core library
// (<libdir>/stowage/plugins, beside libstowage_core), and the install prefix.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "stowage/config.hpp"
#include "stowage/handler.hpp"

namespace stowage {

struct PluginInfo {
  std::string name;
  std::string version;             // from the manifest until loaded, then from the plugin
  std::filesystem::path manifest;  // empty for a library added directly
  std::filesystem::path library;
  std::vector<std::string> schemes;
  std::vector<std::string> capabilities;  // "load", "save", ... once loaded
  // Parallel to schemes, once loaded: each scheme's own capabilities (a
  // plugin may serve a scheme with fewer operations than another).
  std::vector<std::vector<std::string>> scheme_capabilities;
  // Subcommands of the stowage command the plugin ships (the manifest's
  // "commands"): name -> program beside the manifest. Empty without one.
  std::map<std::string, std::filesystem::path> commands;
  uint32_t abi_major = 0;
  uint32_t abi_minor = 0;
  std::string source;  // "api", "config", "STOWAGE_PLUGIN_PATH", "default"
  bool loaded = false;
  bool allowed = true;
};

// Where Registry::open would send a URL (Registry::route).
struct Route {
  std::string url;                   // the URL after aliases, as the handler gets it
  std::string scheme;                // its scheme
  std::vector<std::string> aliases;  // the aliases applied, in order
  bool in_process = false;           // served by register_scheme, not a plugin
  PluginInfo plugin;                 // the serving plugin (empty when in_process)
};

// A retry the host is about to make under its retry policy (docs/config.md),
// for telling a user why a call takes long ("retrying GET
// https://h/m/model.json (2/4) after HTTP 503").
struct RetryNotice {
  // The request that failed (Error::request(), which plugins pass through
  // abi.h's status_set_request): "GET" and its URL. When the failure named
  // no request: the operation ("load", "save", ...) and the handler's URL.
  std::string method;
  std::string url;  // redacted
  int attempt = 0;  // the attempt about to be made: 2 on the first retry
  int max_attempts = 0;
  std::string reason;                 // "HTTP 503", "connection refused while connecting", ...
  std::chrono::milliseconds wait{0};  // the backoff before that attempt
};
// Called on the thread of the call being retried; must not throw (what it
// throws is ignored).
using RetryObserver = std::function<void(const RetryNotice&)>;

// Creates a handler for an in-process scheme: (url, options JSON).
using HandlerFactory =
    std::function<std::unique_ptr<IOHandler>(std::string_view url, std::string_view options_json)>;

// Thread-safety: every member may be called from any thread; library loading
// is serialised by one process-wide lock. Plugins are never unloaded.
class Registry {
 public:
  // Knows nothing until told: for hosts that control discovery fully.
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // The process-wide registry: STOWAGE_CONFIG, STOWAGE_PLUGIN_PATH and the
  // default folders, discovered on first use.
  static Registry& global();

  // Scans the standard sources (environment and default folders).
  void discover_defaults();
  void apply_config(const Config& config);
  // A manifest or a library file; a library without a manifest is loaded at
  // once to learn its schemes. `source` ranks it among plugins of the same
  // name: "api", "config", "STOWAGE_PLUGIN_PATH" or "default" (shown as
  // PluginInfo::source); any other throws Error(kInvalidArgument).
  void add_plugin(const std::filesystem::path& file, std::string_view source = "api");
  void add_plugin_folder(const std::filesystem::path& folder, std::string_view source = "api");
  // An in-process handler factory; wins over any plugin for that scheme.
  // `name` says whose it is in messages. A scheme takes one factory: a
  // second one throws Error(kAlreadyExists) naming both (TF.js refuses
  // ambiguous routing too).
  void register_scheme(const std::string& scheme, HandlerFactory factory,
                       std::string_view name = {});

  // A handler for url with options (a JSON object; merged over the scheme's
  // configured defaults). Loads the plugin on first use. Throws
  // Error(kNotFound) for a scheme nobody serves, naming the scheme, the
  // schemes available and the folders searched.
  std::unique_ptr<IOHandler> open(std::string_view url, std::string_view options_json = "{}");

  // Tells observer of every retry on handlers opened after this (plugin
  // schemes, and the URLs they open nested, so every scheme's retries reach
  // it); an empty function stops the notices. In-process schemes are never
  // retried.
  void set_retry_observer(RetryObserver observer);

  // Which plugin open(url) would use, without loading or opening anything.
  // Throws what open() throws for a URL nobody serves, an alias loop or a
  // scheme two plugins claim.
  Route route(std::string_view url) const;

  // The config's "list_locations"; nullopt when no config set it.
  std::optional<std::vector<std::string>> list_locations() const;

  std::vector<PluginInfo> plugins() const;
  // Loads the library of every allowed plugin not loaded yet, so that
  // plugins() shows what each scheme can do. A library that fails to load
  // stays unloaded; returns one "<plugin>: <error>" line per failure.
  std::vector<std::string> load_allowed_plugins();
  std::vector<std::string> schemes() const;
  std::vector<std::filesystem::path> searched_folders() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// "file" for "file:///a/b"; empty when the URL has no "://".
std::string url_scheme(std::string_view url);

}  // namespace stowage
