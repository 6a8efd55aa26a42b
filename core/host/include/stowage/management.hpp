// Model management across schemes (spec §5), with TF.js's errors, and a move
// that never loses its source (TF.js bug B4).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "stowage/handler.hpp"
#include "stowage/registry.hpp"

namespace stowage {

// How a copy or move went.
struct TransferStats {
  // True when the weights went from the load to the save through a bounded
  // queue (the destination's plugin takes its weights as a stream), false
  // when the whole model was held in memory first.
  bool streamed = false;
  // The most weight bytes the host held at once while streaming (queued, or
  // handed to the save and not yet released by it); the model's weight
  // bytes when it was not streamed.
  uint64_t peak_queued_bytes = 0;
};

enum class TransferPhase { kLoading, kSaving };

struct TransferOptions {
  std::string source_options = "{}";       // options JSON for the source handler
  std::string destination_options = "{}";  // e.g. {"shard_size": 4194304}
  CallContext call;                        // progress covers load then save
  // Progress of each phase on its own, instead of call.on_progress's one run
  // of bytes: the load's reports as kLoading, the save's as kSaving, each
  // (done, total) as its plugin reports it (a streaming copy runs both at
  // once, the save behind the load). When set, call.on_progress is not used.
  std::function<void(TransferPhase phase, uint64_t done, uint64_t total)> on_phase_progress;
  // Where move reads the copy back from before removing the source, when
  // the destination is not that place (an upload URL); see read_back_target.
  std::string verify_url;
  // Applied to the loaded model before it is saved; a move then checks the
  // copy against the transformed model. E.g. quantization (quantize.hpp):
  //   options.transform = [q](ModelArtifacts& a) { quantize_artifacts(a, q); };
  // An exception it throws ends the transfer before anything is written.
  std::function<void(ModelArtifacts&)> transform;
  // Stream the weights when the destination can (ABI 1.1
  // STOWAGE_CAP_STREAMING_SAVE) and there is no transform; false always
  // holds the whole model in memory first, as ABI 1.0 copies do.
  bool streaming = true;
  // The bytes a streaming copy may hold at once; a single buffer larger
  // than this passes alone.
  uint64_t queue_bytes = 64ull << 20;
  // When not null, receives how the transfer went (also when it fails).
  TransferStats* stats = nullptr;
};

// Where a model saved to dst can be loaded back from, and with which
// options. In order: verify_url when not empty (with dst_options when the
// same plugin serves it, else "{}"); the URL the save's answer names (a
// "modelUrl" member of its responses, as the http plugin reports what an
// upload receiver such as stowage serve says); nullopt when the answer has
// "modelUrl": null (the receiver named nothing, so dst is an upload URL
// that does not load the model); otherwise dst with dst_options. Options
// for another origin than dst's leave out "headers" unless
// "send_headers_to_other_hosts" is true. Throws Error(kInvalidArgument)
// when the answer names a URL another plugin would load.
struct ReadBack {
  std::string url;
  std::string options_json;
};
std::optional<ReadBack> read_back_target(std::string_view dst, std::string_view dst_options,
                                         const SaveResult& saved, std::string_view verify_url = {},
                                         Registry& registry = Registry::global());

// Convenience wrappers over registry.open(url, options)->load()/save().
// load_model validates every weight group's size, and checks every weight
// file against the SHA-256 its model.json records unless
// call.verify_digests is false, before returning.
ModelArtifacts load_model(std::string_view url, std::string_view options_json = "{}",
                          const CallContext& call = {}, Registry& registry = Registry::global());
SaveResult save_model(std::string_view url, const ModelArtifacts& artifacts,
                      std::string_view options_json = "{}", const CallContext& call = {},
                      Registry& registry = Registry::global());

// The same for a host's own handler (TF.js's custom IOHandler passed to
// model.save or loadLayersModel); its loads are validated like a plugin's.
ModelArtifacts load_model(IOHandler& handler, const CallContext& call = {});
SaveResult save_model(IOHandler& handler, const ModelArtifacts& artifacts,
                      const CallContext& call = {});

// Loads a model handing its weight buffers to the caller as they arrive
// (ABI 1.1 streaming loads), so a host can decode tensors while the rest
// downloads: on_artifacts gets the model's JSON fields (weight_data unset,
// weights_manifest as stored) once, then on_buffer gets each weight buffer
// with its index, in index order, on the calling thread. At most
// queue_bytes of buffers wait for on_buffer at once. The buffers' sizes are
// checked against the specs when the load ends (a mismatch then throws
// Error(kDataLoss), after on_buffer saw what came before); a model with
// string weights is checked whole before any buffer is handed over. With
// call.verify_digests, each buffer is checked against its recorded digest
// before on_buffer gets it (a mismatch throws Error(kDataLoss)). An
// exception from a callback stops the load and is rethrown. Plugins without
// streaming loads deliver everything at the end; the callbacks are the same.
// Thread-safety: as load_model; the callbacks run on the calling thread.
void load_model_streaming(std::string_view url, std::string_view options_json,
                          const std::function<void(const ModelArtifacts&)>& on_artifacts,
                          const std::function<void(uint64_t index, const Buffer&)>& on_buffer,
                          const CallContext& call = {}, uint64_t queue_bytes = 64ull << 20,
                          Registry& registry = Registry::global());
// The same for a handler the caller opened (a nested URL's, a host's own).
void load_model_streaming(IOHandler& handler,
                          const std::function<void(const ModelArtifacts&)>& on_artifacts,
                          const std::function<void(uint64_t index, const Buffer&)>& on_buffer,
                          const CallContext& call = {}, uint64_t queue_bytes = 64ull << 20);

std::vector<ListedModel> list_models(std::string_view url, Registry& registry = Registry::global());
// TF.js's listModels() with no URL: the models of every location the host
// lists by default, keyed by URL (scheme://path) in location order; of two
// entries with one URL the later wins. The locations are the config's
// "list_locations", else localstorage://, indexeddb:// and memory://, each
// only when its scheme is served and can list. Throws what a location's
// listing throws, naming it.
std::vector<ListedModel> list_models(Registry& registry = Registry::global());
ModelArtifactsInfo remove_model(std::string_view url, Registry& registry = Registry::global());

// Loads src and saves it to dst. When the destination takes streams (see
// TransferOptions::streaming) the save runs while the load does, holding at
// most queue_bytes of weights; otherwise the loaded buffers go into the
// save without an extra copy. A failed or cancelled copy leaves the
// destination as it was. Error(kInvalidArgument) when src == dst.
SaveResult copy_model(std::string_view src, std::string_view dst,
                      const TransferOptions& options = {}, Registry& registry = Registry::global());
// copy_model, then reloads the copy (from read_back_target) and compares it
// with what was loaded from src, and only then removes src. When the copy
// cannot be read back (an upload URL whose receiver named no model URL, and
// no verify_url), throws Error(kUnimplemented) and keeps src.
SaveResult move_model(std::string_view src, std::string_view dst,
                      const TransferOptions& options = {}, Registry& registry = Registry::global());

}  // namespace stowage
