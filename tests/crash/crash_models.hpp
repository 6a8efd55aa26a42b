// The two models the crash harness saves over each other: the same tensor
// names and sizes, different topology, metadata and bytes, so any mix of the
// two is visible. For tests only.
//
//   stowage::crash::model('A')        the model itself
//   stowage::crash::which(artifacts)  'A', 'B' or nullopt (neither, or a mix)
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "stowage/artifacts.hpp"
#include "stowage/model_json.hpp"

namespace stowage::crash {

// Four tensors of 64 KiB: a save takes measurable time and, with
// kShardSize, spans four shards, while hundreds of trials stay quick.
inline constexpr size_t kTensors = 4;
inline constexpr size_t kFloatsPerTensor = 16 * 1024;
inline constexpr uint64_t kWeightBytes = kTensors * kFloatsPerTensor * 4;
inline constexpr uint64_t kShardSize = 64 * 1024;

inline ModelArtifacts model(char which) {
  ModelArtifacts a;
  a.model_topology = std::string(R"({"class_name":"Sequential","config":{"name":"crash_)") + which +
                     R"(","layers":[]}})";
  a.format = "layers-model";
  a.generated_by = std::string("stowage crash harness, model ") + which;
  a.converted_by = NullableString::null();
  std::vector<WeightSpec> specs;
  for (size_t t = 0; t < kTensors; ++t) {
    specs.push_back(WeightSpec{"dense_" + std::to_string(t) + "/kernel",
                               {static_cast<int64_t>(kFloatsPerTensor)},
                               "float32",
                               {},
                               {}});
  }
  a.weight_specs = std::move(specs);
  // Every float differs between A and B and within a model, so a shard of
  // one model in place of the other's, or at the wrong offset, shows.
  std::vector<float> values(kTensors * kFloatsPerTensor);
  const float base = which == 'A' ? 1.0f : -1.0f;
  for (size_t i = 0; i < values.size(); ++i) values[i] = base * (1.0f + static_cast<float>(i));
  std::vector<uint8_t> bytes(values.size() * 4);
  std::memcpy(bytes.data(), values.data(), bytes.size());
  // Buffers that do not line up with shards, as a model loaded elsewhere has.
  WeightData data;
  constexpr size_t kPiece = 48 * 1024;
  for (size_t at = 0; at < bytes.size(); at += kPiece) {
    data.push_back(Buffer::copy_of({bytes.data() + at, std::min(kPiece, bytes.size() - at)}));
  }
  a.weight_data = std::move(data);
  return a;
}

inline std::string weight_bytes(const ModelArtifacts& a) {
  std::string out;
  if (a.weight_data) {
    for (const Buffer& b : *a.weight_data) out += b.view();
  }
  return out;
}

// 'A' or 'B' when every field and every weight byte of `a` is that model's.
// The weights manifest is left out: its file names are the store's choice
// (the harness compares stored model.json files byte for byte instead).
inline std::optional<char> which(ModelArtifacts a) {
  a.weights_manifest.reset();
  const std::string fields = artifacts_to_json(a);
  const std::string bytes = weight_bytes(a);
  for (char c : {'A', 'B'}) {
    const ModelArtifacts m = model(c);
    if (fields == artifacts_to_json(m) && bytes == weight_bytes(m)) return c;
  }
  return std::nullopt;
}

}  // namespace stowage::crash
