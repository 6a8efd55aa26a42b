// Round trips: every golden model made by TensorFlow.js, and a few made
// here, saved and loaded back byte for byte.
#include "conformance_internal.hpp"

namespace stowage::conformance {
namespace {

// abi.h, load: with a weights manifest, one buffer per path, labelled.
void check_buffers_match_manifest(const ModelArtifacts& loaded, const std::string& url) {
  if (!loaded.weights_manifest) return;
  size_t paths = 0;
  for (const WeightGroup& g : *loaded.weights_manifest) paths += g.paths.size();
  const size_t buffers = loaded.weight_data ? loaded.weight_data->size() : 0;
  if (paths != buffers) {
    broken_check(
        "with a weightsManifest, load hands out exactly one buffer per manifest path "
        "(abi.h: load)",
        url + ": " + std::to_string(paths) + " paths, " + std::to_string(buffers) + " buffers");
    return;
  }
  for (const Buffer& b : loaded.weight_data.value_or(WeightData{})) {
    if (b.label().empty()) {
      broken_check("each loaded weight buffer is labelled with its file or URL (abi.h: load)",
                   url + ": a buffer has no label");
      return;
    }
  }
}

TEST_SUITE("round trips") {
  TEST_CASE("golden TF.js models load back byte for byte") {
    const std::vector<Golden>& models = goldens();
    REQUIRE_MESSAGE(models.size() >= 7, "the golden models are installed with the suite");
    for (const Golden& g : models) {
      const std::string url = fresh("golden-" + g.id);
      const std::string promise =
          "a loaded model is exactly the model saved (abi.h: save, load): "
          "golden model '" +
          g.id + "' (" + g.description + ")";
      try {
        if (!g.artifacts.model_topology && target().deviates(kDeviationRefusesWeightsOnly)) {
          must_fail(
              "a model without modelTopology is refused with INVALID_ARGUMENT (deviation "
              "refuses_weights_only): golden model '" +
                  g.id + "'",
              {ErrorCode::kInvalidArgument}, [&] { open(url)->save(g.artifacts); });
          continue;
        }
        must(promise + ", save", [&] { open(url)->save(g.artifacts); });
        ModelArtifacts loaded = must(promise + ", load", [&] { return open(url)->load(); });
        std::string diff = difference(g.artifacts, loaded);
        if (!diff.empty()) broken_check(promise, url + ": " + diff);
        check_buffers_match_manifest(loaded, url);
        // The host hashes a buffer its plugin marked verified only when its
        // caller asks for that: such a load must find every digest right.
        CallContext recheck;
        recheck.recheck_digests = true;
        must(
            "every weight file a load marks verified hashes to the digest model.json records "
            "(abi.h sink_mark_verified): golden model '" +
                g.id + "', a load that hashes every file",
            [&] { return open(url)->load(recheck); });
      } catch (const doctest::detail::TestFailureException&) {
        // reported; go on with the next model
      }
    }
  }

  TEST_CASE("a model without any weight data round trips") {
    ModelArtifacts model = small_model(11);
    model.weight_specs.reset();
    model.weight_data.reset();
    const std::string url = fresh("topology-only");
    must("a topology-only save succeeds (abi.h: has_weight_data 0)",
         [&] { open(url)->save(model); });
    ModelArtifacts loaded = must("a topology-only model loads", [&] { return open(url)->load(); });
    std::string diff = difference(model, loaded);
    if (!diff.empty()) broken("a loaded model is exactly the model saved (abi.h: load)", diff);
  }

  TEST_CASE("weights in many buffers, one buffer, and 9 MiB round trip") {
    round_trip(fresh("pieces"), small_model(12, 301, 7),
               "weights handed to save as 7 buffers load back as saved");
    round_trip(fresh("one-piece"), small_model(13, 16, 1),
               "weights handed to save as 1 buffer load back as saved");
    round_trip(fresh("large"), small_model(14, 9u << 18, 5), "9 MiB of weights load back as saved");
  }

  TEST_CASE("close never fails, and buffers handed out outlive their handler and model") {
    const std::string url = fresh("outlive");
    const ModelArtifacts model = small_model(15, 2048, 3);
    must("save succeeds", [&] { open(url)->save(model); });
    ModelArtifacts loaded;
    {
      std::unique_ptr<IOHandler> h = open(url);
      loaded = must("load succeeds", [&] { return h->load(); });
    }  // close
    // Replace and (when it can) remove the model: the loaded bytes stay.
    must("save succeeds", [&] { open(url)->save(small_model(16, 8, 1)); });
    if (target().has("remove")) must("remove succeeds", [&] { return open(url)->remove(); });
    if (weight_bytes(loaded) != weight_bytes(model)) {
      broken(
          "buffers handed out stay valid after close, and after the model is replaced or "
          "removed (abi.h: close; buffers are owned until released)",
          "the bytes of a loaded buffer changed");
    }
  }
}

}  // namespace
}  // namespace stowage::conformance
