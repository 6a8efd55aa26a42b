// Runs the built stowage command in a temporary folder and checks what it
// prints, what it writes and its exit codes. Plugins come from the build
// tree through the command's own discovery.
#include <doctest/doctest.h>
#include <rapidjson/document.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "cli_test_util.hpp"
#include "run_program.hpp"

namespace fs = std::filesystem;

namespace {

static_assert(std::endian::native == std::endian::little, "the test writes weights natively");

using Result = stowage::testing::ProgramResult;
using stowage::cli_test::contains;
using stowage::cli_test::parse_json;
using stowage::cli_test::run;
using stowage::testing::read_file;
using stowage::testing::write_file;

class TempDir : public stowage::testing::TempDir {
 public:
  TempDir() : stowage::testing::TempDir("stowage-cli-test") {}
};

// The whitespace-separated fields of the line that starts with `first`.
std::vector<std::string> row_of(const std::string& text, const std::string& first) {
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream fields(line);
    std::vector<std::string> row;
    std::string field;
    while (fields >> field) row.push_back(field);
    if (!row.empty() && row[0] == first) return row;
  }
  return {};
}

// ---- The test model ---------------------------------------------------------

const std::string kTopology =
    R"({"class_name":"Sequential","config":{"name":"seq","layers":[{"class_name":"Dense",)"
    R"("config":{"units":3,"name":"dense","dtype":"float32"}}]},"keras_version":)"
    R"("tfjs-layers 4.22.0","backend":"tensor_flow.js"})";

const std::string kSpecs =
    R"([{"name":"dense/kernel","shape":[2,3],"dtype":"float32"},)"
    R"({"name":"dense/bias","shape":[3],"dtype":"float32"},)"
    R"({"name":"steps","shape":[2],"dtype":"int32"},)"
    R"({"name":"flags","shape":[3],"dtype":"bool"},)"
    R"({"name":"names","shape":[2],"dtype":"string"},)"
    R"({"name":"c","shape":[2],"dtype":"complex64"},)"
    R"({"name":"q","shape":[3],"dtype":"float32","quantization":{"dtype":"uint8","min":-1,"scale":0.5}}])";

template <typename T>
void append(std::string& out, T value) {
  char bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));
  out.append(bytes, sizeof(T));
}

// 24 + 12 + 8 + 3 + 12 + 16 + 3 = 78 bytes.
std::string weight_bytes() {
  std::string data;
  for (float v : {1.f, 2.f, 3.f, 4.f, 5.f, 6.f}) append(data, v);  // dense/kernel
  for (float v : {std::nanf(""), -1.f, 2.f}) append(data, v);      // dense/bias
  for (int32_t v : {-7, 9}) append(data, v);                       // steps
  data += std::string("\x01\x00\x01", 3);                          // flags
  for (std::string s : {"ab", "\xc3\xa9"}) {                       // names
    append(data, static_cast<uint32_t>(s.size()));
    data += s;
  }
  for (float v : {1.f, -2.f, 3.f, 4.f}) append(data, v);  // c
  data += std::string("\x00\x02\x04", 3);                 // q: -1, 0, 1
  return data;
}
constexpr uint64_t kWeightBytes = 78;

std::string model_json(const std::string& specs, const std::vector<std::string>& paths) {
  std::string path_list;
  for (const auto& p : paths) path_list += (path_list.empty() ? "\"" : ",\"") + p + "\"";
  return R"({"modelTopology":)" + kTopology + R"(,"weightsManifest":[{"paths":[)" + path_list +
         R"(],"weights":)" + specs +
         R"(}],"format":"layers-model","generatedBy":"TensorFlow.js tfjs-layers v4.22.0",)"
         R"("convertedBy":null})";
}

// A model in dir/src: model.json + weights.bin.
fs::path make_model(const fs::path& dir) {
  write_file(dir / "src" / "weights.bin", weight_bytes());
  write_file(dir / "src" / "model.json", model_json(kSpecs, {"weights.bin"}));
  REQUIRE(weight_bytes().size() == kWeightBytes);
  return dir / "src" / "model.json";
}

std::string url(const fs::path& p) { return "file://" + p.string(); }

}  // namespace

TEST_CASE("--help works for the command and every subcommand") {
  TempDir tmp;
  for (const char* sub :
       {"copy", "move", "list", "ls", "remove", "rm", "info", "verify", "plugins", "serve"}) {
    CAPTURE(sub);
    const Result r = run(tmp.path(), {sub, "--help"});
    CHECK(r.code == 0);
    CHECK(contains(r.out, "--json"));
    CHECK(contains(r.out, "Exit codes"));
  }
  const Result top = run(tmp.path(), {"--help"});
  CHECK(top.code == 0);
  for (const char* sub : {"copy", "move", "list", "remove", "info", "verify", "plugins"}) {
    CHECK(contains(top.out, sub));
  }
  CHECK(contains(top.out, "\n  serve"));

  // Usage errors: exit code 2.
  CHECK(run(tmp.path(), {}).code == 2);
  CHECK(run(tmp.path(), {"frobnicate"}).code == 2);
  CHECK(run(tmp.path(), {"info"}).code == 2);
  CHECK(run(tmp.path(), {"info", ""}).code == 2);
  CHECK(run(tmp.path(), {"copy", "a"}).code == 2);
  CHECK(run(tmp.path(), {"copy", "a", "b", "--shard-size", "0"}).code == 2);
  CHECK(run(tmp.path(), {"copy", "a", "b", "--shard-size", "16", "--single-file"}).code == 2);
}

TEST_CASE("plugins lists file and memory with their folders") {
  TempDir tmp;
  const Result r = run(tmp.path(), {"plugins"});
  REQUIRE(r.code == 0);
  CHECK(contains(r.out, "file"));
  CHECK(contains(r.out, "memory"));
  CHECK(contains(r.out, "folders searched"));

  const Result j = run(tmp.path(), {"plugins", "--json"});
  REQUIRE(j.code == 0);
  const rapidjson::Document doc = parse_json(j.out);
  std::vector<std::string> names;
  for (const auto& p : doc["plugins"].GetArray()) {
    names.push_back(p["name"].GetString());
    CHECK(p["abi"].GetString() == std::string("1.0"));
    CHECK(p["allowed"].GetBool());
    CHECK(fs::exists(p["library"].GetString()));
  }
  CHECK(std::find(names.begin(), names.end(), "file") != names.end());
  CHECK(std::find(names.begin(), names.end(), "memory") != names.end());
  CHECK(doc["searchedFolders"].Size() >= 1);
}

TEST_CASE("plugins --load shows each scheme's capabilities: downloads:// saves only") {
  TempDir tmp;
  const Result before = run(tmp.path(), {"plugins", "--json"});
  REQUIRE(before.code == 0);
  const rapidjson::Document listed = parse_json(before.out);
  for (const auto& p : listed["plugins"].GetArray()) {
    CHECK_FALSE(p["loaded"].GetBool());
    CHECK(p["schemeCapabilities"].ObjectEmpty());
  }

  const Result j = run(tmp.path(), {"plugins", "--json", "--load"});
  INFO(j.out, j.err);
  REQUIRE(j.code == 0);
  CHECK(j.err.empty());
  const rapidjson::Document doc = parse_json(j.out);
  CHECK(doc["loadErrors"].Empty());
  bool browser = false;
  for (const auto& p : doc["plugins"].GetArray()) {
    CHECK(p["loaded"].GetBool());
    CHECK(p["schemeCapabilities"].MemberCount() == p["schemes"].Size());
    if (p["name"].GetString() != std::string("browser")) continue;
    browser = true;
    const auto& caps = p["schemeCapabilities"];
    REQUIRE(caps["downloads"].Size() == 1);
    CHECK(caps["downloads"][0].GetString() == std::string("save"));
    for (const char* store : {"localstorage", "indexeddb"}) {
      std::vector<std::string> names;
      for (const auto& c : caps[store].GetArray()) names.push_back(c.GetString());
      CHECK(names ==
            std::vector<std::string>{"load", "save", "list", "remove", "atomic_save", "stat"});
    }
  }
  CHECK(browser);

  const Result t = run(tmp.path(), {"plugins", "--load"});
  REQUIRE(t.code == 0);
  CHECK(contains(t.out, "capabilities per scheme:\n"));
  CHECK(contains(t.out, "  downloads:// (browser): save\n"));
  CHECK(contains(t.out, "  indexeddb:// (browser): load, save, list, remove, atomic_save, stat\n"));
  const Result plain = run(tmp.path(), {"plugins"});
  CHECK(contains(plain.out, "capabilities per scheme: shown once loaded (--load)\n"));
}

TEST_CASE("info prints metadata, sizes and the weights table") {
  TempDir tmp;
  const fs::path model = make_model(tmp.path());

  const Result r = run(tmp.path(), {"info", url(model)});
  INFO(r.out, r.err);
  REQUIRE(r.code == 0);
  CHECK(contains(r.out, "layers-model"));
  CHECK(contains(r.out, "TensorFlow.js tfjs-layers v4.22.0"));
  CHECK(contains(r.out, "Sequential, 1 layer"));
  CHECK(contains(r.out, "modelTopologyBytes:  " + std::to_string(kTopology.size())));
  CHECK(contains(r.out, "weightSpecsBytes:    " + std::to_string(kSpecs.size())));
  CHECK(contains(r.out, "weightDataBytes:     78"));
  CHECK(contains(r.out, "weights.bin  78 bytes"));
  CHECK(row_of(r.out, "dense/kernel") ==
        std::vector<std::string>{"dense/kernel", "float32", "[2,3]", "-", "24"});
  CHECK(row_of(r.out, "names") == std::vector<std::string>{"names", "string", "[2]", "-", "12"});
  CHECK(row_of(r.out, "q") ==
        std::vector<std::string>{"q", "float32", "[3]", "uint8", "scale=0.5", "min=-1", "3"});

  // A bare path means file://.
  CHECK(run(tmp.path(), {"info", "src/model.json"}).code == 0);

  const Result j = run(tmp.path(), {"info", url(model), "--json"});
  REQUIRE(j.code == 0);
  const rapidjson::Document doc = parse_json(j.out);
  CHECK(doc["format"].GetString() == std::string("layers-model"));
  CHECK(doc["convertedBy"].IsNull());
  CHECK(doc["modelArtifactsInfo"]["modelTopologyBytes"].GetUint64() == kTopology.size());
  CHECK(doc["modelArtifactsInfo"]["weightSpecsBytes"].GetUint64() == kSpecs.size());
  CHECK(doc["modelArtifactsInfo"]["weightDataBytes"].GetUint64() == kWeightBytes);
  CHECK(doc["tensorCount"].GetUint64() == 7);
  CHECK(doc["weightsManifest"][0]["paths"][0].GetString() == std::string("weights.bin"));
  CHECK(doc["weightsManifest"][0]["shardBytes"][0].GetUint64() == kWeightBytes);
  const auto& weights = doc["weights"];
  CHECK_FALSE(doc.HasMember("version"));  // a string tensor: info loaded the model
  CHECK(weights[0]["name"].GetString() == std::string("dense/kernel"));
  CHECK(weights[0]["shape"][1].GetInt() == 3);
  CHECK(weights[0]["bytes"].GetUint64() == 24);
  CHECK(weights[4]["offset"].GetUint64() == 47);
  CHECK(weights[6]["quantization"]["dtype"].GetString() == std::string("uint8"));
  CHECK(weights[6]["quantization"]["scale"].GetDouble() == 0.5);
  CHECK(weights[6]["quantization"]["min"].GetDouble() == -1);
  CHECK_FALSE(weights[0].HasMember("stats"));
}

TEST_CASE("info --stats gives min, max and mean of the dequantised values") {
  TempDir tmp;
  const fs::path model = make_model(tmp.path());

  const Result r = run(tmp.path(), {"info", url(model), "--stats"});
  INFO(r.out, r.err);
  REQUIRE(r.code == 0);
  using Row = std::vector<std::string>;
  CHECK(row_of(r.out, "dense/kernel") ==
        Row{"dense/kernel", "float32", "[2,3]", "-", "24", "1", "6", "3.5", "0"});
  CHECK(row_of(r.out, "dense/bias") ==
        Row{"dense/bias", "float32", "[3]", "-", "12", "-1", "2", "0.5", "1"});
  CHECK(row_of(r.out, "steps") == Row{"steps", "int32", "[2]", "-", "8", "-7", "9", "1", "0"});
  CHECK(row_of(r.out, "flags") ==
        Row{"flags", "bool", "[3]", "-", "3", "0", "1", "0.6666667", "0"});
  CHECK(row_of(r.out, "names") ==
        Row{"names", "string", "[2]", "-", "12", "n/a", "n/a", "n/a", "n/a"});
  CHECK(row_of(r.out, "c") == Row{"c", "complex64", "[2]", "-", "16", "-2", "4", "1.5", "0"});
  CHECK(row_of(r.out, "q") ==
        Row{"q", "float32", "[3]", "uint8", "scale=0.5", "min=-1", "3", "-1", "1", "0", "0"});

  const Result j = run(tmp.path(), {"info", url(model), "--stats", "--json"});
  REQUIRE(j.code == 0);
  const rapidjson::Document doc = parse_json(j.out);
  const auto& bias = doc["weights"][1]["stats"];
  CHECK(bias["min"].GetDouble() == -1);
  CHECK(bias["max"].GetDouble() == 2);
  CHECK(bias["mean"].GetDouble() == 0.5);
  CHECK(bias["count"].GetUint64() == 2);
  CHECK(bias["nanCount"].GetUint64() == 1);
  CHECK(doc["weights"][4]["stats"].IsNull());
  CHECK(doc["weights"][6]["stats"]["mean"].GetDouble() == 0);
}

TEST_CASE("info reads a model by stat, without its weight bytes, unless a tensor is a string") {
  TempDir tmp;
  const std::string specs = R"([{"name":"w","shape":[2,3],"dtype":"float32"},)"
                            R"({"name":"b","shape":[3],"dtype":"int32"}])";
  write_file(tmp.path() / "m" / "model.json", model_json(specs, {"a.bin", "b.bin"}));
  write_file(tmp.path() / "m" / "a.bin", std::string(24, '\1'));
  write_file(tmp.path() / "m" / "b.bin", std::string(8, '\2'));
  // Half of the weights gone: a load refuses the model (the --stats case
  // below), so info can only succeed if it never reads them.
  fs::resize_file(tmp.path() / "m" / "b.bin", 4);
  const std::string m = url(tmp.path() / "m" / "model.json");

  const Result j = run(tmp.path(), {"info", m, "--json"});
  INFO(j.out, j.err);
  REQUIRE(j.code == 0);
  const rapidjson::Document doc = parse_json(j.out);
  REQUIRE(doc.HasMember("version"));
  const std::string version = doc["version"].GetString();
  CHECK(version.size() == 16);
  CHECK(doc["modelArtifactsInfo"]["weightDataBytes"].GetUint64() == 28);  // as stored
  CHECK(doc["weightsManifest"][0]["shardBytes"][1].IsNull());
  CHECK(doc["weights"][1]["offset"].GetUint64() == 24);
  CHECK(doc["weights"][1]["bytes"].GetUint64() == 12);

  const Result human = run(tmp.path(), {"info", m});
  REQUIRE(human.code == 0);
  CHECK(contains(human.out, "version:             " + version + "\n"));
  CHECK(row_of(human.out, "w") == std::vector<std::string>{"w", "float32", "[2,3]", "-", "24"});

  const Result loaded = run(tmp.path(), {"info", m, "--stats"});
  CHECK(loaded.code == 4);
  CHECK(contains(loaded.err, "b.bin"));

  // memory:// has stat too, but each run of the command starts empty: its
  // NOT_FOUND comes through stat with the URL.
  const Result none = run(tmp.path(), {"info", "memory://nothing"});
  CHECK(none.code == 3);
  CHECK(none.err == "stowage: error: Cannot find model at memory://nothing\n");
}

// A model without string weights (their sizes are fixed by the specs, so a
// copy can stream it) in dir/fixed: 24 + 12 bytes in two shards.
fs::path make_fixed_model(const fs::path& dir) {
  const std::string specs = R"([{"name":"dense/kernel","shape":[2,3],"dtype":"float32"},)"
                            R"({"name":"dense/bias","shape":[3],"dtype":"float32"}])";
  write_file(dir / "fixed" / "model.json", model_json(specs, {"a.bin", "b.bin"}));
  write_file(dir / "fixed" / "a.bin", weight_bytes().substr(0, 24));
  write_file(dir / "fixed" / "b.bin", weight_bytes().substr(24, 12));
  return dir / "fixed" / "model.json";
}

TEST_CASE("copy streams a model without string weights; --no-streaming holds the whole model") {
  TempDir tmp;
  const fs::path model = make_fixed_model(tmp.path());
  const Result r = run(tmp.path(), {"copy", url(model), url(tmp.path() / "streamed"), "--json"});
  INFO(r.out, r.err);
  REQUIRE(r.code == 0);
  const rapidjson::Document doc = parse_json(r.out);
  CHECK(doc["streamed"].GetBool());
  CHECK(doc["peakQueuedBytes"].GetUint64() >= 12);
  CHECK(doc["peakQueuedBytes"].GetUint64() <= 36);
  CHECK(read_file(tmp.path() / "streamed" / "weights.bin") == weight_bytes().substr(0, 36));
  const Result human = run(tmp.path(), {"copy", url(model), url(tmp.path() / "h1")});
  REQUIRE(human.code == 0);
  CHECK(contains(human.out, "  streamed:            yes, at most "));

  const Result w =
      run(tmp.path(), {"copy", url(model), url(tmp.path() / "whole"), "--no-streaming", "--json"});
  INFO(w.out, w.err);
  REQUIRE(w.code == 0);
  const rapidjson::Document whole_doc = parse_json(w.out);
  CHECK_FALSE(whole_doc["streamed"].GetBool());
  CHECK(whole_doc["peakQueuedBytes"].GetUint64() == 36);
  CHECK(read_file(tmp.path() / "whole" / "weights.bin") ==
        read_file(tmp.path() / "streamed" / "weights.bin"));
  CHECK(read_file(tmp.path() / "whole" / "model.json") ==
        read_file(tmp.path() / "streamed" / "model.json"));
  const Result whole = run(tmp.path(), {"copy", url(model), "memory://h2", "--no-streaming"});
  REQUIRE(whole.code == 0);
  CHECK(contains(whole.out, "  streamed:            no, the whole model was held in memory\n"));
}

TEST_CASE("copy of a model with string weights holds it whole: their sizes are in their bytes") {
  TempDir tmp;
  const fs::path model = make_model(tmp.path());
  const Result r = run(tmp.path(), {"copy", url(model), url(tmp.path() / "out"), "--json"});
  INFO(r.out, r.err);
  REQUIRE(r.code == 0);
  const rapidjson::Document doc = parse_json(r.out);
  CHECK_FALSE(doc["streamed"].GetBool());
  CHECK(doc["peakQueuedBytes"].GetUint64() == kWeightBytes);
}

TEST_CASE("copy file to file: tfjs-node layout, shard sizes and the converter layout") {
  TempDir tmp;
  const fs::path model = make_model(tmp.path());

  SUBCASE("default: model.json + weights.bin") {
    const Result r = run(tmp.path(), {"copy", url(model), url(tmp.path() / "out")});
    INFO(r.out, r.err);
    REQUIRE(r.code == 0);
    CHECK(contains(r.out, "copied"));
    CHECK(contains(r.out, "78 bytes, 7 tensors, 1 shard"));
    CHECK(contains(r.out, "modelTopologyBytes:  " + std::to_string(kTopology.size())));
    CHECK(contains(r.out, "weightSpecsBytes:    " + std::to_string(kSpecs.size())));
    CHECK(contains(r.out, "weightDataBytes:     78"));
    CHECK(contains(r.out, "dateSaved:"));
    CHECK(read_file(tmp.path() / "out" / "weights.bin") == weight_bytes());
    CHECK(fs::exists(tmp.path() / "out" / "model.json"));
    CHECK(fs::exists(model));  // a copy keeps its source
    CHECK(r.err.empty());      // no progress bar: stderr is not a terminal
  }
  SUBCASE("--shard-size 16: five converter-named shards") {
    const Result r = run(tmp.path(), {"copy", url(model), url(tmp.path() / "sharded"),
                                      "--shard-size", "16", "--json"});
    INFO(r.out, r.err);
    REQUIRE(r.code == 0);
    const rapidjson::Document doc = parse_json(r.out);
    CHECK(doc["shards"].GetUint64() == 5);
    CHECK(doc["weightBytes"].GetUint64() == kWeightBytes);
    CHECK(doc["modelArtifactsInfo"]["weightDataBytes"].GetUint64() == kWeightBytes);
    CHECK(doc["modelArtifactsInfo"]["modelTopologyBytes"].GetUint64() == kTopology.size());
    CHECK(std::string(doc["modelArtifactsInfo"]["dateSaved"].GetString()).size() == 24);
    std::string joined;
    for (int i = 1; i <= 5; ++i) {
      const fs::path shard =
          tmp.path() / "sharded" / ("group1-shard" + std::to_string(i) + "of5.bin");
      REQUIRE(fs::exists(shard));
      CHECK(fs::file_size(shard) == (i < 5 ? 16u : 14u));
      joined += read_file(shard);
    }
    CHECK(joined == weight_bytes());
    CHECK_FALSE(fs::exists(tmp.path() / "sharded" / "weights.bin"));
    CHECK(contains(read_file(tmp.path() / "sharded" / "model.json"), "group1-shard5of5.bin"));
    CHECK(run(tmp.path(), {"verify", url(tmp.path() / "sharded" / "model.json")}).code == 0);
  }
  SUBCASE("--converter-shards: one 4 MiB shard for a small model") {
    const Result r =
        run(tmp.path(), {"copy", url(model), url(tmp.path() / "conv"), "--converter-shards"});
    INFO(r.out, r.err);
    REQUIRE(r.code == 0);
    CHECK(fs::file_size(tmp.path() / "conv" / "group1-shard1of1.bin") == kWeightBytes);
  }
  SUBCASE("--integrity and --shard-names set the destination's options") {
    // file:// records digests by default; --integrity none writes tfjs-node's model.json.
    REQUIRE(run(tmp.path(), {"copy", url(model), url(tmp.path() / "d")}).code == 0);
    CHECK(contains(read_file(tmp.path() / "d" / "model.json"), "\"sha256\":[\""));
    const Result none =
        run(tmp.path(), {"copy", url(model), url(tmp.path() / "n"), "--integrity", "none"});
    INFO(none.out, none.err);
    REQUIRE(none.code == 0);
    CHECK_FALSE(contains(read_file(tmp.path() / "n" / "model.json"), "sha256"));

    // Digest-named files; a copy of a model with digests records its own.
    for (int pass = 0; pass < 2; ++pass) {
      const Result ca = run(tmp.path(), {"copy", url(tmp.path() / "d"), url(tmp.path() / "ca"),
                                         "--shard-size", "16", "--shard-names", "sha256"});
      INFO(ca.out, ca.err);
      REQUIRE(ca.code == 0);
    }
    const std::string json = read_file(tmp.path() / "ca" / "model.json");
    rapidjson::Document doc = parse_json(json);
    const auto& group = doc["weightsManifest"][0];
    REQUIRE(group["paths"].Size() == 5);
    REQUIRE(group["sha256"].Size() == 5);
    std::string joined;
    for (rapidjson::SizeType i = 0; i < 5; ++i) {
      const std::string digest = group["sha256"][i].GetString();
      CHECK(std::string(group["paths"][i].GetString()) == digest.substr(0, 16) + ".bin");
      joined += read_file(tmp.path() / "ca" / group["paths"][i].GetString());
    }
    CHECK(joined == weight_bytes());
    CHECK(run(tmp.path(), {"verify", url(tmp.path() / "ca")}).code == 0);

    const Result bad =
        run(tmp.path(), {"copy", url(model), url(tmp.path() / "x"), "--integrity", "md5"});
    CHECK(bad.code == 2);
    CHECK(contains(bad.err, "--integrity"));
    CHECK(
        run(tmp.path(), {"copy", url(model), url(tmp.path() / "x"), "--shard-names", "md5"}).code ==
        2);
    const Result both = run(tmp.path(), {"copy", url(model), url(tmp.path() / "x"), "--integrity",
                                         "none", "--shard-names", "sha256"});
    CHECK(both.code == 4);
    CHECK(contains(both.err,
                   "Options \"integrity\": \"none\" and \"shard_names\": \"sha256\" "
                   "for " +
                       url(tmp.path() / "x") + " contradict each other"));
    CHECK_FALSE(fs::exists(tmp.path() / "x"));
    const Result help = run(tmp.path(), {"copy", "--help"});
    CHECK(contains(help.out, "--integrity"));
    CHECK(contains(help.out, "--shard-names"));
  }
  SUBCASE("copying a model onto itself is refused") {
    const Result r = run(tmp.path(), {"copy", url(model), url(model)});
    CHECK(r.code == 4);
    CHECK(r.err.starts_with("stowage: error: "));
  }
}

TEST_CASE("verify: OK on a good model, a named failure on a truncated shard") {
  TempDir tmp;
  const fs::path model = make_model(tmp.path());
  REQUIRE(run(tmp.path(), {"copy", url(model), url(tmp.path() / "s"), "--shard-size", "16"}).code ==
          0);
  const fs::path sharded = tmp.path() / "s" / "model.json";

  const Result ok = run(tmp.path(), {"verify", url(sharded)});
  INFO(ok.out, ok.err);
  CHECK(ok.code == 0);
  CHECK(ok.out.starts_with("OK "));
  CHECK(contains(ok.out, "7 tensors decoded, 1 group, 5 shards"));
  const rapidjson::Document ok_json =
      parse_json(run(tmp.path(), {"verify", url(sharded), "--json"}).out);
  CHECK(ok_json["ok"].GetBool());
  CHECK(ok_json["tensors"].GetUint64() == 7);
  REQUIRE(ok_json["groups"].IsUint64());
  CHECK(ok_json["groups"].GetUint64() == 1);
  REQUIRE(ok_json["shards"].IsUint64());
  CHECK(ok_json["shards"].GetUint64() == 5);

  fs::resize_file(tmp.path() / "s" / "group1-shard3of5.bin", 10);
  const Result bad = run(tmp.path(), {"verify", url(sharded)});
  INFO(bad.out, bad.err);
  CHECK(bad.code == 4);
  CHECK(bad.err.starts_with("stowage: error: "));
  CHECK(contains(bad.err, "group1-shard3of5.bin"));
  CHECK(std::count(bad.err.begin(), bad.err.end(), '\n') == 1);  // one line

  const Result bad_json = run(tmp.path(), {"verify", url(sharded), "--json"});
  CHECK(bad_json.code == 4);
  const rapidjson::Document doc = parse_json(bad_json.out);
  CHECK_FALSE(doc["ok"].GetBool());
  CHECK(contains(doc["error"]["message"].GetString(), "group1-shard3of5.bin"));
}

TEST_CASE("errors name the URL with its secrets redacted") {
  TempDir tmp;
  // Each is refused by its plugin as a bad URL (exit 4, not 3 "no plugin"),
  // so the message is the plugin's, with the URL in it.
  const struct {
    std::vector<std::string> args;
    std::string why;
  } cases[] = {{{"info", "http://user:hunter2@127.0.0.1:99999/m/model.json"},
                "the port \"99999\" is not a number from 1 to 65535"},
               {{"verify", "s3://bucket/m?secret_access_key=hunter2&region=x"},
                "Credentials do not go in s3:// URLs"},
               {{"copy", "https://u:hunter2@h:99999/m/model.json", "memory://x?token=hunter2"},
                "the port \"99999\" is not a number from 1 to 65535"}};
  for (const auto& [args, why] : cases) {
    const Result r = run(tmp.path(), args);
    INFO(r.err);
    CHECK(r.code == 4);
    CHECK(contains(r.err, why));
    CHECK(contains(r.err, "REDACTED"));
    CHECK_FALSE(contains(r.err, "hunter2"));
  }
}

TEST_CASE("verify refuses duplicate weight names") {
  TempDir tmp;
  std::string specs = kSpecs;
  specs.replace(specs.find("\"steps\""), 7, "\"dense/bias\"");
  write_file(tmp.path() / "dup" / "weights.bin", weight_bytes());
  write_file(tmp.path() / "dup" / "model.json", model_json(specs, {"weights.bin"}));
  const Result r = run(tmp.path(), {"verify", url(tmp.path() / "dup" / "model.json")});
  CHECK(r.code == 4);
  CHECK(contains(r.err, "duplicate weight name 'dense/bias'"));
}

TEST_CASE("list, ls, remove and rm") {
  TempDir tmp;
  const fs::path model = make_model(tmp.path());
  REQUIRE(run(tmp.path(), {"copy", url(model), url(tmp.path() / "models" / "a")}).code == 0);
  REQUIRE(run(tmp.path(), {"copy", url(model), url(tmp.path() / "models" / "b")}).code == 0);
  const std::string models = url(tmp.path() / "models");

  for (const char* list : {"list", "ls"}) {
    const Result r = run(tmp.path(), {list, models});
    INFO(r.out, r.err);
    REQUIRE(r.code == 0);
    CHECK(contains(r.out, "URL"));
    CHECK(contains(r.out, "models/a"));
    CHECK(contains(r.out, "models/b"));
    CHECK(contains(r.out, " 78\n"));
  }
  const Result j = run(tmp.path(), {"list", models, "--json"});
  REQUIRE(j.code == 0);
  const rapidjson::Document doc = parse_json(j.out);
  REQUIRE(doc.IsObject());
  CHECK(doc.MemberCount() == 2);
  for (const auto& m : doc.GetObject()) {
    CHECK(m.value["modelTopologyType"].GetString() == std::string("JSON"));
    CHECK(m.value["weightDataBytes"].GetUint64() == kWeightBytes);
    CHECK(m.value["modelTopologyBytes"].GetUint64() == kTopology.size());
  }

  const Result rm = run(tmp.path(), {"remove", url(tmp.path() / "models" / "a" / "model.json")});
  INFO(rm.out, rm.err);
  REQUIRE(rm.code == 0);
  CHECK(contains(rm.out, "removed"));
  CHECK(contains(rm.out, "weightDataBytes:     78"));
  CHECK_FALSE(fs::exists(tmp.path() / "models" / "a" / "model.json"));
  CHECK_FALSE(fs::exists(tmp.path() / "models" / "a" / "weights.bin"));

  const Result rm2 =
      run(tmp.path(), {"rm", url(tmp.path() / "models" / "b" / "model.json"), "--json"});
  REQUIRE(rm2.code == 0);
  CHECK(parse_json(rm2.out)["modelArtifactsInfo"]["weightDataBytes"].GetUint64() == kWeightBytes);
  CHECK_FALSE(fs::exists(tmp.path() / "models" / "b" / "model.json"));

  const Result again = run(tmp.path(), {"rm", url(tmp.path() / "models" / "b" / "model.json")});
  CHECK(again.code == 3);
  CHECK(contains(again.err, "models/b"));
}

TEST_CASE("list without a URL lists every default location, keyed scheme://path") {
  TempDir tmp;
  const fs::path model = make_model(tmp.path());
  // The browser stores in a profile of the test's own (never the user's).
  const std::string profile = (tmp.path() / "profile").string();
  write_file(tmp.path() / "stores.json", R"({"defaults": {"localstorage": {"profile": ")" +
                                             profile + R"("}, "indexeddb": {"profile": ")" +
                                             profile + R"("}}})");
  const std::vector<std::string> cfg = {"--config", "stores.json"};
  auto with_config = [&](std::vector<std::string> args) {
    args.insert(args.end(), cfg.begin(), cfg.end());
    return run(tmp.path(), args);
  };

  // Nothing saved yet: no models, and the profile is not created by listing.
  const Result empty = with_config({"list"});
  INFO(empty.out, empty.err);
  REQUIRE(empty.code == 0);
  CHECK(empty.out == "no models in the default locations\n");
  CHECK(parse_json(with_config({"list", "--json"}).out).ObjectEmpty());
  CHECK_FALSE(fs::exists(profile));

  REQUIRE(with_config({"copy", url(model), "localstorage://team/a", "-q"}).code == 0);
  REQUIRE(with_config({"copy", url(model), "indexeddb://b", "-q"}).code == 0);
  for (const char* list : {"list", "ls"}) {
    const Result r = with_config({list, "--json"});
    INFO(r.out, r.err);
    REQUIRE(r.code == 0);
    const rapidjson::Document doc = parse_json(r.out);
    std::vector<std::string> keys;
    for (const auto& m : doc.GetObject()) {
      keys.emplace_back(m.name.GetString());
      CHECK(m.value["weightDataBytes"].GetUint64() == kWeightBytes);
    }
    // TF.js's order: localstorage, then indexeddb.
    CHECK(keys == std::vector<std::string>{"localstorage://team/a", "indexeddb://b"});
  }
  const Result table = with_config({"list"});
  CHECK(contains(table.out, "localstorage://team/a"));
  CHECK(contains(table.out, "indexeddb://b"));
  CHECK(with_config({"list", "-o", "quota=1"}).code == 2);

  // list_locations replaces the defaults; each must be listable.
  REQUIRE(run(tmp.path(), {"copy", url(model), url(tmp.path() / "models" / "c"), "-q"}).code == 0);
  write_file(tmp.path() / "mine.json", R"({"defaults": {"localstorage": {"profile": ")" + profile +
                                           R"("}}, "list_locations": [")" +
                                           url(tmp.path() / "models") +
                                           R"(", "localstorage://"]})");
  const Result mine = run(tmp.path(), {"list", "--json", "--config", "mine.json"});
  INFO(mine.out, mine.err);
  REQUIRE(mine.code == 0);
  const rapidjson::Document listed = parse_json(mine.out);
  CHECK(listed.MemberCount() == 2);
  CHECK(listed.HasMember((url(tmp.path() / "models" / "c" / "model.json")).c_str()));
  CHECK(listed.HasMember("localstorage://team/a"));
  CHECK(run(tmp.path(), {"list", "--config", "mine.json"}).out.starts_with("URL"));

  write_file(tmp.path() / "nolist.json", R"({"list_locations": ["downloads://x"]})");
  const Result cannot = run(tmp.path(), {"list", "--config", "nolist.json"});
  CHECK(cannot.code == 7);
  CHECK(contains(cannot.err, "downloads://x"));
  write_file(tmp.path() / "badlist.json", R"({"list_locations": ["models"]})");
  const Result bad = run(tmp.path(), {"list", "--config", "badlist.json"});
  CHECK(bad.code == 4);
  CHECK(contains(bad.err, "list_locations[0]: 'models' is not a URL"));
}

TEST_CASE("move: the destination loads and the source is gone") {
  TempDir tmp;
  const fs::path model = make_model(tmp.path());
  const Result r = run(tmp.path(), {"move", url(model), url(tmp.path() / "moved")});
  INFO(r.out, r.err);
  REQUIRE(r.code == 0);
  CHECK(contains(r.out, "moved"));
  CHECK(contains(r.out, "weightDataBytes:     78"));
  CHECK_FALSE(fs::exists(model));
  CHECK_FALSE(fs::exists(tmp.path() / "src" / "weights.bin"));
  CHECK(read_file(tmp.path() / "moved" / "weights.bin") == weight_bytes());
  CHECK(run(tmp.path(), {"verify", url(tmp.path() / "moved" / "model.json")}).code == 0);

  // Moving a model that is not there changes nothing and says so.
  const Result missing = run(tmp.path(), {"move", url(model), url(tmp.path() / "other")});
  CHECK(missing.code == 3);
  CHECK_FALSE(fs::exists(tmp.path() / "other" / "model.json"));
}

TEST_CASE("memory:// lives only as long as one invocation") {
  TempDir tmp;
  const fs::path model = make_model(tmp.path());
  const Result r = run(tmp.path(), {"copy", url(model), "memory://m", "--json"});
  INFO(r.out, r.err);
  REQUIRE(r.code == 0);
  const rapidjson::Document doc = parse_json(r.out);
  CHECK(doc["weightBytes"].GetUint64() == kWeightBytes);
  CHECK(doc["tensors"].GetUint64() == 7);

  const Result later = run(tmp.path(), {"info", "memory://m"});
  CHECK(later.code == 3);
  CHECK(contains(later.err, "memory://m"));
}

TEST_CASE("bad input: clear one-line errors and distinct exit codes, never a crash") {
  TempDir tmp;
  const fs::path model = make_model(tmp.path());

  SUBCASE("unknown scheme lists the schemes available") {
    const Result r = run(tmp.path(), {"info", "nosuch://x/model.json"});
    CHECK(r.code == 3);
    CHECK(r.err.starts_with("stowage: error: "));
    CHECK(contains(r.err, "nosuch"));
    CHECK(contains(r.err, "file"));
    CHECK(contains(r.err, "memory"));
  }
  SUBCASE("missing model") {
    const Result r = run(tmp.path(), {"info", url(tmp.path() / "none" / "model.json")});
    CHECK(r.code == 3);
    CHECK(contains(r.err, "none/model.json"));
  }
  SUBCASE("model.json that is not JSON") {
    write_file(tmp.path() / "junk" / "model.json", "<html>not a model</html>");
    const Result r = run(tmp.path(), {"verify", url(tmp.path() / "junk" / "model.json")});
    CHECK(r.code == 4);
    CHECK(contains(r.err, "junk/model.json"));
  }
  SUBCASE("an HTML page in place of the weights") {
    write_file(tmp.path() / "src" / "weights.bin", "<html>404</html>");
    const Result r = run(tmp.path(), {"info", url(model), "--stats"});
    CHECK(r.code == 4);
    CHECK(contains(r.err, "weights.bin"));
  }
  SUBCASE("bad options JSON is a usage error") {
    const Result r =
        run(tmp.path(), {"copy", url(model), url(tmp.path() / "o"), "--dst-options", "{not json"});
    CHECK(r.code == 2);
    CHECK(contains(r.err, "--dst-options"));
  }
  SUBCASE("an option the plugin does not know is refused") {
    const Result r = run(tmp.path(), {"info", url(model), "-o", "no_such_option=1"});
    CHECK(r.code == 4);
    CHECK(contains(r.err, "no_such_option"));
  }
}

TEST_CASE("--config applies a host configuration: an allow-list hides memory://") {
  TempDir tmp;
  const fs::path model = make_model(tmp.path());
  write_file(tmp.path() / "stowage.json", R"({"allow": ["file"]})");

  const Result plugins = run(tmp.path(), {"plugins", "--json", "--config", "stowage.json"});
  REQUIRE(plugins.code == 0);
  const rapidjson::Document doc = parse_json(plugins.out);
  for (const auto& p : doc["plugins"].GetArray()) {
    CHECK(p["allowed"].GetBool() == (p["name"].GetString() == std::string("file")));
  }
  // Before the subcommand works too.
  const Result copy =
      run(tmp.path(), {"--config", "stowage.json", "copy", url(model), "memory://m"});
  CHECK(copy.code == 3);
  CHECK(contains(copy.err, "memory"));

  write_file(tmp.path() / "bad.json", R"({"no_such_key": 1})");
  const Result bad = run(tmp.path(), {"plugins", "--config", "bad.json"});
  CHECK(bad.code == 4);
  CHECK(contains(bad.err, "no_such_key"));
  CHECK(run(tmp.path(), {"plugins", "--config", "missing.json"}).code == 2);
}

TEST_CASE("typos: an unknown command or option gets the nearest one, as a stowage: error line") {
  TempDir tmp;
  auto error_of = [&](const std::vector<std::string>& args) {
    const Result r = run(tmp.path(), args);
    CHECK(r.code == 2);
    CHECK(r.out.empty());
    return r.err;
  };
  CHECK(error_of({"cpy", "a", "b"}) ==
        "stowage: error: unknown command 'cpy' (did you mean 'copy'?); 'stowage --help' lists "
        "the commands\n");
  CHECK(error_of({"lsit", "x"}) ==
        "stowage: error: unknown command 'lsit' (did you mean 'list'?); 'stowage --help' lists "
        "the commands\n");
  CHECK(error_of({"--config", "stowage.json", "verfy", "x"}) ==
        "stowage: error: unknown command 'verfy' (did you mean 'verify'?); 'stowage --help' "
        "lists the commands\n");
  CHECK(error_of({"frobnicate"}) ==
        "stowage: error: unknown command 'frobnicate'; 'stowage --help' lists the commands\n");
  CHECK(error_of({"browser", "exprot"}) ==
        "stowage: error: unknown command 'exprot' for 'stowage browser' (did you mean "
        "'export'?); 'stowage browser --help' lists the commands\n");
  CHECK(error_of({}) ==
        "stowage: error: a command is required; 'stowage --help' lists the "
        "commands\n");
  CHECK(error_of({"browser"}) ==
        "stowage: error: 'stowage browser' needs a command; 'stowage browser --help' lists "
        "them\n");
  CHECK(error_of({"info", "--jsn", "x"}) ==
        "stowage: error: The following argument was not expected: --jsn (did you mean "
        "'--json'?); see 'stowage info --help'\n");
  CHECK(error_of({"copy", "a"}) == "stowage: error: DST is required; see 'stowage copy --help'\n");
}

TEST_CASE("a known scheme with a slash too few is a typo, not a file name") {
  TempDir tmp;
  const Result s3 = run(tmp.path(), {"info", "s3:/bucket/x"});
  CHECK(s3.code == 2);
  CHECK(s3.err ==
        "stowage: error: s3:/bucket/x: did you mean s3://bucket/x? (a URL is scheme://...; for a "
        "file of that name write ./s3:/bucket/x)\n");
  CHECK(contains(run(tmp.path(), {"ls", "memory:m"}).err, "did you mean memory://m?"));
  CHECK(contains(run(tmp.path(), {"verify", "file:/srv/m"}).err, "did you mean file:///srv/m?"));
  CHECK(contains(run(tmp.path(), {"copy", "a", "S3:bucket/x"}).err, "did you mean s3://bucket/x?"));
  // Not a scheme anyone serves: a file path, as always.
  const Result path = run(tmp.path(), {"info", "nosuch:thing"});
  CHECK(path.code == 3);
  CHECK(contains(path.err, "nosuch:thing does not exist"));
}

TEST_CASE("copy and move take --src-option and --dst-option; -o says which to use") {
  TempDir tmp;
  const fs::path model = make_model(tmp.path());
  for (const char* command : {"copy", "move"}) {
    const Result r = run(tmp.path(), {command, url(model), "memory://m", "-o", "profile=x"});
    CHECK(r.code == 2);
    CHECK(r.err == "stowage: error: -o profile=x: " + std::string(command) +
                       " has two URLs; give the source's options with --src-option KEY=VALUE "
                       "and the destination's with --dst-option KEY=VALUE\n");
  }
  CHECK(fs::exists(model));

  const Result sharded =
      run(tmp.path(), {"copy", url(model), url(tmp.path() / "s"), "--dst-option", "shard_size=16",
                       "--src-option", "durable=false", "--json"});
  INFO(sharded.err);
  REQUIRE(sharded.code == 0);
  CHECK(parse_json(sharded.out)["shards"].GetUint64() == 5);
  const Result unknown =
      run(tmp.path(), {"copy", url(model), url(tmp.path() / "u"), "--dst-option", "nope=1"});
  CHECK(unknown.code == 4);
  CHECK(contains(unknown.err, "Unknown option \"nope\""));
  const Result malformed =
      run(tmp.path(), {"move", url(model), url(tmp.path() / "u"), "--src-option", "nope"});
  CHECK(malformed.code == 2);
  CHECK(malformed.err == "stowage: error: --src-option nope: expected KEY=VALUE\n");
}

TEST_CASE("list: a location that is not there is not found; an empty folder lists nothing") {
  TempDir tmp;
  const fs::path model = make_model(tmp.path());
  const Result missing = run(tmp.path(), {"ls", "nodir"});
  CHECK(missing.code == 3);
  CHECK(missing.out.empty());
  CHECK(missing.err == "stowage: error: file://nodir: there is no file or folder " +
                           (tmp.path() / "nodir").string() + " to list\n");
  CHECK(run(tmp.path(), {"ls", "--json", url(tmp.path() / "nodir")}).code == 3);

  const Result file = run(tmp.path(), {"ls", "src/weights.bin"});
  CHECK(file.code == 4);
  CHECK(contains(file.err, "src/weights.bin is a file that is not a model.json"));

  fs::create_directories(tmp.path() / "empty");
  const Result empty = run(tmp.path(), {"ls", "empty"});
  CHECK(empty.code == 0);
  CHECK(empty.out == "no models under file://empty\n");
  const Result empty_json = run(tmp.path(), {"ls", "empty", "--json"});
  CHECK(empty_json.code == 0);
  CHECK(empty_json.out == "{}\n");

  const Result one = run(tmp.path(), {"ls", "src/model.json"});
  CHECK(one.code == 0);
  CHECK(contains(one.out, model.string()));
}

TEST_CASE("-q keeps progress and notes away, never the answer of a query") {
  TempDir tmp;
  const fs::path model = make_model(tmp.path());
  const Result copied = run(tmp.path(), {"copy", "-q", url(model), url(tmp.path() / "m" / "a")});
  CHECK(copied.code == 0);
  CHECK(copied.out.empty());  // a command that changes things: nothing on success
  CHECK(copied.err.empty());

  const Result listed = run(tmp.path(), {"ls", "-q", url(tmp.path() / "m")});
  CHECK(listed.code == 0);
  CHECK(contains(listed.out, "m/a/model.json"));
  const Result info = run(tmp.path(), {"info", "-q", url(model)});
  CHECK(info.code == 0);
  CHECK(contains(info.out, "weights: 7 tensors"));
  const Result verified = run(tmp.path(), {"verify", "-q", url(model)});
  CHECK(verified.code == 0);
  CHECK(verified.out.starts_with("OK "));
  const Result plugins = run(tmp.path(), {"plugins", "-q"});
  CHECK(plugins.code == 0);
  CHECK(contains(plugins.out, "schemes available:"));
  for (const Result* r : {&listed, &info, &verified, &plugins}) CHECK(r->err.empty());

  const Result removed = run(tmp.path(), {"rm", "-q", url(tmp.path() / "m" / "a")});
  CHECK(removed.code == 0);
  CHECK(removed.out.empty());
}

TEST_CASE("info: a topology summary for every model class of the samples and fixtures") {
  TempDir tmp;
  const fs::path source = STOWAGE_SOURCE_DIR;
  const std::map<std::string, std::string> expected = {
      {"samples/models/conv_sharded", "Sequential, 3 layers"},  // the converter's layout
      {"samples/models/dense", "Sequential, 2 layers"},
      {"samples/models/dtype_zoo", "none (a weights-only model)"},
      {"sdk/conformance/fixtures/all_fields", "graph, 4 nodes"},
      {"sdk/conformance/fixtures/batchnorm_adam", "Sequential, 3 layers"},
      {"sdk/conformance/fixtures/conv_sharded", "Sequential, 3 layers"},
      {"sdk/conformance/fixtures/dtype_zoo", "none (a weights-only model)"},
      {"sdk/conformance/fixtures/dtypes_grouped", "none (a weights-only model)"},
      {"sdk/conformance/fixtures/no_weights", "Sequential, 2 layers"},
      {"sdk/conformance/fixtures/two_inputs_by_layer",
       "Model (functional), 6 layers, 2 inputs, 1 output"},
  };
  // Every model there has an expectation: a new one cannot slip past.
  size_t seen = 0;
  for (const char* folder : {"samples/models", "sdk/conformance/fixtures"}) {
    for (const auto& entry : fs::directory_iterator(source / folder)) {
      if (!fs::exists(entry.path() / "model.json")) continue;
      const std::string key = std::string(folder) + "/" + entry.path().filename().string();
      CAPTURE(key);
      REQUIRE(expected.count(key) == 1);
      ++seen;
      const Result r = run(tmp.path(), {"info", (entry.path() / "model.json").string()});
      REQUIRE(r.code == 0);
      CHECK(contains(r.out, "topology:            " + expected.at(key) + "\n"));
      const Result j = run(tmp.path(), {"info", "--json", (entry.path() / "model.json").string()});
      REQUIRE(j.code == 0);
      CHECK(parse_json(j.out)["topology"].GetString() == expected.at(key));
    }
  }
  CHECK(seen == expected.size());

  // Shapes no sample has: old Keras's Sequential (a list), a Keras 3
  // Functional, and a topology that is neither.
  const std::vector<std::pair<std::string, std::string>> shapes = {
      {R"({"class_name":"Sequential","config":[{"class_name":"Dense"}]})", "Sequential, 1 layer"},
      {R"({"model_config":{"class_name":"Functional","config":{"layers":[{},{}],)"
       R"("input_layers":[["a",0,0]],"output_layers":[["b",0,0]]}}})",
       "Functional, 2 layers, 1 input, 1 output"},
      {R"({"something":"else"})", "JSON (not a layers or graph topology)"},
  };
  for (const auto& [topology, summary] : shapes) {
    CAPTURE(topology);
    write_file(tmp.path() / "shape" / "model.json",
               R"({"modelTopology":)" + topology + R"(,"format":"layers-model"})");
    const Result r = run(tmp.path(), {"info", "shape/model.json"});
    REQUIRE(r.code == 0);
    CHECK(contains(r.out, "topology:            " + summary + "\n"));
  }
}

TEST_CASE("a bad key in the config's defaults names the config file and the key path") {
  TempDir tmp;
  const fs::path model = make_model(tmp.path());
  write_file(tmp.path() / "stowage.json", R"({"defaults": {"file": {"shard_sise": 4}}})");
  const Result r = run(tmp.path(), {"info", "--config", "stowage.json", url(model)});
  CHECK(r.code == 4);
  CHECK(r.err.starts_with(
      "stowage: error: config stowage.json: defaults.file.shard_sise: unknown option (Unknown "
      "option \"shard_sise\" for file://"));
  // The same from STOWAGE_CONFIG, and through a copy's destination.
  const Result env = stowage::testing::run_program(
      STOWAGE_CLI_EXE, {"copy", url(model), url(tmp.path() / "out")},
      {.cwd = tmp.path(),
       .drop_env = {"STOWAGE_"},
       .add_env = {"STOWAGE_CONFIG=" + (tmp.path() / "stowage.json").string()}});
  CHECK(env.code == 4);
  CHECK(contains(env.err, "config " + (tmp.path() / "stowage.json").string() +
                              ": defaults.file.shard_sise: unknown option"));
  CHECK_FALSE(fs::exists(tmp.path() / "out"));

  // A wrong type too; and a mistake on the command line stays the command line's.
  write_file(tmp.path() / "typed.json", R"({"defaults": {"file": {"durable": "no"}}})");
  const Result typed = run(tmp.path(), {"info", "--config", "typed.json", url(model)});
  CHECK(typed.code == 4);
  CHECK(contains(typed.err,
                 "config typed.json: defaults.file.durable: bad value (Option "
                 "\"durable\" for file://"));
  const Result call = run(tmp.path(), {"info", "--config", "typed.json", url(model), "-o",
                                       "durable=true", "-o", "colour=1"});
  CHECK(call.code == 4);
  CHECK_FALSE(contains(call.err, "typed.json"));
  CHECK(contains(call.err, "Unknown option \"colour\""));
}
