// Every load checks each weight file against the SHA-256 its model.json
// records (docs/integrity.md), through the real file://, http:// and
// memory:// plugins: whole loads, streamed loads and streaming copies, and
// the per-call opt-out. Digests are written with the format library, not by
// a saver.
#include <doctest/doctest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "plugin_test_util.hpp"
#include "stowage/digest.hpp"
#include "stowage/management.hpp"
#include "stowage/model_json.hpp"
#include "stowage/registry.hpp"
#include "test_files.hpp"
#include "test_server.hpp"

namespace fs = std::filesystem;
using namespace stowage;
using testing::error_of;
using testing::float_model;
using testing::ramp;
using testing::read_file;
using testing::TempDir;
using testing::weight_bytes;
using testing::write_file;

using testing::registry;
namespace {

// 12000 weight bytes in three shards of 5000, 5000 and 2000 bytes.
const ModelArtifacts& model() {
  static const ModelArtifacts m = float_model(ramp(3000, -3.25f));
  return m;
}

// Records each weight file's SHA-256 in the model.json of `dir`.
void add_digests(const fs::path& dir) {
  ModelArtifacts a = parse_model_json(read_file(dir / "model.json"), dir.string());
  REQUIRE(a.weights_manifest);
  for (WeightGroup& g : *a.weights_manifest) {
    std::vector<std::string> digests;
    for (const std::string& path : g.paths) {
      const std::string bytes = read_file(dir / path);
      digests.push_back(
          sha256_hex(std::span(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size())));
    }
    g.sha256 = std::move(digests);
  }
  write_file(dir / "model.json",
             write_model_json(a, *a.weights_manifest, ModelJsonLayout::kTfjsNode));
}

std::string digest_of_file(const fs::path& file) {
  const std::string bytes = read_file(file);
  return sha256_hex(std::span(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
}

// Flips one bit of byte `at` of the file, keeping its size.
void flip(const fs::path& file, size_t at) {
  std::string bytes = read_file(file);
  REQUIRE(at < bytes.size());
  bytes[at] = static_cast<char>(bytes[at] ^ 0x10);
  write_file(file, bytes);
}

// A model in three shards with digests under dir/m, its second shard's
// 4000th byte flipped (same size).
struct BadModel {
  TempDir dir{"stowage-digest-test"};
  fs::path folder = dir.path() / "m";
  fs::path shard = folder / "group1-shard2of3.bin";
  std::string recorded;
  std::string actual;

  explicit BadModel(bool bad = true) {
    registry().open("file://" + folder.string(), R"({"shard_size":5000})")->save(model());
    add_digests(folder);
    recorded = digest_of_file(shard);
    if (bad) flip(shard, 3999);
    actual = digest_of_file(shard);
  }
  std::string url() const { return "file://" + folder.string(); }
  std::string message(const std::string& source, const std::string& label) const {
    return "model.json at " + source + ": weight group 1 file 2 of 3 'group1-shard2of3.bin' (" +
           label + ", 5000 bytes) has SHA-256 " + actual + ", but model.json records " + recorded;
  }
  std::string file_message() const { return message(url(), shard.string()); }
};

}  // namespace

TEST_CASE("file://: a model whose digests match loads, and says nothing") {
  BadModel good(false);
  ModelArtifacts a = load_model(good.url(), "{}", {}, registry());
  CHECK(weight_bytes(a) == weight_bytes(model()));
  REQUIRE(a.weights_manifest);
  CHECK((*a.weights_manifest)[0].sha256->size() == 3);
}

TEST_CASE("file://: a same-size flipped byte in shard 2 of 3 is DATA_LOSS naming it") {
  BadModel bad;
  REQUIRE(bad.actual != bad.recorded);
  const Error e = error_of([&] { load_model(bad.url(), "{}", {}, registry()); });
  CHECK(e.code() == ErrorCode::kDataLoss);
  CHECK(std::string(e.what()) == bad.file_message());
}

TEST_CASE("file://: verify_digests false loads the bad model, bytes as stored") {
  BadModel bad;
  CallContext trusting;
  trusting.verify_digests = false;
  ModelArtifacts a = load_model(bad.url(), "{}", trusting, registry());
  const std::string bytes = weight_bytes(a);
  REQUIRE(bytes.size() == 12000);
  CHECK(bytes != weight_bytes(model()));
  CHECK(bytes.substr(5000, 5000) == read_file(bad.shard));
}

TEST_CASE("file://: a streamed load fails before the bad buffer reaches the caller") {
  BadModel bad;
  std::vector<uint64_t> seen;
  const Error e = error_of([&] {
    load_model_streaming(
        bad.url(), "{}", [](const ModelArtifacts&) {},
        [&](uint64_t index, const Buffer&) { seen.push_back(index); }, {}, 64ull << 20, registry());
  });
  CHECK(e.code() == ErrorCode::kDataLoss);
  CHECK(std::string(e.what()) == bad.file_message());
  for (uint64_t index : seen) CHECK(index < 1);

  CallContext trusting;
  trusting.verify_digests = false;
  seen.clear();
  load_model_streaming(
      bad.url(), "{}", [](const ModelArtifacts&) {},
      [&](uint64_t index, const Buffer&) { seen.push_back(index); }, trusting, 64ull << 20,
      registry());
  CHECK(seen == std::vector<uint64_t>{0, 1, 2});
}

TEST_CASE("a streaming copy from a model with a bad shard publishes nothing") {
  BadModel bad;
  const std::string memory = "memory://" + bad.dir.path().filename().string() + "-copy";
  const fs::path file_dest = bad.dir.path() / "copy";
  for (const std::string& dst : {memory, "file://" + file_dest.string()}) {
    CAPTURE(dst);
    TransferStats stats;
    TransferOptions options;
    options.stats = &stats;
    const Error e = error_of([&] { copy_model(bad.url(), dst, options, registry()); });
    CHECK(stats.streamed);
    CHECK(e.code() == ErrorCode::kDataLoss);
    CHECK(std::string(e.what()) == bad.file_message());
    const Error gone = error_of([&] { load_model(dst, "{}", {}, registry()); });
    CHECK(gone.code() == ErrorCode::kNotFound);
  }
  CHECK_FALSE(fs::exists(file_dest / "model.json"));

  // The opt-out copies the bytes as they are.
  TransferOptions trusting;
  trusting.call.verify_digests = false;
  copy_model(bad.url(), memory, trusting, registry());
  CallContext no_check;
  no_check.verify_digests = false;
  CHECK(weight_bytes(load_model(memory, "{}", no_check, registry())).substr(5000, 5000) ==
        read_file(bad.shard));
  remove_model(memory, registry());
}

TEST_CASE("http://: a flipped byte in a served shard is DATA_LOSS naming its URL") {
  BadModel bad;
  testing::PythonServer server({std::string(STOWAGE_SOURCE_DIR) + "/core/net/test_server.py",
                                "--root", bad.dir.path().string()});
  const std::string url = server.base() + "/files/m/model.json";
  const std::string shard_url = server.base() + "/files/m/group1-shard2of3.bin";
  const Error e = error_of([&] { load_model(url, "{}", {}, registry()); });
  CHECK(e.code() == ErrorCode::kDataLoss);
  CHECK(std::string(e.what()) == bad.message(url, shard_url));

  CallContext trusting;
  trusting.verify_digests = false;
  CHECK(weight_bytes(load_model(url, "{}", trusting, registry())).substr(5000, 5000) ==
        read_file(bad.shard));
}
