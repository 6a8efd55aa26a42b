#include "stowage/config.hpp"

#include <doctest/doctest.h>

#include "testing/host_test_support.hpp"

namespace stowage {
namespace {

using test::contains;
using test::error_of;

TEST_CASE("parse_config reads every key and resolves relative paths") {
  const std::string hash(64, 'A');
  Config c = parse_config(R"({
    "plugin_paths": ["plugins", "/abs/dir"],
    "plugins": ["extra/stowage-x.json", {"path": "/opt/libstowage_y.so", "sha256": ")" +
                              hash + R"("}],
    "allow": ["file", "memory"],
    "aliases": {"models": "s3://bucket/prefix", "gs": "s3"},
    "scheme_plugins": {"http": "http-beast"},
    "defaults": {"s3": {"endpoint": "http://127.0.0.1:9000", "retries": 3, "path_style": true}},
    "sha256": {"file": ")" + hash +
                              R"("}
  })",
                          "host.json", "/etc/app");
  REQUIRE(c.plugin_paths.size() == 2);
  CHECK(c.plugin_paths[0] == "/etc/app/plugins");
  CHECK(c.plugin_paths[1] == "/abs/dir");
  REQUIRE(c.plugins.size() == 2);
  CHECK(c.plugins[0].path == "/etc/app/extra/stowage-x.json");
  CHECK_FALSE(c.plugins[0].sha256);
  CHECK(c.plugins[1].path == "/opt/libstowage_y.so");
  CHECK(c.plugins[1].sha256 == std::string(64, 'a'));  // pins are kept lowercase
  REQUIRE(c.allow);
  CHECK(*c.allow == std::vector<std::string>{"file", "memory"});
  CHECK(c.aliases.at("models") == "s3://bucket/prefix");
  CHECK(c.aliases.at("gs") == "s3");
  CHECK(c.scheme_plugins.at("http") == "http-beast");
  CHECK(c.defaults.at("s3") ==
        R"({"endpoint":"http://127.0.0.1:9000","retries":3,"path_style":true})");
  CHECK(c.sha256.at("file") == std::string(64, 'a'));
  CHECK(c.base_dir == "/etc/app");
}

TEST_CASE("an empty config allows every plugin") {
  Config c = parse_config("{}", "empty", "");
  CHECK_FALSE(c.allow);
  CHECK(c.plugins.empty());
}

TEST_CASE("parse_config names the source and the key path of every error") {
  struct Case {
    const char* json;
    const char* message;
  };
  const Case cases[] = {
      {R"({"plugins": ["a.json", {"path": "b.so", "sha256": 5}]})",
       "cfg.json: plugins[1].sha256: expected a string, got a number"},
      {R"({"plugins": [{"path": "b.so", "pin": "x"}]})",
       "cfg.json: plugins[0].pin: unknown key (known keys: path, sha256)"},
      {R"({"plugins": [{"sha256": "00"}]})",
       "cfg.json: plugins[0].sha256: expected 64 hexadecimal"},
      {R"({"plugins": [{}]})", "cfg.json: plugins[0].path: missing"},
      {R"({"plugins": [3]})", "cfg.json: plugins[0]: expected a string or an object, got a number"},
      {R"({"plugin_paths": "dir"})", "cfg.json: plugin_paths: expected an array, got a string"},
      {R"({"plugin_paths": [""]})", "cfg.json: plugin_paths[0]: expected a non-empty string"},
      {R"({"allow": [true]})", "cfg.json: allow[0]: expected a string, got a boolean"},
      {R"({"aliases": {"Models": "s3"}})",
       "cfg.json: aliases.Models: 'Models' is not a valid scheme"},
      {R"({"aliases": {"models": "not a scheme"}})",
       "cfg.json: aliases.models: 'not a scheme' is neither a scheme nor a URL prefix"},
      {R"({"aliases": {"s3": "s3://bucket"}})",
       "cfg.json: aliases.s3: an alias cannot stand for its own scheme"},
      {R"({"scheme_plugins": {"http": 1}})", "cfg.json: scheme_plugins.http: expected a string"},
      {R"({"defaults": {"s3": "endpoint=x"}})",
       "cfg.json: defaults.s3: expected an object, got a string"},
      {R"({"sha256": {"file": "xyz"}})", "cfg.json: sha256.file: expected 64 hexadecimal digits"},
      {R"({"locked": true})", "cfg.json: locked: unknown key (known keys: plugin_paths, plugins"},
      {R"([1, 2])", "cfg.json: expected a JSON object at the top, got an array"},
      {R"({"allow": [)", "cfg.json: invalid JSON at offset 11"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.json);
    Error e = error_of([&] { parse_config(c.json, "cfg.json", "/base"); });
    CHECK(e.code() == ErrorCode::kInvalidArgument);
    CHECK_MESSAGE(contains(e.what(), c.message), e.what());
  }
}

TEST_CASE("load_config_file resolves paths against the file's folder and names it in errors") {
  test::TempDir dir;
  dir.write("app.json", R"({"plugin_paths": ["p"], "allow": ["file"]})");
  Config c = load_config_file(dir.path / "app.json");
  REQUIRE(c.plugin_paths.size() == 1);
  CHECK(c.plugin_paths[0] == dir.path / "p");
  CHECK(c.base_dir == dir.path);

  dir.write("bad.json", R"({"alow": []})");
  Error bad = error_of([&] { load_config_file(dir.path / "bad.json"); });
  CHECK(contains(bad.what(), (dir.path / "bad.json").string() + ": alow: unknown key"));

  Error missing = error_of([&] { load_config_file(dir.path / "missing.json"); });
  CHECK(missing.code() == ErrorCode::kNotFound);
  CHECK(contains(missing.what(),
                 "cannot read config file '" + (dir.path / "missing.json").string() + "'"));

  Error folder = error_of([&] { load_config_file(dir.path); });
  CHECK(contains(folder.what(), "it is a directory"));
}

}  // namespace
}  // namespace stowage
