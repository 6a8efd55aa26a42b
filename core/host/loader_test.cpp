// The plugin loader, the host side of the ABI and PluginHandler, exercised
// with real plugin libraries loaded from their manifests.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstddef>
#include <thread>

#include "file_hash_internal.hpp"
#include "host_api_internal.hpp"
#include "json_util_internal.hpp"
#include "manifest_internal.hpp"
#include "plugin_handler_internal.hpp"
#include "plugin_loader_internal.hpp"
#include "stowage/weights.hpp"
#include "testing/host_test_support.hpp"

namespace stowage::host {
namespace {

using namespace std::chrono_literals;
using test::contains;
using test::error_of;
using test::file_sha256;
using test::library;
using test::manifest;
using test::unique;

std::shared_ptr<LoadedPlugin> load(const std::string& name, std::vector<std::string> pins = {}) {
  Manifest m = read_manifest(manifest(name));
  return load_plugin({m.library, &m, std::move(pins)});
}

// A counter from the test store's "__stats__" model.
int64_t stat(const std::shared_ptr<LoadedPlugin>& plugin, const char* key) {
  PluginHandler h(plugin, plugin->schemes[0] + "://__stats__", "{}");
  ModelArtifacts a = h.load();
  auto doc = parse_json(*a.model_topology, "stats");
  return doc[key].GetInt64();
}

RetryPolicy fast_policy() {
  RetryPolicy p;
  p.initial_backoff = 1ms;
  p.max_backoff = 2ms;
  return p;
}

TEST_CASE("manifests are strict and resolve the library beside them") {
  Manifest m = read_manifest(manifest("testmem"));
  CHECK(m.name == "testmem");
  CHECK(m.version == "1.2.3");
  CHECK(m.library == library("testmem"));
  CHECK(m.abi_major == 1);
  CHECK(m.schemes == std::vector<std::string>{"testmem"});

  const std::string good =
      R"("manifest_version":1,"name":"x","version":"1","library":"libx.so","abi":{"major":1,"minor":0},"schemes":["x"])";
  CHECK(parse_manifest("{" + good + "}", "/p/stowage-x.json").library == "/p/libx.so");
  CHECK(parse_manifest("{" + good + R"(,"library":"/abs/libx.so"})", "/p/m.json").library ==
        "/abs/libx.so");
  struct Case {
    std::string json;
    const char* message;
  };
  const Case cases[] = {
      {"{" + good + R"(,"install_hint":"x"})", "/p/m.json: install_hint: unknown key"},
      {R"({"manifest_version":1})", "/p/m.json: name: missing"},
      {"{" + good + R"(,"manifest_version":2})",
       "manifest_version: this host reads manifest version 1, not 2"},
      {"{" + good + R"(,"schemes":["X"]})", "schemes[0]: 'X' is not a valid lowercase scheme"},
      {"{" + good + R"(,"schemes":[]})", "schemes: expected at least one scheme"},
      {"{" + good + R"(,"abi":{"major":1}})", "abi.minor: missing"},
      {"{" + good + R"(,"abi":{"major":-1,"minor":0}})",
       "abi.major: expected a non-negative integer"},
      {"{" + good + R"(,"name":7})", "name: expected a string, got a number"},
      {"{" + good + R"(,"commands":["x"]})", "commands: expected an object, got an array"},
      {"{" + good + R"(,"commands":{"Copy":"x"}})", "commands.Copy: 'Copy' is not a command name"},
      {"{" + good + R"(,"commands":{"x":"../bin/x"}})",
       "commands.x: '../bin/x' is not a bare file name beside the manifest"},
      {"{" + good + R"(,"commands":{"x":"/usr/bin/x"}})",
       "commands.x: '/usr/bin/x' is not a bare file name beside the manifest"},
      {"{" + good + R"(,"commands":{"x":".."}})", "commands.x: '..' is not a bare file name"},
      {"{" + good + R"(,"commands":{"x":"a\\b"}})", "is not a bare file name"},
      {"{" + good + R"(,"commands":{"x":""}})", "commands.x: expected a non-empty string"},
      {"{" + good + R"(,"commands":{"x":"a","x":"b"}})", "commands.x: 'x' is listed twice"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.json);
    Error e = error_of([&] { parse_manifest(c.json, "/p/m.json"); });
    CHECK(e.code() == ErrorCode::kInvalidArgument);
    CHECK_MESSAGE(contains(e.what(), c.message), e.what());
  }
  // Commands are optional; each program lies beside the manifest.
  CHECK(parse_manifest("{" + good + "}", "/p/m.json").commands.empty());
  const Manifest with =
      parse_manifest("{" + good + R"(,"commands":{"x":"stowage-x","x-2":"run.sh"}})", "/p/m.json");
  CHECK(with.commands ==
        std::map<std::string, std::filesystem::path>{{"x", "/p/stowage-x"}, {"x-2", "/p/run.sh"}});
  CHECK(plugin_name_from_manifest_file("/a/stowage-s3.json") == "s3");
  CHECK(plugin_name_from_manifest_file("/a/stowage-.json").empty());
  CHECK(plugin_name_from_manifest_file("/a/s3.json").empty());
}

TEST_CASE("a good plugin loads once, with host-owned copies of its tables") {
  auto before = entry_function_calls();
  auto p = load("testmem");
  CHECK(p->name == "testmem");
  CHECK(p->version == "1.2.3");
  CHECK(p->schemes == std::vector<std::string>{"testmem"});
  CHECK(p->abi_major == STOWAGE_ABI_MAJOR);
  CHECK(p->capability_names() ==
        std::vector<std::string>{"load", "save", "list", "remove", "zero_copy"});
  CHECK(p->ops.struct_size == sizeof(stowage_ops));
  auto again = load("testmem");
  CHECK(again == p);  // the entry function ran once
  CHECK(entry_function_calls() - before <= 1);
  CHECK(stat(p, "entry_calls") == 1);
}

TEST_CASE("plugins that break the ABI are refused with the file and the reason") {
  struct Case {
    const char* plugin;
    std::vector<std::string> parts;
  };
  const Case cases[] = {
      {"noentry", {"does not export the entry symbol 'stowage_plugin_entry_v1'"}},
      {"abitwo", {"built for plugin ABI major version 2", "this host speaks ABI 1.5"}},
      {"liar",
       {"plugin 'liar' declares capability 'list' but its ops table has no 'list' function"}},
      {"nulldesc", {"entry function stowage_plugin_entry_v1 returned NULL"}},
      {"tiny", {"descriptor struct_size", "is too small"}},
      {"misname", {"it calls itself 'othername' but its manifest", "names it 'misname'"}},
      {"misscheme", {"serves schemes [misscheme, extra] but its manifest", "lists [misscheme]"}},
  };
  for (const auto& c : cases) {
    CAPTURE(c.plugin);
    Error e = error_of([&] { load(c.plugin); });
    CHECK(e.code() == ErrorCode::kInvalidArgument);
    std::string msg = e.what();
    CHECK_MESSAGE(contains(msg, "plugin library '" + library(c.plugin).string() + "' refused"),
                  msg);
    for (const auto& part : c.parts) CHECK_MESSAGE(contains(msg, part), msg);
    // Refused for good: a second attempt gives the same answer without
    // running the plugin's code again.
    auto calls = entry_function_calls();
    Error again = error_of([&] { load(c.plugin); });
    CHECK(std::string(again.what()) == msg);
    CHECK(entry_function_calls() == calls);
  }
  Error abi = error_of([&] { load("manifestabi"); });
  CHECK(contains(abi.what(), "declares plugin ABI 2.0; this host speaks ABI 1.5"));
  CHECK(contains(abi.what(), manifest("manifestabi").string()));
  CHECK(contains(abi.what(), "the library was not loaded"));

  Error missing = error_of([] { load_plugin({"/nonexistent/libstowage_x.so", nullptr, {}}); });
  CHECK(missing.code() == ErrorCode::kNotFound);
  CHECK(contains(missing.what(), "'/nonexistent/libstowage_x.so'"));
}

TEST_CASE("descriptors are checked field by field and copied clamped to their size") {
  static const char* const schemes[] = {"fake"};
  static stowage_ops ops{};
  ops.struct_size = sizeof ops;
  ops.open = [](const char*, size_t, const char*, size_t, stowage_handler**, stowage_status*) {};
  ops.close = [](stowage_handler*) {};
  ops.list = [](stowage_handler*, const stowage_call*, stowage_sink*, stowage_status*) {};

  // A descriptor from a later 1.x minor: bigger than ours, with unknown tail.
  struct Future {
    stowage_plugin_desc desc;
    uint64_t future_field;
  } future{};
  future.desc = {sizeof(Future), 1, 7, 1, "fake", "9", schemes, STOWAGE_CAP_LOAD, &ops, nullptr};
  future.future_field = ~0ull;
  ops.load = [](stowage_handler*, const stowage_call*, stowage_sink*, stowage_status*) {};
  auto p = adopt_descriptor(&future.desc, "/x/libfake.so");
  CHECK(p->abi_minor == 7);
  CHECK((p->ops.load != nullptr));
  CHECK((p->ops.list == nullptr));  // present but not declared: never called
  CHECK_FALSE(p->has(STOWAGE_CAP_LIST));

  stowage_plugin_desc d = future.desc;
  d.struct_size = sizeof d;
  d.ops = nullptr;
  CHECK(contains(error_of([&] { adopt_descriptor(&d, "/x/l.so"); }).what(), "has no ops table"));
  d.ops = &ops;
  d.scheme_count = 0;
  CHECK(contains(error_of([&] { adopt_descriptor(&d, "/x/l.so"); }).what(), "declares no schemes"));
  static const char* const bad_schemes[] = {"Bad://"};
  d.scheme_count = 1;
  d.schemes = bad_schemes;
  CHECK(contains(error_of([&] { adopt_descriptor(&d, "/x/l.so"); }).what(),
                 "declares an invalid scheme 'Bad://'"));
  d.schemes = schemes;
  d.capabilities = STOWAGE_CAP_SAVE;
  CHECK(contains(error_of([&] { adopt_descriptor(&d, "/x/l.so"); }).what(),
                 "declares capability 'save' but its ops table has no 'save' function"));
  d.capabilities = STOWAGE_CAP_REMOVE;
  CHECK(contains(error_of([&] { adopt_descriptor(&d, "/x/l.so"); }).what(),
                 "declares capability 'remove' but its ops table has no 'remove' function"));
  stowage_ops small = ops;
  small.struct_size = offsetof(stowage_ops, list);
  d.capabilities = 0;
  d.ops = &small;
  CHECK(
      contains(error_of([&] { adopt_descriptor(&d, "/x/l.so"); }).what(), "ops table struct_size"));
  stowage_ops no_close = ops;
  no_close.close = nullptr;
  d.ops = &no_close;
  CHECK(contains(error_of([&] { adopt_descriptor(&d, "/x/l.so"); }).what(),
                 "has no 'close' function"));
}

// An ops table with open, close, load and save that do nothing: for
// descriptors checked, never called.
stowage_ops load_save_ops() {
  stowage_ops ops{};
  ops.struct_size = sizeof ops;
  ops.open = [](const char*, size_t, const char*, size_t, stowage_handler**, stowage_status*) {};
  ops.close = [](stowage_handler*) {};
  ops.load = [](stowage_handler*, const stowage_call*, stowage_sink*, stowage_status*) {};
  ops.save = [](stowage_handler*, const stowage_artifacts*, const stowage_call*, stowage_sink*,
                stowage_status*) {};
  return ops;
}

TEST_CASE("per-scheme capabilities: each scheme has its own bits, checked against the ops") {
  static const char* const schemes[] = {"full", "saveonly"};
  static const stowage_ops ops = load_save_ops();
  static uint64_t bits[] = {STOWAGE_CAP_LOAD | STOWAGE_CAP_SAVE,
                            STOWAGE_CAP_SAVE | STOWAGE_CAP_SINGLE_THREADED};
  stowage_plugin_desc d{};
  d.struct_size = sizeof d;
  d.abi_major = 1;
  d.abi_minor = 1;
  d.scheme_count = 2;
  d.name = "fake";
  d.version = "1";
  d.schemes = schemes;
  d.capabilities = STOWAGE_CAP_LOAD | STOWAGE_CAP_SAVE;
  d.ops = &ops;
  d.scheme_capabilities = bits;
  auto p = adopt_descriptor(&d, "/x/l.so");
  CHECK(p->capabilities_of("full") == (STOWAGE_CAP_LOAD | STOWAGE_CAP_SAVE));
  // SINGLE_THREADED belongs to the library: read from the plugin-wide bits only.
  CHECK(p->capabilities_of("saveonly") == STOWAGE_CAP_SAVE);
  CHECK_FALSE(p->has(STOWAGE_CAP_SINGLE_THREADED));
  CHECK(p->capabilities_of("other") == 0);
  CHECK(LoadedPlugin::capability_names_of(p->capabilities_of("saveonly")) ==
        std::vector<std::string>{"save"});

  // The plugin's bits are the union over its schemes, whatever `capabilities` says.
  d.capabilities = STOWAGE_CAP_SINGLE_THREADED;
  p = adopt_descriptor(&d, "/x/l.so");
  CHECK(p->capabilities == (STOWAGE_CAP_LOAD | STOWAGE_CAP_SAVE | STOWAGE_CAP_SINGLE_THREADED));
  CHECK((p->ops.load != nullptr));

  // A scheme may not claim what the ops table lacks, even if another scheme does not.
  bits[1] = STOWAGE_CAP_SAVE | STOWAGE_CAP_STAT;
  Error e = error_of([&] { adopt_descriptor(&d, "/x/l.so"); });
  CHECK(e.code() == ErrorCode::kInvalidArgument);
  CHECK(contains(e.what(),
                 "plugin 'fake' declares capability 'stat' but its ops table has no 'stat' "
                 "function (scheme 'saveonly')"));
  bits[1] = STOWAGE_CAP_LIST;
  CHECK(contains(error_of([&] { adopt_descriptor(&d, "/x/l.so"); }).what(),
                 "declares capability 'list' but its ops table has no 'list' function (scheme "
                 "'saveonly')"));

  // A 1.0 descriptor ends before scheme_capabilities: whatever follows it in
  // memory is never read, and every scheme gets the plugin-wide bits.
  d.struct_size = offsetof(stowage_plugin_desc, scheme_capabilities);
  d.capabilities = STOWAGE_CAP_LOAD;
  p = adopt_descriptor(&d, "/x/l.so");
  CHECK(p->capabilities_of("full") == STOWAGE_CAP_LOAD);
  CHECK(p->capabilities_of("saveonly") == STOWAGE_CAP_LOAD);
  CHECK((p->ops.save == nullptr));  // undeclared everywhere: never called
}

TEST_CASE("a streaming form is refused without its operation, and ignored from a 1.0 plugin") {
  static const char* const schemes[] = {"full", "saveonly"};
  static const stowage_ops ops = load_save_ops();
  static uint64_t bits[2] = {};
  stowage_plugin_desc d{};
  d.struct_size = sizeof d;
  d.abi_major = 1;
  d.abi_minor = 1;
  d.scheme_count = 2;
  d.name = "fake";
  d.version = "1";
  d.schemes = schemes;
  d.ops = &ops;
  d.scheme_capabilities = bits;

  // The ops table has load, but this scheme does not declare it: streaming
  // loads would be a promise about an operation the scheme refuses.
  bits[0] = STOWAGE_CAP_LOAD | STOWAGE_CAP_SAVE | STOWAGE_CAP_STREAMING_LOAD;
  bits[1] = STOWAGE_CAP_SAVE | STOWAGE_CAP_STREAMING_LOAD;
  Error e = error_of([&] { adopt_descriptor(&d, "/x/l.so"); });
  CHECK(e.code() == ErrorCode::kInvalidArgument);
  CHECK(contains(e.what(),
                 "plugin 'fake' declares capability 'streaming_load' but not 'load' (scheme "
                 "'saveonly')"));
  bits[1] = STOWAGE_CAP_LOAD | STOWAGE_CAP_STREAMING_SAVE;
  CHECK(contains(error_of([&] { adopt_descriptor(&d, "/x/l.so"); }).what(),
                 "declares capability 'streaming_save' but not 'save' (scheme 'saveonly')"));

  // Declared with their operations, the forms are kept per scheme.
  bits[1] = STOWAGE_CAP_SAVE | STOWAGE_CAP_STREAMING_SAVE;
  auto p = adopt_descriptor(&d, "/x/l.so");
  CHECK(p->capabilities_of("full") ==
        (STOWAGE_CAP_LOAD | STOWAGE_CAP_SAVE | STOWAGE_CAP_STREAMING_LOAD));
  CHECK(p->capabilities_of("saveonly") == (STOWAGE_CAP_SAVE | STOWAGE_CAP_STREAMING_SAVE));

  // Bits 8 and 9 had no meaning in ABI 1.0: a 1.0 plugin setting them gets
  // the 1.0 forms rather than a pull source it cannot read.
  d.abi_minor = 0;
  d.struct_size = offsetof(stowage_plugin_desc, scheme_capabilities);
  d.capabilities =
      STOWAGE_CAP_LOAD | STOWAGE_CAP_SAVE | STOWAGE_CAP_STREAMING_SAVE | STOWAGE_CAP_STREAMING_LOAD;
  p = adopt_descriptor(&d, "/x/l.so");
  CHECK(p->capabilities == (STOWAGE_CAP_LOAD | STOWAGE_CAP_SAVE));
  CHECK(p->capabilities_of("full") == (STOWAGE_CAP_LOAD | STOWAGE_CAP_SAVE));
}

TEST_CASE("a SHA-256 pin loads the very bytes it checked, and a wrong pin loads nothing") {
  const std::string actual = file_sha256(library("simple"));
  const std::string wrong(64, '0');
  auto calls = entry_function_calls();
  Error e = error_of([&] { load("simple", {wrong}); });
  CHECK(e.code() == ErrorCode::kPermissionDenied);
  CHECK(contains(e.what(), "'" + library("simple").string() + "'"));
  CHECK(contains(e.what(), "expected " + wrong + ", actual " + actual));
  CHECK(entry_function_calls() == calls);  // nothing ran

  auto p = load("simple", {actual});
  CHECK(p->name == "simple");
  REQUIRE(p->sha256);
  CHECK(*p->sha256 == actual);
  // Once loaded, a pin is still checked against the file.
  CHECK(error_of([&] { load("simple", {wrong}); }).code() == ErrorCode::kPermissionDenied);
}

TEST_CASE("save and load share buffers without copying, and load validates") {
  auto p = load("testmem");
  const std::string url = "testmem://" + unique("roundtrip");
  const auto refs_before = live_host_references();
  ModelArtifacts model = test::sample_model();
  {
    PluginHandler h(p, url, "{}");
    CHECK(h.can_save());
    CHECK(h.can_load());
    SaveResult r = h.save(model);
    REQUIRE(r.responses);
    CHECK(contains(*r.responses, "\"stored\""));
    CHECK(r.model_artifacts_info.weight_data_bytes == 12u);
    CHECK(r.model_artifacts_info.model_topology_bytes == model.model_topology->size());

    ModelArtifacts back = h.load();
    CHECK(back.model_topology == model.model_topology);
    CHECK(back.format == model.format);
    CHECK(back.generated_by == model.generated_by);
    CHECK(back.user_defined_metadata == model.user_defined_metadata);
    REQUIRE(back.weight_specs);
    CHECK(*back.weight_specs == *model.weight_specs);
    REQUIRE(back.weight_data);
    REQUIRE(back.weight_data->size() == 2);
    CHECK(test::bytes_of(*back.weight_data) == test::bytes_of(*model.weight_data));
    // Zero copy through the plugin: the same bytes, the same labels.
    CHECK((*back.weight_data)[0].data() == (*model.weight_data)[0].data());
    CHECK((*back.weight_data)[1].data() == (*model.weight_data)[1].data());
    CHECK((*back.weight_data)[0].label() == "first");

    auto listed = h.list();
    REQUIRE(listed.size() == 1);
    CHECK(listed[0].url == url);
    CHECK(listed[0].info.weight_data_bytes == 12u);
    CHECK(iso_date(listed[0].info.date_saved) == "2024-01-02T03:04:05.678Z");

    ModelArtifactsInfo removed = h.remove();
    CHECK(removed.weight_data_bytes == 12u);
    Error gone = error_of([&] { h.load(); });
    CHECK(gone.code() == ErrorCode::kNotFound);
    CHECK(std::string(gone.what()) == "testmem: no model at '" + url + "'");
    CHECK(error_of([&] { h.remove(); }).code() == ErrorCode::kNotFound);
  }
  // The store let go of its references with the model.
  CHECK(live_host_references() == refs_before);
}

TEST_CASE("buffers a plugin owns are released once the host is done with them") {
  auto p = load("testmem");
  const std::string url = "testmem://" + unique("owned");
  PluginHandler(p, url, "{}").save(test::sample_model());
  const auto baseline = stat(p, "live_own_buffers");
  {
    PluginHandler h(p, url, R"({"copy_buffers": true})");
    ModelArtifacts a = h.load();
    CHECK(stat(p, "live_own_buffers") == baseline + 2);
    CHECK(test::bytes_of(*a.weight_data) == test::bytes_of(*test::sample_model().weight_data));
    WeightData kept = *a.weight_data;  // copies share the owner
    a = ModelArtifacts();
    CHECK(stat(p, "live_own_buffers") == baseline + 2);
    kept.clear();
    CHECK(stat(p, "live_own_buffers") == baseline);
  }
  PluginHandler(p, url, "{}").remove();
}

TEST_CASE("every load checks the weight bytes against the specs") {
  auto p = load("testmem");
  const std::string url = "testmem://" + unique("short");
  PluginHandler(p, url, "{}").save(test::sample_model());
  PluginHandler h(p, url, R"({"truncate_weights": 1})");
  Error e = error_of([&] { h.load(); });
  CHECK(e.code() == ErrorCode::kDataLoss);
  CHECK(contains(e.what(), url));
  PluginHandler(p, url, "{}").remove();
}

TEST_CASE("sink_put_buffer from a scheme without STREAMING_LOAD is a misuse, reported as such") {
  auto p = load("testmem");
  REQUIRE((p->capabilities_of("testmem") & STOWAGE_CAP_STREAMING_LOAD) == 0);
  const std::string url = "testmem://" + unique("put-undeclared");
  PluginHandler(p, url, "{}").save(test::sample_model());
  const std::string expected =
      "plugin 'testmem' broke the ABI in load of '" + url +
      "': sink_put_buffer was called by a load whose scheme does not declare "
      "STOWAGE_CAP_STREAMING_LOAD (use sink_add_buffer, or declare the capability)";
  PluginHandler h(p, url, R"({"put_buffers": true})");
  Error e = error_of([&] { h.load(); });
  CHECK(e.code() == ErrorCode::kInternal);
  CHECK(std::string(e.what()) == expected);

  // The same into a stream (the source side of a streaming copy).
  ModelStream stream(1 << 20);
  e = error_of([&] { h.load_into(stream); });
  CHECK(e.code() == ErrorCode::kInternal);
  CHECK(std::string(e.what()) == expected);

  // A scheme that declares it may put.
  const auto refs = live_host_references();
  stowage_sink sink(stowage_sink::Kind::kLoad);
  static const uint8_t bytes[] = {1, 2, 3, 4};
  stowage_buffer b{bytes, 4, nullptr, nullptr, "b"};
  CHECK(host_api()->sink_put_buffer(&sink, 0, &b) != 0);
  CHECK(sink.misuse.find("does not declare STOWAGE_CAP_STREAMING_LOAD") != std::string::npos);
  stowage_sink streaming(stowage_sink::Kind::kLoad);
  streaming.may_put = true;
  stowage_buffer c{bytes, 4, nullptr, nullptr, "c"};
  CHECK(host_api()->sink_put_buffer(&streaming, 0, &c) == 0);
  CHECK(streaming.misuse.empty());
  REQUIRE(streaming.buffers.size() == 1);
  CHECK(streaming.buffers[0].size() == 4);
  CHECK(live_host_references() == refs);
  PluginHandler(p, url, "{}").remove();
}

TEST_CASE("the call context reaches the plugin: progress, cancellation, deadline, converter") {
  auto p = load("testmem");
  const std::string url = "testmem://" + unique("ctx");
  PluginHandler h(p, url, "{}");

  std::vector<std::pair<uint64_t, uint64_t>> seen;
  CallContext progress;
  progress.on_progress = [&](uint64_t done, uint64_t total) { seen.emplace_back(done, total); };
  h.save(test::sample_model(), progress);
  REQUIRE(!seen.empty());
  CHECK(seen.back() == std::make_pair<uint64_t, uint64_t>(12, 12));
  seen.clear();
  h.load(progress);
  REQUIRE(!seen.empty());
  CHECK(seen.back() == std::make_pair<uint64_t, uint64_t>(12, 12));

  CallContext cancel;
  cancel.is_cancelled = [] { return true; };
  Error c = error_of([&] { h.load(cancel); });
  CHECK(c.code() == ErrorCode::kCancelled);
  CHECK(contains(c.what(), "cancelled"));

  CallContext late;
  late.deadline = std::chrono::system_clock::now() - 1s;
  CHECK(error_of([&] { h.load(late); }).code() == ErrorCode::kDeadlineExceeded);

  // A progress callback that throws stops the call with its own error.
  CallContext throwing;
  throwing.on_progress = [](uint64_t, uint64_t) { throw Error(ErrorCode::kAlreadyExists, "stop"); };
  Error t = error_of([&] { h.load(throwing); });
  CHECK(t.code() == ErrorCode::kAlreadyExists);
  CHECK(std::string(t.what()) == "stop");

  PluginHandler conv(p, url, R"({"convert_weight_url": true})");
  CallContext with;
  with.weight_url_converter = [](std::string_view path) -> std::optional<std::string> {
    return "https://cdn.example/" + std::string(path);
  };
  CHECK(conv.load(with).user_defined_metadata ==
        R"({"converted":"https://cdn.example/weights.bin"})");
  CHECK(conv.load().user_defined_metadata == R"({"converted":null})");
  CallContext failing;
  failing.weight_url_converter = [](std::string_view) -> std::optional<std::string> {
    throw Error(ErrorCode::kPermissionDenied, "no such CDN");
  };
  Error f = error_of([&] { conv.load(failing); });
  CHECK(f.code() == ErrorCode::kPermissionDenied);
  CHECK(std::string(f.what()) == "no such CDN");
  h.remove();
}

TEST_CASE("open fails with the plugin's message; unknown status codes become internal") {
  auto p = load("testmem");
  Error opt = error_of([&] { PluginHandler(p, "testmem://x", R"({"colour": "red"})"); });
  CHECK(opt.code() == ErrorCode::kInvalidArgument);
  CHECK(std::string(opt.what()) == "testmem: unknown option 'colour'");

  PluginHandler h(p, "testmem://" + unique("code"),
                  R"({"fail_times": 1, "fail_code": 42, "fail_retryable": false})");
  Error e = error_of([&] { h.list(); });
  CHECK(e.code() == ErrorCode::kInternal);
  CHECK(contains(e.what(), "plugin reported unknown status code 42: testmem: injected failure"));
}

TEST_CASE("a plugin without an operation fails like a TF.js handler without the method") {
  auto p = load("simple");
  PluginHandler h(p, "simple://m", "{}");
  CHECK_FALSE(h.can_save());
  CHECK_FALSE(h.can_remove());
  Error s = error_of([&] { h.save(test::sample_model()); });
  CHECK(s.code() == ErrorCode::kUnimplemented);
  CHECK(std::string(s.what()) ==
        "Saving cannot proceed because the IOHandler for 'simple://m' does not have the `save` "
        "attribute defined.");
  CHECK(contains(error_of([&] { h.remove(); }).what(),
                 "does not have the `remove` method implemented"));
  // Its load works: a topology-only model passes validation.
  ModelArtifacts a = h.load();
  CHECK(a.model_topology == R"({"plugin":"simple","url":"simple://m"})");
}

TEST_CASE("failures marked retryable are retried; others are not") {
  auto p = load("testmem");
  const std::string url = "testmem://" + unique("retry");
  PluginHandler(p, url, "{}").save(test::sample_model());

  PluginHandler flaky(p, url, R"({"fail_times": 2, "fail_op": "load"})");
  flaky.set_retry_policy(fast_policy());
  CHECK(test::bytes_of(*flaky.load().weight_data).size() == 12);

  PluginHandler down(p, url, R"({"fail_times": 10, "fail_op": "load"})");
  down.set_retry_policy(fast_policy());
  Error e = error_of([&] { down.load(); });
  CHECK(e.code() == ErrorCode::kUnavailable);
  CHECK(e.retryable());
  CHECK(contains(e.what(), "injected failure 4 of 10 in load"));
  CHECK(contains(e.what(), "(failed after 4 attempts)"));

  PluginHandler fatal(p, url, R"({"fail_times": 1, "fail_op": "save", "fail_retryable": false})");
  fatal.set_retry_policy(fast_policy());
  Error once = error_of([&] { fatal.save(test::sample_model()); });
  CHECK(contains(once.what(), "injected failure 1 of 1 in save"));
  CHECK_FALSE(contains(once.what(), "attempts"));

  // With the default policy (100 ms backoff, full jitter) a retry still ends.
  PluginHandler flaky_default(p, url, R"({"fail_times": 1, "fail_op": "load"})");
  CHECK(flaky_default.load().weight_data->size() == 2);

  PluginHandler cancelled(p, url, R"({"fail_times": 3, "fail_op": "load"})");
  cancelled.set_retry_policy(fast_policy());
  int polls = 0;
  CallContext stop_after_first;
  stop_after_first.is_cancelled = [&] { return ++polls > 1; };
  Error c = error_of([&] { cancelled.load(stop_after_first); });
  CHECK(contains(c.what(), "injected failure 1 of 3"));
  PluginHandler(p, url, "{}").remove();
}

TEST_CASE("calls into a single-threaded plugin are serialised") {
  auto p = load("testmemst");
  CHECK(p->has(STOWAGE_CAP_SINGLE_THREADED));
  const std::string url = "testmemst://" + unique("st");
  PluginHandler(p, url, "{}").save(test::sample_model());
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] {
      try {
        PluginHandler h(p, url, R"({"delay_ms": 5})");
        for (int k = 0; k < 3; ++k) h.load();
      } catch (const std::exception& e) {
        MESSAGE(e.what());
        failures.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(failures.load() == 0);
  CHECK(stat(p, "max_in_flight") == 1);
  PluginHandler(p, url, "{}").remove();
}

TEST_CASE("host services: status, sinks and shared buffers") {
  const stowage_host_api* api = host_api();
  CHECK(api->struct_size == sizeof(stowage_host_api));
  CHECK(api->abi_major == STOWAGE_ABI_MAJOR);

  stowage_status st;
  api->status_set(&st, STOWAGE_UNAVAILABLE, 1, "busy now", 4);
  CHECK(st.failed);
  CHECK(st.code == ErrorCode::kUnavailable);
  CHECK(st.retryable);
  CHECK(st.message == "busy");  // copied, length honoured
  api->status_set(&st, STOWAGE_OK, 0, nullptr, 0);
  CHECK_FALSE(st.failed);

  // A buffer the host does not know is copied by buffer_share.
  static const uint8_t bytes[] = {1, 2, 3};
  stowage_buffer foreign{bytes, 3, nullptr, nullptr, "foreign"};
  stowage_buffer shared{};
  api->buffer_share(&foreign, &shared);
  REQUIRE((shared.release != nullptr));
  CHECK(shared.size == 3);
  CHECK(shared.data != bytes);
  CHECK(std::string(shared.label) == "foreign");
  // Handing it back to a load sink unwraps the host reference.
  stowage_sink sink(stowage_sink::Kind::kLoad);
  const uint8_t* data = shared.data;
  api->sink_add_buffer(&sink, &shared);
  CHECK((shared.release == nullptr));
  REQUIRE(sink.buffers.size() == 1);
  CHECK(sink.buffers[0].data() == data);
  CHECK(sink.buffers[0].label() == "foreign");

  // Misuse is recorded, and the buffer is still released.
  stowage_sink text(stowage_sink::Kind::kText);
  stowage_buffer again{};
  api->buffer_share(&foreign, &again);
  auto refs = live_host_references();
  api->sink_add_buffer(&text, &again);
  CHECK(live_host_references() == refs - 1);
  CHECK(contains(text.misuse, "sink_add_buffer was called on a sink that takes no buffers"));

  stowage_sink* t = api->sink_new_text();
  size_t len = 99;
  CHECK(api->sink_get_text(t, &len) == nullptr);
  CHECK(len == 0);
  api->sink_set_text(t, "abc", 3);
  CHECK(std::string(api->sink_get_text(t, &len)) == "abc");
  CHECK(len == 3);
  api->sink_free(t);
}

}  // namespace
}  // namespace stowage::host
