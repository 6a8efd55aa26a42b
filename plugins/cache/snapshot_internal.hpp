// One cached model (models/<key>.json, docs/cache.md): the artifacts JSON
// exactly as the inner load gave it, the inner store's version token, when
// it was fetched and last validated, and the blob of every weight buffer.
//
// Thread-safety: plain values and pure functions. Ownership: values.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#pragma GCC visibility push(hidden)

namespace stowage::cache {

// One weight buffer of the load, in load order.
struct CachedFile {
  std::optional<std::string> path;  // the manifest path; none for flat weight data
  uint64_t size = 0;
  std::string sha256;  // 64 lowercase hex digits: the blob's name
};

struct Snapshot {
  std::string url;      // the normalised inner URL (normalise_url): no secrets
  std::string version;  // the inner stat's token; "" when the scheme has no stat
  std::chrono::system_clock::time_point fetched_at;
  std::chrono::system_clock::time_point validated_at;
  std::string artifacts_json;   // as the inner load set it
  bool has_weight_data = true;  // false: a topology-only model (no weightData at all)
  std::vector<CachedFile> files;
};

std::string snapshot_to_json(const Snapshot& snapshot);
// Throws Error(kDataLoss) naming `source` when the text is not a snapshot
// of this layout.
Snapshot snapshot_from_json(std::string_view text, std::string_view source);

}  // namespace stowage::cache

#pragma GCC visibility pop
