// localstorage://, indexeddb:// and downloads:// through the real loader: the
// plugin is found in the build tree's plugin folder and loaded by
// stowage::Registry. The stores' own classes (linked in) only look at what
// the plugin wrote, or plant data as a browser or an older TF.js left it.
#include <doctest/doctest.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "indexed_db_internal.hpp"
#include "local_storage_internal.hpp"
#include "plugin_test_util.hpp"
#include "stowage/digest.hpp"
#include "stowage/management.hpp"
#include "stowage/model_json.hpp"
#include "stowage/registry.hpp"
#include "stowage/weights.hpp"
#include "test_files.hpp"

namespace fs = std::filesystem;
using namespace stowage;
using testing::contains;
using testing::error_of;
using testing::float_bytes;
using testing::float_model;
using testing::ramp;
using testing::weight_bytes;

using testing::registry;
namespace {

class TempDir : public stowage::testing::TempDir {
 public:
  TempDir() : stowage::testing::TempDir("stowage-browser-test") {}
};

// A profile folder and the options that select it.
class Profile : public TempDir {
 public:
  // Options JSON: the profile plus `extra` members (",\"quota\":100").
  std::string options(const std::string& extra = "") const {
    return "{\"profile\":" + json::quote(path().string()) + extra + "}";
  }
  browser::StoreLocation where(const std::string& origin = "http://localhost") const {
    return {path(), browser::normalize_origin(origin)};
  }
  browser::LocalStorage local(const std::string& origin = "http://localhost") const {
    return browser::LocalStorage(where(origin), browser::kDefaultLocalStorageQuota, {});
  }
  browser::IndexedDb indexed(const std::string& origin = "http://localhost") const {
    return browser::IndexedDb(where(origin), ~0ull, browser::kDefaultChunkSize, {});
  }
  std::map<std::string, std::string> items(const std::string& origin = "http://localhost") const {
    std::map<std::string, std::string> out;
    for (auto& [k, v] : local(origin).items()) out[k] = v;
    return out;
  }
};

SaveResult save(const std::string& url, const ModelArtifacts& a, const std::string& options,
                const CallContext& call = {}) {
  return registry().open(url, options)->save(a, call);
}
ModelArtifacts load(const std::string& url, const std::string& options,
                    const CallContext& call = {}) {
  return registry().open(url, options)->load(call);
}
std::vector<ListedModel> list(const std::string& url, const std::string& options) {
  return registry().open(url, options)->list();
}
ModelArtifactsInfo remove(const std::string& url, const std::string& options) {
  return registry().open(url, options)->remove();
}

std::set<std::string> urls(const std::vector<ListedModel>& models) {
  std::set<std::string> out;
  for (const auto& m : models) out.insert(m.url);
  return out;
}

// The artifacts of the verified example in spec §4.2.
ModelArtifacts spec_example() {
  ModelArtifacts a;
  a.model_topology = R"({"a":1})";
  a.weight_specs = std::vector<WeightSpec>{WeightSpec{"w", {2}, "float32", {}, {}}};
  a.weight_data = WeightData{Buffer::copy_of(float_bytes({1.0f, 2.0f}))};
  a.format = "layers-model";
  a.generated_by = "g";
  a.converted_by = NullableString::null();
  a.user_defined_metadata = R"({"u":1})";
  a.training_config = R"({"loss":"x","optimizer_config":{}})";
  return a;
}

std::string without_date(const std::string& info) {
  return std::regex_replace(info, std::regex(R"("dateSaved":"[^"]*")"), R"("dateSaved":"<ISO>")");
}

// A float model of `bytes` weight bytes (a multiple of 4), all equal to v.
ModelArtifacts sized_model(uint64_t bytes, float v = 1.5f) {
  return float_model(std::vector<float>(bytes / 4, v));
}

void check_same_model(const ModelArtifacts& a, const ModelArtifacts& b) {
  CHECK(a.model_topology == b.model_topology);
  CHECK(a.format == b.format);
  CHECK(a.generated_by == b.generated_by);
  CHECK(a.converted_by == b.converted_by);
  CHECK(a.training_config == b.training_config);
  CHECK(a.user_defined_metadata == b.user_defined_metadata);
  CHECK(a.signature == b.signature);
  CHECK(a.model_initializer == b.model_initializer);
  CHECK(a.initializer_signature == b.initializer_signature);
  REQUIRE(a.weight_specs.has_value() == b.weight_specs.has_value());
  if (a.weight_specs) CHECK(specs_to_json(*a.weight_specs) == specs_to_json(*b.weight_specs));
  REQUIRE(a.weight_data.has_value() == b.weight_data.has_value());
  if (a.weight_data) CHECK(weight_bytes(a) == weight_bytes(b));
}

// Sets an environment variable for one scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

// ---- localStorage -------------------------------------------------------------

TEST_CASE("localstorage: the items are exactly what TF.js writes (spec 4.2 example)") {
  Profile p;
  save("localstorage://my/model", spec_example(), p.options());
  const auto items = p.items();
  REQUIRE(items.size() == 5);
  const std::string k = "tensorflowjs_models/my/model/";
  CHECK(without_date(items.at(k + "info")) ==
        R"({"dateSaved":"<ISO>","modelTopologyType":"JSON","modelTopologyBytes":7,)"
        R"("weightSpecsBytes":44,"weightDataBytes":8})");
  CHECK(items.at(k + "model_topology") == R"({"a":1})");
  CHECK(items.at(k + "weight_specs") == R"([{"name":"w","shape":[2],"dtype":"float32"}])");
  CHECK(items.at(k + "weight_data") == "AACAPwAAAEA=");
  CHECK(items.at(k + "model_metadata") ==
        R"({"format":"layers-model","generatedBy":"g","convertedBy":null,"userDefinedMetadata":)"
        R"({"u":1},"trainingConfig":{"loss":"x","optimizer_config":{}}})");
  // dateSaved is an ISO time of this save.
  const ModelArtifactsInfo info = info_from_json(items.at(k + "info"), "info");
  CHECK(std::chrono::system_clock::now() - info.date_saved < std::chrono::minutes(1));
}

TEST_CASE("localstorage: model_metadata keeps TF.js's key order with every field") {
  Profile p;
  ModelArtifacts a = spec_example();
  a.signature = R"({"s":1})";
  a.model_initializer = R"({"i":1})";
  a.initializer_signature = R"({"j":1})";
  a.converted_by = "1.13.1";
  save("localstorage://m", a, p.options());
  CHECK(p.items().at("tensorflowjs_models/m/model_metadata") ==
        R"({"format":"layers-model","generatedBy":"g","convertedBy":"1.13.1","signature":{"s":1},)"
        R"("userDefinedMetadata":{"u":1},"modelInitializer":{"i":1},"initializerSignature":)"
        R"({"j":1},"trainingConfig":{"loss":"x","optimizer_config":{}}})");
  check_same_model(load("localstorage://m", p.options()), a);
}

TEST_CASE("localstorage: save-load round trip keeps every field and the bytes") {
  Profile p;
  ModelArtifacts a = float_model(ramp(1000, -3.0f), {100, 2000});
  a.converted_by = "1.13.1";
  a.user_defined_metadata = "{}";
  a.model_initializer = "{}";
  a.training_config = R"({"loss":"categoricalCrossentropy","metrics":["accuracy"]})";
  save("localstorage://foo/FooModel", a, p.options());
  const ModelArtifacts b = load("localstorage://foo/FooModel", p.options());
  check_same_model(a, b);
  // One buffer, as TF.js decodes weight_data into one ArrayBuffer.
  CHECK(b.weight_data->size() == 1);
}

TEST_CASE("localstorage: data written by older TF.js versions loads") {
  Profile p;
  const std::string k = "tensorflowjs_models/old/";
  const std::string specs = R"([{"name":"w","shape":[2],"dtype":"float32"}])";
  SUBCASE("v0: no model_metadata item at all") {
    p.local().put_items({{k + "info", R"({"dateSaved":"2018-01-01T00:00:00.000Z",)"
                                      R"("modelTopologyType":"JSON"})"},
                         {k + "model_topology", R"({"a":1})"},
                         {k + "weight_specs", specs},
                         {k + "weight_data", "AACAPwAAAEA="}},
                        false);
    const ModelArtifacts a = load("localstorage://old", p.options());
    CHECK(a.model_topology == R"({"a":1})");
    CHECK_FALSE(a.format.present());
    CHECK_FALSE(a.generated_by.present());
    CHECK_FALSE(a.converted_by.present());
    CHECK_FALSE(a.training_config);
    CHECK_FALSE(a.user_defined_metadata);
    CHECK(weight_bytes(a) == std::string("\0\0\x80\x3f\0\0\0\x40", 8));
  }
  SUBCASE("before 2.8.0: format, generatedBy and convertedBy only") {
    p.local().put_items(
        {{k + "info", R"({"dateSaved":"2019-01-01T00:00:00.000Z","modelTopologyType":"JSON"})"},
         {k + "model_topology", R"({"a":1})"},
         {k + "weight_specs", specs},
         {k + "weight_data", "AACAPwAAAEA="},
         {k + "model_metadata",
          R"({"format":"layers-model","generatedBy":"x","convertedBy":null})"}},
        false);
    const ModelArtifacts a = load("localstorage://old", p.options());
    CHECK(a.format == NullableString("layers-model"));
    CHECK(a.converted_by.is_null());
    CHECK_FALSE(a.user_defined_metadata);
  }
}

TEST_CASE("localstorage: loading follows TF.js's steps and messages") {
  Profile p;
  save("localstorage://FooModel", spec_example(), p.options());
  auto drop = [&p](const std::string& part) {
    auto items = p.local().items();
    std::vector<std::pair<std::string, std::string>> keep;
    for (auto& kv : items) {
      if (kv.first != "tensorflowjs_models/FooModel/" + part) keep.push_back(kv);
    }
    p.local().put_items(keep, /*clear=*/true);
  };
  SUBCASE("nonexistent") {
    Error e = error_of([&] { load("localstorage://NonexistentModel", p.options()); });
    CHECK(e.code() == ErrorCode::kNotFound);
    CHECK(std::string(e.what()) ==
          "In local storage, there is no model with name 'NonexistentModel'");
  }
  SUBCASE("missing topology") {
    drop("model_topology");
    Error e = error_of([&] { load("localstorage://FooModel", p.options()); });
    CHECK(std::string(e.what()) ==
          "In local storage, the topology of model 'FooModel' is missing.");
  }
  SUBCASE("missing weight specs") {
    drop("weight_specs");
    Error e = error_of([&] { load("localstorage://FooModel", p.options()); });
    CHECK(std::string(e.what()) ==
          "In local storage, the weight specs of model 'FooModel' are missing.");
  }
  SUBCASE("missing weight data") {
    drop("weight_data");
    Error e = error_of([&] { load("localstorage://FooModel", p.options()); });
    CHECK(std::string(e.what()) ==
          "In local storage, the binary weight values of model 'FooModel' are missing.");
  }
  SUBCASE("weight data that is not base64") {
    p.local().put_items({{"tensorflowjs_models/FooModel/weight_data", "AAC*PwAAAEA="}}, false);
    Error e = error_of([&] { load("localstorage://FooModel", p.options()); });
    CHECK(e.code() == ErrorCode::kDataLoss);
    CHECK(contains(e, "not valid base64"));
  }
  SUBCASE("non-JSON topology type") {
    p.local().put_items(
        {{"tensorflowjs_models/FooModel/info",
          R"({"dateSaved":"2020-01-01T00:00:00.000Z","modelTopologyType":"GraphDef"})"}},
        false);
    Error e = error_of([&] { load("localstorage://FooModel", p.options()); });
    CHECK(std::string(e.what()) ==
          "BrowserLocalStorage does not support loading non-JSON model topology yet.");
  }
  SUBCASE("empty path") {
    Error e = error_of([&] { load("localstorage://", p.options()); });
    CHECK(e.code() == ErrorCode::kInvalidArgument);
    CHECK(std::string(e.what()) ==
          "For local storage, modelPath must not be null, undefined or empty.");
    e = error_of([&] { save("localstorage://", spec_example(), p.options()); });
    CHECK(std::string(e.what()) ==
          "For local storage, modelPath must not be null, undefined or empty.");
  }
}

TEST_CASE("localstorage: a topology-only save stores TF.js's strings and still loads") {
  Profile p;
  ModelArtifacts a;
  a.model_topology = R"({"t":1})";
  a.format = "layers-model";
  save("localstorage://topo", a, p.options());
  const auto items = p.items();
  CHECK(items.at("tensorflowjs_models/topo/weight_specs") == "undefined");
  CHECK(items.at("tensorflowjs_models/topo/weight_data") == "");
  const ModelArtifacts b = load("localstorage://topo", p.options());
  CHECK(b.model_topology == a.model_topology);
  CHECK_FALSE(b.weight_specs);
  CHECK_FALSE(b.weight_data);
}

TEST_CASE("localstorage: listModels and removeModel as TF.js") {
  Profile p;
  CHECK(list("localstorage://", p.options()).empty());
  const SaveResult r = save("localstorage://baz/QuxModel", spec_example(), p.options());
  auto models = list("localstorage://", p.options());
  REQUIRE(models.size() == 1);
  CHECK(models[0].url == "localstorage://baz/QuxModel");
  CHECK(models[0].info.model_topology_bytes == r.model_artifacts_info.model_topology_bytes);
  CHECK(models[0].info.weight_specs_bytes == r.model_artifacts_info.weight_specs_bytes);
  CHECK(models[0].info.weight_data_bytes == r.model_artifacts_info.weight_data_bytes);

  save("localstorage://QuxModel", spec_example(), p.options());
  save("localstorage://repeat/QuxModel", spec_example(), p.options());
  // A key that is not a model's info, and a stale model_metadata of a
  // removed model (TF.js before 3.8.0 left them behind), are no models.
  p.local().put_items({{"tensorflowjs_models/gone/model_metadata", "{}"}, {"other", "x"}}, false);
  CHECK(urls(list("localstorage://", p.options())) ==
        std::set<std::string>{"localstorage://QuxModel", "localstorage://baz/QuxModel",
                              "localstorage://repeat/QuxModel"});
  CHECK(urls(list("localstorage://repeat", p.options())) ==
        std::set<std::string>{"localstorage://repeat/QuxModel"});

  const ModelArtifactsInfo removed = remove("localstorage://QuxModel", p.options());
  CHECK(removed.weight_data_bytes == 8u);
  CHECK(urls(list("localstorage://", p.options())) ==
        std::set<std::string>{"localstorage://baz/QuxModel", "localstorage://repeat/QuxModel"});
  for (const auto& [key, value] : p.items()) CHECK(key.find("tensorflowjs_models/QuxModel/") != 0);

  Error e = error_of([&] { remove("localstorage://nonexistent", p.options()); });
  CHECK(e.code() == ErrorCode::kNotFound);
  CHECK(std::string(e.what()) == "Cannot find model at path 'nonexistent'");
}

// ---- localStorage quota ---------------------------------------------------------

// Bytes a model's five items count against the localStorage quota.
uint64_t local_cost(const std::string& path, const ModelArtifacts& a) {
  TempDir scratch;
  const std::string opts = "{\"profile\":" + json::quote(scratch.path().string()) + "}";
  save("localstorage://" + path, a, opts);
  return browser::LocalStorage(browser::StoreLocation{scratch.path(), "http://localhost"},
                               browser::kDefaultLocalStorageQuota, {})
      .used_bytes();
}

TEST_CASE("localstorage quota: a save that does not fit fails cleanly and keeps the old model") {
  Profile p;
  const std::string opts = p.options(",\"quota\":20000");
  const ModelArtifacts old_model = float_model(ramp(100, 1.0f));
  save("localstorage://m", old_model, opts);
  save("localstorage://other", spec_example(), opts);
  const auto items_before = p.items();
  const uint64_t used = p.local().used_bytes();

  const ModelArtifacts big = sized_model(12000);
  Error e = error_of([&] { save("localstorage://m", big, opts); });
  CHECK(e.code() == ErrorCode::kResourceExhausted);
  CHECK(contains(e, "Failed to save model 'm' to local storage"));
  const uint64_t needed = local_cost("m", big);
  const uint64_t free = 20000 - (used - local_cost("m", old_model));
  CHECK(contains(e, "the model needs " + std::to_string(needed) + " bytes"));
  CHECK(contains(e, std::to_string(free) + " bytes are free"));
  CHECK(contains(e, "weightDataBytes=12000"));
  // Nothing changed: the old model loads, no half model is listed.
  CHECK(p.items() == items_before);
  check_same_model(load("localstorage://m", opts), old_model);
  CHECK(urls(list("localstorage://", opts)) ==
        std::set<std::string>{"localstorage://m", "localstorage://other"});

  // A new path that does not fit leaves nothing behind either.
  e = error_of([&] { save("localstorage://new", big, opts); });
  CHECK(e.code() == ErrorCode::kResourceExhausted);
  CHECK(p.items() == items_before);
}

TEST_CASE("localstorage quota: the default is Chromium's 10 MiB of UTF-16 keys and values") {
  Profile p;
  // As measured on Chromium (browser_chromium_interop), not the plugin's
  // own constant: a wrong default must fail here.
  constexpr uint64_t kChromiumQuota = 10485760;
  // Find the largest weight size whose five items fit kChromiumQuota bytes:
  // each 3 weight bytes are 4 base64 characters, 8 quota bytes.
  const uint64_t base = local_cost("m", sized_model(0));
  const uint64_t spare = kChromiumQuota - base;
  // Float-sized, no base64 padding, and room for the longer numbers in the
  // info and specs items.
  const uint64_t weight_bytes = (spare - 64) / 8 * 3 / 12 * 12;
  ModelArtifacts fits = sized_model(weight_bytes);
  // The info and specs items grow with the numbers in them: measure again.
  const uint64_t cost = local_cost("m", fits);
  REQUIRE(cost <= kChromiumQuota);
  save("localstorage://m", fits, p.options());
  CHECK(p.local().used_bytes() == cost);

  // 12 more weight bytes (16 more characters) no longer fit when that
  // crosses the quota.
  const uint64_t over = weight_bytes + ((kChromiumQuota - cost) / 32 + 1) * 12;
  Error e = error_of([&] { save("localstorage://m", sized_model(over), p.options()); });
  CHECK(e.code() == ErrorCode::kResourceExhausted);
  check_same_model(load("localstorage://m", p.options()), fits);
}

TEST_CASE("localstorage quota: many small models up to the quota") {
  Profile p;
  constexpr uint64_t kQuota = 50000;
  const std::string opts = p.options(",\"quota\":" + std::to_string(kQuota));
  const ModelArtifacts small = float_model(ramp(64, 0.0f));
  int saved = 0;
  for (;; ++saved) {
    const std::string path = "many/" + std::to_string(1000 + saved);
    try {
      save("localstorage://" + path, small, opts);
    } catch (const Error& e) {
      CHECK(e.code() == ErrorCode::kResourceExhausted);
      break;
    }
    REQUIRE(saved < 1000);
  }
  const uint64_t each = local_cost("many/1000", small);
  CHECK(saved == static_cast<int>(kQuota / each));
  CHECK(p.local().used_bytes() == saved * each);
  CHECK(list("localstorage://", opts).size() == static_cast<size_t>(saved));
  // Removing one frees room for exactly one more.
  remove("localstorage://many/1000", opts);
  save("localstorage://many/9999", small, opts);
  CHECK_THROWS_AS(save("localstorage://many/9998", small, opts), Error);
  for (const auto& m : list("localstorage://", opts)) {
    check_same_model(load(m.url, opts), small);
  }
}

TEST_CASE("localstorage quota: counts UTF-16 code units, not UTF-8 bytes") {
  CHECK(browser::local_storage_cost("ab", "") == 4);
  CHECK(browser::local_storage_cost("é", "正") == 4);               // 2 + 3 UTF-8 bytes
  CHECK(browser::local_storage_cost("", "\xF0\x9F\x98\x80") == 4);  // a surrogate pair
  CHECK(browser::utf16_units("\xFF") == 1);                         // U+FFFD
}

// ---- IndexedDB ------------------------------------------------------------------

TEST_CASE("indexeddb: save-load round trip, two models, messages") {
  Profile p;
  ModelArtifacts a = float_model(ramp(4, 1.0f));
  a.model_initializer = "{}";
  const SaveResult r = save("indexeddb://Model/1", a, p.options());
  CHECK(r.model_artifacts_info.weight_data_bytes == 16u);
  ModelArtifacts b = float_model(ramp(6, 7.0f));
  save("indexeddb://Model/2", b, p.options());
  check_same_model(load("indexeddb://Model/1", p.options()), a);
  check_same_model(load("indexeddb://Model/2", p.options()), b);

  Error e = error_of([&] { load("indexeddb://NonexistentModel", p.options()); });
  CHECK(e.code() == ErrorCode::kNotFound);
  CHECK(std::string(e.what()) == "Cannot find model with path 'NonexistentModel' in IndexedDB.");
  e = error_of([&] { load("indexeddb://", p.options()); });
  CHECK(std::string(e.what()) == "For IndexedDB, modelPath must not be null, undefined or empty.");
  // A profile where nothing was saved has no model either, and no file appears.
  Profile empty;
  e = error_of([&] { load("indexeddb://m", empty.options()); });
  CHECK(e.code() == ErrorCode::kNotFound);
  CHECK(fs::is_empty(empty.path()));
}

TEST_CASE("indexeddb: the records are TF.js's (export form)") {
  Profile p;
  // Without a digest, which adds a key of its own (browser_digest_test).
  save("indexeddb://m/1", spec_example(), p.options(",\"integrity\":\"none\""));
  std::string dump;
  p.indexed().export_json([&dump](std::string_view s) { dump += s; });
  const std::string text = without_date(dump);
  CHECK(text ==
        R"({"database":"tensorflowjs","version":1,"models_store":[{"modelPath":"m/1",)"
        R"("modelArtifacts":{"modelTopology":{"a":1},"format":"layers-model","generatedBy":"g",)"
        R"("convertedBy":null,"trainingConfig":{"loss":"x","optimizer_config":{}},)"
        R"("userDefinedMetadata":{"u":1},"weightSpecs":[{"name":"w","shape":[2],)"
        R"("dtype":"float32"}],"weightData":"AACAPwAAAEA="},"modelArtifactsInfo":)"
        R"({"dateSaved":"<ISO>","modelTopologyType":"JSON","modelTopologyBytes":7,)"
        R"("weightSpecsBytes":44,"weightDataBytes":8}}],"model_info_store":[{"modelPath":"m/1",)"
        R"("modelArtifactsInfo":{"dateSaved":"<ISO>","modelTopologyType":"JSON",)"
        R"("modelTopologyBytes":7,"weightSpecsBytes":44,"weightDataBytes":8}}]})");
}

TEST_CASE("indexeddb: weights are stored and loaded in chunks, never joined") {
  Profile p;
  // Without a digest (one is loaded as one buffer: browser_digest_test).
  const std::string opts = p.options(",\"chunk_size\":1000,\"integrity\":\"none\"");
  // Buffers cut across chunk boundaries, one of them empty.
  ModelArtifacts a = float_model(ramp(2500, -5.0f), {10, 10, 999, 1001, 4100, 7000});
  save("indexeddb://chunky", a, opts);
  const ModelArtifacts b = load("indexeddb://chunky", opts);
  check_same_model(a, b);
  REQUIRE(b.weight_data->size() == 10);
  for (const Buffer& buf : *b.weight_data) CHECK(buf.size() <= 1000);
  // Overwritten with a smaller model: the old chunks are gone.
  ModelArtifacts c = float_model(ramp(10, 3.0f));
  save("indexeddb://chunky", c, opts);
  check_same_model(load("indexeddb://chunky", opts), c);
  CHECK(p.indexed().used_bytes() < 1000);
}

// The blob files of the origin (the folder's lock file aside).
std::set<std::string> blob_files(const Profile& p) {
  std::set<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(p.path() / "http_localhost_0.blobs", ec)) {
    if (e.path().filename() != ".lock") out.insert(e.path().filename().string());
  }
  return out;
}

TEST_CASE("indexeddb: weight data lives in one blob file per model, deleted with it") {
  Profile p;
  const ModelArtifacts a = float_model(ramp(3000, 1.0f));
  save("indexeddb://m", a, p.options());
  const auto first = blob_files(p);
  REQUIRE(first.size() == 1);
  CHECK(fs::file_size(p.path() / "http_localhost_0.blobs" / *first.begin()) == 12000);
  // Loaded buffers are views of the file that stay valid after the model is
  // replaced and removed.
  const ModelArtifacts loaded = load("indexeddb://m", p.options());
  const ModelArtifacts b = float_model(ramp(10, 7.0f));
  save("indexeddb://m", b, p.options());
  const auto second = blob_files(p);
  REQUIRE(second.size() == 1);
  CHECK(*second.begin() != *first.begin());
  remove("indexeddb://m", p.options());
  CHECK(blob_files(p).empty());
  check_same_model(loaded, a);
  // A file no record names (a killed save leaves one) goes at the next save;
  // a record whose file is gone is data loss.
  std::ofstream(p.path() / "http_localhost_0.blobs" / "0123456789abcdef0123456789abcdef") << "x";
  save("indexeddb://n", b, p.options());
  const auto third = blob_files(p);
  REQUIRE(third.size() == 1);
  fs::remove(p.path() / "http_localhost_0.blobs" / *third.begin());
  Error e = error_of([&] { load("indexeddb://n", p.options()); });
  CHECK(e.code() == ErrorCode::kDataLoss);
  CHECK(contains(e, "is missing"));
}

TEST_CASE("indexeddb: topology-only and empty weight data keep their difference") {
  Profile p;
  ModelArtifacts topo;
  topo.model_topology = R"({"t":1})";
  save("indexeddb://topo", topo, p.options());
  CHECK_FALSE(load("indexeddb://topo", p.options()).weight_data);
  ModelArtifacts empty = topo;
  empty.weight_specs = std::vector<WeightSpec>{};
  empty.weight_data = WeightData{Buffer()};
  save("indexeddb://empty", empty, p.options());
  const ModelArtifacts b = load("indexeddb://empty", p.options());
  REQUIRE(b.weight_data);
  CHECK(total_size(*b.weight_data) == 0);
}

TEST_CASE("indexeddb: listModels and removeModel as TF.js") {
  Profile p;
  CHECK(list("indexeddb://", p.options()).empty());
  save("indexeddb://QuxModel", spec_example(), p.options());
  save("indexeddb://repeat/QuxModel", spec_example(), p.options());
  CHECK(urls(list("indexeddb://", p.options())) ==
        std::set<std::string>{"indexeddb://QuxModel", "indexeddb://repeat/QuxModel"});
  remove("indexeddb://QuxModel", p.options());
  CHECK(urls(list("indexeddb://", p.options())) ==
        std::set<std::string>{"indexeddb://repeat/QuxModel"});
  Error e = error_of([&] { remove("indexeddb://nonexistent", p.options()); });
  CHECK(e.code() == ErrorCode::kNotFound);
  CHECK(std::string(e.what()) == "Cannot find model with path 'nonexistent' in IndexedDB.");
  // Through the core's model management too.
  e = error_of([&] { remove_model("indexeddb://nonexistent", registry()); });
  CHECK(std::string(e.what()) == "Cannot find model with path 'nonexistent' in IndexedDB.");
}

TEST_CASE("indexeddb quota: a save that does not fit fails cleanly and keeps the old model") {
  Profile p;
  const std::string opts = p.options(",\"quota\":100000,\"chunk_size\":4096");
  const ModelArtifacts old_model = sized_model(40000, 2.0f);
  save("indexeddb://m", old_model, opts);
  const uint64_t used = p.indexed().used_bytes();
  Error e = error_of([&] { save("indexeddb://m", sized_model(120000), opts); });
  CHECK(e.code() == ErrorCode::kResourceExhausted);
  CHECK(contains(e, "Failed to save model 'm' to IndexedDB"));
  CHECK(contains(e, "bytes are free"));
  check_same_model(load("indexeddb://m", opts), old_model);
  CHECK(p.indexed().used_bytes() == used);
  CHECK(urls(list("indexeddb://", opts)) == std::set<std::string>{"indexeddb://m"});
  // Replacing the model with one that fits counts the old one as free.
  const ModelArtifacts bigger = sized_model(90000, 3.0f);
  save("indexeddb://m", bigger, opts);
  check_same_model(load("indexeddb://m", opts), bigger);
}

TEST_CASE("indexeddb quota: the default is 60% of the profile's disk") {
  Profile p;
  const uint64_t quota = browser::default_indexeddb_quota(p.path());
  CHECK(quota > 0);
  const fs::space_info space = fs::space(p.path());
  CHECK(quota == static_cast<uint64_t>(static_cast<long double>(space.capacity) * 0.6L));
}

// ---- Model management -----------------------------------------------------------

TEST_CASE("copy and move between localStorage and IndexedDB through the core") {
  Profile p;
  TransferOptions t;
  t.source_options = t.destination_options = p.options();
  const ModelArtifacts a = float_model(ramp(50, 1.0f));
  save("localstorage://QuxModel", a, p.options());
  copy_model("localstorage://QuxModel", "indexeddb://QuxModel", t, registry());
  check_same_model(load("indexeddb://QuxModel", p.options()), a);
  CHECK(urls(list("localstorage://", p.options())) ==
        std::set<std::string>{"localstorage://QuxModel"});

  move_model("indexeddb://QuxModel", "indexeddb://moved", t, registry());
  CHECK(urls(list("indexeddb://", p.options())) == std::set<std::string>{"indexeddb://moved"});
  check_same_model(load("indexeddb://moved", p.options()), a);

  Error e = error_of([&] { copy_model("indexeddb://a/1", "indexeddb://a/1", t, registry()); });
  CHECK(std::string(e.what()) == "Old path and new path are the same: 'indexeddb://a/1'");
  e = error_of([&] { copy_model("indexeddb://nonexistent", "localstorage://x", t, registry()); });
  CHECK(contains(e, "Cannot find model with path 'nonexistent' in IndexedDB."));
}

TEST_CASE("a move whose save fails keeps its source (TF.js bug B4 fixed)") {
  Profile p;
  TransferOptions t;
  t.source_options = p.options();
  t.destination_options = p.options(",\"quota\":1000");
  const ModelArtifacts a = sized_model(4000);
  save("indexeddb://src", a, p.options());
  Error e = error_of([&] { move_model("indexeddb://src", "localstorage://dst", t, registry()); });
  CHECK(e.code() == ErrorCode::kResourceExhausted);
  check_same_model(load("indexeddb://src", p.options()), a);
  CHECK(list("localstorage://", p.options()).empty());
}

// ---- Origins and profiles -------------------------------------------------------

TEST_CASE("origins: one store per origin, normalized as browsers serialize them") {
  Profile p;
  const ModelArtifacts a = float_model(ramp(4, 1.0f));
  const ModelArtifacts b = float_model(ramp(4, 9.0f));
  save("localstorage://m", a, p.options(",\"origin\":\"http://127.0.0.1:8000\""));
  save("localstorage://m", b, p.options(",\"origin\":\"https://example.com\""));
  check_same_model(load("localstorage://m", p.options(",\"origin\":\"HTTP://127.0.0.1:8000/\"")),
                   a);
  check_same_model(load("localstorage://m", p.options(",\"origin\":\"https://EXAMPLE.com:443\"")),
                   b);
  CHECK(error_of([&] { load("localstorage://m", p.options()); }).code() == ErrorCode::kNotFound);
  CHECK(fs::exists(p.path() / "http_127.0.0.1_8000.sqlite"));
  CHECK(fs::exists(p.path() / "https_example.com_0.sqlite"));

  CHECK(browser::normalize_origin("http://localhost:80") == "http://localhost");
  CHECK(browser::normalize_origin("http://[::1]:8080") == "http://[::1]:8080");
  CHECK(browser::origin_file_name("http://[::1]:8080") == "http_%5B%3A%3A1%5D_8080.sqlite");
  for (const char* bad : {"localhost", "http://", "http://a/b", "http://a:99999", "http://u@a",
                          "http://a?x", "1http://a"}) {
    CAPTURE(bad);
    Error e =
        error_of([&] { load("localstorage://m", p.options(",\"origin\":" + json::quote(bad))); });
    CHECK(e.code() == ErrorCode::kInvalidArgument);
    CHECK(contains(e, "is not a valid origin"));
  }
}

TEST_CASE("profiles: the default is under XDG_DATA_HOME, else ~/.local/share") {
  TempDir home;
  const ModelArtifacts a = float_model(ramp(4, 1.0f));
  {
    ScopedEnv xdg("XDG_DATA_HOME", (home.path() / "data").string());
    save("indexeddb://m", a, "{}");
    CHECK(fs::exists(home.path() / "data/stowage/browser/http_localhost_0.sqlite"));
    // Only its owner may look into a profile.
    CHECK((fs::status(home.path() / "data/stowage/browser").permissions() & fs::perms::all) ==
          fs::perms::owner_all);
  }
  {
    ScopedEnv xdg("XDG_DATA_HOME", "relative/is/ignored");
    ScopedEnv h("HOME", home.path().string());
    // Another profile now: the model saved above is not in it.
    CHECK(error_of([&] { load("indexeddb://m", "{}"); }).code() == ErrorCode::kNotFound);
    CHECK_FALSE(fs::exists(home.path() / ".local/share/stowage/browser/http_localhost_0.sqlite"));
    save("localstorage://m", a, "{}");
    CHECK(fs::exists(home.path() / ".local/share/stowage/browser/http_localhost_0.sqlite"));
  }
}

TEST_CASE("options: unknown ones and bad values are refused") {
  Profile p;
  Error e = error_of([&] { registry().open("localstorage://m", p.options(",\"folder\":\"x\"")); });
  CHECK(e.code() == ErrorCode::kInvalidArgument);
  CHECK(contains(e, "Unknown option \"folder\""));
  e = error_of([&] { registry().open("indexeddb://m", p.options(",\"chunk_size\":0")); });
  CHECK(contains(e, "chunk_size"));
  e = error_of([&] { registry().open("downloads://m", p.options()); });
  CHECK(contains(e, "Unknown option \"profile\""));
  e = error_of([&] { registry().open("localstorage://m", p.options(",\"quota\":-1")); });
  CHECK(contains(e, "quota"));
}

TEST_CASE("a store of another origin under that file name is refused") {
  Profile p;
  save("localstorage://m", spec_example(), p.options());
  fs::copy_file(p.path() / "http_localhost_0.sqlite", p.path() / "https_other.org_0.sqlite");
  Error e =
      error_of([&] { load("localstorage://m", p.options(",\"origin\":\"https://other.org\"")); });
  CHECK(contains(e, "belongs to origin \"http://localhost\""));
}

// ---- Atomicity ---------------------------------------------------------------------

TEST_CASE("a cancelled save leaves the previous model exactly as it was") {
  Profile p;
  const std::string idb = p.options(",\"chunk_size\":65536");
  const ModelArtifacts old_model = sized_model(200000, 1.0f);
  save("indexeddb://m", old_model, idb);
  save("localstorage://m", old_model, p.options());
  for (const char* url : {"indexeddb://m", "localstorage://m"}) {
    CAPTURE(url);
    const std::string opts = std::string(url).starts_with("indexeddb") ? idb : p.options();
    CallContext call;
    std::atomic<uint64_t> seen{0};
    call.on_progress = [&seen](uint64_t done, uint64_t) { seen = done; };
    call.is_cancelled = [&seen] { return seen > 100000; };
    Error e = error_of([&] { save(url, sized_model(400000, 2.0f), opts, call); });
    CHECK(e.code() == ErrorCode::kCancelled);
    check_same_model(load(url, opts), old_model);
  }
}

TEST_CASE("concurrent saves and loads: every load sees a whole model") {
  Profile p;
  const std::string opts = p.options(",\"chunk_size\":4096");
  const std::string ls = p.options();
  const ModelArtifacts a = sized_model(64000, 1.0f);
  const ModelArtifacts b = float_model(std::vector<float>(9000, 2.0f));
  save("indexeddb://m", a, opts);
  save("localstorage://m", a, ls);
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::thread writer([&] {
    for (int i = 0; i < 20; ++i) {
      save("indexeddb://m", i % 2 ? a : b, opts);
      save("localstorage://m", i % 2 ? b : a, ls);
      save("indexeddb://other/" + std::to_string(i), b, opts);
    }
    stop = true;
  });
  int loads = 0;
  while (!stop || loads < 5) {
    for (const char* url : {"indexeddb://m", "localstorage://m"}) {
      const ModelArtifacts got = load(url, std::string(url).starts_with("indexeddb") ? opts : ls);
      const std::string bytes = weight_bytes(got);
      const bool is_a = bytes == weight_bytes(a) && got.weight_specs == a.weight_specs;
      const bool is_b = bytes == weight_bytes(b) && got.weight_specs == b.weight_specs;
      if (!is_a && !is_b) ++failures;
      ++loads;
    }
  }
  writer.join();
  CHECK(failures == 0);
  CHECK(list("indexeddb://other", opts).size() == 20);
}

// ---- downloads -----------------------------------------------------------------

TEST_CASE("downloads: name.json and name.weights.bin, never overwriting") {
  TempDir folder;
  const std::string opts = "{\"folder\":" + json::quote(folder.path().string()) + "}";
  const ModelArtifacts a = spec_example();
  const SaveResult r = save("downloads://test-model", a, opts);
  const std::string json_text = read_file(folder.path() / "test-model.json");
  CHECK(json_text ==
        R"({"modelTopology":{"a":1},"format":"layers-model","generatedBy":"g","convertedBy":null,)"
        R"("weightsManifest":[{"paths":["./test-model.weights.bin"],"weights":[{"name":"w",)"
        R"("shape":[2],"dtype":"float32"}]}],"userDefinedMetadata":{"u":1},"trainingConfig":)"
        R"({"loss":"x","optimizer_config":{}}})");
  CHECK(read_file(folder.path() / "test-model.weights.bin") == weight_bytes(a));
  REQUIRE(r.responses);
  CHECK(r.responses->find("test-model.weights.bin") != std::string::npos);

  // Taken names: the next suffix, the same for both files, and the JSON
  // points at the weights file written with it.
  save("downloads://test-model", float_model(ramp(3, 1.0f)), opts);
  CHECK(read_file(folder.path() / "test-model (1).weights.bin") ==
        weight_bytes(float_model(ramp(3, 1.0f))));
  const ModelArtifacts reread =
      parse_model_json(read_file(folder.path() / "test-model (1).json"), "test-model (1).json");
  CHECK(reread.weights_manifest->at(0).paths.at(0) == "./test-model (1).weights.bin");
  // The first files are untouched.
  CHECK(read_file(folder.path() / "test-model.json") == json_text);
  // Only the weights name of suffix 2 is taken: both files move on to 3.
  std::ofstream(folder.path() / "test-model (2).weights.bin") << "mine";
  save("downloads://test-model", a, opts);
  CHECK(fs::exists(folder.path() / "test-model (3).json"));
  CHECK(fs::exists(folder.path() / "test-model (3).weights.bin"));
  CHECK_FALSE(fs::exists(folder.path() / "test-model (2).json"));
  CHECK(read_file(folder.path() / "test-model (2).weights.bin") == "mine");
  // The saved pair loads through file://.
  check_same_model(load_model("file://" + (folder.path() / "test-model (3).json").string(), "{}",
                              {}, registry()),
                   a);
  // No temporary file is left behind.
  for (const auto& e : fs::directory_iterator(folder.path())) {
    CHECK(e.path().filename().string().find(".stowage-download-") == std::string::npos);
  }
}

TEST_CASE("downloads: integrity sha256 puts the weights file's digest in the JSON's group") {
  TempDir folder;
  const std::string opts =
      "{\"folder\":" + json::quote(folder.path().string()) + ",\"integrity\":\"sha256\"}";
  const ModelArtifacts a = spec_example();
  save("downloads://dig", a, opts);
  const std::string weights = read_file(folder.path() / "dig.weights.bin");
  CHECK(weights == weight_bytes(a));
  const std::string digest =
      sha256_hex({reinterpret_cast<const uint8_t*>(weights.data()), weights.size()});
  CHECK(read_file(folder.path() / "dig.json") ==
        R"({"modelTopology":{"a":1},"format":"layers-model","generatedBy":"g","convertedBy":null,)"
        R"("weightsManifest":[{"paths":["./dig.weights.bin"],"weights":[{"name":"w",)"
        R"("shape":[2],"dtype":"float32"}],"sha256":[")" +
            digest +
            R"("]}],"userDefinedMetadata":{"u":1},"trainingConfig":)"
            R"({"loss":"x","optimizer_config":{}}})");
  check_same_model(
      load_model("file://" + (folder.path() / "dig.json").string(), "{}", {}, registry()), a);
  // A topology-only save has no weights file, so no digest.
  ModelArtifacts topo = a;
  topo.weight_data.reset();
  topo.weight_specs.reset();
  save("downloads://topo", topo, opts);
  CHECK(read_file(folder.path() / "topo.json").find("sha256") == std::string::npos);
  const Error e = error_of([&] {
    registry().open("downloads://m", "{\"folder\":" + json::quote(folder.path().string()) +
                                         ",\"integrity\":\"md\"}");
  });
  CHECK(e.code() == ErrorCode::kInvalidArgument);
  CHECK(std::string(e.what()) ==
        "Option \"integrity\" for downloads://m must be one of \"sha256\", \"none\", not \"md\"");
}

TEST_CASE("downloads: topology only writes only the JSON; load is an error saying why") {
  TempDir folder;
  const std::string opts = "{\"folder\":" + json::quote(folder.path().string()) + "}";
  ModelArtifacts topo;
  topo.model_topology = R"({"t":1})";
  save("downloads://", topo, opts);  // an empty name is "model", as in TF.js
  CHECK(fs::exists(folder.path() / "model.json"));
  CHECK_FALSE(fs::exists(folder.path() / "model.weights.bin"));
  // downloads:// declares save only: the host refuses the rest itself, naming
  // the scheme, before the call reaches the plugin.
  auto handler = registry().open("downloads://model", opts);
  CHECK(handler->can_save());
  CHECK_FALSE(handler->can_load());
  CHECK_FALSE(handler->can_list());
  CHECK_FALSE(handler->can_remove());
  Error e = error_of([&] { handler->load(); });
  CHECK(e.code() == ErrorCode::kUnimplemented);
  CHECK(std::string(e.what()) ==
        "Scheme 'downloads' (plugin 'browser') does not support 'load' (it declares: save); "
        "nothing was done for 'downloads://model'");
  Error l = error_of([&] { list("downloads://", opts); });
  CHECK(l.code() == ErrorCode::kUnimplemented);
  CHECK(contains(l, "Scheme 'downloads' (plugin 'browser') does not support 'list'"));
  Error r = error_of([&] { remove("downloads://model", opts); });
  CHECK(r.code() == ErrorCode::kUnimplemented);
  CHECK(contains(r, "Scheme 'downloads' (plugin 'browser') does not support 'remove'"));
  CHECK(fs::exists(folder.path() / "model.json"));
  // TF.js's wording through load_model, with the scheme's reason after it.
  Error m = error_of([&] { load_model("downloads://model", opts, {}, registry()); });
  CHECK(m.code() == ErrorCode::kUnimplemented);
  CHECK(contains(m,
                 "does not have the `load` method implemented. Scheme 'downloads' (plugin "
                 "'browser') declares only: save."));
  // A name with '/' is one file name, as a browser sanitizes it.
  save("downloads://a/b", topo, opts);
  CHECK(fs::exists(folder.path() / "a_b.json"));
}

TEST_CASE("the registry shows each scheme's own capabilities once the plugin is loaded") {
  TempDir folder;
  registry().open("downloads://m", "{\"folder\":" + json::quote(folder.path().string()) + "}");
  bool seen = false;
  for (const PluginInfo& p : registry().plugins()) {
    if (p.name != "browser") continue;
    seen = true;
    REQUIRE(p.loaded);
    REQUIRE(p.scheme_capabilities.size() == p.schemes.size());
    for (size_t i = 0; i < p.schemes.size(); ++i) {
      const std::vector<std::string>& caps = p.scheme_capabilities[i];
      if (p.schemes[i] == "downloads") {
        CHECK(caps == std::vector<std::string>{"save"});
      } else {
        CHECK(caps ==
              std::vector<std::string>{"load", "save", "list", "remove", "atomic_save", "stat"});
      }
    }
    CHECK(p.capabilities ==
          std::vector<std::string>{"load", "save", "list", "remove", "atomic_save", "stat"});
  }
  CHECK(seen);
}

TEST_CASE("downloads: the default folder is the user's download folder") {
  TempDir home;
  ScopedEnv h("HOME", home.path().string());
  ScopedEnv xdg("XDG_CONFIG_HOME", (home.path() / "cfg").string());
  ModelArtifacts topo;
  topo.model_topology = R"({"t":1})";
  save("downloads://m", topo, "{}");
  CHECK(fs::exists(home.path() / "Downloads/m.json"));
  fs::create_directories(home.path() / "cfg");
  std::ofstream(home.path() / "cfg/user-dirs.dirs")
      << "# written by xdg-user-dirs-update\nXDG_DOWNLOAD_DIR=\"$HOME/Téléchargements\"\n";
  save("downloads://m", topo, "{}");
  CHECK(fs::exists(home.path() / "Téléchargements/m.json"));
}

// ---- stat -----------------------------------------------------------------------

namespace {

ModelStat stat(const std::string& url, const std::string& options) {
  return registry().open(url, options)->stat();
}

// A float model whose weights are `n` values from `start`: two calls with
// other starts have the same model.json and weight sizes, other bytes.
ModelArtifacts ramp_model(float start, size_t n = 64) { return float_model(ramp(n, start)); }

// Drops every generation row, as a store written by a stowage before stat
// has none.
void drop_generations(const Profile& p) {
  auto db = browser::Database::open(p.where(), /*create=*/false, {});
  REQUIRE(db);
  db->exec("DELETE FROM meta WHERE key LIKE 'generation%'");
}

// The per-model generation rows of the origin.
int64_t generation_rows(const Profile& p) {
  auto db = browser::Database::open(p.where(), /*create=*/false, {});
  REQUIRE(db);
  browser::Statement s(*db, "SELECT count(*) FROM meta WHERE key LIKE 'generation/%'");
  s.step();
  return s.column_int(0);
}

}  // namespace

TEST_CASE("stat: the model load gives without its bytes, and load's info") {
  for (const std::string scheme : {"localstorage", "indexeddb"}) {
    CAPTURE(scheme);
    Profile p;
    const std::string url = scheme + "://dir/m";
    ModelArtifacts a = spec_example();
    a.weight_data = float_model(ramp(300, 1.0f), {100, 700}).weight_data;
    a.weight_specs = float_model(ramp(300, 1.0f)).weight_specs;
    // Several weight buffers from indexeddb's load.
    const std::string opts = p.options(scheme == "indexeddb" ? ",\"chunk_size\":256" : "");
    save(url, a, opts);
    const ModelArtifacts loaded = load(url, opts);
    const ModelStat s = stat(url, opts);
    CHECK_FALSE(s.model.weight_data);
    ModelArtifacts json_only = loaded;
    json_only.weight_data.reset();
    CHECK(artifacts_to_json(s.model) == artifacts_to_json(json_only));
    ModelArtifactsInfo expected = artifacts_info(loaded);
    // dateSaved is the save's, as list gives it.
    expected.date_saved = list(url, p.options()).at(0).info.date_saved;
    CHECK(info_to_json(s.info) == info_to_json(expected));
    CHECK(s.info.weight_data_bytes == 1200u);
    CHECK_FALSE(s.version.empty());
  }
}

TEST_CASE("stat: the version is stable and changes with every save, remove and import") {
  for (const std::string scheme : {"localstorage", "indexeddb"}) {
    CAPTURE(scheme);
    Profile p;
    const std::string url = scheme + "://m";
    const std::string opts = p.options();
    save(url, ramp_model(1.0f), opts);
    const std::string first = stat(url, opts).version;
    CHECK(stat(url, opts).version == first);
    // Saves and removes of other models leave it alone.
    save(scheme + "://other", ramp_model(9.0f), opts);
    remove(scheme + "://other", opts);
    CHECK(stat(url, opts).version == first);

    // The same model.json and weight sizes, other bytes.
    save(url, ramp_model(2.0f), opts);
    const std::string resaved = stat(url, opts).version;
    CHECK(resaved != first);
    CHECK(stat(url, opts).version == resaved);

    // Removed and saved again, byte for byte as before.
    remove(url, opts);
    Error e = error_of([&] { stat(url, opts); });
    CHECK(e.code() == ErrorCode::kNotFound);
    save(url, ramp_model(2.0f), opts);
    const std::string after_remove = stat(url, opts).version;
    CHECK(after_remove != resaved);
    CHECK(after_remove != first);

    // Imported (what `stowage browser import` does) with the same content.
    if (scheme == "localstorage") {
      const auto items = p.local().items();
      p.local().put_items(items, /*clear=*/false);
    } else {
      std::string dump;
      p.indexed().export_json([&dump](std::string_view text) { dump += text; });
      p.indexed().import_json(dump, /*clear=*/false, {});
    }
    const std::string imported = stat(url, opts).version;
    CHECK(imported != after_remove);
    check_same_model(load(url, opts), ramp_model(2.0f));
    // An import that clears the store and puts the model back changes it too.
    if (scheme == "localstorage") {
      p.local().put_items(p.local().items(), /*clear=*/true);
    } else {
      std::string dump;
      p.indexed().export_json([&dump](std::string_view text) { dump += text; });
      p.indexed().import_json(dump, /*clear=*/true, {});
    }
    CHECK(stat(url, opts).version != imported);
  }
}

TEST_CASE("stat: the generation tells saves apart where the rows look alike") {
  Profile p;
  const std::string opts = p.options();
  // Alone in the origin, removed and saved again: the items get the same
  // rows as before.
  save("localstorage://m", ramp_model(1.0f), opts);
  const std::string local_first = stat("localstorage://m", opts).version;
  remove("localstorage://m", opts);
  // A removed model keeps no generation row.
  CHECK(generation_rows(p) == 0);
  save("localstorage://m", ramp_model(1.0f), opts);
  CHECK(stat("localstorage://m", opts).version != local_first);
  // No weight data, so no blob file whose name would change.
  ModelArtifacts topo;
  topo.model_topology = R"({"t":1})";
  save("indexeddb://topo", topo, opts);
  const std::string indexed_first = stat("indexeddb://topo", opts).version;
  save("indexeddb://topo", topo, opts);
  const std::string indexed_resaved = stat("indexeddb://topo", opts).version;
  CHECK(indexed_resaved != indexed_first);
  std::string dump;
  p.indexed().export_json([&dump](std::string_view text) { dump += text; });
  p.indexed().import_json(dump, /*clear=*/false, {});
  CHECK(stat("indexeddb://topo", opts).version != indexed_resaved);
}

TEST_CASE("stat: no model is NOT_FOUND naming the URL") {
  Profile p;
  for (const std::string scheme : {"localstorage", "indexeddb"}) {
    CAPTURE(scheme);
    // A profile where nothing was stored, then one where another model is.
    for (int round = 0; round < 2; ++round) {
      Error e = error_of([&] { stat(scheme + "://missing/m", p.options()); });
      CHECK(e.code() == ErrorCode::kNotFound);
      CHECK(std::string(e.what()) ==
            (scheme == "localstorage"
                 ? "No model at localstorage://missing/m: in local storage, there is no model "
                   "with name 'missing/m'"
                 : "No model at indexeddb://missing/m: cannot find model with path 'missing/m' "
                   "in IndexedDB."));
      save(scheme + "://present", ramp_model(1.0f), p.options());
    }
  }
  Error e = error_of([&] { stat("localstorage://", p.options()); });
  CHECK(e.code() == ErrorCode::kInvalidArgument);
  CHECK(std::string(e.what()) ==
        "For local storage, modelPath must not be null, undefined or empty.");
}

TEST_CASE("stat: a store written before generations existed still stats") {
  for (const std::string scheme : {"localstorage", "indexeddb"}) {
    CAPTURE(scheme);
    Profile p;
    const std::string url = scheme + "://m";
    const std::string opts = p.options();
    save(url, ramp_model(1.0f), opts);
    drop_generations(p);
    // Generation 0: a token of its own, stable, which the next save changes.
    const std::string legacy = stat(url, opts).version;
    CHECK_FALSE(legacy.empty());
    CHECK(stat(url, opts).version == legacy);
    save(url, ramp_model(2.0f), opts);
    CHECK(stat(url, opts).version != legacy);
  }
}

TEST_CASE("stat: a re-save by a stowage that writes no generations still changes the version") {
  Profile p;
  const std::string opts = p.options();
  save("localstorage://m", ramp_model(1.0f), opts);
  save("indexeddb://m", ramp_model(1.0f), opts);
  const std::string local_before = stat("localstorage://m", opts).version;
  const std::string indexed_before = stat("indexeddb://m", opts).version;
  // What an older stowage's save does: the same writes, no generation.
  auto db = browser::Database::open(p.where(), /*create=*/false, {});
  REQUIRE(db);
  db->exec(
      "INSERT OR REPLACE INTO local_storage(key, value, units) SELECT key, value, units FROM "
      "local_storage WHERE key LIKE 'tensorflowjs_models/m/%' ORDER BY key DESC");
  const auto blobs = blob_files(p);
  REQUIRE(blobs.size() == 1);
  const fs::path folder = p.path() / "http_localhost_0.blobs";
  fs::copy_file(folder / *blobs.begin(), folder / "00000000000000000000000000000001");
  db->exec("UPDATE idb_models_store SET weight_blob = '00000000000000000000000000000001'");
  CHECK(stat("localstorage://m", opts).version != local_before);
  CHECK(stat("indexeddb://m", opts).version != indexed_before);
}

TEST_CASE("localstorage stat: weightDataBytes of items TF.js wrote without it in info") {
  Profile p;
  const std::string k = "tensorflowjs_models/old/";
  p.local().put_items({{k + "info", R"({"dateSaved":"2018-01-01T00:00:00.000Z",)"
                                    R"("modelTopologyType":"JSON"})"},
                       {k + "model_topology", R"({"a":1})"},
                       {k + "weight_specs", R"([{"name":"w","shape":[2],"dtype":"float32"}])"},
                       {k + "weight_data", "AACAPwAAAEA="}},
                      false);
  const ModelStat s = stat("localstorage://old", p.options());
  CHECK(s.info.weight_data_bytes == 8u);
  CHECK(iso_date(s.info.date_saved) == "2018-01-01T00:00:00.000Z");
  // An info item that disagrees with the data: the data's size, as load gives.
  p.local().put_items({{k + "info", R"({"dateSaved":"2018-01-01T00:00:00.000Z",)"
                                    R"("modelTopologyType":"JSON","weightDataBytes":4})"}},
                      false);
  CHECK(stat("localstorage://old", p.options()).info.weight_data_bytes == 8u);
  // Weight data that load cannot decode fails stat the same way.
  p.local().put_items({{k + "weight_data", "AAC*"}}, false);
  Error e = error_of([&] { stat("localstorage://old", p.options()); });
  CHECK(e.code() == ErrorCode::kDataLoss);
  CHECK(std::string(e.what()) ==
        "In local storage, the binary weight values of model 'old' are not valid base64 (at "
        "character 3 of 4)");
}

TEST_CASE("stat: topology-only models, and a missing blob file is data loss as for load") {
  Profile p;
  ModelArtifacts topo;
  topo.model_topology = R"({"t":1})";
  for (const std::string scheme : {"localstorage", "indexeddb"}) {
    CAPTURE(scheme);
    save(scheme + "://topo", topo, p.options());
    const ModelStat s = stat(scheme + "://topo", p.options());
    CHECK(info_to_json(s.info).find("\"weightDataBytes\":0") != std::string::npos);
    CHECK(artifacts_to_json(s.model) == R"({"modelTopology":{"t":1}})");
  }
  save("indexeddb://n", ramp_model(1.0f), p.options());
  const auto blobs = blob_files(p);
  REQUIRE(blobs.size() == 1);
  fs::remove(p.path() / "http_localhost_0.blobs" / *blobs.begin());
  Error e = error_of([&] { stat("indexeddb://n", p.options()); });
  CHECK(e.code() == ErrorCode::kDataLoss);
  CHECK(contains(e, "is missing"));
}

TEST_CASE("downloads: stat is refused before it reaches the plugin") {
  TempDir folder;
  Error e = error_of([&] {
    registry()
        .open("downloads://m", "{\"folder\":" + json::quote(folder.path().string()) + "}")
        ->stat();
  });
  CHECK(e.code() == ErrorCode::kUnimplemented);
  CHECK(std::string(e.what()) ==
        "Scheme 'downloads' (plugin 'browser') does not support 'stat' (it declares: save); "
        "nothing was done for 'downloads://m'");
}
