// The file:// benchmark program (bench/run.sh drives it and times it):
//   file_load_bench make DIR [MIB]   writes (or reuses) a model of MIB MiB
//                                    (default 1024) in 4 MiB converter shards
//   file_load_bench load URL [--no-verify-digests]
//                                    stowage::load_model (checking the digests
//                                    model.json records, unless told not to),
//                                    then touches every byte of every buffer
//                                    (touch_internal.h)
//   file_load_bench save URL DIR     load_model, then save_model to DIR in
//                                    4 MiB shards with durable: false
// Each prints bytes, the touch sum (load), seconds (save: also save_model
// alone) and peak RSS.

#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <string>
#include <vector>

#include "peak_rss_internal.h"
#include "stowage/error.hpp"
#include "stowage/management.hpp"
#include "stowage/sharding.hpp"
#include "touch_internal.h"

namespace fs = std::filesystem;

namespace {

constexpr uint64_t kMiB = 1024 * 1024;
const std::string kSaveOptions =
    R"({"shard_size": )" + std::to_string(stowage::kConverterShardSize) + R"(, "durable": false})";

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string file_url(const fs::path& p) { return "file://" + fs::absolute(p).string(); }

// 256 float32 tensors of 1 Mi elements (4 MiB each) for 1 GiB, values from
// xorshift64 in [-1, 1).
stowage::ModelArtifacts make_artifacts(uint64_t mib) {
  stowage::ModelArtifacts a;
  a.model_topology = R"({"class_name":"Synthetic","config":{"note":"stowage file:// benchmark"}})";
  a.format = "graph-model";
  a.generated_by = "stowage bench/file_load_bench";
  a.converted_by = stowage::NullableString::null();
  a.weight_specs.emplace();
  a.weight_data.emplace();
  const uint64_t tensors = mib / 4;
  const uint64_t elements = kMiB;  // 4 MiB of float32
  uint64_t state = 0x9e3779b97f4a7c15ull;
  for (uint64_t t = 0; t < tensors; ++t) {
    std::vector<uint8_t> bytes(elements * 4);
    for (uint64_t i = 0; i < elements; ++i) {
      state ^= state << 13;
      state ^= state >> 7;
      state ^= state << 17;
      const float v = static_cast<float>(static_cast<double>(state >> 40) / (1ull << 23)) - 1.0f;
      std::memcpy(bytes.data() + i * 4, &v, 4);
    }
    char name[48];
    std::snprintf(name, sizeof name, "layer_%03" PRIu64 "/kernel", t);
    a.weight_specs->push_back({name, {static_cast<int64_t>(elements)}, "float32", {}, {}});
    a.weight_data->push_back(stowage::Buffer::from_vector(std::move(bytes)));
  }
  return a;
}

int make(const fs::path& dir, uint64_t mib) {
  const uint64_t want = mib / 4 * 4 * kMiB;
  if (fs::exists(dir / "model.json")) {
    try {
      const auto a = stowage::load_model(file_url(dir / "model.json"));
      if (stowage::total_size(*a.weight_data) == want) {
        std::printf("reusing %s (%" PRIu64 " bytes)\n", dir.c_str(), want);
        return 0;
      }
    } catch (const std::exception& e) {
      std::fprintf(stderr, "rebuilding %s: %s\n", dir.c_str(), e.what());
    }
  }
  fs::remove_all(dir);
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = stowage::save_model(file_url(dir), make_artifacts(mib), kSaveOptions);
  std::printf("wrote %s: %" PRIu64 " bytes in %.3f s\n", dir.c_str(),
              r.model_artifacts_info.weight_data_bytes.value_or(0), seconds_since(t0));
  return 0;
}

int load(const std::string& url, bool verify_digests) {
  stowage::CallContext call;
  call.verify_digests = verify_digests;
  const auto t0 = std::chrono::steady_clock::now();
  const auto a = stowage::load_model(url, "{}", call);
  uint64_t sum = 0;
  uint64_t bytes = 0;
  for (const auto& b : *a.weight_data) {
    sum += stowage_touch_sum(b.data(), b.size());
    bytes += b.size();
  }
  const double s = seconds_since(t0);
  std::printf("bytes=%" PRIu64 " sum=%016" PRIx64 " seconds=%.6f buffers=%zu peak_rss_kib=%ld\n",
              bytes, sum, s, a.weight_data->size(), stowage_peak_rss_kib());
  return 0;
}

int save(const std::string& url, const fs::path& dir) {
  const auto t0 = std::chrono::steady_clock::now();
  const auto a = stowage::load_model(url);
  const auto t1 = std::chrono::steady_clock::now();
  const auto r = stowage::save_model(file_url(dir), a, kSaveOptions);
  std::printf("bytes=%" PRIu64 " seconds=%.6f save_seconds=%.6f peak_rss_kib=%ld\n",
              r.model_artifacts_info.weight_data_bytes.value_or(0), seconds_since(t0),
              seconds_since(t1), stowage_peak_rss_kib());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string cmd = argc > 1 ? argv[1] : "";
    if (cmd == "make" && (argc == 3 || argc == 4)) {
      return make(argv[2], argc == 4 ? std::strtoull(argv[3], nullptr, 10) : 1024);
    }
    if (cmd == "load" && argc == 3) return load(argv[2], true);
    if (cmd == "load" && argc == 4 && std::strcmp(argv[3], "--no-verify-digests") == 0) {
      return load(argv[2], false);
    }
    if (cmd == "save" && argc == 4) return save(argv[2], argv[3]);
    std::fprintf(stderr,
                 "usage: file_load_bench make DIR [MIB] | load URL [--no-verify-digests] | "
                 "save URL DIR\n");
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "file_load_bench: %s\n", e.what());
    return 1;
  }
}
