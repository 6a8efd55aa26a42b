#include "stowage/sharding.hpp"

#include <algorithm>

#include "stowage/error.hpp"

namespace stowage {

std::vector<ShardPlan> plan_shards(uint64_t total, uint64_t shard_size,
                                   const std::string& single_name, int group) {
  std::vector<ShardPlan> plan;
  if (total == 0) return plan;
  if (shard_size == 0) {
    plan.push_back(ShardPlan{single_name, 0, total});
    return plan;
  }
  const uint64_t count = total / shard_size + (total % shard_size != 0 ? 1 : 0);
  if (count > 1000000) {
    throw Error(ErrorCode::kInvalidArgument, "a shard size of " + std::to_string(shard_size) +
                                                 " bytes would cut " + std::to_string(total) +
                                                 " bytes into " + std::to_string(count) +
                                                 " files; use a larger shard size");
  }
  plan.reserve(static_cast<size_t>(count));
  const std::string prefix = "group" + std::to_string(group) + "-shard";
  const std::string suffix = "of" + std::to_string(count) + ".bin";
  for (uint64_t i = 0; i < count; ++i) {
    const uint64_t offset = i * shard_size;
    plan.push_back(ShardPlan{prefix + std::to_string(i + 1) + suffix, offset,
                             std::min(shard_size, total - offset)});
  }
  return plan;
}

}  // namespace stowage
