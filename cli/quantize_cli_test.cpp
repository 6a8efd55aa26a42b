// `stowage copy --quantize` against the converter's output: every model in
// tests/data/quantize (the converter's algorithm run in NumPy by
// tests/quantize_reference.py) must come out byte for byte, and `stowage info
// --stats` must show the dequantised range.
#include <doctest/doctest.h>
#include <rapidjson/document.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "cli_test_util.hpp"
#include "run_program.hpp"

namespace fs = std::filesystem;

namespace {

using Result = stowage::testing::ProgramResult;
using stowage::cli_test::contains;
using stowage::cli_test::run;
using stowage::testing::read_file;
using stowage::testing::write_file;

const fs::path kData = fs::path(STOWAGE_SOURCE_DIR) / "tests" / "data" / "quantize";
const std::string kFloatModel = "file://" + (kData / "float_model" / "model.json").string();

class TempDir : public stowage::testing::TempDir {
 public:
  TempDir() : stowage::testing::TempDir("stowage-cli-quantize-test") {}
};

rapidjson::Document parse(const std::string& text) {
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseFullPrecisionFlag>(text.c_str());
  INFO("JSON: ", text);
  REQUIRE_FALSE(doc.HasParseError());
  return doc;
}

// The manifest entries of a model.json, keyed by weight name, as
// "dtype|shape|qdtype|min|scale|original_dtype" with the numbers as exact
// doubles (%a), so the converter's "1.0" and stowage's "1" compare equal.
std::map<std::string, std::string> manifest_of(const fs::path& model_json) {
  const rapidjson::Document doc = parse(read_file(model_json));
  std::map<std::string, std::string> out;
  for (const auto& group : doc["weightsManifest"].GetArray()) {
    for (const auto& w : group["weights"].GetArray()) {
      std::string text = std::string(w["dtype"].GetString()) + "|";
      for (const auto& d : w["shape"].GetArray()) text += std::to_string(d.GetInt64()) + ",";
      if (w.HasMember("quantization")) {
        const auto& q = w["quantization"];
        auto num = [&](const char* key) {
          if (!q.HasMember(key)) return std::string("-");
          char hex[64];
          std::snprintf(hex, sizeof hex, "%a", q[key].GetDouble() + 0.0);  // -0 == 0
          return std::string(hex);
        };
        text += std::string("|") + q["dtype"].GetString() + "|" + num("min") + "|" + num("scale") +
                "|" + q["original_dtype"].GetString();
      }
      out[w["name"].GetString()] = text;
    }
  }
  return out;
}

// The converter flags of a golden scenario as stowage copy arguments.
std::vector<std::string> quantize_args(const fs::path& scenario) {
  const rapidjson::Document flags = parse(read_file(scenario / "flags.json"));
  std::vector<std::string> args;
  for (const auto& f : flags["flags"].GetObject()) {
    args.insert(args.end(), {"--quantize", f.name.GetString()});
    if (f.value.IsString()) args.insert(args.end(), {"--quantize-only", f.value.GetString()});
  }
  if (std::string(flags["numpy"].GetString()) == "numpy1") {
    args.insert(args.end(), {"--quantize-numpy", "1"});
  }
  return args;
}

// info --stats --json: name -> {min, max}.
std::map<std::string, std::pair<double, double>> stats_of(const fs::path& cwd,
                                                          const std::string& url) {
  const Result r = run(cwd, {"info", url, "--stats", "--json"});
  INFO(r.err);
  REQUIRE(r.code == 0);
  const rapidjson::Document doc = parse(r.out);
  std::map<std::string, std::pair<double, double>> out;
  for (const auto& w : doc["weights"].GetArray()) {
    if (w["stats"].IsNull()) continue;
    out[w["name"].GetString()] = {w["stats"]["min"].GetDouble(), w["stats"]["max"].GetDouble()};
  }
  return out;
}

}  // namespace

TEST_CASE("copy --quantize writes the converter's bytes, min and scale for every golden model") {
  TempDir tmp;
  size_t scenarios = 0;
  for (const auto& entry : fs::directory_iterator(kData)) {
    const fs::path scenario = entry.path();
    if (!fs::exists(scenario / "flags.json")) continue;
    const std::string name = scenario.filename().string();
    INFO("scenario ", name);
    std::vector<std::string> args = {"copy", kFloatModel, "file://" + (tmp.path() / name).string(),
                                     "--converter-shards", "--json"};
    const std::vector<std::string> q = quantize_args(scenario);
    args.insert(args.end(), q.begin(), q.end());
    const Result r = run(tmp.path(), args);
    INFO(r.out, r.err);
    REQUIRE(r.code == 0);
    CHECK(read_file(tmp.path() / name / "group1-shard1of1.bin") ==
          read_file(scenario / "group1-shard1of1.bin"));
    CHECK(manifest_of(tmp.path() / name / "model.json") == manifest_of(scenario / "model.json"));

    const rapidjson::Document out = parse(r.out);
    CHECK(out["verified"].GetBool());
    REQUIRE(out["quantization"].IsObject());
    const auto& report = out["quantization"];
    CHECK(report["numpy"].GetUint() == (contains(name, "numpy1") ? 1u : 2u));
    CHECK(report["bytesAfter"].GetUint64() == fs::file_size(scenario / "group1-shard1of1.bin"));
    size_t quantized_in_golden = 0;
    for (const auto& [weight, text] : manifest_of(scenario / "model.json")) {
      quantized_in_golden += std::count(text.begin(), text.end(), '|') > 1;
    }
    CHECK(report["quantized"].GetUint() == quantized_in_golden);
    if (name == "uint8_patterns") {
      // 'nothing/*' matches no weight: reported, and warned about.
      REQUIRE(report["unmatchedPatterns"].Size() == 1);
      CHECK(report["unmatchedPatterns"][0].GetString() == std::string("nothing/*"));
      CHECK(contains(r.err, "warning: --quantize-only pattern 'nothing/*' matched no weight"));
    }
    ++scenarios;
  }
  CHECK(scenarios == 6);
}

TEST_CASE("info --stats shows the dequantised range, the converter's to the last bit") {
  TempDir tmp;
  const std::string copy = "file://" + (tmp.path() / "q8").string();
  const Result r = run(tmp.path(), {"copy", kFloatModel, copy, "--quantize", "uint8"});
  INFO(r.out, r.err);
  REQUIRE(r.code == 0);
  CHECK(contains(r.out, "quantized:           6 of 9 weights to uint8, 619 -> 175 bytes"));
  CHECK(contains(r.out, "left as they are:  step (int32), mask (bool), vocab (string)"));

  const auto ours = stats_of(tmp.path(), copy + "/model.json");
  const auto converter =
      stats_of(tmp.path(), "file://" + (kData / "uint8_all" / "model.json").string());
  const auto original = stats_of(tmp.path(), kFloatModel);
  CHECK(ours == converter);

  // Against the float32 weights: within scale / 2 (plus float32 rounding),
  // and visibly quantized (the kernel's extremes moved).
  const rapidjson::Document info =
      parse(run(tmp.path(), {"info", copy + "/model.json", "--json"}).out);
  size_t checked = 0;
  for (const auto& w : info["weights"].GetArray()) {
    if (w["quantization"].IsNull()) continue;
    const std::string name = w["name"].GetString();
    const double scale = w["quantization"]["scale"].GetDouble();
    const auto [lo, hi] = original.at(name);
    const auto [qlo, qhi] = ours.at(name);
    INFO(name);
    CHECK(std::abs(qlo - lo) <= scale / 2 + std::abs(lo) * 0x1p-24);
    CHECK(std::abs(qhi - hi) <= scale / 2 + std::abs(hi) * 0x1p-24);
    ++checked;
  }
  CHECK(checked == 6);
  CHECK(ours.at("dense_1/kernel") != original.at("dense_1/kernel"));
  CHECK(ours.at("step") == original.at("step"));

  // The human table names the storage and its metadata.
  const Result table = run(tmp.path(), {"info", copy + "/model.json", "--stats"});
  REQUIRE(table.code == 0);
  CHECK(contains(table.out, "conv2/bias"));
  CHECK(contains(table.out, "uint8 scale=1 min=0"));
}

TEST_CASE("move --quantize: the source goes only after the quantized copy reads back") {
  TempDir tmp;
  fs::copy(kData / "float_model", tmp.path() / "src");
  const std::string src = "file://" + (tmp.path() / "src" / "model.json").string();
  const std::string dst = "file://" + (tmp.path() / "f16").string();
  const Result r = run(tmp.path(), {"move", src, dst, "--quantize", "float16"});
  INFO(r.out, r.err);
  REQUIRE(r.code == 0);
  CHECK_FALSE(fs::exists(tmp.path() / "src" / "model.json"));
  CHECK(read_file(tmp.path() / "f16" / "weights.bin") ==
        read_file(kData / "float16_all" / "group1-shard1of1.bin"));
  CHECK(manifest_of(tmp.path() / "f16" / "model.json") ==
        manifest_of(kData / "float16_all" / "model.json"));
}

TEST_CASE("copy --quantize refuses what would not load, and writes nothing") {
  TempDir tmp;
  // A weight holding NaN: the converter would write NaN into min/scale.
  std::string bytes;
  for (float v : {1.0f, std::nanf(""), -1.0f}) bytes.append(reinterpret_cast<const char*>(&v), 4);
  write_file(tmp.path() / "nan" / "weights.bin", bytes);
  write_file(tmp.path() / "nan" / "model.json",
             R"({"modelTopology":{},"weightsManifest":[{"paths":["weights.bin"],)"
             R"("weights":[{"name":"odd/w","shape":[3],"dtype":"float32"}]}]})");
  const std::string src = "file://" + (tmp.path() / "nan" / "model.json").string();
  Result r = run(tmp.path(), {"copy", src, "out", "--quantize", "uint16"});
  CHECK(r.code == 4);
  CHECK(contains(r.err, "stowage: error: "));
  CHECK(contains(r.err,
                 "weight 'odd/w' holds nan at index 1; uint16 quantization of it would "
                 "write NaN or Infinity into min/scale"));
  CHECK_FALSE(fs::exists(tmp.path() / "out"));
  // float16 keeps NaN, as the converter does; leaving the weight out works too.
  CHECK(run(tmp.path(), {"copy", src, "out16", "--quantize", "float16"}).code == 0);
  r = run(tmp.path(), {"copy", src, "out8", "--quantize", "uint8", "--quantize-only", "other/*"});
  CHECK(r.code == 0);
  CHECK(contains(r.out, "quantized:           0 of 1 weights to uint8"));

  // NumPy 1 rules on a range float32 cannot hold: refused, naming the weight.
  bytes.clear();
  for (float v : {-3.0e38f, 3.0e38f}) bytes.append(reinterpret_cast<const char*>(&v), 4);
  write_file(tmp.path() / "wide" / "weights.bin", bytes);
  write_file(tmp.path() / "wide" / "model.json",
             R"({"modelTopology":{},"weightsManifest":[{"paths":["weights.bin"],)"
             R"("weights":[{"name":"wide","shape":[2],"dtype":"float32"}]}]})");
  const std::string wide = "file://" + (tmp.path() / "wide" / "model.json").string();
  r = run(tmp.path(), {"copy", wide, "w1", "--quantize", "uint8", "--quantize-numpy", "1"});
  CHECK(r.code == 4);
  CHECK(contains(r.err, "weight 'wide': with NumPy 1 the Python converter computes in float32"));
  CHECK_FALSE(fs::exists(tmp.path() / "w1"));
  CHECK(run(tmp.path(), {"copy", wide, "w2", "--quantize", "uint8"}).code == 0);
}

TEST_CASE("quantize options: usage errors exit 2 with the reason") {
  TempDir tmp;
  Result r = run(tmp.path(), {"copy", kFloatModel, "o", "--quantize", "int8"});
  CHECK(r.code == 2);
  CHECK(contains(r.err, "--quantize: int8 not in {uint8,uint16,float16}"));
  r = run(tmp.path(), {"copy", kFloatModel, "o", "--quantize-only", "dense*"});
  CHECK(r.code == 2);
  CHECK(contains(r.err, "--quantize-only requires --quantize"));
  r = run(tmp.path(), {"copy", kFloatModel, "o", "--quantize", "uint8", "--quantize-numpy", "3"});
  CHECK(r.code == 2);
  CHECK(contains(r.err, "--quantize-numpy: 3 not in {1,2}"));
  r = run(tmp.path(), {"copy", kFloatModel, "o", "--quantize", "uint8", "--quantize-only", "a,,b"});
  CHECK(r.code == 2);
  CHECK(contains(r.err, "stowage: error: --quantize-only 'a,,b': empty pattern (a stray comma?)"));
  CHECK_FALSE(fs::exists(tmp.path() / "o"));

  // --quantize-only takes one list per occurrence, so SRC and DST may follow it.
  r = run(tmp.path(), {"copy", "--quantize", "uint8", "--quantize-only", "conv?/bias",
                       "--quantize-only", "dense*/kernel", kFloatModel, "o", "--json"});
  INFO(r.out, r.err);
  REQUIRE(r.code == 0);
  const rapidjson::Document doc = parse(r.out);
  CHECK(doc["quantization"]["quantized"].GetUint() == 3);
  CHECK(doc["quantization"]["patterns"].Size() == 2);

  // Without --quantize the JSON says so.
  r = run(tmp.path(), {"copy", kFloatModel, "plain", "--json"});
  REQUIRE(r.code == 0);
  CHECK(parse(r.out)["quantization"].IsNull());
}
