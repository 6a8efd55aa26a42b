// stowage writes what TensorFlow.js will load: every model listed in
// STOWAGE_INTEROP_DIR/index.json is copied with copy_model into
// STOWAGE_INTEROP_OUT/<id>/:
//   file_single   file:// -> file://, tfjs-node's model.json + weights.bin
//                 (integrity "none": byte for byte what tfjs-node writes)
//   file_sharded  file:// -> file://, converter shards of 1 KiB, with the
//                 "sha256" digests file:// records by default
//   via_memory    file:// -> memory:// -> file:// (memory lives in this process)
// tfjs_load_check.js then loads each copy with real TF.js.
#include <doctest/doctest.h>
#include <rapidjson/document.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "interop_index.hpp"
#include "stowage/management.hpp"
#include "stowage/registry.hpp"

namespace fs = std::filesystem;
using stowage::interop::IndexEntry;

namespace {

fs::path env_dir(const char* name) {
  const char* dir = std::getenv(name);
  REQUIRE_MESSAGE(dir != nullptr, "set " << name);
  return dir;
}

// What TF.js computed for the same artifacts (expected.json "info").
void check_info(const stowage::SaveResult& r, const rapidjson::Value& info, bool same_artifacts,
                const std::string& what) {
  CAPTURE(what);
  const auto& got = r.model_artifacts_info;
  CHECK(got.model_topology_type == "JSON");
  REQUIRE(got.weight_data_bytes.has_value());
  CHECK(*got.weight_data_bytes == info["weightDataBytes"].GetUint64());
  if (same_artifacts) {
    CHECK(got.model_topology_bytes == info["modelTopologyBytes"].GetUint64());
    CHECK(got.weight_specs_bytes == info["weightSpecsBytes"].GetUint64());
  }
}

}  // namespace

TEST_CASE("copies of every TF.js model through file:// and memory://") {
  const fs::path dir = env_dir("STOWAGE_INTEROP_DIR");
  const fs::path out = env_dir("STOWAGE_INTEROP_OUT");
  stowage::Registry registry;
  registry.add_plugin_folder(STOWAGE_PLUGIN_BUILD_DIR);

  const auto entries = stowage::interop::read_index(dir);
  for (const IndexEntry& e : entries) {
    CAPTURE(e.id);
    const std::string src = stowage::interop::file_url(e.model_json);
    const fs::path dst = out / e.id;
    for (const char* kind : {"file_single", "file_sharded", "via_memory"})
      fs::remove_all(dst / kind);
    fs::create_directories(dst);
    const auto expected = stowage::interop::parse_json_file(e.expected);
    const auto& info = expected["info"];
    // The tfjs-node layout holds TF.js's artifacts unchanged; the converter's
    // wraps the topology and adds keys, so only the weight bytes compare.
    const bool same = e.layout == "node";

    stowage::TransferOptions single;
    single.destination_options = R"({"durable": false, "integrity": "none"})";
    check_info(
        stowage::copy_model(src, stowage::interop::file_url(dst / "file_single"), single, registry),
        info, same, "file_single");

    stowage::TransferOptions sharded;
    sharded.destination_options = R"({"shard_size": 1024, "durable": false})";
    check_info(stowage::copy_model(src, stowage::interop::file_url(dst / "file_sharded"), sharded,
                                   registry),
               info, same, "file_sharded");

    const std::string mem = "memory://interop/" + e.id;
    check_info(stowage::copy_model(src, mem, {}, registry), info, same, "to memory");
    check_info(
        stowage::copy_model(mem, stowage::interop::file_url(dst / "via_memory"), single, registry),
        info, same, "memory to file");
    stowage::remove_model(mem, registry);

    for (const char* kind : {"file_single", "file_sharded", "via_memory"}) {
      CHECK_MESSAGE(fs::is_regular_file(dst / kind / "model.json"), kind);
    }
  }
  MESSAGE(entries.size() << " models copied 3 ways");
}
