// memory:// through the real loader: the plugin is found in the build tree's
// plugin folder and loaded by stowage::Registry, never linked in.
#include <doctest/doctest.h>

#include <atomic>
#include <cstring>
#include <thread>

#include "plugin_test_util.hpp"
#include "stowage/digest.hpp"
#include "stowage/error.hpp"
#include "stowage/management.hpp"
#include "stowage/registry.hpp"

using namespace stowage;
using testing::error_of;
using testing::float_model;
using testing::ramp;
using testing::registry;
using testing::weight_bytes;

TEST_CASE("memory:// round trip hands back the saved buffers themselves") {
  ModelArtifacts a = float_model(ramp(10, 1.0f), {8, 20});
  a.user_defined_metadata = R"({"k":1})";
  save_model("memory://zero-copy", a, "{}", {}, registry());
  ModelArtifacts b = load_model("memory://zero-copy", "{}", {}, registry());
  REQUIRE(b.weight_data->size() == 3);
  for (size_t i = 0; i < 3; ++i) {
    CHECK((*b.weight_data)[i].data() == (*a.weight_data)[i].data());  // no copy either way
    CHECK((*b.weight_data)[i].size() == (*a.weight_data)[i].size());
    CHECK((*b.weight_data)[i].label() == "memory://zero-copy");
  }
  CHECK(b.weight_specs == a.weight_specs);
  CHECK_FALSE(b.weights_manifest.has_value());  // a flat weightSpecs, as passthrough handlers give
  CHECK(b.model_topology == a.model_topology);
  CHECK(b.user_defined_metadata == a.user_defined_metadata);
  CHECK(b.format == a.format);
  CHECK(b.generated_by == a.generated_by);
  CHECK(b.converted_by == a.converted_by);
}

TEST_CASE("memory:// keeps the bytes alive after the caller drops its buffers") {
  const uint8_t* data = nullptr;
  std::string expected;
  {
    ModelArtifacts a = float_model(ramp(1000, -5.0f));
    data = a.weight_data->front().data();
    expected = weight_bytes(a);
    save_model("memory://kept", a, "{}", {}, registry());
  }
  ModelArtifacts b = load_model("memory://kept", "{}", {}, registry());
  CHECK(b.weight_data->front().data() == data);
  CHECK(weight_bytes(b) == expected);
}

TEST_CASE("memory:// save replaces, remove forgets, missing models are not found") {
  save_model("memory://replace", float_model(ramp(4, 0.0f)), "{}", {}, registry());
  ModelArtifacts second = float_model(ramp(6, 9.0f));
  save_model("memory://replace", second, "{}", {}, registry());
  CHECK(weight_bytes(load_model("memory://replace", "{}", {}, registry())) == weight_bytes(second));

  ModelArtifactsInfo info = remove_model("memory://replace", registry());
  CHECK(info.weight_data_bytes == 24u);
  Error gone = error_of([] { load_model("memory://replace", "{}", {}, registry()); });
  CHECK(gone.code() == ErrorCode::kNotFound);
  CHECK(std::string(gone.what()).find("memory://replace") != std::string::npos);
  CHECK(error_of([] { remove_model("memory://replace", registry()); }).code() ==
        ErrorCode::kNotFound);
}

TEST_CASE("memory:// list: every model, or those under a name prefix") {
  save_model("memory://team/a", float_model(ramp(1, 0.0f)), "{}", {}, registry());
  save_model("memory://team/b/c", float_model(ramp(2, 0.0f)), "{}", {}, registry());
  save_model("memory://team", float_model(ramp(3, 0.0f)), "{}", {}, registry());
  save_model("memory://teammate", float_model(ramp(3, 0.0f)), "{}", {}, registry());

  std::vector<std::string> urls;
  for (const ListedModel& m : list_models("memory://team", registry())) urls.push_back(m.url);
  CHECK(urls == std::vector<std::string>{"memory://team", "memory://team/a", "memory://team/b/c"});

  urls.clear();
  for (const ListedModel& m : list_models("memory://team/", registry())) urls.push_back(m.url);
  CHECK(urls == std::vector<std::string>{"memory://team/a", "memory://team/b/c"});

  auto all = list_models("memory://", registry());
  CHECK(all.size() >= 4);
  for (const ListedModel& m : list_models("memory://team/b", registry())) {
    CHECK(m.url == "memory://team/b/c");
    CHECK(m.info.weight_data_bytes == 8u);
    CHECK(m.info.model_topology_type == "JSON");
  }
}

TEST_CASE("memory:// refuses empty names and any option but integrity") {
  Error empty =
      error_of([] { save_model("memory://", float_model(ramp(1, 0.0f)), "{}", {}, registry()); });
  CHECK(empty.code() == ErrorCode::kInvalidArgument);
  CHECK(error_of([] { load_model("memory://", "{}", {}, registry()); }).code() ==
        ErrorCode::kInvalidArgument);
  Error option = error_of([] { registry().open("memory://x", R"({"shard_size": 1})"); });
  CHECK(option.code() == ErrorCode::kInvalidArgument);
  CHECK(std::string(option.what()).find("\"shard_size\"") != std::string::npos);
}

TEST_CASE("memory:// a cancelled save leaves the previous model") {
  ModelArtifacts first = float_model(ramp(4, 1.0f));
  save_model("memory://cancel", first, "{}", {}, registry());
  CallContext call;
  call.is_cancelled = [] { return true; };
  Error e = error_of(
      [&] { save_model("memory://cancel", float_model(ramp(8, 0.0f)), "{}", call, registry()); });
  CHECK(e.code() == ErrorCode::kCancelled);
  CHECK(weight_bytes(load_model("memory://cancel", "{}", {}, registry())) == weight_bytes(first));
}

TEST_CASE("memory:// concurrent loads during saves see one whole model") {
  ModelArtifacts a = float_model(ramp(100, 0.0f), {40});
  ModelArtifacts b = float_model(ramp(50, 7.0f));
  save_model("memory://race", a, "{}", {}, registry());
  std::atomic<bool> done{false};
  std::atomic<int> bad{0};
  std::thread reader([&] {
    while (!done) {
      ModelArtifacts got = load_model("memory://race", "{}", {}, registry());
      std::string bytes = weight_bytes(got);
      if (!(got.weight_specs == a.weight_specs && bytes == weight_bytes(a)) &&
          !(got.weight_specs == b.weight_specs && bytes == weight_bytes(b))) {
        ++bad;
      }
    }
  });
  for (int i = 0; i < 200; ++i) save_model("memory://race", i % 2 ? a : b, "{}", {}, registry());
  done = true;
  reader.join();
  CHECK(bad == 0);
}

TEST_CASE("memory:// a model saved through one registry is seen by another") {
  save_model("memory://shared", float_model(ramp(2, 3.0f)), "{}", {}, registry());
  Registry other;
  other.add_plugin_folder(STOWAGE_PLUGIN_BUILD_DIR);
  CHECK(weight_bytes(load_model("memory://shared", "{}", {}, other)) ==
        weight_bytes(float_model(ramp(2, 3.0f))));
}

TEST_CASE("memory:// stat: the model without buffers, a version per save, NOT_FOUND") {
  auto stat = [](const std::string& url) { return registry().open(url)->stat(); };
  ModelArtifacts a = float_model(ramp(10, 1.0f), {8, 20});
  save_model("memory://stat", a, "{}", {}, registry());
  ModelStat s = stat("memory://stat");
  CHECK_FALSE(s.model.weight_data.has_value());
  CHECK(s.model.weight_specs == a.weight_specs);
  CHECK(s.model.model_topology == a.model_topology);
  CHECK(s.info.weight_data_bytes == std::optional<uint64_t>(40));
  CHECK(s.info.model_topology_bytes == artifacts_info(a).model_topology_bytes);
  CHECK(stat("memory://stat").version == s.version);

  save_model("memory://stat", a, "{}", {}, registry());  // the same model again is a new save
  const std::string resaved = stat("memory://stat").version;
  CHECK(resaved != s.version);
  registry().open("memory://stat")->remove();
  save_model("memory://stat", a, "{}", {}, registry());
  CHECK(stat("memory://stat").version != resaved);
  CHECK(stat("memory://stat").version != s.version);

  Error missing = error_of([&] { stat("memory://no-such-model"); });
  CHECK(missing.code() == ErrorCode::kNotFound);
  CHECK(std::string(missing.what()) == "Cannot find model at memory://no-such-model");
}

TEST_CASE("memory:// integrity sha256: loads describe the kept buffers with their digests") {
  ModelArtifacts a = float_model(ramp(10, 1.0f), {8, 20});
  auto check = [&](const ModelArtifacts& b, bool same_buffers) {
    REQUIRE(b.weights_manifest);
    REQUIRE(b.weights_manifest->size() == 1);
    const WeightGroup& g = b.weights_manifest->front();
    CHECK(g.paths == std::vector<std::string>{"buffer-0", "buffer-1", "buffer-2"});
    CHECK(g.weights == *a.weight_specs);
    REQUIRE(g.sha256);
    REQUIRE(b.weight_data->size() == 3);
    for (size_t i = 0; i < 3; ++i) {
      CHECK((*g.sha256)[i] == sha256_hex((*a.weight_data)[i].bytes()));
      CHECK(((*b.weight_data)[i].data() == (*a.weight_data)[i].data()) == same_buffers);
    }
    CHECK(weight_bytes(b) == weight_bytes(a));
  };
  save_model("memory://digests", a, R"({"integrity": "sha256"})", {}, registry());
  check(load_model("memory://digests", "{}", {}, registry()), true);  // still no copy

  // A streamed save hashes each buffer as it copies it.
  TransferOptions options;
  options.destination_options = R"({"integrity": "sha256"})";
  TransferStats stats;
  options.stats = &stats;
  copy_model("memory://digests", "memory://digests-copy", options, registry());
  CHECK(stats.streamed);
  check(load_model("memory://digests-copy", "{}", {}, registry()), false);

  // The default records none: the flat weightSpecs of a passthrough handler.
  save_model("memory://no-digests", a, "{}", {}, registry());
  CHECK_FALSE(load_model("memory://no-digests", "{}", {}, registry()).weights_manifest);

  Error bad = error_of([] { registry().open("memory://x", R"({"integrity": "crc32"})"); });
  CHECK(bad.code() == ErrorCode::kInvalidArgument);
  CHECK(std::string(bad.what()) ==
        "Option \"integrity\" for memory://x must be one of \"sha256\", \"none\", not "
        "\"crc32\"");
}
