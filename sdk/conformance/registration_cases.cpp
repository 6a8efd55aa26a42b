// Registration: the plugin loads through the production registry, speaks
// ABI 1.x with tables of sane sizes, negotiates versions, declares exactly
// the capabilities it has, and its scheme behaves under collisions.
#include <fstream>
#include <map>
#include <sstream>

#include "conformance_internal.hpp"
#include "probe_internal.hpp"
#include "stowage/abi.h"
#include "stowage/config.hpp"

namespace stowage::conformance {
namespace {

namespace fs = std::filesystem;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// key=value lines of a probe's output.
std::map<std::string, std::string> report_of(const std::string& output) {
  std::map<std::string, std::string> out;
  std::istringstream in(output);
  for (std::string line; std::getline(in, line);) {
    size_t eq = line.find('=');
    if (eq != std::string::npos && line.find(' ') > eq)
      out[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return out;
}

std::string result_of(const std::string& output) {
  size_t at = output.find("RESULT ");
  if (at == std::string::npos) return "(no result; the probe printed: " + output + ")";
  return output.substr(at + 7, output.find('\n', at) - at - 7);
}

void require_loaded() {
  if (target().load_error) {
    broken(
        "the plugin loads through stowage::Registry (abi.h: the entry returns a valid "
        "descriptor)",
        *target().load_error);
  }
}

TEST_SUITE("registration") {
  TEST_CASE("the plugin loads through the production registry") {
    require_loaded();
    const Target& t = target();
    CHECK_MESSAGE(t.info.loaded, "the registry reports the plugin loaded");
    Route route =
        must("the root URL routes to the plugin", [&] { return t.registry->route(t.root); });
    if (route.plugin.name != t.info.name) {
      broken("the plugin serves the scheme it was tested for",
             "'" + t.scheme + "' is served by '" + route.plugin.name + "'");
    }
  }

  TEST_CASE("it speaks ABI 1.x, and its descriptor agrees with its manifest") {
    require_loaded();
    const Target& t = target();
    if (t.info.abi_major != STOWAGE_ABI_MAJOR) {
      broken("the descriptor's abi_major is the host's (abi.h: another major is refused)",
             "abi_major " + std::to_string(t.info.abi_major));
    }
    if (std::find(t.info.schemes.begin(), t.info.schemes.end(), t.scheme) == t.info.schemes.end()) {
      broken("the descriptor lists the scheme under test", "schemes: " + t.info.schemes.at(0));
    }
    CHECK_MESSAGE(!t.info.version.empty(), "the descriptor has a version (desc->version)");
    if (t.info.manifest.empty()) {
      MESSAGE(
          "the plugin was given as a library: its manifest was not checked (give --plugin "
          "<manifest.json> to check it)");
      return;
    }
    // Loading through a manifest already checked name, schemes and ABI major
    // against the descriptor; folders find manifests only by their name.
    const std::string expected = "stowage-" + t.info.name + ".json";
    if (t.info.manifest.filename() != expected) {
      broken("the manifest is named stowage-<plugin name>.json, so plugin folders find it",
             "it is named " + t.info.manifest.filename().string() + ", expected " + expected);
    }
    Registry folder_registry;
    folder_registry.add_plugin_folder(t.info.manifest.parent_path());
    Route route = must("a registry scanning the manifest's folder finds the plugin",
                       [&] { return folder_registry.route(t.root); });
    CHECK(route.plugin.name == t.info.name);
  }

  TEST_CASE("struct sizes, and a table of an older minor version loads and works") {
    require_loaded();
    ProbeResult probe = spawn_probe(target(), kProbeOlderMinor);
    INFO("probe output:\n" << probe.output);
    REQUIRE_MESSAGE(probe.exit_code == 0, "the negotiation probe ran");
    auto r = report_of(probe.output);
    const uint32_t desc_min = offsetof(stowage_plugin_desc, ops) + sizeof(void*);
    const uint32_t ops_min = offsetof(stowage_ops, remove) + sizeof(void*);
    const uint32_t desc_size =
        static_cast<uint32_t>(std::stoul(r["desc_size"].empty() ? "0" : r["desc_size"]));
    const uint32_t ops_size =
        static_cast<uint32_t>(std::stoul(r["ops_size"].empty() ? "0" : r["ops_size"]));
    if (desc_size < desc_min || desc_size > 4096) {
      broken(
          "desc->struct_size is at least ABI 1.0's size (abi.h: structs only grow at the end)",
          "struct_size " + std::to_string(desc_size) + ", ABI 1.0 has " + std::to_string(desc_min));
    }
    if (ops_size < ops_min || ops_size > 4096) {
      broken(
          "ops->struct_size is at least ABI 1.0's size (abi.h: structs only grow at the end)",
          "struct_size " + std::to_string(ops_size) + ", ABI 1.0 has " + std::to_string(ops_min));
    }
    if (result_of(probe.output) != "works") {
      broken(
          "the plugin works through a descriptor and ops table clamped to ABI 1.0 (abi.h: an "
          "older abi_minor is accepted; missing tail fields read as zero)",
          result_of(probe.output));
    }
  }

  TEST_CASE("another ABI major is refused, by manifest and by descriptor") {
    require_loaded();
    const Target& t = target();
    ProbeResult probe = spawn_probe(t, kProbeOtherMajor);
    INFO("probe output:\n" << probe.output);
    REQUIRE_MESSAGE(probe.exit_code == 0, "the negotiation probe ran");
    const std::string result = result_of(probe.output);
    if (!contains(result, "refused") || !contains(result, "major version")) {
      broken("a descriptor of another abi_major is refused (abi.h: versioning)", result);
    }
    // A manifest that claims another major is refused before any code runs.
    TempDir dir;
    fs::path manifest = dir.path / ("stowage-" + t.info.name + ".json");
    std::ofstream(manifest) << "{\"manifest_version\": 1, \"name\": \"" << t.info.name
                            << "\", \"version\": \"" << t.info.version << "\", \"library\": \""
                            << plugin_library(t).string()
                            << "\", \"abi\": {\"major\": " << STOWAGE_ABI_MAJOR + 1
                            << ", \"minor\": 0}, \"schemes\": [\"" << t.scheme << "\"]}\n";
    Registry registry;
    registry.add_plugin(manifest);
    Error e = must_fail("a manifest of another ABI major is refused", {ErrorCode::kInvalidArgument},
                        [&] { registry.open(t.root, t.options); });
    CHECK(contains(e.what(), "declares plugin ABI " + std::to_string(STOWAGE_ABI_MAJOR + 1)));
  }

  TEST_CASE("capability honesty: declared operations answer, the others are unimplemented") {
    require_loaded();
    const Target& t = target();
    const std::string url = fresh("honesty");
    std::unique_ptr<IOHandler> h = must("open succeeds", [&] { return open(url); });
    const struct {
      const char* cap;
      bool says;
    } caps[] = {{"load", h->can_load()},
                {"save", h->can_save()},
                {"list", h->can_list()},
                {"remove", h->can_remove()}};
    for (const auto& c : caps) {
      if (c.says != t.has(c.cap)) {
        broken_check("the handler offers exactly the declared operations",
                     std::string("capability '") + c.cap + "' is " +
                         (t.has(c.cap) ? "declared" : "not declared") + " but can_" + c.cap +
                         "() says " + (c.says ? "yes" : "no"));
      }
    }
    auto not_unimplemented = [&](const char* op, const std::function<void()>& f) {
      const std::string promise = std::string("a declared capability is implemented: '") + op +
                                  "' is declared, so it never fails with UNIMPLEMENTED";
      try {
        f();
      } catch (const Error& e) {
        if (e.code() == ErrorCode::kUnimplemented) broken_check(promise, describe(e));
      } catch (const std::exception& e) {
        broken_check("no C++ exception crosses the C ABI (abi.h: errors are statuses)",
                     std::string(op) + " threw " + describe(e));
      }
    };
    auto unimplemented = [&](const char* op, const std::function<void()>& f) {
      must_fail(
          std::string("an undeclared operation is unimplemented: '") + op + "' is not declared",
          {ErrorCode::kUnimplemented}, f);
    };
    ModelArtifacts model = small_model(1);
    if (t.has("save")) {
      not_unimplemented("save", [&] { h->save(model); });
    } else {
      unimplemented("save", [&] { h->save(model); });
    }
    if (t.has("load")) {
      not_unimplemented("load", [&] { h->load(); });
    } else {
      unimplemented("load", [&] { h->load(); });
    }
    if (t.has("list")) {
      not_unimplemented("list", [&] { h->list(); });
    } else {
      unimplemented("list", [&] { h->list(); });
    }
    if (t.has("remove")) {
      not_unimplemented("remove", [&] { h->remove(); });
    } else {
      unimplemented("remove", [&] { h->remove(); });
    }
  }

  TEST_CASE("a scheme two plugins claim is refused, naming both, until the config picks one") {
    require_loaded();
    const Target& t = target();
    TempDir dir;
    fs::path decoy = make_decoy(t, dir.path, t.scheme);
    Registry both;
    both.add_plugin(t.plugin);
    both.add_plugin(decoy);
    Error e = must_fail("two plugins claiming one scheme poison it", {ErrorCode::kInvalidArgument},
                        [&] { both.open(t.root, t.options); });
    CHECK(contains(e.what(), "claimed by more than one plugin"));
    CHECK(contains(e.what(), decoy.string()));
    CHECK(contains(e.what(),
                   t.info.manifest.empty() ? t.info.library.string() : t.info.manifest.string()));
    Config pick;
    pick.scheme_plugins[t.scheme] = t.info.name;
    both.apply_config(pick);
    CHECK(both.route(t.root).plugin.name == t.info.name);
    must("the plugin the config picks serves the scheme",
         [&] { return both.open(t.root, t.options); });

    // An alias reaches the plugin too, and a URL of another scheme does not.
    Config alias;
    alias.aliases["conformance-alias"] = t.root;
    both.apply_config(alias);
    Route via = both.route("conformance-alias://x");
    CHECK(via.plugin.name == t.info.name);
    CHECK(via.scheme == t.scheme);
  }
}

}  // namespace
}  // namespace stowage::conformance
