// Runs every format case of the bad-input corpus (tests/data/bad/format,
// see tests/data/bad/README.md) through the format library directly:
// parse_model_json, then validate_weight_bytes, then decode_weights. Each
// case must fail with its code and message parts. Cases about files that
// cannot be read (needs_plugin) are checked by the file plugin's test,
// which loads each folder through file://.
#include <doctest/doctest.h>
#include <rapidjson/document.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "bad_cases.hpp"
#include "stowage/error.hpp"
#include "stowage/model_json.hpp"
#include "stowage/weights.hpp"

namespace fs = std::filesystem;
using namespace stowage;

namespace {

using stowage::testing::read_cases;
using stowage::testing::read_required_file;

const fs::path kCorpus = fs::path(STOWAGE_SOURCE_DIR) / "tests" / "data" / "bad" / "format";

// What a loader does before handing artifacts out, minus the I/O plugin.
void load_and_decode(const fs::path& dir) {
  const fs::path json_path = dir / "model.json";
  ModelArtifacts a = parse_model_json(read_required_file(json_path), json_path.string());
  WeightData data;
  if (a.weights_manifest) {
    for (const WeightGroup& g : *a.weights_manifest) {
      for (const std::string& p : g.paths) {
        const fs::path shard = dir / p;
        REQUIRE_MESSAGE(fs::is_regular_file(shard),
                        "shard " << shard << " is missing; mark the case needs_plugin");
        data.push_back(Buffer::from_string(read_required_file(shard), shard.string()));
      }
    }
  }
  a.weight_data = std::move(data);
  validate_weight_bytes(a, json_path.string());
  decode_weights(*a.weight_data, a.weight_specs.value_or(std::vector<WeightSpec>{}));
}

}  // namespace

TEST_CASE("every bad-input case fails with its code and message") {
  const rapidjson::Document cases = read_cases(kCorpus / "cases.json");
  REQUIRE(cases.Size() >= 20);

  std::set<std::string> listed;
  int checked = 0;
  int skipped = 0;
  for (const auto& c : cases.GetArray()) {
    const std::string name = c["name"].GetString();
    listed.insert(name);
    CAPTURE(name);
    REQUIRE(fs::is_regular_file(kCorpus / name / "model.json"));
    if (c.HasMember("needs_plugin") && c["needs_plugin"].GetBool()) {
      MESSAGE("skipped here (checked through the file plugin): " << name);
      ++skipped;
      continue;
    }
    bool threw = false;
    try {
      load_and_decode(kCorpus / name);
    } catch (const Error& e) {
      threw = true;
      const std::string message = e.what();
      CAPTURE(message);
      CHECK(std::string(error_code_name(e.code())) == c["code"].GetString());
      for (const auto& part : c["contains"].GetArray()) {
        CHECK_MESSAGE(message.find(part.GetString()) != std::string::npos,
                      "missing \"" << part.GetString() << "\"");
      }
      // Messages name the file they are about.
      CHECK(message.find(name) != std::string::npos);
    }
    CHECK_MESSAGE(threw, "no stowage::Error for " << name);
    ++checked;
  }
  CHECK(checked + skipped == static_cast<int>(cases.Size()));
  CHECK(skipped >= 1);

  // Every folder is a listed case and no case is listed twice.
  std::set<std::string> folders;
  for (const auto& entry : fs::directory_iterator(kCorpus)) {
    if (entry.is_directory()) folders.insert(entry.path().filename().string());
  }
  CHECK(folders == listed);
  CHECK(listed.size() == cases.Size());
}
