// Weight digests on indexeddb:// and localstorage:// (docs/integrity.md):
// what each scheme records by default and with the option "integrity", where
// it keeps the digest beside TF.js's layout, that the host's load check
// refuses changed bytes, and that the quotas count the digest's bytes. The
// plugin is loaded by stowage::Registry from the build tree; the stores'
// classes (linked in) look at or change what it wrote, as a browser would.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>

#include "indexed_db_internal.hpp"
#include "local_storage_internal.hpp"
#include "plugin_test_util.hpp"
#include "stowage/digest.hpp"
#include "stowage/model_json.hpp"
#include "stowage/registry.hpp"
#include "test_files.hpp"

namespace fs = std::filesystem;
using namespace stowage;
using testing::error_of;
using testing::float_model;
using testing::ramp;
using testing::weight_bytes;

using testing::registry;
namespace {

class Profile : public stowage::testing::TempDir {
 public:
  Profile() : stowage::testing::TempDir("stowage-browser-digest") {}
  std::string options(const std::string& extra = "") const {
    return "{\"profile\":" + json::quote(path().string()) + extra + "}";
  }
  browser::StoreLocation where() const { return {path(), "http://localhost"}; }
  browser::LocalStorage local(uint64_t quota = browser::kDefaultLocalStorageQuota) const {
    return browser::LocalStorage(where(), quota, {});
  }
  browser::IndexedDb indexed() const {
    return browser::IndexedDb(where(), ~0ull, browser::kDefaultChunkSize, {});
  }
  std::map<std::string, std::string> items() const {
    std::map<std::string, std::string> out;
    for (auto& [k, v] : local().items()) out[k] = v;
    return out;
  }
  std::string export_indexeddb() const {
    std::string dump;
    indexed().export_json([&dump](std::string_view s) { dump += s; });
    return dump;
  }
  // The one blob file of the origin.
  fs::path blob_file() const {
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(path() / "http_localhost_0.blobs")) {
      if (e.path().filename() != ".lock") files.push_back(e.path());
    }
    REQUIRE(files.size() == 1);
    return files.front();
  }
};

SaveResult save(const std::string& url, const ModelArtifacts& a, const std::string& options) {
  return registry().open(url, options)->save(a);
}
ModelArtifacts load(const std::string& url, const std::string& options,
                    const CallContext& call = {}) {
  return registry().open(url, options)->load(call);
}

std::string hex_of(const std::string& bytes) {
  return sha256_hex({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()});
}
std::string digest_of(const ModelArtifacts& a) { return hex_of(weight_bytes(a)); }

// The load carries one buffer described by one group of one path with the
// digest of the model's weight data.
void check_described(const ModelArtifacts& loaded, const ModelArtifacts& saved,
                     const std::string& path) {
  REQUIRE(loaded.weight_data);
  CHECK(loaded.weight_data->size() == 1);
  CHECK(weight_bytes(loaded) == weight_bytes(saved));
  REQUIRE(loaded.weights_manifest);
  REQUIRE(loaded.weights_manifest->size() == 1);
  const WeightGroup& g = loaded.weights_manifest->front();
  CHECK(g.paths == std::vector<std::string>{path});
  REQUIRE(g.sha256);
  CHECK(*g.sha256 == std::vector<std::string>{digest_of(saved)});
  REQUIRE(loaded.weight_specs);
  CHECK(specs_to_json(g.weights) == specs_to_json(*loaded.weight_specs));
}

std::string without_date(const std::string& text) {
  return std::regex_replace(text, std::regex(R"("dateSaved":"[^"]*")"), R"("dateSaved":"<ISO>")");
}

}  // namespace

// ---- IndexedDB ---------------------------------------------------------------

TEST_CASE("indexeddb: the default records the weight data's digest beside TF.js's record") {
  Profile p;
  const ModelArtifacts a = float_model(ramp(3000, 1.0f));
  save("indexeddb://m", a, p.options());
  // The record's own key, after TF.js's three: TF.js's load returns only
  // modelArtifacts, which stays byte for byte what it was.
  const std::string dump = p.export_indexeddb();
  const std::string key = ",\"weightDataSha256\":\"" + digest_of(a) + "\"}],\"model_info_store\"";
  CHECK(dump.find(key) != std::string::npos);
  CHECK(dump.find("\"modelArtifacts\":{\"modelTopology\":") != std::string::npos);
  CHECK(dump.find("weightDataSha256", dump.find("\"modelArtifacts\"")) >
        dump.find("\"modelArtifactsInfo\""));

  // The load is one slice of the mapped file with a manifest the host checks.
  check_described(load("indexeddb://m", p.options()), a, "weightData");
  check_described(p.indexed().load_model("m", {}), a, "weightData");
}

TEST_CASE("indexeddb: integrity none records nothing and loads in chunks as before") {
  Profile p;
  const std::string opts = p.options(",\"integrity\":\"none\",\"chunk_size\":1000");
  const ModelArtifacts a = float_model(ramp(3000, 1.0f));
  save("indexeddb://m", a, opts);
  CHECK(p.export_indexeddb().find("weightDataSha256") == std::string::npos);
  const ModelArtifacts b = load("indexeddb://m", opts);
  CHECK(!b.weights_manifest);
  CHECK(b.weight_data->size() == 12);
  CHECK(weight_bytes(b) == weight_bytes(a));

  // A re-save with a digest, then one without: the digest goes with it.
  save("indexeddb://m", a, p.options());
  CHECK(p.export_indexeddb().find("weightDataSha256") != std::string::npos);
  save("indexeddb://m", a, opts);
  CHECK(p.export_indexeddb().find("weightDataSha256") == std::string::npos);
  CHECK(!load("indexeddb://m", p.options()).weights_manifest);
}

TEST_CASE("indexeddb: a changed byte in the weight data is DATA_LOSS naming URL and digests") {
  Profile p;
  const ModelArtifacts a = float_model(ramp(100, 1.0f));
  save("indexeddb://flip/m", a, p.options());
  const fs::path file = p.blob_file();
  {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(123);
    f.put('\x5a');
  }
  std::string changed = weight_bytes(a);
  changed[123] = 0x5a;
  const Error e = error_of([&] { load("indexeddb://flip/m", p.options()); });
  CHECK(e.code() == ErrorCode::kDataLoss);
  CHECK(std::string(e.what()) ==
        "model.json at indexeddb://flip/m: weight group 1 file 1 of 1 'weightData' "
        "(indexeddb://flip/m, 400 bytes) has SHA-256 " +
            hex_of(changed) + ", but model.json records " + digest_of(a));
  // A host that trusts the store opts out per call.
  CallContext trusting;
  trusting.verify_digests = false;
  CHECK(weight_bytes(load("indexeddb://flip/m", p.options(), trusting)) == changed);
}

TEST_CASE("indexeddb quota: the digest key counts as the record's JSON bytes") {
  Profile with, without;
  const ModelArtifacts a = float_model(ramp(10, 1.0f));
  save("indexeddb://m", a, with.options());
  save("indexeddb://m", a, without.options(",\"integrity\":\"none\""));
  // ,"weightDataSha256":"<64 hex digits>"
  const uint64_t key_bytes = std::string(",\"weightDataSha256\":\"\"").size() + 64;
  CHECK(key_bytes == 86);
  CHECK(with.indexed().used_bytes() == without.indexed().used_bytes() + key_bytes);

  // A quota the model fits without its digest refuses it with one.
  const uint64_t exact = without.indexed().used_bytes();
  Profile q;
  const std::string quota = ",\"quota\":" + std::to_string(exact);
  save("indexeddb://m", a, q.options(quota + ",\"integrity\":\"none\""));
  const Error e = error_of([&] { save("indexeddb://m", a, q.options(quota)); });
  CHECK(e.code() == ErrorCode::kResourceExhausted);
  CHECK(testing::contains(e, "the model needs " + std::to_string(exact + key_bytes) +
                                 " bytes and " + std::to_string(exact) + " bytes are free (quota " +
                                 std::to_string(exact)));
}

TEST_CASE("indexeddb: export and import carry the digest, and import checks it") {
  Profile p;
  const ModelArtifacts a = float_model(ramp(64, 2.0f));
  save("indexeddb://m", a, p.options());
  const std::string dump = p.export_indexeddb();

  Profile q;
  CHECK(q.indexed().import_json(dump, /*clear=*/true, {}) == 1);
  CHECK(without_date(q.export_indexeddb()) == without_date(dump));
  check_described(load("indexeddb://m", q.options()), a, "weightData");

  // Weight data that does not hash to the record's digest writes nothing.
  const std::string digest = digest_of(a);
  std::string other = dump;
  const std::string zeros(64, '0');
  other.replace(other.find(digest), 64, zeros);
  Profile r;
  Error e = error_of([&] { r.indexed().import_json(other, true, {}); });
  CHECK(e.code() == ErrorCode::kDataLoss);
  CHECK(std::string(e.what()) ==
        "The IndexedDB dump's models_store[0] (modelPath 'm') has weight data with SHA-256 " +
            digest + ", but its weightDataSha256 records " + zeros + "; nothing was written");
  CHECK(r.indexed().list_models("").empty());

  std::string bad = dump;
  bad.replace(bad.find(digest), 64, std::string(64, 'G'));
  e = error_of([&] { r.indexed().import_json(bad, true, {}); });
  CHECK(e.code() == ErrorCode::kInvalidArgument);
  CHECK(std::string(e.what()) ==
        "The IndexedDB dump's models_store[0].weightDataSha256 must be 64 lowercase hex digits "
        "(the SHA-256 of the weight data)");
}

// ---- localStorage ---------------------------------------------------------------

TEST_CASE("localstorage: the default records no digest, TF.js's five items alone") {
  Profile p;
  const ModelArtifacts a = float_model(ramp(8, 1.0f));
  save("localstorage://m", a, p.options());
  const auto items = p.items();
  CHECK(items.size() == 5);
  CHECK(items.count("tensorflowjs_models/m/weight_data_sha256") == 0);
  const ModelArtifacts b = load("localstorage://m", p.options());
  CHECK(!b.weights_manifest);
  CHECK(weight_bytes(b) == weight_bytes(a));
}

TEST_CASE("localstorage: integrity sha256 writes a sixth item and loads are checked") {
  Profile p;
  const std::string opts = p.options(",\"integrity\":\"sha256\"");
  const ModelArtifacts a = float_model(ramp(8, 1.0f));
  save("localstorage://m", a, opts);
  const auto items = p.items();
  REQUIRE(items.size() == 6);
  const std::string& info = items.at("tensorflowjs_models/m/info");
  const std::string date = info.substr(info.find("\"dateSaved\":") + 12, 26);
  CHECK(items.at("tensorflowjs_models/m/weight_data_sha256") ==
        "{\"sha256\":\"" + digest_of(a) + "\",\"dateSaved\":" + date + "}");
  // Any load of the model is checked, whatever the loader's own option.
  check_described(load("localstorage://m", p.options()), a, "weight_data");

  // The weight data changed in place (same length): refused.
  std::string data = items.at("tensorflowjs_models/m/weight_data");
  data[0] = data[0] == 'A' ? 'B' : 'A';
  p.local().put_items({{"tensorflowjs_models/m/weight_data", data}}, /*clear=*/false);
  const ModelArtifacts changed = load("localstorage://m", p.options(), [] {
    CallContext c;
    c.verify_digests = false;
    return c;
  }());
  const Error e = error_of([&] { load("localstorage://m", p.options()); });
  CHECK(e.code() == ErrorCode::kDataLoss);
  CHECK(std::string(e.what()) ==
        "model.json at localstorage://m: weight group 1 file 1 of 1 'weight_data' "
        "(localstorage://m, 32 bytes) has SHA-256 " +
            hex_of(weight_bytes(changed)) + ", but model.json records " + digest_of(a));

  // remove takes the sixth item too; a save without a digest drops it.
  registry().open("localstorage://m", p.options())->remove();
  CHECK(p.items().empty());
  save("localstorage://m", a, opts);
  save("localstorage://m", a, p.options());
  CHECK(p.items().size() == 5);
}

TEST_CASE(
    "localstorage: a digest item of an earlier save is not used; a malformed one is refused") {
  Profile p;
  const ModelArtifacts a = float_model(ramp(8, 1.0f));
  save("localstorage://m", a, p.options(",\"integrity\":\"sha256\""));
  const std::string digest_item = p.items().at("tensorflowjs_models/m/weight_data_sha256");
  // TF.js saves over it (its five items, a new dateSaved), leaving the sixth.
  const ModelArtifacts b = float_model(ramp(8, 9.0f));
  save("localstorage://m", b, p.options());
  p.local().put_items({{"tensorflowjs_models/m/weight_data_sha256", digest_item}}, false);
  const ModelArtifacts loaded = load("localstorage://m", p.options());
  CHECK(!loaded.weights_manifest);
  CHECK(weight_bytes(loaded) == weight_bytes(b));

  p.local().put_items({{"tensorflowjs_models/m/weight_data_sha256", "{\"sha256\":\"ab\"}"}}, false);
  const Error e = error_of([&] { load("localstorage://m", p.options()); });
  CHECK(e.code() == ErrorCode::kInvalidArgument);
  CHECK(std::string(e.what()) ==
        "localstorage://m (item tensorflowjs_models/m/weight_data_sha256) must be {\"sha256\": 64 "
        "lowercase hex digits, \"dateSaved\": the info item's dateSaved}");
}

TEST_CASE("localstorage quota: the digest item counts as any item") {
  Profile with, without;
  const ModelArtifacts a = float_model(ramp(8, 1.0f));
  save("localstorage://m", a, with.options(",\"integrity\":\"sha256\""));
  save("localstorage://m", a, without.options());
  const auto items = with.items();
  const std::string key = "tensorflowjs_models/m/weight_data_sha256";
  CHECK(with.local().used_bytes() ==
        without.local().used_bytes() + browser::local_storage_cost(key, items.at(key)));

  // A quota the model fits without its digest refuses it with one, and
  // keeps the model that was there.
  const uint64_t exact = without.local().used_bytes();
  Profile q;
  const std::string quota = ",\"quota\":" + std::to_string(exact);
  save("localstorage://m", a, q.options(quota));
  const Error e = error_of(
      [&] { save("localstorage://m", a, q.options(quota + ",\"integrity\":\"sha256\"")); });
  CHECK(e.code() == ErrorCode::kResourceExhausted);
  CHECK(testing::contains(e, "the model needs " + std::to_string(with.local().used_bytes()) +
                                 " bytes and " + std::to_string(exact) + " bytes are free"));
  CHECK(q.items().size() == 5);
}

TEST_CASE("integrity: a value other than sha256 or none is refused for both stores") {
  Profile p;
  for (const char* scheme : {"indexeddb", "localstorage"}) {
    const std::string url = std::string(scheme) + "://m";
    const Error e = error_of([&] {
      registry().open(url, p.options(",\"integrity\":\"md5\""))->save(float_model(ramp(2, 1.0f)));
    });
    CHECK(e.code() == ErrorCode::kInvalidArgument);
    CHECK(std::string(e.what()) ==
          "Option \"integrity\" for " + url + " must be one of \"sha256\", \"none\", not \"md5\"");
  }
}
