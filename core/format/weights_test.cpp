// Weight bytes: spec §2 and the encodeWeights/decodeWeights tests of §8.1.
#include "stowage/weights.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <functional>

#include "stowage/error.hpp"

using namespace stowage;

namespace {

Tensor tensor(std::string name, DType dtype, std::vector<int64_t> shape) {
  Tensor t;
  t.name = std::move(name);
  t.dtype = dtype;
  t.shape = std::move(shape);
  return t;
}
Tensor floats(std::string name, std::vector<int64_t> shape, std::vector<float> v) {
  Tensor t = tensor(std::move(name), DType::kFloat32, std::move(shape));
  t.floats = std::move(v);
  return t;
}
Tensor ints(std::string name, std::vector<int64_t> shape, std::vector<int32_t> v) {
  Tensor t = tensor(std::move(name), DType::kInt32, std::move(shape));
  t.ints = std::move(v);
  return t;
}
Tensor bools(std::string name, std::vector<int64_t> shape, std::vector<uint8_t> v) {
  Tensor t = tensor(std::move(name), DType::kBool, std::move(shape));
  t.bools = std::move(v);
  return t;
}
Tensor complex(std::string name, std::vector<int64_t> shape, std::vector<float> v) {
  Tensor t = tensor(std::move(name), DType::kComplex64, std::move(shape));
  t.floats = std::move(v);
  return t;
}
Tensor strings(std::string name, std::vector<int64_t> shape, std::vector<std::string> v) {
  Tensor t = tensor(std::move(name), DType::kString, std::move(shape));
  t.strings = std::move(v);
  return t;
}

WeightSpec spec(std::string name, std::vector<int64_t> shape, std::string dtype,
                std::optional<Quantization> q = std::nullopt) {
  WeightSpec s;
  s.name = std::move(name);
  s.shape = std::move(shape);
  s.dtype = std::move(dtype);
  s.quantization = std::move(q);
  return s;
}
Quantization affine(std::string dtype, double scale, double min) {
  Quantization q;
  q.dtype = std::move(dtype);
  q.scale = scale;
  q.min = min;
  return q;
}

WeightData one(std::vector<uint8_t> bytes) { return {Buffer::from_vector(std::move(bytes))}; }

template <typename T>
T at(const std::vector<uint8_t>& data, size_t offset) {
  T v;
  std::memcpy(&v, data.data() + offset, sizeof v);
  return v;
}

uint32_t bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, sizeof b);
  return b;
}

std::string message_of(const std::function<void()>& f, ErrorCode expected) {
  try {
    f();
  } catch (const Error& e) {
    CHECK(e.code() == expected);
    return e.what();
  }
  FAIL("no stowage::Error");
  return {};
}

bool same(const Tensor& a, const Tensor& b) {
  if (a.name != b.name || a.dtype != b.dtype || a.shape != b.shape || a.ints != b.ints ||
      a.bools != b.bools || a.strings != b.strings || a.floats.size() != b.floats.size()) {
    return false;
  }
  for (size_t i = 0; i < a.floats.size(); ++i) {
    if (bits(a.floats[i]) != bits(b.floats[i])) return false;
  }
  return true;
}

std::vector<Tensor> mixed_tensors() {
  return {ints("x1", {2, 2}, {1, -2, 2147483647, -2147483647 - 1}),
          floats("x2", {}, {13.37f}),
          bools("x3", {4}, {1, 0, 0, 1}),
          strings("x4", {2, 2}, {"здраво", "a", "b", "c"}),
          strings("x5", {}, {""}),
          strings("x6", {}, {"hello"}),
          floats("y1", {3}, {-1.5f, std::nanf(""), INFINITY}),
          complex("y2", {2}, {1, 1, 2, 2})};
}

}  // namespace

TEST_CASE("dtype names") {
  for (DType d :
       {DType::kFloat32, DType::kInt32, DType::kBool, DType::kString, DType::kComplex64}) {
    CHECK(parse_dtype(dtype_name(d)) == d);
  }
  CHECK_FALSE(parse_dtype("float16").has_value());
  CHECK_FALSE(parse_dtype("uint8").has_value());
  CHECK_FALSE(parse_dtype("Float32").has_value());
}

TEST_CASE("encodeWeights") {
  SUBCASE("Float32 tensors") {
    const auto e = encode_weights({floats("x1", {2, 2}, {10, 20, 30, 40}), floats("x2", {}, {42}),
                                   floats("x3", {4}, {-1, -3, -3, -7})});
    REQUIRE(e.data.size() == 36);
    CHECK(at<float>(e.data, 0) == 10);
    CHECK(at<float>(e.data, 12) == 40);
    CHECK(at<float>(e.data, 16) == 42);
    CHECK(at<float>(e.data, 32) == -7);
    REQUIRE(e.specs.size() == 3);
    CHECK(e.specs[0] == spec("x1", {2, 2}, "float32"));
    CHECK(e.specs[1] == spec("x2", {}, "float32"));
    CHECK_FALSE(e.specs[2].group.has_value());
    CHECK_FALSE(e.specs[2].quantization.has_value());
  }
  SUBCASE("Empty tensor list") {
    const auto e = encode_weights({});
    CHECK(e.data.empty());
    CHECK(e.specs.empty());
  }
  SUBCASE("Int32 tensors") {
    const auto e = encode_weights({ints("x1", {2, 2}, {10, 20, 30, 40}), ints("x2", {}, {42}),
                                   ints("x3", {4}, {-1, -3, -3, -7})});
    REQUIRE(e.data.size() == 36);
    CHECK(at<int32_t>(e.data, 32) == -7);
    CHECK(e.specs[2].dtype == "int32");
  }
  SUBCASE("Bool tensors are one byte per value, 0 or 1") {
    const auto e = encode_weights({bools("x1", {2, 2}, {1, 0, 2, 255}), bools("x2", {}, {0}),
                                   bools("x3", {4}, {0, 1, 1, 0})});
    CHECK(e.data == std::vector<uint8_t>{1, 0, 1, 1, 0, 0, 1, 1, 0});
  }
  SUBCASE("Complex64 tensors interleave real and imaginary parts") {
    const auto e = encode_weights({complex("x1", {2}, {1, 1, 2, 2}), complex("x2", {}, {42, 42}),
                                   complex("x3", {1, 1}, {-1, -1})});
    REQUIRE(e.data.size() == 32);
    CHECK(at<float>(e.data, 0) == 1);
    CHECK(at<float>(e.data, 8) == 2);
    CHECK(at<float>(e.data, 16) == 42);
    CHECK(at<float>(e.data, 28) == -1);
    CHECK(e.specs[0].dtype == "complex64");
  }
  SUBCASE("String tensors: uint32 length prefixes, 80 bytes in all") {
    const auto e =
        encode_weights({strings("x1", {2, 2}, {"a", "bc", "def", "g"}), strings("x2", {}, {""}),
                        strings("x3", {2}, {"здраво", "поздрав"}), strings("x4", {}, {"正常"}),
                        strings("x5", {}, {"hello"})});
    REQUIRE(e.data.size() == 80);
    size_t offset = 0;
    for (auto [text, length] : std::vector<std::pair<std::string, uint32_t>>{{"a", 1},
                                                                             {"bc", 2},
                                                                             {"def", 3},
                                                                             {"g", 1},
                                                                             {"", 0},
                                                                             {"здраво", 12},
                                                                             {"поздрав", 14},
                                                                             {"正常", 6},
                                                                             {"hello", 5}}) {
      CAPTURE(text);
      CHECK(at<uint32_t>(e.data, offset) == length);
      CHECK(std::string(e.data.begin() + offset + 4, e.data.begin() + offset + 4 + length) == text);
      offset += 4 + length;
    }
    CHECK(offset == 80);
    CHECK(e.specs[2] == spec("x3", {2}, "string"));
  }
  SUBCASE("the golden string example of spec §2.3") {
    const auto e = encode_weights({strings("s", {3}, {"a", "正常", ""})});
    CHECK(e.data == std::vector<uint8_t>{1, 0, 0, 0, 'a', 6, 0, 0, 0, 0xe6, 0xad, 0xa3, 0xe5, 0xb8,
                                         0xb8, 0, 0, 0, 0});
  }
  SUBCASE("stringByteLength: UTF-8 bytes of 'aЖ文1' prefixes are 1, 3, 6, 7") {
    const auto e = encode_weights({strings("s", {4}, {"a", "aЖ", "aЖ文", "aЖ文1"})});
    CHECK(at<uint32_t>(e.data, 0) == 1);
    CHECK(at<uint32_t>(e.data, 5) == 3);
    CHECK(at<uint32_t>(e.data, 12) == 6);
    CHECK(at<uint32_t>(e.data, 22) == 7);
  }
  SUBCASE("Mixed dtype tensors at offsets 0, 16, 20, 24") {
    const auto e =
        encode_weights({ints("x1", {2, 2}, {10, 20, 30, 40}), floats("x2", {}, {13.37f}),
                        bools("x3", {4}, {1, 0, 0, 1}), complex("x4", {2}, {1, 1, 2, 2})});
    REQUIRE(e.data.size() == 40);
    CHECK(at<int32_t>(e.data, 0) == 10);
    CHECK(at<float>(e.data, 16) == 13.37f);
    CHECK(e.data[20] == 1);
    CHECK(at<float>(e.data, 24) == 1);
  }
  SUBCASE("a group is written into every spec") {
    const auto e = encode_weights({ints("iter", {}, {7})}, "optimizer");
    CHECK(e.specs[0].group == "optimizer");
  }
  SUBCASE("values that do not fit the shape are refused") {
    const std::string m = message_of(
        [] {
          encode_weights({floats("w", {2, 2}, {1, 2, 3})});
        },
        ErrorCode::kInvalidArgument);
    CHECK(m.find("'w'") != std::string::npos);
  }
}

TEST_CASE("decodeWeights") {
  SUBCASE("Mixed dtype tensors survive a round trip") {
    const auto tensors = mixed_tensors();
    const auto e = encode_weights(tensors);
    const auto decoded = decode_weights(one(e.data), e.specs);
    REQUIRE(decoded.size() == tensors.size());
    for (size_t i = 0; i < tensors.size(); ++i) {
      CAPTURE(tensors[i].name);
      CHECK(same(decoded[i], tensors[i]));
    }
  }
  SUBCASE("tensors span buffer boundaries") {
    const auto tensors = mixed_tensors();
    const auto e = encode_weights(tensors);
    for (size_t cut = 0; cut <= e.data.size(); ++cut) {
      CAPTURE(cut);
      const WeightData two = {Buffer::copy_of(std::span(e.data).first(cut)),
                              Buffer::copy_of(std::span(e.data).subspan(cut))};
      const auto decoded = decode_weights(two, e.specs);
      for (size_t i = 0; i < tensors.size(); ++i) CHECK(same(decoded[i], tensors[i]));
    }
    WeightData bytewise;
    for (uint8_t b : e.data) {
      bytewise.push_back(Buffer::from_vector({}));
      bytewise.push_back(Buffer::from_vector({b}));
    }
    const auto decoded = decode_weights(bytewise, e.specs);
    for (size_t i = 0; i < tensors.size(); ++i) CHECK(same(decoded[i], tensors[i]));
  }
  SUBCASE("a float32 right after a bool starts at an odd offset") {
    const auto e = encode_weights({bools("b", {1}, {1}), floats("f", {2}, {0.5f, -2})});
    CHECK(e.data.size() == 9);
    const auto d = decode_weights(one(e.data), e.specs);
    CHECK(d[1].floats == std::vector<float>{0.5f, -2});
  }
  SUBCASE("the 22-byte golden blob of spec §2.7") {
    const std::vector<uint8_t> blob = {0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0, 'a', 1, 0,
                                       0,    0,    'b',  0,    0, 0, 0, 1, 0,   0, 0};
    REQUIRE(blob.size() == 22);
    const auto d = decode_weights(
        one(blob),
        {spec("unknown_0", {}, "int32"), spec("114", {2}, "string"), spec("116", {2}, "int32")});
    CHECK(d[0].ints == std::vector<int32_t>{-1});
    CHECK(d[1].strings == std::vector<std::string>{"a", "b"});
    CHECK(d[2].ints == std::vector<int32_t>{0, 1});
  }
  SUBCASE("bool keeps raw byte values") {
    CHECK(decode_weights(one({0, 2, 255}), {spec("b", {3}, "bool")})[0].bools ==
          std::vector<uint8_t>{0, 2, 255});
  }
  SUBCASE("a string tensor with zero elements takes 0 bytes") {
    const auto d =
        decode_weights(one({5, 0, 0, 0}), {spec("s", {0, 3}, "string"), spec("i", {}, "int32")});
    CHECK(d[0].strings.empty());
    CHECK(d[1].ints == std::vector<int32_t>{5});
  }
  SUBCASE("extra trailing bytes are ignored by the decoder") {
    CHECK(decode_weights(one({1, 0, 0, 0, 9}), {spec("i", {}, "int32")})[0].ints ==
          std::vector<int32_t>{1});
  }
  SUBCASE("Unsupported dtype raises Error") {
    CHECK(message_of(
              [] {
                decode_weights(one({0, 0}), {spec("x", {1}, "int16")});
              },
              ErrorCode::kInvalidArgument) == "Unsupported dtype in weight 'x': int16");
    CHECK(message_of([] { decode_weights(one({0}), {spec("u", {1}, "uint8")}); },
                     ErrorCode::kInvalidArgument) == "Unsupported dtype in weight 'u': uint8");
  }
  SUBCASE("too few bytes: data loss naming the tensor") {
    const std::string m = message_of(
        [] {
          decode_weights(one({0, 0, 0, 0, 0, 0}), {spec("w", {2}, "float32")});
        },
        ErrorCode::kDataLoss);
    CHECK(m.find("'w'") != std::string::npos);
    CHECK(m.find("needs 8 bytes") != std::string::npos);
  }
  SUBCASE("a string length prefix running past the data: data loss") {
    const std::string m = message_of(
        [] {
          decode_weights(one({1, 0, 0, 0, 'a', 200, 0, 0, 0, 'b'}), {spec("s", {2}, "string")});
        },
        ErrorCode::kDataLoss);
    CHECK(m.find("string weight 's'") != std::string::npos);
    CHECK(m.find("200 bytes") != std::string::npos);
    CHECK_THROWS_AS(decode_weights(one({1, 0}), {spec("s", {1}, "string")}), Error);
  }
}

TEST_CASE("dequantization (spec §2.4)") {
  const std::vector<uint8_t> q8 = {0, 48, 255};
  const std::vector<uint8_t> q16 = {0, 0, 48, 0, 255, 0};
  for (const auto& [storage, bytes] : {std::pair{"uint8", q8}, std::pair{"uint16", q16}}) {
    CAPTURE(storage);
    const auto f =
        decode_weights(one(bytes), {spec("w", {3}, "float32", affine(storage, 0.1, -1))});
    REQUIRE(f[0].floats.size() == 3);
    CHECK(static_cast<double>(f[0].floats[0]) == -1.0);
    CHECK(static_cast<double>(f[0].floats[1]) == 3.799999952316284);
    CHECK(static_cast<double>(f[0].floats[2]) == 24.5);
    const auto i = decode_weights(one(bytes), {spec("w", {3}, "int32", affine(storage, 0.1, -1))});
    CHECK(i[0].ints == std::vector<int32_t>{-1, 4, 25});
  }
  // Math.round rounds halves toward +infinity: -0.75, -0.25 and 0.25 too.
  CHECK(decode_weights(one({0, 1, 2, 3}), {spec("w", {4}, "int32", affine("uint8", 0.5, -1.25))})[0]
            .ints == std::vector<int32_t>{-1, -1, 0, 0});
  CHECK(decode_weights(one({0, 0, 1, 0, 2, 0, 3, 0}),
                       {spec("w", {4}, "int32", affine("uint16", 0.5, -1.25))})[0]
            .ints == std::vector<int32_t>{-1, -1, 0, 0});
  CHECK(
      decode_weights(one({0, 1, 5}), {spec("w", {3}, "int32", affine("uint8", 1, -2.5))})[0].ints ==
      std::vector<int32_t>{-2, -1, 3});
  CHECK(decode_weights(one({5}), {spec("w", {1}, "int32", affine("uint8", 0.5, 0))})[0].ints ==
        std::vector<int32_t>{3});
  // ToInt32 wraps modulo 2^32.
  CHECK(decode_weights(one({255}), {spec("w", {1}, "int32", affine("uint8", 1e10, 0))})[0].ints ==
        std::vector<int32_t>{-1210573824});
  // float16 storage: [13312, 14336, 14848] -> [0.25, 0.5, 0.75].
  Quantization half;
  half.dtype = "float16";
  CHECK(decode_weights(one({0x00, 0x34, 0x00, 0x38, 0x00, 0x3a}),
                       {spec("w", {3}, "float32", half)})[0]
            .floats == std::vector<float>{0.25f, 0.5f, 0.75f});
}

TEST_CASE("dequantization errors carry TF.js's messages") {
  Quantization half;
  half.dtype = "float16";
  CHECK(
      message_of(
          [&] {
            decode_weights(one({0, 0}), {spec("w", {1}, "int32", half)});
          },
          ErrorCode::kInvalidArgument) ==
      "Weight w is quantized with float16 which only supports weights of type float32 not int32.");
  Quantization no_scale;
  no_scale.dtype = "uint8";
  no_scale.min = 0;
  CHECK(message_of([&] { decode_weights(one({0}), {spec("w", {1}, "float32", no_scale)}); },
                   ErrorCode::kInvalidArgument) ==
        "Weight w with quantization uint8 doesn't have corresponding metadata min and scale.");
  CHECK(message_of(
            [&] { decode_weights(one({0}), {spec("w", {1}, "float32", affine("int4", 1, 0))}); },
            ErrorCode::kInvalidArgument) ==
        "Weight w has unknown quantization dtype int4. Supported quantization dtypes are: "
        "'uint8', 'uint16', and 'float16'.");
  CHECK(
      message_of([&] { decode_weights(one({0}), {spec("b", {1}, "bool", affine("uint8", 1, 0))}); },
                 ErrorCode::kInvalidArgument) == "Unsupported dtype in weight 'b': bool");
}

TEST_CASE("float16_to_float32 is exact (spec §2.4.2)") {
  CHECK(float16_to_float32(0x3400) == 0.25f);
  CHECK(float16_to_float32(0x3800) == 0.5f);
  CHECK(float16_to_float32(0x3A00) == 0.75f);
  CHECK(float16_to_float32(0x3555) == doctest::Approx(0.3333).epsilon(0.001));
  CHECK(static_cast<double>(float16_to_float32(0x3555)) == 0.333251953125);
  CHECK(float16_to_float32(0x3C00) == 1.0f);
  CHECK(float16_to_float32(0x7C00) == INFINITY);
  CHECK(float16_to_float32(0xFC00) == -INFINITY);
  CHECK(bits(float16_to_float32(0x0000)) == 0x00000000u);
  CHECK(bits(float16_to_float32(0x8000)) == 0x80000000u);
  CHECK(std::isnan(float16_to_float32(0x7E00)));
  CHECK(bits(float16_to_float32(0x7E01)) == 0x7FC02000u);  // payload kept
  CHECK(bits(float16_to_float32(0xFD00)) == 0xFFA00000u);
  CHECK(static_cast<double>(float16_to_float32(0x0001)) == 5.960464477539063e-8);
  CHECK(static_cast<double>(float16_to_float32(0x8001)) == -5.960464477539063e-8);
  CHECK(static_cast<double>(float16_to_float32(0x03FF)) == 6.097555160522461e-5);
  CHECK(float16_to_float32(0x0400) == std::ldexp(1.0f, -14));  // smallest normal
  CHECK(float16_to_float32(0x7BFF) == 65504.0f);
}

TEST_CASE("fixed_byte_size") {
  CHECK(fixed_byte_size(spec("f", {2, 3}, "float32")) == 24u);
  CHECK(fixed_byte_size(spec("c", {2}, "complex64")) == 16u);
  CHECK(fixed_byte_size(spec("b", {5}, "bool")) == 5u);
  CHECK(fixed_byte_size(spec("q", {5}, "float32", affine("uint16", 1, 0))) == 10u);
  CHECK_FALSE(fixed_byte_size(spec("s", {5}, "string")).has_value());
  CHECK_THROWS_AS(fixed_byte_size(spec("x", {5}, "float64")), Error);
  CHECK_THROWS_AS(fixed_byte_size(spec("x", {int64_t{1} << 62}, "float32")), Error);
}

TEST_CASE("validate_weight_bytes") {
  auto shard = [](size_t n, std::string label) {
    return Buffer::from_vector(std::vector<uint8_t>(n), std::move(label));
  };
  ModelArtifacts a;
  WeightGroup g1{
      {"group1-shard1of2.bin", "group1-shard2of2.bin"},
      {spec("a", {100}, "float32"), spec("b", {200}, "float32"), spec("c", {34}, "bool")}};
  WeightGroup g2{{"group2-shard1of1.bin"}, {spec("s", {2}, "string")}};
  a.weights_manifest = WeightsManifest{g1, g2};
  a.weight_specs = flatten_specs(*a.weights_manifest);
  const std::vector<uint8_t> strings = {1, 0, 0, 0, 'a', 2, 0, 0, 0, 'b', 'c'};

  SUBCASE("exact sizes pass") {
    a.weight_data = WeightData{shard(1000, "/abs/dir/group1-shard1of2.bin"),
                               shard(234, "/abs/dir/group1-shard2of2.bin"),
                               Buffer::copy_of(strings, "/abs/dir/group2-shard1of1.bin")};
    CHECK_NOTHROW(validate_weight_bytes(a, "file:///abs/dir/model.json"));
  }
  SUBCASE("a short group names its shards, sizes and the byte counts") {
    a.weight_data = WeightData{shard(500, "/abs/dir/group1-shard1of2.bin"),
                               shard(500, "/abs/dir/group1-shard2of2.bin"),
                               Buffer::copy_of(strings, "/abs/dir/group2-shard1of1.bin")};
    CHECK(message_of([&] { validate_weight_bytes(a, "file:///abs/dir/model.json"); },
                     ErrorCode::kDataLoss) ==
          "model.json at file:///abs/dir/model.json: weight group 1 (3 weights) needs 1234 "
          "bytes but its 2 shard(s) hold 1000 bytes: group1-shard1of2.bin "
          "(/abs/dir/group1-shard1of2.bin, 500 bytes), group1-shard2of2.bin "
          "(/abs/dir/group1-shard2of2.bin, 500 bytes)");
  }
  SUBCASE("extra trailing bytes are an error too") {
    a.weight_data = WeightData{shard(1000, "x1"), shard(235, "x2"), Buffer::copy_of(strings)};
    const std::string m = message_of([&] { validate_weight_bytes(a, "m"); }, ErrorCode::kDataLoss);
    CHECK(m.find("needs 1234 bytes but its 2 shard(s) hold 1235 bytes") != std::string::npos);
  }
  SUBCASE("bytes moved between groups are caught per group") {
    std::vector<uint8_t> longer = strings;
    longer.pop_back();
    a.weight_data = WeightData{shard(1000, "x1"), shard(235, "x2"), Buffer::copy_of(longer)};
    const std::string m = message_of([&] { validate_weight_bytes(a, "m"); }, ErrorCode::kDataLoss);
    CHECK(m.find("weight group 1") != std::string::npos);
  }
  SUBCASE("string sizes are read from the group's own bytes") {
    std::vector<uint8_t> bad = strings;
    bad[5] = 9;  // second string claims 9 bytes, 2 follow
    a.weight_data = WeightData{shard(1000, "x1"), shard(234, "x2"),
                               Buffer::copy_of(bad, "/d/group2-shard1of1.bin")};
    const std::string m = message_of([&] { validate_weight_bytes(a, "m"); }, ErrorCode::kDataLoss);
    CHECK(m.find("weight group 2 (1 weights) needs at least 18 bytes but its 1 shard(s) hold 11 "
                 "bytes") != std::string::npos);
    CHECK(m.find("string weight 's' element 1") != std::string::npos);
    CHECK(m.find("runs past the end") != std::string::npos);
  }
  SUBCASE("an HTML page in place of a shard is pointed out") {
    const std::string page = "<!DOCTYPE html><html><body>502 Bad Gateway</body></html>";
    a.weight_data = WeightData{shard(1000, "x1"), Buffer::from_string(std::string(page), "x2"),
                               Buffer::copy_of(strings)};
    const std::string m = message_of([&] { validate_weight_bytes(a, "m"); }, ErrorCode::kDataLoss);
    CHECK(m.find("looks like an HTML page") != std::string::npos);
  }
  SUBCASE("without one buffer per path, the whole data is checked against the flat specs") {
    a.weight_data = WeightData{shard(1234 + 11, "joined.bin")};
    CHECK_THROWS_AS(validate_weight_bytes(a, "m"), Error);  // strings are zeros: 0-length
    a.weight_data = WeightData{shard(1234, "j1")};
    a.weight_data->push_back(Buffer::copy_of(strings, "j2"));
    a.weights_manifest.reset();
    CHECK_NOTHROW(validate_weight_bytes(a, "m"));
    a.weight_data->push_back(shard(1, "j3"));
    const std::string m =
        message_of([&] { validate_weight_bytes(a, "mem://x"); }, ErrorCode::kDataLoss);
    CHECK(m ==
          "model.json at mem://x: the weights (4 specs) need 1245 bytes but the weight "
          "data holds 1246 bytes in 3 buffer(s): j1 (1234 bytes), j2 (11 bytes), j3 (1 "
          "bytes)");
  }
  SUBCASE("no data at all") {
    a.weights_manifest.reset();
    a.weight_specs.reset();
    CHECK_NOTHROW(validate_weight_bytes(a, "m"));
    a.weight_specs = std::vector<WeightSpec>{spec("w", {0}, "float32")};
    CHECK_NOTHROW(validate_weight_bytes(a, "m"));
    a.weight_specs = std::vector<WeightSpec>{spec("w", {1}, "float32")};
    CHECK_THROWS_AS(validate_weight_bytes(a, "m"), Error);
  }
  SUBCASE("specs that cannot be sized are invalid arguments") {
    a.weights_manifest.reset();
    a.weight_specs = std::vector<WeightSpec>{spec("w", {1}, "float64")};
    a.weight_data = WeightData{shard(8, "w.bin")};
    CHECK(message_of([&] { validate_weight_bytes(a, "m"); }, ErrorCode::kInvalidArgument) ==
          "model.json at m: Unsupported dtype in weight 'w': float64");
    a.weight_specs =
        std::vector<WeightSpec>{spec("w", {int64_t{1} << 40, int64_t{1} << 40}, "bool")};
    CHECK_THROWS_AS(validate_weight_bytes(a, "m"), Error);
  }
}
