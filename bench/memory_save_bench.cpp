// What digests cost a save of a model held in memory (bench/integrity_save_bench.py
// drives it; issue 12's "save with digests vs without"):
//
//   memory_save_bench DIR MIB REPS
//
// builds MIB/4 float32 tensors of 4 MiB in memory once, then saves them with
// stowage::save_model to file://DIR/none and file://DIR/sha256 (4 MiB shards,
// "durable": false, "integrity" "none" or "sha256"): an untimed warm-up round,
// then REPS timed rounds, the order of the two saves alternating between
// rounds, each after the previous output was removed and sync(2) ran. Only
// save_model is timed. Prints the SHA-256 of the whole weight data (for the
// script to check the saved files) and each save's wall-clock seconds and
// the CPU seconds (user + system, all threads) the process spent in it:
// CPU above wall means two cores worked at once.
//
//   weights_sha256=<hex>
//   none <seconds> <cpu seconds>
//   sha256 <seconds> <cpu seconds>
//   ...
#include <sys/resource.h>
#include <unistd.h>

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

#include "stowage/digest.hpp"
#include "stowage/management.hpp"
#include "stowage/sharding.hpp"

namespace fs = std::filesystem;

namespace {

constexpr uint64_t kTensorBytes = 4ull << 20;

// MIB/4 tensors of 4 MiB of xorshift64 bytes (incompressible, all distinct).
stowage::ModelArtifacts make_artifacts(uint64_t mib) {
  stowage::ModelArtifacts a;
  a.model_topology = R"({"class_name":"Synthetic","config":{"note":"stowage memory save bench"}})";
  a.format = "graph-model";
  a.generated_by = "stowage bench/memory_save_bench";
  a.converted_by = stowage::NullableString::null();
  a.weight_specs.emplace();
  a.weight_data.emplace();
  uint64_t state = 0x9e3779b97f4a7c15ull;
  for (uint64_t t = 0; t < mib / 4; ++t) {
    std::vector<uint8_t> bytes(kTensorBytes);
    for (uint64_t i = 0; i < kTensorBytes; i += 8) {
      state ^= state << 13;
      state ^= state >> 7;
      state ^= state << 17;
      std::memcpy(bytes.data() + i, &state, 8);
    }
    char name[48];
    std::snprintf(name, sizeof name, "layer_%03" PRIu64 "/kernel", t);
    a.weight_specs->push_back({name, {static_cast<int64_t>(kTensorBytes / 4)}, "float32", {}, {}});
    a.weight_data->push_back(stowage::Buffer::from_vector(std::move(bytes)));
  }
  return a;
}

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

struct Timing {
  double wall = 0;
  double cpu = 0;
};

Timing save(const stowage::ModelArtifacts& a, const fs::path& dir, const char* integrity) {
  fs::remove_all(dir);
  ::sync();
  const std::string options = R"({"shard_size": )" + std::to_string(stowage::kConverterShardSize) +
                              R"(, "durable": false, "integrity": ")" + integrity + "\"}";
  const double cpu0 = cpu_seconds();
  const auto t0 = std::chrono::steady_clock::now();
  stowage::save_model("file://" + fs::absolute(dir).string(), a, options);
  return {std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
          cpu_seconds() - cpu0};
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: memory_save_bench DIR MIB REPS\n");
    return 2;
  }
  try {
    const fs::path dir = argv[1];
    const uint64_t mib = std::strtoull(argv[2], nullptr, 10);
    const int reps = std::atoi(argv[3]);
    if (mib < 4 || mib % 4 != 0 || reps < 1) {
      std::fprintf(stderr, "memory_save_bench: MIB must be a multiple of 4, REPS at least 1\n");
      return 2;
    }
    const stowage::ModelArtifacts a = make_artifacts(mib);
    stowage::Sha256 whole;
    for (const stowage::Buffer& b : *a.weight_data) whole.update(b.bytes());
    std::printf("weights_sha256=%s\n", whole.finish_hex().c_str());
    const char* kinds[2] = {"none", "sha256"};
    for (int rep = 0; rep <= reps; ++rep) {  // round 0 warms up, untimed
      for (int k = 0; k < 2; ++k) {
        const char* kind = kinds[rep % 2 == 0 ? k : 1 - k];
        const Timing t = save(a, dir / kind, kind);
        if (rep > 0) std::printf("%s %.6f %.6f\n", kind, t.wall, t.cpu);
      }
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "memory_save_bench: %s\n", e.what());
    return 1;
  }
}
