// TransferOptions::transform: applied between load and save (quantization
// uses it), checked by a move's read-back, and nothing written when it throws.
#include <doctest/doctest.h>

#include "stowage/management.hpp"
#include "stowage/quantize.hpp"
#include "testing/host_test_support.hpp"

namespace stowage {
namespace {

using test::error_of;
using test::manifest;
using test::unique;

struct Fixture {
  Fixture() { registry.add_plugin(manifest("testmem")); }
  Registry registry;
};

TransferOptions quantizing(QuantizeReport& report) {
  TransferOptions options;
  options.transform = [&report](ModelArtifacts& a) {
    report = quantize_artifacts(a, {{{QuantizeDType::kFloat16, {}}}});
  };
  return options;
}

TEST_CASE("copy applies the transform before saving; the source is untouched") {
  Fixture f;
  const std::string src = "testmem://" + unique("xf-src");
  const std::string dst = "testmem://" + unique("xf-dst");
  save_model(src, test::sample_model(), "{}", {}, f.registry);
  QuantizeReport report;
  const SaveResult r = copy_model(src, dst, quantizing(report), f.registry);
  CHECK(report.quantized_count() == 1);
  CHECK(r.model_artifacts_info.weight_data_bytes == 4 + 4);  // 2 halves + the int32

  const ModelArtifacts copy = load_model(dst, "{}", {}, f.registry);
  REQUIRE(copy.weight_specs);
  REQUIRE((*copy.weight_specs)[0].quantization);
  CHECK((*copy.weight_specs)[0].quantization->dtype == "float16");
  CHECK_FALSE((*copy.weight_specs)[1].quantization);
  CHECK(test::bytes_of(*copy.weight_data) == std::string("\x00\x3c\x00\x40\x07\x00\x00\x00", 8));
  const ModelArtifacts source = load_model(src, "{}", {}, f.registry);
  CHECK(test::bytes_of(*source.weight_data) == test::bytes_of(*test::sample_model().weight_data));
}

TEST_CASE("move verifies the copy against the transformed model, then removes the source") {
  Fixture f;
  const std::string src = "testmem://" + unique("xf-move-src");
  const std::string dst = "testmem://" + unique("xf-move-dst");
  save_model(src, test::sample_model(), "{}", {}, f.registry);
  QuantizeReport report;
  move_model(src, dst, quantizing(report), f.registry);
  CHECK(error_of([&] { load_model(src, "{}", {}, f.registry); }).code() == ErrorCode::kNotFound);
  CHECK((*load_model(dst, "{}", {}, f.registry).weight_specs)[0].quantization->dtype == "float16");
}

TEST_CASE("a transform that throws ends the transfer before anything is written") {
  Fixture f;
  const std::string src = "testmem://" + unique("xf-bad-src");
  const std::string dst = "testmem://" + unique("xf-bad-dst");
  save_model(src, test::sample_model(), "{}", {}, f.registry);
  TransferOptions options;
  options.transform = [](ModelArtifacts& a) {
    // Two dtypes selecting one weight is an error.
    quantize_artifacts(
        a, {{{QuantizeDType::kUint8, {"dense/*"}}, {QuantizeDType::kUint16, {"*/kernel"}}}});
  };
  for (bool move : {false, true}) {
    CAPTURE(move);
    const auto e = error_of([&] {
      move ? move_model(src, dst, options, f.registry) : copy_model(src, dst, options, f.registry);
    });
    CHECK(e.code() == ErrorCode::kInvalidArgument);
    CHECK(std::string(e.what()) ==
          "two quantization dtypes, uint8 and uint16, select the same weight 'dense/kernel'");
    CHECK(error_of([&] { load_model(dst, "{}", {}, f.registry); }).code() == ErrorCode::kNotFound);
    CHECK_NOTHROW(load_model(src, "{}", {}, f.registry));
  }
}

}  // namespace
}  // namespace stowage
