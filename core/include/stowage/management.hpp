// Model management across schemes (spec §5), with TF.js's errors, and a move
// that never loses its source (TF.js bug B4).
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "stowage/handler.hpp"
#include "stowage/registry.hpp"

namespace stowage {

struct TransferOptions {
  std::string source_options = "{}";       // options JSON for the source handler
  std::string destination_options = "{}";  // e.g. {"shard_size": 4194304}
  CallContext call;                        // progress covers load then save
  // Applied to the loaded model before it is saved; a move then checks the
  // copy against the transformed model. E.g. quantization (quantize.hpp):
  //   options.transform = [q](ModelArtifacts& a) { quantize_artifacts(a, q); };
  // An exception it throws ends the transfer before anything is written.
  std::function<void(ModelArtifacts&)> transform;
};

// Convenience wrappers over registry.open(url, options)->load()/save().
// load_model validates every weight group's size before returning.
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

std::vector<ListedModel> list_models(std::string_view url, Registry& registry = Registry::global());
ModelArtifactsInfo remove_model(std::string_view url, Registry& registry = Registry::global());

// Loads src and saves it to dst, streaming the loaded buffers (no extra copy
// of the weights). Error(kInvalidArgument) when src == dst.
SaveResult copy_model(std::string_view src, std::string_view dst,
                      const TransferOptions& options = {}, Registry& registry = Registry::global());
// copy_model, then reloads dst and compares it with what was loaded from
// src, and only then removes src.
SaveResult move_model(std::string_view src, std::string_view dst,
                      const TransferOptions& options = {}, Registry& registry = Registry::global());

}  // namespace stowage
