// Streaming copies (ABI 1.1) through the registry: the raw-ABI test store as
// the source, the real memory:// plugin (STREAMING_SAVE, STREAMING_LOAD) as
// the destination. What is asserted is the bound on held bytes and what the
// destination holds afterwards, never timing.
#include <doctest/doctest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "stowage/management.hpp"
#include "stowage/registry.hpp"
#include "testing/host_test_support.hpp"

using namespace stowage;
using stowage::test::unique;
using stowage::testing::error_of;
using stowage::testing::float_model;
using stowage::testing::ramp;
using stowage::testing::weight_bytes;

namespace {

constexpr uint64_t kBuffer = 1024;
constexpr uint64_t kBuffers = 16;

struct Fixture {
  Fixture() {
    registry.add_plugin(test::manifest("testmem"));
    registry.add_plugin(std::filesystem::path(STOWAGE_PLUGIN_BUILD_DIR) / "stowage-memory.json");
  }
  Registry registry;
};

// kBuffers buffers of kBuffer bytes (float32 values from `start`).
ModelArtifacts big_model(float start) {
  std::vector<uint64_t> cuts;
  for (uint64_t i = 1; i < kBuffers; ++i) cuts.push_back(i * kBuffer);
  return float_model(ramp(kBuffers * kBuffer / 4, start), cuts);
}

}  // namespace

TEST_CASE("a copy larger than the queue streams and never holds more than the queue") {
  Fixture f;
  const std::string src = "testmem://" + unique("stream-src");
  const std::string dst = "memory://" + unique("stream-dst");
  ModelArtifacts model = big_model(1.0f);
  save_model(src, model, "{}", {}, f.registry);

  TransferStats stats;
  TransferOptions options;
  options.queue_bytes = 4 * kBuffer;
  options.stats = &stats;
  SaveResult r = copy_model(src, dst, options, f.registry);
  CHECK(stats.streamed);
  CHECK(stats.peak_queued_bytes <= 4 * kBuffer);
  CHECK(stats.peak_queued_bytes >= kBuffer);
  CHECK(r.model_artifacts_info.weight_data_bytes == kBuffers * kBuffer);

  ModelArtifacts copy = load_model(dst, "{}", {}, f.registry);
  CHECK(weight_bytes(copy) == weight_bytes(model));
  CHECK(copy.weight_specs == model.weight_specs);
  CHECK(copy.model_topology == model.model_topology);
}

TEST_CASE("--no-streaming's copy holds the whole model, as ABI 1.0 copies do") {
  Fixture f;
  const std::string src = "testmem://" + unique("whole-src");
  const std::string dst = "memory://" + unique("whole-dst");
  ModelArtifacts model = big_model(2.0f);
  save_model(src, model, "{}", {}, f.registry);

  TransferStats stats;
  TransferOptions options;
  options.queue_bytes = 4 * kBuffer;
  options.streaming = false;
  options.stats = &stats;
  copy_model(src, dst, options, f.registry);
  CHECK_FALSE(stats.streamed);
  CHECK(stats.peak_queued_bytes == kBuffers * kBuffer);
  CHECK(weight_bytes(load_model(dst, "{}", {}, f.registry)) == weight_bytes(model));
}

TEST_CASE("a load failing midway through a streaming copy leaves the destination as it was") {
  Fixture f;
  const std::string src = "testmem://" + unique("midway-src");
  save_model(src, big_model(3.0f), "{}", {}, f.registry);
  TransferStats stats;
  TransferOptions options;
  options.queue_bytes = 2 * kBuffer;
  options.stats = &stats;
  // Buffers 0..5 reach the destination's save, then the load fails.
  options.source_options = R"({"fail_load_after": 6, "fail_code": 6, "fail_retryable": false})";

  SUBCASE("an old model stays") {
    const std::string dst = "memory://" + unique("midway-old");
    ModelArtifacts old = float_model(ramp(10, -1.0f), {8});
    save_model(dst, old, "{}", {}, f.registry);
    Error e = error_of([&] { copy_model(src, dst, options, f.registry); });
    CHECK(e.code() == ErrorCode::kDataLoss);
    CHECK(std::string(e.what()) == "testmem: load failed midway");
    CHECK(stats.streamed);
    ModelArtifacts after = load_model(dst, "{}", {}, f.registry);
    CHECK(weight_bytes(after) == weight_bytes(old));
    CHECK(after.weight_specs == old.weight_specs);
  }
  SUBCASE("no model stays no model") {
    const std::string dst = "memory://" + unique("midway-none");
    Error e = error_of([&] { copy_model(src, dst, options, f.registry); });
    CHECK(e.code() == ErrorCode::kDataLoss);
    CHECK(stats.streamed);
    CHECK(error_of([&] { load_model(dst, "{}", {}, f.registry); }).code() == ErrorCode::kNotFound);
  }
}

TEST_CASE("a source that delivers fewer bytes than its specs fails the streaming copy") {
  Fixture f;
  const std::string src = "testmem://" + unique("short-src");
  const std::string dst = "memory://" + unique("short-dst");
  save_model(src, big_model(4.0f), "{}", {}, f.registry);
  TransferOptions options;
  options.queue_bytes = 2 * kBuffer;
  options.source_options = R"({"truncate_weights": 4})";
  Error e = error_of([&] { copy_model(src, dst, options, f.registry); });
  CHECK(e.code() == ErrorCode::kDataLoss);
  CHECK(std::string(e.what()) == "model.json at " + src +
                                     ": the weights (1 specs) need 16384 bytes but the weight "
                                     "data holds 16380 bytes in 16 buffer(s)");
  CHECK(error_of([&] { load_model(dst, "{}", {}, f.registry); }).code() == ErrorCode::kNotFound);
}

TEST_CASE("load_model_streaming hands each buffer of a streaming load over in index order") {
  Fixture f;
  const std::string url = "memory://" + unique("streamed-load");
  ModelArtifacts model = big_model(5.0f);
  save_model(url, model, "{}", {}, f.registry);
  int artifacts_calls = 0;
  std::vector<uint64_t> indexes;
  std::string bytes;
  load_model_streaming(
      url, "{}",
      [&](const ModelArtifacts& meta) {
        ++artifacts_calls;
        CHECK_FALSE(meta.weight_data.has_value());
        CHECK(meta.weight_specs == model.weight_specs);
      },
      [&](uint64_t index, const Buffer& b) {
        CHECK(artifacts_calls == 1);
        indexes.push_back(index);
        bytes += b.view();
      },
      {}, 2 * kBuffer, f.registry);
  CHECK(artifacts_calls == 1);
  std::vector<uint64_t> expected;
  for (uint64_t i = 0; i < kBuffers; ++i) expected.push_back(i);
  CHECK(indexes == expected);
  CHECK(bytes == weight_bytes(model));
}
