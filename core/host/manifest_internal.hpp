// Plugin manifests: stowage-<name>.json beside each plugin library, read
// before any plugin code runs, so the registry knows which plugin serves
// which scheme without loading it.
// Thread-safety: stateless functions; Manifest is a plain value.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace stowage::host {

inline constexpr int kManifestVersion = 1;

struct Manifest {
  std::filesystem::path file;  // the manifest itself
  std::string name;
  std::string version;
  std::filesystem::path library;  // resolved against the manifest's folder
  uint32_t abi_major = 0;
  uint32_t abi_minor = 0;
  std::vector<std::string> schemes;
  // Subcommands of the stowage command the plugin ships ("commands" key,
  // optional): command name -> program, resolved beside the manifest. The
  // manifest gives a bare file name, so a program never lies elsewhere.
  std::map<std::string, std::filesystem::path> commands;
};

// Strict: every key but "commands" is required, unknown keys are errors. Throws
// Error(kInvalidArgument) "<file>: <key path>: <problem>".
Manifest parse_manifest(std::string_view json, const std::filesystem::path& file);
// Reads and parses a manifest file; errors name it.
Manifest read_manifest(const std::filesystem::path& file);

// "stowage-s3.json" -> "s3"; empty when the name has another form.
std::string plugin_name_from_manifest_file(const std::filesystem::path& file);

}  // namespace stowage::host
