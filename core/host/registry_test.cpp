// The registry through real manifests and plugin libraries: lazy loading,
// conflicts, the allow list, pins, aliases, defaults, discovery, concurrency.
#include "stowage/registry.hpp"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <thread>

#include "file_hash_internal.hpp"
#include "plugin_handler_internal.hpp"
#include "plugin_loader_internal.hpp"
#include "registry_internal.hpp"
#include "testing/host_test_support.hpp"

namespace stowage {
namespace {

using test::contains;
using test::error_of;
using test::library;
using test::manifest;
using test::plugin_dir;
using test::unique;

std::optional<PluginInfo> find_plugin(const std::vector<PluginInfo>& all, const std::string& name) {
  for (const auto& p : all) {
    if (p.name == name) return p;
  }
  return std::nullopt;
}

std::string file_sha256(const std::filesystem::path& p) {
  int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  REQUIRE(fd >= 0);
  std::string hex = host::sha256_hex_of_fd(fd, p.string());
  ::close(fd);
  return hex;
}

// A handler written by the host itself (TF.js's custom IOHandler).
class EchoHandler : public IOHandler {
 public:
  EchoHandler(std::string url, std::string options)
      : url_(std::move(url)), options_(std::move(options)) {}
  const std::string& url() const override { return url_; }
  bool can_load() const override { return true; }
  ModelArtifacts load(const CallContext&) override {
    ModelArtifacts a;
    a.model_topology = options_;
    return a;
  }

 private:
  std::string url_;
  std::string options_;
};

TEST_CASE("url_scheme takes the lowercase scheme before '://'") {
  CHECK(url_scheme("file:///a/b") == "file");
  CHECK(url_scheme("S3://bucket/key") == "s3");
  CHECK(url_scheme("indexeddb://m") == "indexeddb");
  CHECK(url_scheme("git+ssh://h/x") == "git+ssh");
  CHECK(url_scheme("model.json").empty());
  CHECK(url_scheme("://x").empty());
  CHECK(url_scheme("/srv/a b://c").empty());
  CHECK(url_scheme("1abc://x").empty());
}

TEST_CASE("apply_alias joins a URL prefix and the rest with one slash") {
  CHECK(host::apply_alias("s3://bucket/prefix", "a/b") == "s3://bucket/prefix/a/b");
  CHECK(host::apply_alias("s3://bucket/prefix/", "/a/b") == "s3://bucket/prefix/a/b");
  CHECK(host::apply_alias("file:///srv/models", "x") == "file:///srv/models/x");
  CHECK(host::apply_alias("file://", "/abs/path") == "file:///abs/path");
  CHECK(host::apply_alias("s3://bucket", "") == "s3://bucket");
  CHECK(host::apply_alias("s3", "bucket/key") == "s3://bucket/key");
}

TEST_CASE("a plugin is known from its manifest and loaded on first use") {
  Registry r;
  r.add_plugin(manifest("testmem"));
  auto before = r.plugins();
  REQUIRE(before.size() == 1);
  CHECK(before[0].name == "testmem");
  CHECK(before[0].manifest == manifest("testmem"));
  CHECK(before[0].library == library("testmem"));
  CHECK(before[0].schemes == std::vector<std::string>{"testmem"});
  CHECK(before[0].source == "api");
  CHECK(before[0].allowed);
  CHECK_FALSE(before[0].loaded);
  CHECK(before[0].capabilities.empty());
  CHECK(r.schemes() == std::vector<std::string>{"testmem"});

  auto h = r.open("testmem://" + unique("lazy"));
  CHECK(h->can_save());
  auto after = r.plugins();
  CHECK(after[0].loaded);
  CHECK(after[0].version == "1.2.3");
  CHECK(after[0].abi_major == 1);
  CHECK(std::find(after[0].capabilities.begin(), after[0].capabilities.end(), "list") !=
        after[0].capabilities.end());
}

TEST_CASE("a library added without a manifest is loaded at once to learn its schemes") {
  Registry r;
  r.add_plugin(library("simple"));
  auto all = r.plugins();
  REQUIRE(all.size() == 1);
  CHECK(all[0].loaded);
  CHECK(all[0].manifest.empty());
  CHECK(all[0].schemes == std::vector<std::string>{"simple"});
  CHECK(r.open("simple://m")->load().model_topology == R"({"plugin":"simple","url":"simple://m"})");
}

TEST_CASE("two plugins claiming one scheme poison it until the config picks one") {
  Registry r;
  r.add_plugin_folder(plugin_dir());
  Error e = error_of([&] { r.open("dup://m"); });
  CHECK(e.code() == ErrorCode::kInvalidArgument);
  std::string msg = e.what();
  CHECK(contains(msg, "Scheme 'dup' of URL 'dup://m' is claimed by more than one plugin"));
  CHECK(contains(msg, "'dupa' (" + manifest("dupa").string() + ")"));
  CHECK(contains(msg, "'dupb' (" + manifest("dupb").string() + ")"));
  CHECK(contains(msg, "\"scheme_plugins\": {\"dup\": \"<plugin name>\"}"));
  CHECK_FALSE(find_plugin(r.plugins(), "dupa")->loaded);
  CHECK_FALSE(find_plugin(r.plugins(), "dupb")->loaded);
  // Other schemes of the same folder are unaffected.
  CHECK(r.open("simple://x")->can_load());

  Config pick;
  pick.scheme_plugins["dup"] = "dupb";
  r.apply_config(pick);
  CHECK(contains(*r.open("dup://m")->load().model_topology, "\"plugin\":\"dupb\""));
  CHECK(find_plugin(r.plugins(), "dupb")->loaded);
  CHECK_FALSE(find_plugin(r.plugins(), "dupa")->loaded);

  Config nobody;
  nobody.scheme_plugins["dup"] = "dupc";
  r.apply_config(nobody);
  Error none = error_of([&] { r.open("dup://m"); });
  CHECK(contains(none.what(), "The config picks plugin 'dupc' for scheme 'dup'"));
  CHECK(contains(none.what(), "'dupa' (" + manifest("dupa").string() + ")"));
}

TEST_CASE("the allow list keeps other plugins known but never loaded") {
  Registry r;
  Config c;
  c.allow = std::vector<std::string>{"testmem"};
  c.plugin_paths = {plugin_dir()};
  r.apply_config(c);
  auto simple = find_plugin(r.plugins(), "simple");
  REQUIRE(simple);
  CHECK_FALSE(simple->allowed);
  CHECK(simple->source == "config");
  CHECK(find_plugin(r.plugins(), "testmem")->allowed);

  auto calls = host::entry_function_calls();
  Error e = error_of([&] { r.open("simple://x"); });
  CHECK(e.code() == ErrorCode::kNotFound);
  CHECK(contains(e.what(), "No handler for scheme 'simple' in URL 'simple://x'."));
  CHECK(contains(e.what(), "Plugin 'simple' (" + manifest("simple").string() +
                               ") serves 'simple' but is not in the config's \"allow\" list"));
  CHECK(host::entry_function_calls() == calls);
  CHECK_FALSE(find_plugin(r.plugins(), "simple")->loaded);
  // Its scheme is not offered, and the unlisted duplicates no longer clash.
  auto schemes = r.schemes();
  CHECK(std::find(schemes.begin(), schemes.end(), "simple") == schemes.end());
  CHECK(std::find(schemes.begin(), schemes.end(), "testmem") != schemes.end());
  CHECK(error_of([&] { r.open("dup://m"); }).code() == ErrorCode::kNotFound);
  // A folder the host adds is scanned under the same allow list...
  r.add_plugin_folder(plugin_dir());
  CHECK_FALSE(find_plugin(r.plugins(), "simple")->allowed);
  // ...but a plugin the host names itself is its own explicit choice.
  r.add_plugin(manifest("simple"));
  CHECK(find_plugin(r.plugins(), "simple")->source == "api");
  CHECK(find_plugin(r.plugins(), "simple")->allowed);
  CHECK(r.open("simple://x")->can_load());
}

TEST_CASE("SHA-256 pins from the config are checked before a plugin loads") {
  const std::string actual = file_sha256(library("dupa"));
  {
    Registry r;
    Config c;
    c.plugins = {PluginEntry{manifest("dupa"), std::string(64, 'f')}};
    r.apply_config(c);
    Error e = error_of([&] { r.open("dup://m"); });
    CHECK(e.code() == ErrorCode::kPermissionDenied);
    CHECK(contains(e.what(), "expected " + std::string(64, 'f') + ", actual " + actual));
    CHECK_FALSE(r.plugins()[0].loaded);
  }
  {
    Registry r;
    Config c;
    c.plugins = {PluginEntry{manifest("dupa"), actual}};
    c.sha256["dupa"] = actual;
    r.apply_config(c);
    CHECK(contains(*r.open("dup://m")->load().model_topology, "dupa"));
  }
  {
    Registry r;
    Config c;
    c.plugins = {PluginEntry{manifest("dupa"), std::nullopt}};
    c.sha256["dupa"] = std::string(64, 'e');  // a pin by name
    r.apply_config(c);
    CHECK(error_of([&] { r.open("dup://m"); }).code() == ErrorCode::kPermissionDenied);
  }
}

TEST_CASE("aliases stand for a URL prefix or another scheme") {
  Registry r;
  r.add_plugin(manifest("testmem"));
  Config c;
  const std::string bucket = unique("bucket");
  c.aliases["models"] = "testmem://" + bucket + "/prefix";
  c.aliases["tm"] = "testmem";
  c.aliases["deep"] = "models";
  r.apply_config(c);
  auto h = r.open("models://a/b");
  CHECK(h->url() == "testmem://" + bucket + "/prefix/a/b");
  h->save(test::sample_model());
  auto listed = r.open("tm://" + bucket)->list();
  REQUIRE(listed.size() == 1);
  CHECK(listed[0].url == "testmem://" + bucket + "/prefix/a/b");
  CHECK(r.open("deep://a/b")->url() == "testmem://" + bucket + "/prefix/a/b");
  auto schemes = r.schemes();
  CHECK(std::find(schemes.begin(), schemes.end(), "models") != schemes.end());

  Config loop;
  loop.aliases["ping"] = "pong";
  loop.aliases["pong"] = "ping";
  r.apply_config(loop);
  CHECK(contains(error_of([&] { r.open("ping://x"); }).what(),
                 "The aliases of URL 'ping://x' form a loop: ping -> pong -> ping"));
  h->remove();
}

TEST_CASE("per-scheme defaults are merged under the call's options") {
  Registry r;
  std::string seen;
  r.register_scheme("echo", [&](std::string_view url, std::string_view options) {
    seen = std::string(options);
    return std::make_unique<EchoHandler>(std::string(url), std::string(options));
  });
  Config c;
  c.defaults["echo"] = R"({"region":"eu","retries":3,"nested":{"a":1}})";
  c.defaults["short"] = R"({"retries":5,"alias":true})";
  c.aliases["short"] = "echo";
  r.apply_config(c);
  r.open("echo://x");
  CHECK(seen == R"({"region":"eu","retries":3,"nested":{"a":1}})");
  r.open("echo://x", R"({"retries":9,"nested":{"b":2},"extra":"y"})");
  CHECK(seen == R"({"region":"eu","retries":9,"nested":{"b":2},"extra":"y"})");
  r.open("short://x", R"({"extra":1})");
  CHECK(seen == R"({"region":"eu","retries":5,"nested":{"a":1},"alias":true,"extra":1})");

  Error bad = error_of([&] { r.open("echo://x", "[1]"); });
  CHECK(bad.code() == ErrorCode::kInvalidArgument);
  CHECK(contains(bad.what(), "options for 'echo://x': expected a JSON object, got an array"));
  Error bad_plain = error_of([&] { r.open("other://x", "{"); });
  CHECK(contains(bad_plain.what(), "options for 'other://x': invalid JSON"));

  // Through a plugin: the defaults reach it, the call can override them.
  r.add_plugin(manifest("testmem"));
  const std::string url = "testmem://" + unique("defaults");
  r.open(url)->save(test::sample_model());
  Config fail;
  fail.defaults["testmem"] = R"({"fail_times":1,"fail_op":"load","fail_retryable":false})";
  r.apply_config(fail);
  CHECK(contains(error_of([&] { r.open(url)->load(); }).what(), "injected failure 1 of 1"));
  CHECK(r.open(url, R"({"fail_times":0})")->load().weight_data->size() == 2);
  r.open(url, R"({"fail_times":0})")->remove();
}

TEST_CASE("a composed scheme a+b is served by the plugin of a, unless it has its own") {
  Registry r;
  std::vector<std::string> opened;
  auto recorder = [&](std::string_view url, std::string_view options) {
    opened.push_back(std::string(url) + " " + std::string(options));
    return std::make_unique<EchoHandler>(std::string(url), std::string(options));
  };
  r.register_scheme("wrap", recorder);
  r.register_scheme("wrap+own", recorder);
  Config c;
  c.defaults["wrap"] = R"({"outer":1})";
  c.defaults["wrap+https"] = R"({"inner":2})";
  r.apply_config(c);
  CHECK(r.open("wrap+https://h/m/model.json")->url() == "wrap+https://h/m/model.json");
  CHECK(r.open("wrap+own://x")->url() == "wrap+own://x");
  REQUIRE(opened.size() == 2);
  CHECK(opened[0] == R"(wrap+https://h/m/model.json {"outer":1,"inner":2})");
  CHECK(opened[1] == "wrap+own://x {}");
  CHECK(r.route("wrap+file:///m").scheme == "wrap");

  Error none = error_of([&] { r.open("nope+https://h/m"); });
  CHECK(none.code() == ErrorCode::kNotFound);
  CHECK(contains(none.what(), "No handler for scheme 'nope+https' in URL 'nope+https://h/m'."));
}

TEST_CASE("the config's cache schemes open through cache+, except the cache's own inner open") {
  Registry r;
  std::vector<std::string> opened;
  r.register_scheme("mem", [&](std::string_view url, std::string_view options) {
    opened.push_back(std::string(url) + " " + std::string(options));
    return std::make_unique<EchoHandler>(std::string(url), std::string(options));
  });
  r.register_scheme("cache", [&](std::string_view url, std::string_view options) {
    opened.push_back(std::string(url) + " " + std::string(options));
    r.open(url.substr(std::string_view("cache+").size()));  // the decorator's inner open
    return std::make_unique<EchoHandler>(std::string(url), std::string(options));
  });
  Config c;
  c.cache_schemes = {"mem"};
  c.offline = true;
  c.defaults["cache"] = R"({"max_age":60})";
  r.apply_config(c);
  CHECK(r.open("mem://m")->url() == "cache+mem://m");
  CHECK(r.open("cache+mem://n", R"({"offline":false})")->url() == "cache+mem://n");
  REQUIRE(opened.size() == 4);
  CHECK(opened[0] == R"(cache+mem://m {"max_age":60,"offline":true})");
  CHECK(opened[1] == "mem://m {}");
  CHECK(opened[2] == R"(cache+mem://n {"max_age":60,"offline":false})");
  CHECK(opened[3] == "mem://n {}");
  CHECK(r.route("mem://m").url == "cache+mem://m");
  CHECK(r.route("mem://m").scheme == "cache");
}

TEST_CASE("an in-process scheme wins over a plugin for that scheme") {
  Registry r;
  r.add_plugin(manifest("testmem"));
  r.register_scheme("testmem", [](std::string_view url, std::string_view options) {
    return std::make_unique<EchoHandler>(std::string(url), std::string(options));
  });
  auto h = r.open("testmem://x", R"({"k":1})");
  CHECK(dynamic_cast<EchoHandler*>(h.get()) != nullptr);
  CHECK(h->load().model_topology == R"({"k":1})");
  CHECK_FALSE(r.plugins()[0].loaded);
  CHECK(error_of([&] { r.register_scheme("Bad", nullptr); }).code() == ErrorCode::kInvalidArgument);
  r.register_scheme("nil", [](std::string_view, std::string_view) { return nullptr; });
  CHECK(error_of([&] { r.open("nil://x"); }).code() == ErrorCode::kInternal);
}

TEST_CASE("a scheme takes one in-process handler: a second register_scheme names both") {
  Registry r;
  auto echo = [](std::string_view url, std::string_view options) -> std::unique_ptr<IOHandler> {
    return std::make_unique<EchoHandler>(std::string(url), std::string(options));
  };
  r.register_scheme("echo", echo, "the first component");
  Error twice = error_of([&] { r.register_scheme("echo", echo, "the second component"); });
  CHECK(twice.code() == ErrorCode::kAlreadyExists);
  CHECK(std::string(twice.what()) ==
        "cannot register handler factory 'the second component' for scheme 'echo': handler "
        "factory 'the first component' is registered for it already, and two handlers for one "
        "scheme would make routing ambiguous");
  // The first one stays in force.
  CHECK(r.open("echo://x", R"({"k":1})")->load().model_topology == R"({"k":1})");

  // Unnamed factories are described by their callable's type.
  r.register_scheme("anon", echo);
  Error unnamed = error_of([&] {
    r.register_scheme("anon", [](std::string_view, std::string_view) { return nullptr; });
  });
  CHECK(unnamed.code() == ErrorCode::kAlreadyExists);
  CHECK(contains(unnamed.what(), "cannot register an unnamed handler factory ("));
  CHECK(contains(unnamed.what(), "lambda"));
  CHECK(contains(unnamed.what(), "for scheme 'anon': an unnamed handler factory ("));
  // A refused registration leaves nothing behind: other schemes still register.
  r.register_scheme("other", echo);
  CHECK(r.open("other://y")->url() == "other://y");
}

TEST_CASE("the no-handler error names the scheme, what is available and where it looked") {
  Registry r;
  test::TempDir empty;
  r.add_plugin_folder(empty.path);
  r.register_scheme("memory", [](std::string_view u, std::string_view o) {
    return std::make_unique<EchoHandler>(std::string(u), std::string(o));
  });
  r.register_scheme("file", [](std::string_view u, std::string_view o) {
    return std::make_unique<EchoHandler>(std::string(u), std::string(o));
  });
  Error e = error_of([&] { r.open("foo://x"); });
  CHECK(e.code() == ErrorCode::kNotFound);
  CHECK(std::string(e.what()) ==
        "No handler for scheme 'foo' in URL 'foo://x'. Available schemes: file, memory. Plugin "
        "folders searched: " +
            empty.path.string() + ".");
  Error none = error_of([&] { r.open("model.json"); });
  CHECK(std::string(none.what()) ==
        "No handler for URL 'model.json': it has no scheme (a URL starts with '<scheme>://'). "
        "Available schemes: file, memory. Plugin folders searched: " +
            empty.path.string() + ". Write the URL with its scheme, e.g. 'file://model.json'.");
  CHECK(r.searched_folders() == std::vector<std::filesystem::path>{empty.path});
  CHECK(error_of([&] { r.add_plugin_folder(empty.path / "missing"); }).code() ==
        ErrorCode::kNotFound);
}

TEST_CASE("a broken manifest is reported, and the rest of its folder still works") {
  test::TempDir dir;
  dir.write("stowage-broken.json", R"({"manifest_version": 1, "name": "broken"})");
  dir.write("not-a-manifest.json", "{");
  std::filesystem::copy_file(manifest("simple"), dir.path / "stowage-simple.json");
  std::filesystem::copy_file(library("simple"), dir.path / "libstowage_simple.so");
  Registry r;
  r.add_plugin_folder(dir.path);
  auto all = r.plugins();
  REQUIRE(all.size() == 2);
  auto broken = find_plugin(all, "broken");
  REQUIRE(broken);
  CHECK(broken->schemes.empty());
  CHECK(r.open("simple://x")->can_load());
  Error e = error_of([&] { r.open("nope://x"); });
  CHECK(contains(e.what(), "Plugin manifests that could not be read: " +
                               (dir.path / "stowage-broken.json").string() + ": version: missing"));
  CHECK_THROWS_AS(r.add_plugin(dir.path / "stowage-broken.json"), Error);
}

TEST_CASE("of two plugins with one name, the higher source wins") {
  test::TempDir low, high;
  auto copy_manifest = [](const test::TempDir& d) {
    std::string text = R"({"manifest_version":1,"name":"testmem","version":"1.2.3","library":")" +
                       library("testmem").string() +
                       R"(","abi":{"major":1,"minor":0},"schemes":["testmem"]})";
    d.write("stowage-testmem.json", text);
  };
  copy_manifest(low);
  copy_manifest(high);
  Registry r;
  r.add_plugin_folder(low.path, "default");
  r.add_plugin_folder(high.path, "STOWAGE_PLUGIN_PATH");
  auto all = r.plugins();
  REQUIRE(all.size() == 1);
  CHECK(all[0].source == "STOWAGE_PLUGIN_PATH");
  CHECK(all[0].manifest == high.path / "stowage-testmem.json");
  r.add_plugin_folder(plugin_dir(), "default");  // lower again: ignored
  CHECK(find_plugin(r.plugins(), "testmem")->manifest == high.path / "stowage-testmem.json");
  CHECK(r.open("testmem://x")->can_list());
}

TEST_CASE("discover_defaults reads STOWAGE_CONFIG, STOWAGE_PLUGIN_PATH and the default folders") {
  test::TempDir cfg;
  cfg.write("stowage.json",
            R"({"aliases": {"viaconfig": "testmem"}, "allow": ["testmem", "simple"]})");
  const std::string path = plugin_dir().string() + "::" + (cfg.path / "none").string();
  ::setenv("STOWAGE_PLUGIN_PATH", path.c_str(), 1);
  ::setenv("STOWAGE_CONFIG", (cfg.path / "stowage.json").c_str(), 1);
  Registry r;
  r.discover_defaults();
  ::unsetenv("STOWAGE_PLUGIN_PATH");
  ::unsetenv("STOWAGE_CONFIG");

  auto tm = find_plugin(r.plugins(), "testmem");
  REQUIRE(tm);
  CHECK(tm->source == "STOWAGE_PLUGIN_PATH");
  CHECK_FALSE(find_plugin(r.plugins(), "dupa")->allowed);
  CHECK(r.open("viaconfig://" + unique("env"))->url().rfind("testmem://", 0) == 0);
  auto folders = r.searched_folders();
  REQUIRE(folders.size() >= 3);
  CHECK(folders[0] == plugin_dir());
  CHECK(folders[1] == cfg.path / "none");
  // The folder beside the executable: <build>/bin/../lib/stowage/plugins.
  CHECK(folders[2].filename() == "plugins");
  CHECK(folders[2].parent_path().filename() == "stowage");
  for (const auto& f : folders) CHECK(f.is_absolute());
}

TEST_CASE("eight threads opening and loading at once load the plugin once") {
  // testmemst is loaded by no other test of this program.
  Registry r;
  r.add_plugin(manifest("testmemst"));
  const std::string url = "testmemst://" + unique("threads");
  auto calls = host::entry_function_calls();
  std::vector<std::thread> threads;
  std::vector<std::shared_ptr<const host::LoadedPlugin>> plugins(8);
  std::atomic<int> failures{0};
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      try {
        auto h = r.open(url);
        plugins[i] = dynamic_cast<host::PluginHandler&>(*h).plugin();
        h->save(test::sample_model());
        h->load();
      } catch (const std::exception& e) {
        MESSAGE(e.what());
        failures.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(failures.load() == 0);
  CHECK(host::entry_function_calls() == calls + 1);
  for (const auto& p : plugins) CHECK(p == plugins[0]);
  // A second registry shares the process's one copy of the plugin.
  Registry other;
  other.add_plugin(manifest("testmemst"));
  auto h = other.open(url);
  CHECK(dynamic_cast<host::PluginHandler&>(*h).plugin() == plugins[0]);
  CHECK(host::entry_function_calls() == calls + 1);
  h->remove();
}

TEST_CASE("route tells which plugin serves a URL, after aliases, without loading it") {
  Registry r;
  r.add_plugin_folder(plugin_dir());
  Config c;
  c.aliases["models"] = "simple://shelf";
  c.aliases["s"] = "models";
  r.apply_config(c);
  Route route = r.route("s://a/b");
  CHECK(route.url == "simple://shelf/a/b");
  CHECK(route.scheme == "simple");
  CHECK(route.aliases == std::vector<std::string>{"s", "models"});
  CHECK_FALSE(route.in_process);
  CHECK(route.plugin.name == "simple");
  CHECK(route.plugin.manifest == manifest("simple"));
  CHECK_FALSE(route.plugin.loaded);
  CHECK_FALSE(find_plugin(r.plugins(), "simple")->loaded);
  CHECK(r.open("s://a/b")->url() == route.url);
  CHECK(r.route("simple://x").plugin.loaded);

  // The same errors as open: a poisoned scheme, an unknown one, no scheme.
  Error dup = error_of([&] { r.route("dup://m"); });
  CHECK(dup.code() == ErrorCode::kInvalidArgument);
  CHECK(contains(dup.what(), "is claimed by more than one plugin"));
  CHECK(error_of([&] { r.route("nobody://m"); }).code() == ErrorCode::kNotFound);
  CHECK(error_of([&] { r.route("no-scheme"); }).code() == ErrorCode::kNotFound);
  Config pick;
  pick.scheme_plugins["dup"] = "dupb";
  r.apply_config(pick);
  CHECK(r.route("dup://m").plugin.name == "dupb");

  r.register_scheme("echo", [](std::string_view u, std::string_view o) {
    return std::make_unique<EchoHandler>(std::string(u), std::string(o));
  });
  Route echo = r.route("echo://x");
  CHECK(echo.in_process);
  CHECK(echo.plugin.name.empty());
}

TEST_CASE("Registry::global discovers once") {
  Registry& a = Registry::global();
  Registry& b = Registry::global();
  CHECK(&a == &b);
  CHECK_FALSE(a.searched_folders().empty());
}

}  // namespace
}  // namespace stowage
