// The plugin kit through the real loader: exceptions become statuses,
// options are strict, and the blob-store adapter stores TF.js's layout over
// any key-value store (the kitprobe plugin).
#include <doctest/doctest.h>
#include <rapidjson/document.h>

#include <cstring>

#include "plugin_test_util.hpp"
#include "stowage/blob_store.hpp"
#include "stowage/error.hpp"
#include "stowage/management.hpp"
#include "stowage/registry.hpp"

using namespace stowage;
using testing::contains;
using testing::error_of;
using testing::float_model;
using testing::ramp;
using testing::weight_bytes;

namespace {

Registry& registry() {
  static Registry* r = testing::new_registry(STOWAGE_SDK_TEST_PLUGIN_DIR);
  return *r;
}

}  // namespace

TEST_CASE("blob store: weight files first, model.json last, in one transaction") {
  ModelArtifacts a = float_model(ramp(6, 1.0f), {10});  // 24 bytes in buffers of 10 and 14
  SaveResult r = save_model("kitprobe://order/m", a, R"({"shard_size": 10})", {}, registry());
  REQUIRE(r.responses.has_value());
  CHECK(*r.responses == R"({"put":["order/m/group1-shard1of3.bin","order/m/group1-shard2of3.bin",)"
                        R"("order/m/group1-shard3of3.bin","order/m/model.json"],"removed":[]})");

  ModelArtifacts b = load_model("kitprobe://order/m/model.json", "{}", {}, registry());
  CHECK(weight_bytes(b) == weight_bytes(a));
  REQUIRE(b.weight_data->size() == 3);
  CHECK((*b.weight_data)[2].label() == "kitprobe://order/m/group1-shard3of3.bin");
  // The first shard is the first input buffer itself: no copy on the way.
  CHECK((*b.weight_data)[0].data() == (*a.weight_data)[0].data());
  CHECK(b.weights_manifest->front().paths.size() == 3);
}

TEST_CASE("blob store: the default layout is one weights.bin; an overwrite drops stale shards") {
  save_model("kitprobe://single", float_model(ramp(6, 1.0f)), R"({"shard_size": 10})", {},
             registry());
  SaveResult r = save_model("kitprobe://single", float_model(ramp(3, 1.0f)), "{}", {}, registry());
  CHECK(*r.responses == R"({"put":["single/weights.bin","single/model.json"],"removed":[)"
                        R"("single/group1-shard1of3.bin","single/group1-shard2of3.bin",)"
                        R"("single/group1-shard3of3.bin"]})");
  r = save_model("kitprobe://single", float_model(ramp(2, 1.0f)), "{}", {}, registry());
  CHECK(*r.responses == R"({"put":["single/weights.bin","single/model.json"],"removed":[]})");
}

TEST_CASE("blob store: a missing model is not found") {
  Error none = error_of([] { load_model("kitprobe://nope", "{}", {}, registry()); });
  CHECK(none.code() == ErrorCode::kNotFound);
  CHECK(std::string(none.what()) ==
        "Path kitprobe://nope/model.json does not exist: loading failed");
}

TEST_CASE("blob store: a cancelled save publishes nothing") {
  ModelArtifacts before = float_model(ramp(5, 1.0f));
  save_model("kitprobe://cancel", before, "{}", {}, registry());
  CallContext call;
  call.is_cancelled = [] { return true; };
  Error e = error_of([&] {
    save_model("kitprobe://cancel", float_model(ramp(9, 1.0f)), R"({"shard_size": 8})", call,
               registry());
  });
  CHECK(e.code() == ErrorCode::kCancelled);
  CHECK(weight_bytes(load_model("kitprobe://cancel", "{}", {}, registry())) ==
        weight_bytes(before));
  CHECK(list_models("kitprobe://cancel", registry()).size() == 1);
}

TEST_CASE("blob store: list and remove touch exactly one model's keys") {
  save_model("kitprobe://team/a", float_model(ramp(2, 1.0f)), "{}", {}, registry());
  save_model("kitprobe://team/b", float_model(ramp(4, 1.0f)), R"({"shard_size": 4})", {},
             registry());
  auto models = list_models("kitprobe://team", registry());
  REQUIRE(models.size() == 2);
  CHECK(models[0].url == "kitprobe://team/a/model.json");
  CHECK(models[1].url == "kitprobe://team/b/model.json");
  CHECK(models[1].info.weight_data_bytes == 16u);
  CHECK(models[1].info.date_saved.time_since_epoch().count() > 0);
  CHECK(list_models("kitprobe://team/b/model.json", registry()).size() == 1);

  ModelArtifactsInfo info = remove_model("kitprobe://team/b", registry());
  CHECK(info.weight_data_bytes == 16u);
  models = list_models("kitprobe://team", registry());
  REQUIRE(models.size() == 1);
  CHECK(models[0].url == "kitprobe://team/a/model.json");
  CHECK(error_of([] { remove_model("kitprobe://team/b", registry()); }).code() ==
        ErrorCode::kNotFound);
}

TEST_CASE("blob store: a model saved or removed while it is listed is listed whole or not at all") {
  // Version 1 is 20 bytes in weight files of 8, 8 and 4; version 2 is 28
  // bytes in 10, 10 and 8 under the same three names: the sizes of one
  // listed with the model.json of the other would say 20 for version 2.
  save_model("kitprobe://racing/m", float_model(ramp(5, 1.0f)), R"({"shard_size": 8})", {},
             registry());
  save_model("kitprobe://staging/m", float_model(ramp(7, 1.0f)), R"({"shard_size": 10})", {},
             registry());
  auto list_racing = [](const std::string& race) {
    return registry().open("kitprobe://racing", R"({"race":)" + race + "}")->list();
  };
  SUBCASE("replaced after the folder was listed") {
    auto models = list_racing(R"({"after":"list","to":"racing/m","from":"staging/m"})");
    REQUIRE(models.size() == 1);
    CHECK(models[0].info.weight_data_bytes == 28u);
  }
  SUBCASE("removed right after its model.json was read") {
    CHECK(list_racing(R"({"after":"model_json","to":"racing/m","from":""})").empty());
  }
  SUBCASE("replaced right after its model.json was read") {
    auto models = list_racing(R"({"after":"model_json","to":"racing/m","from":"staging/m"})");
    REQUIRE(models.size() == 1);
    CHECK(models[0].info.weight_data_bytes == 28u);
  }
}

TEST_CASE("kit: every exception becomes a status with the right code") {
  save_model("kitprobe://faults", float_model(ramp(1, 1.0f)), "{}", {}, registry());
  auto load_with = [](const char* fault) {
    return error_of([&] {
      load_model("kitprobe://faults", std::string(R"({"throw": ")") + fault + "\"}", {},
                 registry());
    });
  };
  Error oom = load_with("bad_alloc");
  CHECK(oom.code() == ErrorCode::kResourceExhausted);
  Error runtime = load_with("runtime");
  CHECK(runtime.code() == ErrorCode::kInternal);
  CHECK(contains(runtime, "probe: runtime"));
  Error sys = load_with("system");
  CHECK(sys.code() == ErrorCode::kPermissionDenied);
  Error busy = load_with("retryable");
  CHECK(busy.code() == ErrorCode::kUnavailable);
  CHECK(busy.retryable());
  CHECK(contains(busy, "probe: busy"));
  Error odd = load_with("int");
  CHECK(odd.code() == ErrorCode::kInternal);
}

TEST_CASE("kit: the weight-URL converter reaches the plugin, and its failure fails the call") {
  save_model("kitprobe://convert", float_model(ramp(1, 1.0f)), "{}", {}, registry());
  const std::string options = R"({"convert": "group1-shard1of1.bin"})";
  CallContext call;
  call.weight_url_converter = [](std::string_view path) -> std::optional<std::string> {
    return "https://cdn.example/" + std::string(path);
  };
  ModelArtifacts a = load_model("kitprobe://convert", options, call, registry());
  CHECK(a.user_defined_metadata == R"({"converted":"https://cdn.example/group1-shard1of1.bin"})");

  CHECK(load_model("kitprobe://convert", options, {}, registry()).user_defined_metadata ==
        R"({"converted":null})");

  call.weight_url_converter = [](std::string_view) -> std::optional<std::string> {
    throw Error(ErrorCode::kPermissionDenied, "no signed URL for you");
  };
  Error e = error_of([&] { load_model("kitprobe://convert", options, call, registry()); });
  CHECK(e.code() == ErrorCode::kPermissionDenied);
  CHECK(contains(e, "no signed URL for you"));
}

TEST_CASE("kit: options are strict, nested objects included") {
  Error unknown = error_of([] { registry().open("kitprobe://o", R"({"shard_sise": 1})"); });
  CHECK(unknown.code() == ErrorCode::kInvalidArgument);
  CHECK(contains(unknown, "Unknown option \"shard_sise\" for kitprobe://o"));
  CHECK(contains(unknown, "\"shard_size\""));  // names the options it knows

  Error nested = error_of(
      [] { registry().open("kitprobe://o", R"({"nested": {"depth": 1, "oops": true}})"); });
  CHECK(nested.code() == ErrorCode::kInvalidArgument);
  CHECK(contains(nested, "\"nested.oops\""));

  Error type = error_of([] { registry().open("kitprobe://o", R"({"throw": 5})"); });
  CHECK(type.code() == ErrorCode::kInvalidArgument);
  CHECK(contains(type, "Option \"throw\" for kitprobe://o must be a string, not a number"));

  Error depth = error_of([] { registry().open("kitprobe://o", R"({"nested": {"depth": 1.5}})"); });
  CHECK(contains(depth, "\"nested.depth\""));
  CHECK(error_of([] { registry().open("kitprobe://o", "[1]"); }).code() ==
        ErrorCode::kInvalidArgument);
  CHECK(error_of([] { registry().open("kitprobe://o", "{"); }).code() ==
        ErrorCode::kInvalidArgument);
  CHECK_NOTHROW(registry().open("kitprobe://o", R"({"shard_size": 4194304.0, "nested": {}})"));
}

TEST_CASE("kit: URLs with . or .. segments are refused at open") {
  CHECK(error_of([] { registry().open("kitprobe://a/../b"); }).code() ==
        ErrorCode::kInvalidArgument);
  CHECK(error_of([] { registry().open("kitprobe://./b"); }).code() == ErrorCode::kInvalidArgument);
}

TEST_CASE("locate_model and weight_key") {
  using plugin::locate_model;
  using plugin::weight_key;
  auto l = locate_model("a//b/", "u");
  CHECK(l.folder == "a/b/");
  CHECK(l.model_name == "model.json");
  CHECK_FALSE(l.names_model);
  l = locate_model("a/b/my.json", "u");
  CHECK(l.folder == "a/b/");
  CHECK(l.model_name == "my.json");
  CHECK(l.names_model);
  CHECK(locate_model("", "u").folder.empty());
  CHECK(weight_key("a/", "./w.bin", "s") == "a/w.bin");
  CHECK(weight_key("", "sub/w.bin", "s") == "sub/w.bin");
  for (std::string bad : {"", "/abs", "../x", "a/../../x", "./.."}) {
    CAPTURE(bad);
    CHECK_THROWS_AS(weight_key("a/", bad, "s"), Error);
  }
}
