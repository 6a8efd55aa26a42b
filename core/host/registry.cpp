// The scheme registry: manifests tell which plugin serves which scheme before
// any plugin code runs; a library is loaded on the first open() of one of its
// schemes, and only when the allow list lets it.
#include "stowage/registry.hpp"

#include <cxxabi.h>
#include <sys/auxv.h>

#include <algorithm>
#include <boost/dll/runtime_symbol_info.hpp>
#include <cstdlib>
#include <map>
#include <mutex>
#include <set>
#include <shared_mutex>

#include "json_util_internal.hpp"
#include "manifest_internal.hpp"
#include "nested_internal.hpp"
#include "plugin_discovery_internal.hpp"
#include "plugin_handler_internal.hpp"
#include "plugin_loader_internal.hpp"
#include "plugin_record_internal.hpp"
#include "registry_internal.hpp"
#include "stowage/error.hpp"
#include "stowage/text.hpp"

#ifndef STOWAGE_INSTALL_PLUGIN_DIR
#error "STOWAGE_INSTALL_PLUGIN_DIR must name the installed plugin folder"
#endif

namespace stowage {
namespace host {

bool is_valid_scheme(std::string_view scheme) noexcept {
  if (scheme.empty() || scheme[0] < 'a' || scheme[0] > 'z') return false;
  for (char c : scheme) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

std::string apply_alias(std::string_view target, std::string_view rest) {
  if (target.find("://") == std::string_view::npos) {
    return std::string(target) + "://" + std::string(rest);
  }
  if (rest.empty()) return std::string(target);
  std::string out(target);
  bool bare = out.size() >= 3 && out.compare(out.size() - 3, 3, "://") == 0;
  if (!bare) {
    while (!out.empty() && out.back() == '/' && out.compare(out.size() - 3, 3, "://") != 0) {
      out.pop_back();
    }
    while (!rest.empty() && rest.front() == '/') rest.remove_prefix(1);
    out += '/';
  }
  out += rest;
  return out;
}

}  // namespace host

namespace {

namespace fs = std::filesystem;

// The model cache's scheme and the prefix the config's "cache" section
// puts before the URLs it caches (docs/config.md).
constexpr std::string_view kCacheScheme = "cache";
constexpr std::string_view kCachePrefix = "cache+";

using host::PluginRecord;
using host::PluginSource;

fs::path absolute_normal(const fs::path& p) {
  std::error_code ec;
  fs::path abs = fs::absolute(p, ec);
  if (ec) abs = p;
  fs::path canon = fs::weakly_canonical(abs, ec);
  return ec ? abs.lexically_normal() : canon;
}

// The source a public call names ("api", "config", "STOWAGE_PLUGIN_PATH",
// "default"); throws naming the string for any other.
PluginSource source_of(std::string_view name, const fs::path& file) {
  if (auto source = host::source_named(name)) return *source;
  throw Error(ErrorCode::kInvalidArgument,
              "cannot add '" + file.string() + "': unknown plugin source '" + std::string(name) +
                  "' (expected \"api\", \"config\", \"STOWAGE_PLUGIN_PATH\" or \"default\")");
}

// How messages name a handler factory: by the name it was registered with,
// else by the type of the callable (a lambda's names its enclosing function).
std::string describe_factory(const HandlerFactory& factory, std::string_view name) {
  if (!name.empty()) return "handler factory '" + std::string(name) + "'";
  const char* mangled = factory.target_type().name();
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> plain(
      abi::__cxa_demangle(mangled, nullptr, nullptr, &status), std::free);
  std::string type = status == 0 && plain ? plain.get() : mangled;
  constexpr size_t kMax = 160;
  if (type.size() > kMax) type = type.substr(0, kMax) + "...";
  return "an unnamed handler factory (" + type + ")";
}

}  // namespace

struct Registry::Impl {
  mutable std::shared_mutex mu;
  std::vector<std::shared_ptr<PluginRecord>> records;
  std::map<std::string, HandlerFactory> factories;
  std::map<std::string, std::string> factory_names;  // scheme -> who registered it
  std::optional<std::set<std::string>> allow;
  std::map<std::string, std::string> aliases;
  std::map<std::string, std::string> scheme_plugins;
  std::map<std::string, std::string> defaults;
  std::map<std::string, std::string> defaults_source;  // scheme -> config file
  std::map<std::string, std::string> name_pins;
  std::vector<fs::path> folders;
  host::RetryPolicy retry;
  std::optional<std::vector<std::string>> list_locations;
  std::set<std::string> cache_schemes;  // the config's "cache": {"schemes": [...]}
  bool offline = false;                 // the config's "offline"

  // REQUIRES: mu held.
  bool allowed(const PluginRecord& r) const {
    return r.named_by_host || !allow || allow->count(r.info.name) != 0;
  }

  // The config's pin for a plugin name. REQUIRES: mu held.
  std::optional<std::string> name_pin(const std::string& name) const {
    auto pin = name_pins.find(name);
    if (pin == name_pins.end()) return std::nullopt;
    return pin->second;
  }

  // The record for a plugin file (host::record_for), under the config's pins
  // by name as they are now.
  std::shared_ptr<PluginRecord> record_for(const fs::path& file, PluginSource source,
                                           const std::optional<std::string>& pin) const {
    return host::record_for(file, source, pin, [this](const std::string& name) {
      std::shared_lock<std::shared_mutex> lock(mu);
      return name_pin(name);
    });
  }

  // Adds a record unless it repeats one already known. Of two plugins with
  // one name, the one from the higher source wins (as in a search path).
  // REQUIRES: mu held exclusively.
  void insert(std::shared_ptr<PluginRecord> rec) {
    for (auto& e : records) {
      const PluginInfo& a = rec->info;
      const PluginInfo& b = e->info;
      bool same = (!a.manifest.empty() && b.manifest == a.manifest) ||
                  (a.manifest.empty() && b.manifest.empty() && b.library == a.library);
      if (!same) continue;
      // A pin on either naming of the file holds (a folder scan must not
      // drop the pin of a "plugins" entry for the same manifest).
      if (!rec->entry_pin) rec->entry_pin = e->entry_pin;
      if (!e->entry_pin) e->entry_pin = rec->entry_pin;
      // The same file again: it keeps the highest source it was named by.
      if (host::outranks(rec->source, e->source)) {
        if (!rec->loaded) rec->loaded = e->loaded;
        rec->named_by_host = rec->named_by_host || e->named_by_host;
        e = std::move(rec);
      } else if (rec->named_by_host) {
        e->named_by_host = true;
      }
      return;
    }
    if (!rec->broken) {
      for (auto& e : records) {
        if (e->broken || e->info.name != rec->info.name) continue;
        if (host::outranks(rec->source, e->source) && !e->loaded) e = std::move(rec);
        return;
      }
    }
    records.push_back(std::move(rec));
  }

  std::shared_ptr<const host::LoadedPlugin> ensure_loaded(PluginRecord& rec) {
    std::lock_guard<std::mutex> once(rec.load_mu);
    host::LoadRequest request;
    {
      std::shared_lock<std::shared_mutex> lock(mu);
      if (rec.loaded) return rec.loaded;
      if (rec.broken) throw *rec.broken;
      request.library = rec.info.library;
      request.manifest = rec.parsed ? &*rec.parsed : nullptr;
      request.sha256_pins = host::pins_for(rec.entry_pin, name_pin(rec.info.name));
    }
    auto plugin = host::load_plugin(request);
    std::unique_lock<std::shared_mutex> lock(mu);
    rec.loaded = plugin;
    return plugin;
  }

  // REQUIRES: mu held.
  std::vector<std::string> available_schemes() const {
    std::set<std::string> all;
    for (const auto& [scheme, f] : factories) all.insert(scheme);
    for (const auto& r : records) {
      if (r->broken || !allowed(*r)) continue;
      all.insert(r->info.schemes.begin(), r->info.schemes.end());
    }
    for (const auto& [alias, target] : aliases) all.insert(alias);
    return {all.begin(), all.end()};
  }

  // REQUIRES: mu held.
  std::string no_handler_message(std::string_view url, const std::string& scheme) const {
    std::string msg;
    if (scheme.empty()) {
      msg = "No handler for URL '" + std::string(url) +
            "': it has no scheme (a URL starts with '<scheme>://').";
    } else {
      msg = "No handler for scheme '" + scheme + "' in URL '" + std::string(url) + "'.";
    }
    auto schemes = available_schemes();
    msg += " Available schemes: " + (schemes.empty() ? std::string("(none)") : join(schemes)) + ".";
    std::vector<std::string> dirs;
    for (const auto& f : folders) dirs.push_back(f.string());
    msg += " Plugin folders searched: " + (dirs.empty() ? std::string("(none)") : join(dirs)) + ".";
    if (scheme.empty()) {
      msg += " Write the URL with its scheme, e.g. 'file://" + std::string(url) + "'.";
      return msg;
    }
    for (const auto& r : records) {
      if (r->broken || allowed(*r)) continue;
      const auto& schemes = r->info.schemes;
      if (std::find(schemes.begin(), schemes.end(), scheme) == schemes.end()) continue;
      msg += " Plugin '" + r->info.name + "' (" + r->file().string() + ") serves '" + scheme +
             "' but is not in the config's \"allow\" list, so it is never loaded.";
    }
    std::vector<std::string> broken;
    for (const auto& r : records) {
      if (r->broken) broken.push_back(r->broken->what());
    }
    if (!broken.empty()) {
      msg += " Plugin manifests that could not be read: " + join(broken, "; ") + ".";
    }
    return msg;
  }

  // REQUIRES: mu held.
  bool serves(const std::string& scheme) const {
    if (factories.count(scheme) != 0) return true;
    for (const auto& r : records) {
      const auto& schemes = r->info.schemes;
      if (!r->broken && std::find(schemes.begin(), schemes.end(), scheme) != schemes.end())
        return true;
    }
    return false;
  }

  // The scheme whose handler opens a URL of `scheme`: itself when a plugin
  // or factory claims it, else for a composed scheme "a+b" (a decorator
  // over a URL of scheme b, e.g. "cache+https") the one of "a", which gets
  // the whole URL. REQUIRES: mu held.
  std::string serving_scheme(const std::string& scheme) const {
    const size_t plus = scheme.find('+');
    if (plus == std::string::npos || serves(scheme)) return scheme;
    const std::string outer = scheme.substr(0, plus);
    return serves(outer) ? outer : scheme;
  }

  // url, or "cache+<url>" when the config caches its scheme, except for the
  // cache's own open of the URL it wraps. REQUIRES: mu held.
  std::string through_cache(std::string url) const {
    if (cache_schemes.count(url_scheme(url)) == 0 || host::opened_by_wrapper_of(url)) return url;
    return std::string(kCachePrefix) + url;
  }

  // The record that serves scheme. REQUIRES: mu held.
  std::shared_ptr<PluginRecord> choose(const std::string& scheme, std::string_view url) const {
    auto serves = [&](const PluginRecord& r) {
      const auto& schemes = r.info.schemes;
      return !r.broken && std::find(schemes.begin(), schemes.end(), scheme) != schemes.end();
    };
    auto pick = scheme_plugins.find(scheme);
    if (pick != scheme_plugins.end()) {
      for (const auto& r : records) {
        if (!serves(*r) || r->info.name != pick->second) continue;
        if (!allowed(*r)) {
          throw host::NoHandlerError(
              "The config picks plugin '" + r->info.name + "' for scheme '" + scheme +
                  "' (\"scheme_plugins\"), but it is not in the \"allow\" list (URL '" +
                  std::string(url) + "').",
              scheme);
        }
        return r;
      }
      std::vector<std::string> others;
      for (const auto& r : records) {
        if (serves(*r)) others.push_back("'" + r->info.name + "' (" + r->file().string() + ")");
      }
      throw host::NoHandlerError(
          "The config picks plugin '" + pick->second + "' for scheme '" + scheme +
              "' (\"scheme_plugins\"), but no plugin of that name serving '" + scheme +
              "' is known (URL '" + std::string(url) + "'). Plugins serving '" + scheme +
              "': " + (others.empty() ? std::string("(none)") : join(others)) + ".",
          scheme);
    }
    std::vector<std::shared_ptr<PluginRecord>> candidates;
    for (const auto& r : records) {
      if (serves(*r) && allowed(*r)) candidates.push_back(r);
    }
    if (candidates.size() == 1) return candidates.front();
    if (candidates.empty()) throw host::NoHandlerError(no_handler_message(url, scheme), scheme);
    std::vector<std::string> claims;
    for (const auto& r : candidates) {
      claims.push_back("'" + r->info.name + "' (" + r->file().string() + ")");
    }
    throw Error(ErrorCode::kInvalidArgument,
                "Scheme '" + scheme + "' of URL '" + std::string(url) +
                    "' is claimed by more than one plugin: " + join(claims, " and ") +
                    ". Pick one in the config with \"scheme_plugins\": {\"" + scheme +
                    "\": \"<plugin name>\"}.");
  }

  // REQUIRES: mu held.
  PluginInfo info_of(const PluginRecord& r) const {
    PluginInfo info = r.info;
    info.source = std::string(host::source_name(r.source));
    info.allowed = allowed(r);
    if (r.loaded) {
      info.loaded = true;
      info.version = r.loaded->version;
      info.capabilities = r.loaded->capability_names();
      // The loaded plugin's scheme order, which may differ from the manifest's.
      info.schemes = r.loaded->schemes;
      for (uint64_t bits : r.loaded->scheme_capabilities) {
        info.scheme_capabilities.push_back(host::LoadedPlugin::capability_names_of(bits));
      }
      info.abi_major = r.loaded->abi_major;
      info.abi_minor = r.loaded->abi_minor;
    }
    return info;
  }

  // url with its aliases applied; `chain` receives the aliases taken, in
  // order. Throws for an alias loop and for a URL without a scheme.
  // REQUIRES: mu held.
  std::string resolve_aliases(std::string_view url_in, std::vector<std::string>& chain) const {
    std::string url(url_in);
    for (;;) {
      std::string scheme = url_scheme(url);
      auto alias = aliases.find(scheme);
      if (scheme.empty() || alias == aliases.end()) break;
      if (std::find(chain.begin(), chain.end(), scheme) != chain.end()) {
        chain.push_back(scheme);
        throw Error(ErrorCode::kInvalidArgument, "The aliases of URL '" + std::string(url_in) +
                                                     "' form a loop: " + join(chain, " -> "));
      }
      chain.push_back(scheme);
      url = host::apply_alias(alias->second, std::string_view(url).substr(scheme.size() + 3));
    }
    if (url_scheme(url).empty()) throw host::NoHandlerError(no_handler_message(url_in, ""), "");
    return url;
  }

  // Remembers folder as searched and adds the plugins of its manifests.
  void add_folder(const fs::path& folder, PluginSource source) {
    fs::path dir = absolute_normal(folder);
    {
      std::unique_lock<std::shared_mutex> lock(mu);
      if (std::find(folders.begin(), folders.end(), dir) == folders.end()) folders.push_back(dir);
    }
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) {
      if (source == PluginSource::kApi) {
        throw Error(ErrorCode::kNotFound,
                    "plugin folder '" + dir.string() + "' does not exist or is not a folder");
      }
      return;  // a default or configured folder that is absent holds no plugins
    }
    std::vector<std::shared_ptr<PluginRecord>> found;
    for (const auto& p : host::manifests_in(dir)) {
      try {
        found.push_back(record_for(p, source, std::nullopt));
      } catch (const Error& e) {
        // Known but broken: reported by plugins() and in "no handler" errors,
        // instead of hiding every other plugin of the folder.
        found.push_back(host::broken_record(p, source, e));
      }
    }
    std::unique_lock<std::shared_mutex> lock(mu);
    for (auto& r : found) insert(std::move(r));
  }
};

Registry::Registry() : impl_(std::make_unique<Impl>()) {}
Registry::~Registry() = default;

Registry& Registry::global() {
  // Leaked on purpose: handlers and buffers may outlive static destruction.
  static Registry* instance = [] {
    auto r = std::make_unique<Registry>();
    r->discover_defaults();
    return r.release();
  }();
  return *instance;
}

void Registry::discover_defaults() {
  // Under setuid/setgid the environment belongs to someone else.
  const bool secure = ::getauxval(AT_SECURE) != 0;
  if (!secure) {
    const char* config = std::getenv("STOWAGE_CONFIG");
    if (config != nullptr && *config != '\0') apply_config(load_config_file(config));
    const char* path = std::getenv("STOWAGE_PLUGIN_PATH");
    if (path != nullptr) {
      for (const auto& dir : host::split_search_path(path)) {
        impl_->add_folder(dir, PluginSource::kPluginPath);
      }
    }
  }
  std::error_code ec;
  fs::path exe = boost::dll::program_location(ec);
  if (!ec && !exe.empty()) {
    impl_->add_folder((exe.parent_path() / ".." / "lib" / "stowage" / "plugins").lexically_normal(),
                      PluginSource::kDefault);
  }
  // Beside this library: <libdir>/stowage/plugins is where an install puts
  // the plugins whatever the prefix and libdir (lib, lib64, lib/<multiarch>),
  // also for a host executable installed elsewhere.
  ec.clear();
  fs::path self = boost::dll::this_line_location(ec);
  if (!ec && !self.empty()) {
    impl_->add_folder((self.parent_path() / "stowage" / "plugins").lexically_normal(),
                      PluginSource::kDefault);
  }
  impl_->add_folder(fs::path(STOWAGE_INSTALL_PLUGIN_DIR), PluginSource::kDefault);
}

void Registry::apply_config(const Config& config) {
  {
    std::unique_lock<std::shared_mutex> lock(impl_->mu);
    if (config.allow) impl_->allow.emplace(config.allow->begin(), config.allow->end());
    for (const auto& [k, v] : config.aliases) impl_->aliases[k] = v;
    for (const auto& [k, v] : config.scheme_plugins) impl_->scheme_plugins[k] = v;
    for (const auto& [k, v] : config.defaults) {
      impl_->defaults[k] = v;
      impl_->defaults_source[k] = config.source;
    }
    for (const auto& [k, v] : config.sha256) impl_->name_pins[k] = v;
    if (config.list_locations) impl_->list_locations = config.list_locations;
    impl_->cache_schemes.insert(config.cache_schemes.begin(), config.cache_schemes.end());
    if (config.offline) impl_->offline = *config.offline;
    if (config.retry) {
      impl_->retry = {config.retry->max_attempts, config.retry->initial_backoff,
                      config.retry->max_backoff, config.retry->total_deadline,
                      impl_->retry.observer};
    }
  }
  for (const auto& folder : config.plugin_paths) impl_->add_folder(folder, PluginSource::kConfig);
  for (const auto& entry : config.plugins) {
    // A library named directly has no manifest to say what it serves: it is
    // loaded now, as the config asks, and the pins still apply.
    auto rec = impl_->record_for(absolute_normal(entry.path), PluginSource::kConfig, entry.sha256);
    std::unique_lock<std::shared_mutex> lock(impl_->mu);
    impl_->insert(std::move(rec));
  }
}

void Registry::add_plugin(const fs::path& file_in, std::string_view source_in) {
  fs::path file = absolute_normal(file_in);
  const PluginSource source = source_of(source_in, file);
  auto rec = impl_->record_for(file, source, std::nullopt);
  rec->named_by_host = source == PluginSource::kApi;
  std::unique_lock<std::shared_mutex> lock(impl_->mu);
  impl_->insert(std::move(rec));
}

void Registry::add_plugin_folder(const fs::path& folder, std::string_view source) {
  impl_->add_folder(folder, source_of(source, folder));
}

void Registry::register_scheme(const std::string& scheme, HandlerFactory factory,
                               std::string_view name) {
  if (!host::is_valid_scheme(scheme)) {
    throw Error(ErrorCode::kInvalidArgument,
                "cannot register scheme '" + scheme +
                    "': a scheme is a lowercase letter followed by lowercase letters, digits, "
                    "'+', '-' or '.' (without '://')");
  }
  if (!factory) {
    throw Error(ErrorCode::kInvalidArgument,
                "cannot register scheme '" + scheme + "': the factory is empty");
  }
  std::string who = describe_factory(factory, name);
  std::unique_lock<std::shared_mutex> lock(impl_->mu);
  if (auto it = impl_->factory_names.find(scheme); it != impl_->factory_names.end()) {
    throw Error(ErrorCode::kAlreadyExists,
                "cannot register " + who + " for scheme '" + scheme + "': " + it->second +
                    " is registered for it already, and two handlers for one scheme would make "
                    "routing ambiguous");
  }
  impl_->factories[scheme] = std::move(factory);
  impl_->factory_names[scheme] = std::move(who);
}

namespace {

// One config's defaults for a scheme, merged under a call's options.
struct DefaultsLayer {
  std::string scheme;
  std::string json;
  std::string source;  // the config file; "" when the host gave the config
};

// The option a plugin's message says is wrong: what follows `option "` or
// `option '` (the SDK kit's and the usual wording), or "".
std::string option_named_in(std::string_view message) {
  for (size_t at = 0; at < message.size();) {
    const size_t found = message.find("ption ", at);
    if (found == std::string_view::npos || found == 0) break;
    const char o = message[found - 1];
    const size_t quote = found + 6;
    if ((o == 'o' || o == 'O') && quote < message.size() &&
        (message[quote] == '"' || message[quote] == '\'')) {
      const size_t end = message.find(message[quote], quote + 1);
      if (end != std::string_view::npos) {
        return std::string(message.substr(quote + 1, end - quote - 1));
      }
    }
    at = found + 1;
  }
  return {};
}

bool has_member(std::string_view object_json, std::string_view key) {
  try {
    const rapidjson::Document doc = host::parse_json(object_json, "options");
    return doc.IsObject() && doc.HasMember(rapidjson::Value(rapidjson::StringRef(
                                 key.data(), static_cast<rapidjson::SizeType>(key.size()))));
  } catch (const Error&) {
    return false;
  }
}

// A refused option that came from the configuration's defaults, not from
// the call, is reported as the config's mistake: its file and key path.
[[noreturn]] void rethrow_for_defaults(const Error& e, const std::vector<DefaultsLayer>& layers,
                                       std::string_view call_options) {
  if (e.code() == ErrorCode::kInvalidArgument && !layers.empty()) {
    const std::string key = option_named_in(e.what());
    const std::string top = key.substr(0, key.find('.'));
    if (!top.empty() && !has_member(call_options, top)) {
      for (auto it = layers.rbegin(); it != layers.rend(); ++it) {
        if (!has_member(it->json, top)) continue;
        const std::string what =
            std::string_view(e.what()).find("nknown option") != std::string_view::npos
                ? "unknown option"
                : "bad value";
        const std::string where =
            it->source.empty() ? std::string("the host configuration") : "config " + it->source;
        throw Error(
            ErrorCode::kInvalidArgument,
            where + ": defaults." + it->scheme + "." + key + ": " + what + " (" + e.what() + ")",
            e.retryable());
      }
    }
  }
  throw e;
}

}  // namespace

std::unique_ptr<IOHandler> Registry::open(std::string_view url_in, std::string_view options_json) {
  std::string url(url_in);
  std::string options;
  HandlerFactory factory;
  std::shared_ptr<PluginRecord> record;
  std::vector<DefaultsLayer> defaults_used;
  {
    std::shared_lock<std::shared_mutex> lock(impl_->mu);
    std::vector<std::string> chain;  // the aliases taken, in order
    url = impl_->through_cache(impl_->resolve_aliases(url_in, chain));
    const std::string full_scheme = url_scheme(url);
    const std::string scheme = impl_->serving_scheme(full_scheme);

    // Defaults of the scheme served (with the config's "offline" for the
    // cache), of a composed scheme ("cache+https"), then of each alias from
    // the innermost out, then the call's own options: the more specific wins.
    std::vector<std::pair<std::string, const std::string*>> layers;
    auto add_layer = [&](const std::string& s) {
      auto d = impl_->defaults.find(s);
      if (d != impl_->defaults.end()) layers.emplace_back(s, &d->second);
    };
    add_layer(scheme);
    static const std::string kOfflineLayer = R"({"offline":true})";
    if (impl_->offline && scheme == kCacheScheme) layers.emplace_back(scheme, &kOfflineLayer);
    if (full_scheme != scheme) add_layer(full_scheme);
    for (auto it = chain.rbegin(); it != chain.rend(); ++it) add_layer(*it);
    for (const auto& [s, json] : layers) {
      auto source = impl_->defaults_source.find(s);
      defaults_used.push_back(
          {s, *json, source == impl_->defaults_source.end() ? std::string() : source->second});
    }
    const std::string call_source = "options for '" + std::string(url_in) + "'";
    if (layers.empty()) {
      auto doc = host::parse_json(options_json, call_source);
      if (!doc.IsObject()) {
        throw Error(ErrorCode::kInvalidArgument,
                    call_source + ": expected a JSON object, got " + host::describe(doc));
      }
      options = std::string(options_json);
    } else {
      options = *layers.front().second;
      std::string under = "defaults for scheme '" + layers.front().first + "'";
      for (size_t i = 1; i < layers.size(); ++i) {
        std::string over = "defaults for scheme '" + layers[i].first + "'";
        options = host::merge_objects(options, under, *layers[i].second, over);
        under = "merged defaults";
      }
      options = host::merge_objects(options, under, options_json, call_source);
    }

    auto f = impl_->factories.find(scheme);
    if (f != impl_->factories.end()) {
      factory = f->second;
    } else {
      record = impl_->choose(scheme, url_in);
    }
  }
  if (factory) {
    host::NestScope nesting(*this, url_in, url, nullptr);
    std::unique_ptr<IOHandler> handler;
    try {
      handler = factory(url, options);
    } catch (const Error& e) {
      rethrow_for_defaults(e, defaults_used, options_json);
    }
    if (!handler) {
      throw Error(ErrorCode::kInternal, "the handler factory registered for scheme '" +
                                            url_scheme(url) + "' returned no handler for '" + url +
                                            "'");
    }
    return handler;
  }
  auto plugin = impl_->ensure_loaded(*record);
  // The plugin's open may open nested URLs (abi.h nested_open) through this
  // registry: the scope says which, and refuses cycles.
  host::NestScope nesting(*this, url_in, url,
                          plugin->has(STOWAGE_CAP_SINGLE_THREADED) ? plugin.get() : nullptr);
  host::RetryPolicy retry;
  {
    std::shared_lock<std::shared_mutex> lock(impl_->mu);
    retry = impl_->retry;
  }
  try {
    return std::make_unique<host::PluginHandler>(std::move(plugin), url, options, retry);
  } catch (const Error& e) {
    rethrow_for_defaults(e, defaults_used, options_json);
  }
}

std::optional<std::vector<std::string>> Registry::list_locations() const {
  std::shared_lock<std::shared_mutex> lock(impl_->mu);
  return impl_->list_locations;
}

std::vector<PluginInfo> Registry::plugins() const {
  std::shared_lock<std::shared_mutex> lock(impl_->mu);
  std::vector<PluginInfo> out;
  for (const auto& r : impl_->records) out.push_back(impl_->info_of(*r));
  return out;
}

std::vector<std::string> Registry::load_allowed_plugins() {
  std::vector<std::shared_ptr<PluginRecord>> todo;
  {
    std::shared_lock<std::shared_mutex> lock(impl_->mu);
    for (const auto& r : impl_->records) {
      if (!r->loaded && !r->broken && impl_->allowed(*r)) todo.push_back(r);
    }
  }
  std::vector<std::string> failures;
  for (const auto& r : todo) {
    try {
      impl_->ensure_loaded(*r);
    } catch (const Error& e) {
      failures.push_back(r->info.name + ": " + e.what());
    }
  }
  return failures;
}

Route Registry::route(std::string_view url) const {
  std::shared_lock<std::shared_mutex> lock(impl_->mu);
  std::vector<std::string> chain;
  Route out;
  out.url = impl_->through_cache(impl_->resolve_aliases(url, chain));
  out.scheme = impl_->serving_scheme(url_scheme(out.url));
  out.aliases = std::move(chain);
  if (impl_->factories.count(out.scheme) != 0) {
    out.in_process = true;
    return out;
  }
  out.plugin = impl_->info_of(*impl_->choose(out.scheme, url));
  return out;
}

std::vector<std::string> Registry::schemes() const {
  std::shared_lock<std::shared_mutex> lock(impl_->mu);
  return impl_->available_schemes();
}

std::vector<fs::path> Registry::searched_folders() const {
  std::shared_lock<std::shared_mutex> lock(impl_->mu);
  return impl_->folders;
}

void Registry::set_retry_observer(RetryObserver observer) {
  std::unique_lock<std::shared_mutex> lock(impl_->mu);
  impl_->retry.observer =
      observer ? std::make_shared<const RetryObserver>(std::move(observer)) : nullptr;
}

std::string url_scheme(std::string_view url) {
  auto sep = url.find("://");
  if (sep == std::string_view::npos || sep == 0) return {};
  std::string scheme(url.substr(0, sep));
  for (char& c : scheme) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return host::is_valid_scheme(scheme) ? scheme : std::string();
}

}  // namespace stowage
