// `stowage browser export|import`, run as a program: round trips between
// profiles and origins, the file forms, bad input, quotas, --clear,
// configuration defaults and stdin. HOME and XDG_DATA_HOME point into the
// test's folder, so nothing reaches the real per-user profile.
#include <doctest/doctest.h>
#include <rapidjson/document.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "run_program.hpp"

namespace fs = std::filesystem;

namespace {

using Result = stowage::testing::ProgramResult;
using stowage::testing::read_file;
using stowage::testing::write_file;

class TempDir : public stowage::testing::TempDir {
 public:
  TempDir() : stowage::testing::TempDir("stowage-browser-cli") {}
};

// The command in folder `cwd` with stdin from `input` (or /dev/null), HOME
// and XDG_DATA_HOME inside `cwd`.
Result run(const fs::path& cwd, const std::vector<std::string>& args,
           const std::string& input = "/dev/null") {
  return stowage::testing::run_program(
      STOWAGE_CLI_EXE, args,
      {.cwd = cwd,
       .stdin_path = input,
       .drop_env = {"STOWAGE_", "HOME=", "XDG_"},
       .add_env = {"HOME=" + (cwd / "home").string(), "XDG_DATA_HOME=" + (cwd / "xdg").string()}});
}

bool contains(const std::string& text, std::string_view part) {
  return text.find(part) != std::string::npos;
}

rapidjson::Document parse_json(const std::string& text) {
  rapidjson::Document doc;
  doc.Parse(text.c_str());
  INFO("JSON: ", text);
  REQUIRE_FALSE(doc.HasParseError());
  return doc;
}

// A small model in tfjs-node's layout: 3 float32 values.
fs::path write_model(const fs::path& dir) {
  write_file(
      dir / "model.json",
      R"({"modelTopology":{"a":1},"weightsManifest":[{"paths":["weights.bin"],)"
      R"("weights":[{"name":"w","shape":[3],"dtype":"float32"}]}],"format":"layers-model"})");
  const float values[3] = {1.0f, -2.5f, 3.25f};
  write_file(dir / "weights.bin",
             std::string_view(reinterpret_cast<const char*>(values), sizeof values));
  return dir / "model.json";
}

std::string options(const fs::path& profile, const std::string& origin = "http://localhost") {
  return "{\"profile\":\"" + profile.string() + "\",\"origin\":\"" + origin + "\"}";
}

}  // namespace

TEST_CASE("stowage browser: export of an origin with nothing stored") {
  TempDir t;
  const std::string profile = (t.path() / "p").string();
  fs::create_directories(profile);
  Result r = run(t.path(), {"browser", "export", "--scheme", "localstorage", "--profile", profile});
  CHECK(r.code == 0);
  CHECK(r.out == "{}\n");
  r = run(t.path(), {"browser", "export", "--scheme", "indexeddb", "--profile", profile});
  CHECK(r.code == 0);
  CHECK(r.out ==
        "{\"database\":\"tensorflowjs\",\"version\":1,\"models_store\":[],\"model_info_store\":[]}"
        "\n");
  CHECK(fs::is_empty(profile));  // reading creates nothing
}

TEST_CASE("stowage browser export: a profile folder that is not there is not found") {
  TempDir t;
  const std::string missing = (t.path() / "missing").string();
  for (const char* scheme : {"localstorage", "indexeddb"}) {
    CAPTURE(scheme);
    const Result r = run(t.path(), {"browser", "export", "--scheme", scheme, "--profile", missing});
    CHECK(r.code == 3);
    CHECK(r.out.empty());
    CHECK(r.err == "stowage: error: there is no browser profile at " + missing +
                       " (--profile, or the config's defaults, names the folder that "
                       "localstorage:// and indexeddb:// save into)\n");
    CHECK_FALSE(fs::exists(missing));
  }
  write_file(t.path() / "file", "x");
  const Result file = run(t.path(), {"browser", "export", "--scheme", "indexeddb", "--profile",
                                     (t.path() / "file").string()});
  CHECK(file.code == 4);
  CHECK(contains(file.err, "is not a folder"));
}

TEST_CASE("verify of a store that keeps a flat weight list says so, not '0 groups'") {
  TempDir t;
  const fs::path model = write_model(t.path() / "src");
  const fs::path profile = t.path() / "p";
  // Saved without a digest: a record with one is described by a manifest
  // of one weight file (below).
  REQUIRE(run(t.path(), {"copy", "file://" + model.string(), "indexeddb://zoo", "--dst-options",
                         options(profile), "--integrity", "none", "-q"})
              .code == 0);
  Result r = run(t.path(), {"verify", "indexeddb://zoo", "--options", options(profile)});
  INFO(r.out, r.err);
  CHECK(r.code == 0);
  CHECK(r.out ==
        "OK indexeddb://zoo: 1 tensor decoded, one flat weight list (the store keeps no weight "
        "files), 12 bytes of weights\ndigests: none recorded\n");
  r = run(t.path(), {"verify", "indexeddb://zoo", "--options", options(profile), "--json"});
  CHECK(r.code == 0);
  const rapidjson::Document doc = parse_json(r.out);
  CHECK(doc["groups"].IsNull());
  CHECK(doc["shards"].IsNull());
  CHECK(doc["tensors"].GetUint64() == 1);

  // indexeddb's default records the weight data's digest, which verify checks.
  REQUIRE(run(t.path(), {"copy", "file://" + model.string(), "indexeddb://zoo", "--dst-options",
                         options(profile), "-q"})
              .code == 0);
  r = run(t.path(), {"verify", "indexeddb://zoo", "--options", options(profile)});
  CHECK(r.code == 0);
  CHECK(r.out ==
        "OK indexeddb://zoo: 1 tensor decoded, 1 group, 1 shard, 12 bytes of weights\n"
        "digests: 1 checked\n");
}

TEST_CASE(
    "stowage copy to downloads:// saves without reading back; a move there keeps the source") {
  TempDir t;
  const fs::path model = write_model(t.path() / "src");
  const std::string dst_options = "{\"folder\":\"" + (t.path() / "dl").string() + "\"}";
  Result r = run(t.path(), {"copy", "file://" + model.string(), "downloads://my model",
                            "--dst-options", dst_options});
  INFO(r.err);
  CHECK(r.code == 0);
  CHECK(contains(r.out, "not read back: downloads://my model is save-only"));
  CHECK(fs::file_size(t.path() / "dl" / "my model.weights.bin") == 12);
  CHECK(contains(read_file(t.path() / "dl" / "my model.json"), "./my model.weights.bin"));

  r = run(t.path(), {"copy", "--json", "file://" + model.string(), "downloads://j", "--dst-options",
                     dst_options});
  CHECK(r.code == 0);
  rapidjson::Document doc = parse_json(r.out);
  CHECK_FALSE(doc["verified"].GetBool());
  CHECK(doc["weightBytes"].GetUint64() == 12);

  r = run(t.path(),
          {"move", "file://" + model.string(), "downloads://moved", "--dst-options", dst_options});
  // downloads:// cannot load, so the move is refused before anything is written.
  CHECK(r.code == 7);
  CHECK(r.err ==
        "stowage: error: Cannot move to downloads://moved: the handler of scheme 'downloads' "
        "cannot load models, so the copy could not be verified before the source is removed; "
        "nothing was copied. Copy it instead.\n");
  CHECK(fs::exists(model));
  CHECK_FALSE(fs::exists(t.path() / "dl" / "moved.json"));
}

TEST_CASE("stowage browser: export and import move models between profiles and origins") {
  TempDir t;
  const fs::path model = write_model(t.path() / "src");
  const fs::path a = t.path() / "a";
  const fs::path b = t.path() / "b";
  for (const std::string scheme : {"localstorage", "indexeddb"}) {
    CAPTURE(scheme);
    REQUIRE(run(t.path(), {"copy", "file://" + model.string(), scheme + "://m/1", "--dst-options",
                           options(a), "-q"})
                .code == 0);
    const fs::path dump = t.path() / (scheme + ".json");
    Result r = run(t.path(), {"browser", "export", "--scheme", scheme, "--profile", a.string(),
                              "--out", dump.string(), "--json"});
    REQUIRE(r.code == 0);
    rapidjson::Document summary = parse_json(r.out);
    CHECK(std::string(summary["origin"].GetString()) == "http://localhost");
    CHECK(summary["models"].Size() == 1);
    CHECK(std::string(summary["models"][0].GetString()) == scheme + "://m/1");

    // Both directions count the same thing in the same words.
    r = run(t.path(), {"browser", "export", "--scheme", scheme, "--profile", a.string(), "--out",
                       dump.string()});
    REQUIRE(r.code == 0);
    CHECK(r.out.starts_with(scheme == "indexeddb"
                                ? "exported 1 model of indexeddb of origin http://localhost\n"
                                : "exported 5 items of localstorage of origin http://localhost\n"));
    r = run(t.path(), {"browser", "import", "--scheme", scheme, "--profile", b.string(), "--origin",
                       "https://Example.com:443", dump.string()});
    REQUIRE(r.code == 0);
    CHECK(r.out.starts_with(scheme == "indexeddb"
                                ? "imported 1 model into indexeddb of origin https://example.com\n"
                                : "imported 5 items into localstorage of origin "
                                  "https://example.com\n"));
    CHECK(contains(r.out, scheme + "://m/1"));
    // The imported model loads with the same bytes.
    const fs::path back = t.path() / ("back-" + scheme);
    r = run(t.path(), {"copy", scheme + "://m/1", "file://" + back.string(), "--src-options",
                       options(b, "https://example.com"), "-q"});
    REQUIRE(r.code == 0);
    CHECK(read_file(back / "weights.bin") == read_file(model.parent_path() / "weights.bin"));
    // Exporting again gives the same file.
    r = run(t.path(), {"browser", "export", "--scheme", scheme, "--profile", b.string(), "--origin",
                       "https://example.com"});
    CHECK(r.out == read_file(dump) + "\n");
  }
}

TEST_CASE("stowage browser import: stowage info's version changes, even for the same content") {
  TempDir t;
  const fs::path model = write_model(t.path() / "src");
  const fs::path profile = t.path() / "p";
  for (const std::string scheme : {"localstorage", "indexeddb"}) {
    CAPTURE(scheme);
    REQUIRE(run(t.path(), {"copy", "file://" + model.string(), scheme + "://m", "--dst-options",
                           options(profile), "-q"})
                .code == 0);
    auto version = [&] {
      const Result r =
          run(t.path(), {"info", scheme + "://m", "--options", options(profile), "--json"});
      REQUIRE(r.code == 0);
      const rapidjson::Document doc = parse_json(r.out);
      REQUIRE(doc.HasMember("version"));
      return std::string(doc["version"].GetString());
    };
    const std::string before = version();
    CHECK(version() == before);
    // The store's own records, exported and imported back unchanged.
    const fs::path dump = t.path() / (scheme + ".json");
    REQUIRE(run(t.path(), {"browser", "export", "--scheme", scheme, "--profile", profile.string(),
                           "--out", dump.string()})
                .code == 0);
    REQUIRE(run(t.path(), {"browser", "import", "--scheme", scheme, "--profile", profile.string(),
                           dump.string(), "-q"})
                .code == 0);
    CHECK(version() != before);
  }
}

TEST_CASE("stowage browser import: bad input is refused and nothing is written") {
  TempDir t;
  const std::string profile = (t.path() / "p").string();
  auto import = [&](const std::string& scheme, const std::string& text) {
    write_file(t.path() / "in.json", text);
    return run(t.path(), {"browser", "import", "--scheme", scheme, "--profile", profile,
                          (t.path() / "in.json").string()});
  };
  Result r = import("localstorage", "{not json");
  CHECK(r.code == 4);
  CHECK(contains(r.err, "not valid JSON"));
  r = import("localstorage", R"({"a":1})");
  CHECK(r.code == 4);
  CHECK(contains(r.err, "value of \"a\" is not a string"));
  r = import("indexeddb", R"({"models_store":[{"modelArtifacts":{}}],"model_info_store":[]})");
  CHECK(r.code == 4);
  CHECK(contains(r.err, "models_store[0].modelPath"));
  r = import("indexeddb",
             R"({"models_store":[{"modelPath":"m","modelArtifacts":{"weightData":"@@"},)"
             R"("modelArtifactsInfo":{"dateSaved":"2024-01-01T00:00:00.000Z"}}],)"
             R"("model_info_store":[]})");
  CHECK(r.code == 4);
  CHECK(contains(r.err, "not valid base64"));
  r = import("indexeddb", R"({"database":"other","models_store":[],"model_info_store":[]})");
  CHECK(r.code == 4);
  r = run(t.path(), {"browser", "import", "--scheme", "sessionstorage", "--profile", profile});
  CHECK(r.code == 2);
  r = run(t.path(), {"browser", "import", "--scheme", "localstorage", "--profile", profile,
                     "--origin", "localhost", (t.path() / "in.json").string()});
  CHECK(r.code == 4);
  CHECK(contains(r.err, "is not a valid origin"));
  // Nothing was written: not even the profile folder was made.
  CHECK_FALSE(fs::exists(profile));
  r = run(t.path(), {"browser", "export", "--scheme", "localstorage", "--profile", profile});
  CHECK(r.code == 3);
}

TEST_CASE("stowage browser import: the quota, --clear, stdin and config defaults") {
  TempDir t;
  const std::string profile = (t.path() / "p").string();
  write_file(t.path() / "big.json", "{\"k\":\"" + std::string(6u << 20, 'x') + "\"}");
  Result r = run(t.path(), {"browser", "import", "--scheme", "localstorage", "--profile", profile,
                            (t.path() / "big.json").string()});
  CHECK(r.code == 1);
  CHECK(contains(r.err, "quota"));
  // Piped in, with a quota that fits.
  r = run(t.path(),
          {"browser", "import", "--scheme", "localstorage", "--profile", profile, "--quota",
           "20000000", "-q"},
          (t.path() / "big.json").string());
  CHECK(r.code == 0);
  CHECK(r.out.empty());
  // --clear replaces everything of the origin's localStorage.
  write_file(t.path() / "small.json", R"({"other":"v"})");
  r = run(t.path(), {"browser", "import", "--scheme", "localstorage", "--profile", profile,
                     "--clear", (t.path() / "small.json").string(), "--json"});
  CHECK(r.code == 0);
  CHECK(parse_json(r.out)["usedBytes"].GetUint64() == 12);  // 6 UTF-16 code units
  // The configuration's defaults choose the profile and the origin.
  write_file(t.path() / "stowage.json", R"({"defaults":{"localstorage":{"profile":")" + profile +
                                            R"(","origin":"http://127.0.0.1:8000"}}})");
  r = run(t.path(),
          {"browser", "import", "--scheme", "localstorage", "--config",
           (t.path() / "stowage.json").string(), (t.path() / "small.json").string(), "-q"});
  CHECK(r.code == 0);
  CHECK(fs::exists(fs::path(profile) / "http_127.0.0.1_8000.sqlite"));
  r = run(t.path(), {"browser", "export", "--scheme", "localstorage", "--config",
                     (t.path() / "stowage.json").string()});
  CHECK(r.out == "{\"other\":\"v\"}\n");
  // Without a profile anywhere: the per-user default under XDG_DATA_HOME.
  r = run(t.path(), {"browser", "import", "--scheme", "localstorage",
                     (t.path() / "small.json").string(), "-q"});
  CHECK(r.code == 0);
  CHECK(fs::exists(t.path() / "xdg/stowage/browser/http_localhost_0.sqlite"));
}
