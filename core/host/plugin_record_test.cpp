// Plugin sources, pins and records (plugin_record_internal.hpp), through the
// test plugins' real manifests and libraries.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include "file_hash_internal.hpp"
#include "plugin_record_internal.hpp"
#include "testing/host_test_support.hpp"

namespace stowage::host {
namespace {

using test::error_of;
using test::file_sha256;
using test::library;
using test::manifest;

// A name-pin lookup that records the names it was asked for.
struct PinsByName {
  std::map<std::string, std::string> pins;
  std::vector<std::string> asked;
  NamePinLookup lookup() {
    return [this](const std::string& name) -> std::optional<std::string> {
      asked.push_back(name);
      auto it = pins.find(name);
      if (it == pins.end()) return std::nullopt;
      return it->second;
    };
  }
};

std::string mismatch(const std::filesystem::path& lib, const std::string& pin,
                     const std::string& actual) {
  return "plugin library '" + lib.string() + "' does not match its SHA-256 pin: expected " + pin +
         ", actual " + actual + " (the library was not loaded)";
}

TEST_CASE("each plugin source has the name PluginInfo::source shows, highest first") {
  const std::pair<PluginSource, std::string_view> all[] = {
      {PluginSource::kApi, "api"},
      {PluginSource::kConfig, "config"},
      {PluginSource::kPluginPath, "STOWAGE_PLUGIN_PATH"},
      {PluginSource::kDefault, "default"},
  };
  for (const auto& [source, name] : all) {
    CHECK(source_name(source) == name);
    CHECK(source_named(name) == source);
  }
  CHECK(outranks(PluginSource::kApi, PluginSource::kConfig));
  CHECK(outranks(PluginSource::kConfig, PluginSource::kPluginPath));
  CHECK(outranks(PluginSource::kPluginPath, PluginSource::kDefault));
  CHECK_FALSE(outranks(PluginSource::kDefault, PluginSource::kPluginPath));
  CHECK_FALSE(outranks(PluginSource::kConfig, PluginSource::kConfig));
  CHECK(source_named("API") == std::nullopt);
  CHECK(source_named("") == std::nullopt);
  CHECK(source_named("plugin_path") == std::nullopt);
}

TEST_CASE("the registry refuses a source that is none of the four") {
  Registry r;
  for (const char* source : {"API", "", "plugin_path"}) {
    Error e = error_of([&] { r.add_plugin(manifest("simple"), source); });
    CHECK(e.code() == ErrorCode::kInvalidArgument);
    CHECK(std::string(e.what()) ==
          "cannot add '" + manifest("simple").string() + "': unknown plugin source '" + source +
              "' (expected \"api\", \"config\", \"STOWAGE_PLUGIN_PATH\" or \"default\")");
  }
  CHECK(r.plugins().empty());
  r.add_plugin(manifest("simple"), "STOWAGE_PLUGIN_PATH");
  REQUIRE(r.plugins().size() == 1);
  CHECK(r.plugins()[0].source == "STOWAGE_PLUGIN_PATH");
}

TEST_CASE("pins_for lists the entry's pin, then the name's") {
  CHECK(pins_for(std::nullopt, std::nullopt).empty());
  CHECK(pins_for(std::string("a"), std::nullopt) == std::vector<std::string>{"a"});
  CHECK(pins_for(std::nullopt, std::string("b")) == std::vector<std::string>{"b"});
  CHECK(pins_for(std::string("a"), std::string("b")) == std::vector<std::string>{"a", "b"});
}

TEST_CASE("record_for a manifest reads it and loads nothing") {
  PinsByName pins;
  pins.pins["simple"] = std::string(64, 'e');  // checked only when the plugin loads
  const uint64_t entries_before = entry_function_calls();
  auto rec =
      record_for(manifest("simple"), PluginSource::kConfig, std::string(64, 'f'), pins.lookup());
  CHECK(entry_function_calls() == entries_before);
  CHECK(pins.asked.empty());
  CHECK(rec->info.name == "simple");
  CHECK(rec->info.version == "1.2.3");
  CHECK(rec->info.manifest == manifest("simple"));
  CHECK(rec->info.library == library("simple"));
  CHECK(rec->info.schemes == std::vector<std::string>{"simple"});
  CHECK(rec->info.abi_major == 1);
  CHECK(rec->info.abi_minor == 0);
  CHECK(rec->file() == manifest("simple"));
  CHECK(rec->source == PluginSource::kConfig);
  CHECK(rec->entry_pin == std::string(64, 'f'));
  CHECK(rec->parsed.has_value());
  CHECK_FALSE(rec->loaded);
  CHECK_FALSE(rec->broken);
  CHECK_FALSE(rec->named_by_host);
}

TEST_CASE("record_for a library loads it under the entry's pin and the name's pin") {
  const std::filesystem::path lib = library("simple");
  const std::string actual = file_sha256(lib);
  const std::string wrong(64, 'e');

  SUBCASE("a wrong pin on the entry refuses it before the name is known") {
    PinsByName pins;
    Error e = error_of([&] { record_for(lib, PluginSource::kConfig, wrong, pins.lookup()); });
    CHECK(e.code() == ErrorCode::kPermissionDenied);
    CHECK(std::string(e.what()) == mismatch(lib, wrong, actual));
    CHECK(pins.asked.empty());
  }
  SUBCASE("a wrong pin for its name refuses it") {
    PinsByName pins;
    pins.pins["simple"] = wrong;
    Error e = error_of([&] { record_for(lib, PluginSource::kApi, actual, pins.lookup()); });
    CHECK(e.code() == ErrorCode::kPermissionDenied);
    CHECK(std::string(e.what()) == mismatch(lib, wrong, actual));
    CHECK(pins.asked == std::vector<std::string>{"simple"});
  }
  SUBCASE("a wrong pin for its name refuses it without an entry pin too") {
    PinsByName pins;
    pins.pins["simple"] = wrong;
    Error e = error_of([&] { record_for(lib, PluginSource::kApi, std::nullopt, pins.lookup()); });
    CHECK(e.code() == ErrorCode::kPermissionDenied);
    CHECK(std::string(e.what()) == mismatch(lib, wrong, actual));
  }
  SUBCASE("matching pins give a loaded record") {
    PinsByName pins;
    pins.pins["simple"] = actual;
    pins.pins["dupa"] = wrong;  // another plugin's pin is no concern of this one
    auto rec = record_for(lib, PluginSource::kPluginPath, actual, pins.lookup());
    CHECK(pins.asked == std::vector<std::string>{"simple"});
    REQUIRE(rec->loaded);
    CHECK(rec->info.name == "simple");
    CHECK(rec->info.manifest.empty());
    CHECK(rec->info.library == lib);
    CHECK(rec->file() == lib);
    CHECK(rec->info.schemes == std::vector<std::string>{"simple"});
    CHECK(rec->info.abi_major == 1);
    CHECK(rec->source == PluginSource::kPluginPath);
    CHECK_FALSE(rec->entry_pin);
    CHECK_FALSE(rec->parsed);
    CHECK_FALSE(rec->named_by_host);
  }
}

TEST_CASE("record_for a manifest that cannot be read throws naming it; broken_record keeps it") {
  test::TempDir dir;
  dir.write("stowage-bad.json", "{\"manifest_version\": 1");
  const auto file = dir.path / "stowage-bad.json";
  PinsByName pins;
  Error e =
      error_of([&] { record_for(file, PluginSource::kDefault, std::nullopt, pins.lookup()); });
  CHECK(e.code() == ErrorCode::kInvalidArgument);
  CHECK(test::contains(e.what(), file.string()));
  auto rec = broken_record(file, PluginSource::kDefault, e);
  CHECK(rec->info.name == "bad");
  CHECK(rec->info.manifest == file);
  CHECK(rec->file() == file);
  CHECK(rec->source == PluginSource::kDefault);
  REQUIRE(rec->broken);
  CHECK(std::string(rec->broken->what()) == e.what());
}

}  // namespace
}  // namespace stowage::host
