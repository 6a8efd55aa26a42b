// The fault table for streaming copies (ABI 1.1): a copy whose source load
// fails (injected by fault:// around an s3:// source: moto, started here),
// or that the caller cancels half way through the save, into every writable
// scheme that saves from a stream. Each destination must end exactly as it
// was: the old model, or no model.
//
// The source's s3:// handler is opened by fault:// through the host's
// registry (a nested URL), the destinations' directly.
#include <doctest/doctest.h>
#include <rapidjson/document.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "plugin_test_util.hpp"
#include "stowage/config.hpp"
#include "stowage/error.hpp"
#include "stowage/management.hpp"
#include "stowage/registry.hpp"
#include "testing/s3_test_server.hpp"

namespace fs = std::filesystem;
using namespace stowage;
using stowage::testing::contains;
using stowage::testing::error_of;
using stowage::testing::float_model;
using stowage::testing::ramp;
using stowage::testing::weight_bytes;

namespace {

const char* kBucket = "stowage-fault-stream";
constexpr uint64_t kShard = 1 << 20;

Registry& registry() {
  static Registry* r = [] {
    Registry* registry = stowage::testing::new_registry(STOWAGE_PLUGIN_BUILD_DIR);
    registry->add_plugin(fs::path(STOWAGE_FAULT_PLUGIN_DIR) / "stowage-fault.json");
    registry->apply_config(
        parse_config(R"({"retry":{"max_attempts":4,"initial_backoff_ms":1,"max_backoff_ms":5,)"
                     R"("total_deadline_ms":20000}})",
                     "the test's config", {}));
    return registry;
  }();
  return *r;
}

fs::path scratch() {
  static fs::path dir = [] {
    std::string tmpl = (fs::temp_directory_path() / "stowage-fault-stream-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    return fs::path(tmpl);
  }();
  return dir;
}

s3::testing::S3TestServer& moto() {
  static std::unique_ptr<s3::testing::S3TestServer> server = [] {
    auto s =
        std::make_unique<s3::testing::S3TestServer>(std::vector<std::string>{"--bucket", kBucket});
    ::setenv("AWS_ACCESS_KEY_ID", s->access_key_id.c_str(), 1);
    ::setenv("AWS_SECRET_ACCESS_KEY", s->secret_access_key.c_str(), 1);
    return s;
  }();
  return *server;
}

// The source, through the decorator with `faults` on it.
std::string source_url(const std::string& name) {
  return std::string("fault://s3://") + kBucket + "/" + name + "?endpoint=" + moto().endpoint;
}
std::string source_options(const std::string& faults) {
  return R"({"inner_options":{"shard_size":)" + std::to_string(kShard) + R"(},"faults":)" + faults +
         "}";
}

// The schemes whose plugins declare streaming_save, as `stowage plugins
// --load --json` reports them: in a child process, which may load every
// plugin directly.
std::vector<std::string> streaming_save_schemes() {
  const std::string command = std::string(STOWAGE_CLI_EXE) + " plugins --load --json";
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(::popen(command.c_str(), "r"), ::pclose);
  REQUIRE(pipe);
  std::string out;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, pipe.get())) > 0;) out.append(buf, n);
  rapidjson::Document doc;
  doc.Parse(out.c_str());
  REQUIRE_MESSAGE(doc.IsObject(), out);
  std::vector<std::string> schemes;
  for (const auto& p : doc["plugins"].GetArray()) {
    for (const auto& m : p["schemeCapabilities"].GetObject()) {
      for (const auto& cap : m.value.GetArray()) {
        if (std::string(cap.GetString()) == "streaming_save")
          schemes.emplace_back(m.name.GetString());
      }
    }
  }
  return schemes;
}

// A model at `name` in every writable scheme that streams saves; a scheme
// that starts streaming fails here until it has a row.
std::map<std::string, std::function<std::string(const std::string&)>> streaming_destinations() {
  const std::map<std::string, std::function<std::string(const std::string&)>> known = {
      {"file", [](const std::string& n) { return "file://" + (scratch() / "file" / n).string(); }},
      {"memory", [](const std::string& n) { return "memory://fault-stream/" + n; }},
      {"s3",
       [](const std::string& n) {
         return std::string("s3://") + kBucket + "/dst/" + n + "?endpoint=" + moto().endpoint;
       }},
  };
  std::map<std::string, std::function<std::string(const std::string&)>> out;
  for (const std::string& scheme : streaming_save_schemes()) {
    const auto it = known.find(scheme);
    REQUIRE_MESSAGE(it != known.end(),
                    "scheme '" << scheme << "' saves from streams: give it a row");
    out.insert(*it);
  }
  return out;
}

ModelArtifacts old_model() { return float_model(ramp(1000, -1.0f)); }
ModelArtifacts new_model() { return float_model(ramp(786432, 2.0f)); }  // 3 MiB, 3 objects

struct Fault {
  std::string name;
  std::string rules;
  ErrorCode code;
  std::string message;  // a part of the error
  // The caller cancels once the copy's progress passed 3/4: the load (3 MiB
  // of 6 MiB reported) is done and the save half way.
  bool cancel_midway = false;
};

}  // namespace

TEST_CASE("a streaming copy whose source fails midway leaves every destination as it was") {
  const auto destinations = streaming_destinations();
  REQUIRE(destinations.count("file") == 1);
  REQUIRE(destinations.count("memory") == 1);
  REQUIRE(destinations.count("s3") == 1);

  // The source, seeded through the decorator without faults.
  registry().open(source_url("src"), source_options("[]"))->save(new_model());

  const std::vector<Fault> faults = {
      {"cancelled half way through the save", "[]", ErrorCode::kCancelled, "", true},
      // The source records digests (file://'s default), so the short buffer
      // is refused by its digest as it is put, before the sizes are summed.
      {"a short read of the second object", R"([{"op":"load","short_read":4,"buffer":1}])",
       ErrorCode::kDataLoss, "1048572 bytes) has SHA-256 "},
      {"a failure after the last byte", R"([{"op":"load","error":"data_loss","when":"after"}])",
       ErrorCode::kDataLoss, ""},
  };
  int row = 0;
  for (const auto& [scheme, url_of] : destinations) {
    for (const Fault& f : faults) {
      for (const bool had_model : {true, false}) {
        CAPTURE(scheme);
        CAPTURE(f.name);
        CAPTURE(had_model);
        const std::string dst = url_of("row" + std::to_string(++row));
        if (had_model) save_model(dst, old_model(), "{}", {}, registry());
        TransferStats stats;
        TransferOptions options;
        options.source_options = source_options(f.rules);
        options.queue_bytes = kShard;
        options.stats = &stats;
        std::atomic<bool> cancel{false};
        if (f.cancel_midway) {
          options.call.on_progress = [&](uint64_t done, uint64_t total) {
            if (total > 0 && done * 4 >= total * 3 && done < total) cancel = true;
          };
          options.call.is_cancelled = [&] { return cancel.load(); };
        }
        Error e = error_of([&] { copy_model(source_url("src"), dst, options, registry()); });
        CHECK(cancel == f.cancel_midway);
        CHECK(stats.streamed);
        CHECK_MESSAGE(e.code() == f.code, e.what());
        CHECK_MESSAGE(contains(e, f.message), e.what());
        if (had_model) {
          CHECK(weight_bytes(load_model(dst, "{}", {}, registry())) == weight_bytes(old_model()));
        } else {
          Error none = error_of([&] { load_model(dst, "{}", {}, registry()); });
          CHECK_MESSAGE(none.code() == ErrorCode::kNotFound, none.what());
        }
      }
    }
  }
  // Nothing of the failed saves is left beside the file:// models.
  for (const auto& e : fs::directory_iterator(scratch() / "file")) {
    CHECK_MESSAGE(e.path().filename().string().find(".stowage-tmp-") == std::string::npos,
                  e.path());
  }
  // And the same copy without faults goes through, streamed.
  for (const auto& [scheme, url_of] : destinations) {
    CAPTURE(scheme);
    const std::string dst = url_of("clean");
    TransferStats stats;
    TransferOptions options;
    options.source_options = source_options("[]");
    options.queue_bytes = kShard;
    options.stats = &stats;
    copy_model(source_url("src"), dst, options, registry());
    CHECK(stats.streamed);
    // Known gap: from this s3:// source into s3:// the copy peaks at the
    // whole model (3 MiB), whatever the destination's shard size or
    // concurrency; s3:// destinations' bound is asserted from memory
    // sources in plugins/s3/s3_stream_save_test.cpp.
    if (scheme != "s3") CHECK(stats.peak_queued_bytes <= 2 * kShard);
    CHECK(weight_bytes(load_model(dst, "{}", {}, registry())) == weight_bytes(new_model()));
  }
}
