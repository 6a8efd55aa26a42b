// Helpers shared by the host library's tests: where the test plugins are, a
// small model, temporary folders, and catching errors.
#pragma once

#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "file_hash_internal.hpp"
#include "stowage/artifacts.hpp"
#include "plugin_test_util.hpp"  // sdk/testing: error_of
#include "stowage/error.hpp"
#include "stowage/unique_fd.hpp"

namespace stowage::test {

// The SHA-256 of a file, as a pin names it.
inline std::string file_sha256(const std::filesystem::path& p) {
  UniqueFd fd(::open(p.c_str(), O_RDONLY | O_CLOEXEC));
  REQUIRE(fd.get() >= 0);
  return host::sha256_hex_of_fd(fd.get(), p.string());
}

inline std::filesystem::path plugin_dir() { return STOWAGE_TEST_PLUGIN_DIR; }
inline std::filesystem::path manifest(const std::string& name) {
  return plugin_dir() / ("stowage-" + name + ".json");
}
inline std::filesystem::path library(const std::string& name) {
  return plugin_dir() / ("libstowage_" + name + ".so");
}

// A key no other test uses, for the process-wide test stores.
inline std::string unique(const std::string& prefix) {
  static std::atomic<int> n{0};
  return prefix + "-" + std::to_string(::getpid()) + "-" + std::to_string(n.fetch_add(1));
}

// Two weights (float32[2], int32[1]) in two buffers: 12 bytes.
inline ModelArtifacts sample_model() {
  ModelArtifacts a;
  a.model_topology = R"({"class_name":"Sequential","config":{"name":"s"}})";
  a.format = "layers-model";
  a.generated_by = "TensorFlow.js tfjs-layers v4.22.0";
  a.converted_by = NullableString::null();
  a.user_defined_metadata = R"({"note":"test"})";
  WeightSpec w{"dense/kernel", {2}, "float32", std::nullopt, std::nullopt};
  WeightSpec b{"dense/bias", {1}, "int32", std::nullopt, std::nullopt};
  a.weight_specs = std::vector<WeightSpec>{w, b};
  std::vector<uint8_t> first = {0, 0, 128, 63, 0, 0, 0, 64};  // 1.0f, 2.0f
  std::vector<uint8_t> second = {7, 0, 0, 0};                 // 7
  a.weight_data = WeightData{Buffer::from_vector(std::move(first), "first"),
                             Buffer::from_vector(std::move(second), "second")};
  return a;
}

inline std::string bytes_of(const WeightData& data) {
  std::string out;
  for (const auto& b : data) out.append(b.view());
  return out;
}

struct TempDir {
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "stowage-host-XXXXXX").string();
    path = ::mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  void write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name) << text;
  }
  std::filesystem::path path;
};

// Runs f, which must throw stowage::Error; returns it.
using testing::error_of;

inline bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace stowage::test
