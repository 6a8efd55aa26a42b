// The plugin a fault:// handler wraps: found by name or path, loaded once
// per process with dlopen, and given host services of its own that pass
// everything to the real host but let a call watch the wrapped plugin's
// statuses and rewrite what it hands back (short reads, a cut model JSON).
//
//   const InnerPlugin& p = load_inner("file", real_host);   // or a path
//   CallWatch watch(sink, status);   // for the length of one forwarded call
//   p.ops.load(handle, call, sink, status);
//
// Sinks and statuses stay the host's own objects: the wrapped plugin may
// also be loaded directly by the host (which then gives it the real
// services again), and nothing breaks, the fault hooks just stop seeing its
// calls; CallWatch tells when a hook that was asked for never ran.
//
// Thread-safety: load_inner is serialised; the services may be called from
// any thread. Ownership: inner plugins are never unloaded.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "stowage/abi.h"

namespace stowage::fault {

struct InnerPlugin {
  std::string name;
  std::string library;
  std::vector<std::string> schemes;
  uint64_t capabilities = 0;
  stowage_ops ops{};          // clamped copy, missing tail entries NULL
  mutable std::mutex serial;  // held around every call when single-threaded

  bool serves(const std::string& scheme) const;
};

// `inner` is a plugin name (its manifest stowage-<name>.json in the plugin
// folder beside this plugin's folder, <libdir>/stowage/plugins) or the path
// of a manifest or library. Throws stowage::Error naming what is wrong.
const InnerPlugin& load_inner(const std::string& inner, const stowage_host_api* host);

// What one forwarded call asks of the wrapped services, and what they saw.
struct CallHooks {
  std::optional<uint64_t> short_read;  // bytes cut off buffer `short_buffer`
  uint64_t short_buffer = 0;
  std::optional<uint64_t> truncate_json;  // bytes cut off the first text set
  // Filled in by the services (guarded by the watch's lock).
  uint64_t buffers_seen = 0;
  bool short_read_done = false;
  bool truncate_done = false;
  bool status_seen = false;
  int32_t status_code = STOWAGE_OK;
};

// Routes the wrapped services' calls on `sink` and `status` to `hooks`
// while it lives. The hooks are read back through snapshot().
class CallWatch {
 public:
  CallWatch(stowage_sink* sink, stowage_status* status, CallHooks hooks);
  ~CallWatch();
  CallWatch(const CallWatch&) = delete;
  CallWatch& operator=(const CallWatch&) = delete;

  CallHooks snapshot() const;

 private:
  stowage_sink* sink_;
  stowage_status* status_;
};

}  // namespace stowage::fault
