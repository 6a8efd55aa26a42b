// Streaming saves to s3:// (STOWAGE_CAP_STREAMING_SAVE): copies into s3://
// through the host's bounded queue, against moto_server behind the test
// proxy (testing/s3_test_server.py --proxy), which logs every request. What
// is asserted: the copy streamed, the host never held more than its queue,
// the objects are the ones an array-form save writes, and a source failing
// midway, a cancel or a part the store refuses leaves the destination as it
// was, with no stray objects or multipart uploads. Never timing.
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "plugin_test_util.hpp"
#include "stowage/management.hpp"
#include "stowage/registry.hpp"
#include "testing/proxied_bucket.hpp"

using namespace stowage;
using stowage::s3::testing::ProxiedBucket;
using stowage::s3::testing::unique_name;
using testing::error_of;
using testing::float_model;
using testing::ramp;
using testing::weight_bytes;

namespace {

const char* kBucket = "stowage-models";
constexpr uint64_t kKiB = 1024;
constexpr uint64_t kMiB = 1024 * 1024;

// The in-tree plugins, and the host tests' testmem store (a source that can
// fail midway).
Registry& registry() {
  static Registry* r = [] {
    Registry* out = testing::new_registry(STOWAGE_PLUGIN_BUILD_DIR);
    out->add_plugin(STOWAGE_TESTMEM_MANIFEST);
    return out;
  }();
  return *r;
}

ProxiedBucket& bucket() {
  static ProxiedBucket b(kBucket);
  return b;
}

// Every object under prefix by its name below it, with the save's tag
// (weights.0f3a9c21.bin) replaced by "<tag>" in names and in model.json.
std::map<std::string, std::string> objects_untagged(const std::string& prefix) {
  static const std::regex kTag(R"(\.[0-9a-f]{8}\.bin)");
  std::map<std::string, std::string> out;
  for (const std::string& key : bucket().keys_under(prefix)) {
    std::optional<s3::Object> o = bucket().direct().get(kBucket, key, {});
    REQUIRE(o);
    std::string name = std::regex_replace(key.substr(prefix.size()), kTag, ".<tag>.bin");
    std::string bytes(o->body.view());
    if (name == "model.json") bytes = std::regex_replace(bytes, kTag, ".<tag>.bin");
    out[name] = std::move(bytes);
  }
  return out;
}

size_t count_matching(const std::vector<std::string>& lines, const std::regex& re) {
  size_t n = 0;
  for (const std::string& l : lines) n += std::regex_search(l, re) ? 1 : 0;
  return n;
}

// `buffers` weight buffers of `buffer_bytes` each (float32 values).
ModelArtifacts model(uint64_t buffers, uint64_t buffer_bytes, float start) {
  std::vector<uint64_t> cuts;
  for (uint64_t i = 1; i < buffers; ++i) cuts.push_back(i * buffer_bytes);
  return float_model(ramp(buffers * buffer_bytes / 4, start), cuts);
}

// A small model saved at dst (with opts), which a failed copy to dst must
// leave exactly as it is: the same objects, loading the same weights.
struct KeptModel {
  std::string dst;
  ModelArtifacts artifacts;
  std::set<std::string> keys;

  KeptModel(std::string at, float start, const std::string& opts)
      : dst(std::move(at)), artifacts(model(3, 4 * kKiB, start)) {
    save_model(bucket().url(dst), artifacts, opts, {}, registry());
    keys = bucket().keys_under(dst + "/");
  }
  void check_unchanged() const {
    CHECK(bucket().keys_under(dst + "/") == keys);
    CHECK(weight_bytes(load_model(bucket().url(dst), "{}", {}, registry())) ==
          weight_bytes(artifacts));
  }
};

}  // namespace

TEST_CASE("a streamed copy into s3:// holds at most the queue and writes what a save writes") {
  SUBCASE("weight files below the multipart threshold, cut across buffers") {
    // 32 buffers of 64 KiB into 96 KiB files: files span buffers and
    // buffers span files. Two uploads in flight and one file gathered hold
    // well under the 512 KiB queue; the model is 2 MiB.
    const std::string opts = R"({"shard_size": 98304, "concurrency": 2})";
    const std::string src = "memory://" + unique_name("s3-stream-small");
    const std::string dst = unique_name("stream/small");
    const std::string reference = unique_name("stream/small-array");
    ModelArtifacts m = model(32, 64 * kKiB, 1.0f);
    save_model(src, m, "{}", {}, registry());

    TransferStats stats;
    TransferOptions options;
    options.queue_bytes = 512 * kKiB;
    options.destination_options = opts;
    options.stats = &stats;
    bucket().clear_log();
    copy_model(src, bucket().url(dst), options, registry());
    CHECK(stats.streamed);
    CHECK(stats.peak_queued_bytes <= 512 * kKiB);
    CHECK(stats.peak_queued_bytes >= 64 * kKiB);
    const std::regex weight_put("^PUT /" + std::string(kBucket) + "/" + dst +
                                R"(/group1-shard\d+of22\.[0-9a-f]{8}\.bin$)");
    CHECK(count_matching(bucket().requests(), weight_put) == 22);

    save_model(bucket().url(reference), m, opts, {}, registry());  // the array form
    std::map<std::string, std::string> streamed = objects_untagged(dst + "/");
    CHECK(streamed.size() == 23);
    CHECK(streamed == objects_untagged(reference + "/"));
    CHECK(weight_bytes(load_model(bucket().url(dst), "{}", {}, registry())) == weight_bytes(m));
  }

  SUBCASE("buffers larger than the weight files: one buffer feeds several files") {
    const std::string opts = R"({"shard_size": 98304, "concurrency": 3})";
    const std::string src = "memory://" + unique_name("s3-stream-wide");
    const std::string dst = unique_name("stream/wide");
    const std::string reference = unique_name("stream/wide-array");
    ModelArtifacts m = model(4, 512 * kKiB, 6.0f);
    save_model(src, m, "{}", {}, registry());

    TransferStats stats;
    TransferOptions options;
    options.queue_bytes = 1 * kMiB;
    options.destination_options = opts;
    options.stats = &stats;
    copy_model(src, bucket().url(dst), options, registry());
    CHECK(stats.streamed);
    save_model(bucket().url(reference), m, opts, {}, registry());
    std::map<std::string, std::string> streamed = objects_untagged(dst + "/");
    CHECK(streamed.size() == 23);
    CHECK(streamed == objects_untagged(reference + "/"));
  }

  SUBCASE("one weight file above the threshold goes up part by part") {
    // 16 MiB in 1 MiB buffers as 5 MiB parts, one in flight: one part
    // uploading and one gathered stay under the 12 MiB queue.
    const std::string opts =
        R"({"multipart_threshold": 5242880, "part_size": 5242880, "concurrency": 1})";
    const std::string src = "memory://" + unique_name("s3-stream-multipart");
    const std::string dst = unique_name("stream/multipart");
    const std::string reference = unique_name("stream/multipart-array");
    ModelArtifacts m = model(16, kMiB, -3.0f);
    save_model(src, m, "{}", {}, registry());

    TransferStats stats;
    TransferOptions options;
    options.queue_bytes = 12 * kMiB;
    options.destination_options = opts;
    options.stats = &stats;
    bucket().clear_log();
    copy_model(src, bucket().url(dst), options, registry());
    CHECK(stats.streamed);
    CHECK(stats.peak_queued_bytes <= 12 * kMiB);
    CHECK(stats.peak_queued_bytes >= kMiB);
    const std::vector<std::string> log = bucket().requests();
    CHECK(count_matching(log, std::regex(R"(^PUT .*/weights\.[0-9a-f]{8}\.bin\?.*partNumber=)")) ==
          4);
    CHECK(count_matching(log, std::regex(R"(^POST .*/weights\.[0-9a-f]{8}\.bin\?uploadId=)")) == 1);

    save_model(bucket().url(reference), m, opts, {}, registry());
    std::map<std::string, std::string> streamed = objects_untagged(dst + "/");
    CHECK(streamed.size() == 2);
    CHECK(streamed == objects_untagged(reference + "/"));
    // Parts cut at the same offsets: the same multipart ETag.
    auto etag_of = [](const std::string& prefix) {
      for (const std::string& k : bucket().keys_under(prefix)) {
        if (k.find("/weights.") != std::string::npos)
          return bucket().direct().head(kBucket, k, {})->etag;
      }
      return std::string();
    };
    CHECK(etag_of(dst + "/").find("-4\"") != std::string::npos);
    CHECK(etag_of(dst + "/") == etag_of(reference + "/"));
    CHECK(bucket().direct().list_multipart_uploads(kBucket, dst + "/", {}).empty());
  }
}

TEST_CASE("a source failing midway leaves the destination's old model and no stray objects") {
  SUBCASE("small weight files: the uploaded ones are deleted") {
    const std::string opts = R"({"shard_size": 98304, "concurrency": 2})";
    const std::string src = "testmem://" + unique_name("s3-stream-fail");
    const std::string dst = unique_name("stream/fail");
    save_model(src, model(32, 64 * kKiB, 2.0f), "{}", {}, registry());
    const KeptModel old(dst, 7.0f, opts);

    TransferStats stats;
    TransferOptions options;
    options.queue_bytes = 256 * kKiB;
    options.destination_options = opts;
    // 30 of the 32 buffers arrive, then the load fails (DATA_LOSS).
    options.source_options = R"({"fail_load_after": 30, "fail_code": 6, "fail_retryable": false})";
    options.stats = &stats;
    bucket().clear_log();
    Error e = error_of([&] { copy_model(src, bucket().url(dst), options, registry()); });
    CHECK(e.code() == ErrorCode::kDataLoss);
    CHECK(std::string(e.what()) == "testmem: load failed midway");
    CHECK(stats.streamed);

    // Files were uploaded before the failure (at most two in flight while
    // the 20 files of the 30 buffers were gathered), and each is gone.
    const std::vector<std::string> log = bucket().requests();
    const std::regex weight_put(R"(^PUT .*/group1-shard\d+of22\.[0-9a-f]{8}\.bin$)");
    CHECK(count_matching(log, weight_put) >= 10);
    // Each uploaded file is deleted. A PUT the failure cut off is not in the
    // proxy's log but was recorded by the save, so its DELETE may be too:
    // at most one per request in flight ("concurrency": 2).
    std::set<std::string> put, deleted;
    for (const std::string& line : log) {
      const std::string target = line.substr(line.find(' ') + 1);
      if (std::regex_search(line, weight_put)) put.insert(target);
      if (std::regex_search(line, std::regex(R"(^DELETE .*/group1-shard\d+of22\.)"))) {
        deleted.insert(target);
      }
    }
    CHECK(std::includes(deleted.begin(), deleted.end(), put.begin(), put.end()));
    CHECK(deleted.size() <= put.size() + 2);
    old.check_unchanged();
  }

  SUBCASE("a cancelled copy: what it uploaded is deleted, the old model stays") {
    const std::string opts = R"({"shard_size": 98304, "concurrency": 2})";
    const std::string src = "memory://" + unique_name("s3-stream-cancel");
    const std::string dst = unique_name("stream/cancel");
    save_model(src, model(32, 64 * kKiB, 5.0f), "{}", {}, registry());
    const KeptModel old(dst, 8.0f, opts);

    TransferStats stats;
    TransferOptions options;
    options.queue_bytes = 256 * kKiB;
    options.destination_options = opts;
    options.stats = &stats;
    // A copy reports the load's 2 MiB, then the save's bytes after them:
    // cancelled once the save sent 1 MiB, halfway.
    std::atomic<bool> cancel{false};
    options.call.on_progress = [&](uint64_t done, uint64_t) {
      if (done >= 3 * kMiB) cancel = true;
    };
    options.call.is_cancelled = [&] { return cancel.load(); };
    bucket().clear_log();
    Error e = error_of([&] { copy_model(src, bucket().url(dst), options, registry()); });
    CHECK(e.code() == ErrorCode::kCancelled);
    CHECK(stats.streamed);
    const std::vector<std::string> log = bucket().requests();
    const std::regex weight_put(R"(^PUT .*/group1-shard\d+of22\.[0-9a-f]{8}\.bin$)");
    CHECK(count_matching(log, weight_put) >= 1);
    CHECK(count_matching(log, std::regex(R"(^PUT .*/model\.json)")) == 0);
    old.check_unchanged();
  }

  SUBCASE("a part the store refuses: the upload is aborted, the old model stays") {
    const std::string opts =
        R"({"multipart_threshold": 5242880, "part_size": 5242880, "concurrency": 2})";
    const std::string src = "memory://" + unique_name("s3-stream-part-fault");
    const std::string dst = unique_name("stream/part-fault");
    save_model(src, model(16, kMiB, 9.0f), "{}", {}, registry());
    const KeptModel old(dst, 3.0f, opts);

    TransferStats stats;
    TransferOptions options;
    options.queue_bytes = 12 * kMiB;
    options.destination_options = opts;
    options.stats = &stats;
    bucket().set_faults(R"([{"method": "PUT", "contains": "partNumber=2", "status": 500,
                             "code": "InternalError", "times": 1000}])");
    bucket().clear_log();
    Error e = error_of([&] { copy_model(src, bucket().url(dst), options, registry()); });
    bucket().set_faults("[]");
    CHECK(e.code() == ErrorCode::kUnavailable);
    CHECK(testing::contains(e, "InternalError"));
    CHECK(testing::contains(e, "UploadPart 2/4"));
    CHECK(stats.streamed);
    const std::vector<std::string> log = bucket().requests();
    const size_t opened =
        count_matching(log, std::regex(R"(^POST .*/weights\.[0-9a-f]{8}\.bin\?uploads)"));
    CHECK(opened >= 1);
    // Every upload the copy opened is aborted, and none completed.
    CHECK(count_matching(log, std::regex(R"(^DELETE .*/weights\.[0-9a-f]{8}\.bin\?uploadId=)")) ==
          opened);
    CHECK(count_matching(log, std::regex(R"(^POST .*/weights\.[0-9a-f]{8}\.bin\?uploadId=)")) == 0);
    CHECK(count_matching(log, std::regex(R"(^PUT .*/model\.json)")) == 0);
    CHECK(bucket().direct().list_multipart_uploads(kBucket, dst + "/", {}).empty());
    old.check_unchanged();
  }

  SUBCASE("a multipart weight file: its upload is aborted, no model stays no model") {
    const std::string opts =
        R"({"multipart_threshold": 5242880, "part_size": 5242880, "concurrency": 1})";
    const std::string src = "testmem://" + unique_name("s3-stream-fail-multipart");
    const std::string dst = unique_name("stream/fail-multipart");
    save_model(src, model(16, kMiB, 4.0f), "{}", {}, registry());

    TransferOptions options;
    options.queue_bytes = 8 * kMiB;
    options.destination_options = opts;
    // 12 MiB arrive: parts 1 and 2 are gathered, so part 1 went up.
    options.source_options = R"({"fail_load_after": 12, "fail_code": 6, "fail_retryable": false})";
    bucket().clear_log();
    Error e = error_of([&] { copy_model(src, bucket().url(dst), options, registry()); });
    CHECK(e.code() == ErrorCode::kDataLoss);
    const std::vector<std::string> log = bucket().requests();
    CHECK(count_matching(
              log, std::regex(R"(^PUT .*/weights\.[0-9a-f]{8}\.bin\?.*partNumber=1(&|$))")) == 1);
    CHECK(count_matching(log, std::regex(R"(^DELETE .*/weights\.[0-9a-f]{8}\.bin\?uploadId=)")) ==
          1);
    CHECK(bucket().direct().list_multipart_uploads(kBucket, dst + "/", {}).empty());
    CHECK(bucket().keys_under(dst + "/").empty());
    CHECK(error_of([&] { load_model(bucket().url(dst), "{}", {}, registry()); }).code() ==
          ErrorCode::kNotFound);
  }
}
