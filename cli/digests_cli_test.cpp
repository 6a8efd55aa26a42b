// The recorded weight digests on the command line: `stowage verify` says how
// many it checked, every loading command refuses a weight file whose bytes
// differ from its digest, and --no-verify-digests skips the check. The
// models' digests are written with the format library.
#include <doctest/doctest.h>
#include <rapidjson/document.h>

#include <filesystem>
#include <string>
#include <vector>

#include "cli_test_util.hpp"
#include "run_program.hpp"
#include "stowage/digest.hpp"
#include "stowage/model_json.hpp"

namespace fs = std::filesystem;
using stowage::cli_test::contains;
using stowage::cli_test::parse_json;
using stowage::cli_test::run;
using stowage::testing::read_file;
using stowage::testing::write_file;

namespace {

std::string url(const fs::path& p) { return "file://" + p.string(); }

std::string digest_of(const std::string& bytes) {
  return stowage::sha256_hex(
      std::span(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
}

// dir/model.json: 12 float32 weights in three 16-byte shards, with their
// digests when `digests`.
fs::path make_model(const fs::path& dir, bool digests) {
  stowage::ModelArtifacts a;
  a.model_topology = R"({"class_name":"Sequential","config":{"name":"t","layers":[]}})";
  a.format = "layers-model";
  a.generated_by = "TensorFlow.js tfjs-layers v4.22.0";
  a.converted_by = stowage::NullableString::null();
  stowage::WeightGroup group;
  group.weights.push_back(stowage::WeightSpec{"dense/kernel", {12}, "float32", {}, {}});
  std::vector<std::string> sha;
  for (int i = 1; i <= 3; ++i) {
    const std::string path = "group1-shard" + std::to_string(i) + "of3.bin";
    std::string bytes(16, '\0');
    for (size_t b = 0; b < bytes.size(); ++b) bytes[b] = static_cast<char>(i * 40 + b);
    write_file(dir / path, bytes);
    group.paths.push_back(path);
    sha.push_back(digest_of(bytes));
  }
  if (digests) group.sha256 = sha;
  const stowage::WeightsManifest manifest{group};
  write_file(dir / "model.json",
             stowage::write_model_json(a, manifest, stowage::ModelJsonLayout::kTfjsNode));
  return dir / "model.json";
}

// Flips a bit of shard 2's byte 5 (same size); returns the DATA_LOSS message
// a load of `model_url` gives.
std::string break_shard(const fs::path& dir, const std::string& model_url) {
  const fs::path shard = dir / "group1-shard2of3.bin";
  std::string bytes = read_file(shard);
  const std::string recorded = digest_of(bytes);
  bytes[5] = static_cast<char>(bytes[5] ^ 0x01);
  write_file(shard, bytes);
  return "model.json at " + model_url + ": weight group 1 file 2 of 3 'group1-shard2of3.bin' (" +
         shard.string() + ", 16 bytes) has SHA-256 " + digest_of(bytes) +
         ", but model.json records " + recorded;
}

class TempDir : public stowage::testing::TempDir {
 public:
  TempDir() : stowage::testing::TempDir("stowage-digests-cli-test") {}
};

}  // namespace

TEST_CASE("verify says how many digests it checked, or that none are recorded") {
  TempDir tmp;
  const std::string with = url(make_model(tmp.path() / "with", true));
  const std::string without = url(make_model(tmp.path() / "without", false));

  const auto ok = run(tmp.path(), {"verify", with});
  INFO(ok.out, ok.err);
  CHECK(ok.code == 0);
  CHECK(ok.out.starts_with("OK " + with + ": 1 tensor decoded, 1 group, 3 shards, "));
  CHECK(ok.out.ends_with(" of weights\ndigests: 3 checked\n"));
  const rapidjson::Document doc = parse_json(run(tmp.path(), {"verify", with, "--json"}).out);
  CHECK(doc["digests"]["recorded"].GetUint64() == 3);
  CHECK(doc["digests"]["checked"].GetUint64() == 3);

  const auto none = run(tmp.path(), {"verify", without});
  CHECK(none.code == 0);
  CHECK(none.out.ends_with(" of weights\ndigests: none recorded\n"));
  const rapidjson::Document none_doc =
      parse_json(run(tmp.path(), {"verify", without, "--json"}).out);
  CHECK(none_doc["digests"]["recorded"].GetUint64() == 0);
  CHECK(none_doc["digests"]["checked"].GetUint64() == 0);

  const auto skipped = run(tmp.path(), {"verify", "--no-verify-digests", with});
  CHECK(skipped.code == 0);
  CHECK(
      skipped.out.ends_with(" of weights\ndigests: 3 recorded, not checked "
                            "(--no-verify-digests)\n"));
  const rapidjson::Document skipped_doc =
      parse_json(run(tmp.path(), {"verify", "--no-verify-digests", with, "--json"}).out);
  CHECK(skipped_doc["digests"]["recorded"].GetUint64() == 3);
  CHECK(skipped_doc["digests"]["checked"].GetUint64() == 0);
}

TEST_CASE("verify, info and copy refuse a flipped byte; --no-verify-digests loads it") {
  TempDir tmp;
  const fs::path dir = tmp.path() / "m";
  const std::string model = url(make_model(dir, true));
  const std::string message = break_shard(dir, model);

  const auto bad = run(tmp.path(), {"verify", model});
  CHECK(bad.code == 4);
  CHECK(bad.out.empty());
  CHECK(bad.err == "stowage: error: " + message + "\n");
  const auto bad_json = run(tmp.path(), {"verify", model, "--json"});
  CHECK(bad_json.code == 4);
  const rapidjson::Document doc = parse_json(bad_json.out);
  CHECK_FALSE(doc["ok"].GetBool());
  CHECK(std::string(doc["error"]["code"].GetString()) == "data loss");
  CHECK(std::string(doc["error"]["message"].GetString()) == message);

  // info reads model.json alone (stat) unless --stats loads the weights.
  CHECK(run(tmp.path(), {"info", model}).code == 0);
  const auto info = run(tmp.path(), {"info", "--stats", model});
  CHECK(info.code == 4);
  CHECK(info.err == "stowage: error: " + message + "\n");
  CHECK(run(tmp.path(), {"info", "--stats", "--no-verify-digests", model}).code == 0);

  const fs::path copy = tmp.path() / "copy";
  for (const char* streaming : {"--no-streaming", "-q"}) {
    CAPTURE(streaming);
    const auto copied = run(tmp.path(), {"copy", streaming, model, url(copy)});
    CHECK(copied.code == 4);
    CHECK(copied.err == "stowage: error: " + message + "\n");
    CHECK_FALSE(fs::exists(copy));
  }
  const auto trusted =
      run(tmp.path(), {"copy", "--no-verify-digests", "--single-file", model, url(copy)});
  INFO(trusted.err);
  CHECK(trusted.code == 0);
  CHECK(read_file(copy / "weights.bin").substr(16, 16) == read_file(dir / "group1-shard2of3.bin"));
}

TEST_CASE("--no-verify-digests is in the help of every command that loads") {
  TempDir tmp;
  for (const char* command : {"copy", "move", "info", "verify"}) {
    CAPTURE(command);
    const auto help = run(tmp.path(), {command, "--help"});
    CHECK(help.code == 0);
    CHECK(contains(help.out, "--no-verify-digests"));
  }
}

// abi.h sink_mark_verified: marker:// (sdk/testing/marker_plugin.cpp) hands
// over a weight file whose bytes do NOT match the digest model.json records
// and marks it verified against that digest. A plain load (info --stats)
// takes the plugin's word; verify hashes every file itself and refuses it.
TEST_CASE("verify hashes a buffer the plugin marked verified; info --stats does not") {
  TempDir tmp;
  const stowage::testing::RunOptions env{
      .cwd = tmp.path(),
      .drop_env = {"STOWAGE_"},
      .add_env = {"STOWAGE_PLUGIN_PATH=" STOWAGE_SDK_TEST_PLUGIN_DIR}};
  auto stowage = [&](std::vector<std::string> args) {
    return stowage::testing::run_program(STOWAGE_CLI_EXE, args, env);
  };
  const std::string options = R"({"bad": "0", "mark": "0"})";
  const auto info = stowage({"info", "--stats", "marker://m", "--options", options});
  INFO(info.err);
  CHECK(info.code == 0);

  std::string good(8, '\0');
  for (size_t k = 0; k < good.size(); ++k) good[k] = static_cast<char>(k + 1);
  std::string flipped = good;
  flipped[0] = static_cast<char>(flipped[0] ^ 0xff);
  const auto verified = stowage({"verify", "marker://m", "--options", options});
  CHECK(verified.code == 4);
  CHECK(verified.out.empty());
  CHECK(verified.err ==
        "stowage: error: model.json at marker://m: weight group 1 file 1 of 3 'w1.bin' "
        "(marker://m/w1.bin, 8 bytes) has SHA-256 " +
            digest_of(flipped) + ", but model.json records " + digest_of(good) + "\n");
}
