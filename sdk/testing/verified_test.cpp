// abi.h sink_mark_verified (ABI 1.4) through the real registry: a buffer
// the plugin marks verified against the digest its model.json records is not
// hashed again by the host, in a whole load and in a streamed copy; a mark
// of any other digest, an unmarked buffer, and every buffer of a load whose
// caller asks for its own check (stowage verify) are hashed as before.
// marker:// (marker_plugin.cpp) hands over bytes that do NOT match their
// recorded digest, so a load that succeeds proves the host skipped them.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "plugin_test_util.hpp"
#include "stowage/digest.hpp"
#include "stowage/error.hpp"
#include "stowage/management.hpp"
#include "stowage/registry.hpp"

using namespace stowage;
using stowage::testing::error_of;

namespace {

Registry& registry() {
  static Registry* r = [] {
    Registry* registry = stowage::testing::new_registry(STOWAGE_SDK_TEST_PLUGIN_DIR);
    registry->add_plugin_folder(STOWAGE_PLUGIN_BUILD_DIR);
    return registry;
  }();
  return *r;
}

// marker_plugin.cpp's bytes of file i, and the same with the first byte
// flipped (what "bad" hands over).
std::vector<uint8_t> good(size_t i) {
  std::vector<uint8_t> bytes(8);
  for (size_t k = 0; k < 8; ++k) bytes[k] = static_cast<uint8_t>(16 * i + k + 1);
  return bytes;
}
std::vector<uint8_t> flipped(size_t i) {
  std::vector<uint8_t> bytes = good(i);
  bytes[0] ^= 0xff;
  return bytes;
}

// The host's DATA_LOSS for file i (0-based) of the marker model at url.
std::string mismatch(const std::string& url, size_t i) {
  const std::string path = "w" + std::to_string(i + 1) + ".bin";
  return "model.json at " + url + ": weight group 1 file " + std::to_string(i + 1) + " of 3 '" +
         path + "' (" + url + "/" + path + ", 8 bytes) has SHA-256 " + sha256_hex(flipped(i)) +
         ", but model.json records " + sha256_hex(good(i));
}

ModelArtifacts load(const std::string& url, const std::string& options,
                    const CallContext& call = {}) {
  return load_model(url, options, call, registry());
}

std::vector<uint8_t> bytes_of(const Buffer& b) { return {b.data(), b.data() + b.size()}; }

}  // namespace

TEST_CASE("a buffer marked verified against its manifest digest is not hashed again") {
  // The bytes of file 1 do not match the digest model.json records; the
  // plugin says it checked them against that digest, and the host takes
  // its word: the load succeeds with the bytes as handed over.
  const ModelArtifacts a = load("marker://m", R"({"bad": "0", "mark": "0"})");
  REQUIRE(a.weight_data.has_value());
  REQUIRE(a.weight_data->size() == 3);
  CHECK(bytes_of(a.weight_data->at(0)) == flipped(0));
  CHECK(bytes_of(a.weight_data->at(1)) == good(1));
  // Marks of every file, all good: a load that hashes nothing succeeds.
  CHECK_NOTHROW(load("marker://m", R"({"mark": "0,1,2"})"));
}

TEST_CASE("an unmarked bad buffer fails DATA_LOSS with the host's message") {
  Error e = error_of([] { load("marker://m", R"({"bad": "0"})"); });
  CHECK(e.code() == ErrorCode::kDataLoss);
  CHECK(std::string(e.what()) == mismatch("marker://m", 0));
  // A mark covers its own buffer only.
  e = error_of([] { load("marker://m", R"({"bad": "1", "mark": "0,2"})"); });
  CHECK(e.code() == ErrorCode::kDataLoss);
  CHECK(std::string(e.what()) == mismatch("marker://m", 1));
}

TEST_CASE("a mark naming another digest than the manifest's is ignored: the buffer is hashed") {
  // The plugin hashed the bytes and says what they hash to, truthfully,
  // but that is not the digest model.json records: the host checks them.
  Error e = error_of([] { load("marker://m", R"({"bad": "2", "mark_other": "2"})"); });
  CHECK(e.code() == ErrorCode::kDataLoss);
  CHECK(std::string(e.what()) == mismatch("marker://m", 2));
}

TEST_CASE("recheck_digests (stowage verify) hashes marked buffers too") {
  CallContext verify;
  verify.recheck_digests = true;
  Error e = error_of([&] { load("marker://m", R"({"bad": "0", "mark": "0"})", verify); });
  CHECK(e.code() == ErrorCode::kDataLoss);
  CHECK(std::string(e.what()) == mismatch("marker://m", 0));
  // Without digests nothing is hashed, marked or not.
  CallContext trusting;
  trusting.verify_digests = false;
  trusting.recheck_digests = true;
  CHECK_NOTHROW(load("marker://m", R"({"bad": "0,1"})", trusting));
}

TEST_CASE("a streamed copy skips the marked buffers as each arrives, and checks the others") {
  // markers:// puts each buffer with sink_put_buffer; memory:// takes the
  // stream, so the copy checks each buffer on its way through.
  TransferStats stats;
  TransferOptions copy;
  copy.stats = &stats;
  copy.source_options = R"({"bad": "1", "mark": "1"})";
  SaveResult saved = copy_model("markers://s", "memory://verified/streamed", copy, registry());
  CHECK(stats.streamed);
  CHECK(saved.model_artifacts_info.weight_data_bytes == 24u);
  ModelArtifacts back = load("memory://verified/streamed", "{}");
  std::vector<uint8_t> expected = good(0);
  for (size_t i = 1; i < 3; ++i) {
    std::vector<uint8_t> b = i == 1 ? flipped(1) : good(i);
    expected.insert(expected.end(), b.begin(), b.end());
  }
  CHECK(stowage::testing::weight_bytes(back) == std::string(expected.begin(), expected.end()));

  for (const char* options : {R"({"bad": "1"})", R"({"bad": "1", "mark_other": "1"})"}) {
    INFO(options);
    copy.source_options = options;
    Error e =
        error_of([&] { copy_model("markers://s", "memory://verified/bad", copy, registry()); });
    CHECK(e.code() == ErrorCode::kDataLoss);
    CHECK(std::string(e.what()) == mismatch("markers://s", 1));
  }
  copy.source_options = R"({"bad": "1", "mark": "1"})";
  copy.call.recheck_digests = true;
  Error e = error_of([&] { copy_model("markers://s", "memory://verified/bad", copy, registry()); });
  CHECK(e.code() == ErrorCode::kDataLoss);
  CHECK(std::string(e.what()) == mismatch("markers://s", 1));
}
