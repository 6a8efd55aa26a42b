// Finding plugin files (plugin_discovery_internal.hpp) in real folders.
#include <doctest/doctest.h>

#include "plugin_discovery_internal.hpp"
#include "testing/host_test_support.hpp"

namespace stowage::host {
namespace {

namespace fs = std::filesystem;

TEST_CASE("manifests_in lists the regular stowage-<name>.json files in name order") {
  test::TempDir dir;
  dir.write("stowage-b.json", "{}");
  dir.write("stowage-a.json", "not even JSON");  // reading it is not discovery's business
  dir.write("stowage-.json", "{}");              // no name
  dir.write("stowage-c.json.bak", "{}");
  dir.write("other.json", "{}");
  dir.write("libstowage_a.so", "");
  fs::create_directory(dir.path / "stowage-d.json");  // a folder, not a manifest
  fs::create_directory(dir.path / "sub");
  std::ofstream(dir.path / "sub" / "stowage-e.json") << "{}";  // not below the folder
  CHECK(manifests_in(dir.path) ==
        std::vector<fs::path>{dir.path / "stowage-a.json", dir.path / "stowage-b.json"});
}

TEST_CASE("manifests_in of a missing folder or a file is empty") {
  test::TempDir dir;
  dir.write("stowage-a.json", "{}");
  CHECK(manifests_in(dir.path / "missing").empty());
  CHECK(manifests_in(dir.path / "stowage-a.json").empty());
}

TEST_CASE("split_search_path keeps the order and drops empty elements") {
  using Paths = std::vector<fs::path>;
  CHECK(split_search_path("") == Paths{});
  CHECK(split_search_path(":") == Paths{});
  CHECK(split_search_path("/a") == Paths{"/a"});
  CHECK(split_search_path("/b:/a") == Paths{"/b", "/a"});
  CHECK(split_search_path(":/a::rel/b:") == Paths{"/a", "rel/b"});
  CHECK(split_search_path("/with space:/x") == Paths{"/with space", "/x"});
}

}  // namespace
}  // namespace stowage::host
