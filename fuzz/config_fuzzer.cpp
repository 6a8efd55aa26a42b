// Fuzzes the host configuration loader (core/host/config.cpp). Checks that
// only stowage::Error escapes and that an accepted config holds what
// docs/config.md promises: absolute, normal plugin paths; lowercase SHA-256
// pins of 64 digits; valid alias schemes whose targets the registry can
// apply; per-scheme defaults that are JSON objects.
//
//   build-fuzz/bin/fuzz/config_fuzzer -dict=fuzz/dict/config.dict fuzz/corpus/config

#include <string>

#include "fuzz_util.hpp"
#include "registry_internal.hpp"
#include "stowage/config.hpp"
#include "stowage/error.hpp"
#include "stowage/model_json.hpp"
#include "stowage/registry.hpp"

namespace {

void check_path(const std::filesystem::path& p) {
  FUZZ_CHECK(p.is_absolute(), "a plugin path resolves against the config's folder");
  FUZZ_CHECK(p == p.lexically_normal(), "a plugin path is normal");
}

void check_pin(const std::string& pin) {
  FUZZ_CHECK(pin.size() == 64, "a SHA-256 pin has 64 digits");
  for (char c : pin) {
    FUZZ_CHECK((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'), "a pin is lowercase hex");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  stowage::Config config;
  try {
    config = stowage::parse_config(stowage::fuzz::as_text(data, size), "config.json", "/etc/app");
  } catch (const stowage::Error&) {
    return 0;
  }
  FUZZ_CHECK(config.base_dir == "/etc/app", "the base folder is kept");
  for (const auto& p : config.plugin_paths) check_path(p);
  for (const auto& entry : config.plugins) {
    check_path(entry.path);
    if (entry.sha256) check_pin(*entry.sha256);
  }
  for (const auto& [name, pin] : config.sha256) check_pin(pin);
  if (config.allow) {
    for (const auto& name : *config.allow) FUZZ_CHECK(!name.empty(), "allowed names are named");
  }
  for (const auto& [scheme, plugin] : config.scheme_plugins) {
    FUZZ_CHECK(stowage::host::is_valid_scheme(scheme), "scheme_plugins keys are schemes");
    FUZZ_CHECK(!plugin.empty(), "scheme_plugins values are plugin names");
  }
  for (const auto& [scheme, options] : config.defaults) {
    FUZZ_CHECK(stowage::host::is_valid_scheme(scheme), "defaults keys are schemes");
    FUZZ_CHECK(!options.empty() && options.front() == '{', "defaults are JSON objects");
    try {
      stowage::json::normalize(options, "defaults");
    } catch (const stowage::Error&) {
      FUZZ_CHECK(false, "defaults are written as valid JSON");
    }
  }
  for (const auto& [scheme, target] : config.aliases) {
    FUZZ_CHECK(stowage::host::is_valid_scheme(scheme), "aliases keys are schemes");
    for (std::string_view rest : {"", "m", "/a/b/model.json"}) {
      const std::string url = stowage::host::apply_alias(target, rest);
      const std::string applied = stowage::url_scheme(url);
      FUZZ_CHECK(!applied.empty() && applied != scheme, "an alias gives a URL of another scheme");
      FUZZ_CHECK(url.starts_with(target.substr(0, target.find("://"))),
                 "an alias keeps its target's scheme");
    }
  }
  return 0;
}
