#include "stowage/sharding.hpp"

#include <algorithm>

#include "stowage/digest.hpp"
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

namespace {
constexpr size_t kNameLengths[] = {16, 32, 64};
}  // namespace

std::vector<std::string> content_addressed_names(
    const std::vector<std::string>& digests,
    const std::function<bool(const std::string& name, const std::string& digest)>& taken) {
  std::vector<std::string> names;
  names.reserve(digests.size());
  for (const std::string& d : digests) {
    if (!is_sha256_hex(d)) {
      throw Error(ErrorCode::kInternal, "content_addressed_names: not a SHA-256 digest: " + d);
    }
    for (size_t length : kNameLengths) {
      const std::string_view prefix = std::string_view(d).substr(0, length);
      const bool shared = std::any_of(digests.begin(), digests.end(), [&](const std::string& o) {
        return o != d && std::string_view(o).substr(0, length) == prefix;
      });
      std::string name = std::string(prefix) + ".bin";
      // The full digest is the name of last resort: a file already there
      // under it with other bytes is damaged, and the save replaces it.
      if (length == kSha256HexSize || (!shared && !(taken && taken(name, d)))) {
        names.push_back(std::move(name));
        break;
      }
    }
  }
  return names;
}

std::string_view content_address_prefix(std::string_view name) {
  if (name.size() < 4 || name.substr(name.size() - 4) != ".bin") return {};
  const std::string_view hex = name.substr(0, name.size() - 4);
  if (std::find(std::begin(kNameLengths), std::end(kNameLengths), hex.size()) ==
      std::end(kNameLengths)) {
    return {};
  }
  for (char c : hex) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return {};
  }
  return hex;
}

}  // namespace stowage
