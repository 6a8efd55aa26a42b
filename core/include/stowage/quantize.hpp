// Weight quantization on save, as the Python converter does it
// (tensorflowjs_converter --quantize_uint8 / --quantize_uint16 /
// --quantize_float16; spec §2.4.3): the same stored bytes, the same `min` and
// `scale` (float64, nudged so that 0 is exact) and `original_dtype`, for
// float32 weights only. docs/quantization.md says what is quantized, how, the
// error bounds and where stowage differs from the converter.
//
// Thread-safety: every function here is pure; call from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "stowage/artifacts.hpp"

namespace stowage {

// The storage type (quantization.dtype in the manifest).
enum class QuantizeDType { kUint8, kUint16, kFloat16 };

// "uint8", "uint16", "float16"; nullopt for anything else.
std::optional<QuantizeDType> parse_quantize_dtype(std::string_view name) noexcept;
std::string_view quantize_dtype_name(QuantizeDType dtype) noexcept;

// Which NumPy the converter ran under. The converter computes
// round((clip(x, min, max) - min) / scale) with float64 scalars and a float32
// array: NumPy 2 does that in float64, NumPy 1 (value-based casting) in
// float32, so some stored values differ by one step between the two.
enum class ConverterNumpy {
  kNumpy2,  // NumPy >= 2 (a fresh `pip install tensorflowjs` today)
  kNumpy1,  // NumPy 1.x (TensorFlow <= 2.17 environments)
};

// One --quantize_<dtype> flag of the converter.
struct QuantizeRule {
  QuantizeDType dtype = QuantizeDType::kUint8;
  // Weight-name patterns with Python fnmatch semantics (`*`, `?`, `[seq]`,
  // `[!seq]`; case-sensitive; `*` crosses `/`), i.e. the flag's value split
  // at commas. Empty: every weight that no other rule names (the flag given
  // without names). At most one rule may be empty.
  std::vector<std::string> patterns;
};

struct QuantizeOptions {
  std::vector<QuantizeRule> rules;
  ConverterNumpy numpy = ConverterNumpy::kNumpy2;
};

// The stored bytes of one tensor and its manifest metadata.
struct QuantizedTensor {
  std::vector<uint8_t> bytes;  // little-endian storage values
  Quantization quantization;   // dtype, min and scale (affine only), original_dtype "float32"
  uint64_t overflowed = 0;     // float16: finite values that became +-Infinity
};

// The converter's quantize_weights for float32 values. Throws
// Error(kInvalidArgument) naming `name` when uint8/uint16 cannot give a model
// TF.js loads: a NaN or infinite value (the converter would write NaN or
// Infinity into min/scale), no values at all (the converter raises), or, under
// kNumpy1, float32 arithmetic that overflows or divides by zero (the
// converter's stored values would be undefined). float16 never throws: it
// rounds to nearest even and overflows to infinity, as NumPy's cast does.
QuantizedTensor quantize_tensor(std::span<const float> values, QuantizeDType dtype,
                                ConverterNumpy numpy = ConverterNumpy::kNumpy2,
                                std::string_view name = {});

// IEEE binary32 -> binary16, round to nearest even, overflow to infinity, NaN
// payload truncated to its top 10 bits and kept a NaN (NumPy's conversion).
uint16_t float32_to_float16(float value) noexcept;

// Python's fnmatch.fnmatchcase(name, pattern) over Unicode code points (names
// and patterns are UTF-8; an invalid byte stands for itself).
bool weight_name_matches(std::string_view pattern, std::string_view name);

// What quantize_artifacts did with each weight, in manifest order.
struct QuantizeReport {
  enum class Action {
    kQuantized,    // stored as `to`
    kNotSelected,  // no rule names it: unchanged
    kNotFloat32,   // selected, but int32/bool/string/complex64: unchanged (as the converter)
    kEmpty,        // selected uint8/uint16 with no values: unchanged (the converter raises)
  };
  struct Weight {
    std::string name;
    std::string dtype;  // the spec's dtype
    Action action = Action::kNotSelected;
    std::optional<QuantizeDType> to;
    std::optional<std::string> was;  // quantization.dtype before, when it was stored quantized
    uint64_t bytes_before = 0;
    uint64_t bytes_after = 0;
    uint64_t overflowed = 0;  // float16: finite values that became +-Infinity
  };
  std::vector<Weight> weights;
  // Patterns that matched no weight name (the converter ignores them silently).
  std::vector<std::string> unmatched_patterns;
  uint64_t bytes_before = 0;
  uint64_t bytes_after = 0;

  size_t quantized_count() const;
};

// Quantizes the float32 weights of `artifacts` that the rules select, in
// place: weight_specs get their `quantization`, weight_data becomes the new
// bytes (weights left alone are shared with the old buffers, not copied) and
// weights_manifest is dropped (its paths describe the old bytes; a save lays
// the new ones out). A weight stored quantized is decoded as TF.js decodes it
// and quantized again. Throws Error(kInvalidArgument) for conflicting rules
// (two dtypes naming one weight, two catch-alls, a rule with an empty
// pattern) and for weights quantize_tensor refuses; Error(kDataLoss) when the
// weight data is shorter than the specs need. Nothing is changed when it
// throws.
QuantizeReport quantize_artifacts(ModelArtifacts& artifacts, const QuantizeOptions& options);

}  // namespace stowage
