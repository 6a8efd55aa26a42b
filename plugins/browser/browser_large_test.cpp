// A model of 2.5 GiB through indexeddb:// (past every 32-bit size): the save
// streams the caller's buffers into the model's blob file without joining
// them (the process's peak memory grows by far less than the model), and the
// load of a record without a digest hands out chunk_size slices of the
// mapped file, never one buffer.
#include <doctest/doctest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "plugin_test_util.hpp"
#include "stowage/model_json.hpp"
#include "stowage/registry.hpp"
#include "test_files.hpp"

namespace fs = std::filesystem;
using namespace stowage;

namespace {

constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kBlock = 64 * kMiB;
constexpr uint64_t kBlocks = 40;  // 2.5 GiB
constexpr uint64_t kChunk = 8 * kMiB;

uint64_t peak_rss() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<uint64_t>(u.ru_maxrss) * 1024;
}

}  // namespace

TEST_CASE("indexeddb: a 2.5 GiB model is saved and loaded in chunks") {
  // Lives for the process, as in the other plugin tests (plugins are never unloaded).
  static Registry* registry = testing::new_registry(STOWAGE_PLUGIN_BUILD_DIR);
  const testing::TempDir temp("stowage-browser-large");
  const fs::path& profile = temp.path();
  // Without a digest: a record with one loads as one slice of the mapping
  // (the host checks one buffer per manifest path; browser_digest_test).
  const std::string options = "{\"profile\":" + json::quote(profile.string()) +
                              ",\"durable\":false,\"quota\":10737418240,\"integrity\":\"none\"}";

  // One 64 MiB block, handed over 40 times: the model costs 64 MiB here.
  auto block = std::make_shared<std::vector<uint8_t>>(kBlock);
  for (uint64_t i = 0; i < kBlock; ++i) (*block)[i] = static_cast<uint8_t>(i * 7 + i / 4093);
  ModelArtifacts a;
  a.model_topology = R"({"large":true})";
  a.weight_specs.emplace();
  a.weight_data.emplace();
  for (uint64_t b = 0; b < kBlocks; ++b) {
    a.weight_specs->push_back(
        WeightSpec{"w" + std::to_string(b), {static_cast<int64_t>(kBlock / 4)}, "float32", {}, {}});
    a.weight_data->push_back(Buffer::wrap(block->data(), kBlock, block));
  }

  const uint64_t before = peak_rss();
  const SaveResult saved = registry->open("indexeddb://large", options)->save(a);
  CHECK(saved.model_artifacts_info.weight_data_bytes == kBlock * kBlocks);
  const uint64_t after_save = peak_rss();
  MESSAGE("peak memory grew by " << (after_save - before) / kMiB << " MiB saving "
                                 << kBlock * kBlocks / kMiB << " MiB");
  CHECK(after_save - before < 256 * kMiB);

  {
    const ModelArtifacts b = registry->open("indexeddb://large", options)->load();
    REQUIRE(b.weight_data);
    CHECK(b.weight_data->size() == kBlock * kBlocks / kChunk);
    uint64_t offset = 0;
    bool same = true;
    for (const Buffer& buf : *b.weight_data) {
      CHECK(buf.size() <= kChunk);
      const uint64_t in_block = offset % kBlock;
      REQUIRE(in_block + buf.size() <= kBlock);  // chunks never straddle: 8 MiB divides 64 MiB
      same = same && std::memcmp(buf.data(), block->data() + in_block, buf.size()) == 0;
      offset += buf.size();
    }
    CHECK(offset == kBlock * kBlocks);
    CHECK(same);
  }
  registry->open("indexeddb://large", options)->remove();
}
