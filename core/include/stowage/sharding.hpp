// Cutting weight bytes into files on save (spec §2.6).
#pragma once

#include <cstdint>
#include <string>
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

}  // namespace stowage
