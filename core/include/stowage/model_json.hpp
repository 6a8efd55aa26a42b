// model.json (spec §1.4, §1.7, §1.8): reading what TF.js and the Python
// converter write, and writing what TF.js writes, byte for byte.
#pragma once

#include <string>
#include <string_view>

#include "stowage/artifacts.hpp"

namespace stowage {

// Key orders of the writers TF.js has (spec §11 item 2).
enum class ModelJsonLayout {
  // tfjs-node file://: modelTopology, weightsManifest, format, generatedBy,
  // convertedBy, trainingConfig, signature, userDefinedMetadata; then
  // modelInitializer and initializerSignature, which tfjs-node drops (bug B2).
  kTfjsNode,
  // http and downloads (getModelJSONForModelArtifacts): modelTopology,
  // format, generatedBy, convertedBy, weightsManifest, signature,
  // userDefinedMetadata, modelInitializer, initializerSignature,
  // trainingConfig.
  kTfjsHttp,
};

// Parses a model.json (compact TF.js form or the converter's json.dump form,
// NaN/Infinity tokens included) or the artifacts JSON of the plugin ABI.
// Sets weights_manifest and the flattened weight_specs when "weightsManifest"
// is present, or weight_specs alone when only "weightSpecs" is. Leaves
// weight_data empty. Unknown top-level keys are ignored, as TF.js does.
// Throws Error(kInvalidArgument) naming `source` and the offending key.
ModelArtifacts parse_model_json(std::string_view text, std::string_view source);

// Writes model.json for `artifacts` with the given manifest.
std::string write_model_json(const ModelArtifacts& artifacts, const WeightsManifest& manifest,
                             ModelJsonLayout layout);

// The artifacts JSON handed to a plugin's save (abi.h stowage_artifacts):
// every field but the weight bytes, in TF.js artifact key order, with the
// flat "weightSpecs".
std::string artifacts_to_json(const ModelArtifacts& artifacts);

// JSON.stringify of a weights-spec list or a manifest (compact TF.js form).
std::string specs_to_json(const std::vector<WeightSpec>& specs);
std::string manifest_to_json(const WeightsManifest& manifest);

namespace json {
// ECMAScript Number::toString: shortest round trip, 1e+21, 1e-7, -0 as 0,
// NaN and infinities as null (spec §1.8).
std::string number(double value);
// A JSON string literal as JSON.stringify writes it (quotes included).
std::string quote(std::string_view utf8);
// Re-emits any JSON text in JSON.stringify form (for values from the
// Python converter or a user). Throws Error(kInvalidArgument) naming source.
std::string normalize(std::string_view text, std::string_view source);
}  // namespace json

}  // namespace stowage
