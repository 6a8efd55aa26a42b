// Fuzzes weight decoding (core/format/weights.cpp). An input is a model.json
// (or artifacts JSON with "weightSpecs"), a NUL byte, one control byte and
// the weight bytes; the control byte cuts the bytes into shards so tensors
// span buffer boundaries. Checks: the size check every load runs agrees
// with decoding (bytes accepted => every tensor decodes); decoded tensors
// have the shapes and element counts of their specs; unquantized tensors
// encode back to the bytes they came from and decode again to themselves.
//
//   build-fuzz/bin/fuzz/weights_fuzzer fuzz/corpus/weights

#include <cstring>
#include <string>
#include <vector>

#include "fuzz_util.hpp"
#include "stowage/error.hpp"
#include "stowage/model_json.hpp"
#include "stowage/weights.hpp"

namespace {

using stowage::Buffer;
using stowage::DType;
using stowage::Tensor;
using stowage::WeightData;
using stowage::WeightSpec;

// Bit patterns, so NaNs compare equal to themselves.
bool same_floats(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

bool same_tensor(const Tensor& a, const Tensor& b) {
  if (a.name != b.name || a.dtype != b.dtype || a.shape != b.shape) return false;
  if (!same_floats(a.floats, b.floats) || a.ints != b.ints || a.strings != b.strings) return false;
  if (a.bools.size() != b.bools.size()) return false;
  // TF.js keeps a bool's raw byte; encoding writes 0 or 1.
  for (size_t i = 0; i < a.bools.size(); ++i) {
    if ((a.bools[i] != 0) != (b.bools[i] != 0)) return false;
  }
  return true;
}

WeightData shard(std::string_view bytes, uint8_t control) {
  WeightData data;
  const size_t step = control & 0x80 ? (control & 0x0f) + 1u : bytes.size() + 1;
  for (size_t at = 0; at < bytes.size(); at += step) {
    data.push_back(Buffer::from_string(std::string(bytes.substr(at, step)), "shard"));
    if (control & 0x40) data.push_back(Buffer{});  // empty shards are legal
  }
  return data;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* raw, size_t size) {
  std::string_view rest = stowage::fuzz::as_text(raw, size);
  const std::string_view json = stowage::fuzz::take_until(rest, std::string_view("\0", 1));
  uint8_t control = 0;
  if (!rest.empty()) {
    control = static_cast<uint8_t>(rest.front());
    rest.remove_prefix(1);
  }

  std::vector<WeightSpec> specs;
  try {
    stowage::ModelArtifacts parsed = stowage::parse_model_json(json, "model.json");
    if (!parsed.weight_specs) return 0;
    specs = std::move(*parsed.weight_specs);
  } catch (const stowage::Error&) {
    return 0;
  }
  const WeightData data = shard(rest, control);
  FUZZ_CHECK(stowage::total_size(data) == rest.size(), "sharding keeps every byte");

  stowage::ModelArtifacts artifacts;
  artifacts.weight_specs = specs;
  artifacts.weight_data = data;
  bool sizes_ok = true;
  try {
    stowage::validate_weight_bytes(artifacts, "fuzz");
  } catch (const stowage::Error&) {
    sizes_ok = false;
  }

  std::vector<Tensor> tensors;
  try {
    tensors = stowage::decode_weights(data, specs);
  } catch (const stowage::Error& e) {
    if (sizes_ok) std::fprintf(stderr, "decode: %s\n", e.what());
    FUZZ_CHECK(!sizes_ok, "bytes that pass the size check must decode");
    return 0;
  }

  FUZZ_CHECK(tensors.size() == specs.size(), "one tensor per spec");
  bool quantized = false;
  for (size_t i = 0; i < specs.size(); ++i) {
    const Tensor& t = tensors[i];
    FUZZ_CHECK(t.name == specs[i].name && t.shape == specs[i].shape, "tensor keeps its spec");
    FUZZ_CHECK(stowage::dtype_name(t.dtype) == specs[i].dtype, "tensor keeps its dtype");
    quantized = quantized || specs[i].quantization.has_value();
    const uint64_t n = specs[i].element_count();
    switch (t.dtype) {
      case DType::kFloat32:
        FUZZ_CHECK(t.floats.size() == n, "float32 element count");
        break;
      case DType::kComplex64:
        FUZZ_CHECK(t.floats.size() == 2 * n, "complex64 element count");
        break;
      case DType::kInt32:
        FUZZ_CHECK(t.ints.size() == n, "int32 element count");
        break;
      case DType::kBool:
        FUZZ_CHECK(t.bools.size() == n, "bool element count");
        break;
      case DType::kString:
        FUZZ_CHECK(t.strings.size() == n, "string element count");
        break;
    }
  }
  if (quantized) return 0;

  const stowage::EncodedWeights encoded = stowage::encode_weights(tensors);
  FUZZ_CHECK(encoded.data.size() <= rest.size(), "encoding takes no more bytes than decoding read");
  if (sizes_ok) FUZZ_CHECK(encoded.data.size() == rest.size(), "the size check counts every byte");
  WeightData again_data{Buffer::copy_of(encoded.data)};
  const std::vector<Tensor> again = stowage::decode_weights(again_data, encoded.specs);
  FUZZ_CHECK(again.size() == tensors.size(), "re-decoding gives every tensor");
  for (size_t i = 0; i < again.size(); ++i) {
    FUZZ_CHECK(same_tensor(again[i], tensors[i]), "encode then decode gives the same tensor");
  }
  return 0;
}
