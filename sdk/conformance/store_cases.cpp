// The model-store operations: overwrite, list, remove, and move (through
// stowage::move_model, which copies, verifies, then removes).
#include <map>

#include "conformance_internal.hpp"
#include "stowage/management.hpp"

namespace stowage::conformance {
namespace {

// The seed small_model() wrote into a model's metadata; -1 when none.
long seed_of(const ModelArtifacts& m) {
  const std::string& meta = m.user_defined_metadata.value_or("");
  size_t at = meta.find("\"seed\":");
  return at == std::string::npos ? -1 : std::stol(meta.substr(at + 7));
}

void check_info(const ModelArtifactsInfo& got, const ModelArtifacts& model, const std::string& what,
                const std::string& promise) {
  ModelArtifactsInfo want = artifacts_info(model);
  if (got.model_topology_bytes != want.model_topology_bytes ||
      got.weight_specs_bytes != want.weight_specs_bytes ||
      got.weight_data_bytes.value_or(0) != want.weight_data_bytes.value_or(0)) {
    broken_check(promise, what + ": modelTopologyBytes/weightSpecsBytes/weightDataBytes are " +
                              std::to_string(got.model_topology_bytes) + "/" +
                              std::to_string(got.weight_specs_bytes) + "/" +
                              std::to_string(got.weight_data_bytes.value_or(0)) + ", expected " +
                              std::to_string(want.model_topology_bytes) + "/" +
                              std::to_string(want.weight_specs_bytes) + "/" +
                              std::to_string(want.weight_data_bytes.value_or(0)));
  }
}

TransferOptions transfer_options() {
  TransferOptions o;
  o.source_options = target().options;
  o.destination_options = target().options;
  return o;
}

TEST_SUITE("overwrite") {
  TEST_CASE("save replaces the model already there") {
    const std::string url = fresh("overwrite");
    const ModelArtifacts big = small_model(21, 5000, 4), small = small_model(22, 8, 1);
    must("save succeeds", [&] { open(url)->save(big); });
    std::optional<Error> never = may_fail(
        "save replaces a model already there; ALREADY_EXISTS only for a scheme that never "
        "overwrites (abi.h: save)",
        {ErrorCode::kAlreadyExists}, [&] { open(url)->save(small); });
    ModelArtifacts loaded = must("load succeeds", [&] { return open(url)->load(); });
    const ModelArtifacts& want = never ? big : small;
    std::string diff = difference(want, loaded);
    if (!diff.empty()) {
      broken(never ? "a refused save leaves the model as it was (abi.h: save)"
                   : "after a save, load returns the new model (abi.h: save replaces)",
             diff);
    }
    if (never) return;
    must("save succeeds", [&] { open(url)->save(big); });
    diff = difference(big, must("load succeeds", [&] { return open(url)->load(); }));
    if (!diff.empty()) broken("after a save, load returns the new model (abi.h: save)", diff);
    if (target().has("list")) {
      auto listed = list_models_at(url);
      if (listed.size() != 1) {
        broken("a replaced model is one model: list shows it once (abi.h: save replaces)",
               std::to_string(listed.size()) + " models listed at " + url);
      }
      check_info(listed.at(0).info, big, url, "list reports the replacing model's sizes");
    }
  }
}

TEST_SUITE("list") {
  TEST_CASE("list names every model at or under its URL, each by a URL load accepts") {
    const std::string base = fresh("list");
    const std::map<std::string, uint32_t> names = {
        {"a", 31}, {"ab", 32}, {"b", 33}, {"nested/deeper/c", 34}};
    std::map<long, ModelArtifacts> models;
    for (const auto& [name, seed] : names) {
      models[seed] = small_model(seed, 10 + seed, 2);
      must("save succeeds", [&] { open(child(base, name))->save(models[seed]); });
    }
    auto listed = list_models_at(base);
    if (listed.size() != names.size()) {
      std::string urls;
      for (const auto& m : listed) urls += "\n    " + m.url;
      broken("list names every model at or under its URL (abi.h: list)",
             std::to_string(listed.size()) + " models listed at " + base + ", expected " +
                 std::to_string(names.size()) + ":" + urls);
    }
    std::map<long, int> seen;
    for (const ListedModel& m : listed) {
      if (!target().has("load")) break;
      ModelArtifacts loaded =
          must("each listed URL is one that load accepts (abi.h: list): " + m.url,
               [&] { return open(m.url)->load(); });
      long seed = seed_of(loaded);
      ++seen[seed];
      if (models.count(seed) == 0) {
        broken_check("list names the models saved (abi.h: list)", m.url + " is another model");
        continue;
      }
      std::string diff = difference(models[seed], loaded);
      if (!diff.empty()) broken_check("a listed URL loads the model saved there", diff);
      check_info(m.info, models[seed], m.url,
                 "list reports each model's sizes as TF.js computes them");
    }
    for (const auto& [seed, n] : seen) {
      if (n != 1) broken_check("list names each model once", std::to_string(n) + " times");
    }
    // "at": the URL of one model lists that model, and not its neighbour "ab".
    auto at = list_models_at(child(base, "a"));
    if (at.size() != 1) {
      broken("list of a model's own URL names that model alone (abi.h: list: at or under)",
             std::to_string(at.size()) + " models listed at " + child(base, "a"));
    }
    if (target().has("load")) {
      long seed = seed_of(must("the listed URL loads", [&] { return open(at[0].url)->load(); }));
      CHECK_MESSAGE(seed == 31, "list of " << child(base, "a") << " named the model 'a'");
    }
    auto under = list_models_at(child(base, "nested"));
    if (under.size() != 1) {
      broken("list finds models at any depth under its URL (abi.h: list)",
             std::to_string(under.size()) + " models listed at " + child(base, "nested"));
    }
  }
}

TEST_SUITE("remove") {
  TEST_CASE("remove deletes exactly the model at its URL and returns its info") {
    const std::string base = fresh("remove");
    const ModelArtifacts a = small_model(41, 300, 3), b = small_model(42), ab = small_model(43);
    must("save succeeds", [&] { open(child(base, "a"))->save(a); });
    must("save succeeds", [&] { open(child(base, "b"))->save(b); });
    must("save succeeds", [&] { open(child(base, "ab"))->save(ab); });
    ModelArtifactsInfo info = must("remove of a saved model succeeds (abi.h: remove)",
                                   [&] { return open(child(base, "a"))->remove(); });
    check_info(info, a, child(base, "a"),
               "remove returns the removed model's info (abi.h: remove)");
    if (target().has("load")) {
      must_fail("after remove, load finds no model (abi.h: remove)", {ErrorCode::kNotFound},
                [&] { open(child(base, "a"))->load(); });
      for (const auto& [name, model] : {std::pair{"b", &b}, std::pair{"ab", &ab}}) {
        std::string diff = difference(*model, must("a neighbour still loads", [&] {
          return open(child(base, name))->load();
        }));
        if (!diff.empty()) {
          broken("remove deletes exactly the model at its URL, nothing else (abi.h: remove)",
                 std::string("model '") + name + "' changed: " + diff);
        }
      }
    }
    if (target().has("list")) {
      auto listed = list_models_at(base);
      if (listed.size() != 2) {
        broken("remove deletes exactly one model (abi.h: remove)",
               std::to_string(listed.size()) + " models left at " + base + ", expected 2");
      }
    }
    must_fail("a second remove finds no model: NOT_FOUND (abi.h: remove)", {ErrorCode::kNotFound},
              [&] { open(child(base, "a"))->remove(); });
  }
}

TEST_SUITE("move") {
  TEST_CASE("move_model copies, verifies, then removes the source") {
    const std::string src = fresh("move-src"), dst = fresh("move-dst");
    const ModelArtifacts model = small_model(51, 700, 3);
    must("save succeeds", [&] { open(src)->save(model); });
    must("move_model succeeds",
         [&] { return move_model(src, dst, transfer_options(), *target().registry); });
    std::string diff =
        difference(model, must("the moved model loads", [&] { return open(dst)->load(); }));
    if (!diff.empty()) broken("a moved model is the model saved", diff);
    must_fail("after a move the source is gone: NOT_FOUND", {ErrorCode::kNotFound},
              [&] { open(src)->load(); });
  }

  TEST_CASE("a move of a missing model or onto itself changes nothing") {
    const std::string src = fresh("move-missing"), dst = fresh("move-dst");
    must_fail("a move of a missing model fails with NOT_FOUND", {ErrorCode::kNotFound},
              [&] { move_model(src, dst, transfer_options(), *target().registry); });
    must_fail("a failed move writes nothing at the destination", {ErrorCode::kNotFound},
              [&] { open(dst)->load(); });
    const ModelArtifacts model = small_model(52);
    must("save succeeds", [&] { open(src)->save(model); });
    must_fail("a move onto itself fails with INVALID_ARGUMENT", {ErrorCode::kInvalidArgument},
              [&] { move_model(src, src, transfer_options(), *target().registry); });
    std::string diff =
        difference(model, must("the model still loads", [&] { return open(src)->load(); }));
    if (!diff.empty()) broken("a refused move leaves its source as it was", diff);
  }
}

}  // namespace
}  // namespace stowage::conformance
