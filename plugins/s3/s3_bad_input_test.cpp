// The S3 cases of the bad-input corpus (tests/data/bad/s3, see
// tests/data/bad/README.md): hostile S3 responses replayed byte for byte by
// core/net/test_server.py (its /replay route) to the real s3:// plugin,
// loaded through the registry. Each case folder holds the raw responses:
// model.json.http, weights.bin.http (GetObject) or list.http
// (ListObjectsV2).
//
//   cases.json  {"name", "op": "load" | "list" | "list_empty", "code",
//               "contains": [...], "names": "..."}
//
// Each must fail with its code, every part, and "names" (default: the URL
// of the model or the listed prefix); "list_empty" cases must list nothing.
// Nothing may hang or crash.
#include <doctest/doctest.h>
#include <rapidjson/document.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "bad_cases.hpp"
#include "plugin_test_util.hpp"
#include "stowage/error.hpp"
#include "stowage/management.hpp"
#include "stowage/registry.hpp"
#include "test_server.hpp"

namespace fs = std::filesystem;
using namespace stowage;

namespace {

using stowage::testing::read_cases;

const fs::path kCorpus = fs::path(STOWAGE_SOURCE_DIR) / "tests" / "data" / "bad" / "s3";
const std::string kServerScript = std::string(STOWAGE_SOURCE_DIR) + "/core/net/test_server.py";

}  // namespace

TEST_CASE("hostile S3 responses fail with their named cause") {
  static Registry* registry = testing::new_registry(STOWAGE_PLUGIN_BUILD_DIR);
  const rapidjson::Document cases = read_cases(kCorpus / "cases.json");
  REQUIRE(cases.Size() >= 20);

  testing::PythonServer server({kServerScript, "--root", kCorpus.string()});
  // Anonymous: no credentials are looked up, so the user's AWS settings
  // play no part.
  const std::string query = "?endpoint=" + server.base() + "&path_style=true&anonymous=true";

  std::set<std::string> listed;
  for (const auto& c : cases.GetArray()) {
    const std::string name = c["name"].GetString();
    const std::string op = c["op"].GetString();
    CAPTURE(name);
    CHECK(listed.insert(name).second);
    const std::string where = "s3://replay/" + name;
    // A deadline bounds the retries of the retryable cases.
    CallContext call;
    call.deadline = std::chrono::system_clock::now() + std::chrono::seconds(20);
    if (op == "list_empty") {
      CHECK(list_models(where + "/" + query, *registry).empty());
      continue;
    }
    const Error e = testing::error_of([&] {
      if (op == "load") {
        load_model(where + "/model.json" + query, "{}", call, *registry);
      } else if (op == "list") {
        list_models(where + "/" + query, *registry);
      } else {
        FAIL("unknown op " << op);
      }
    });
    const std::string message = e.what();
    CAPTURE(message);
    CHECK(std::string(error_code_name(e.code())) == c["code"].GetString());
    REQUIRE(c["contains"].Size() > 0);
    for (const auto& part : c["contains"].GetArray()) {
      CHECK_MESSAGE(message.find(part.GetString()) != std::string::npos,
                    "missing \"" << part.GetString() << "\"");
    }
    const std::string names = c.HasMember("names") ? c["names"].GetString() : where;
    CHECK_MESSAGE(message.find(names) != std::string::npos, "does not name " << names);
  }

  std::set<std::string> folders;
  for (const auto& entry : fs::directory_iterator(kCorpus)) {
    if (entry.is_directory()) folders.insert(entry.path().filename().string());
  }
  CHECK(folders == listed);
}
