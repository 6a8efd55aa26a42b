#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "json_util_internal.hpp"
#include "manifest_internal.hpp"
#include "registry_internal.hpp"
#include "stowage/error.hpp"

namespace stowage::host {
namespace {

class ManifestParser {
 public:
  explicit ManifestParser(const std::filesystem::path& file) : file_(file) {}

  [[noreturn]] void fail(const std::string& path, const std::string& what) const {
    throw Error(ErrorCode::kInvalidArgument, file_.string() + ": " + path + ": " + what);
  }

  std::string string(const rapidjson::Value& v, const std::string& path) const {
    if (!v.IsString()) fail(path, std::string("expected a string, got ") + describe(v));
    if (v.GetStringLength() == 0) fail(path, "expected a non-empty string");
    return std::string(view_of(v));
  }

  uint32_t uint(const rapidjson::Value& v, const std::string& path) const {
    if (!v.IsNumber()) fail(path, std::string("expected a number, got ") + describe(v));
    double d = v.GetDouble();
    if (!(d >= 0) || d > 4294967295.0 || std::floor(d) != d) {
      fail(path, "expected a non-negative integer");
    }
    return static_cast<uint32_t>(d);
  }

  // "commands": {"browser": "stowage-browser"}. A name is what follows
  // `stowage` on the command line; a program is a bare file name beside the
  // manifest, so a manifest cannot point the command at another folder.
  void parse_commands(const rapidjson::Value& v, const std::string& key, Manifest& m) const {
    if (!v.IsObject()) fail(key, std::string("expected an object, got ") + describe(v));
    for (const auto& c : v.GetObject()) {
      const std::string name(view_of(c.name));
      const std::string path = key + "." + name;
      const bool good_name = !name.empty() && name.size() <= 64 &&
                             std::islower(static_cast<unsigned char>(name[0])) != 0 &&
                             std::all_of(name.begin(), name.end(), [](char ch) {
                               return std::islower(static_cast<unsigned char>(ch)) != 0 ||
                                      std::isdigit(static_cast<unsigned char>(ch)) != 0 ||
                                      ch == '-';
                             });
      if (!good_name) {
        fail(path, "'" + name +
                       "' is not a command name (a lowercase letter, then lowercase letters, "
                       "digits and '-', at most 64)");
      }
      if (m.commands.count(name) != 0) fail(path, "'" + name + "' is listed twice");
      const std::string program = string(c.value, path);
      if (program.find_first_of(std::string_view("/\\\0", 3)) != std::string::npos ||
          program == "." || program.find("..") != std::string::npos) {
        fail(path, "'" + program +
                       "' is not a bare file name beside the manifest (no path separators, "
                       "no '..')");
      }
      m.commands[name] = file_.parent_path() / program;
    }
  }

  Manifest parse(std::string_view json) const {
    rapidjson::Document doc = parse_json(json, file_.string());
    if (!doc.IsObject()) {
      throw Error(ErrorCode::kInvalidArgument,
                  file_.string() + ": expected a JSON object, got " + describe(doc));
    }
    Manifest m;
    m.file = file_;
    std::set<std::string> seen;
    for (const auto& member : doc.GetObject()) {
      std::string key(view_of(member.name));
      const rapidjson::Value& v = member.value;
      seen.insert(key);
      if (key == "manifest_version") {
        if (uint(v, key) != kManifestVersion) {
          fail(key, "this host reads manifest version " + std::to_string(kManifestVersion) +
                        ", not " + std::to_string(uint(v, key)));
        }
      } else if (key == "name") {
        m.name = string(v, key);
        for (char c : m.name) {
          if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.') {
            fail(key, "'" + m.name + "' may hold only letters, digits, '_', '-' and '.'");
          }
        }
      } else if (key == "version") {
        m.version = string(v, key);
      } else if (key == "library") {
        std::filesystem::path lib(string(v, key));
        if (lib.is_relative()) lib = file_.parent_path() / lib;
        m.library = lib.lexically_normal();
      } else if (key == "abi") {
        if (!v.IsObject()) fail(key, std::string("expected an object, got ") + describe(v));
        bool major = false, minor = false;
        for (const auto& a : v.GetObject()) {
          std::string sub = key + "." + std::string(view_of(a.name));
          if (view_of(a.name) == "major") {
            m.abi_major = uint(a.value, sub);
            major = true;
          } else if (view_of(a.name) == "minor") {
            m.abi_minor = uint(a.value, sub);
            minor = true;
          } else {
            fail(sub, "unknown key (known keys: major, minor)");
          }
        }
        if (!major) fail(key + ".major", "missing");
        if (!minor) fail(key + ".minor", "missing");
      } else if (key == "schemes") {
        if (!v.IsArray()) fail(key, std::string("expected an array, got ") + describe(v));
        if (v.Empty()) fail(key, "expected at least one scheme");
        for (rapidjson::SizeType i = 0; i < v.Size(); ++i) {
          std::string path = key + "[" + std::to_string(i) + "]";
          std::string s = string(v[i], path);
          if (!is_valid_scheme(s)) {
            fail(path, "'" + s + "' is not a valid lowercase scheme");
          }
          for (const auto& prior : m.schemes) {
            if (prior == s) fail(path, "'" + s + "' is listed twice");
          }
          m.schemes.push_back(std::move(s));
        }
      } else if (key == "commands") {
        parse_commands(v, key, m);
      } else {
        fail(key,
             "unknown key (known keys: manifest_version, name, version, library, abi, schemes, "
             "commands)");
      }
    }
    for (const char* required :
         {"manifest_version", "name", "version", "library", "abi", "schemes"}) {
      if (!seen.count(required)) fail(required, "missing");
    }
    return m;
  }

 private:
  std::filesystem::path file_;
};

}  // namespace

Manifest parse_manifest(std::string_view json, const std::filesystem::path& file) {
  return ManifestParser(file).parse(json);
}

Manifest read_manifest(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    int err = errno;
    throw Error(err == ENOENT ? ErrorCode::kNotFound : ErrorCode::kPermissionDenied,
                "cannot read plugin manifest '" + file.string() + "': " + std::strerror(err));
  }
  std::ostringstream text;
  text << in.rdbuf();
  return parse_manifest(text.str(), file);
}

std::string plugin_name_from_manifest_file(const std::filesystem::path& file) {
  std::string f = file.filename().string();
  constexpr std::string_view kPrefix = "stowage-";
  constexpr std::string_view kSuffix = ".json";
  if (f.size() <= kPrefix.size() + kSuffix.size() || f.rfind(kPrefix, 0) != 0 ||
      f.compare(f.size() - kSuffix.size(), kSuffix.size(), kSuffix) != 0) {
    return {};
  }
  return f.substr(kPrefix.size(), f.size() - kPrefix.size() - kSuffix.size());
}

}  // namespace stowage::host
