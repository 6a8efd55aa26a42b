// Quantization against the converter's algorithm: every case of
// tests/data/quantize (written by tests/quantize_reference.py, which runs the
// converter's steps in NumPy) must come out byte for byte and bit for bit.
#include "stowage/quantize.hpp"

#include <doctest/doctest.h>
#include <rapidjson/document.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>

#include "stowage/error.hpp"
#include "stowage/model_json.hpp"
#include "stowage/weights.hpp"
#include "test_files.hpp"

using namespace stowage;
namespace fs = std::filesystem;

namespace {

const fs::path kData = fs::path(STOWAGE_SOURCE_DIR) / "tests" / "data" / "quantize";

rapidjson::Document load_json(const fs::path& file) {
  const std::string text = stowage::testing::read_file(file);
  REQUIRE_MESSAGE(!text.empty(), "cannot read ", file.string());
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseFullPrecisionFlag>(text.c_str());
  REQUIRE_FALSE(doc.HasParseError());
  return doc;
}

std::vector<uint8_t> unhex(std::string_view hex) {
  std::vector<uint8_t> out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<uint8_t>(std::stoul(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

std::vector<float> floats_of(const std::vector<uint8_t>& bytes) {
  std::vector<float> out(bytes.size() / 4);
  if (!out.empty()) std::memcpy(out.data(), bytes.data(), out.size() * 4);
  return out;
}

std::string bits_of(double v) {
  char text[20];
  std::snprintf(text, sizeof text, "%016llx",
                static_cast<unsigned long long>(std::bit_cast<uint64_t>(v)));
  return text;
}

ErrorCode code_of(const std::function<void()>& f, std::string* message = nullptr) {
  try {
    f();
  } catch (const Error& e) {
    if (message) *message = e.what();
    return e.code();
  }
  return ErrorCode::kOk;
}

WeightSpec spec(std::string name, std::vector<int64_t> shape, std::string dtype) {
  WeightSpec s;
  s.name = std::move(name);
  s.shape = std::move(shape);
  s.dtype = std::move(dtype);
  return s;
}

Buffer bytes_of(const std::vector<float>& v) {
  std::vector<uint8_t> b(v.size() * 4);
  std::memcpy(b.data(), v.data(), b.size());
  return Buffer::from_vector(std::move(b));
}

}  // namespace

TEST_CASE("every golden tensor quantizes to the converter's bytes, min and scale") {
  const rapidjson::Document doc = load_json(kData / "tensors.json");
  size_t checked = 0, refused = 0;
  for (const auto& c : doc["cases"].GetArray()) {
    const std::string name = c["name"].GetString();
    const std::vector<float> values = floats_of(unhex(c["values"].GetString()));
    for (const ConverterNumpy numpy : {ConverterNumpy::kNumpy2, ConverterNumpy::kNumpy1}) {
      const std::string label = numpy == ConverterNumpy::kNumpy2 ? "numpy2" : "numpy1";
      for (const auto& r : c["results"][label.c_str()].GetObject()) {
        const std::string storage = r.name.GetString();
        const QuantizeDType dtype = *parse_quantize_dtype(storage);
        INFO("case ", name, ", ", label, ", ", storage);
        const auto& want = r.value;
        if (want.HasMember("converter")) {
          // The converter writes no usable model: stowage refuses, naming it.
          std::string message;
          CHECK(code_of([&] { quantize_tensor(values, dtype, numpy, name); }, &message) ==
                ErrorCode::kInvalidArgument);
          CHECK(message.find("weight '" + name + "'") != std::string::npos);
          ++refused;
          continue;
        }
        const QuantizedTensor q = quantize_tensor(values, dtype, numpy, name);
        CHECK(q.bytes == unhex(want["bytes"].GetString()));
        CHECK(q.quantization.dtype == storage);
        CHECK(q.quantization.original_dtype == std::optional<std::string>("float32"));
        if (dtype == QuantizeDType::kFloat16) {
          CHECK_FALSE(q.quantization.min.has_value());
          CHECK_FALSE(q.quantization.scale.has_value());
        } else {
          REQUIRE(q.quantization.min.has_value());
          REQUIRE(q.quantization.scale.has_value());
          CHECK(bits_of(*q.quantization.min) == want["min_bits"].GetString());
          CHECK(bits_of(*q.quantization.scale) == want["scale_bits"].GetString());
          // The JSON number the converter prints is the same double.
          CHECK(bits_of(want["min"].GetDouble()) == want["min_bits"].GetString());
        }
        ++checked;
      }
    }
  }
  // 37 tensors x 2 NumPy rules x 3 dtypes, minus what the converter cannot write.
  CHECK(checked + refused == doc["cases"].Size() * 6);
  CHECK(checked >= 170);
}

TEST_CASE("the golden cases show what they are meant to show") {
  // Guards the data itself: these facts are why the cases exist.
  const rapidjson::Document doc = load_json(kData / "tensors.json");
  auto result = [&](std::string_view name, const char* numpy,
                    const char* storage) -> const rapidjson::Value& {
    for (const auto& c : doc["cases"].GetArray()) {
      if (name == c["name"].GetString()) return c["results"][numpy][storage];
    }
    FAIL("no case ", name);
    return doc;
  };
  // Half to even, not floor(x + 0.5): 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, 254.5 -> 254.
  CHECK(unhex(result("ties_uint8", "numpy2", "uint8")["bytes"].GetString()) ==
        std::vector<uint8_t>{0, 255, 0, 2, 2, 4, 128, 128, 254, 254});
  // The zero point 0.5 rounds to 0, 1.5 to 2.
  CHECK(result("zero_point_tie_even", "numpy2", "uint8")["min"].GetDouble() == 0.0);
  CHECK(result("zero_point_tie_odd", "numpy2", "uint8")["min"].GetDouble() == -1.0);
  // NumPy 1 and NumPy 2 store different values for the same weights.
  CHECK(std::string(result("rand_uint16_normal", "numpy2", "uint16")["bytes"].GetString()) !=
        result("rand_uint16_normal", "numpy1", "uint16")["bytes"].GetString());
  CHECK(result("huge_range_straddle", "numpy1", "uint8").HasMember("converter"));
  CHECK(result("huge_range_straddle", "numpy2", "uint8").HasMember("bytes"));
  CHECK(result("empty", "numpy2", "uint8").HasMember("converter"));
  CHECK(result("empty", "numpy2", "float16").HasMember("bytes"));
}

TEST_CASE("uint8 quantization: nudging, rounding and the all-equal case by hand") {
  // The converter's docstring example: [0, -0.1, 1.2] -> [20, 0, 255].
  QuantizedTensor q = quantize_tensor(std::vector<float>{0.0f, -0.1f, 1.2f}, QuantizeDType::kUint8);
  CHECK(q.bytes == std::vector<uint8_t>{20, 0, 255});
  CHECK(*q.quantization.min == doctest::Approx(-0.10196078817));
  CHECK(*q.quantization.scale == doctest::Approx(0.00509803940852));
  // Zero is stored exactly: step 20 dequantizes to 0.
  CHECK(20 * *q.quantization.scale + *q.quantization.min == 0.0);

  q = quantize_tensor(std::vector<float>{-2.5f, -2.5f}, QuantizeDType::kUint16);
  CHECK(q.bytes == std::vector<uint8_t>(4, 0));
  CHECK(*q.quantization.min == -2.5);
  CHECK(*q.quantization.scale == 1.0);

  // All positive: no nudging, min is the data's minimum.
  q = quantize_tensor(std::vector<float>{1.0f, 3.0f, 2.0f}, QuantizeDType::kUint8);
  CHECK(*q.quantization.min == 1.0);
  CHECK(*q.quantization.scale == 2.0 / 255);
  CHECK(q.bytes == std::vector<uint8_t>{0, 255, 128});  // 127.5 -> 128 (even)

  // uint16 is little-endian.
  q = quantize_tensor(std::vector<float>{0.0f, 65535.0f, 258.0f}, QuantizeDType::kUint16);
  CHECK(q.bytes == std::vector<uint8_t>{0, 0, 0xff, 0xff, 0x02, 0x01});
}

TEST_CASE("uint8/uint16 refuse what the converter cannot write a loadable model for") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  std::string message;
  CHECK(code_of(
            [&] {
              quantize_tensor(std::vector<float>{1, nan}, QuantizeDType::kUint8, {}, "w");
            },
            &message) == ErrorCode::kInvalidArgument);
  CHECK(message ==
        "weight 'w' holds nan at index 1; uint8 quantization of it would write NaN or Infinity "
        "into min/scale, which TF.js cannot load (the Python converter writes such a model "
        "anyway). Quantize it to float16 or leave it out of the selection.");
  CHECK(code_of([&] { quantize_tensor(std::vector<float>{-inf}, QuantizeDType::kUint16); }) ==
        ErrorCode::kInvalidArgument);
  CHECK(code_of([&] { quantize_tensor(std::vector<float>{}, QuantizeDType::kUint8, {}, "e"); },
                &message) == ErrorCode::kInvalidArgument);
  CHECK(message ==
        "weight 'e' has no values; uint8 quantization needs a minimum and a maximum (the Python "
        "converter raises on such a tensor)");
  // float16 keeps them, as the cast does.
  const QuantizedTensor q =
      quantize_tensor(std::vector<float>{nan, inf, -inf, 1e6f}, QuantizeDType::kFloat16);
  CHECK(q.bytes == std::vector<uint8_t>{0x00, 0x7e, 0x00, 0x7c, 0x00, 0xfc, 0x00, 0x7c});
  CHECK(q.overflowed == 1);
}

TEST_CASE("NumPy 1 rules: float32 arithmetic that overflows is refused, not guessed") {
  const std::vector<float> v = {-3.0e38f, 3.0e38f, 0.0f};
  std::string message;
  CHECK(code_of([&] { quantize_tensor(v, QuantizeDType::kUint8, ConverterNumpy::kNumpy1, "h"); },
                &message) == ErrorCode::kInvalidArgument);
  CHECK(message.find("weight 'h': with NumPy 1 the Python converter computes in float32") == 0);
  CHECK(message.find("Use the NumPy 2 rules.") != std::string::npos);
  CHECK_NOTHROW(quantize_tensor(v, QuantizeDType::kUint8, ConverterNumpy::kNumpy2, "h"));
}

TEST_CASE("float32 -> float16 rounds to nearest even everywhere") {
  // Every half round-trips; every midpoint between neighbours goes to the
  // even one; a float32 step either side goes to the nearer one.
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const auto half = static_cast<uint16_t>(h);
    const float f = float16_to_float32(half);
    if (std::isnan(f)) {
      CHECK((float32_to_float16(f) & 0x7c00) == 0x7c00);
      CHECK((float32_to_float16(f) & 0x03ff) != 0);
      continue;
    }
    REQUIRE(float32_to_float16(f) == half);
    if ((h & 0x7fff) >= 0x7bff) continue;  // the largest finite half and infinity: below
    const auto next = static_cast<uint16_t>(h + 1);
    const float g = float16_to_float32(next);
    const float mid = static_cast<float>((static_cast<double>(f) + g) / 2);  // exact in float32
    REQUIRE(static_cast<double>(mid) == (static_cast<double>(f) + g) / 2);
    const uint16_t even = (h & 1) ? next : half;
    REQUIRE(float32_to_float16(mid) == even);
    REQUIRE(float32_to_float16(std::nextafter(mid, f)) == half);
    REQUIRE(float32_to_float16(std::nextafter(mid, g)) == next);
  }
  // Overflow: 65504 is the largest half; from 65520 (the midpoint to 65536) on, infinity.
  CHECK(float32_to_float16(65519.996f) == 0x7bff);
  CHECK(float32_to_float16(65520.0f) == 0x7c00);
  CHECK(float32_to_float16(-65520.0f) == 0xfc00);
  CHECK(float32_to_float16(std::numeric_limits<float>::max()) == 0x7c00);
  // Underflow: 2^-25 is the midpoint between 0 and the smallest subnormal.
  CHECK(float32_to_float16(std::ldexp(1.0f, -25)) == 0x0000);
  CHECK(float32_to_float16(std::nextafter(std::ldexp(1.0f, -25), 1.0f)) == 0x0001);
  CHECK(float32_to_float16(-std::numeric_limits<float>::denorm_min()) == 0x8000);
  // NaN: the payload's top bits kept, never turned into infinity (NumPy).
  CHECK(float32_to_float16(std::bit_cast<float>(0x7fc00000u)) == 0x7e00);
  CHECK(float32_to_float16(std::bit_cast<float>(0xffd00000u)) == 0xfe80);
  CHECK(float32_to_float16(std::bit_cast<float>(0x7f800001u)) == 0x7c01);
}

TEST_CASE("weight-name patterns match as Python's fnmatch does") {
  const rapidjson::Document doc = load_json(kData / "patterns.json");
  std::vector<std::string> names;
  for (const auto& n : doc["names"].GetArray())
    names.emplace_back(n.GetString(), n.GetStringLength());
  size_t checked = 0;
  for (const auto& row : doc["patterns"].GetArray()) {
    const std::string pattern(row["pattern"].GetString(), row["pattern"].GetStringLength());
    std::vector<std::string> want;
    for (const auto& m : row["matches"].GetArray())
      want.emplace_back(m.GetString(), m.GetStringLength());
    std::vector<std::string> got;
    for (const std::string& name : names) {
      if (weight_name_matches(pattern, name)) got.push_back(name);
    }
    INFO("pattern ", pattern);
    CHECK(got == want);
    ++checked;
  }
  CHECK(checked == doc["patterns"].Size());
  CHECK(checked >= 50);
}

TEST_CASE("quantize_artifacts selects float32 weights by rule and keeps the rest as they are") {
  ModelArtifacts a;
  a.weight_specs =
      std::vector<WeightSpec>{spec("dense/kernel", {2, 2}, "float32"), spec("step", {1}, "int32"),
                              spec("dense/bias", {2}, "float32"), spec("names", {1}, "string")};
  const Buffer kernel = bytes_of({-1.0f, 0.0f, 0.5f, 1.0f});
  const uint8_t step_and_bias[] = {7, 0, 0, 0, 0, 0, 0x80, 0x3f, 0, 0, 0, 0x40};
  const Buffer rest = Buffer::copy_of(step_and_bias);
  const uint8_t names[] = {2, 0, 0, 0, 'h', 'i'};
  const Buffer strings = Buffer::copy_of(names);
  a.weight_data = WeightData{kernel, rest, strings};
  a.weights_manifest = WeightsManifest{{{"a.bin", "b.bin", "c.bin"}, *a.weight_specs}};

  SUBCASE("a pattern picks one weight; the others keep their bytes without a copy") {
    ModelArtifacts b = a;
    const QuantizeReport r = quantize_artifacts(b, {{{QuantizeDType::kUint8, {"*/kernel", "x*"}}}});
    CHECK(r.quantized_count() == 1);
    CHECK(r.unmatched_patterns == std::vector<std::string>{"x*"});
    REQUIRE(r.weights.size() == 4);
    CHECK(r.weights[0].action == QuantizeReport::Action::kQuantized);
    CHECK(r.weights[0].bytes_before == 16);
    CHECK(r.weights[0].bytes_after == 4);
    CHECK(r.weights[1].action == QuantizeReport::Action::kNotSelected);
    CHECK(r.weights[2].action == QuantizeReport::Action::kNotSelected);
    CHECK(r.bytes_before == 34);
    CHECK(r.bytes_after == 22);
    CHECK_FALSE(b.weights_manifest.has_value());
    const auto& specs = *b.weight_specs;
    REQUIRE(specs[0].quantization.has_value());
    CHECK(specs[0].quantization->dtype == "uint8");
    CHECK_FALSE(specs[1].quantization.has_value());
    CHECK_FALSE(specs[2].quantization.has_value());
    // The untouched bytes are slices of the same buffers.
    REQUIRE(b.weight_data->size() == 3);
    CHECK((*b.weight_data)[1].data() == rest.data());
    CHECK((*b.weight_data)[2].data() == strings.data());
    // TF.js's decode of the result: zero exact, the rest within scale / 2.
    const std::vector<Tensor> t = decode_weights(*b.weight_data, specs);
    const double scale = *specs[0].quantization->scale;
    const std::vector<float> original = {-1.0f, 0.0f, 0.5f, 1.0f};
    // The bound: scale / 2 (the 1.0 here is clipped by exactly that), plus
    // the float32 rounding of the decoded value.
    for (size_t i = 0; i < 4; ++i) {
      CHECK(std::abs(t[0].floats[i] - original[i]) <= scale / 2 + std::abs(original[i]) * 0x1p-24);
    }
    CHECK(t[0].floats[1] == 0.0f);
    CHECK(t[1].ints == std::vector<int32_t>{7});
    CHECK(t[2].floats == std::vector<float>{1.0f, 2.0f});
    CHECK(t[3].strings == std::vector<std::string>{"hi"});
  }

  SUBCASE("the catch-all takes float32 weights; other dtypes stay, as in the converter") {
    ModelArtifacts b = a;
    const QuantizeReport r = quantize_artifacts(b, {{{QuantizeDType::kFloat16, {}}}});
    CHECK(r.quantized_count() == 2);
    CHECK(r.weights[1].action == QuantizeReport::Action::kNotFloat32);
    CHECK(r.weights[3].action == QuantizeReport::Action::kNotFloat32);
    CHECK(r.bytes_after == 8 + 4 + 4 + 6);
    const std::vector<Tensor> t = decode_weights(*b.weight_data, *b.weight_specs);
    CHECK(t[0].floats == std::vector<float>{-1.0f, 0.0f, 0.5f, 1.0f});  // exact in float16
    CHECK(t[2].floats == std::vector<float>{1.0f, 2.0f});
    // Re-quantizing a stored-quantized weight decodes it first (TF.js's values).
    ModelArtifacts c = b;
    quantize_artifacts(c, {{{QuantizeDType::kUint16, {"dense/bias"}}}});
    CHECK((*c.weight_specs)[0].quantization->dtype == "float16");
    CHECK((*c.weight_specs)[2].quantization->dtype == "uint16");
    CHECK(decode_weights(*c.weight_data, *c.weight_specs)[2].floats ==
          std::vector<float>{1.0f, 2.0f});
  }

  SUBCASE("a specific rule beats the catch-all, as the converter's fallthrough") {
    ModelArtifacts b = a;
    quantize_artifacts(b, {{{QuantizeDType::kUint16, {}}, {QuantizeDType::kUint8, {"*/bias"}}}});
    CHECK((*b.weight_specs)[0].quantization->dtype == "uint16");
    CHECK((*b.weight_specs)[2].quantization->dtype == "uint8");
  }

  SUBCASE("nothing selected: the artifacts are left exactly as they were") {
    ModelArtifacts b = a;
    const QuantizeReport r = quantize_artifacts(b, {{{QuantizeDType::kUint8, {"nothing"}}}});
    CHECK(r.quantized_count() == 0);
    CHECK(b.weights_manifest == a.weights_manifest);
    CHECK(b.weight_specs == a.weight_specs);
    CHECK((*b.weight_data)[0].data() == kernel.data());
  }

  SUBCASE("conflicting rules are errors, and nothing changes") {
    ModelArtifacts b = a;
    std::string message;
    CHECK(code_of(
              [&] {
                quantize_artifacts(b, {{{QuantizeDType::kUint8, {"dense/*"}},
                                        {QuantizeDType::kFloat16, {"*/bias"}}}});
              },
              &message) == ErrorCode::kInvalidArgument);
    CHECK(message ==
          "two quantization dtypes, uint8 and float16, select the same weight 'dense/bias'");
    CHECK(
        code_of(
            [&] {
              quantize_artifacts(b, {{{QuantizeDType::kUint8, {}}, {QuantizeDType::kUint16, {}}}});
            },
            &message) == ErrorCode::kInvalidArgument);
    CHECK(message ==
          "more than one quantization catch-all given (uint8 and uint16); exactly one rule may "
          "select every other weight");
    CHECK(code_of([&] {
            quantize_artifacts(b, {{{QuantizeDType::kUint8, {""}}}});
          }) == ErrorCode::kInvalidArgument);
    CHECK(b.weight_specs == a.weight_specs);
    CHECK(b.weights_manifest == a.weights_manifest);
  }

  SUBCASE("a NaN in a selected weight stops everything, naming it") {
    ModelArtifacts b = a;
    b.weight_data->front() = bytes_of({1.0f, std::numeric_limits<float>::quiet_NaN(), 0, 0});
    const WeightData before = *b.weight_data;
    std::string message;
    CHECK(code_of(
              [&] {
                quantize_artifacts(b, {{{QuantizeDType::kUint8, {}}}});
              },
              &message) == ErrorCode::kInvalidArgument);
    CHECK(message.find("weight 'dense/kernel' holds nan at index 1") == 0);
    CHECK(b.weight_specs == a.weight_specs);
    CHECK((*b.weight_data)[0].data() == before[0].data());
  }

  SUBCASE("short weight data is data loss") {
    ModelArtifacts b = a;
    b.weight_data = WeightData{kernel};
    std::string message;
    CHECK(code_of(
              [&] {
                quantize_artifacts(b, {{{QuantizeDType::kUint8, {}}}});
              },
              &message) == ErrorCode::kDataLoss);
    CHECK(message == "weight 'step' needs bytes up to offset 20 but the weight data has 16 bytes");
  }
}

TEST_CASE("an empty float32 weight: float16 quantizes it, uint8 leaves it (the converter raises)") {
  ModelArtifacts a;
  a.weight_specs =
      std::vector<WeightSpec>{spec("empty", {0, 3}, "float32"), spec("w", {1}, "float32")};
  a.weight_data = WeightData{bytes_of({0.5f})};
  ModelArtifacts b = a;
  QuantizeReport r = quantize_artifacts(b, {{{QuantizeDType::kUint8, {}}}});
  CHECK(r.weights[0].action == QuantizeReport::Action::kEmpty);
  CHECK_FALSE((*b.weight_specs)[0].quantization.has_value());
  CHECK((*b.weight_specs)[1].quantization->dtype == "uint8");
  b = a;
  r = quantize_artifacts(b, {{{QuantizeDType::kFloat16, {}}}});
  CHECK(r.weights[0].action == QuantizeReport::Action::kQuantized);
  CHECK((*b.weight_specs)[0].quantization->dtype == "float16");
  CHECK(total_size(*b.weight_data) == 2);
}

TEST_CASE("the golden models: quantize_artifacts writes what the converter writes") {
  const fs::path src = kData / "float_model";
  ModelArtifacts source =
      parse_model_json(stowage::testing::read_file(src / "model.json"), "float_model");
  source.weight_data =
      WeightData{Buffer::from_string(stowage::testing::read_file(src / "weights.bin"))};
  size_t scenarios = 0;
  for (const auto& entry : fs::directory_iterator(kData)) {
    if (!fs::exists(entry.path() / "flags.json")) continue;
    const rapidjson::Document flags = load_json(entry.path() / "flags.json");
    QuantizeOptions options;
    options.numpy = std::string(flags["numpy"].GetString()) == "numpy1" ? ConverterNumpy::kNumpy1
                                                                        : ConverterNumpy::kNumpy2;
    for (const auto& f : flags["flags"].GetObject()) {
      QuantizeRule rule{*parse_quantize_dtype(f.name.GetString()), {}};
      if (f.value.IsString()) {
        std::string list = f.value.GetString();
        for (size_t start = 0;;) {
          const size_t comma = list.find(',', start);
          rule.patterns.push_back(list.substr(start, comma - start));
          if (comma == std::string::npos) break;
          start = comma + 1;
        }
      }
      options.rules.push_back(rule);
    }
    INFO("scenario ", entry.path().filename().string());
    ModelArtifacts a = source;
    quantize_artifacts(a, options);
    const ModelArtifacts want = parse_model_json(
        stowage::testing::read_file(entry.path() / "model.json"), entry.path().string());
    CHECK(*a.weight_specs == *want.weight_specs);
    const Buffer got = join(*a.weight_data);
    CHECK(std::string(got.view()) ==
          stowage::testing::read_file(entry.path() / "group1-shard1of1.bin"));
    ++scenarios;
  }
  CHECK(scenarios == 6);
}
