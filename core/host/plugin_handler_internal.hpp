// PluginHandler: an IOHandler over one handler of a loaded plugin, speaking
// the C ABI. Every load is validated (weight bytes against the specs) before
// it returns; failures the plugin marks retryable are retried under the
// host's retry policy.
// Thread-safety: as IOHandler (calls into a plugin that declared
// STOWAGE_CAP_SINGLE_THREADED are serialised); set_retry_policy only before
// the handler is shared. Ownership: holds its plugin; the plugin's handler is
// closed by the destructor.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "host_api_internal.hpp"
#include "model_stream_internal.hpp"
#include "plugin_loader_internal.hpp"
#include "retry_internal.hpp"
#include "stowage/handler.hpp"

namespace stowage::host {

// The bytes fixed-size specs need; nullopt when one of them is a string
// weight (its size is in its bytes: the consumer checks those) or the sum
// overflows.
std::optional<uint64_t> fixed_need(const std::vector<WeightSpec>& specs);

class PluginHandler final : public IOHandler {
 public:
  // Opens a handler of `plugin` for url with options (a JSON object text).
  // Throws the plugin's error.
  PluginHandler(std::shared_ptr<const LoadedPlugin> plugin, std::string url,
                std::string_view options_json, RetryPolicy policy = {});
  ~PluginHandler() override;
  PluginHandler(const PluginHandler&) = delete;
  PluginHandler& operator=(const PluginHandler&) = delete;

  const std::string& url() const override { return url_; }
  // The bits of the URL's scheme, not the plugin's union.
  bool can_save() const override { return has(STOWAGE_CAP_SAVE); }
  bool can_load() const override { return has(STOWAGE_CAP_LOAD); }
  bool can_list() const override { return has(STOWAGE_CAP_LIST); }
  bool can_remove() const override { return has(STOWAGE_CAP_REMOVE); }
  bool can_stat() const override { return has(STOWAGE_CAP_STAT); }

  SaveResult save(const ModelArtifacts& artifacts, const CallContext& call = {}) override;
  ModelArtifacts load(const CallContext& call = {}) override;
  std::vector<ListedModel> list(const CallContext& call = {}) override;
  ModelArtifactsInfo remove(const CallContext& call = {}) override;
  ModelStat stat(const CallContext& call = {}) override;

  // ABI 1.1 streaming. save_streaming gives the plugin the pull form of
  // its artifacts: `meta` holds the JSON fields and flat weight specs (no
  // weight data), weight_bytes the exact total, and the buffers come from
  // stream in order (`source` names where they come from in errors). Only
  // for a plugin that can_stream_save(); never retried (the stream is
  // consumed once).
  bool can_stream_save() const { return has(STOWAGE_CAP_STREAMING_SAVE); }
  SaveResult save_streaming(const ModelArtifacts& meta, uint64_t weight_bytes, ModelStream& stream,
                            const std::string& source, const CallContext& call = {});
  // Runs the plugin's load into stream: its JSON and buffers go there as
  // they come (through sink_put_buffer for STREAMING_LOAD plugins, else
  // sink_add_buffer), then stream.finish() once the load succeeded and the
  // buffer sizes match the weight specs (when the specs fix them). Retried
  // only while nothing reached the stream. Throws the load's error; the
  // caller then fails the stream.
  void load_into(ModelStream& stream, const CallContext& call = {});

  const std::shared_ptr<const LoadedPlugin>& plugin() const noexcept { return plugin_; }
  const std::string& scheme() const noexcept { return scheme_; }
  uint64_t capabilities() const noexcept { return capabilities_; }
  void set_retry_policy(const RetryPolicy& policy) { policy_ = policy; }

 private:
  bool has(uint64_t bit) const noexcept { return (capabilities_ & bit) != 0; }
  // Error(kUnimplemented) naming the scheme, for an operation the plugin
  // serves to other schemes but not to this URL's. (An operation the whole
  // plugin lacks fails with IOHandler's TF.js wording.)
  [[noreturn]] void unsupported(const char* op) const;

  template <class Fn>
  std::unique_ptr<stowage_sink> invoke(const char* op, const CallContext& call,
                                       stowage_sink::Kind kind, const RetryPolicy& policy, Fn&& fn);

  std::shared_ptr<const LoadedPlugin> plugin_;
  std::string url_;
  std::string scheme_;
  uint64_t capabilities_ = 0;
  stowage_handler* handle_ = nullptr;
  RetryPolicy policy_;
};

}  // namespace stowage::host
