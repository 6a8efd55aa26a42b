// The host configuration file: strict parsing (an unknown key or a wrong
// type is an error naming the key's path), paths resolved against the
// file's folder.
#include "stowage/config.hpp"

#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "json_util_internal.hpp"
#include "registry_internal.hpp"
#include "stowage/error.hpp"

namespace stowage {
namespace {

using host::describe;
using host::view_of;
namespace fs = std::filesystem;

constexpr const char* kKnownKeys =
    "plugin_paths, plugins, allow, aliases, scheme_plugins, defaults, sha256, retry, "
    "list_locations, cache, offline";

class Parser {
 public:
  Parser(std::string_view source, const fs::path& base_dir) : source_(source), base_(base_dir) {}

  [[noreturn]] void fail(const std::string& path, const std::string& what) const {
    throw Error(ErrorCode::kInvalidArgument, std::string(source_) + ": " + path + ": " + what);
  }

  [[noreturn]] void wrong_type(const std::string& path, const char* expected,
                               const rapidjson::Value& got) const {
    fail(path, std::string("expected ") + expected + ", got " + describe(got));
  }

  std::string string(const rapidjson::Value& v, const std::string& path) const {
    if (!v.IsString()) wrong_type(path, "a string", v);
    return std::string(view_of(v));
  }

  std::string non_empty(const rapidjson::Value& v, const std::string& path) const {
    std::string s = string(v, path);
    if (s.empty()) fail(path, "expected a non-empty string");
    return s;
  }

  const rapidjson::Value& object(const rapidjson::Value& v, const std::string& path) const {
    if (!v.IsObject()) wrong_type(path, "an object", v);
    return v;
  }

  const rapidjson::Value& array(const rapidjson::Value& v, const std::string& path) const {
    if (!v.IsArray()) wrong_type(path, "an array", v);
    return v;
  }

  fs::path resolve(const std::string& p) const {
    fs::path path(p);
    if (path.is_relative() && !base_.empty()) path = base_ / path;
    return path.lexically_normal();
  }

  std::string scheme_key(const rapidjson::Value& name, const std::string& path) const {
    std::string s(view_of(name));
    if (!host::is_valid_scheme(s)) {
      fail(path, "'" + s +
                     "' is not a valid scheme (a lowercase letter, then lowercase letters, digits, "
                     "'+', '-' or '.')");
    }
    return s;
  }

  std::string sha256(const rapidjson::Value& v, const std::string& path) const {
    std::string s = string(v, path);
    bool ok = s.size() == 64;
    for (char& c : s) {
      if (!std::isxdigit(static_cast<unsigned char>(c))) ok = false;
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    if (!ok) fail(path, "expected 64 hexadecimal digits (a SHA-256 digest), got '" + s + "'");
    return s;
  }

  Config parse(std::string_view json) const {
    rapidjson::Document doc = host::parse_json(json, source_);
    if (!doc.IsObject()) {
      throw Error(
          ErrorCode::kInvalidArgument,
          std::string(source_) + ": expected a JSON object at the top, got " + describe(doc));
    }
    Config config;
    config.base_dir = base_;
    config.source = std::string(source_);
    for (const auto& m : doc.GetObject()) {
      std::string key(view_of(m.name));
      const rapidjson::Value& v = m.value;
      if (key == "plugin_paths") {
        const auto& a = array(v, key);
        for (rapidjson::SizeType i = 0; i < a.Size(); ++i) {
          std::string path = key + "[" + std::to_string(i) + "]";
          config.plugin_paths.push_back(resolve(non_empty(a[i], path)));
        }
      } else if (key == "plugins") {
        const auto& a = array(v, key);
        for (rapidjson::SizeType i = 0; i < a.Size(); ++i) {
          config.plugins.push_back(plugin_entry(a[i], key + "[" + std::to_string(i) + "]"));
        }
      } else if (key == "allow") {
        const auto& a = array(v, key);
        std::vector<std::string> allow;
        for (rapidjson::SizeType i = 0; i < a.Size(); ++i) {
          allow.push_back(non_empty(a[i], key + "[" + std::to_string(i) + "]"));
        }
        config.allow = std::move(allow);
      } else if (key == "aliases") {
        for (const auto& a : object(v, key).GetObject()) {
          std::string path = key + "." + std::string(view_of(a.name));
          std::string scheme = scheme_key(a.name, path);
          std::string target = non_empty(a.value, path);
          alias_target(scheme, target, path);
          config.aliases[scheme] = target;
        }
      } else if (key == "scheme_plugins") {
        for (const auto& a : object(v, key).GetObject()) {
          std::string path = key + "." + std::string(view_of(a.name));
          config.scheme_plugins[scheme_key(a.name, path)] = non_empty(a.value, path);
        }
      } else if (key == "defaults") {
        for (const auto& a : object(v, key).GetObject()) {
          std::string path = key + "." + std::string(view_of(a.name));
          std::string scheme = scheme_key(a.name, path);
          config.defaults[scheme] = host::write_json(object(a.value, path));
        }
      } else if (key == "sha256") {
        for (const auto& a : object(v, key).GetObject()) {
          std::string path = key + "." + std::string(view_of(a.name));
          config.sha256[std::string(view_of(a.name))] = sha256(a.value, path);
        }
      } else if (key == "retry") {
        config.retry = retry(v, key);
      } else if (key == "list_locations") {
        const auto& a = array(v, key);
        std::vector<std::string> urls;
        for (rapidjson::SizeType i = 0; i < a.Size(); ++i) {
          const std::string path = key + "[" + std::to_string(i) + "]";
          urls.push_back(non_empty(a[i], path));
          if (urls.back().find("://") == std::string::npos) {
            fail(path, "'" + urls.back() + "' is not a URL (expected '<scheme>://...')");
          }
        }
        config.list_locations = std::move(urls);
      } else if (key == "cache") {
        config.cache_schemes = cache_schemes(v, key);
      } else if (key == "offline") {
        if (!v.IsBool()) wrong_type(key, "true or false", v);
        config.offline = v.GetBool();
      } else {
        fail(key, std::string("unknown key (known keys: ") + kKnownKeys + ")");
      }
    }
    return config;
  }

 private:
  // A whole number in [low, high].
  int64_t integer(const rapidjson::Value& v, const std::string& path, int64_t low,
                  int64_t high) const {
    if (!v.IsInt64()) wrong_type(path, "an integer", v);
    const int64_t n = v.GetInt64();
    if (n < low || n > high) {
      fail(path, "expected " + std::to_string(low) + " to " + std::to_string(high) + ", got " +
                     std::to_string(n));
    }
    return n;
  }

  // "cache": {"schemes": [...]}; the cache's own options go in
  // "defaults": {"cache": {...}} like any scheme's.
  std::vector<std::string> cache_schemes(const rapidjson::Value& v, const std::string& path) const {
    std::vector<std::string> schemes;
    for (const auto& m : object(v, path).GetObject()) {
      const std::string sub = path + "." + std::string(view_of(m.name));
      if (std::string_view(view_of(m.name)) != "schemes") {
        fail(sub,
             "unknown key (known keys: schemes; the cache's options go in "
             "\"defaults\": {\"cache\": {...}})");
      }
      const auto& a = array(m.value, sub);
      for (rapidjson::SizeType i = 0; i < a.Size(); ++i) {
        const std::string item = sub + "[" + std::to_string(i) + "]";
        std::string scheme = non_empty(a[i], item);
        if (!host::is_valid_scheme(scheme) || scheme.find('+') != std::string::npos) {
          fail(item, "'" + scheme +
                         "' is not a scheme to cache (lowercase letters, digits, '-' or '.', "
                         "without '://', e.g. \"https\")");
        }
        schemes.push_back(std::move(scheme));
      }
    }
    return schemes;
  }

  RetrySettings retry(const rapidjson::Value& v, const std::string& path) const {
    constexpr int64_t kDay = 24ll * 3600 * 1000;
    RetrySettings r;
    for (const auto& m : object(v, path).GetObject()) {
      std::string key(view_of(m.name));
      std::string sub = path + "." + key;
      if (key == "max_attempts") {
        r.max_attempts = static_cast<int>(integer(m.value, sub, 1, 100));
      } else if (key == "initial_backoff_ms") {
        r.initial_backoff = std::chrono::milliseconds(integer(m.value, sub, 0, kDay));
      } else if (key == "max_backoff_ms") {
        r.max_backoff = std::chrono::milliseconds(integer(m.value, sub, 0, kDay));
      } else if (key == "total_deadline_ms") {
        r.total_deadline = std::chrono::milliseconds(integer(m.value, sub, 1, kDay));
      } else {
        fail(sub,
             "unknown key (known keys: max_attempts, initial_backoff_ms, max_backoff_ms, "
             "total_deadline_ms)");
      }
    }
    if (r.max_backoff < r.initial_backoff) {
      fail(path + ".max_backoff_ms", "must not be less than initial_backoff_ms");
    }
    return r;
  }

  PluginEntry plugin_entry(const rapidjson::Value& v, const std::string& path) const {
    PluginEntry entry;
    if (v.IsString()) {
      entry.path = resolve(non_empty(v, path));
      return entry;
    }
    if (!v.IsObject()) wrong_type(path, "a string or an object", v);
    bool has_path = false;
    for (const auto& m : v.GetObject()) {
      std::string key(view_of(m.name));
      std::string sub = path + "." + key;
      if (key == "path") {
        entry.path = resolve(non_empty(m.value, sub));
        has_path = true;
      } else if (key == "sha256") {
        entry.sha256 = sha256(m.value, sub);
      } else {
        fail(sub, "unknown key (known keys: path, sha256)");
      }
    }
    if (!has_path) fail(path + ".path", "missing (the manifest or library file)");
    return entry;
  }

  void alias_target(const std::string& scheme, const std::string& target,
                    const std::string& path) const {
    auto sep = target.find("://");
    std::string target_scheme = sep == std::string::npos ? target : target.substr(0, sep);
    if (!host::is_valid_scheme(target_scheme)) {
      fail(path,
           "'" + target + "' is neither a scheme nor a URL prefix such as 's3://bucket/prefix'");
    }
    if (target_scheme == scheme) fail(path, "an alias cannot stand for its own scheme");
  }

  std::string_view source_;
  fs::path base_;
};

}  // namespace

Config parse_config(std::string_view json, std::string_view source,
                    const std::filesystem::path& base_dir) {
  return Parser(source, base_dir).parse(json);
}

Config load_config_file(const std::filesystem::path& file) {
  std::error_code ec;
  if (std::filesystem::is_directory(file, ec)) {
    throw Error(ErrorCode::kInvalidArgument,
                "cannot read config file '" + file.string() + "': it is a directory");
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    int err = errno;
    throw Error(err == ENOENT ? ErrorCode::kNotFound : ErrorCode::kPermissionDenied,
                "cannot read config file '" + file.string() + "': " + std::strerror(err));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    throw Error(ErrorCode::kDataLoss, "cannot read config file '" + file.string() + "'");
  }
  std::filesystem::path base = std::filesystem::absolute(file).parent_path();
  return parse_config(text.str(), file.string(), base);
}

}  // namespace stowage
