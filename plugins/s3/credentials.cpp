#include <pwd.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <vector>

#include "credentials_internal.hpp"
#include "stowage/error.hpp"

namespace stowage::s3 {
namespace {

using Ini = std::map<std::string, std::map<std::string, std::string>>;

std::string trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(" \t\r");
  return std::string(s.substr(b, e - b + 1));
}

std::string home_dir(const GetEnv& env) {
  if (auto h = env("HOME"); h && !h->empty()) return *h;
  struct passwd pw {};
  struct passwd* out = nullptr;
  std::vector<char> buf(16384);
  if (getpwuid_r(getuid(), &pw, buf.data(), buf.size(), &out) == 0 && out != nullptr &&
      out->pw_dir != nullptr) {
    return out->pw_dir;
  }
  return {};
}

struct IniFile {
  std::string path;
  bool exists = false;
  Ini sections;
};

IniFile read_ini(const std::string& path) {
  IniFile f;
  f.path = path;
  if (path.empty()) return f;
  std::ifstream in(path, std::ios::binary);
  if (!in) return f;
  std::stringstream text;
  text << in.rdbuf();
  f.exists = true;
  f.sections = parse_aws_ini(text.str());
  return f;
}

std::optional<std::string> non_empty(const std::optional<std::string>& v) {
  if (v && !v->empty()) return v;
  return std::nullopt;
}

const std::map<std::string, std::string>* find_section(const IniFile& f, const std::string& name) {
  auto it = f.sections.find(name);
  return it == f.sections.end() ? nullptr : &it->second;
}

std::string get(const std::map<std::string, std::string>* section, const std::string& key) {
  if (section == nullptr) return {};
  auto it = section->find(key);
  return it == section->end() ? std::string() : it->second;
}

// Static keys from one profile section; nullopt when it has none.
std::optional<Credentials> keys_in(const std::map<std::string, std::string>* section,
                                   const std::string& where) {
  if (section == nullptr) return std::nullopt;
  std::string id = get(section, "aws_access_key_id");
  std::string secret = get(section, "aws_secret_access_key");
  if (id.empty() && secret.empty()) {
    for (const char* key : {"role_arn", "credential_process", "sso_session", "sso_start_url",
                            "web_identity_token_file"}) {
      if (!get(section, key).empty()) {
        throw Error(ErrorCode::kInvalidArgument,
                    where + " gets its credentials through \"" + key +
                        "\", which the s3 plugin does not run; give it aws_access_key_id and "
                        "aws_secret_access_key, or pass keys in the options or the environment");
      }
    }
    return std::nullopt;
  }
  if (id.empty() || secret.empty()) {
    throw Error(ErrorCode::kInvalidArgument,
                where + " has " + (id.empty() ? "aws_secret_access_key" : "aws_access_key_id") +
                    " but not " + (id.empty() ? "aws_access_key_id" : "aws_secret_access_key"));
  }
  return Credentials{id, secret, get(section, "aws_session_token")};
}

}  // namespace

GetEnv process_env() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
}

Ini parse_aws_ini(std::string_view text) {
  Ini out;
  std::string section;
  bool in_section = false;
  std::string parent;  // the key of an open sub-section ("s3")
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view raw = text.substr(start, end - start);
    start = end + 1;
    std::string line = trim(raw);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    bool indented = !raw.empty() && (raw[0] == ' ' || raw[0] == '\t');
    if (line.front() == '[' && line.back() == ']') {
      section = trim(std::string_view(line).substr(1, line.size() - 2));
      out[section];
      in_section = true;
      parent.clear();
      continue;
    }
    if (!in_section) continue;
    size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string key = trim(std::string_view(line).substr(0, eq));
    std::string value = trim(std::string_view(line).substr(eq + 1));
    if (indented && !parent.empty()) {
      out[section][parent + "." + key] = value;
      continue;
    }
    parent = value.empty() ? key : std::string();
    if (!value.empty()) out[section][key] = value;
  }
  return out;
}

Settings resolve_settings(const SettingOptions& options, const GetEnv& env) {
  Settings s;
  const std::string home = home_dir(env);
  auto file_path = [&](const char* var, const char* name) {
    if (auto p = non_empty(env(var))) return *p;
    return home.empty() ? std::string() : home + "/.aws/" + name;
  };
  const IniFile creds_file = read_ini(file_path("AWS_SHARED_CREDENTIALS_FILE", "credentials"));
  const IniFile config_file = read_ini(file_path("AWS_CONFIG_FILE", "config"));

  std::optional<std::string> env_profile = non_empty(env("AWS_PROFILE"));
  const bool explicit_profile = !options.profile.empty() || env_profile.has_value();
  const std::string profile =
      !options.profile.empty() ? options.profile : env_profile.value_or("default");
  const auto* cred_section = find_section(creds_file, profile);
  const auto* config_section = find_section(
      config_file, profile == "default" && find_section(config_file, "default") != nullptr
                       ? std::string("default")
                       : "profile " + profile);
  if (explicit_profile && cred_section == nullptr && config_section == nullptr) {
    throw Error(ErrorCode::kInvalidArgument,
                "The AWS profile \"" + profile + "\" (" +
                    (options.profile.empty() ? "AWS_PROFILE" : "the \"profile\" option") +
                    ") is in neither " +
                    (creds_file.path.empty() ? "~/.aws/credentials" : creds_file.path) + " nor " +
                    (config_file.path.empty() ? "~/.aws/config" : config_file.path));
  }
  const std::string cred_where = "profile \"" + profile + "\" in " + creds_file.path;
  const std::string config_where = "profile \"" + profile + "\" in " + config_file.path;

  // Credentials.
  std::vector<std::string> searched;
  if (options.anonymous) {
    s.anonymous = true;
    s.credentials_source = "none (anonymous requests)";
  } else if (!options.access_key_id.empty() || !options.secret_access_key.empty()) {
    if (options.access_key_id.empty() || options.secret_access_key.empty()) {
      throw Error(ErrorCode::kInvalidArgument,
                  std::string("The options give ") +
                      (options.access_key_id.empty() ? "secret_access_key" : "access_key_id") +
                      " without " +
                      (options.access_key_id.empty() ? "access_key_id" : "secret_access_key"));
    }
    s.credentials =
        Credentials{options.access_key_id, options.secret_access_key, options.session_token};
    s.credentials_source = "the options";
  } else {
    searched.push_back("the options");
    if (options.profile.empty()) {
      auto id = non_empty(env("AWS_ACCESS_KEY_ID"));
      auto secret = non_empty(env("AWS_SECRET_ACCESS_KEY"));
      if (id && secret) {
        s.credentials = Credentials{*id, *secret, non_empty(env("AWS_SESSION_TOKEN")).value_or("")};
        s.credentials_source = "the environment (AWS_ACCESS_KEY_ID)";
      } else if (id || secret) {
        throw Error(ErrorCode::kInvalidArgument,
                    std::string("The environment sets ") +
                        (id ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY") + " but not " +
                        (id ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID"));
      }
      searched.push_back("AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY");
    }
    if (!s.credentials) {
      if (auto c = keys_in(cred_section, cred_where)) {
        s.credentials = std::move(c);
        s.credentials_source = cred_where;
      }
      searched.push_back(cred_where + (creds_file.exists ? "" : " (no such file)"));
    }
    if (!s.credentials) {
      if (auto c = keys_in(config_section, config_where)) {
        s.credentials = std::move(c);
        s.credentials_source = config_where;
      }
      searched.push_back(config_where + (config_file.exists ? "" : " (no such file)"));
    }
  }
  for (const std::string& place : searched) {
    s.searched += s.searched.empty() ? "" : ", ";
    s.searched += place;
  }

  // Region.
  if (!options.region.empty()) {
    s.region = options.region;
  } else if (auto r = non_empty(env("AWS_REGION"))) {
    s.region = *r;
  } else if (auto r2 = non_empty(env("AWS_DEFAULT_REGION"))) {
    s.region = *r2;
  } else if (std::string r3 = get(config_section, "region"); !r3.empty()) {
    s.region = r3;
  } else {
    s.region = "us-east-1";
  }

  // Endpoint.
  const bool ignore_configured = env("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS").value_or("") == "true";
  if (!options.endpoint.empty()) {
    s.endpoint = options.endpoint;
  } else if (!ignore_configured) {
    if (auto e = non_empty(env("AWS_ENDPOINT_URL_S3"))) {
      s.endpoint = *e;
    } else if (auto e2 = non_empty(env("AWS_ENDPOINT_URL"))) {
      s.endpoint = *e2;
    } else if (std::string e3 = get(config_section, "s3.endpoint_url"); !e3.empty()) {
      s.endpoint = e3;
    } else {
      s.endpoint = get(config_section, "endpoint_url");
    }
  }

  std::string style = get(config_section, "s3.addressing_style");
  if (style == "path" || style == "virtual") s.addressing_style = style;
  return s;
}

}  // namespace stowage::s3
