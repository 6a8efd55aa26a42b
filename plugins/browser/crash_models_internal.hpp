// The two models browser_crash_helper saves over each other: the same
// tensor names and sizes, different topology and bytes, so any mix of the
// two is visible. For tests only.
#pragma once

#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "stowage/artifacts.hpp"

namespace stowage::crash {

inline constexpr size_t kFloats = 1 << 20;  // 4 MiB of weights in two tensors

inline ModelArtifacts model(char which) {
  ModelArtifacts a;
  a.model_topology = std::string("{\"version\":\"") + which + "\"}";
  a.format = "layers-model";
  a.weight_specs = std::vector<WeightSpec>{
      WeightSpec{"w1", {static_cast<int64_t>(kFloats / 2)}, "float32", {}, {}},
      WeightSpec{"w2", {static_cast<int64_t>(kFloats / 2)}, "float32", {}, {}}};
  std::vector<float> values(kFloats, which == 'A' ? 1.0f : 2.0f);
  std::vector<uint8_t> bytes(kFloats * 4);
  std::memcpy(bytes.data(), values.data(), bytes.size());
  // Several buffers, as a model loaded from shards hands them over.
  WeightData data;
  for (size_t at = 0; at < bytes.size(); at += 1 << 20) {
    data.push_back(Buffer::copy_of({bytes.data() + at, 1 << 20}));
  }
  a.weight_data = std::move(data);
  return a;
}

// 'A' or 'B' when `a` is exactly one of the two models, else nullopt.
inline std::optional<char> which(const ModelArtifacts& a) {
  for (char c : {'A', 'B'}) {
    const ModelArtifacts m = model(c);
    if (a.model_topology != m.model_topology || a.weight_specs != m.weight_specs ||
        !a.weight_data) {
      continue;
    }
    std::string got, want;
    for (const Buffer& b : *a.weight_data) got += b.view();
    for (const Buffer& b : *m.weight_data) want += b.view();
    if (got == want) return c;
  }
  return std::nullopt;
}

}  // namespace stowage::crash
