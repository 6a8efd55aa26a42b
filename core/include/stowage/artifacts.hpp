// The TF.js data model (spec §1): weight specs, the weights manifest,
// ModelArtifacts, ModelArtifactsInfo, SaveResult, ListedModel and ModelStat.
//
// JSON-valued fields hold compact JSON text exactly as JSON.stringify writes
// it (no whitespace, ECMAScript number form, insertion key order), so they
// can be written back byte for byte. std::nullopt means "absent"; a JSON
// null in those fields is read as absent, as TF.js drops it on every save.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "stowage/buffer.hpp"

namespace stowage {

struct Quantization {
  std::string dtype;  // "uint8", "uint16" or "float16": the storage type
  std::optional<double> scale;
  std::optional<double> min;
  std::optional<std::string> original_dtype;  // written by the Python converter
};

// Declared before WeightSpec, whose defaulted == needs it (clang deletes
// that operator otherwise).
inline bool operator==(const Quantization& a, const Quantization& b) {
  return a.dtype == b.dtype && a.scale == b.scale && a.min == b.min &&
         a.original_dtype == b.original_dtype;
}

// One tensor in the weights manifest (WeightsManifestEntry).
struct WeightSpec {
  std::string name;
  std::vector<int64_t> shape;        // [] is a scalar
  std::string dtype;                 // "float32", "int32", "bool", "string", "complex64"
  std::optional<std::string> group;  // "model" or "optimizer"
  std::optional<Quantization> quantization;

  // Product of shape; 1 for a scalar. Throws Error(kInvalidArgument) on overflow.
  uint64_t element_count() const;
  friend bool operator==(const WeightSpec&, const WeightSpec&) = default;
};

// One group of the manifest: its bytes are the concatenation of the files in
// paths, holding weights back to back.
struct WeightGroup {
  std::vector<std::string> paths;
  std::vector<WeightSpec> weights;
  // stowage's extension (docs/integrity.md): the SHA-256 of each file in
  // paths, same order, 64 lowercase hex digits each; absent when the group
  // records none. TF.js ignores the key.
  std::optional<std::vector<std::string>> sha256 = std::nullopt;
  friend bool operator==(const WeightGroup&, const WeightGroup&) = default;
};
using WeightsManifest = std::vector<WeightGroup>;

// getWeightSpecs: every group's weights, joined in group order.
std::vector<WeightSpec> flatten_specs(const WeightsManifest& manifest);

// A string-valued field that TF.js keeps as absent, null or a string
// (format, generatedBy, convertedBy).
class NullableString {
 public:
  NullableString() = default;
  NullableString(std::string value) : state_(State::kValue), value_(std::move(value)) {}
  NullableString(const char* value) : state_(State::kValue), value_(value) {}
  static NullableString null() {
    NullableString s;
    s.state_ = State::kNull;
    return s;
  }
  bool present() const noexcept { return state_ != State::kAbsent; }
  bool is_null() const noexcept { return state_ == State::kNull; }
  bool has_value() const noexcept { return state_ == State::kValue; }
  const std::string& value() const noexcept { return value_; }
  friend bool operator==(const NullableString&, const NullableString&) = default;

 private:
  enum class State { kAbsent, kNull, kValue };
  State state_ = State::kAbsent;
  std::string value_;
};

// Everything one model is made of. Every field is optional, as in TF.js.
struct ModelArtifacts {
  std::optional<std::string> model_topology;  // JSON text
  NullableString format;
  NullableString generated_by;
  NullableString converted_by;
  std::optional<std::string> training_config;           // JSON text
  std::optional<std::string> user_defined_metadata;     // JSON text
  std::optional<std::string> signature;                 // JSON text
  std::optional<std::string> model_initializer;         // JSON text
  std::optional<std::string> initializer_signature;     // JSON text
  std::optional<std::vector<WeightSpec>> weight_specs;  // the flat list
  std::optional<WeightData> weight_data;                // concatenation = TF.js weightData

  // Set by loaders that read a model.json: the groups and paths behind
  // weight_specs. Then weight_data holds one buffer per path, in manifest
  // order, each labelled with its file or URL.
  std::optional<WeightsManifest> weights_manifest;
};

struct ModelArtifactsInfo {
  std::chrono::system_clock::time_point date_saved;
  std::string model_topology_type = "JSON";
  uint64_t model_topology_bytes = 0;
  uint64_t weight_specs_bytes = 0;
  // Absent when weight_data is an empty list (TF.js quirk, spec §2.6).
  std::optional<uint64_t> weight_data_bytes = 0;
};

struct SaveResult {
  ModelArtifactsInfo model_artifacts_info;
  // JSON text describing the store's answer (http: status and body); absent
  // for stores that have none, as in TF.js.
  std::optional<std::string> responses;
};

// One model a store's list found. Here rather than beside IOHandler::list
// so the plugin kit builds against this library alone.
struct ListedModel {
  std::string url;  // a URL load accepts
  ModelArtifactsInfo info;
};

// What stat() tells about a stored model, without its weight bytes. Here,
// like ListedModel, so the plugin kit builds against this library alone.
struct ModelStat {
  // The model.json fields as load() would give them, weight_data absent.
  ModelArtifacts model;
  // Opaque; equal for two stats of the same stored model, different once the
  // model was replaced (including a weight file rewritten in place where the
  // store can see it). Compare only for equality.
  std::string version;
  // As load() followed by artifacts_info() would give (dateSaved aside).
  ModelArtifactsInfo info;
  // Only for a stat given CallContext::known_version (abi.h, ABI 1.3): the
  // stored model is still the one that token names, so model and info are
  // left empty and the caller keeps its copy; version is the token to keep
  // (the known one, or a newer token of the same stored model).
  bool unchanged = false;
};

// getModelArtifactsInfoForJSON (spec §3): UTF-8 byte counts of the JSON
// text, total weight bytes, dateSaved = now.
ModelArtifactsInfo artifacts_info(
    const ModelArtifacts& artifacts,
    std::chrono::system_clock::time_point now = std::chrono::system_clock::now());

// {"dateSaved":"2024-01-02T03:04:05.678Z","modelTopologyType":"JSON",...}
std::string info_to_json(const ModelArtifactsInfo& info);
// Reads what info_to_json writes (and TF.js's localStorage info records).
ModelArtifactsInfo info_from_json(std::string_view json, std::string_view source);

// "YYYY-MM-DDTHH:mm:ss.sssZ" and back.
std::string iso_date(std::chrono::system_clock::time_point t);
std::chrono::system_clock::time_point parse_iso_date(std::string_view text);

}  // namespace stowage
