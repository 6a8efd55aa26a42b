// Weight bytes (spec §2): decoding every dtype to typed tensors, quantized
// storage included; encoding tensors back; checking that a model's weight
// bytes are exactly what its specs require.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "stowage/artifacts.hpp"
#include "stowage/buffer.hpp"
#include "stowage/error.hpp"

namespace stowage {

enum class DType { kFloat32, kInt32, kBool, kString, kComplex64 };

std::optional<DType> parse_dtype(std::string_view name) noexcept;
std::string_view dtype_name(DType dtype) noexcept;

// A decoded tensor. Exactly one of the value vectors is used, chosen by dtype:
// float32 -> floats; complex64 -> floats (real, imaginary interleaved);
// int32 -> ints; bool -> bools (raw byte values, as TF.js keeps them);
// string -> strings (raw bytes, UTF-8 for strings made in JS).
struct Tensor {
  std::string name;
  DType dtype = DType::kFloat32;
  std::vector<int64_t> shape;
  std::vector<float> floats;
  std::vector<int32_t> ints;
  std::vector<uint8_t> bools;
  std::vector<std::string> strings;

  uint64_t element_count() const;
};

// Bytes one stored tensor takes, from the spec alone; nullopt for strings
// (their size depends on the data). Throws for unknown dtypes.
std::optional<uint64_t> fixed_byte_size(const WeightSpec& spec);

// decodeWeights: decodes `specs` from the concatenation of `data`, in order.
// Tensors may span buffer boundaries. Throws Error(kInvalidArgument) for an
// unsupported dtype or quantization (TF.js's messages) and Error(kDataLoss)
// when the bytes run out.
std::vector<Tensor> decode_weights(const WeightData& data, const std::vector<WeightSpec>& specs);

struct EncodedWeights {
  std::vector<uint8_t> data;
  std::vector<WeightSpec> specs;
};
// encodeWeights: never quantizes; specs are {name, shape, dtype[, group]}.
EncodedWeights encode_weights(const std::vector<Tensor>& tensors,
                              const std::optional<std::string>& group = std::nullopt);

// IEEE binary16 -> binary32, exact (spec §2.4.2).
float float16_to_float32(uint16_t half) noexcept;

// The check every load runs before decoding: for each weight group (the
// concatenation of its shards, or the whole data when there is no
// manifest), the stored bytes must equal what its specs require. Throws
// Error(kDataLoss) naming `source`, the group, each shard with its file or
// URL and size, and the expected and actual byte counts; Error
// (kInvalidArgument) for specs that cannot be sized (unknown dtype, negative
// or overflowing shape).
void validate_weight_bytes(const ModelArtifacts& artifacts, std::string_view source);

// The check every load runs after validate_weight_bytes (docs/integrity.md):
// each weight file of a manifest group that records "sha256" must hash to
// its digest. All files are hashed at once on every core, split among the
// threads by bytes (largest first), so an mmap'd file faults in while it is
// hashed. Returns how many files were checked (0 when no digest is
// recorded). Throws Error(kDataLoss) for the first differing file in
// manifest order, naming `source`, the group, the file's position, path,
// buffer label and size, and both digests; Error(kInternal) when digests
// are recorded but the weight data is not one buffer per manifest path (the
// loader broke its contract, and the bytes cannot be matched to files).
// Thread-safety: reentrant; reads `artifacts` only (from several threads).
size_t verify_weight_digests(const ModelArtifacts& artifacts, std::string_view source);
// The same, except for the files a loader has already checked: `checked`
// maps a buffer index (manifest path order) to the digest the loader
// hashed that buffer's bytes against (abi.h sink_mark_verified), and a
// file whose recorded digest is exactly that one is not hashed again. A
// file with any other entry, or none, is hashed. Returns the same count.
size_t verify_weight_digests(const ModelArtifacts& artifacts, std::string_view source,
                             const std::map<uint64_t, std::string>& checked);

// How many weight files `manifest` records a digest for.
size_t recorded_digest_count(const std::vector<WeightGroup>& manifest) noexcept;

// The Error(kDataLoss) of verify_weight_digests for file `file` of group
// `group` (both 0-based, in range) of `manifest`, whose bytes `buffer` hash
// to `actual`; for checks that hash each buffer as it arrives.
Error weight_digest_mismatch(std::string_view source, const std::vector<WeightGroup>& manifest,
                             size_t group, size_t file, const Buffer& buffer,
                             std::string_view actual);

}  // namespace stowage
