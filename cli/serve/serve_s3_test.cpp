// `stowage serve` over s3:// stores written in the query form docs/s3.md
// documents (s3://bucket/prefix?endpoint=...&region=...&path_style=...),
// against moto_server started by the test: model names are joined onto the
// URL's path and the query stays at the end, for listing, loading,
// uploading and removing.
#include <doctest/doctest.h>
#include <rapidjson/document.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "run_program.hpp"
#include "serve_process.hpp"
#include "store_internal.hpp"
#include "stowage/error.hpp"
#include "test_client.hpp"
#include "test_files.hpp"
#include "testing/s3_test_server.hpp"

namespace stowage::serve {
namespace {

namespace fs = std::filesystem;
using namespace stowage::serve::test;  // NOLINT: the test client
using stowage::s3::testing::S3TestServer;
using stowage::testing::ServeProcess;

constexpr const char* kBucket = "models";

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// What every command run here gets instead of the user's AWS and stowage
// settings: the test server's keys.
std::vector<std::string> aws_env(const S3TestServer& s3) {
  return {"AWS_ACCESS_KEY_ID=" + s3.access_key_id, "AWS_SECRET_ACCESS_KEY=" + s3.secret_access_key,
          "AWS_CONFIG_FILE=/nonexistent/aws-config",
          "AWS_SHARED_CREDENTIALS_FILE=/nonexistent/aws-credentials"};
}

stowage::testing::ProgramResult stowage_cli(const S3TestServer& s3, const fs::path& cwd,
                                            const std::vector<std::string>& args) {
  return stowage::testing::run_program(STOWAGE_CLI_EXE, args,
                                       {.cwd = cwd,
                                        .drop_env = {"AWS_", "STOWAGE_"},
                                        .add_env = aws_env(s3),
                                        .timeout = std::chrono::seconds(120)});
}

Response get(uint16_t port, const std::string& target, const std::string& method = "GET") {
  Client c(port);
  REQUIRE(c.connected());
  REQUIRE(c.send(request_text(method, target)));
  return c.read();
}

uint64_t sample_weight_bytes(const fs::path& folder) {
  uint64_t total = 0;
  for (const auto& entry : fs::directory_iterator(folder)) {
    if (entry.path().extension() == ".bin") total += fs::file_size(entry.path());
  }
  return total;
}

TEST_CASE("serve over s3:// with the store's settings in the URL's query") {
  S3TestServer s3({"--bucket", kBucket});
  const stowage::testing::TempDir tmp("stowage-serve-s3");
  const std::string query = "?endpoint=" + s3.endpoint + "&region=us-east-1&path_style=true";
  const std::string store = std::string("s3://") + kBucket + "/served" + query;
  const std::string conv = std::string("s3://") + kBucket + "/served/conv" + query;
  const std::string up = std::string("s3://") + kBucket + "/served/up" + query;
  const fs::path sample = fs::path(STOWAGE_SOURCE_DIR) / "samples" / "models" / "conv_sharded";

  // A model already in the store, put there by the command.
  const auto seeded = stowage_cli(
      s3, tmp.path(), {"copy", sample.string(), conv, "--shard-size", "512", "--no-verify"});
  INFO(seeded.out, seeded.err);
  REQUIRE(seeded.code == 0);

  ServeProcess serve(STOWAGE_CLI_EXE, tmp.path() / "serve", {"--store", store},
                     {.drop_env = {"AWS_", "STOWAGE_"}, .add_env = aws_env(s3)});
  INFO("stderr of stowage serve: ", serve.err());

  // The listing names it.
  const Response listed = get(serve.port(), "/models");
  CHECK(listed.status == 200);
  CHECK(contains(listed.body, R"({"name":"conv","modelJson":"/models/conv/model.json")"));

  // model.json and every weights file it names load.
  const Response json = get(serve.port(), "/models/conv/model.json");
  REQUIRE(json.status == 200);
  rapidjson::Document doc;
  doc.Parse(json.body.c_str(), json.body.size());
  REQUIRE(doc.IsObject());
  uint64_t served_bytes = 0;
  size_t files = 0;
  for (const auto& group : doc["weightsManifest"].GetArray()) {
    for (const auto& path : group["paths"].GetArray()) {
      std::string file = path.GetString();
      if (file.starts_with("./")) file = file.substr(2);
      const Response weights = get(serve.port(), "/models/conv/" + file);
      CHECK(weights.status == 200);
      served_bytes += weights.body.size();
      ++files;
    }
  }
  CHECK(files == 4);  // the stored shards, served under their own names
  CHECK(served_bytes == sample_weight_bytes(sample));

  // An upload lands at <prefix>/up in the bucket, not inside the endpoint.
  Client c(serve.port());
  REQUIRE(c.connected());
  const std::string body = tfjs_body();
  REQUIRE(c.send(request_text("POST", "/models/up", {upload_headers_line()}, body)));
  const Response saved = c.read();
  CHECK(saved.status == 201);
  CHECK(contains(saved.body, R"("weightDataBytes":12)"));
  const auto verified = stowage_cli(s3, tmp.path(), {"verify", up});
  CHECK(verified.code == 0);
  CHECK(contains(verified.out, "OK "));

  const Response both = get(serve.port(), "/models");
  CHECK(contains(both.body, R"("name":"conv")"));
  CHECK(contains(both.body, R"("name":"up")"));

  // And a removal removes it there.
  CHECK(get(serve.port(), "/models/up", "DELETE").status == 200);
  const auto gone = stowage_cli(s3, tmp.path(), {"verify", up});
  CHECK(gone.code == 3);
  CHECK(get(serve.port(), "/models/up/model.json").status == 404);

  CHECK(serve.stop() == 0);
}

TEST_CASE("serve over s3://: /readyz is 200 while the store answers and 503 once it is down") {
  auto s3 = std::make_unique<S3TestServer>(std::vector<std::string>{"--bucket", kBucket});
  const std::string endpoint = s3->endpoint;
  const stowage::testing::TempDir tmp("stowage-serve-s3-ready");
  const std::string store = std::string("s3://") + kBucket + "/served?endpoint=" + endpoint +
                            "&region=us-east-1&path_style=true";
  ServeProcess serve(STOWAGE_CLI_EXE, tmp.path() / "serve",
                     {"--store", store, "--ready-timeout", "5"},
                     {.drop_env = {"AWS_", "STOWAGE_"}, .add_env = aws_env(*s3)});
  INFO("stderr of stowage serve: ", serve.err());

  Response r = get(serve.port(), "/readyz");
  CHECK(r.status == 200);
  CHECK(r.body == "ready\n");
  const std::string metrics = get(serve.port(), "/metrics").body;
  CHECK(contains(metrics,
                 "stowage_serve_store_operation_duration_seconds_count{scheme=\"s3\","
                 "operation=\"probe\"} 1\n"));
  CHECK(contains(metrics, "stowage_serve_models 0\n"));  // the prefix holds none yet

  s3.reset();  // moto stops
  r = get(serve.port(), "/readyz");
  CHECK(r.status == 503);
  CHECK(r.body == R"x({"error":{"code":"unavailable","message":"not ready: the store is )x"
                  R"x(unavailable; try again later (the server's log has the details)"}})x");
  CHECK_FALSE(contains(r.body, endpoint));
  CHECK(get(serve.port(), "/healthz").status == 200);
  CHECK(serve.stop() == 0);
  CHECK(contains(serve.err(), "stowage serve: readiness check: "));
}

TEST_CASE("store URLs: names join onto the path, the query and fragment stay at the end") {
  Registry& registry = Registry::global();
  const std::chrono::milliseconds ttl(0);
  const ModelStore s3(
      "s3://models/served?endpoint=http://127.0.0.1:1&region=eu-west-1&path_style=true", "{}",
      registry, ttl);
  CHECK(s3.model_url("conv") ==
        "s3://models/served/conv?endpoint=http://127.0.0.1:1&region=eu-west-1&path_style=true");
  CHECK(s3.model_url("team/v2") ==
        "s3://models/served/team/v2?endpoint=http://127.0.0.1:1&region=eu-west-1&path_style=true");
  const ModelStore bucket("s3://models/?endpoint=http://127.0.0.1:1", "{}", registry, ttl);
  CHECK(bucket.model_url("m") == "s3://models/m?endpoint=http://127.0.0.1:1");
  const ModelStore http("http://127.0.0.1:1/upload?token=abc#part", "{}", registry, ttl);
  CHECK(http.model_url("m") == "http://127.0.0.1:1/upload/m?token=abc#part");
  const ModelStore plain("s3://models/served", "{}", registry, ttl);
  CHECK(plain.model_url("m") == "s3://models/served/m");
  // The store's location, query included, never reaches a client.
  CHECK(s3.redact("GetObject s3://models/served/conv/model.json: HTTP 500") ==
        "GetObject <store>/conv/model.json: HTTP 500");
}

}  // namespace
}  // namespace stowage::serve
