// stowage reads what TensorFlow.js wrote: every model.json listed in the
// index.json of STOWAGE_INTEROP_DIR (written by make_models.js, or the
// committed samples/models) is loaded through file:// with the built plugins,
// every tensor is decoded and compared with TF.js's own decoding, bit for bit,
// and TF.js's model.json comes back byte for byte from write_model_json.
#include <doctest/doctest.h>
#include <rapidjson/document.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "interop_index.hpp"
#include "stowage/management.hpp"
#include "stowage/model_json.hpp"
#include "stowage/registry.hpp"
#include "stowage/weights.hpp"

namespace fs = std::filesystem;
using stowage::interop::IndexEntry;

namespace {

fs::path interop_dir() {
  const char* dir = std::getenv("STOWAGE_INTEROP_DIR");
  REQUIRE_MESSAGE(dir != nullptr, "set STOWAGE_INTEROP_DIR to a folder with an index.json");
  return dir;
}

stowage::Registry& registry() {
  static stowage::Registry* reg = [] {
    auto* r = new stowage::Registry();
    r->add_plugin_folder(STOWAGE_PLUGIN_BUILD_DIR);
    return r;
  }();
  return *reg;
}

// The float32 bits of an expected value (encoding: see common.js).
uint32_t expected_bits(const rapidjson::Value& v) {
  if (v.IsNumber()) {
    const double d = v.GetDouble();
    const float f = static_cast<float>(d);
    REQUIRE_MESSAGE(static_cast<double>(f) == d, "expected value is not a float32: " << d);
    return std::bit_cast<uint32_t>(f);
  }
  REQUIRE(v.IsString());
  const std::string s = v.GetString();
  if (s == "NaN") return 0x7fc00000u;
  if (s == "Infinity") return 0x7f800000u;
  if (s == "-Infinity") return 0xff800000u;
  if (s == "-0") return 0x80000000u;
  REQUIRE_MESSAGE(s.rfind("NaN:0x", 0) == 0, "bad float value " << s);
  return static_cast<uint32_t>(std::stoul(s.substr(6), nullptr, 16));
}

std::string hex(const std::string& bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

std::string bits_hex(uint32_t bits) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", bits);
  return buf;
}

// Compares decoded tensors with expected.json; returns the number of values
// compared.
size_t compare_tensors(const std::vector<stowage::Tensor>& tensors, const fs::path& expected_file,
                       const std::string& id) {
  const auto doc = stowage::interop::parse_json_file(expected_file);
  const auto& weights = doc["weights"].GetArray();
  REQUIRE_MESSAGE(tensors.size() == weights.Size(), id << ": tensor count");
  size_t values = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const stowage::Tensor& t = tensors[i];
    const auto& e = weights[static_cast<rapidjson::SizeType>(i)];
    const std::string where = id + " " + t.name;
    CHECK_MESSAGE(t.name == e["name"].GetString(), where);
    CHECK_MESSAGE(stowage::dtype_name(t.dtype) == std::string_view(e["dtype"].GetString()), where);
    std::vector<int64_t> shape;
    for (const auto& d : e["shape"].GetArray()) shape.push_back(d.GetInt64());
    CHECK_MESSAGE(t.shape == shape, where);
    const auto& ev = e["values"].GetArray();
    switch (t.dtype) {
      case stowage::DType::kFloat32:
      case stowage::DType::kComplex64: {
        REQUIRE_MESSAGE(t.floats.size() == ev.Size(), where);
        for (size_t k = 0; k < t.floats.size(); ++k) {
          const uint32_t got = std::bit_cast<uint32_t>(t.floats[k]);
          const uint32_t want = expected_bits(ev[static_cast<rapidjson::SizeType>(k)]);
          if (got != want) {
            FAIL_CHECK(where << "[" << k << "]: " << bits_hex(got) << " != " << bits_hex(want));
          }
        }
        values += t.floats.size();
        break;
      }
      case stowage::DType::kInt32:
        REQUIRE_MESSAGE(t.ints.size() == ev.Size(), where);
        for (size_t k = 0; k < t.ints.size(); ++k) {
          CHECK_MESSAGE(t.ints[k] == ev[static_cast<rapidjson::SizeType>(k)].GetInt(),
                        where << "[" << k << "]");
        }
        values += t.ints.size();
        break;
      case stowage::DType::kBool:
        REQUIRE_MESSAGE(t.bools.size() == ev.Size(), where);
        for (size_t k = 0; k < t.bools.size(); ++k) {
          CHECK_MESSAGE(t.bools[k] == ev[static_cast<rapidjson::SizeType>(k)].GetInt(),
                        where << "[" << k << "]");
        }
        values += t.bools.size();
        break;
      case stowage::DType::kString:
        REQUIRE_MESSAGE(t.strings.size() == ev.Size(), where);
        for (size_t k = 0; k < t.strings.size(); ++k) {
          CHECK_MESSAGE(hex(t.strings[k]) == ev[static_cast<rapidjson::SizeType>(k)].GetString(),
                        where << "[" << k << "]");
        }
        values += t.strings.size();
        break;
    }
  }
  return values;
}

size_t path_count(const stowage::WeightsManifest& manifest) {
  size_t n = 0;
  for (const auto& g : manifest) n += g.paths.size();
  return n;
}

}  // namespace

TEST_CASE("every model TF.js wrote loads through file:// with every value equal") {
  const fs::path dir = interop_dir();
  const auto entries = stowage::interop::read_index(dir);
  size_t total_values = 0;
  for (const IndexEntry& e : entries) {
    CAPTURE(e.id);
    stowage::ModelArtifacts a;
    REQUIRE_NOTHROW(
        a = stowage::load_model(stowage::interop::file_url(e.model_json), "{}", {}, registry()));
    REQUIRE(a.weight_specs.has_value());
    REQUIRE(a.weight_data.has_value());
    REQUIRE(a.weights_manifest.has_value());
    // One buffer per weight file, in manifest order (handler contract).
    CHECK(a.weight_data->size() == path_count(*a.weights_manifest));

    // The manifest as read equals the one on disk.
    const auto on_disk =
        stowage::parse_model_json(stowage::interop::read_text(e.model_json), e.model_json.string());
    CHECK(*a.weights_manifest == *on_disk.weights_manifest);
    CHECK(*a.weight_specs == stowage::flatten_specs(*on_disk.weights_manifest));

    const auto expected_doc = stowage::interop::parse_json_file(e.expected);
    CHECK(stowage::total_size(*a.weight_data) == expected_doc["weight_bytes"].GetUint64());

    std::vector<stowage::Tensor> tensors;
    REQUIRE_NOTHROW(tensors = stowage::decode_weights(*a.weight_data, *a.weight_specs));
    total_values += compare_tensors(tensors, e.expected, e.id);
  }
  MESSAGE(entries.size() << " models, " << total_values << " values compared");
}

TEST_CASE("a model.json tfjs-node wrote comes back byte for byte") {
  const fs::path dir = interop_dir();
  size_t checked = 0;
  for (const IndexEntry& e : stowage::interop::read_index(dir)) {
    if (e.layout != "node") continue;
    CAPTURE(e.id);
    const std::string text = stowage::interop::read_text(e.model_json);
    // Straight from the text...
    const auto parsed = stowage::parse_model_json(text, e.model_json.string());
    REQUIRE(parsed.weights_manifest.has_value());
    CHECK(stowage::write_model_json(parsed, *parsed.weights_manifest,
                                    stowage::ModelJsonLayout::kTfjsNode) == text);
    // ...and from what the file:// plugin hands back.
    const auto loaded =
        stowage::load_model(stowage::interop::file_url(e.model_json), "{}", {}, registry());
    REQUIRE(loaded.weights_manifest.has_value());
    CHECK(stowage::write_model_json(loaded, *loaded.weights_manifest,
                                    stowage::ModelJsonLayout::kTfjsNode) == text);
    ++checked;
  }
  CHECK(checked > 0);
}

TEST_CASE("the converter's json.dump form reads as the same values as TF.js's form") {
  const fs::path dir = interop_dir();
  std::map<std::string, stowage::ModelArtifacts> node;
  const auto entries = stowage::interop::read_index(dir);
  for (const IndexEntry& e : entries) {
    if (e.layout == "node") {
      node[e.expected.string()] = stowage::parse_model_json(
          stowage::interop::read_text(e.model_json), e.model_json.string());
    }
  }
  size_t checked = 0;
  for (const IndexEntry& e : entries) {
    auto it = node.find(e.expected.string());
    if (e.layout != "converter" || it == node.end()) continue;
    CAPTURE(e.id);
    const auto conv =
        stowage::parse_model_json(stowage::interop::read_text(e.model_json), e.model_json.string());
    // ensure_ascii escapes and ", " separators normalise to JSON.stringify text.
    CHECK(conv.user_defined_metadata == it->second.user_defined_metadata);
    CHECK(conv.format == it->second.format);
    CHECK(*conv.weight_specs == *it->second.weight_specs);
    ++checked;
  }
  MESSAGE(checked << " converter/tfjs-node pairs compared");
  // A folder without a pair would compare nothing and prove nothing.
  CHECK(checked > 0);
}
