// The server on a free port, driven over real TCP connections by a small
// HTTP/1.1 client written for the test (so the bytes on the wire are the
// test's, malformed ones included). Stores: a temporary file:// folder and
// memory://, through the production registry and plugins.
#include "server.hpp"

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <poll.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
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

#include "stowage/error.hpp"
#include "stowage/management.hpp"
#include "test_files.hpp"

extern char** environ;

namespace stowage::serve {
namespace {

namespace fs = std::filesystem;

// The model of spec §9: Dense(1) on 2 inputs, kernel ones, bias zero.
const std::string kModelJson =
    R"({"modelTopology":{"class_name":"Sequential","config":{"name":"sequential_1","layers":[)"
    R"({"class_name":"Dense","config":{"units":1,"activation":"linear","use_bias":true,)"
    R"("name":"dense_Dense1","trainable":true,"batch_input_shape":[null,2],"dtype":"float32"}}]},)"
    R"("keras_version":"tfjs-layers 4.22.0","backend":"tensor_flow.js"},"format":"layers-model",)"
    R"("generatedBy":"TensorFlow.js tfjs-layers v4.22.0","convertedBy":null,"weightsManifest":)"
    R"([{"paths":["./model.weights.bin"],"weights":[{"name":"dense_Dense1/kernel","shape":[2,1],)"
    R"("dtype":"float32"},{"name":"dense_Dense1/bias","shape":[1],"dtype":"float32"}]}],)"
    R"("userDefinedMetadata":{"labels":["a"]}})";
const std::string kWeights("\x00\x00\x80\x3f\x00\x00\x80\x3f\x00\x00\x00\x00", 12);
const std::string kBoundary = "----formdata-undici-041939371652";

std::string tfjs_body(const std::string& json = kModelJson, const std::string& weights = kWeights) {
  return "--" + kBoundary +
         "\r\nContent-Disposition: form-data; name=\"model.json\"; filename=\"model.json\"\r\n"
         "Content-Type: application/json\r\n\r\n" +
         json + "\r\n--" + kBoundary +
         "\r\nContent-Disposition: form-data; name=\"model.weights.bin\"; "
         "filename=\"model.weights.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n" +
         weights + "\r\n--" + kBoundary + "--\r\n";
}

struct Response {
  int status = 0;
  std::map<std::string, std::string> headers;  // lowercase names
  std::string body;
  bool has(const std::string& name) const { return headers.count(name) > 0; }
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

// One TCP connection speaking HTTP/1.1 by hand.
class Client {
 public:
  explicit Client(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~Client() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool connected() const { return connected_; }

  bool send(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // Waits up to timeout_ms for bytes; false when none came (or the peer closed).
  bool fill(int timeout_ms = 10000) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) <= 0) return false;
    char buf[65536];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) {
      eof_ = true;
      return false;
    }
    in_.append(buf, static_cast<size_t>(n));
    return true;
  }

  // Reads one response; status 0 when the connection ended first.
  Response read(bool head = false, int timeout_ms = 10000) {
    Response r;
    size_t end;
    while ((end = in_.find("\r\n\r\n")) == std::string::npos) {
      if (!fill(timeout_ms)) return r;
    }
    std::istringstream lines(in_.substr(0, end));
    in_.erase(0, end + 4);
    std::string line;
    std::getline(lines, line);
    r.status = std::stoi(line.substr(9, 3));
    while (std::getline(lines, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      const size_t colon = line.find(':');
      std::string name = line.substr(0, colon);
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      r.headers[name] = line.substr(colon + 2);
    }
    if (r.status == 100) return read(head, timeout_ms);
    const size_t length =
        (head || !r.has("content-length")) ? 0 : std::stoul(r.header("content-length"));
    while (in_.size() < length) {
      if (!fill(timeout_ms)) break;
    }
    r.body = in_.substr(0, length);
    in_.erase(0, std::min(length, in_.size()));
    return r;
  }

  // True when the server closes the connection within timeout_ms.
  bool closed_by_server(int timeout_ms = 10000) {
    while (!eof_) {
      if (!fill(timeout_ms) && !eof_) return false;
    }
    return true;
  }
  bool got_bytes() const { return !in_.empty(); }

 private:
  int fd_ = -1;
  bool connected_ = false;
  bool eof_ = false;
  std::string in_;
};

std::string request_text(const std::string& method, const std::string& target,
                         const std::vector<std::string>& headers = {}, const std::string& body = {},
                         bool with_length = true) {
  std::string text = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  for (const std::string& h : headers) text += h + "\r\n";
  if (with_length && (!body.empty() || method == "POST" || method == "PUT")) {
    text += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  }
  return text + "\r\n" + body;
}

std::string upload_headers_line() {
  return "Content-Type: multipart/form-data; boundary=" + kBoundary;
}

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
  return o;
}

std::string unique_memory_store() {
  static std::atomic<int> counter{0};
  return "memory://server-test-" + std::to_string(::getpid()) + "-" + std::to_string(++counter);
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
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
  r = s.request("GET", "/models/team/m/model.weights.bin");
  CHECK(r.status == 200);
  CHECK(r.body == kWeights);
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
  // Nothing was written anywhere: the store folder was never even created.
  CHECK_FALSE(fs::exists(dir.path() / "store"));
  CHECK(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator{}) == 0);
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
  int out[2];
  REQUIRE(::pipe(out) == 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_addclose(&actions, out[0]);
  const std::string store = "file://" + (dir.path() / "store").string();
  std::vector<std::string> args = {STOWAGE_CLI_EXE, "serve", "--store", store, "--port", "0"};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  REQUIRE(posix_spawn(&pid, STOWAGE_CLI_EXE, &actions, nullptr, argv.data(), environ) == 0);
  posix_spawn_file_actions_destroy(&actions);
  ::close(out[1]);

  // The first line of stdout is the port.
  std::string text;
  char ch;
  while (::read(out[0], &ch, 1) == 1 && ch != '\n') text += ch;
  REQUIRE(!text.empty());
  const auto port = static_cast<uint16_t>(std::stoi(text));

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
  REQUIRE(::kill(pid, SIGTERM) == 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  c.send(body.substr(200));
  const Response r = c.read();
  CHECK(r.status == 201);

  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  // The rest of stdout: one access-log line per request.
  std::string log;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(out[0], buf, sizeof buf)) > 0) log.append(buf, static_cast<size_t>(n));
  ::close(out[0]);
  CHECK(contains(log, "\"GET /models\" 200"));
  CHECK(contains(log, "\"POST /models/m\" 201"));
  CHECK(join(*load_model(store + "/m").weight_data).view() == kWeights);
}
#endif

}  // namespace stowage::serve
