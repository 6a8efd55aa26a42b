// The concurrent workload run against every scheme: many threads saving,
// loading, listing and removing models, each on its own path and all on one
// shared path, checking that every load returns one complete version that
// was written (never a mix of two) and that every model round-trips.
//
//   Target t = ...;                    // how to reach one scheme
//   Outcome o = run_distinct(t, 8);    // then CHECK(o.failures.empty())
//   o = run_shared(t, 8);
//
// Workers never call doctest: they collect failures, and the test thread
// asserts on them after joining.
//
// Thread-safety: a Target's functions are called from many threads at once.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "stowage/artifacts.hpp"

namespace stowage::concurrency {

struct Listed {
  std::string name;  // the model's name as given to Target::save
  std::optional<uint64_t> weight_data_bytes;
};

// One scheme. `name` is a short model name ("distinct-3", "shared"); the
// target turns it into its URLs. Failures are thrown as stowage::Error,
// a missing model as Error(kNotFound).
struct Target {
  std::string scheme;
  std::function<void(const std::string& name, const ModelArtifacts& model)> save;
  std::function<ModelArtifacts(const std::string& name)> load;
  std::function<std::vector<Listed>()> list;
  std::function<void(const std::string& name)> remove;
  // http:// loads fetch model.json and the weight files in separate
  // requests, so a load racing a save of the same name can pair one
  // version's model.json with another's weights (docs/serve.md). Versions
  // differ in size, so such a pair is refused with DATA_LOSS by the size
  // check; with this set, that error is counted, not failed. A load that
  // returns a mix is a failure for every scheme.
  bool loads_may_straddle_saves = false;
};

struct Outcome {
  std::vector<std::string> failures;
  uint64_t saves = 0;
  uint64_t loads = 0;      // loads that returned a model (all checked)
  uint64_t not_found = 0;  // loads after or racing a remove
  uint64_t straddled = 0;  // see Target::loads_may_straddle_saves
  uint64_t lists = 0;
  uint64_t removes = 0;
  std::string summary() const;
};

// Each thread owns one model ("distinct-<thread>"): saves new versions and
// loads each back exactly, lists it, then removes it and sees it gone.
Outcome run_distinct(const Target& target, int threads, int iterations);

// Every thread on the model "shared": first saves and loads only (every
// load must return a complete written version), then saves, loads, lists
// and removes interleaved (a load may also find nothing); finally one save
// that must load back exactly and a remove that must leave nothing.
Outcome run_shared(const Target& target, int threads, int iterations);

}  // namespace stowage::concurrency
