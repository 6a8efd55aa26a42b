#include <fcntl.h>
#include <rapidjson/document.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>

#include "probe_internal.hpp"
#include "stowage/abi.h"

extern char** environ;

namespace stowage::conformance {
namespace {

namespace fs = std::filesystem;

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// A private copy of the shim with its .conf: every copy is a new file, so
// the registry loads it afresh.
fs::path shim_copy(const Target& t, const fs::path& folder, const std::string& name,
                   const std::string& conf) {
  fs::path copy = folder / name;
  fs::copy_file(t.shim, copy, fs::copy_options::overwrite_existing);
  std::ofstream(copy.string() + ".conf") << conf;
  return copy;
}

// The bits a shim report gives the scheme (scheme_capabilities.<scheme>=),
// or none for a plugin that declares no per-scheme capabilities.
std::optional<uint64_t> scheme_bits(const std::string& report, const std::string& scheme) {
  const std::string key = "scheme_capabilities." + scheme + "=";
  std::istringstream in(report);
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with(key)) return std::stoull(line.substr(key.size()));
  }
  return std::nullopt;
}

}  // namespace

fs::path plugin_library(const Target& t) {
  fs::path p = fs::absolute(t.plugin);
  if (p.extension() != ".json") return p;
  rapidjson::Document doc;
  std::string text = slurp(p);
  doc.Parse(text.c_str(), text.size());
  if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("library") ||
      !doc["library"].IsString()) {
    throw Error(ErrorCode::kInvalidArgument, p.string() + " has no \"library\" string");
  }
  fs::path lib = doc["library"].GetString();
  return lib.is_absolute() ? lib : p.parent_path() / lib;
}

fs::path make_decoy(const Target& t, const fs::path& folder, const std::string& scheme) {
  shim_copy(t, folder, "libstowage_conformance-decoy.so", "mode=decoy\nscheme=" + scheme + "\n");
  fs::path manifest = folder / "stowage-conformance-decoy.json";
  std::ofstream(manifest) << "{\"manifest_version\": 1, \"name\": \"conformance-decoy\", "
                             "\"version\": \"1.0.0\", \"library\": "
                             "\"libstowage_conformance-decoy.so\", \"abi\": {\"major\": 1, "
                             "\"minor\": 0}, \"schemes\": [\""
                          << scheme << "\"]}\n";
  return manifest;
}

int run_probe(const Target& t, const std::string& mode) {
  TempDir dir;
  fs::path shim;
  try {
    shim = shim_copy(t, dir.path, "libstowage_conformance_shim_probe.so",
                     "mode=" + mode + "\nlibrary=" + plugin_library(t).string() + "\n");
  } catch (const std::exception& e) {
    std::cout << "RESULT setup failed: " << e.what() << "\n";
    return 1;
  }
  Registry registry;
  auto report = [&] { std::cout << slurp(shim.string() + ".report"); };
  try {
    registry.add_plugin(shim);
  } catch (const std::exception& e) {
    report();
    std::cout << "RESULT refused: " << describe(e) << "\n";
    return 0;
  }
  report();
  if (mode == kProbeOtherMajor) {
    std::cout << "RESULT loaded\n";
    return 0;
  }
  try {
    // The scheme's own operations: the clamped table gives every scheme the
    // plugin-wide bits, so a save-only scheme of a 1.1 plugin (downloads://)
    // would claim load there and answer UNIMPLEMENTED.
    const std::optional<uint64_t> own = scheme_bits(slurp(shim.string() + ".report"), t.scheme);
    std::vector<std::string> caps = registry.plugins().at(0).capabilities;
    auto has = [&](const char* c) {
      if (own) {
        const uint64_t bit = std::string_view(c) == "save"   ? STOWAGE_CAP_SAVE
                             : std::string_view(c) == "load" ? STOWAGE_CAP_LOAD
                                                             : STOWAGE_CAP_REMOVE;
        return (*own & bit) != 0;
      }
      return std::find(caps.begin(), caps.end(), c) != caps.end();
    };
    if (has("save") && !has("load")) {
      // Save only: its one operation works.
      registry.open(child(t.root, "negotiation-" + std::to_string(::getpid())), t.options)
          ->save(small_model(7));
    } else if (has("save") && has("load")) {
      const std::string url = child(t.root, "negotiation-" + std::to_string(::getpid()));
      ModelArtifacts model = small_model(7);
      registry.open(url, t.options)->save(model);
      std::string diff = difference(model, registry.open(url, t.options)->load());
      if (has("remove")) registry.open(url, t.options)->remove();
      if (!diff.empty()) {
        std::cout << "RESULT wrong model: " << diff << "\n";
        return 0;
      }
    } else {
      registry.open(t.root, t.options);
    }
    std::cout << "RESULT works\n";
  } catch (const std::exception& e) {
    std::cout << "RESULT failed: " << describe(e) << "\n";
  }
  return 0;
}

ProbeResult spawn_probe(const Target& t, const std::string& mode) {
  ProbeResult result;
  std::vector<std::string> args = {"/proc/self/exe",       std::string(kProbeFlag) + "=" + mode,
                                   "--plugin=" + t.plugin, "--scheme=" + t.scheme,
                                   "--root=" + t.run_root, "--options=" + t.options};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    result.output = "cannot make a pipe";
    return result;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 2);
  pid_t pid = -1;
  int err = ::posix_spawn(&pid, "/proc/self/exe", &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(fds[1]);
  if (err != 0) {
    ::close(fds[0]);
    result.output = "cannot start the probe process";
    return result;
  }
  char buf[4096];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) != 0;) {
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    result.output.append(buf, static_cast<size_t>(n));
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

}  // namespace stowage::conformance
