#include "stowage/artifacts.hpp"

#include <doctest/doctest.h>

#include "stowage/error.hpp"
#include "stowage/model_json.hpp"

using namespace stowage;
using namespace std::chrono;

namespace {

WeightSpec spec(std::string name, std::vector<int64_t> shape, std::string dtype) {
  WeightSpec s;
  s.name = std::move(name);
  s.shape = std::move(shape);
  s.dtype = std::move(dtype);
  return s;
}

Buffer bytes(size_t n) { return Buffer::from_vector(std::vector<uint8_t>(n)); }

}  // namespace

TEST_CASE("WeightSpec::element_count") {
  CHECK(spec("s", {}, "float32").element_count() == 1);
  CHECK(spec("v", {3}, "float32").element_count() == 3);
  CHECK(spec("m", {2, 0, 5}, "float32").element_count() == 0);
  CHECK(spec("m", {4294967296, 4294967295}, "float32").element_count() == 18446744069414584320ull);
  try {
    spec("huge", {4294967296, 4294967296}, "float32").element_count();
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::kInvalidArgument);
    CHECK(std::string(e.what()).find("'huge'") != std::string::npos);
  }
  CHECK_THROWS_AS(spec("neg", {2, -1}, "float32").element_count(), Error);
}

TEST_CASE("flatten_specs joins groups in order") {
  WeightsManifest m = {{{"a.bin"}, {spec("a", {1}, "float32"), spec("b", {1}, "int32")}},
                       {{}, {}},
                       {{"c.bin"}, {spec("c", {2}, "bool")}}};
  const auto flat = flatten_specs(m);
  REQUIRE(flat.size() == 3);
  CHECK(flat[0].name == "a");
  CHECK(flat[2].name == "c");
}

TEST_CASE("iso_date and parse_iso_date") {
  const auto t = sys_days{2024y / 1 / 2} + 3h + 4min + 5s + 678ms;
  CHECK(iso_date(t) == "2024-01-02T03:04:05.678Z");
  CHECK(iso_date(sys_days{1970y / 1 / 1}) == "1970-01-01T00:00:00.000Z");
  CHECK(iso_date(sys_days{1969y / 12 / 31} + 23h + 59min + 59s + 999ms) ==
        "1969-12-31T23:59:59.999Z");
  // Sub-millisecond parts are cut, as a JS Date holds milliseconds.
  CHECK(iso_date(t + microseconds(999)) == "2024-01-02T03:04:05.678Z");
  CHECK(parse_iso_date("2024-01-02T03:04:05.678Z") == t);
  CHECK(parse_iso_date("2024-01-02T03:04:05Z") == t - 678ms);
  CHECK(parse_iso_date("2024-01-02T05:04:05.678+02:00") == t);
  CHECK(parse_iso_date("2024-01-02") == sys_days{2024y / 1 / 2});
  for (const char* bad :
       {"", "2024", "2024-13-01T00:00:00Z", "2024-02-30T00:00:00.000Z", "2024-01-02T03:04:05.678",
        "2024-01-02 03:04:05Z", "yesterday", "2024-01-02T03:04:05.678Zjunk"}) {
    CAPTURE(bad);
    CHECK_THROWS_AS(parse_iso_date(bad), Error);
  }
}

TEST_CASE("artifacts_info: counts as TF.js computes them (spec §3)") {
  const auto now = sys_days{2024y / 5 / 6} + 7h;
  ModelArtifacts a;
  ModelArtifactsInfo info = artifacts_info(a, now);
  CHECK(info.date_saved == now);
  CHECK(info.model_topology_type == "JSON");
  CHECK(info.model_topology_bytes == 0);
  CHECK(info.weight_specs_bytes == 0);
  CHECK(info.weight_data_bytes == 0);

  SUBCASE("UTF-8 byte counts, not string lengths") {
    a.model_topology = R"({"a":"é正"})";
    CHECK(artifacts_info(a).model_topology_bytes == 13);
    for (auto [text, n] : {std::pair{"a", 1}, {"aЖ", 3}, {"aЖ文", 6}, {"aЖ文1", 7}}) {
      a.model_topology = text;
      CHECK(artifacts_info(a).model_topology_bytes == static_cast<uint64_t>(n));
    }
  }
  SUBCASE("the localStorage example of spec §4.2") {
    a.model_topology = R"({"a":1})";
    a.weight_specs = std::vector<WeightSpec>{spec("w", {2}, "float32")};
    a.weight_data = WeightData{bytes(8)};
    info = artifacts_info(a, now);
    CHECK(info.model_topology_bytes == 7);
    CHECK(info.weight_specs_bytes == 44);
    CHECK(info.weight_data_bytes == 8);
    CHECK(info_to_json(info) ==
          R"({"dateSaved":"2024-05-06T07:00:00.000Z","modelTopologyType":"JSON",)"
          R"("modelTopologyBytes":7,"weightSpecsBytes":44,"weightDataBytes":8})");
  }
  SUBCASE("weight data as several buffers") {
    a.weight_data = WeightData{bytes(3), bytes(0), bytes(5)};
    CHECK(artifacts_info(a).weight_data_bytes == 8);
  }
  SUBCASE("an empty weight-data list has no weightDataBytes (quirk)") {
    a.weight_data = WeightData{};
    info = artifacts_info(a, now);
    CHECK_FALSE(info.weight_data_bytes.has_value());
    CHECK(info_to_json(info) ==
          R"({"dateSaved":"2024-05-06T07:00:00.000Z","modelTopologyType":"JSON",)"
          R"("modelTopologyBytes":0,"weightSpecsBytes":0})");
  }
}

TEST_CASE("info_from_json reads what info_to_json writes") {
  ModelArtifactsInfo info;
  info.date_saved = sys_days{2023y / 12 / 31} + 23h + 59min + 59s + 1ms;
  info.model_topology_bytes = 538;
  info.weight_specs_bytes = 123;
  info.weight_data_bytes = 12;
  const ModelArtifactsInfo back = info_from_json(info_to_json(info), "info");
  CHECK(back.date_saved == info.date_saved);
  CHECK(back.model_topology_type == "JSON");
  CHECK(back.model_topology_bytes == 538);
  CHECK(back.weight_specs_bytes == 123);
  CHECK(back.weight_data_bytes == 12);

  const auto partial = info_from_json(R"({"dateSaved":"2020-01-01T00:00:00.000Z"})", "old");
  CHECK(partial.model_topology_bytes == 0);
  CHECK_FALSE(partial.weight_data_bytes.has_value());

  for (const char* bad :
       {"[]", R"({"modelTopologyBytes":1})", R"({"dateSaved":"x","modelTopologyBytes":1})",
        R"({"dateSaved":"2020-01-01T00:00:00.000Z","weightDataBytes":-1})",
        R"({"dateSaved":"2020-01-01T00:00:00.000Z","weightSpecsBytes":1.5})",
        R"({"dateSaved":"2020-01-01T00:00:00.000Z","modelTopologyBytes":"7"})"}) {
    CAPTURE(bad);
    try {
      info_from_json(bad, "tensorflowjs_models/m/info");
      FAIL("no error");
    } catch (const Error& e) {
      CHECK(e.code() == ErrorCode::kInvalidArgument);
      CHECK(std::string(e.what()).find("tensorflowjs_models/m/info") != std::string::npos);
    }
  }
}
