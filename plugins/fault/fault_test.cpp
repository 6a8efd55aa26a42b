// One table of faults, injected by the fault:// decorator, run against every
// scheme through the real loader: file, memory, localstorage, indexeddb, s3
// (moto_server, started here) and http (`stowage serve`, started here). Each
// scenario asserts the same observable behaviour for every plugin: the
// host's retry budget, the error a user sees, and what is left in the store.
//
//   fault_test                      every scenario, every scheme
//   fault_test -sc='*file*'         one scheme (subcases are named by scheme)
//
// The retry policy is small (4 attempts, 1-5 ms backoff) so the whole run
// takes seconds; the attempts are counted from the decorator's trace.
#include <doctest/doctest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "plugin_test_util.hpp"
#include "serve_process.hpp"
#include "stowage/config.hpp"
#include "stowage/error.hpp"
#include "stowage/registry.hpp"
#include "testing/s3_test_server.hpp"

namespace fs = std::filesystem;
using namespace stowage;
using stowage::testing::contains;
using stowage::testing::error_of;
using stowage::testing::float_model;
using stowage::testing::ramp;
using stowage::testing::weight_bytes;

namespace {

constexpr int kMaxAttempts = 4;
const char* kBucket = "stowage-fault";

Registry& registry() {
  // The decorator and the plugins it wraps, which it opens through this
  // registry. The retry policy comes through the config, as a host sets it.
  static Registry* r = [] {
    Registry* registry = stowage::testing::new_registry(STOWAGE_FAULT_PLUGIN_DIR);
    registry->add_plugin_folder(STOWAGE_PLUGIN_BUILD_DIR);
    registry->apply_config(parse_config(
        R"({"retry":{"max_attempts":)" + std::to_string(kMaxAttempts) +
            R"(,"initial_backoff_ms":1,"max_backoff_ms":5,"total_deadline_ms":20000}})",
        "the test's config", {}));
    return registry;
  }();
  return *r;
}

fs::path scratch() {
  static fs::path dir = [] {
    std::string tmpl = (fs::temp_directory_path() / "stowage-fault-test-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    return fs::path(tmpl);
  }();
  return dir;
}

std::string quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

// One scheme under the decorator: where a model called `name` is saved and
// loaded, and the wrapped URL's options.
struct Target {
  std::string name;  // the subcase name
  std::function<std::string(const std::string&)> save_url;
  std::function<std::string(const std::string&)> load_url;
  std::string inner_options = "{}";
  // memory:// publishes a save in one step and reports its progress after
  // it (and a load's after the bytes are there): a fault raised from a
  // progress report lands after the commit, so the new model stands, as
  // with a lost acknowledgement.
  bool progress_after_commit = false;
};

std::vector<Target>& targets() {
  static std::vector<Target> all = [] {
    std::vector<Target> t;
    const fs::path root = scratch();
    const std::string files = (root / "file").string();
    auto same = [](std::function<std::string(const std::string&)> f) { return f; };
    auto file_url = same([files](const std::string& n) { return "file://" + files + "/" + n; });
    t.push_back({"file", file_url, file_url, R"({"shard_size":1048576,"durable":false})"});
    auto mem_url = same([](const std::string& n) { return "memory://fault-test/" + n; });
    t.push_back({"memory", mem_url, mem_url, "{}", true});
    // A quota above the default 10 MB: the 3 MiB models take 8 MB as base64
    // text in localStorage, twice while a save replaces one.
    const std::string profile = "{\"profile\":" + quote((root / "profile").string()) +
                                ",\"durable\":false,\"quota\":104857600}";
    auto ls_url = same([](const std::string& n) { return "localstorage://fault/" + n; });
    t.push_back({"localstorage", ls_url, ls_url, profile});
    auto idb_url = same([](const std::string& n) { return "indexeddb://fault/" + n; });
    t.push_back({"indexeddb", idb_url, idb_url, profile});

    static std::unique_ptr<s3::testing::S3TestServer> moto;
    moto =
        std::make_unique<s3::testing::S3TestServer>(std::vector<std::string>{"--bucket", kBucket});
    ::setenv("AWS_ACCESS_KEY_ID", moto->access_key_id.c_str(), 1);
    ::setenv("AWS_SECRET_ACCESS_KEY", moto->secret_access_key.c_str(), 1);
    const std::string endpoint = moto->endpoint;
    auto s3_url = same([endpoint](const std::string& n) {
      return std::string("s3://") + kBucket + "/fault/" + n + "?endpoint=" + endpoint;
    });
    t.push_back({"s3", s3_url, s3_url, R"({"shard_size":1048576})"});

    // `stowage serve` over a file:// store, for the whole run.
    static std::unique_ptr<stowage::testing::ServeProcess> serve;
    fs::create_directories(root / "served");
    serve = std::make_unique<stowage::testing::ServeProcess>(
        STOWAGE_CLI_EXE, root / "serve",
        std::vector<std::string>{"--store", "file://" + (root / "served").string()});
    const std::string base = serve->url("/models/");
    t.push_back({"http (stowage serve)", [base](const std::string& n) { return base + n; },
                 [base](const std::string& n) { return base + n + "/model.json"; }});
    return t;
  }();
  return all;
}

// A handler of fault://<url> with the given rules and a fresh trace file.
struct Faulty {
  std::unique_ptr<IOHandler> handler;
  fs::path trace;

  Faulty(const Target& t, const std::string& url, const std::string& faults) {
    static int serial = 0;
    trace = scratch() / ("trace-" + std::to_string(++serial) + ".log");
    std::string options = "{\"inner_options\":" + t.inner_options + ",\"faults\":" + faults +
                          ",\"trace\":" + quote(trace.string()) + "}";
    handler = registry().open("fault://" + url, options);
  }

  std::vector<std::string> lines(const std::string& op) const {
    std::ifstream in(trace);
    std::vector<std::string> out;
    for (std::string line; std::getline(in, line);) {
      if (line.rfind(op + " ", 0) == 0) out.push_back(line);
    }
    return out;
  }
  // Calls of `op` that reached the wrapped plugin.
  size_t forwarded(const std::string& op) const {
    size_t n = 0;
    for (const auto& l : lines(op)) n += l.find(" forwarded=1") != std::string::npos;
    return n;
  }
};

ModelArtifacts old_model() { return float_model(ramp(3000, -7.5f)); }  // 12000 bytes
ModelArtifacts new_model() { return float_model(ramp(3000, 100.0f)); }

// Saves through the decorator with no faults.
void seed(const Target& t, const std::string& name, const ModelArtifacts& model) {
  Faulty clean(t, t.save_url(name), "[]");
  clean.handler->save(model);
}

ModelArtifacts load_clean(const Target& t, const std::string& name) {
  Faulty clean(t, t.load_url(name), "[]");
  return clean.handler->load();
}

std::string what(const Error& e) { return e.what(); }

// Runs body once per scheme, each in a subcase named by it.
void for_every_target(const std::function<void(const Target&)>& body) {
  for (const Target& t : targets()) {
    SUBCASE(t.name.c_str()) { body(t); }
  }
}

}  // namespace

TEST_CASE("retryable failures on the first k < max attempts: the call succeeds on attempt k+1") {
  for_every_target([](const Target& t) {
    const std::string name = "retry-then-ok";
    seed(t, name, old_model());
    const int k = kMaxAttempts - 2;
    Faulty load(t, t.load_url(name),
                R"([{"op":"load","count":)" + std::to_string(k) + R"(,"error":"unavailable"}])");
    ModelArtifacts got = load.handler->load();
    CHECK(weight_bytes(got) == weight_bytes(old_model()));
    CHECK(load.lines("load").size() == static_cast<size_t>(k + 1));
    CHECK(load.forwarded("load") == 1);

    Faulty save(t, t.save_url(name),
                R"([{"op":"save","count":)" + std::to_string(k) + R"(,"error":"unavailable"}])");
    save.handler->save(new_model());
    CHECK(save.lines("save").size() == static_cast<size_t>(k + 1));
    CHECK(save.forwarded("save") == 1);
    CHECK(weight_bytes(load_clean(t, name)) == weight_bytes(new_model()));
  });
}

TEST_CASE("a retryable failure on every attempt: the error comes after exactly max attempts") {
  for_every_target([](const Target& t) {
    const std::string name = "retry-exhausted";
    seed(t, name, old_model());
    Faulty load(t, t.load_url(name), R"([{"op":"load","count":0,"error":"unavailable"}])");
    Error e = error_of([&] { load.handler->load(); });
    CHECK(e.code() == ErrorCode::kUnavailable);
    CHECK(e.retryable());
    CHECK_MESSAGE(contains(e, "failed after " + std::to_string(kMaxAttempts) + " attempts"),
                  what(e));
    CHECK_MESSAGE(contains(e, t.load_url(name)), what(e));
    CHECK(load.lines("load").size() == static_cast<size_t>(kMaxAttempts));
    CHECK(load.forwarded("load") == 0);

    Faulty save(t, t.save_url(name), R"([{"op":"save","count":0,"error":"unavailable"}])");
    e = error_of([&] { save.handler->save(new_model()); });
    CHECK(e.code() == ErrorCode::kUnavailable);
    CHECK_MESSAGE(contains(e, "failed after " + std::to_string(kMaxAttempts) + " attempts"),
                  what(e));
    CHECK(save.lines("save").size() == static_cast<size_t>(kMaxAttempts));
    CHECK(weight_bytes(load_clean(t, name)) == weight_bytes(old_model()));
  });
}

TEST_CASE("a failure that is not retryable: exactly one attempt, the error names URL and cause") {
  for_every_target([](const Target& t) {
    const std::string name = "not-retryable";
    seed(t, name, old_model());
    Faulty load(t, t.load_url(name), R"([{"op":"load","error":"permission_denied"}])");
    Error e = error_of([&] { load.handler->load(); });
    CHECK(e.code() == ErrorCode::kPermissionDenied);
    CHECK_FALSE(e.retryable());
    CHECK_MESSAGE(contains(e, t.load_url(name)), what(e));
    CHECK_MESSAGE(contains(e, "PERMISSION_DENIED"), what(e));
    CHECK_FALSE(contains(e, "attempts"));
    CHECK(load.lines("load").size() == 1);
  });
}

TEST_CASE("an acknowledgement lost after a save: the retried save leaves the new model") {
  for_every_target([](const Target& t) {
    const std::string name = "lost-ack";
    seed(t, name, old_model());
    Faulty save(t, t.save_url(name), R"([{"op":"save","error":"unavailable","when":"after"}])");
    save.handler->save(new_model());
    CHECK(save.lines("save").size() == 2);
    CHECK(save.forwarded("save") == 2);
    CHECK(weight_bytes(load_clean(t, name)) == weight_bytes(new_model()));
  });
}

TEST_CASE("a short read: DATA_LOSS naming the URL and both byte counts, never a half model") {
  for_every_target([](const Target& t) {
    const std::string name = "short-read";
    seed(t, name, old_model());
    Faulty load(t, t.load_url(name), R"([{"op":"load","short_read":4}])");
    Error e = error_of([&] { load.handler->load(); });
    CHECK(e.code() == ErrorCode::kDataLoss);
    CHECK_MESSAGE(contains(e, t.load_url(name)), what(e));
    CHECK_MESSAGE(contains(e, "12000 bytes"), what(e));
    CHECK_MESSAGE(contains(e, "11996 bytes"), what(e));
    CHECK(load.lines("load").size() == 1);  // a wrong size is not retried

    Faulty cut(t, t.load_url(name), R"([{"op":"load","truncate_json":10}])");
    e = error_of([&] { cut.handler->load(); });
    CHECK(e.code() == ErrorCode::kInvalidArgument);
    CHECK_MESSAGE(contains(e, t.load_url(name)), what(e));
  });
}

bool traced(const Faulty& f, const std::string& op, const std::string& what) {
  for (const auto& l : f.lines(op)) {
    if (l.find(" " + what + "=") != std::string::npos) return true;
  }
  return false;
}

TEST_CASE("a response slower than the deadline: DEADLINE_EXCEEDED, in time") {
  for_every_target([](const Target& t) {
    const std::string name = "slow";
    seed(t, name, old_model());
    using namespace std::chrono;
    // The store answers 5 s late; the deadline is 300 ms away.
    Faulty load(t, t.load_url(name), R"([{"op":"load","delay_ms":5000}])");
    CallContext call;
    call.deadline = system_clock::now() + milliseconds(300);
    auto start = steady_clock::now();
    Error e = error_of([&] { load.handler->load(call); });
    CHECK_MESSAGE(e.code() == ErrorCode::kDeadlineExceeded, what(e));
    CHECK(steady_clock::now() - start < milliseconds(3000));

    Faulty save(t, t.save_url(name), R"([{"op":"save","delay_ms":5000}])");
    call.deadline = system_clock::now() + milliseconds(300);
    e = error_of([&] { save.handler->save(new_model(), call); });
    CHECK_MESSAGE(e.code() == ErrorCode::kDeadlineExceeded, what(e));
    CHECK(load.lines("load").size() == 1);  // a deadline is never retried
    CHECK(weight_bytes(load_clean(t, name)) == weight_bytes(old_model()));
  });
}

TEST_CASE("a transfer that stalls past the deadline: DEADLINE_EXCEEDED, nothing half done") {
  for_every_target([](const Target& t) {
    const std::string name = "stall";
    const ModelArtifacts before = float_model(ramp(786432, -3.0f));  // 3 MiB
    const ModelArtifacts after = float_model(ramp(786432, 50.0f));
    seed(t, name, before);
    using namespace std::chrono;
    for (const std::string op : {"load", "save"}) {
      CAPTURE(op);
      const std::string url = op == "load" ? t.load_url(name) : t.save_url(name);
      Faulty f(t, url, R"([{"op":")" + op + R"(","stall_ms":5000}])");
      CallContext call;
      call.deadline = system_clock::now() + milliseconds(500);
      auto start = steady_clock::now();
      std::optional<Error> e;
      std::optional<ModelArtifacts> loaded;
      try {
        if (op == "load") {
          loaded = f.handler->load(call);
        } else {
          f.handler->save(after, call);
        }
      } catch (const Error& err) {
        e = err;
      }
      CHECK(steady_clock::now() - start < milliseconds(4000));
      // "stalled_at=<done>/<total>": the progress report the stall came in.
      // Every plugin reports progress, so the stall always happens.
      std::string at;
      for (const auto& l : f.lines(op)) {
        auto p = l.find(" stalled_at=");
        if (p != std::string::npos) at = l.substr(p + 12, l.find(' ', p + 1) - p - 12);
      }
      INFO("stalled at ", at, ": ", e ? e->what() : std::string("completed"));
      REQUIRE_MESSAGE(!at.empty(), "no progress report: the stall never happened");
      const uint64_t done = std::stoull(at.substr(0, at.find('/')));
      const uint64_t total = std::stoull(at.substr(at.find('/') + 1));
      // Only memory:// reports after the work is done (its first report is
      // its last); every other plugin reports before it moves a byte.
      CHECK(done == (t.progress_after_commit ? total : 0));
      CHECK((done == total && total > 0) == t.progress_after_commit);
      if (op == "load" || !t.progress_after_commit) {
        // A load past its deadline fails wherever it stalled (the kit checks
        // the deadline again after the plugin returns); a save stalled with
        // its work ahead of it fails and publishes nothing.
        REQUIRE(e);
        CHECK_MESSAGE(e->code() == ErrorCode::kDeadlineExceeded, e->what());
        CHECK_FALSE(loaded);
        CHECK(weight_bytes(load_clean(t, name)) == weight_bytes(before));
      } else {
        // A save that stalled after it committed has happened: reporting a
        // failure would be wrong.
        CHECK_FALSE(e);
        CHECK(weight_bytes(load_clean(t, name)) == weight_bytes(after));
        seed(t, name, before);
      }
    }
  });
}

TEST_CASE("a failure in the middle of a save: the old model is still there, intact") {
  for_every_target([](const Target& t) {
    const std::string name = "mid-save";
    // 3 MiB: several shards for file and s3, several writes for http.
    const ModelArtifacts before = float_model(ramp(786432, -3.0f));
    const ModelArtifacts after = float_model(ramp(786432, 50.0f));
    seed(t, name, before);
    Faulty save(t, t.save_url(name),
                R"([{"op":"save","abort_after_bytes":20000,"error":"unavailable",)"
                R"("retryable":false}])");
    std::optional<Error> e;
    try {
      save.handler->save(after);
    } catch (const Error& err) {
      e = err;
    }
    CHECK(save.lines("save").size() == 1);
    REQUIRE(e);
    CHECK(e->code() == ErrorCode::kUnavailable);
    CHECK(traced(save, "save", "aborted_at"));
    const bool stopped = contains(*e, "it stopped with");
    ModelArtifacts now = load_clean(t, name);
    if (t.progress_after_commit) {
      CHECK_MESSAGE(contains(*e, "did not stop and reported success"), e->what());
      CHECK(weight_bytes(now) == weight_bytes(after));
    } else {
      CHECK_MESSAGE(stopped, e->what());  // the plugin honoured the stop
      CHECK_MESSAGE(
          weight_bytes(now) == weight_bytes(before),
          std::string(weight_bytes(now) == weight_bytes(after) ? "the new model was published"
                                                               : "a third model is there"));
    }
  });
}

TEST_CASE("fault:// loads only when named, and its options are strict") {
  // The default plugin folder does not hold it.
  Registry defaults;
  defaults.add_plugin_folder(STOWAGE_PLUGIN_BUILD_DIR);
  Error e = error_of([&] { defaults.route("fault://memory://x"); });
  CHECK(e.code() == ErrorCode::kNotFound);
  CHECK_MESSAGE(contains(e, "No handler for scheme 'fault'"), what(e));

  auto open_error = [](const std::string& url, const std::string& options) {
    return error_of([&] { registry().open(url, options); });
  };
  // The option that named the wrapped library is gone: the URL picks it.
  e = open_error("fault://memory://x", R"({"inner":"memory"})");
  CHECK(e.code() == ErrorCode::kInvalidArgument);
  CHECK_MESSAGE(contains(e, "inner: unknown key: the wrapped URL alone picks its plugin"), what(e));
  e = open_error("fault://memory://x", R"({"fautls":[]})");
  CHECK_MESSAGE(contains(e, "fautls: unknown key"), what(e));
  e = open_error("fault://memory://x", R"({"faults":[{"op":"load"}]})");
  CHECK_MESSAGE(contains(e, "faults[0]: does nothing"), what(e));
  e = open_error("fault://memory://x", R"({"faults":[{"op":"save","short_read":3}]})");
  CHECK_MESSAGE(contains(e, "faults[0].op"), what(e));
  e = open_error("fault://memory://x", R"({"faults":[{"error":"busy"}]})");
  CHECK_MESSAGE(contains(e, "'BUSY' is not a status code"), what(e));
  e = open_error("fault://memory", "{}");
  CHECK_MESSAGE(contains(e, "does not wrap a URL"), what(e));
  // A scheme nobody serves: the registry's own error, naming it.
  e = open_error("fault://nosuch://x", "{}");
  CHECK(e.code() == ErrorCode::kNotFound);
  CHECK_MESSAGE(contains(e, "No handler for scheme 'nosuch' in URL 'nosuch://x'"), what(e));
  // The wrapped plugin's own strictness stands.
  e = open_error("fault://memory://x", R"({"inner_options":{"bogus":1}})");
  CHECK(e.code() == ErrorCode::kInvalidArgument);
  CHECK_MESSAGE(contains(e, "bogus"), what(e));
}

namespace {

// fault:// and every in-tree plugin, under `config`.
std::unique_ptr<Registry> registry_with(const std::string& config) {
  auto r = std::make_unique<Registry>();
  r->add_plugin_folder(STOWAGE_FAULT_PLUGIN_DIR);
  r->add_plugin_folder(STOWAGE_PLUGIN_BUILD_DIR);
  r->apply_config(parse_config(config, "the test's config", {}));
  return r;
}

bool loaded(const Registry& r, const std::string& plugin) {
  for (const PluginInfo& p : r.plugins()) {
    if (p.name == plugin) return p.loaded;
  }
  return false;
}

}  // namespace

TEST_CASE("the wrapped URL goes through the host's allow-list: an unlisted plugin never loads") {
  auto r = registry_with(R"({"allow":["fault","file"]})");
  Error e = error_of([&] { r->open("fault://memory://allow-list/m"); });
  CHECK(e.code() == ErrorCode::kNotFound);
  CHECK_MESSAGE(contains(e, "No handler for scheme 'memory' in URL 'memory://allow-list/m'"),
                what(e));
  CHECK_MESSAGE(contains(e, "Plugin 'memory' ("), what(e));
  CHECK_MESSAGE(contains(e, "is not in the config's \"allow\" list, so it is never loaded"),
                what(e));
  CHECK_FALSE(loaded(*r, "memory"));

  // A listed one is reached through the decorator.
  const std::string url = "file://" + (scratch() / "allow-list").string();
  auto h = r->open("fault://" + url, R"({"inner_options":{"durable":false}})");
  h->save(old_model());
  CHECK(weight_bytes(r->open(url)->load()) == weight_bytes(old_model()));
  CHECK(loaded(*r, "file"));
  CHECK_FALSE(loaded(*r, "memory"));
}

TEST_CASE("URLs that nest themselves through aliases fail to open, naming the chain") {
  auto r = registry_with(R"({"aliases":{"ping":"fault://pong://","pong":"fault://ping://"}})");
  Error e = error_of([&] { r->open("ping://m"); });
  CHECK(e.code() == ErrorCode::kInvalidArgument);
  CHECK_MESSAGE(contains(e,
                         "URL 'ping://m' nests itself: each URL below is opened by the one "
                         "before it: ping://m (= fault://pong://m) -> pong://m (= "
                         "fault://ping://m) -> ping://m (= fault://pong://m)"),
                what(e));
  // The registry stays usable on this thread: the chain was unwound.
  auto h = r->open("fault://memory://nest/after-cycle");
  h->save(old_model());
  CHECK(weight_bytes(h->load()) == weight_bytes(old_model()));
}

TEST_CASE("decorators stack up to 8 URLs deep; a ninth fails with the chain") {
  auto r = registry_with("{}");
  std::string eight = "memory://nest/deep";
  for (int i = 0; i < 7; ++i) eight = "fault://" + eight;
  auto h = r->open(eight);
  h->save(old_model());
  CHECK(weight_bytes(h->load()) == weight_bytes(old_model()));
  CHECK(weight_bytes(r->open("memory://nest/deep")->load()) == weight_bytes(old_model()));

  Error e = error_of([&] { r->open("fault://" + eight); });
  CHECK(e.code() == ErrorCode::kInvalidArgument);
  CHECK_MESSAGE(contains(e, "URL 'fault://" + eight + "' nests more than 8 URLs deep: fault://" +
                                eight + " -> " + eight),
                what(e));
  CHECK_MESSAGE(contains(e, "-> fault://memory://nest/deep -> memory://nest/deep"), what(e));
}

// abi.h STOWAGE_CALL_SKIP_DIGESTS: the caller's opt-out reaches the wrapped
// URL's load, which the host otherwise checks whatever the outer call says.
TEST_CASE("verify_digests false reaches the wrapped URL's load; by default both loads check") {
  const fs::path dir =
      fs::temp_directory_path() / ("stowage-fault-digests-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  const std::string inner = "file://" + (dir / "m").string();
  registry().open(inner)->save(old_model());  // file:// records SHA-256 digests by default
  fs::path shard;
  for (const auto& e : fs::directory_iterator(dir / "m")) {
    if (e.path().extension() == ".bin") shard = e.path();
  }
  REQUIRE_FALSE(shard.empty());
  {
    std::fstream f(shard, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(100);
    const char c = static_cast<char>(f.get());
    f.seekp(100);
    f.put(static_cast<char>(~c));
  }
  const std::string url = "fault://" + inner;
  const Error e = error_of([&] { registry().open(url)->load(); });
  CHECK(e.code() == ErrorCode::kDataLoss);
  CHECK_MESSAGE(contains(e, "has SHA-256"), what(e));

  CallContext trusting;
  trusting.verify_digests = false;
  const ModelArtifacts got = registry().open(url)->load(trusting);
  REQUIRE(got.weight_data);
  CHECK(total_size(*got.weight_data) == 12000);
  fs::remove_all(dir);
}

// abi.h known_version (ABI 1.3): a revalidation through the decorator is the
// wrapped store's conditional request, answered "unchanged" (stowage serve
// answers 304), exactly as without the decorator.
TEST_CASE("a shallow stat's known version reaches the wrapped URL: unchanged through fault://") {
  const Target* serve = nullptr;
  for (const Target& t : targets()) {
    if (t.name == "http (stowage serve)") serve = &t;
  }
  REQUIRE(serve != nullptr);
  seed(*serve, "revalidated", old_model());
  auto stat = [&](const std::string& known) {
    Faulty f(*serve, serve->load_url("revalidated"), "[]");
    CallContext c;
    c.shallow_stat = true;
    c.known_version = known;
    return f.handler->stat(c);
  };
  const ModelStat first = stat("");
  CHECK_FALSE(first.unchanged);
  REQUIRE(first.model.weights_manifest);
  const ModelStat again = stat(first.version);
  CHECK(again.unchanged);
  CHECK_FALSE(again.model.weights_manifest.has_value());

  seed(*serve, "revalidated", new_model());
  const ModelStat changed = stat(first.version);
  CHECK_FALSE(changed.unchanged);
  CHECK(changed.version != first.version);

  // A rule for "stat" hits stats (and only them).
  Faulty failing(*serve, serve->load_url("revalidated"),
                 R"([{"op": "stat", "error": "unavailable", "retryable": false}])");
  const Error e = error_of([&] { failing.handler->stat(); });
  CHECK(e.code() == ErrorCode::kUnavailable);
  CHECK_MESSAGE(contains(e, "fault: injected UNAVAILABLE into stat call 1 of '"), what(e));
  CHECK(failing.handler->load().weight_data.has_value());
  CHECK(failing.forwarded("stat") == 0);
  CHECK(failing.forwarded("load") == 1);
}
