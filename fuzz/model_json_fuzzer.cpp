// Fuzzes model.json reading (core/format/model_json.cpp): any text that
// parses must write back in both TF.js layouts and parse again to the same
// model (written bytes stable after one round), and the plugin ABI's
// artifacts JSON must round-trip too. Also checks json::normalize is
// idempotent. Only stowage::Error may escape a parse.
//
//   build-fuzz/bin/fuzz/model_json_fuzzer fuzz/corpus/model_json

#include <string>

#include "fuzz_util.hpp"
#include "stowage/error.hpp"
#include "stowage/model_json.hpp"

namespace {

using stowage::ModelArtifacts;
using stowage::ModelJsonLayout;

std::string write(const ModelArtifacts& a, ModelJsonLayout layout) {
  return stowage::write_model_json(a, a.weights_manifest.value_or(stowage::WeightsManifest{}),
                                   layout);
}

void check_layout(const ModelArtifacts& a, ModelJsonLayout layout) {
  const std::string first = write(a, layout);
  ModelArtifacts again;
  try {
    again = stowage::parse_model_json(first, "written model.json");
  } catch (const stowage::Error& e) {
    std::fprintf(stderr, "rereading failed: %s\n%s\n", e.what(), first.c_str());
    FUZZ_CHECK(false, "a written model.json must parse");
  }
  FUZZ_CHECK(write(again, layout) == first, "model.json must write back byte for byte");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text = stowage::fuzz::as_text(data, size);

  try {
    const std::string normal = stowage::json::normalize(text, "input");
    FUZZ_CHECK(stowage::json::normalize(normal, "normalized") == normal,
               "json::normalize must be idempotent");
  } catch (const stowage::Error&) {
  }

  ModelArtifacts a;
  try {
    a = stowage::parse_model_json(text, "model.json");
  } catch (const stowage::Error&) {
    return 0;
  }
  FUZZ_CHECK(!a.weight_data, "parsing never sets weight bytes");
  if (a.weights_manifest) {
    FUZZ_CHECK(a.weight_specs.has_value(), "a manifest always comes with its flat specs");
    FUZZ_CHECK(stowage::specs_to_json(*a.weight_specs) ==
                   stowage::specs_to_json(stowage::flatten_specs(*a.weights_manifest)),
               "the flat specs are the manifest's weights");
  }
  check_layout(a, ModelJsonLayout::kTfjsNode);
  check_layout(a, ModelJsonLayout::kTfjsHttp);

  const std::string abi = stowage::artifacts_to_json(a);
  ModelArtifacts from_abi;
  try {
    from_abi = stowage::parse_model_json(abi, "artifacts JSON");
  } catch (const stowage::Error& e) {
    std::fprintf(stderr, "rereading failed: %s\n%s\n", e.what(), abi.c_str());
    FUZZ_CHECK(false, "the artifacts JSON must parse");
  }
  FUZZ_CHECK(stowage::artifacts_to_json(from_abi) == abi, "the artifacts JSON must round-trip");
  return 0;
}
