// Nested URLs through the kit (nested_url.hpp): mirror://<URL>, a decorator
// written with NestedUrl, wraps memory:// through the real registry. Every
// operation must reach the wrapped store and come back as the store gave
// it; the outer call's cancellation and progress must reach the inner
// plugin; nested_open outside open must be refused.
#include <doctest/doctest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "plugin_test_util.hpp"
#include "stowage/error.hpp"
#include "stowage/management.hpp"
#include "stowage/registry.hpp"

using namespace stowage;
using stowage::testing::contains;
using stowage::testing::error_of;
using stowage::testing::float_model;
using stowage::testing::ramp;
using stowage::testing::weight_bytes;

namespace {

Registry& registry() {
  static Registry* r = [] {
    Registry* registry = stowage::testing::new_registry(STOWAGE_SDK_TEST_PLUGIN_DIR);
    registry->add_plugin_folder(STOWAGE_PLUGIN_BUILD_DIR);
    return registry;
  }();
  return *r;
}

std::string what(const Error& e) { return e.what(); }

}  // namespace

TEST_CASE("every operation through a kit decorator reaches the wrapped URL") {
  const ModelArtifacts model = float_model(ramp(5000, 1.5f));
  auto mirror = registry().open("mirror://memory://nested/a");
  auto direct = registry().open("memory://nested/a");

  mirror->save(model);
  ModelArtifacts stored = direct->load();
  CHECK(weight_bytes(stored) == weight_bytes(model));

  ModelArtifacts through = mirror->load();
  CHECK(weight_bytes(through) == weight_bytes(model));
  REQUIRE(through.weight_specs);
  CHECK(through.weight_specs->size() == model.weight_specs->size());
  CHECK(through.model_topology == model.model_topology);

  ModelStat a = mirror->stat();
  ModelStat b = direct->stat();
  CHECK(a.version == b.version);
  CHECK(a.info.weight_data_bytes == b.info.weight_data_bytes);
  CHECK(a.model.model_topology == model.model_topology);

  bool listed = false;
  for (const ListedModel& m : registry().open("mirror://memory://nested")->list()) {
    listed = listed || m.url == "memory://nested/a";
  }
  CHECK(listed);

  ModelArtifactsInfo removed = mirror->remove();
  CHECK(removed.weight_data_bytes == uint64_t{20000});
  Error e = error_of([&] { direct->load(); });
  CHECK(e.code() == ErrorCode::kNotFound);
  // The inner error comes back with its code and message.
  e = error_of([&] { mirror->load(); });
  CHECK(e.code() == ErrorCode::kNotFound);
  CHECK_MESSAGE(contains(e, "memory://nested/a"), what(e));
  CHECK_FALSE(e.retryable());
}

TEST_CASE("the outer call's cancellation and progress reach the wrapped plugin") {
  auto mirror = registry().open("mirror://memory://nested/c");
  mirror->save(float_model(ramp(1000, 2.0f)));

  CallContext call;
  uint64_t last_done = 0;
  uint64_t last_total = 0;
  call.on_progress = [&](uint64_t done, uint64_t total) {
    last_done = done;
    last_total = total;
  };
  mirror->load(call);
  CHECK(last_total == 4000);
  CHECK(last_done == last_total);

  // The outer plugin checks once before it starts; every later poll is the
  // inner plugin's, which must see the cancellation and stop.
  std::atomic<int> polls{0};
  call.is_cancelled = [&] { return ++polls > 1; };
  Error e = error_of([&] { mirror->load(call); });
  CHECK(e.code() == ErrorCode::kCancelled);
  CHECK_MESSAGE(contains(e, "load of memory://nested/c was cancelled"), what(e));
  CHECK(polls > 1);
}

TEST_CASE("nested_open outside the plugin's open is refused with INTERNAL") {
  auto lazy = registry().open("mirror://memory://nested/lazy", R"({"lazy":true})");
  Error e = error_of([&] { lazy->load(); });
  CHECK(e.code() == ErrorCode::kInternal);
  CHECK_MESSAGE(contains(e,
                         "nested_open of 'memory://nested/lazy' was called outside of the "
                         "plugin's open"),
                what(e));
}

TEST_CASE("a single-threaded decorator nested in itself is refused, never a deadlock") {
  auto once = registry().open("mirrorst://memory://nested/st");
  once->save(float_model(ramp(100, 3.0f)));
  CHECK(weight_bytes(once->load()) == weight_bytes(float_model(ramp(100, 3.0f))));

  Error e = error_of([&] { registry().open("mirrorst://mirrorst://memory://nested/st"); });
  CHECK(e.code() == ErrorCode::kInvalidArgument);
  CHECK_MESSAGE(contains(e,
                         "URL 'mirrorst://memory://nested/st' would re-enter a "
                         "single-threaded plugin that is still opening an outer URL: "
                         "mirrorst://mirrorst://memory://nested/st -> "
                         "mirrorst://memory://nested/st"),
                what(e));
}

// abi.h nested_load_stream (ABI 1.5) through the kit's NestedUrl::load_stream:
// mirror:// with "stream" puts each buffer on as the wrapped file:// load
// completes it. A model of 48 weight files of 4000 bytes, queues of one file.
namespace {

struct StreamedFolder {
  std::filesystem::path dir = stowage::testing::scratch("nested-stream");
  std::string file_url = "file://" + (dir / "m").string();
  ModelArtifacts model = float_model(ramp(48000, 0.25f));

  StreamedFolder() { registry().open(file_url, R"({"shard_size":4000})")->save(model); }
  std::unique_ptr<IOHandler> mirror(const std::string& options) const {
    return registry().open("mirror://" + file_url, options);
  }
};

}  // namespace

TEST_CASE("a streamed nested load hands each buffer on while the wrapped load still runs") {
  StreamedFolder f;
  // mirror://mirror://file://...: the inner mirror puts buffer 0 and then
  // waits for the file `go`, which the outermost consumer writes when
  // buffer 0 reaches it. Only a nested load that streams gets it there.
  const std::filesystem::path go = f.dir / "go";
  auto nested_twice = [&](bool outer_streams, uint64_t hold_ms) {
    const std::string inner = R"({"stream":true,"hold_after":1,"until":")" + go.string() +
                              R"(","hold_ms":)" + std::to_string(hold_ms) + "}";
    return registry().open("mirror://mirror://" + f.file_url,
                           std::string(R"({"stream":)") + (outer_streams ? "true" : "false") +
                               R"(,"queue_bytes":4000,"inner_options":)" + inner + "}");
  };
  std::string bytes;
  auto consume = [&](uint64_t index, const Buffer& b) {
    if (index == 0) std::ofstream(go).put('1');
    bytes.append(reinterpret_cast<const char*>(b.data()), b.size());
  };
  load_model_streaming(
      *nested_twice(true, 60000), [](const ModelArtifacts&) {}, consume, {}, 4000);
  CHECK(bytes == weight_bytes(f.model));

  // The control: an outer mirror that loads whole (nested_load) never lets
  // buffer 0 out before the inner load ends, so the inner one gives up.
  std::filesystem::remove(go);
  bytes.clear();
  Error e = error_of([&] {
    load_model_streaming(
        *nested_twice(false, 300), [](const ModelArtifacts&) {}, consume, {}, 4000);
  });
  CHECK(e.code() == ErrorCode::kDeadlineExceeded);
  CHECK_MESSAGE(contains(e, "mirror: " + go.string() + " did not appear within 300 ms"), what(e));
  CHECK(bytes.empty());
}

TEST_CASE("a streamed nested load gives the same model, checked against its digests") {
  StreamedFolder f;
  ModelArtifacts through = f.mirror(R"({"stream":true})")->load();
  CHECK(weight_bytes(through) == weight_bytes(f.model));
  REQUIRE(through.weight_data);
  CHECK(through.weight_data->size() == 48);

  // A copy out of it streams on through the outer queue too.
  TransferStats stats;
  TransferOptions options;
  options.source_options = R"({"stream":true,"queue_bytes":8000})";
  options.queue_bytes = 8000;
  options.stats = &stats;
  const std::string copy_url = "file://" + (f.dir / "copy").string();
  copy_model("mirror://" + f.file_url, copy_url, options, registry());
  CHECK(stats.streamed);
  CHECK(stats.peak_queued_bytes <= 8000);
  CHECK(weight_bytes(registry().open(copy_url)->load()) == weight_bytes(f.model));

  // A weight file whose bytes no longer match its recorded digest fails the
  // streamed load with DATA_LOSS naming it, as a whole load does.
  const std::filesystem::path shard = f.dir / "m" / "group1-shard7of48.bin";
  REQUIRE(std::filesystem::exists(shard));
  {
    std::fstream out(shard, std::ios::in | std::ios::out | std::ios::binary);
    out.seekp(100);
    out.put('\x7f');
  }
  Error e = error_of([&] { f.mirror(R"({"stream":true})")->load(); });
  CHECK(e.code() == ErrorCode::kDataLoss);
  CHECK_MESSAGE(contains(e, "group1-shard7of48.bin"), what(e));
}

TEST_CASE("a consumer that throws stops a streamed nested load with its own error") {
  StreamedFolder f;
  Error e = error_of([&] { f.mirror(R"({"stream":true,"stop_after":3})")->load(); });
  CHECK(e.code() == ErrorCode::kInvalidArgument);
  CHECK_MESSAGE(contains(e, "mirror: the consumer stops after 3 buffers"), what(e));
  // The handle still works afterwards.
  CHECK(weight_bytes(f.mirror(R"({"stream":true})")->load()) == weight_bytes(f.model));
}
