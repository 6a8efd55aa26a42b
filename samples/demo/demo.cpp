// stowage-demo: the main job in one run. Takes a TF.js model and moves it
// through several schemes, the way a host would, printing what each step did
// and the SaveResult sizes TF.js would report, then checks that the model
// that comes out is the one that went in, byte for byte.
//
//   stowage-demo [SOURCE_URL] [WORK_DIR]
//
// SOURCE_URL defaults to the sample Dense model; WORK_DIR to a new folder
// under the system temp folder.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <string>

#include "stowage/error.hpp"
#include "stowage/management.hpp"
#include "stowage/weights.hpp"

namespace fs = std::filesystem;

namespace {

void print_result(const char* step, const std::string& from, const std::string& to,
                  const stowage::SaveResult& result) {
  const auto& info = result.model_artifacts_info;
  std::printf("%-6s %s\n    -> %s\n", step, from.c_str(), to.c_str());
  std::printf(
      "       SaveResult: modelTopologyBytes=%llu weightSpecsBytes=%llu weightDataBytes=%s "
      "dateSaved=%s\n",
      static_cast<unsigned long long>(info.model_topology_bytes),
      static_cast<unsigned long long>(info.weight_specs_bytes),
      info.weight_data_bytes ? std::to_string(*info.weight_data_bytes).c_str() : "absent",
      stowage::iso_date(info.date_saved).c_str());
}

std::string describe_files(const fs::path& dir) {
  std::string out;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (!out.empty()) out += ", ";
    out += entry.path().filename().string() + " (" + std::to_string(entry.file_size()) + " B)";
  }
  return out;
}

// Same specs, same bytes, same JSON fields: what "the same model" means here.
bool same_model(const stowage::ModelArtifacts& a, const stowage::ModelArtifacts& b) {
  if (a.model_topology != b.model_topology || a.format != b.format ||
      a.generated_by != b.generated_by || a.converted_by != b.converted_by ||
      a.training_config != b.training_config ||
      a.user_defined_metadata != b.user_defined_metadata || a.weight_specs != b.weight_specs) {
    return false;
  }
  const stowage::WeightData none;
  const auto& wa = a.weight_data ? *a.weight_data : none;
  const auto& wb = b.weight_data ? *b.weight_data : none;
  return stowage::join(wa).view() == stowage::join(wb).view();
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string source =
        argc > 1 ? argv[1] : "file://" STOWAGE_SOURCE_DIR "/samples/models/dense/model.json";
    fs::path work = argc > 2
                        ? fs::path(argv[2])
                        : fs::temp_directory_path() / ("stowage-demo-" + std::to_string(getpid()));
    fs::create_directories(work);
    work = fs::canonical(work);
    const std::string single = "file://" + (work / "single").string();
    const std::string sharded = "file://" + (work / "sharded").string();
    const std::string moved = "file://" + (work / "moved").string();

    std::printf("stowage demo: one TF.js model through file:// and memory://\n\n");
    const stowage::ModelArtifacts original = stowage::load_model(source);
    const auto specs = original.weight_specs.value_or(std::vector<stowage::WeightSpec>{});
    std::printf("load   %s\n       %s, generatedBy %s, %zu weights, %llu weight bytes\n",
                source.c_str(), original.format.has_value() ? original.format.value().c_str() : "-",
                original.generated_by.has_value() ? original.generated_by.value().c_str() : "-",
                specs.size(),
                static_cast<unsigned long long>(
                    original.weight_data ? stowage::total_size(*original.weight_data) : 0));

    print_result("copy", source, "memory://demo/model",
                 stowage::copy_model(source, "memory://demo/model"));
    print_result("copy", "memory://demo/model", single,
                 stowage::copy_model("memory://demo/model", single));
    std::printf("       files: %s\n", describe_files(work / "single").c_str());

    stowage::TransferOptions sharding;
    sharding.destination_options = R"({"shard_size": 48})";
    print_result("copy", single + "/model.json", sharded,
                 stowage::copy_model(single + "/model.json", sharded, sharding));
    std::printf("       files: %s\n", describe_files(work / "sharded").c_str());

    print_result("move", sharded + "/model.json", "memory://demo/moved",
                 stowage::move_model(sharded + "/model.json", "memory://demo/moved"));
    std::printf("       %s still exists: %s\n", (work / "sharded" / "model.json").c_str(),
                fs::exists(work / "sharded" / "model.json") ? "yes" : "no");
    print_result("copy", "memory://demo/moved", moved,
                 stowage::copy_model("memory://demo/moved", moved));

    std::printf("\nlist   file://%s\n", work.c_str());
    for (const auto& model : stowage::list_models("file://" + work.string())) {
      std::printf("       %s (saved %s)\n", model.url.c_str(),
                  stowage::iso_date(model.info.date_saved).c_str());
    }

    const stowage::ModelArtifacts result = stowage::load_model(moved + "/model.json");
    const auto tensors =
        stowage::decode_weights(result.weight_data.value_or(stowage::WeightData{}),
                                result.weight_specs.value_or(std::vector<stowage::WeightSpec>{}));
    const bool same = same_model(original, result);
    std::printf("\nverify %s/model.json: %zu tensors decoded, %s the source\n", moved.c_str(),
                tensors.size(), same ? "identical to" : "DIFFERENT from");
    return same ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "stowage-demo: error: %s\n", e.what());
    return 1;
  }
}
