// Cutting weight bytes into files on save (spec §2.6).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace stowage {

// The Python converter's default shard size: 4 MiB.
inline constexpr uint64_t kConverterShardSize = 4ull * 1024 * 1024;

struct ShardPlan {
  std::string path;  // file name as written in the manifest
  uint64_t offset;   // into the group's bytes
  uint64_t size;
};

// shard_size == 0: one file named `single_name` (tfjs-node's "weights.bin"),
// or no file at all when total is 0. Otherwise the converter's layout:
// group{group}-shard{i}of{n}.bin, ceil(total / shard_size) files, none for 0.
std::vector<ShardPlan> plan_shards(uint64_t total, uint64_t shard_size,
                                   const std::string& single_name = "weights.bin", int group = 1);

// Content-addressed names (save option shard_names "sha256"): each file is
// "<first 16 hex digits of its digest>.bin", or longer (32, then 64 digits)
// where two different digests of `digests` would share a name or where
// `taken(name)` says the store already holds a file of that name with other
// bytes. Equal digests get equal names (one file serves both).
std::vector<std::string> content_addressed_names(
    const std::vector<std::string>& digests,
    const std::function<bool(const std::string& name, const std::string& digest)>& taken = {});

// The digest a content-addressed name claims to be a prefix of, when `name`
// is one ("<16, 32 or 64 lowercase hex>.bin"); empty otherwise.
std::string_view content_address_prefix(std::string_view name);

}  // namespace stowage
