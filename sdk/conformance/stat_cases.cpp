// stat (abi.h, ABI 1.1): what load would give, without the weight bytes,
// and a version token that follows the stored model.
#include "conformance_internal.hpp"

namespace stowage::conformance {
namespace {

std::string stat_version(const std::string& url, const std::string& promise) {
  ModelStat s = must(promise, [&] { return open(url)->stat(); });
  if (s.version.empty()) broken("stat's version is a non-empty string (abi.h: stat)", url);
  return s.version;
}

TEST_SUITE("stat") {
  TEST_CASE("stat after a save describes the model load gives, with load's info") {
    const std::string url = fresh("stat");
    must("save succeeds (abi.h: save)", [&] { open(url)->save(small_model(41)); });
    ModelArtifacts loaded = must("load succeeds (abi.h: load)", [&] { return open(url)->load(); });
    ModelStat s =
        must("stat succeeds for a saved model (abi.h: stat)", [&] { return open(url)->stat(); });
    if (s.model.weight_data) {
      broken("stat carries no weight bytes (abi.h: stat)", url + ": stat returned weight data");
    }
    ModelArtifacts json_only = loaded;
    json_only.weight_data.reset();
    if (std::string diff = difference(json_only, s.model); !diff.empty()) {
      broken_check("stat's modelJson is the artifacts JSON load gives (abi.h: stat)",
                   url + ": " + diff);
    }
    const ModelArtifactsInfo expected = artifacts_info(loaded);
    auto same = [&](const char* field, const std::string& a, const std::string& b) {
      if (a != b) {
        broken_check("stat's info is the ModelArtifactsInfo of the model load gives (abi.h: stat)",
                     url + ": " + field + " is " + b + " by stat, " + a + " by load");
      }
    };
    auto text = [](const std::optional<uint64_t>& n) {
      return n ? std::to_string(*n) : std::string("absent");
    };
    same("modelTopologyType", expected.model_topology_type, s.info.model_topology_type);
    same("modelTopologyBytes", std::to_string(expected.model_topology_bytes),
         std::to_string(s.info.model_topology_bytes));
    same("weightSpecsBytes", std::to_string(expected.weight_specs_bytes),
         std::to_string(s.info.weight_specs_bytes));
    same("weightDataBytes", text(expected.weight_data_bytes), text(s.info.weight_data_bytes));
  }

  TEST_CASE("the version is stable, and a re-save with other weights of the same size changes it") {
    const std::string url = fresh("stat-version");
    must("save succeeds (abi.h: save)", [&] { open(url)->save(small_model(51)); });
    const std::string first = stat_version(url, "stat succeeds for a saved model (abi.h: stat)");
    const std::string again = stat_version(url, "stat succeeds for a saved model (abi.h: stat)");
    if (again != first) {
      broken("two stats of the same stored model give the same version (abi.h: stat)",
             url + ": \"" + first + "\", then \"" + again + "\"");
    }
    // The same model.json, other weight bytes of the same size: a version
    // taken from model.json alone does not see it.
    ModelArtifacts other = small_model(51);
    other.weight_data = small_model(52).weight_data;
    REQUIRE(weight_bytes(other).size() == weight_bytes(small_model(51)).size());
    REQUIRE(weight_bytes(other) != weight_bytes(small_model(51)));
    must("save replaces a model (abi.h: save)", [&] { open(url)->save(other); });
    const std::string after = stat_version(url, "stat succeeds for a saved model (abi.h: stat)");
    if (after == first) {
      broken("a save that replaces the model gives another version (abi.h: stat)",
             url + ": \"" + first + "\" before and after a save of other weights of the same size");
    }
  }

  TEST_CASE("stat: no model at the URL is NOT_FOUND, naming the URL") {
    const std::string url = fresh("stat-missing");
    Error e = must_fail("stat fails with NOT_FOUND when there is no model at the URL (abi.h: stat)",
                        {ErrorCode::kNotFound}, [&] { open(url)->stat(); });
    if (std::string(e.what()).find(url) == std::string::npos) {
      broken_check("an error names the URL it is about", url + ": " + describe(e));
    }
  }
}

}  // namespace
}  // namespace stowage::conformance
