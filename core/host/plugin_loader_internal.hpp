// Loading plugin libraries: Boost.DLL with rtld_now | rtld_local and exact
// paths, one process-wide lock around every load, SHA-256 pins checked on
// the very bytes that are loaded, every descriptor validated and copied into
// host memory. Libraries are never unloaded.
// Thread-safety: load_plugin may be called from any thread (it serialises
// itself); a LoadedPlugin is immutable apart from its call mutex.
// Ownership: LoadedPlugin objects live as long as anything shares them; the
// library behind them lives for the whole process.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "manifest_internal.hpp"
#include "stowage/abi.h"

namespace stowage::host {

// A plugin library that passed every check, with host-owned copies of its
// descriptor fields and ops table (the plugin's own table is never read
// again).
struct LoadedPlugin {
  std::string name;
  std::string version;
  std::filesystem::path library;
  std::vector<std::string> schemes;
  uint32_t abi_major = 0;
  uint32_t abi_minor = 0;
  // Plugin-wide bits: the union over the schemes.
  uint64_t capabilities = 0;
  // The bits of schemes[i] (ABI 1.1 per-scheme capabilities, or the
  // plugin-wide bits for every scheme of a plugin that has none).
  std::vector<uint64_t> scheme_capabilities;
  // Zero-filled, clamped copy; functions whose capability bit is not
  // declared are left NULL, so the host never calls them.
  stowage_ops ops{};
  // SHA-256 of the bytes that were loaded, when a pin was checked.
  std::optional<std::string> sha256;
  mutable std::mutex call_mutex;

  bool has(uint64_t capability) const noexcept { return (capabilities & capability) != 0; }
  // The bits of one of this plugin's schemes; 0 for a scheme it does not serve.
  uint64_t capabilities_of(std::string_view scheme) const noexcept;
  // "load", "save", "list", "remove", "zero_copy", "atomic_save", "single_threaded",
  // "stat", "streaming_save", "streaming_load" for the plugin-wide bits.
  std::vector<std::string> capability_names() const { return capability_names_of(capabilities); }
  static std::vector<std::string> capability_names_of(uint64_t bits);
  // Held around every call into a plugin that declared
  // STOWAGE_CAP_SINGLE_THREADED; an empty lock for every other plugin.
  std::unique_lock<std::mutex> call_lock() const;
};

// Checks a descriptor returned by the entry function of `library` and copies
// it. Throws Error(kInvalidArgument) naming the file and what is wrong.
std::shared_ptr<LoadedPlugin> adopt_descriptor(const stowage_plugin_desc* desc,
                                               const std::filesystem::path& library);

// Throws Error(kInvalidArgument) naming both files when a plugin's name,
// schemes or ABI major disagree with its manifest.
void check_against_manifest(const LoadedPlugin& plugin, const Manifest& manifest);

struct LoadRequest {
  std::filesystem::path library;
  const Manifest* manifest = nullptr;    // checked against the descriptor when set
  std::vector<std::string> sha256_pins;  // lowercase hex; each one must match
};

// Loads a plugin library, or returns the plugin already loaded from the same
// file (its entry function runs once per process). With pins, the file is
// opened, hashed from the descriptor and loaded as /proc/self/fd/<n>.
// Throws Error naming the file: kNotFound (no such file),
// kPermissionDenied (pin mismatch), kInvalidArgument (not a valid plugin).
// A library that was refused stays refused for the life of the process.
std::shared_ptr<LoadedPlugin> load_plugin(const LoadRequest& request);

// How many times plugin entry functions have been called in this process.
uint64_t entry_function_calls() noexcept;

}  // namespace stowage::host
