// http:// and https:// through the real loader and the host's retry policy,
// against the scripted server of core/net (test_server.py): TF.js's URL
// rules, headers, the multipart save, and every fault the issue lists.
#include <doctest/doctest.h>
#include <rapidjson/document.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>

#include "plugin_test_util.hpp"
#include "stowage/digest.hpp"
#include "stowage/management.hpp"
#include "stowage/model_json.hpp"
#include "stowage/registry.hpp"
#include "test_files.hpp"
#include "test_server.hpp"

namespace fs = std::filesystem;
using namespace stowage;
using testing::error_of;
using testing::float_model;
using testing::ramp;
using testing::registry;
using testing::weight_bytes;

namespace {

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

const std::string kServerScript = std::string(STOWAGE_SOURCE_DIR) + "/core/net/test_server.py";

// A scratch folder served by the test server:
//   m/        a model in three shards (group1-shard1of3.bin ...)
//   single/   the same model with one weights.bin
struct Site {
  fs::path dir;
  ModelArtifacts model = float_model(ramp(3000, -7.5f));  // 12000 weight bytes
  std::unique_ptr<testing::PythonServer> server;

  explicit Site(std::vector<std::string> extra = {}) {
    std::string tmpl = (fs::temp_directory_path() / "stowage-http-test-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    dir = tmpl;
    registry().open("file://" + (dir / "m").string(), R"({"shard_size":5000})")->save(model);
    registry().open("file://" + (dir / "single").string())->save(model);
    // The same without digests in model.json, for the client's own check of
    // digest headers (a digest model.json records is the host's to check).
    registry()
        .open("file://" + (dir / "plain-m").string(), R"({"shard_size":5000,"integrity":"none"})")
        ->save(model);
    registry().open("file://" + (dir / "plain").string(), R"({"integrity":"none"})")->save(model);
    std::vector<std::string> args{kServerScript, "--root", dir.string()};
    args.insert(args.end(), extra.begin(), extra.end());
    server = std::make_unique<testing::PythonServer>(args);
  }
  ~Site() {
    server.reset();
    fs::remove_all(dir);
  }
  std::string url(const std::string& path, const std::string& host = "127.0.0.1",
                  const std::string& scheme = "http") const {
    return server->base(scheme, host) + path;
  }
  ModelArtifacts load(const std::string& path, const std::string& options = "{}",
                      const CallContext& call = {}) const {
    return registry().open(url(path), options)->load(call);
  }
  Error load_error(const std::string& path, const std::string& options = "{}") const {
    return error_of([&] { load(path, options); });
  }
};

}  // namespace

TEST_CASE("load fetches model.json and every shard relative to it") {
  Site site;
  std::vector<std::pair<uint64_t, uint64_t>> progress;
  CallContext call;
  call.on_progress = [&](uint64_t done, uint64_t total) { progress.emplace_back(done, total); };
  ModelArtifacts a = site.load("/files/m/model.json", "{}", call);
  CHECK(weight_bytes(a) == weight_bytes(site.model));
  REQUIRE(a.weights_manifest);
  REQUIRE(a.weight_data->size() == 3);
  CHECK((*a.weight_data)[2].label() == site.url("/files/m/group1-shard3of3.bin"));
  CHECK(a.model_topology == site.model.model_topology);
  REQUIRE(!progress.empty());
  CHECK(progress.back() == std::make_pair<uint64_t, uint64_t>(12000, 12000));

  // Chunked shards, and one file.
  CHECK(weight_bytes(site.load("/chunked/m/model.json")) == weight_bytes(site.model));
  CHECK(weight_bytes(site.load("/files/single/model.json")) == weight_bytes(site.model));
  // Redirects to the model are followed; shards are relative to the URL given.
  CHECK(weight_bytes(site.load("/redirect/2/m/model.json",
                               R"({"weight_path_prefix":")" + site.url("/files/m/") + "\"}")) ==
        weight_bytes(site.model));

  // https is refused on a plain server with a clear error, not a hang.
  Error tls = error_of(
      [&] { registry().open(site.url("/files/m/model.json", "127.0.0.1", "https"))->load(); });
  CHECK(tls.code() == ErrorCode::kUnavailable);
}

TEST_CASE("weight URLs follow TF.js: query suffix, weightPathPrefix, converter") {
  Site site;
  // The model.json URL's query goes onto every shard URL (/query needs it).
  CHECK(weight_bytes(site.load("/query/m/model.json?token=t1")) == weight_bytes(site.model));
  // weightPathPrefix is plain concatenation, no '/' added.
  CHECK(weight_bytes(site.load("/files/m/model.json",
                               R"({"weight_path_prefix":")" + site.url("/chunked/m/") + "\"}")) ==
        weight_bytes(site.model));
  Error no_slash = site.load_error("/files/m/model.json",
                                   R"({"weight_path_prefix":")" + site.url("/files/m") + "\"}");
  // The three shards are fetched at once and the first to fail is reported:
  // any of them shows the missing '/'.
  CHECK(has(no_slash.what(), "/files/mgroup1-shard"));

  // The converter wins over prefix and suffix; relative results are resolved
  // against model.json.
  std::atomic<int> calls{0};
  CallContext call;
  call.weight_url_converter = [&](std::string_view path) -> std::optional<std::string> {
    ++calls;
    return "../../chunked/m/" + std::string(path);
  };
  ModelArtifacts a = site.load("/files/m/model.json?ignored=1", "{}", call);
  CHECK(calls == 3);
  CHECK(weight_bytes(a) == weight_bytes(site.model));
  CHECK((*a.weight_data)[0].label() == site.url("/chunked/m/group1-shard1of3.bin"));
}

TEST_CASE("headers go with every request, to other hosts only when asked") {
  Site site;
  const std::string auth = R"("headers":{"Authorization":"Bearer secret"})";
  Error without = site.load_error("/auth/m/model.json");
  CHECK(without.code() == ErrorCode::kPermissionDenied);
  CHECK(has(without.what(), "status code 401"));
  CHECK(weight_bytes(site.load("/auth/m/model.json", "{" + auth + "}")) ==
        weight_bytes(site.model));

  // Shards on localhost are another origin than model.json on 127.0.0.1.
  const std::string prefix = R"("weight_path_prefix":")" + site.url("/auth/m/", "localhost") + "\"";
  Error cross = site.load_error("/files/m/model.json", "{" + auth + "," + prefix + "}");
  CHECK(cross.code() == ErrorCode::kPermissionDenied);
  CHECK(has(cross.what(), " of 3 \"group1-shard"));  // whichever shard answered first
  CHECK(has(cross.what(), "401"));
  CHECK(!has(cross.what(), "secret"));
  CHECK(weight_bytes(
            site.load("/files/m/model.json",
                      "{" + auth + "," + prefix + R"(,"send_headers_to_other_hosts":true})")) ==
        weight_bytes(site.model));
}

TEST_CASE("faults: retried successes and clear errors") {
  Site site;
  // 500 for the first request of every URL: the host retries the whole load,
  // once for model.json and once for the shard. The one-shard model keeps this
  // within the default four attempts whatever the timing: with three shards the
  // first failure can cancel a sibling before its request is sent, and that
  // sibling then fails on a later attempt of its own.
  CHECK(weight_bytes(site.load("/flaky/1/500/single/model.json")) == weight_bytes(site.model));
  CHECK(weight_bytes(site.load("/flaky/1/503/single/model.json")) == weight_bytes(site.model));
  CHECK(weight_bytes(site.load("/flaky/1/429/single/model.json")) == weight_bytes(site.model));

  Error missing_json = site.load_error("/files/nothing/model.json");
  CHECK(missing_json.code() == ErrorCode::kNotFound);
  CHECK(has(missing_json.what(), "Request to " + site.url("/files/nothing/model.json") +
                                     " failed with status code 404. Please verify this URL points "
                                     "to the model JSON of the model to load."));

  // One shard missing.
  fs::copy(site.dir / "m", site.dir / "gone");
  fs::remove(site.dir / "gone" / "group1-shard2of3.bin");
  Error gone = site.load_error("/files/gone/model.json");
  CHECK(gone.code() == ErrorCode::kDataLoss);
  for (const std::string& part :
       {std::string("weight file 2 of 3 \"group1-shard2of3.bin\""),
        site.url("/files/gone/group1-shard2of3.bin"), std::string("HTTP 404"),
        std::string("text/html"), std::string("its group needs 12000 bytes")}) {
    CAPTURE(part);
    CHECK(has(gone.what(), part));
  }

  // A shard of the wrong length.
  fs::copy(site.dir / "single", site.dir / "short");
  std::ofstream(site.dir / "short" / "weights.bin", std::ios::binary | std::ios::trunc) << "abc";
  Error wrong = site.load_error("/files/short/model.json");
  CHECK(wrong.code() == ErrorCode::kDataLoss);
  CHECK(has(wrong.what(), "3 bytes"));
  CHECK(has(wrong.what(), "expected 12000 bytes"));
  CHECK(has(wrong.what(), "application/octet-stream"));
  Error wrong_chunked = site.load_error("/chunked/short/model.json");
  CHECK(wrong_chunked.code() == ErrorCode::kDataLoss);
  CHECK(has(wrong_chunked.what(), "needs 12000 bytes"));
  CHECK(has(wrong_chunked.what(), "gave 3"));

  const std::string from = R"({"weight_path_prefix":")";
  Error html = site.load_error("/files/m/model.json", from + site.url("/html/m/") + "\"}");
  CHECK(html.code() == ErrorCode::kDataLoss);
  CHECK(has(html.what(), "HTML page instead of weights"));
  CHECK(has(html.what(), "text/html"));

  Error truncated = site.load_error("/files/m/model.json", from + site.url("/truncate/m/") + "\"}");
  CHECK(truncated.code() == ErrorCode::kUnavailable);
  CHECK(has(truncated.what(), "truncated"));
  CHECK(has(truncated.what(), "attempts"));

  Error reset = site.load_error("/files/m/model.json", from + site.url("/reset/m/") + "\"}");
  CHECK(reset.code() == ErrorCode::kUnavailable);
  CHECK(has(reset.what(), "attempts"));

  Error stall =
      site.load_error("/files/m/model.json", R"({"read_timeout_ms":300,"weight_path_prefix":")" +
                                                 site.url("/stall/m/") + "\"}");
  CHECK(stall.code() == ErrorCode::kUnavailable);
  CHECK(has(stall.what(), "read timeout"));

  Error loop = site.load_error("/loop/x");
  CHECK(loop.code() == ErrorCode::kUnavailable);
  CHECK(has(loop.what(), "redirect loop"));
  CHECK(!has(loop.what(), "attempts"));  // not retried

  Error not_json = site.load_error("/html/m/model.json");
  CHECK(not_json.code() == ErrorCode::kInvalidArgument);
  CHECK(has(not_json.what(), "Failed to parse model JSON of response from"));
  CHECK(has(not_json.what(), "text/html"));

  std::string dead = site.url("/files/m/model.json");
  site.server.reset();
  Error refused = error_of([&] { registry().open(dead)->load(); });
  CHECK(refused.code() == ErrorCode::kUnavailable);
  CHECK(has(refused.what(), "attempts"));
}

TEST_CASE("cancellation stops a load") {
  Site site;
  CallContext call;
  call.is_cancelled = [] { return true; };
  Error e = error_of([&] { site.load("/files/m/model.json", "{}", call); });
  CHECK(e.code() == ErrorCode::kCancelled);

  // Cancelled while the shards stall.
  const auto t0 = std::chrono::steady_clock::now();
  call.is_cancelled = [&] {
    return std::chrono::steady_clock::now() - t0 > std::chrono::milliseconds(200);
  };
  Error stalled = error_of([&] {
    site.load("/files/m/model.json", R"({"weight_path_prefix":")" + site.url("/stall/m/") + "\"}",
              call);
  });
  CHECK(stalled.code() == ErrorCode::kCancelled);
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(3));
}

TEST_CASE("save sends TF.js's multipart form") {
  Site site;
  std::vector<std::pair<uint64_t, uint64_t>> progress;
  CallContext call;
  call.on_progress = [&](uint64_t done, uint64_t total) { progress.emplace_back(done, total); };
  auto handler = registry().open(site.url("/echo"), R"({"headers":{"X-A":"b"}})");
  SaveResult r = handler->save(site.model, call);
  REQUIRE(r.responses);
  const std::string& echo = *r.responses;
  CHECK(echo.starts_with(R"([{"status":200,"statusText":"OK","url":")" + site.url("/echo") +
                         R"(","modelUrl":null,"body":")"));
  CHECK(has(echo, R"(\"method\": \"POST\")"));
  CHECK(has(echo, R"(\"x-a\": \"b\")"));
  CHECK(has(echo, R"(\"content-type\": \"multipart/form-data; boundary=----stowageFormBoundary)"));
  CHECK(has(
      echo,
      R"(\"name\": \"model.json\", \"filename\": \"model.json\", \"content_type\": \"application/json\")"));
  CHECK(has(
      echo,
      R"(\"name\": \"model.weights.bin\", \"filename\": \"model.weights.bin\", \"content_type\": \"application/octet-stream\", \"length\": 12000)"));
  // The model.json part is what TF.js writes, byte for byte.
  WeightsManifest manifest{WeightGroup{{"./model.weights.bin"}, *site.model.weight_specs}};
  std::string model_json = write_model_json(site.model, manifest, ModelJsonLayout::kTfjsHttp);
  rapidjson::Document outer;
  outer.Parse(echo.c_str());
  REQUIRE(outer.IsArray());
  rapidjson::Document server_saw;
  server_saw.Parse(outer[0]["body"].GetString());
  REQUIRE(server_saw.IsObject());
  CHECK(std::string(server_saw["parts"][0]["text"].GetString()) == model_json);
  CHECK(server_saw["parts"].Size() == 2);
  CHECK(r.model_artifacts_info.weight_data_bytes == std::optional<uint64_t>(12000));
  REQUIRE(!progress.empty());
  CHECK(progress.back().first == progress.back().second);

  // PUT, and a topology-only model has no weights part.
  ModelArtifacts topology_only = site.model;
  topology_only.weight_data.reset();
  topology_only.weight_specs.reset();
  SaveResult put = registry().open(site.url("/echo"), R"({"method":"PUT"})")->save(topology_only);
  CHECK(has(*put.responses, R"(\"method\": \"PUT\")"));
  CHECK(!has(*put.responses, "model.weights.bin\\\", \\\"filename"));

  // Failures name TF.js's sentence; a transient one of a POST is not
  // replayed (see "an upload is sent once ..." below).
  Error failed = error_of([&] { registry().open(site.url("/status/403/up"))->save(site.model); });
  CHECK(failed.code() == ErrorCode::kPermissionDenied);
  CHECK(has(failed.what(), "BrowserHTTPRequest.save() failed due to HTTP response status 403."));
  Error busy = error_of([&] { registry().open(site.url("/status/503/up"))->save(site.model); });
  CHECK(busy.code() == ErrorCode::kUnavailable);
  CHECK(has(busy.what(), "not retried"));
  CHECK(!has(busy.what(), "attempts"));
}

TEST_CASE("save option integrity: sha256 records the weights file's digest in model.json") {
  Site site;
  const std::string bytes = weight_bytes(site.model);
  const std::string hex = sha256_hex(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
  auto model_json_sent = [&](const std::string& options) {
    SaveResult r = registry().open(site.url("/echo"), options)->save(site.model);
    rapidjson::Document outer;
    outer.Parse(r.responses->c_str());
    rapidjson::Document server_saw;
    server_saw.Parse(outer[0]["body"].GetString());
    return std::string(server_saw["parts"][0]["text"].GetString());
  };
  WeightsManifest manifest{WeightGroup{{"./model.weights.bin"}, *site.model.weight_specs}};
  // "none" (the default) sends TF.js's bytes.
  const std::string tfjs = write_model_json(site.model, manifest, ModelJsonLayout::kTfjsHttp);
  CHECK(model_json_sent("{}") == tfjs);
  CHECK(model_json_sent(R"({"integrity":"none"})") == tfjs);
  manifest[0].sha256 = std::vector<std::string>{hex};
  CHECK(model_json_sent(R"({"integrity":"sha256"})") ==
        write_model_json(site.model, manifest, ModelJsonLayout::kTfjsHttp));

  // A receiver that stores it serves it back with the digest.
  registry().open(site.url("/store/with-digest"), R"({"integrity":"sha256"})")->save(site.model);
  ModelArtifacts back = site.load("/store/with-digest");
  REQUIRE(back.weights_manifest);
  CHECK((*back.weights_manifest)[0].sha256 == std::optional<std::vector<std::string>>({hex}));
  CHECK(weight_bytes(back) == bytes);

  Error bad = error_of([&] { registry().open(site.url("/echo"), R"({"integrity":"md5"})"); });
  CHECK(bad.code() == ErrorCode::kInvalidArgument);
  CHECK(has(bad.what(), "integrity"));
}

TEST_CASE("a shard's Repr-Digest or Digest header is checked, without digests in model.json") {
  Site site;
  for (const char* mode : {"repr", "legacy", "chunked"}) {
    CAPTURE(mode);
    CHECK(weight_bytes(site.load("/digest/" + std::string(mode) + "/plain-m/model.json")) ==
          weight_bytes(site.model));
  }
  const std::string bytes = weight_bytes(site.model);
  const std::string actual = sha256_hex(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
  const std::string claimed = sha256_hex(std::span<const uint8_t>(
      reinterpret_cast<const uint8_t*>((bytes + "x").data()), bytes.size() + 1));
  Error e = site.load_error("/digest/wrong/plain/model.json");
  CHECK(e.code() == ErrorCode::kDataLoss);
  CHECK(std::string(e.what()) ==
        "GET " + site.url("/digest/wrong/plain/weights.bin") +
            " (weight file 1 of 1 \"weights.bin\"): the body's SHA-256 does not match its "
            "Repr-Digest header: 12000 bytes, expected sha-256 (hex) " +
            claimed + ", got " + actual);
  // A malformed claim is refused too (see http_client.hpp).
  e = site.load_error("/digest/bad/plain/model.json");
  CHECK(e.code() == ErrorCode::kDataLoss);
  CHECK(std::string(e.what()) ==
        "GET " + site.url("/digest/bad/plain/weights.bin") +
            " (weight file 1 of 1 \"weights.bin\"): the Repr-Digest header's sha-256 is malformed "
            "(not 32 bytes of padded base64) or contradicts another digest header");
}

TEST_CASE("a weight file whose digest model.json records is hashed once, against that record") {
  Site site;
  // The header is not consulted: its claim is wrong, the bytes are the ones
  // model.json records.
  CHECK(weight_bytes(site.load("/digest/wrong/single/model.json")) == weight_bytes(site.model));
  // Bytes changed on the server (the header describes the changed bytes) are
  // caught by the host's check of model.json's digest.
  const fs::path weights = site.dir / "single" / "weights.bin";
  std::string bytes = weight_bytes(site.model);
  bytes[100] = static_cast<char>(bytes[100] ^ 1);
  std::ofstream(weights, std::ios::binary | std::ios::trunc) << bytes;
  Error e = site.load_error("/digest/repr/single/model.json");
  CHECK(e.code() == ErrorCode::kDataLoss);
  const std::string actual = sha256_hex(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
  CHECK_MESSAGE(
      has(e.what(), "'weights.bin' (" + site.url("/digest/repr/single/weights.bin") +
                        ", 12000 bytes) has SHA-256 " + actual + ", but model.json records "),
      e.what());
}

TEST_CASE("options are strict and secrets stay out of messages") {
  Site site;
  auto open_error = [&](const std::string& options) {
    return error_of([&] { registry().open(site.url("/files/m/model.json"), options); });
  };
  Error unknown = open_error(R"({"weightPathPrefix":"x"})");
  CHECK(unknown.code() == ErrorCode::kInvalidArgument);
  CHECK(has(unknown.what(), "Unknown option \"weightPathPrefix\""));
  CHECK(open_error(R"({"method":"GET"})").code() == ErrorCode::kInvalidArgument);
  CHECK(open_error(R"({"max_parallel":0})").code() == ErrorCode::kInvalidArgument);
  CHECK(open_error(R"({"read_timeout_ms":0})").code() == ErrorCode::kInvalidArgument);
  CHECK(open_error(R"({"ca_file":"/nonexistent/ca.pem"})").code() == ErrorCode::kInvalidArgument);
  Error typed = open_error(R"({"headers":{"Authorization":42}})");
  CHECK(has(typed.what(), "headers.Authorization"));
  Error bad_value = open_error(R"({"headers":{"Authorization":"Bearer s3cr3t\r\nX: y"}})");
  CHECK(bad_value.code() == ErrorCode::kInvalidArgument);
  CHECK(!has(bad_value.what(), "s3cr3t"));
  CHECK(error_of([] { registry().open("http://"); }).code() == ErrorCode::kInvalidArgument);

  // A signed URL's signature is not printed.
  Error signed_url = site.load_error("/files/nothing/model.json?X-Amz-Signature=deadbeef");
  CHECK(!has(signed_url.what(), "deadbeef"));
  CHECK(has(signed_url.what(), "X-Amz-Signature=REDACTED"));
}

TEST_CASE("https: verification on by default, a CA file, and the insecure option") {
  if (std::system("openssl version > /dev/null 2>&1") != 0) {
    FAIL("the openssl command is needed to make the test certificates");
  }
  std::string tmpl = (fs::temp_directory_path() / "stowage-https-test-XXXXXX").string();
  REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
  const fs::path d = tmpl;
  std::string cmd = "cd '" + d.string() +
                    "' && "
                    "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 "
                    "-subj /CN=stowage-test-ca > /dev/null 2>&1 && "
                    "openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr "
                    "-subj /CN=127.0.0.1 > /dev/null 2>&1 && "
                    "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > ext.cnf && "
                    "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
                    "-out server.pem -days 2 -extfile ext.cnf > /dev/null 2>&1";
  REQUIRE(std::system(cmd.c_str()) == 0);
  {
    Site site({"--cert", (d / "server.pem").string(), "--key", (d / "server.key").string()});
    const std::string url = site.url("/files/m/model.json", "127.0.0.1", "https");
    Error untrusted = error_of([&] { registry().open(url)->load(); });
    CHECK(untrusted.code() == ErrorCode::kUnavailable);
    CHECK(has(untrusted.what(), "certificate verification failed"));
    CHECK(!has(untrusted.what(), "attempts"));  // not retried

    ModelArtifacts a =
        registry().open(url, R"({"ca_file":")" + (d / "ca.pem").string() + "\"}")->load();
    CHECK(weight_bytes(a) == weight_bytes(site.model));
    ModelArtifacts b = registry().open(url, R"({"insecure_skip_tls_verify":true})")->load();
    CHECK(weight_bytes(b) == weight_bytes(site.model));

    SaveResult saved = registry()
                           .open(site.url("/echo", "localhost", "https"),
                                 R"({"ca_file":")" + (d / "ca.pem").string() + "\"}")
                           ->save(site.model);
    CHECK(has(*saved.responses, "\"status\":200"));
  }
  fs::remove_all(d);
}

namespace {

// How many uploads the counting receiver (/uploads/...) got for key: it
// answers /upload-count/<key> with a topology-only model.json whose
// userDefinedMetadata is {"uploads":n}.
int uploads_of(const Site& site, const std::string& key) {
  ModelArtifacts a = site.load("/upload-count/" + key);
  REQUIRE(a.user_defined_metadata);
  const std::string& m = *a.user_defined_metadata;
  REQUIRE(m.starts_with("{\"uploads\":"));
  return std::atoi(m.c_str() + 11);
}

Error save_error(const Site& site, const std::string& path, const std::string& options = "{}") {
  return error_of([&] { registry().open(site.url(path), options)->save(site.model); });
}

}  // namespace

TEST_CASE("an upload is sent once unless replaying it is safe; loads are retried") {
  Site site;
  // POST (TF.js's default) to a receiver that fails the first upload: tried
  // once, the error says why it was not retried, and it is not retryable.
  Error once = save_error(site, "/uploads/1/503/post");
  CHECK(once.code() == ErrorCode::kUnavailable);
  CHECK_FALSE(once.retryable());
  CHECK(has(once.what(), "BrowserHTTPRequest.save() failed due to HTTP response status 503."));
  CHECK(has(once.what(),
            "not retried: an upload is sent once, as TF.js sends it, unless the "
            "method is PUT, the receiver answers with \"Stowage-Upload-Idempotent: "
            "true\", or the option retry_uploads is true"));
  CHECK(uploads_of(site, "post") == 1);
  // The same for every transient status, and for a connection reset after
  // the receiver read the whole upload (it may have stored it).
  for (const std::string code : {"408", "429", "500", "502", "504", "0"}) {
    CAPTURE(code);
    Error e = save_error(site, "/uploads/1/" + code + "/post-" + code);
    CHECK(e.code() == ErrorCode::kUnavailable);
    CHECK(has(e.what(), "not retried"));
    CHECK(uploads_of(site, "post-" + code) == 1);
  }
  // A method fetch() passes as written is no more replayable than POST.
  CHECK(
      has(save_error(site, "/uploads/1/503/patch", R"({"method":"PATCH"})").what(), "not retried"));
  CHECK(uploads_of(site, "patch") == 1);

  // PUT is idempotent: the host's policy retries it.
  SaveResult put =
      registry().open(site.url("/uploads/1/503/put"), R"({"method":"PUT"})")->save(site.model);
  CHECK(has(*put.responses, "\"status\":200"));
  CHECK(uploads_of(site, "put") == 2);
  // The receiver declares its uploads idempotent (on the failing answer).
  registry().open(site.url("/uploads/2/503/declared?idempotent=1"))->save(site.model);
  CHECK(uploads_of(site, "declared") == 3);
  // The caller accepts replays; a reset is retried then too.
  registry().open(site.url("/uploads/1/0/opt-in"), R"({"retry_uploads":true})")->save(site.model);
  CHECK(uploads_of(site, "opt-in") == 2);
  // Within the host's budget only: four attempts, then the error says so.
  Error budget = save_error(site, "/uploads/9/503/budget", R"({"retry_uploads":true})");
  CHECK(has(budget.what(), "failed after 4 attempts"));
  CHECK(uploads_of(site, "budget") == 4);
  CHECK(error_of([&] { registry().open(site.url("/echo"), R"({"retry_uploads":1})"); }).code() ==
        ErrorCode::kInvalidArgument);

  // Loads keep retrying (GET is safe to repeat).
  CHECK(weight_bytes(site.load("/flaky/1/502/single/model.json")) == weight_bytes(site.model));

  // An upload that never left this machine whole reached no receiver: a
  // refused connection is retried like a load.
  const std::string dead = site.url("/uploads/0/200/dead");
  site.server.reset();
  Error refused = error_of([&] { registry().open(dead)->save(site.model); });
  CHECK(refused.code() == ErrorCode::kUnavailable);
  CHECK(refused.retryable());
  CHECK(has(refused.what(), "failed after 4 attempts"));
  CHECK(!has(refused.what(), "not retried"));
}

TEST_CASE("method takes any token fetch() sends, and refuses what fetch() refuses") {
  Site site;
  auto method_seen = [&](const std::string& method) {
    SaveResult r =
        registry().open(site.url("/echo"), R"({"method":")" + method + "\"}")->save(site.model);
    rapidjson::Document outer;
    outer.Parse(r.responses->c_str());
    rapidjson::Document echo;
    echo.Parse(outer[0]["body"].GetString());
    return std::string(echo["method"].GetString());
  };
  // fetch() upper-cases DELETE, GET, HEAD, OPTIONS, POST and PUT only.
  CHECK(method_seen("post") == "POST");
  CHECK(method_seen("Put") == "PUT");
  CHECK(method_seen("options") == "OPTIONS");
  CHECK(method_seen("delete") == "DELETE");
  CHECK(method_seen("PATCH") == "PATCH");
  CHECK(method_seen("patch") == "patch");
  CHECK(method_seen("PROPFIND") == "PROPFIND");
  CHECK(method_seen("X-Upload.v2") == "X-Upload.v2");
  CHECK(method_seen("a!#$%&'*+-.^_`|~") == "a!#$%&'*+-.^_`|~");

  auto refused = [&](const std::string& method_json) {
    Error e =
        error_of([&] { registry().open(site.url("/echo"), R"({"method":)" + method_json + "}"); });
    CHECK(e.code() == ErrorCode::kInvalidArgument);
    return std::string(e.what());
  };
  const std::string at = "Option \"method\" for " + site.url("/echo") + ": ";
  CHECK(refused(R"("PO ST")") == at + "\"PO ST\" is not a valid HTTP method");
  CHECK(refused(R"("")") == at + "\"\" is not a valid HTTP method");
  CHECK(refused(R"("M\u00e9")") == at + "\"M\xc3\xa9\" is not a valid HTTP method");
  CHECK(refused(R"("POST\r\nX: y")") == at + "\"POST\\r\\nX: y\" is not a valid HTTP method");
  CHECK(refused(R"("connect")") ==
        at + "\"connect\" is a method fetch() refuses to send (CONNECT, TRACE, TRACK)");
  CHECK(refused(R"("TRACE")") ==
        at + "\"TRACE\" is a method fetch() refuses to send (CONNECT, TRACE, TRACK)");
  CHECK(refused(R"("track")") ==
        at + "\"track\" is a method fetch() refuses to send (CONNECT, TRACE, TRACK)");
  CHECK(refused(R"("get")") == at + "\"get\" cannot carry the upload (fetch(): \"Request with "
                                    "GET/HEAD method cannot have body.\")");
  CHECK(has(refused(R"("HEAD")"), "cannot carry the upload"));
  CHECK(has(refused("42"), "\"method\""));

  // Loads use GET whatever the method (the option is for saves).
  CHECK(weight_bytes(site.load("/files/m/model.json", R"({"method":"PUT"})")) ==
        weight_bytes(site.model));
}

TEST_CASE("a save's response names the model URL the receiver gives") {
  Site site;
  auto model_url = [&](const std::string& path) {
    SaveResult r = registry().open(site.url(path))->save(site.model);
    REQUIRE(r.responses);
    rapidjson::Document d;
    d.Parse(r.responses->c_str());
    REQUIRE(d.IsArray());
    REQUIRE(d[0].HasMember("modelUrl"));
    return d[0]["modelUrl"].IsString() ? std::string(d[0]["modelUrl"].GetString())
                                       : std::string("null");
  };
  auto answer = [](const std::string& body) {
    std::string q;
    for (char c : body) {
      char hex[4];
      std::snprintf(hex, sizeof hex, "%%%02X", static_cast<unsigned char>(c));
      q += hex;
    }
    return "/answer?body=" + q;
  };
  // Relative references resolve against the upload URL; absolute ones stay.
  CHECK(model_url(answer(R"({"modelUrl":"/files/m/model.json"})")) ==
        site.url("/files/m/model.json"));
  CHECK(model_url(answer(R"({"modelUrl":"files/m/model.json","other":1})")) ==
        site.url("/files/m/model.json"));
  CHECK(model_url(answer(R"({"modelUrl":"http://example.com/m/model.json"})")) ==
        "http://example.com/m/model.json");
  // Nothing named: no body, a body without it, not JSON, not an object, not a
  // string, not http(s).
  CHECK(model_url("/answer") == "null");
  CHECK(model_url("/echo") == "null");
  CHECK(model_url(answer(R"({"saved":"m"})")) == "null");
  CHECK(model_url(answer("modelUrl")) == "null");
  CHECK(model_url(answer(R"(["modelUrl"])")) == "null");
  CHECK(model_url(answer(R"({"modelUrl":7})")) == "null");
  CHECK(model_url(answer(R"({"modelUrl":""})")) == "null");
  CHECK(model_url(answer(R"({"modelUrl":"file:///etc/passwd"})")) == "null");
  CHECK(model_url(answer(R"({"modelUrl":"s3://bucket/m"})")) == "null");
  // The test server's store says where it put the model.
  CHECK(model_url("/store/a/b") == site.url("/store/a/b"));
}

TEST_CASE("from_tfhub rewrites the URL as loadGraphModel(url, {fromTFHub: true})") {
  Site site;
  const std::string hub = R"({"from_tfhub":true})";
  // /hub/ answers model files only with ?tfjs-format=file, through a
  // redirect, as tfhub.dev does; weights get the same query (TF.js parseUrl).
  CHECK(weight_bytes(site.load("/hub/m", hub)) == weight_bytes(site.model));
  CHECK(weight_bytes(site.load("/hub/m/", hub)) == weight_bytes(site.model));
  CHECK(weight_bytes(site.load("/hub/single", hub)) == weight_bytes(site.model));
  ModelArtifacts a = site.load("/hub/m", hub);
  CHECK((*a.weight_data)[0].label() ==
        site.url("/files/m/group1-shard1of3.bin?tfjs-format=file&tfhub-redirect=true"));
  // A URL with a query keeps it; tfjs-format=file is joined with '&'.
  ModelArtifacts q = site.load("/hub/m?lang=en", hub);
  CHECK(weight_bytes(q) == weight_bytes(site.model));
  CHECK((*q.weight_data)[2].label() ==
        site.url("/files/m/group1-shard3of3.bin?lang=en&tfjs-format=file&tfhub-redirect=true"));
  // A query that says tfjs-format already is left alone.
  CHECK(weight_bytes(site.load("/hub/m?tfjs-format=file", hub)) == weight_bytes(site.model));

  // The rewritten URL is what messages name.
  Error missing = site.load_error("/hub/none?x=1#frag", hub);
  CHECK(missing.code() == ErrorCode::kNotFound);
  CHECK(has(missing.what(),
            "Request to " + site.url("/hub/none/model.json?x=1&tfjs-format=file") + " failed"));
  // Without the option the hub answers its web page, which is no model.
  Error page = site.load_error("/hub/m");
  CHECK(page.code() == ErrorCode::kInvalidArgument);
  CHECK(has(page.what(), "Failed to parse model JSON of response from " + site.url("/hub/m")));

  Error save = error_of([&] { registry().open(site.url("/hub/m"), hub)->save(site.model); });
  CHECK(save.code() == ErrorCode::kInvalidArgument);
  CHECK(has(save.what(), "\"from_tfhub\""));
  CHECK(has(save.what(), "cannot be used to save"));
}

TEST_CASE("move to an upload URL reads back from where the receiver says the model is") {
  Site site;
  const std::string src = "file://" + (site.dir / "to-move").string();
  registry().open(src)->save(site.model);
  // The test server's store answers {"modelUrl": "/store/<name>"}.
  move_model(src, site.url("/store/moved"), {}, registry());
  CHECK_FALSE(fs::exists(site.dir / "to-move" / "model.json"));
  CHECK(weight_bytes(site.load("/store/moved")) == weight_bytes(site.model));

  // A receiver that names nothing: the model is saved but the source stays.
  registry().open(src)->save(site.model);
  Error e = error_of([&] { move_model(src, site.url("/answer"), {}, registry()); });
  CHECK(e.code() == ErrorCode::kUnimplemented);
  CHECK(has(e.what(),
            "the model was saved, but the receiver did not say where it can be loaded "
            "from, and '" +
                site.url("/answer") + "' itself is the upload URL"));
  CHECK(has(e.what(), "verify_url"));
  CHECK(fs::exists(site.dir / "to-move" / "model.json"));
  // The caller names it.
  TransferOptions options;
  options.verify_url = site.url("/store/moved");
  move_model(src, site.url("/answer"), options, registry());
  CHECK_FALSE(fs::exists(site.dir / "to-move" / "model.json"));
  // A wrong one: the comparison fails and the source stays.
  ModelArtifacts other = float_model(ramp(3000, 1.0f));
  registry().open(src)->save(other);
  Error differs = error_of([&] { move_model(src, site.url("/answer"), options, registry()); });
  CHECK(differs.code() == ErrorCode::kDataLoss);
  CHECK(fs::exists(site.dir / "to-move" / "model.json"));
}

TEST_CASE("stat: model.json by GET, each weight file's validators by HEAD") {
  Site site;
  auto stat = [&](const std::string& path) { return registry().open(site.url(path))->stat(); };
  const ModelArtifacts loaded = site.load("/files/m/model.json");
  ModelStat s = stat("/files/m/model.json");
  CHECK_FALSE(s.model.weight_data.has_value());
  CHECK(s.model.weight_specs == loaded.weight_specs);
  CHECK(s.model.model_topology == loaded.model_topology);
  CHECK(s.info.weight_data_bytes == std::optional<uint64_t>(12000));
  CHECK(s.info.model_topology_bytes == artifacts_info(loaded).model_topology_bytes);
  CHECK(stat("/files/m/model.json").version == s.version);
  // A shallow stat (abi.h STOWAGE_CALL_STAT_SHALLOW) reads model.json alone.
  // model.json's Last-Modified is made firm (an hour old): one written in
  // the second of the answer's Date is marked so in the token, which then
  // changes once a second has passed (see the known-version case below),
  // and the versions compared here must not depend on the test's pace.
  fs::last_write_time(site.dir / "m" / "model.json",
                      fs::file_time_type::clock::now() - std::chrono::hours(1));
  CallContext shallow;
  shallow.shallow_stat = true;
  auto shallow_stat = [&] {
    return registry().open(site.url("/files/m/model.json"))->stat(shallow);
  };
  const ModelStat light = shallow_stat();
  CHECK(light.model.weight_specs == loaded.weight_specs);
  CHECK(light.info.weight_data_bytes == std::optional<uint64_t>(12000));

  // Other bytes of the same size behind an unchanged model.json: only the
  // weight file's HEAD can tell, so the shallow stat does not.
  const fs::path shard = site.dir / "m" / "group1-shard2of3.bin";
  std::string bytes = testing::read_file(shard);
  for (char& c : bytes) c = static_cast<char>(~c);
  testing::write_file(shard, bytes);
  const std::string changed = stat("/files/m/model.json").version;
  CHECK(changed != s.version);
  CHECK(stat("/files/m/model.json").version == changed);
  CHECK(shallow_stat().version == light.version);

  fs::remove(site.dir / "m" / "group1-shard3of3.bin");
  Error gone = error_of([&] { stat("/files/m/model.json"); });
  CHECK(gone.code() == ErrorCode::kDataLoss);
  CHECK(has(gone.what(), "group1-shard3of3.bin"));
  CHECK(shallow_stat().version == light.version);  // no HEAD, so the missing file goes unseen

  // A changed model.json changes the shallow version too.
  const fs::path json = site.dir / "m" / "model.json";
  testing::write_file(json, testing::read_file(json) + " ");
  CHECK(shallow_stat().version != light.version);

  Error missing = error_of([&] { stat("/files/nope/model.json"); });
  CHECK(missing.code() == ErrorCode::kNotFound);
  CHECK(has(missing.what(), site.url("/files/nope/model.json")));
}

// abi.h known_version (ABI 1.3) against a server that ignores conditional
// headers (test_server.py answers 200 whatever they say): the 200 itself
// says whether model.json is the known one. The 304 paths run against
// `stowage serve` and python's http.server in plugins/cache.
TEST_CASE("shallow stat with a known version: unchanged when model.json is the same, else full") {
  Site site;
  auto stat = [&](const std::string& path, const std::string& known) {
    CallContext c;
    c.shallow_stat = true;
    c.known_version = known;
    return registry().open(site.url(path))->stat(c);
  };
  const ModelStat first = stat("/files/m/model.json", "");
  CHECK_FALSE(first.unchanged);
  CHECK(first.version.rfind("h2.", 0) == 0);
  REQUIRE(first.model.weights_manifest);

  const ModelStat again = stat("/files/m/model.json", first.version);
  CHECK(again.unchanged);
  CHECK_FALSE(again.model.weights_manifest.has_value());
  CHECK_FALSE(again.model.model_topology.has_value());
  // The same token, or the same with Last-Modified now firm (abi.h).
  const std::string kept = again.version;
  CHECK(kept.substr(0, 3) == "h2.");
  CHECK(stat("/files/m/model.json", kept).unchanged);

  // A token that is not this stat's, or is another URL's, is no token:
  // a full answer.
  for (const std::string& other :
       {std::string("not-a-token"), first.version.substr(0, first.version.size() - 2),
        stat("/files/single/model.json", "").version}) {
    INFO(other);
    const ModelStat full = stat("/files/m/model.json", other);
    CHECK_FALSE(full.unchanged);
    CHECK(full.model.weight_specs == first.model.weight_specs);
    CHECK(full.info.weight_data_bytes == std::optional<uint64_t>(12000));
  }

  // model.json changed: a full answer with another version.
  const fs::path json = site.dir / "m" / "model.json";
  testing::write_file(json, testing::read_file(json) + " ");
  const ModelStat changed = stat("/files/m/model.json", kept);
  CHECK_FALSE(changed.unchanged);
  CHECK(changed.version != kept);
  CHECK(changed.model.weight_specs == first.model.weight_specs);

  // A full (not shallow) stat ignores the known version and answers in full.
  CallContext full;
  full.known_version = changed.version;
  const ModelStat deep = registry().open(site.url("/files/m/model.json"))->stat(full);
  CHECK_FALSE(deep.unchanged);
  CHECK(deep.info.weight_data_bytes == std::optional<uint64_t>(12000));
}

// ---- Streaming copies (ABI 1.1) -------------------------------------------

namespace {

// Every file of a folder, by name.
std::map<std::string, std::string> files_in(const fs::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    out[e.path().filename().string()] = testing::read_file(e.path());
  }
  return out;
}

bool has_temp_folder(const fs::path& dir) {
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().filename().string().find(".stowage-tmp-") != std::string::npos) return true;
  }
  return false;
}

// Shard `slow` (1-based) of /files/m comes from `route` instead, e.g. /slow/
// so the others complete before it.
std::function<std::optional<std::string>(std::string_view)> shard_from(
    const Site& site, int shard, const std::string& route, const std::string& folder = "m") {
  return [&site, shard, route, folder](std::string_view path) -> std::optional<std::string> {
    const std::string p(path);
    const bool hit = p.find("shard" + std::to_string(shard) + "of") != std::string::npos;
    return site.url((hit ? route : std::string("/files/")) + folder + "/" + p);
  };
}

}  // namespace

TEST_CASE("a copy http:// to file:// streams within the queue and writes the same files") {
  Site site;
  const fs::path out = site.dir / "out";
  TransferStats stats;
  TransferOptions options;
  options.destination_options = R"({"shard_size":5000})";
  options.queue_bytes = 5000;
  options.stats = &stats;
  // The first shard arrives last: the host takes the others out of order.
  options.call.weight_url_converter = shard_from(site, 1, "/slow/");
  copy_model(site.url("/files/m/model.json"), "file://" + out.string(), options, registry());
  CHECK(stats.streamed);
  // Out of order, the host holds at most what its queue let in (the queue,
  // or one buffer when it held nothing), the buffer the save needs next
  // (never made to wait) and the one the save is writing.
  CHECK(stats.peak_queued_bytes >= 5000);
  CHECK(stats.peak_queued_bytes <= 5000 + 2 * 5000);
  // The same files, byte for byte, as the model the server holds.
  CHECK(files_in(out) == files_in(site.dir / "m"));
}

TEST_CASE("a streaming http:// copy that fails midway leaves the destination as it was") {
  Site site;
  const fs::path root = site.dir / "dst";
  const std::string dst = "file://" + (root / "model").string();
  ModelArtifacts old = float_model(ramp(10, 99.0f));
  registry().open(dst)->save(old);
  const auto before = files_in(root / "model");

  struct Case {
    std::string name;
    std::string route;  // where shard 3 of 3 comes from, after the other two
    ErrorCode code;
    std::string message;
    std::string folder = "m";  // the source model
  };
  for (const Case& c : {
           Case{"a short read", "/late/truncate/", ErrorCode::kUnavailable, "group1-shard3of3.bin"},
           Case{"a missing shard", "/late/status/404/", ErrorCode::kDataLoss,
                "weight file 3 of 3 \"group1-shard3of3.bin\" from " +
                    site.url("/late/status/404/m/group1-shard3of3.bin") + ": HTTP 404"},
           Case{"a shard unlike its Repr-Digest", "/late/digest/wrong/", ErrorCode::kDataLoss,
                "GET " + site.url("/late/digest/wrong/plain-m/group1-shard3of3.bin") +
                    " (weight file 3 of 3 \"group1-shard3of3.bin\"): the body's SHA-256 does "
                    "not match its Repr-Digest header: 2000 bytes, expected sha-256 (hex) ",
                "plain-m"},
       }) {
    CAPTURE(c.name);
    TransferStats stats;
    TransferOptions options;
    options.queue_bytes = 5000;
    options.stats = &stats;
    options.call.weight_url_converter = shard_from(site, 3, c.route, c.folder);
    Error e = error_of([&] {
      copy_model(site.url("/files/" + c.folder + "/model.json"), dst, options, registry());
    });
    CHECK(stats.streamed);
    CHECK_MESSAGE(e.code() == c.code, e.what());
    CHECK_MESSAGE(has(e.what(), c.message), e.what());
    CHECK(files_in(root / "model") == before);
    CHECK_FALSE(has_temp_folder(root));
  }
  CHECK(weight_bytes(registry().open(dst)->load()) == weight_bytes(old));
}

TEST_CASE("a streaming http:// load hands a weight file over while another is still coming") {
  Site site;
  const fs::path root = site.dir / "stalled";
  fs::create_directories(root);
  // Shard 3 of 3 stalls (60 s); the others come at once. The copy is
  // cancelled as soon as the destination's temporary folder holds a weight
  // file: that happens only if the load handed the first shards over before
  // the third arrived.
  std::atomic<bool> shard_written{false};
  TransferStats stats;
  TransferOptions options;
  options.destination_options = R"({"shard_size":5000})";
  options.queue_bytes = 5000;
  options.stats = &stats;
  options.call.weight_url_converter = shard_from(site, 3, "/stall/");
  options.call.deadline = std::chrono::system_clock::now() + std::chrono::seconds(15);
  options.call.is_cancelled = [&] {
    for (const auto& e : fs::directory_iterator(root)) {
      if (e.path().filename().string().find(".stowage-tmp-") != std::string::npos &&
          fs::directory_iterator(e.path()) != fs::directory_iterator()) {
        shard_written = true;
      }
    }
    return shard_written.load();
  };
  Error e = error_of([&] {
    copy_model(site.url("/files/m/model.json"), "file://" + (root / "m").string(), options,
               registry());
  });
  CHECK(stats.streamed);
  CHECK(shard_written);
  CHECK_MESSAGE(e.code() == ErrorCode::kCancelled, e.what());
  CHECK_FALSE(fs::exists(root / "m"));
}
