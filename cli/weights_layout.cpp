// Per-tensor byte extents and value statistics for `info` and `verify`.
#include <algorithm>
#include <cmath>
#include <limits>

#include "commands_internal.hpp"

namespace stowage::cli {

std::vector<TensorExtent> tensor_extents(const WeightData& data,
                                         const std::vector<WeightSpec>& specs,
                                         std::string_view source) {
  const uint64_t total = total_size(data);
  std::vector<TensorExtent> extents;
  extents.reserve(specs.size());
  uint64_t offset = 0;
  auto out_of_data = [&](const WeightSpec& spec, uint64_t needed) {
    return Error(ErrorCode::kDataLoss, std::string(source) + ": weight '" + spec.name +
                                           "' needs bytes up to offset " + std::to_string(needed) +
                                           " but the weight data has " + std::to_string(total) +
                                           " bytes");
  };
  for (const WeightSpec& spec : specs) {
    TensorExtent extent{offset, 0};
    if (const std::optional<uint64_t> fixed = fixed_byte_size(spec)) {
      extent.bytes = *fixed;
    } else {
      // A string tensor: each element is a little-endian uint32 length, then
      // that many bytes.
      const uint64_t count = spec.element_count();
      uint64_t pos = offset;
      for (uint64_t i = 0; i < count; ++i) {
        if (total - pos < 4) throw out_of_data(spec, pos + 4);
        uint8_t prefix[4];
        copy_bytes(data, pos, 4, prefix);
        const uint64_t length = uint64_t(prefix[0]) | uint64_t(prefix[1]) << 8 |
                                uint64_t(prefix[2]) << 16 | uint64_t(prefix[3]) << 24;
        pos += 4;
        if (total - pos < length) throw out_of_data(spec, pos + length);
        pos += length;
      }
      extent.bytes = pos - offset;
    }
    if (total - offset < extent.bytes) throw out_of_data(spec, offset + extent.bytes);
    offset += extent.bytes;
    extents.push_back(extent);
  }
  return extents;
}

namespace {

template <typename Values>
TensorStats stats_of(const Values& values) {
  TensorStats stats;
  stats.numeric = true;
  double sum = 0;
  stats.min = std::numeric_limits<double>::infinity();
  stats.max = -std::numeric_limits<double>::infinity();
  for (const auto raw : values) {
    const double v = static_cast<double>(raw);
    if (std::isnan(v)) {
      ++stats.nan_count;
      continue;
    }
    ++stats.count;
    stats.min = std::min(stats.min, v);
    stats.max = std::max(stats.max, v);
    sum += v;
  }
  if (stats.count == 0) {
    stats.min = stats.max = stats.mean = std::numeric_limits<double>::quiet_NaN();
  } else {
    stats.mean = sum / static_cast<double>(stats.count);
  }
  return stats;
}

}  // namespace

TensorStats tensor_stats(const Tensor& tensor) {
  switch (tensor.dtype) {
    case DType::kFloat32:
    case DType::kComplex64:
      return stats_of(tensor.floats);
    case DType::kInt32:
      return stats_of(tensor.ints);
    case DType::kBool:
      return stats_of(tensor.bools);
    case DType::kString:
      break;
  }
  return TensorStats{};
}

}  // namespace stowage::cli
