#include "stowage/digest.hpp"

#include <doctest/doctest.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "stowage/error.hpp"
#include "stowage/model_json.hpp"

using stowage::Error;
using stowage::ErrorCode;

namespace {
constexpr const char* kAbcHex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
constexpr const char* kEmptyHex =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

std::string group_json(const std::string& sha_value) {
  return R"({"weightsManifest":[{"paths":["a.bin","b.bin"],"weights":[{"name":"w","shape":[2],"dtype":"float32"}],"sha256":)" +
         sha_value + "}]}";
}

void check_refused(const std::string& text, const std::string& message) {
  try {
    (void)stowage::parse_model_json(text, "m/model.json");
    FAIL("accepted " << text);
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::kInvalidArgument);
    CHECK(std::string(e.what()) == message);
  }
}
}  // namespace

TEST_CASE("Sha256 matches the FIPS 180-2 vectors, incrementally and at once") {
  stowage::Sha256 h;
  h.update(std::string_view("a"));
  h.update(std::string_view("bc"));
  CHECK(h.finish_hex() == kAbcHex);
  CHECK(h.finish_hex() == kEmptyHex);  // starts over after finish
  CHECK(stowage::sha256_hex({}) == kEmptyHex);
  CHECK(stowage::sha256_base64_of_hex(kAbcHex) == "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=");
}

TEST_CASE("is_sha256_hex takes 64 lowercase hex digits only") {
  CHECK(stowage::is_sha256_hex(kAbcHex));
  std::string upper = kAbcHex;
  upper[0] = 'B';
  CHECK_FALSE(stowage::is_sha256_hex(upper));
  CHECK_FALSE(stowage::is_sha256_hex(std::string(kAbcHex).substr(1)));
  CHECK_FALSE(stowage::is_sha256_hex(std::string(kAbcHex) + "0"));
  std::string bad = kAbcHex;
  bad[5] = 'g';
  CHECK_FALSE(stowage::is_sha256_hex(bad));
}

TEST_CASE("a group's sha256 is read, and written right after its weights") {
  const std::string sha = std::string("[\"") + kAbcHex + "\",\"" + kEmptyHex + "\"]";
  stowage::ModelArtifacts a = stowage::parse_model_json(group_json(sha), "m/model.json");
  REQUIRE(a.weights_manifest);
  REQUIRE((*a.weights_manifest)[0].sha256);
  CHECK((*(*a.weights_manifest)[0].sha256)[1] == kEmptyHex);
  const std::string written =
      stowage::write_model_json(a, *a.weights_manifest, stowage::ModelJsonLayout::kTfjsNode);
  CHECK(
      written ==
      R"({"weightsManifest":[{"paths":["a.bin","b.bin"],"weights":[{"name":"w","shape":[2],"dtype":"float32"}],"sha256":)" +
          sha + "}]}");
  // Through the plugin ABI's artifacts JSON too.
  CHECK(stowage::parse_model_json(stowage::artifacts_to_json(a), "abi").weights_manifest ==
        a.weights_manifest);
}

TEST_CASE("without sha256 (or with null) a group records none, and writes none") {
  stowage::ModelArtifacts a = stowage::parse_model_json(group_json("null"), "m/model.json");
  CHECK_FALSE((*a.weights_manifest)[0].sha256);
  CHECK(stowage::write_model_json(a, *a.weights_manifest, stowage::ModelJsonLayout::kTfjsNode)
            .find("sha256") == std::string::npos);
}

TEST_CASE("a malformed sha256 is INVALID_ARGUMENT naming the group") {
  check_refused(group_json("\"x\""),
                "m/model.json: weightsManifest[0].sha256 must be an array of SHA-256 digests, one "
                "for each path, not a string");
  check_refused(group_json(std::string("[\"") + kAbcHex + "\"]"),
                "m/model.json: weightsManifest[0].sha256 has 1 digest(s) but the group has 2 "
                "path(s); it needs one digest per path");
  check_refused(group_json(std::string("[\"") + kAbcHex + "\",\"ABC\"]"),
                "m/model.json: weightsManifest[0].sha256[1] must be a SHA-256 digest of 64 "
                "lowercase hex digits, not \"ABC\"");
  check_refused(group_json(std::string("[\"") + kAbcHex + "\",7]"),
                "m/model.json: weightsManifest[0].sha256[1] must be a string, not a number");
}

TEST_CASE("sha256_hex_each hashes every buffer, in order, on all cores") {
  CHECK(stowage::sha256_hex_each({}).empty());
  // More than kParallelBytes in all, in buffers of different sizes (the
  // largest are taken first), so the threads do the work.
  std::vector<std::vector<uint8_t>> data;
  for (size_t i = 0; i < 9; ++i) {
    data.emplace_back((i % 3 + 1) * (1u << 20) + i, static_cast<uint8_t>('a' + i));
  }
  data.emplace_back();  // an empty file
  data.push_back({'a', 'b', 'c'});
  std::vector<std::span<const uint8_t>> spans(data.begin(), data.end());
  const std::vector<std::string> hex = stowage::sha256_hex_each(spans);
  REQUIRE(hex.size() == data.size());
  for (size_t i = 0; i < data.size(); ++i) {
    CAPTURE(i);
    CHECK(hex[i] == stowage::sha256_hex(spans[i]));
  }
  CHECK(hex[9] == kEmptyHex);
  CHECK(hex[10] == kAbcHex);
}

TEST_CASE("from_hex reads back what to_hex writes, and nothing else") {
  const std::vector<uint8_t> bytes = {0x00, 0x7f, 0x80, 0xff, '"', 'W'};
  const std::string hex = stowage::to_hex(bytes);
  CHECK(hex == "007f80ff2257");
  CHECK(stowage::from_hex(hex) ==
        std::optional<std::string>(std::string("\x00\x7f\x80\xff\"W", 6)));
  CHECK(stowage::from_hex("") == std::optional<std::string>(""));
  for (const char* bad : {"0", "abc", "0g", "AB", "0x", " 0"}) {
    INFO(bad);
    CHECK_FALSE(stowage::from_hex(bad).has_value());
  }
}
