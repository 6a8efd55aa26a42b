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
                              R"("},
    "cache": {"schemes": ["https", "s3"]},
    "offline": true
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
  CHECK(c.cache_schemes == std::vector<std::string>{"https", "s3"});
  CHECK(c.offline == true);
  CHECK(c.base_dir == "/etc/app");
}

TEST_CASE("retry: every key, or the defaults for those left out") {
  Config c =
      parse_config(R"({"retry": {"max_attempts": 2, "initial_backoff_ms": 0, "max_backoff_ms": 30,)"
                   R"( "total_deadline_ms": 9000}})",
                   "cfg.json", {});
  REQUIRE(c.retry.has_value());
  CHECK(c.retry->max_attempts == 2);
  CHECK(c.retry->initial_backoff == std::chrono::milliseconds(0));
  CHECK(c.retry->max_backoff == std::chrono::milliseconds(30));
  CHECK(c.retry->total_deadline == std::chrono::milliseconds(9000));
  c = parse_config(R"({"retry": {"max_attempts": 1}})", "cfg.json", {});
  REQUIRE(c.retry.has_value());
  CHECK(c.retry->max_attempts == 1);
  CHECK(c.retry->initial_backoff == RetrySettings{}.initial_backoff);
  CHECK(c.retry->total_deadline == RetrySettings{}.total_deadline);
  CHECK_FALSE(parse_config("{}", "cfg.json", {}).retry.has_value());
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
      {R"({"retry": 3})", "cfg.json: retry: expected an object, got a number"},
      {R"({"retry": {"max_attempts": 0}})",
       "cfg.json: retry.max_attempts: expected 1 to 100, got 0"},
      {R"({"retry": {"max_attempts": 2.5}})",
       "cfg.json: retry.max_attempts: expected an integer, got a number"},
      {R"({"retry": {"initial_backoff_ms": -1}})",
       "cfg.json: retry.initial_backoff_ms: expected 0 to 86400000, got -1"},
      {R"({"retry": {"initial_backoff_ms": 50, "max_backoff_ms": 10}})",
       "cfg.json: retry.max_backoff_ms: must not be less than initial_backoff_ms"},
      {R"({"retry": {"attempts": 3}})",
       "cfg.json: retry.attempts: unknown key (known keys: max_attempts, initial_backoff_ms, "
       "max_backoff_ms, total_deadline_ms)"},
      {R"({"sha256": {"file": "xyz"}})", "cfg.json: sha256.file: expected 64 hexadecimal digits"},
      {R"({"cache": ["https"]})", "cfg.json: cache: expected an object, got an array"},
      {R"({"cache": {"max_age": 60}})",
       "cfg.json: cache.max_age: unknown key (known keys: schemes; the cache's options go in "
       "\"defaults\": {\"cache\": {...}})"},
      {R"({"cache": {"schemes": ["cache+https"]}})",
       "cfg.json: cache.schemes[0]: 'cache+https' is not a scheme to cache"},
      {R"({"cache": {"schemes": "https"}})",
       "cfg.json: cache.schemes: expected an array, got a string"},
      {R"({"offline": "yes"})", "cfg.json: offline: expected true or false, got a string"},
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
