// Helpers shared by the tests of the plugin kit and of the plugins: a
// registry over one plugin folder, a scratch folder, a small float32 model
// and the error a call throws. For tests only. Temporary folders and whole
// file reads and writes are test_files.hpp's (tests/support), included here.
#pragma once

#include <doctest/doctest.h>
#include <stdlib.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "stowage/artifacts.hpp"
#include "stowage/error.hpp"
#include "stowage/registry.hpp"
#include "test_files.hpp"

namespace stowage::testing {

// A registry that knows only the plugins in `folder`; lives for the process.
inline Registry* new_registry(const std::filesystem::path& folder) {
  auto* registry = new Registry;
  registry->add_plugin_folder(folder);
  return registry;
}

#ifdef STOWAGE_PLUGIN_BUILD_DIR
// The registry over the plugins this build made (STOWAGE_PLUGIN_BUILD_DIR,
// which stowage_add_test defines); made on first use, lives for the process.
inline Registry& registry() {
  static Registry* r = new_registry(STOWAGE_PLUGIN_BUILD_DIR);
  return *r;
}
#endif

// A folder "<prefix>-XXXXXX" under the temp directory, made on the first call
// with `prefix` and the same one after. Left in place, so that a failed
// test's files can be looked at.
inline std::filesystem::path scratch(const std::string& prefix) {
  static std::map<std::string, std::filesystem::path> made;
  auto it = made.find(prefix);
  if (it == made.end()) it = made.emplace(prefix, new_temp_folder(prefix)).first;
  return it->second;
}

// n values from `start` in steps of 0.5.
inline std::vector<float> ramp(size_t n, float start) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = start + static_cast<float>(i) * 0.5f;
  return v;
}

inline std::vector<uint8_t> float_bytes(const std::vector<float>& values) {
  std::vector<uint8_t> out(values.size() * 4);
  if (!out.empty()) std::memcpy(out.data(), values.data(), out.size());
  return out;
}

// A layers model with one float32 tensor "dense/kernel" holding `values`;
// its weight data is cut into separate buffers at the byte offsets `cuts`.
inline ModelArtifacts float_model(const std::vector<float>& values,
                                  std::vector<uint64_t> cuts = {}) {
  ModelArtifacts a;
  a.model_topology = R"({"class_name":"Sequential","config":{"name":"t","layers":[]}})";
  a.format = "layers-model";
  a.generated_by = "TensorFlow.js tfjs-layers v4.22.0";
  a.converted_by = NullableString::null();
  a.weight_specs = std::vector<WeightSpec>{
      WeightSpec{"dense/kernel", {static_cast<int64_t>(values.size())}, "float32", {}, {}}};
  std::vector<uint8_t> bytes = float_bytes(values);
  WeightData data;
  uint64_t at = 0;
  cuts.push_back(bytes.size());
  for (uint64_t cut : cuts) {
    data.push_back(Buffer::copy_of({bytes.data() + at, static_cast<size_t>(cut - at)}));
    at = cut;
  }
  a.weight_data = std::move(data);
  return a;
}

// The weight bytes, joined.
inline std::string weight_bytes(const ModelArtifacts& a) {
  std::string out;
  for (const Buffer& b : a.weight_data.value()) out += b.view();
  return out;
}

// The stowage::Error f throws; fails the test when it throws none.
template <typename F>
Error error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e;
  }
  FAIL("no stowage::Error was thrown");
  return Error(ErrorCode::kOk, "");
}

inline bool contains(const Error& e, std::string_view text) {
  return std::string_view(e.what()).find(text) != std::string_view::npos;
}

}  // namespace stowage::testing
