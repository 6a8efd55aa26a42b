// Digests and content-addressed names on s3:// saves (issue 12), against
// moto_server behind the test proxy, which logs every request: model.json
// records each weight object's SHA-256 (array form, multipart, streaming
// copy); integrity "none" writes TF.js's bytes; shard_names "sha256" names
// objects after their digests, keeps the digest as x-amz-meta-sha256, and a
// second save of a model with one changed shard uploads that shard alone.
#include <doctest/doctest.h>
#include <unistd.h>

#include <cstring>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "plugin_test_util.hpp"
#include "stowage/digest.hpp"
#include "stowage/management.hpp"
#include "stowage/model_json.hpp"
#include "stowage/registry.hpp"
#include "testing/proxied_bucket.hpp"

using namespace stowage;
using stowage::s3::testing::ProxiedBucket;
using stowage::s3::testing::unique_name;
using testing::error_of;
using testing::float_model;
using testing::ramp;
using testing::weight_bytes;

using testing::registry;
namespace {

const char* kBucket = "stowage-models";
constexpr uint64_t kKiB = 1024;
constexpr uint64_t kMiB = 1024 * 1024;

ProxiedBucket& bucket() {
  static ProxiedBucket b(kBucket);
  return b;
}

std::string object(const std::string& key) {
  std::optional<s3::Object> o = bucket().direct().get(kBucket, key, {});
  REQUIRE(o);
  return std::string(o->body.view());
}

ModelArtifacts model_json_at(const std::string& prefix) {
  return parse_model_json(object(prefix + "model.json"), prefix);
}

std::string digest_of(const std::string& bytes) {
  return sha256_hex({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()});
}

// Every weight object model.json names has the digest model.json records.
void check_digests(const std::string& prefix, size_t files) {
  ModelArtifacts m = model_json_at(prefix);
  REQUIRE(m.weights_manifest);
  REQUIRE(m.weights_manifest->size() == 1);
  const WeightGroup& g = m.weights_manifest->front();
  REQUIRE(g.sha256);
  CHECK(g.paths.size() == files);
  REQUIRE(g.sha256->size() == g.paths.size());
  for (size_t i = 0; i < g.paths.size(); ++i) {
    CHECK(g.sha256->at(i) == digest_of(object(prefix + g.paths[i])));
  }
}

// PUTs of weight objects under prefix (model.json not counted).
size_t weight_puts(const std::string& prefix) {
  size_t n = 0;
  for (const std::string& line : bucket().requests()) {
    if (line.starts_with("PUT ") && line.find(prefix) != std::string::npos &&
        line.find("model.json") == std::string::npos) {
      ++n;
    }
  }
  return n;
}

// `buffers` buffers of `buffer_bytes` each (float32 values).
ModelArtifacts model(uint64_t buffers, uint64_t buffer_bytes, float start) {
  std::vector<uint64_t> cuts;
  for (uint64_t i = 1; i < buffers; ++i) cuts.push_back(i * buffer_bytes);
  return float_model(ramp(buffers * buffer_bytes / 4, start), cuts);
}

// m with the float at `index` set to `value` (a change inside one shard).
ModelArtifacts changed(const ModelArtifacts& m, size_t index, float value) {
  const std::string bytes = weight_bytes(m);
  std::vector<float> values(bytes.size() / 4);
  std::memcpy(values.data(), bytes.data(), values.size() * 4);
  values.at(index) = value;
  return float_model(values);
}

const std::regex kContentName(R"([0-9a-f]{16}\.bin)");

}  // namespace

TEST_CASE("s3:// saves record each weight object's SHA-256 by default") {
  SUBCASE("one object") {
    const std::string prefix = unique_name("dig/one") + "/";
    save_model(bucket().url(prefix), model(3, 4 * kKiB, 1.0f), "{}", {}, registry());
    check_digests(prefix, 1);
  }
  SUBCASE("shards") {
    const std::string prefix = unique_name("dig/shards") + "/";
    save_model(bucket().url(prefix), model(3, 4 * kKiB, 2.0f), R"({"shard_size": 5000})", {},
               registry());
    check_digests(prefix, 3);
  }
  SUBCASE("a multipart upload: its digest is the whole object's") {
    const std::string prefix = unique_name("dig/multi") + "/";
    ModelArtifacts m = model(3, 4 * kMiB + 4, 3.0f);
    save_model(bucket().url(prefix), m, R"({"multipart_threshold": 5242880, "part_size": 5242880})",
               {}, registry());
    check_digests(prefix, 1);
    CHECK(model_json_at(prefix).weights_manifest->front().sha256->front() ==
          digest_of(weight_bytes(m)));
  }
  SUBCASE("a streaming copy, single objects and a multipart one") {
    const std::string src = "memory://" + unique_name("dig-src");
    ModelArtifacts m = model(8, 2 * kMiB, 4.0f);
    save_model(src, m, "{}", {}, registry());
    const std::string prefix = unique_name("dig/stream") + "/";
    TransferStats stats;
    TransferOptions t;
    t.destination_options =
        R"({"shard_size": 7340032, "multipart_threshold": 5242880, "part_size": 5242880})";
    t.queue_bytes = 4 * kMiB;
    t.stats = &stats;
    copy_model(src, bucket().url(prefix), t, registry());
    CHECK(stats.streamed);
    check_digests(prefix, 3);  // 7 MiB (multipart), 7 MiB, 2 MiB
  }
  SUBCASE("integrity none: model.json is TF.js's, byte for byte") {
    const std::string prefix = unique_name("dig/none") + "/";
    ModelArtifacts m = model(2, 4 * kKiB, 5.0f);
    save_model(bucket().url(prefix), m, R"({"integrity": "none"})", {}, registry());
    ModelArtifacts back = model_json_at(prefix);
    REQUIRE(back.weights_manifest);
    CHECK_FALSE(back.weights_manifest->front().sha256);
    ModelArtifacts plain = m;
    plain.weight_data.reset();
    WeightGroup g;
    g.paths = back.weights_manifest->front().paths;
    g.weights = *m.weight_specs;
    CHECK(object(prefix + "model.json") ==
          write_model_json(plain, {g}, ModelJsonLayout::kTfjsNode));
  }
}

TEST_CASE("integrity and shard_names are checked when the URL is opened") {
  const std::string u = bucket().url("dig/options");
  Error e = error_of([&] { registry().open(u, R"({"integrity": "md5"})"); });
  CHECK(e.code() == ErrorCode::kInvalidArgument);
  CHECK(std::string(e.what()) ==
        "Option \"integrity\" for " + u + " must be one of \"sha256\", \"none\", not \"md5\"");
  e = error_of([&] { registry().open(u, R"({"shard_names": "md5"})"); });
  CHECK(std::string(e.what()) ==
        "Option \"shard_names\" for " + u + " must be one of \"tfjs\", \"sha256\", not \"md5\"");
  e = error_of([&] { registry().open(u, R"({"integrity": "none", "shard_names": "sha256"})"); });
  CHECK(e.code() == ErrorCode::kInvalidArgument);
  CHECK(std::string(e.what()) ==
        "shard_names \"sha256\" names weight files after their digests, so it needs integrity "
        "\"sha256\", not \"none\", for " +
            u);
  CHECK(registry().open(u, R"({"shard_names": "sha256"})") != nullptr);
}

TEST_CASE("content-addressed saves upload only the objects that changed") {
  const std::string prefix = unique_name("ca/m") + "/";
  const std::string opts = R"({"shard_names": "sha256", "shard_size": 65536})";
  ModelArtifacts first = model(8, 64 * kKiB, 1.0f);  // 8 shards
  bucket().clear_log();
  save_model(bucket().url(prefix), first, opts, {}, registry());
  CHECK(weight_puts(prefix) == 8);
  check_digests(prefix, 8);
  ModelArtifacts json = model_json_at(prefix);
  const WeightGroup& g = json.weights_manifest->front();
  std::set<std::string> expected = {prefix + "model.json"};
  for (size_t i = 0; i < g.paths.size(); ++i) {
    CHECK(std::regex_match(g.paths[i], kContentName));
    CHECK(g.paths[i] == g.sha256->at(i).substr(0, 16) + ".bin");
    auto head = bucket().direct().head(kBucket, prefix + g.paths[i], {});
    REQUIRE(head);
    CHECK(head->sha256 == g.sha256->at(i));  // kept as x-amz-meta-sha256
    expected.insert(prefix + g.paths[i]);
  }
  CHECK(bucket().keys_under(prefix) == expected);

  // One value changed in the fourth shard: that shard alone goes up, and the
  // object it replaces is deleted.
  ModelArtifacts second = changed(first, 3 * 16384 + 7, -1.0f);
  bucket().clear_log();
  save_model(bucket().url(prefix), second, opts, {}, registry());
  CHECK(weight_puts(prefix) == 1);
  check_digests(prefix, 8);
  ModelArtifacts json2 = model_json_at(prefix);
  const WeightGroup& g2 = json2.weights_manifest->front();
  std::set<std::string> expected2 = {prefix + "model.json"};
  for (size_t i = 0; i < g2.paths.size(); ++i) {
    CHECK((g2.paths[i] == g.paths[i]) == (i != 3));
    expected2.insert(prefix + g2.paths[i]);
  }
  CHECK(bucket().keys_under(prefix) == expected2);
  CHECK(weight_bytes(load_model(bucket().url(prefix), "{}", {}, registry())) ==
        weight_bytes(second));

  // The same model again uploads nothing but model.json.
  bucket().clear_log();
  save_model(bucket().url(prefix), second, opts, {}, registry());
  CHECK(weight_puts(prefix) == 0);
  CHECK(bucket().keys_under(prefix) == expected2);

  // Remove deletes exactly what model.json names.
  remove_model(bucket().url(prefix), registry());
  CHECK(bucket().keys_under(prefix).empty());
}

TEST_CASE("content-addressed names: an object without the digest recorded is another file") {
  const std::string opts = R"({"shard_names": "sha256"})";
  ModelArtifacts m = model(2, 4 * kKiB, 9.0f);
  const std::string digest = digest_of(weight_bytes(m));
  const std::string short_name = digest.substr(0, 16) + ".bin";
  const std::string long_name = digest.substr(0, 32) + ".bin";

  SUBCASE("the right bytes, but no x-amz-meta-sha256") {
    const std::string prefix = unique_name("ca/bare") + "/";
    bucket().direct().put(kBucket, prefix + short_name, {Buffer::from_string(weight_bytes(m))}, {});
    save_model(bucket().url(prefix), m, opts, {}, registry());
    CHECK(model_json_at(prefix).weights_manifest->front().paths ==
          std::vector<std::string>{long_name});
    CHECK(bucket().direct().head(kBucket, prefix + short_name, {})->sha256.empty());  // left as it
                                                                                      // was
    CHECK(bucket().direct().head(kBucket, prefix + long_name, {})->sha256 == digest);
  }
  SUBCASE("another digest recorded") {
    const std::string prefix = unique_name("ca/other") + "/";
    bucket().direct().put(kBucket, prefix + short_name, {Buffer::from_string("other bytes")}, {},
                          {std::string(64, 'a'), true});
    save_model(bucket().url(prefix), m, opts, {}, registry());
    CHECK(model_json_at(prefix).weights_manifest->front().paths ==
          std::vector<std::string>{long_name});
    CHECK(object(prefix + short_name) == "other bytes");
  }
  SUBCASE("the digest recorded: taken as the file, not uploaded again") {
    const std::string prefix = unique_name("ca/same") + "/";
    bucket().direct().put(kBucket, prefix + short_name, {Buffer::from_string(weight_bytes(m))}, {},
                          {digest, true});
    bucket().clear_log();
    save_model(bucket().url(prefix), m, opts, {}, registry());
    CHECK(weight_puts(prefix) == 0);
    CHECK(model_json_at(prefix).weights_manifest->front().paths ==
          std::vector<std::string>{short_name});
    CHECK(weight_bytes(load_model(bucket().url(prefix), "{}", {}, registry())) == weight_bytes(m));
  }
}

TEST_CASE("a streaming copy into a content-addressed s3:// save") {
  const std::string src = "memory://" + unique_name("ca-src");
  ModelArtifacts m = model(4, 64 * kKiB, 6.0f);
  save_model(src, m, "{}", {}, registry());
  const std::string prefix = unique_name("ca/copy") + "/";
  TransferOptions t;
  t.destination_options = R"({"shard_names": "sha256", "shard_size": 65536})";
  copy_model(src, bucket().url(prefix), t, registry());
  check_digests(prefix, 4);
  const ModelArtifacts json = model_json_at(prefix);
  for (const std::string& p : json.weights_manifest->front().paths) {
    CHECK(std::regex_match(p, kContentName));
  }
  CHECK(weight_bytes(load_model(bucket().url(prefix), "{}", {}, registry())) == weight_bytes(m));
}
