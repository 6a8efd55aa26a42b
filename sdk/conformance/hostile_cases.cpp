// Hostile names and paths. A plugin either refuses a name with
// INVALID_ARGUMENT (abi.h, open: "the URL is malformed for this scheme, names
// a path that escapes its root") or stores the model so that exactly that
// URL loads it back, inside the root. UTF-8 names are always accepted
// (abi.h: strings are UTF-8). Nothing else is allowed: no other code, no
// crash, no model lost outside the root.
#include <unistd.h>

#include "conformance_internal.hpp"

namespace stowage::conformance {
namespace {

struct Hostile {
  std::string label;
  std::string name;  // appended to a fresh folder
  bool must_accept = false;
  // Where a model it stores must be found by list: "" for the name's own
  // folder, "run" for this run's folder, "root" for the root.
  std::string stays_in;
};

std::vector<Hostile> hostile_names() {
  std::string long_path;
  for (int i = 0; i < 40; ++i) long_path += std::string(99, static_cast<char>('a' + i % 26)) + "/";
  long_path += "m";
  std::string climb_out_of_root;
  for (int i = 0; i < 16; ++i) climb_out_of_root += "../";
  climb_out_of_root += "stowage-conformance-escape-" + std::to_string(::getpid());
  return {
      {"a non-ASCII name", "модель-模型-😀", true, ""},
      {"spaces and punctuation", "a b+c%20d(e)&f=g;h'i", true, ""},
      {"a 200-byte segment", std::string(200, 'n'), true, ""},
      {"an empty name", "", false, "run"},
      {"a doubled slash", "a//b", false, "run"},
      {"a 1000-byte segment", std::string(1000, 'x'), false, "run"},
      {"a 4000-byte path", long_path, false, "run"},
      {"\"..\" climbing out of its folder", "sub/../../climbed", false, "run"},
      {"an absolute path", "/abs/hostile", false, "run"},
      {"backslashes", "..\\..\\windows", false, "run"},
      {"percent-encoded dots", "%2e%2e/%2e%2e/pct", false, "run"},
      {"control characters", "tab\there\nnewline", false, "run"},
      {"a NUL byte", std::string("nul\0byte", 8), false, "run"},
      {"\"..\" climbing out of the root", climb_out_of_root, false, "root"},
  };
}

// The listed model whose weights have `bytes` bytes and whose metadata has
// `seed`, if list shows one under url.
bool listed_under(const std::string& url, const ModelArtifacts& model) {
  const uint64_t bytes = weight_bytes(model).size();
  for (const ListedModel& m : list_models_at(url)) {
    if (m.info.weight_data_bytes.value_or(0) != bytes) continue;
    try {
      if (difference(model, open(m.url)->load()).empty()) return true;
    } catch (const std::exception&) {
    }
  }
  return false;
}

TEST_SUITE("hostile names") {
  TEST_CASE(
      "hostile names are refused with INVALID_ARGUMENT or stored faithfully inside the root") {
    const Target& t = target();
    const std::vector<Hostile> cases = hostile_names();
    for (size_t i = 0; i < cases.size(); ++i) {
      const Hostile& h = cases[i];
      if (h.stays_in == "root" && t.deviates(kDeviationDotdotResolves)) {
        MESSAGE("not run: " << h.label
                            << " (deviation dotdot_resolves: it would write outside "
                               "the root)");
        continue;
      }
      const std::string url = child(fresh("hostile"), h.name);
      const ModelArtifacts model =
          small_model(static_cast<uint32_t>(::getpid() % 100000) * 100 + 90 + i, 7000 + i, 2);
      const std::string promise =
          "a hostile name (" + h.label + ") is " +
          (h.must_accept ? "accepted: UTF-8 names are valid (abi.h)"
                         : "refused with INVALID_ARGUMENT or stored faithfully (abi.h: open)");
      try {
        std::optional<Error> refused;
        if (h.must_accept) {
          must(promise, [&] { open(url)->save(model); });
        } else {
          refused =
              may_fail(promise, {ErrorCode::kInvalidArgument}, [&] { open(url)->save(model); });
        }
        if (refused) {
          may_fail("a refused name stores nothing, so load finds nothing",
                   {ErrorCode::kInvalidArgument, ErrorCode::kNotFound}, [&] {
                     ModelArtifacts got = open(url)->load();
                     if (difference(model, got).empty()) {
                       broken(promise, "the save was refused but the model loads at " + url);
                     }
                   });
          continue;
        }
        ModelArtifacts loaded =
            must(promise + ": the URL it was saved at loads it", [&] { return open(url)->load(); });
        std::string diff = difference(model, loaded);
        if (!diff.empty()) broken_check(promise, diff);
        if (!t.has("list")) continue;
        const std::string where = h.stays_in == "root" ? t.root : t.run_root;
        if (!h.stays_in.empty() && !listed_under(where, model)) {
          broken_check("a model saved under a hostile name stays inside the root: list of " +
                           where + " finds it (abi.h: open: a path that escapes its root)",
                       "saved at " + url + ", not listed under " + where);
        }
        if (t.has("remove")) {
          must("a model under a hostile name can be removed", [&] { return open(url)->remove(); });
        }
      } catch (const doctest::detail::TestFailureException&) {
        // reported; go on with the next name
      }
    }
  }
}

}  // namespace
}  // namespace stowage::conformance
