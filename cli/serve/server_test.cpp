// The server on a free port, driven over real TCP connections by a small
// HTTP/1.1 client written for the test (so the bytes on the wire are the
// test's, malformed ones included). Stores: a temporary file:// folder and
// memory://, through the production registry and plugins.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "run_program.hpp"
#include "serve_process.hpp"
#include "server_internal.hpp"
#include "stowage/digest.hpp"
#include "stowage/error.hpp"
#include "stowage/management.hpp"
#include "test_client.hpp"
#include "test_files.hpp"

namespace stowage::serve {
namespace {

namespace fs = std::filesystem;

using namespace stowage::serve::test;  // NOLINT: the test client
using stowage::testing::ServeProcess;

class TempDir : public stowage::testing::TempDir {
 public:
  TempDir() : stowage::testing::TempDir("stowage-serve-test") {}
};

// A server running on its own thread for one test.
class TestServer {
 public:
  explicit TestServer(ServerOptions options) {
    options.port = 0;
    options.access_log = [this](const AccessRecord& r) {
      std::lock_guard<std::mutex> lock(mu_);
      log_.push_back(r);
    };
    server_ = std::make_unique<Server>(std::move(options));
    thread_ = std::thread([this] {
      server_->run();
      stopped_ = true;
    });
  }
  ~TestServer() { stop(); }
  void stop() {
    if (thread_.joinable()) {
      server_->shutdown();
      thread_.join();
    }
  }
  uint16_t port() const { return server_->port(); }
  Server& server() { return *server_; }
  bool stopped() const { return stopped_; }

  Response request(const std::string& method, const std::string& target,
                   const std::vector<std::string>& headers = {}, const std::string& body = {}) {
    Client c(port());
    REQUIRE(c.connected());
    REQUIRE(c.send(request_text(method, target, headers, body)));
    return c.read(method == "HEAD");
  }
  Response upload(const std::string& target, const std::string& body = tfjs_body(),
                  std::vector<std::string> headers = {}, const std::string& method = "POST") {
    headers.push_back(upload_headers_line());
    return request(method, target, headers, body);
  }
  std::vector<AccessRecord> log() {
    std::lock_guard<std::mutex> lock(mu_);
    return log_;
  }

 private:
  std::unique_ptr<Server> server_;
  std::thread thread_;
  std::atomic<bool> stopped_{false};
  std::mutex mu_;
  std::vector<AccessRecord> log_;
};

ServerOptions file_store(const TempDir& dir) {
  ServerOptions o;
  o.store = "file://" + (dir.path() / "store").string();
  o.create_store = true;
  return o;
}

std::string unique_memory_store() {
  static std::atomic<int> counter{0};
  return "memory://server-test-" + std::to_string(::getpid()) + "-" + std::to_string(++counter);
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::string sha256_of(const std::string& bytes) {
  return sha256_hex(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
}

// kModelJson naming one weights file `file`, recording `recorded` as its
// digest unless empty.
std::string model_json_naming(const std::string& file, const std::string& recorded) {
  std::string json = kModelJson;
  const std::string paths = "\"paths\":[\"./model.weights.bin\"]";
  json.replace(json.find(paths), paths.size(), "\"paths\":[\"" + file + "\"]");
  if (!recorded.empty()) {
    const std::string end = "\"dtype\":\"float32\"}]}]";
    json.replace(json.find(end), end.size(),
                 "\"dtype\":\"float32\"}],\"sha256\":[\"" + recorded + "\"]}]");
  }
  return json;
}

// A model folder of a file:// store written directly.
void write_model(const fs::path& folder, const std::string& file, const std::string& weights,
                 const std::string& recorded) {
  const std::string json = model_json_naming(file, recorded);
  fs::create_directories(folder);
  std::ofstream(folder / "model.json", std::ios::binary) << json;
  std::ofstream(folder / file, std::ios::binary) << weights;
}

}  // namespace

TEST_CASE("serve: a TF.js upload into file:// is stored atomically and served as stored") {
  TempDir dir;
  TestServer s(file_store(dir));

  Response r = s.upload("/models/m");
  CHECK(r.status == 201);
  CHECK(r.header("location") == "/models/m/model.json");
  CHECK(contains(r.body, "\"weightDataBytes\":12"));
  // The answer names where the model can be loaded from (docs/serve.md),
  // and that replaying the upload is harmless.
  CHECK(contains(r.body, "{\"name\":\"m\",\"modelUrl\":\"/models/m/model.json\","));
  CHECK(r.header("stowage-upload-idempotent") == "true");

  // The folder is a stowage model with the uploaded bytes.
  const ModelArtifacts stored = load_model("file://" + (dir.path() / "store/m").string());
  CHECK(join(*stored.weight_data).view() == kWeights);
  CHECK(stored.user_defined_metadata.value() == R"({"labels":["a"]})");

  // model.json exactly as the store wrote it, and the weights file it names.
  r = s.request("GET", "/models/m/model.json");
  CHECK(r.status == 200);
  CHECK(r.header("content-type") == "application/json");
  std::ifstream in(dir.path() / "store/m/model.json", std::ios::binary);
  const std::string on_disk((std::istreambuf_iterator<char>(in)), {});
  CHECK(r.body == on_disk);
  CHECK(contains(r.body, "\"paths\":[\"weights.bin\"]"));
  r = s.request("GET", "/models/m/weights.bin");
  CHECK(r.status == 200);
  CHECK(r.body == kWeights);
  CHECK(r.header("content-type") == "application/octet-stream");
  CHECK(r.header("stowage-upload-idempotent") == "true");  // on every answer

  // PUT replaces; the same URL with /model.json is accepted for writes.
  const std::string other_weights("\x00\x00\x00\x40\x00\x00\x00\x40\x00\x00\x80\x3f", 12);
  r = s.upload("/models/m/model.json", tfjs_body(kModelJson, other_weights), {}, "PUT");
  CHECK(r.status == 200);
  CHECK(s.request("GET", "/models/m/weights.bin").body == other_weights);

  // Files in the folder that model.json does not name are not served.
  std::ofstream(dir.path() / "store/m/notes.txt") << "private";
  CHECK(s.request("GET", "/models/m/notes.txt").status == 404);
  CHECK(s.request("GET", "/models/nope/model.json").status == 404);
  CHECK(s.request("GET", "/models/m").status == 404);

  // Every request made one access-log line.
  s.stop();
  CHECK(s.log().size() == 8);
}

TEST_CASE("serve: memory:// is served as a rendered model.json and one weights file") {
  ServerOptions o;
  o.store = unique_memory_store();
  TestServer s(o);
  REQUIRE(s.upload("/models/team/m").status == 201);

  Response r = s.request("GET", "/models/team/m/model.json");
  CHECK(r.status == 200);
  // TF.js's http layout (getModelJSONForModelArtifacts key order).
  CHECK(r.body.find("\"format\"") < r.body.find("\"weightsManifest\""));
  CHECK(contains(r.body, "\"paths\":[\"model.weights.bin\"]"));
  CHECK(r.header("cache-control") == "public, max-age=10, must-revalidate");
  r = s.request("GET", "/models/team/m/model.weights.bin");
  CHECK(r.status == 200);
  CHECK(r.body == kWeights);
  CHECK(r.header("repr-digest") == "sha-256=:" + sha256_base64_of_hex(sha256_of(kWeights)) + ":");
  CHECK(r.header("cache-control") == "no-cache");
  const std::string etag = r.header("etag");
  CHECK(etag.size() > 2);
  CHECK(s.request("GET", "/models/team/m/model.weights.bin", {"If-None-Match: " + etag}).status ==
        304);

  r = s.request("GET", "/models");
  CHECK(r.status == 200);
  CHECK(contains(r.body, "\"name\":\"team/m\""));
  CHECK(contains(r.body, "\"modelJson\":\"/models/team/m/model.json\""));

  r = s.request("DELETE", "/models/team/m");
  CHECK(r.status == 200);
  CHECK(contains(r.body, "\"weightDataBytes\":12"));
  CHECK(s.request("GET", "/models/team/m/model.json").status == 404);
  CHECK(s.request("DELETE", "/models/team/m").status == 404);
  CHECK(s.request("GET", "/models").body == "{\"models\":[]}");
}

TEST_CASE("serve: ETag, If-None-Match, Range, If-Range and HEAD") {
  TempDir dir;
  TestServer s(file_store(dir));
  REQUIRE(s.upload("/models/m").status == 201);
  const std::string url = "/models/m/weights.bin";

  const Response full = s.request("GET", url);
  const std::string etag = full.header("etag");
  REQUIRE(etag.size() > 2);
  CHECK(full.header("accept-ranges") == "bytes");
  CHECK(s.request("GET", url, {"If-None-Match: " + etag}).status == 304);
  CHECK(s.request("GET", url, {"If-None-Match: \"other\", W/" + etag}).status == 304);
  CHECK(s.request("GET", url, {"If-None-Match: \"other\""}).status == 200);

  Response r = s.request("GET", url, {"Range: bytes=4-7"});
  CHECK(r.status == 206);
  CHECK(r.header("content-range") == "bytes 4-7/12");
  CHECK(r.body == kWeights.substr(4, 4));
  r = s.request("GET", url, {"Range: bytes=-4"});
  CHECK(r.status == 206);
  CHECK(r.body == kWeights.substr(8));
  r = s.request("GET", url, {"Range: bytes=12-"});
  CHECK(r.status == 416);
  CHECK(r.header("content-range") == "bytes */12");
  r = s.request("GET", url, {"Range: bytes=0-1", "If-Range: \"stale\""});
  CHECK(r.status == 200);
  CHECK(r.body == kWeights);
  r = s.request("GET", url, {"Range: bytes=0-1", "If-Range: " + etag});
  CHECK(r.status == 206);

  r = s.request("HEAD", url);
  CHECK(r.status == 200);
  CHECK(r.header("content-length") == "12");
  CHECK(r.header("etag") == etag);
  CHECK(r.body.empty());

  // A new save changes the entity tag.
  REQUIRE(s.upload("/models/m", tfjs_body(kModelJson, std::string(12, '\0')), {}, "PUT").status ==
          200);
  CHECK(s.request("GET", url, {"If-None-Match: " + etag}).status == 200);
}

TEST_CASE("serve: weight files carry Repr-Digest; digest-named ones are immutable") {
  TempDir dir;
  const fs::path store = dir.path() / "store";
  const std::string hex = sha256_of(kWeights);
  const std::string b64 = sha256_base64_of_hex(hex);
  const std::string named = hex.substr(0, 16) + ".bin";
  write_model(store / "plain", "weights.bin", kWeights, "");
  write_model(store / "ca", named, kWeights, hex);
  // Named like a digest, but not this file's.
  write_model(store / "liar", "0123456789abcdef.bin", kWeights, hex);
  TestServer s(file_store(dir));

  // model.json: reused for a few seconds, then revalidated; no digest.
  Response r = s.request("GET", "/models/plain/model.json");
  CHECK(r.status == 200);
  CHECK(r.header("cache-control") == "public, max-age=10, must-revalidate");
  CHECK(r.header("repr-digest").empty());
  CHECK(
      s.request("GET", "/models/plain/model.json", {"If-None-Match: " + r.header("etag")}).status ==
      304);

  // A TF.js-named file without a recorded digest: computed from its bytes.
  r = s.request("GET", "/models/plain/weights.bin");
  CHECK(r.body == kWeights);
  CHECK(r.header("repr-digest") == "sha-256=:" + b64 + ":");
  CHECK(r.header("digest") == "sha-256=" + b64);
  CHECK(r.header("cache-control") == "no-cache");
  CHECK(s.request("HEAD", "/models/plain/weights.bin").header("repr-digest") ==
        "sha-256=:" + b64 + ":");
  // A new version of the file (another inode) gets its own digest.
  const std::string other(12, '\x07');
  std::ofstream(store / "plain" / "next.bin", std::ios::binary) << other;
  fs::rename(store / "plain" / "next.bin", store / "plain" / "weights.bin");
  r = s.request("GET", "/models/plain/weights.bin");
  CHECK(r.body == other);
  CHECK(r.header("repr-digest") == "sha-256=:" + sha256_base64_of_hex(sha256_of(other)) + ":");

  // Digest-named: cached for a year, the digest is the entity tag.
  r = s.request("GET", "/models/ca/" + named);
  CHECK(r.status == 200);
  CHECK(r.body == kWeights);
  CHECK(r.header("cache-control") == "public, max-age=31536000, immutable");
  CHECK(r.header("etag") == "\"" + hex + "\"");
  CHECK(r.header("repr-digest") == "sha-256=:" + b64 + ":");
  r = s.request("GET", "/models/ca/" + named, {"If-None-Match: \"" + hex + "\""});
  CHECK(r.status == 304);
  CHECK(r.header("cache-control") == "public, max-age=31536000, immutable");
  CHECK(s.request("GET", "/models/ca/model.json").header("cache-control") ==
        "public, max-age=10, must-revalidate");

  r = s.request("GET", "/models/liar/0123456789abcdef.bin");
  CHECK(r.status == 200);
  CHECK(r.header("cache-control") == "no-cache");
  CHECK(r.header("etag") != "\"" + hex + "\"");
  CHECK(r.header("repr-digest") == "sha-256=:" + b64 + ":");

  // Behind a read token, caches keep them private.
  s.stop();
  ServerOptions o = file_store(dir);
  o.token = "t0ken";
  o.auth_reads = true;
  TestServer guarded(o);
  r = guarded.request("GET", "/models/ca/" + named, {"Authorization: Bearer t0ken"});
  CHECK(r.status == 200);
  CHECK(r.header("cache-control") == "private, max-age=31536000, immutable");
  CHECK(guarded.request("GET", "/models/ca/model.json", {"Authorization: Bearer t0ken"})
            .header("cache-control") == "private, max-age=10, must-revalidate");
}

TEST_CASE("serve: a weight file that differs from its recorded digest is refused over http") {
  TempDir dir;
  const fs::path store = dir.path() / "store";
  // The same size as the recorded bytes, one byte flipped on disk.
  std::string rotted = kWeights;
  rotted[5] = static_cast<char>(rotted[5] ^ 0x01);
  const std::string hex = sha256_of(kWeights);
  write_model(store / "rot", "weights.bin", rotted, hex);
  write_model(store / "ok", "weights.bin", kWeights, hex);
  TestServer s(file_store(dir));
  const std::string base = "http://127.0.0.1:" + std::to_string(s.port()) + "/models/";

  Response r = s.request("GET", "/models/rot/weights.bin");
  CHECK(r.header("repr-digest") == "sha-256=:" + sha256_base64_of_hex(hex) + ":");
  CHECK(r.body == rotted);

  // An upload whose weights differ from the digest its model.json records
  // is refused and leaves nothing.
  r = s.upload("/models/damaged", tfjs_body(model_json_naming("./model.weights.bin", hex), rotted));
  CHECK(r.status == 400);
  CHECK(contains(r.body,
                 "upload of model 'damaged': the weights file 'model.weights.bin' (12 "
                 "bytes) does not match its digest in model.json: expected sha-256 (hex) " +
                     hex + ", got " + sha256_of(rotted)));
  CHECK_FALSE(fs::exists(store / "damaged"));
  CHECK(
      s.upload("/models/intact", tfjs_body(model_json_naming("./model.weights.bin", hex), kWeights))
          .status == 201);

  const ModelArtifacts ok = load_model(base + "ok/model.json");
  CHECK(join(*ok.weight_data).view() == kWeights);
  try {
    load_model(base + "rot/model.json");
    FAIL("the rotted file was accepted");
  } catch (const Error& e) {
    // model.json records the digest serve also sends as Repr-Digest: the
    // host's check of that record catches it (the bytes are hashed once).
    CHECK(e.code() == ErrorCode::kDataLoss);
    CHECK(std::string(e.what()) ==
          "model.json at " + base + "rot/model.json: weight group 1 file 1 of 1 'weights.bin' (" +
              base + "rot/weights.bin, 12 bytes) has SHA-256 " + sha256_of(rotted) +
              ", but model.json records " + hex);
  }
}

TEST_CASE("serve: a bearer token guards writes, and reads when asked; it is never logged") {
  TempDir dir;
  ServerOptions o = file_store(dir);
  o.token = "s3cr3t-token";
  {
    TestServer s(o);
    Response r = s.upload("/models/m");
    CHECK(r.status == 401);
    CHECK(r.header("www-authenticate") == "Bearer realm=\"stowage\"");
    r = s.upload("/models/m", tfjs_body(), {"Authorization: Bearer wrong"});
    CHECK(r.status == 401);
    CHECK(contains(r.header("www-authenticate"), "invalid_token"));
    CHECK_FALSE(fs::exists(dir.path() / "store/m"));
    CHECK(s.upload("/models/m", tfjs_body(), {"Authorization: Bearer s3cr3t-token"}).status == 201);
    CHECK(s.request("GET", "/models/m/model.json").status == 200);
    CHECK(s.request("DELETE", "/models/m").status == 401);
    for (const AccessRecord& rec : s.log()) {
      CHECK_FALSE(contains(format_access_record(rec, false), "s3cr3t"));
      CHECK_FALSE(contains(format_access_record(rec, true), "s3cr3t"));
    }
  }
  o.auth_reads = true;
  TestServer s(o);
  CHECK(s.request("GET", "/models/m/model.json").status == 401);
  CHECK(s.request("GET", "/models").status == 401);
  CHECK(s.request("GET", "/models/m/model.json", {"Authorization: Bearer s3cr3t-token"}).status ==
        200);
  // Preflights carry no credentials and are never refused for that.
  CHECK(s.request("OPTIONS", "/models/m").status == 204);
}

TEST_CASE("serve: the store is checked before the server listens") {
  TempDir dir;
  auto error_of = [](ServerOptions o) -> Error {
    o.port = 0;
    try {
      Server server(std::move(o));
    } catch (const Error& e) {
      return e;
    }
    FAIL("the server started");
    return Error(ErrorCode::kOk, "");
  };

  SUBCASE("a scheme no plugin serves") {
    ServerOptions o;
    o.store = "s4://x";
    const Error e = error_of(o);
    CHECK(e.code() == ErrorCode::kNotFound);
    CHECK(contains(e.what(), "'s4'"));
  }
  SUBCASE("an option the store's plugin does not know") {
    ServerOptions o = file_store(dir);
    o.store_options = R"({"shard_sise":5})";
    const Error e = error_of(o);
    CHECK(e.code() == ErrorCode::kInvalidArgument);
    CHECK(contains(e.what(), "Unknown option \"shard_sise\""));
    CHECK_FALSE(fs::exists(dir.path() / "store"));  // nothing made for a store refused
  }
  SUBCASE("a file:// folder that does not exist, unless create_store") {
    ServerOptions o = file_store(dir);
    o.create_store = false;
    const Error e = error_of(o);
    CHECK(e.code() == ErrorCode::kNotFound);
    CHECK(std::string(e.what()) == "the store folder " + (dir.path() / "store").string() +
                                       " does not exist (create it, or pass --create)");
    CHECK_FALSE(fs::exists(dir.path() / "store"));

    o.create_store = true;
    o.port = 0;
    Server made(o);
    CHECK(made.created_store());
    CHECK(fs::is_directory(dir.path() / "store"));
    Server again(o);  // it exists now: nothing to make
    CHECK_FALSE(again.created_store());
  }
  SUBCASE("a file where the folder should be") {
    stowage::testing::write_file(dir.path() / "store", "not a folder");
    ServerOptions o = file_store(dir);
    const Error e = error_of(o);
    CHECK(e.code() == ErrorCode::kInvalidArgument);
    CHECK(contains(e.what(), "is not a folder"));
  }
}

#ifdef STOWAGE_CLI_EXE
TEST_CASE("serve: the stowage command refuses a store it cannot use, with the CLI's exit codes") {
  TempDir dir;
  auto serve = [&](std::vector<std::string> args) {
    args.insert(args.begin(), "serve");
    args.insert(args.end(), {"--port", "0"});
    return stowage::testing::run_program(
        STOWAGE_CLI_EXE, args,
        {.cwd = dir.path(), .drop_env = {"STOWAGE_"}, .timeout = std::chrono::seconds(30)});
  };
  const auto unknown = serve({"--store", "s4://x"});
  CHECK(unknown.code == 3);
  CHECK(unknown.out.empty());  // no port line: it never listened
  CHECK(unknown.err.starts_with("stowage: error: No handler for scheme 's4'"));

  const auto option = serve({"--store", dir.path().string(), "-o", "shard_sise=5"});
  CHECK(option.code == 4);
  CHECK(option.out.empty());
  CHECK(contains(option.err, "Unknown option \"shard_sise\""));

  const auto missing = serve({"--store", "typo"});
  CHECK(missing.code == 3);
  CHECK(missing.out.empty());
  CHECK(missing.err == "stowage: error: the store folder " + (dir.path() / "typo").string() +
                           " does not exist (create it, or pass --create)\n");
  CHECK_FALSE(fs::exists(dir.path() / "typo"));
}
#endif

// An in-process store whose failures name local folders, as a plugin's may.
class LeakyHandler final : public IOHandler {
 public:
  explicit LeakyHandler(std::string url) : url_(std::move(url)) {}
  const std::string& url() const override { return url_; }
  bool can_save() const override { return true; }
  bool can_load() const override { return true; }
  bool can_list() const override { return true; }
  bool can_remove() const override { return true; }
  SaveResult save(const ModelArtifacts&, const CallContext&) override {
    throw Error(ErrorCode::kPermissionDenied, "cannot write /srv/secret/leaky/m: EACCES");
  }
  ModelArtifacts load(const CallContext&) override {
    throw Error(ErrorCode::kInternal, "cannot map /srv/secret/leaky/m/weights.bin: EIO");
  }
  std::vector<ListedModel> list(const CallContext&) override {
    throw Error(ErrorCode::kNotFound,
                "No handler for scheme 'x'; folders searched: /opt/secret/plugins");
  }
  ModelArtifactsInfo remove(const CallContext&) override {
    throw Error(ErrorCode::kUnavailable, "endpoint http://10.1.2.3:9000 refused the connection");
  }

 private:
  std::string url_;
};

TEST_CASE("serve: a failing store's details go to the log, clients get a short answer") {
  Registry registry;
  registry.register_scheme("leaky", [](std::string_view url, std::string_view) {
    return std::make_unique<LeakyHandler>(std::string(url));
  });
  std::mutex mu;
  std::vector<std::string> logged;
  ServerOptions o;
  o.store = "leaky://store";
  o.registry = &registry;
  o.cache_ttl = std::chrono::milliseconds(0);
  o.error_log = [&](std::string_view m) {
    std::lock_guard<std::mutex> lock(mu);
    logged.emplace_back(m);
  };
  TestServer s(o);

  struct Case {
    Response response;
    int status;
    std::string code;
    std::string message;
    std::string detail;  // the store's message, logged once
  };
  const std::vector<Case> cases = {
      {s.request("GET", "/models"), 404, "not found",
       "the store was not found (the server's log has the details)",
       "No handler for scheme 'x'; folders searched: /opt/secret/plugins"},
      {s.upload("/models/m"), 500, "permission denied",
       "the store refused access (the server's log has the details)",
       "cannot write /srv/secret/leaky/m: EACCES"},
      {s.request("GET", "/models/m/model.json"), 500, "internal",
       "the store failed (the server's log has the details)",
       "cannot map /srv/secret/leaky/m/weights.bin: EIO"},
      {s.request("DELETE", "/models/m"), 503, "unavailable",
       "the store is unavailable; try again later (the server's log has the details)",
       "endpoint http://10.1.2.3:9000 refused the connection"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.response.body);
    CHECK(c.response.status == c.status);
    CHECK(c.response.body ==
          "{\"error\":{\"code\":\"" + c.code + "\",\"message\":\"" + c.message + "\"}}");
    CHECK_FALSE(contains(c.response.body, "secret"));
    CHECK_FALSE(contains(c.response.body, "10.1.2.3"));
    std::lock_guard<std::mutex> lock(mu);
    CHECK(std::count(logged.begin(), logged.end(), c.detail) == 1);
  }
}

TEST_CASE("serve: untrusted names never reach outside the store") {
  TempDir dir;
  TestServer s(file_store(dir));
  const std::vector<std::string> bad = {"/models/..",        "/models/%2e%2e",
                                        "/models/a/../../x", "/models/a%2f..%2f..%2fx",
                                        "/models/.hidden",   "/models/a%00",
                                        "/models/a%0ab",     "/models//etc",
                                        "/models/a\\..\\b",  "/models/" + std::string(250, 'n')};
  for (const std::string& target : bad) {
    CAPTURE(target);
    const Response r = s.upload(target);
    CHECK(r.status == 400);
    CHECK(contains(r.body, "\"code\":\"invalid argument\""));
  }
  CHECK(s.request("GET", "/models/../../etc/passwd").status == 400);
  CHECK(s.request("GET", "/models/m/..%2f..%2fx").status == 400);
  // Nothing was written anywhere: the store folder (made at start-up) is
  // still empty and nothing is beside it.
  CHECK(fs::is_empty(dir.path() / "store"));
  CHECK(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator{}) == 1);
}

TEST_CASE("serve: malformed and incomplete uploads get 4xx and leave no model") {
  TempDir dir;
  TestServer s(file_store(dir));
  const std::string body = tfjs_body();

  // Wrong media type, bad boundary, truncated body, missing part, bad sizes.
  CHECK(s.request("POST", "/models/m", {"Content-Type: application/json"}, kModelJson).status ==
        415);
  CHECK(s.request("POST", "/models/m", {"Content-Type: multipart/form-data"}, body).status == 400);
  CHECK(s.request("POST", "/models/m", {"Content-Type: multipart/form-data; boundary=other"}, body)
            .status == 400);
  CHECK(s.upload("/models/m", body.substr(0, body.size() - 10)).status == 400);
  Response r = s.upload("/models/m", tfjs_body(kModelJson, kWeights.substr(0, 8)));
  CHECK(r.status == 400);
  CHECK(contains(r.body, "\"code\":\"data loss\""));
  r = s.upload("/models/m",
               "--" + kBoundary +
                   "\r\nContent-Disposition: form-data; name=\"model.weights.bin\"\r\n\r\n" +
                   kWeights + "\r\n--" + kBoundary + "--\r\n");
  CHECK(r.status == 400);
  CHECK(contains(r.body, "model.json"));
  CHECK(s.upload("/models/m", tfjs_body("{\"modelTopology\":")).status == 400);
  CHECK_FALSE(fs::exists(dir.path() / "store/m"));

  // The client hangs up half-way: nothing is stored, and the server goes on.
  {
    Client c(s.port());
    REQUIRE(c.send(
        request_text("POST", "/models/m",
                     {upload_headers_line(), "Content-Length: " + std::to_string(body.size())}, {},
                     false) +
        body.substr(0, body.size() / 2)));
  }
  CHECK(s.request("GET", "/models").status == 200);
  CHECK_FALSE(fs::exists(dir.path() / "store/m"));
}

TEST_CASE("serve: limits on body, parts, headers and connections") {
  TempDir dir;
  ServerOptions o = file_store(dir);
  o.limits.max_upload_bytes = 4096;
  o.limits.max_parts = 3;
  o.limits.max_header_bytes = 2048;
  o.limits.max_model_json_bytes = 2048;
  TestServer s(o);

  // Content-Length over the limit: refused before any of the body is read.
  {
    Client c(s.port());
    REQUIRE(c.send(request_text("POST", "/models/m",
                                {upload_headers_line(), "Content-Length: 1000000"}, {}, false)));
    const Response r = c.read();
    CHECK(r.status == 413);
    CHECK(r.header("connection") == "close");
    CHECK(c.closed_by_server());
  }
  // A chunked body that grows past the limit.
  {
    Client c(s.port());
    std::string text = request_text(
        "POST", "/models/m", {upload_headers_line(), "Transfer-Encoding: chunked"}, {}, false);
    const std::string chunk(1000, 'x');
    for (int i = 0; i < 6; ++i) text += "3e8\r\n" + chunk + "\r\n";
    c.send(text);
    CHECK(c.read().status == 413);
  }
  // Too many parts; a model.json part over its limit.
  std::string parts;
  for (int i = 0; i < 4; ++i) {
    parts += "--" + kBoundary + "\r\nContent-Disposition: form-data; name=\"p" + std::to_string(i) +
             "\"\r\n\r\nx\r\n";
  }
  CHECK(s.upload("/models/m", parts + "--" + kBoundary + "--\r\n").status == 413);
  CHECK(s.upload("/models/m", tfjs_body(kModelJson + std::string(3000, ' '))).status == 413);
  // Request headers over the limit.
  CHECK(s.request("GET", "/models", {"X-Pad: " + std::string(4000, 'a')}).status == 431);
  CHECK_FALSE(fs::exists(dir.path() / "store/m"));
}

TEST_CASE("serve: connections over the limit get 503") {
  ServerOptions o;
  o.store = unique_memory_store();
  o.limits.max_connections = 3;
  TestServer s(o);
  // Three connections fill the server; the fourth is turned away.
  {
    std::vector<std::unique_ptr<Client>> idle;
    for (int i = 0; i < 3; ++i) {
      idle.push_back(std::make_unique<Client>(s.port()));
      REQUIRE(idle.back()->connected());
    }
    // Make sure the server has taken all three.
    REQUIRE(idle[2]->send(request_text("GET", "/models")));
    REQUIRE(idle[2]->read().status == 200);
    Client extra(s.port());
    extra.send(request_text("GET", "/models"));
    const Response r = extra.read();
    CHECK(r.status == 503);
    CHECK(r.header("retry-after") == "1");
    CHECK(r.header("stowage-upload-idempotent") == "true");
    CHECK(r.body ==
          R"({"error":{"code":"unavailable","message":"too many connections; try again"}})");
  }
  // Once they are gone the server takes connections again.
  Response r;
  for (int attempt = 0; attempt < 50 && r.status != 200; ++attempt) {
    r = s.request("GET", "/models");
    if (r.status != 200) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  CHECK(r.status == 200);
}

TEST_CASE("serve: slow clients time out without holding up others") {
  TempDir dir;
  ServerOptions o = file_store(dir);
  o.timeouts.header = std::chrono::milliseconds(800);
  o.timeouts.body = std::chrono::milliseconds(800);
  TestServer s(o);
  REQUIRE(s.upload("/models/m").status == 201);

  // Half a request line, then nothing; and half an upload body.
  Client slow_headers(s.port());
  slow_headers.send("GET /models HTTP/1.1\r\nHo");
  Client slow_body(s.port());
  const std::string body = tfjs_body();
  slow_body.send(
      request_text("POST", "/models/x",
                   {upload_headers_line(), "Content-Length: " + std::to_string(body.size())}, {},
                   false) +
      body.substr(0, 40));
  Client idle(s.port());

  // Meanwhile others are served at once, keep-alive included.
  Client other(s.port());
  for (int i = 0; i < 3; ++i) {
    other.send(request_text("GET", "/models/m/weights.bin"));
    const Response r = other.read();
    CHECK(r.status == 200);
    CHECK(r.body == kWeights);
  }
  CHECK_FALSE(slow_headers.got_bytes());
  CHECK_FALSE(slow_body.got_bytes());

  Response r = slow_headers.read();
  CHECK(r.status == 408);
  CHECK(slow_headers.closed_by_server());
  r = slow_body.read();
  CHECK(r.status == 408);
  CHECK(slow_body.closed_by_server());
  CHECK_FALSE(fs::exists(dir.path() / "store/x"));
  // An idle keep-alive connection is closed without a word.
  CHECK(idle.closed_by_server());
  CHECK_FALSE(idle.got_bytes());
}

TEST_CASE("serve: CORS preflight and headers for allowed origins only") {
  TempDir dir;
  ServerOptions o = file_store(dir);
  o.cors_origins = {"http://127.0.0.1:3000"};
  TestServer s(o);

  Response r = s.request("OPTIONS", "/models/m",
                         {"Origin: http://127.0.0.1:3000", "Access-Control-Request-Method: POST",
                          "Access-Control-Request-Headers: authorization, content-type"});
  CHECK(r.status == 204);
  CHECK(r.header("access-control-allow-origin") == "http://127.0.0.1:3000");
  CHECK(contains(r.header("access-control-allow-methods"), "POST"));
  CHECK(r.header("access-control-allow-headers") == "authorization, content-type");
  CHECK(r.has("access-control-max-age"));

  r = s.request("OPTIONS", "/models/m",
                {"Origin: http://evil.example", "Access-Control-Request-Method: POST"});
  CHECK(r.status == 403);
  CHECK_FALSE(r.has("access-control-allow-origin"));

  r = s.upload("/models/m", tfjs_body(), {"Origin: http://127.0.0.1:3000"});
  CHECK(r.status == 201);
  CHECK(r.header("access-control-allow-origin") == "http://127.0.0.1:3000");
  CHECK(contains(r.header("access-control-expose-headers"), "ETag"));
  CHECK(r.header("vary") == "Origin");
  r = s.request("GET", "/models/m/model.json", {"Origin: http://other:1"});
  CHECK(r.status == 200);
  CHECK_FALSE(r.has("access-control-allow-origin"));
  r = s.request("GET", "/models/m/model.json");
  CHECK_FALSE(r.has("access-control-allow-origin"));
}

TEST_CASE("serve: HTTP details: 100-continue, keep-alive, methods, unread bodies, static files") {
  TempDir dir;
  fs::create_directories(dir.path() / "www/js");
  std::ofstream(dir.path() / "www/index.html") << "<html>hi</html>";
  std::ofstream(dir.path() / "www/js/app.js") << "1;";
  std::ofstream(dir.path() / "www/.secret") << "no";
  ServerOptions o = file_store(dir);
  o.static_dir = (dir.path() / "www").string();
  TestServer s(o);

  // Expect: 100-continue: the server asks for the body once it accepts the headers.
  {
    const std::string body = tfjs_body();
    Client c(s.port());
    c.send(request_text("POST", "/models/m",
                        {upload_headers_line(), "Expect: 100-continue",
                         "Content-Length: " + std::to_string(body.size())},
                        {}, false));
    REQUIRE(c.fill());
    c.send(body);
    CHECK(c.read().status == 201);
    // The same connection serves the next request.
    c.send(request_text("GET", "/models/m/weights.bin"));
    CHECK(c.read().body == kWeights);
  }
  CHECK(s.request("PATCH", "/models/m").status == 405);
  Response r = s.request("POST", "/models");
  CHECK(r.status == 400);
  r = s.request("PUT", "/models/m/weights.bin/x");
  CHECK((r.status == 400 || r.status == 415));
  CHECK(s.request("POST", "/index.html").status == 405);

  // A GET with a body it will not read: answered, then the connection closes.
  {
    Client c(s.port());
    c.send(request_text("GET", "/models", {}, "unexpected body"));
    r = c.read();
    CHECK(r.status == 200);
    CHECK(r.header("connection") == "close");
    CHECK(c.closed_by_server());
  }

  r = s.request("GET", "/");
  CHECK(r.status == 200);
  CHECK(r.body == "<html>hi</html>");
  CHECK(contains(r.header("content-type"), "text/html"));
  r = s.request("GET", "/js/app.js");
  CHECK(r.body == "1;");
  CHECK(contains(r.header("content-type"), "javascript"));
  CHECK(s.request("GET", "/.secret").status == 400);
  CHECK(s.request("GET", "/nothing.txt").status == 404);
  CHECK(s.request("GET", "/js/../index.html").status == 400);
  // Garbage instead of HTTP.
  {
    Client c(s.port());
    c.send("NOT HTTP AT ALL\r\n\r\n");
    CHECK(c.read().status == 400);
    CHECK(c.closed_by_server());
  }
}

TEST_CASE("serve: shutdown lets an upload in flight finish and refuses new connections") {
  TempDir dir;
  TestServer s(file_store(dir));
  const std::string body = tfjs_body();
  Client c(s.port());
  c.send(request_text("POST", "/models/m",
                      {upload_headers_line(), "Content-Length: " + std::to_string(body.size())}, {},
                      false) +
         body.substr(0, 100));
  Client idle(s.port());
  // Both connections are in: a request on a third proves the server has
  // accepted everything before it.
  CHECK(s.request("GET", "/models").status == 200);

  s.server().shutdown();
  CHECK(idle.closed_by_server());
  // The listening socket is closed.
  for (int i = 0; i < 100; ++i) {
    Client probe(s.port());
    if (!probe.connected()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CHECK_FALSE(Client(s.port()).connected());
  CHECK_FALSE(s.stopped());

  c.send(body.substr(100));
  const Response r = c.read();
  CHECK(r.status == 201);
  CHECK(r.header("connection") == "close");
  s.stop();
  CHECK(s.stopped());
  CHECK(join(*load_model("file://" + (dir.path() / "store/m").string()).weight_data).view() ==
        kWeights);
}

#ifdef STOWAGE_CLI_EXE
TEST_CASE("serve: the stowage command prints its port, then finishes an upload after SIGTERM") {
  TempDir dir;
  const std::string store = "file://" + (dir.path() / "store").string();
  ServeProcess serve(STOWAGE_CLI_EXE, dir.path() / "serve", {"--store", store, "--create"});
  const uint16_t port = serve.port();

  const std::string body = tfjs_body();
  Client c(port);
  REQUIRE(c.connected());
  c.send(request_text("POST", "/models/m",
                      {upload_headers_line(), "Content-Length: " + std::to_string(body.size())}, {},
                      false) +
         body.substr(0, 200));
  // Wait until the server has the request: its access log comes after the
  // response, so probe with another request and read its log line.
  {
    Client probe(port);
    probe.send(request_text("GET", "/models"));
    REQUIRE(probe.read().status == 200);
  }
  serve.signal(SIGTERM);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  c.send(body.substr(200));
  const Response r = c.read();
  CHECK(r.status == 201);

  CHECK(serve.wait() == 0);
  // The rest of stdout: one access-log line per request.
  const std::string log = serve.log();
  CHECK(contains(log, "\"GET /models\" 200"));
  CHECK(contains(log, "\"POST /models/m\" 201"));
  CHECK(join(*load_model(store + "/m").weight_data).view() == kWeights);
  // --create made the missing folder, and the command said so.
  CHECK(contains(serve.err(), "stowage serve: created the store folder " + store + "\n"));
}
#endif

}  // namespace stowage::serve
