// ABI negotiation probes. The shim library (shim.c) wraps the plugin's own
// descriptor and hands the registry a changed copy: a table clamped to the
// ABI 1.0 sizes of an older minor, or one claiming another major. A probe
// runs in a child process of the runner, so the plugin's entry function is
// still called once per process; the registry of the child loads the shim
// exactly as it loads any plugin.
// The same shim, as a decoy, claims the plugin's scheme to test collisions.
// Thread-safety: main thread only.
#pragma once

#include <filesystem>
#include <string>

#include "conformance_internal.hpp"

namespace stowage::conformance {

inline constexpr const char* kProbeFlag = "--negotiation-probe";
inline constexpr const char* kProbeOlderMinor = "older-minor";
inline constexpr const char* kProbeOtherMajor = "other-major";

// The child's side: prints what happened, returns its exit code.
int run_probe(const Target& t, const std::string& mode);

struct ProbeResult {
  int exit_code = -1;
  std::string output;
};
// The parent's side: runs this executable again with the probe flag.
ProbeResult spawn_probe(const Target& t, const std::string& mode);

// The library file behind --plugin (read from the manifest when it is one).
std::filesystem::path plugin_library(const Target& t);

// Writes a copy of the shim into folder as a decoy plugin serving `scheme`,
// with its manifest; returns the manifest's path.
std::filesystem::path make_decoy(const Target& t, const std::filesystem::path& folder,
                                 const std::string& scheme);

}  // namespace stowage::conformance
