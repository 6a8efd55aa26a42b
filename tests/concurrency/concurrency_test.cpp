// Many threads over every scheme, through the production registry and the
// real plugins of the build tree: the workload of workload.hpp (save, load,
// list and remove on a path per thread and on one shared path) against
//   file://          a temporary folder,
//   memory://        the process-wide store,
//   localstorage://, indexeddb://  a temporary browser profile,
//   s3://            moto_server, started by this test (s3_test_server.py),
//   http://          the stowage serve server (the library behind
//                    `stowage serve`) on a free port, storing into file://;
//                    the http plugin saves and loads, and the server's
//                    GET /models and DELETE /models/<name> list and remove
//                    (the http plugin has neither: a web server has no
//                    listing protocol).
// Built and run in the normal, asan and tsan builds (label concurrency).
#include <doctest/doctest.h>
#include <rapidjson/document.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <thread>

#include "http_client.hpp"
#include "plugin_test_util.hpp"
#include "server_internal.hpp"
#include "stowage/error.hpp"
#include "stowage/management.hpp"
#include "stowage/registry.hpp"
#include "test_files.hpp"
#include "testing/s3_test_server.hpp"
#include "workload.hpp"

namespace fs = std::filesystem;
using namespace stowage;
using concurrency::Listed;
using concurrency::Outcome;
using concurrency::Target;
using testing::registry;

namespace {

constexpr int kThreads = 8;
constexpr int kDistinctIterations = 8;
constexpr int kSharedIterations = 16;

using stowage::testing::TempDir;

// The last path segment of a listed URL, without its query and a trailing
// /model.json: the name the workload saved it under.
std::string name_of(std::string url) {
  url = url.substr(0, url.find('?'));
  const std::string suffix = "/model.json";
  if (url.size() > suffix.size() &&
      url.compare(url.size() - suffix.size(), suffix.size(), suffix) == 0) {
    url.resize(url.size() - suffix.size());
  }
  return url.substr(url.find_last_of('/') + 1);
}

// A target for a scheme whose plugin does all four operations: models are
// `prefix + name`, listed from `list_url`, every call with `options`.
Target registry_target(const std::string& scheme, const std::string& prefix,
                       const std::string& list_url, const std::string& options,
                       const std::string& suffix = "") {
  Target t;
  t.scheme = scheme;
  t.save = [=](const std::string& name, const ModelArtifacts& m) {
    save_model(prefix + name + suffix, m, options, {}, registry());
  };
  t.load = [=](const std::string& name) {
    return load_model(prefix + name + suffix, options, {}, registry());
  };
  t.list = [=] {
    std::vector<Listed> out;
    for (const ListedModel& l : registry().open(list_url, options)->list()) {
      out.push_back({name_of(l.url), l.info.weight_data_bytes});
    }
    return out;
  };
  t.remove = [=](const std::string& name) {
    registry().open(prefix + name + suffix, options)->remove();
  };
  return t;
}

void check_distinct(const Target& target) {
  const Outcome distinct = concurrency::run_distinct(target, kThreads, kDistinctIterations);
  MESSAGE(target.scheme << " distinct paths: " << distinct.summary());
  for (const std::string& f : distinct.failures) FAIL_CHECK(f);
  CHECK(distinct.loads >= static_cast<uint64_t>(kThreads * kDistinctIterations));
}

void check_shared(const Target& target) {
  const Outcome shared = concurrency::run_shared(target, kThreads, kSharedIterations);
  MESSAGE(target.scheme << " shared path: " << shared.summary());
  for (const std::string& f : shared.failures) FAIL_CHECK(f);
  CHECK(shared.saves > 0);
  CHECK(shared.loads > 0);
  CHECK(shared.removes > 0);
}

void run_both(const Target& target) {
  check_distinct(target);
  check_shared(target);
}

}  // namespace

TEST_CASE("file:// under 8 threads") {
  TempDir dir("stowage-concurrency");
  const std::string root = "file://" + (dir.path() / "models").string();
  // Shards of 100 bytes: a load reads several files that a save replaces.
  run_both(registry_target("file", root + "/", root, R"({"shard_size":100})"));
}

TEST_CASE("memory:// under 8 threads") {
  const std::string root = "memory://concurrency-" + std::to_string(::getpid()) + "/";
  run_both(registry_target("memory", root, root, "{}"));
}

TEST_CASE("localstorage:// and indexeddb:// under 8 threads") {
  TempDir dir("stowage-concurrency");
  const std::string options = R"({"profile":")" + (dir.path() / "profile").string() + R"("})";
  SUBCASE("localstorage") {
    run_both(registry_target("localstorage", "localstorage://", "localstorage://", options));
  }
  SUBCASE("indexeddb") {
    run_both(registry_target("indexeddb", "indexeddb://", "indexeddb://", options));
  }
}

// One moto_server for both s3:// cases; the profile settings of the machine
// stay out of the run (moto accepts any key, the plugin signs with these).
const std::string& s3_root_query() {
  static s3::testing::S3TestServer server({"--bucket", "stowage-concurrency"});
  static const std::string query = [] {
    ::setenv("AWS_ACCESS_KEY_ID", server.access_key_id.c_str(), 1);
    ::setenv("AWS_SECRET_ACCESS_KEY", server.secret_access_key.c_str(), 1);
    ::setenv("AWS_REGION", "us-east-1", 1);
    ::unsetenv("AWS_SESSION_TOKEN");
    ::unsetenv("AWS_PROFILE");
    return "?endpoint=" + server.endpoint;
  }();
  return query;
}

Target s3_target() {
  const std::string& query = s3_root_query();
  const std::string root = "s3://stowage-concurrency/run-" + std::to_string(::getpid());
  return registry_target("s3", root + "/", root + query, R"({"shard_size":100})", query);
}

TEST_CASE("s3:// against moto_server under 8 threads: distinct paths") {
  check_distinct(s3_target());
}

TEST_CASE("s3:// against moto_server under 8 threads: shared path") { check_shared(s3_target()); }

TEST_CASE("http:// against stowage serve under 8 threads") {
  TempDir dir("stowage-concurrency");
  serve::ServerOptions options;
  options.store = "file://" + (dir.path() / "store").string();
  options.create_store = true;
  options.port = 0;
  options.registry = &registry();
  options.worker_threads = 4;
  serve::Server server(options);
  std::thread serving([&] { server.run(); });
  const std::string base = "http://127.0.0.1:" + std::to_string(server.port()) + "/models";

  auto client = std::make_shared<net::Client>();
  Target t = registry_target("http", base + "/", base, "{}");
  t.load = [base](const std::string& name) {
    return load_model(base + "/" + name + "/model.json", "{}", {}, registry());
  };
  t.list = [base, client] {
    net::Response r = client->send(net::Request("GET", base));
    if (r.status != 200) {
      throw Error(ErrorCode::kInternal, "GET /models answered " + std::to_string(r.status));
    }
    rapidjson::Document d;
    d.Parse(r.body.view().data(), r.body.view().size());
    if (d.HasParseError() || !d.IsObject() || !d.HasMember("models") || !d["models"].IsArray()) {
      throw Error(ErrorCode::kInternal, "GET /models answered " + std::string(r.body.view()));
    }
    std::vector<Listed> out;
    for (const auto& m : d["models"].GetArray()) {
      Listed l{m["name"].GetString(), std::nullopt};
      const auto& info = m["modelArtifactsInfo"];
      if (info.HasMember("weightDataBytes"))
        l.weight_data_bytes = info["weightDataBytes"].GetUint64();
      out.push_back(std::move(l));
    }
    return out;
  };
  t.remove = [base, client](const std::string& name) {
    net::Response r = client->send(net::Request("DELETE", base + "/" + name));
    if (r.status == 404) throw Error(ErrorCode::kNotFound, name + " is not on the server");
    if (r.status != 200) {
      throw Error(ErrorCode::kInternal, "DELETE answered " + std::to_string(r.status) + ": " +
                                            std::string(r.body.view()));
    }
  };
  t.loads_may_straddle_saves = true;
  run_both(t);

  server.shutdown();
  serving.join();
}
