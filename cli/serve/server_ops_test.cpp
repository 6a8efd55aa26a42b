// The server for operators, over real connections: /healthz, /readyz
// (a file:// store whose folder goes away, a store that does not answer in
// time), /metrics read by the Prometheus client's own parser, the limits
// under load (connections per client, upload bytes in flight) and the
// `stowage serve` options for them, with the JSON access log.
#include <doctest/doctest.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include "run_program.hpp"
#include "serve_process.hpp"
#include "server_internal.hpp"
#include "stowage/error.hpp"
#include "test_client.hpp"
#include "test_files.hpp"

namespace stowage::serve {
namespace {

namespace fs = std::filesystem;
using namespace stowage::serve::test;  // NOLINT: the test client
using stowage::testing::ServeProcess;

class TempDir : public stowage::testing::TempDir {
 public:
  TempDir() : stowage::testing::TempDir("stowage-serve-ops-test") {}
};

// A server on its own thread, its error log kept.
class OpsServer {
 public:
  explicit OpsServer(ServerOptions options) {
    options.port = 0;
    options.error_log = [this](std::string_view m) {
      std::lock_guard<std::mutex> lock(mu_);
      errors_.emplace_back(m);
    };
    server_ = std::make_unique<Server>(std::move(options));
    thread_ = std::thread([this] { server_->run(); });
  }
  ~OpsServer() {
    server_->shutdown();
    thread_.join();
  }
  uint16_t port() const { return server_->port(); }
  Response request(const std::string& method, const std::string& target,
                   const std::vector<std::string>& headers = {}, const std::string& body = {}) {
    Client c(port());
    REQUIRE(c.connected());
    REQUIRE(c.send(request_text(method, target, headers, body)));
    return c.read(method == "HEAD");
  }
  Response upload(const std::string& target, const std::string& body = tfjs_body()) {
    return request("POST", target, {upload_headers_line()}, body);
  }
  std::vector<std::string> errors() {
    std::lock_guard<std::mutex> lock(mu_);
    return errors_;
  }

 private:
  std::unique_ptr<Server> server_;
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::string> errors_;
};

ServerOptions file_store(const TempDir& dir) {
  ServerOptions o;
  o.store = "file://" + (dir.path() / "store").string();
  o.create_store = true;
  return o;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::string busy_body(const std::string& message) {
  return R"({"error":{"code":"unavailable","message":")" + message + "\"}}";
}

// A store whose listing takes `delay`: one that does not answer in time.
class SlowHandler final : public IOHandler {
 public:
  SlowHandler(std::string url, std::chrono::milliseconds delay)
      : url_(std::move(url)), delay_(delay) {}
  const std::string& url() const override { return url_; }
  bool can_list() const override { return true; }
  std::vector<ListedModel> list(const CallContext&) override {
    std::this_thread::sleep_for(delay_);
    return {};
  }

 private:
  std::string url_;
  std::chrono::milliseconds delay_;
};

// The scrape read by prometheus_client's parser (metrics_check.py, run by
// the system python that Debian's python3-prometheus-client installs for):
// sample text -> value. Empty when the parser is absent and this is not CI,
// which the caller reports as a skip.
std::map<std::string, std::string> parse_scrape(const TempDir& dir, const std::string& scrape,
                                                bool& parsed) {
  parsed = false;
  const fs::path file = dir.path() / "scrape.txt";
  stowage::testing::write_file(file, scrape);
  const auto run =
      stowage::testing::run_program(STOWAGE_SYSTEM_PYTHON, {STOWAGE_METRICS_CHECK, file.string()},
                                    {.cwd = dir.path(), .timeout = std::chrono::seconds(60)});
  if (run.code == 3 || (run.code == 127 && !fs::exists(STOWAGE_SYSTEM_PYTHON))) {
    const char* ci = std::getenv("CI");
    const std::string why =
        "the Prometheus text parser is missing (install Debian's "
        "python3-prometheus-client for " STOWAGE_SYSTEM_PYTHON "): " +
        run.err;
    if (ci && std::string(ci) == "true") FAIL("CI=true: " << why);
    WARN_MESSAGE(false, "SKIPPED the scrape check: " << why);
    return {};
  }
  INFO("metrics_check.py: " << run.err);
  REQUIRE(run.code == 0);
  parsed = true;
  std::map<std::string, std::string> samples;
  std::istringstream lines(run.out);
  std::string line;
  while (std::getline(lines, line)) {
    const size_t space = line.rfind(' ');
    samples[line.substr(0, space)] = line.substr(space + 1);
  }
  return samples;
}

}  // namespace

TEST_CASE("serve ops: /healthz answers; /readyz says 503 once the file:// folder is gone") {
  TempDir dir;
  OpsServer s(file_store(dir));

  Response r = s.request("GET", "/healthz");
  CHECK(r.status == 200);
  CHECK(r.body == "ok\n");
  CHECK(r.header("content-type") == "text/plain; charset=utf-8");
  CHECK(r.header("cache-control") == "no-store");
  r = s.request("HEAD", "/healthz");
  CHECK(r.status == 200);
  CHECK(r.header("content-length") == "3");
  r = s.request("POST", "/healthz", {}, "x");
  CHECK(r.status == 405);
  CHECK(r.header("allow") == "GET, HEAD, OPTIONS");

  r = s.request("GET", "/readyz");
  CHECK(r.status == 200);
  CHECK(r.body == "ready\n");
  CHECK(r.header("cache-control") == "no-store");

  fs::remove_all(dir.path() / "store");
  r = s.request("GET", "/readyz");
  CHECK(r.status == 503);
  CHECK(r.header("content-type") == "application/json");
  CHECK(r.body == busy_body("not ready: the store was not found (the server's log has the "
                            "details)"));
  // The store's own words, naming its folder, go to the log only.
  const std::vector<std::string> errors = s.errors();
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].starts_with("readiness check: "));
  CHECK(contains(errors[0], (dir.path() / "store").string()));
  CHECK_FALSE(contains(r.body, dir.path().string()));
  // /healthz is about the process, not the store.
  CHECK(s.request("GET", "/healthz").status == 200);

  fs::create_directories(dir.path() / "store");
  CHECK(s.request("GET", "/readyz").status == 200);
}

TEST_CASE("serve ops: /readyz gives up on a store that does not answer within the deadline") {
  Registry registry;
  registry.register_scheme("slow", [](std::string_view url, std::string_view) {
    return std::make_unique<SlowHandler>(std::string(url), std::chrono::milliseconds(1500));
  });
  ServerOptions o;
  o.store = "slow://store";
  o.registry = &registry;
  o.timeouts.ready = std::chrono::milliseconds(300);
  OpsServer s(o);

  const auto start = std::chrono::steady_clock::now();
  const Response r = s.request("GET", "/readyz");
  const auto took = std::chrono::steady_clock::now() - start;
  CHECK(r.status == 503);
  CHECK(r.body == busy_body("not ready: the store did not answer within 300 ms"));
  CHECK(took >= std::chrono::milliseconds(300));
  CHECK(took < std::chrono::milliseconds(1200));  // not the store's 1500 ms
  CHECK(s.errors() ==
        std::vector<std::string>{"readiness check: not ready: the store did not answer within "
                                 "300 ms"});
  // The process is alive all the same.
  CHECK(s.request("GET", "/healthz").status == 200);
}

TEST_CASE("serve ops: /metrics is Prometheus text that the Prometheus parser reads exactly") {
  TempDir dir;
  OpsServer s(file_store(dir));
  const std::string body = tfjs_body();
  REQUIRE(s.upload("/models/m", body).status == 201);
  REQUIRE(s.request("GET", "/models/m/model.json").status == 200);
  REQUIRE(s.request("GET", "/models/m/weights.bin").body == kWeights);
  REQUIRE(s.request("GET", "/models/nope/model.json").status == 404);
  REQUIRE(s.upload("/models/bad", "not multipart").status == 400);
  REQUIRE(s.request("GET", "/healthz").status == 200);

  Response r = s.request("GET", "/metrics");
  REQUIRE(r.status == 200);
  CHECK(r.header("content-type") == "text/plain; version=0.0.4; charset=utf-8");
  CHECK_FALSE(contains(r.body, "nope"));  // never a model name or path
  CHECK_FALSE(contains(r.body, "/models"));

  bool parsed = false;
  std::map<std::string, std::string> m = parse_scrape(dir, r.body, parsed);
  if (parsed) {
    auto at = [&](const std::string& sample) {
      INFO(sample);
      REQUIRE(m.count(sample) == 1);
      return m.at(sample);
    };
    CHECK(at(R"(stowage_serve_requests_total{route="upload",status="2xx"})") == "1");
    CHECK(at(R"(stowage_serve_requests_total{route="upload",status="4xx"})") == "1");
    CHECK(at(R"(stowage_serve_requests_total{route="model_json",status="2xx"})") == "1");
    CHECK(at(R"(stowage_serve_requests_total{route="model_json",status="4xx"})") == "1");
    CHECK(at(R"(stowage_serve_requests_total{route="weights",status="2xx"})") == "1");
    CHECK(at(R"(stowage_serve_requests_total{route="health",status="2xx"})") == "1");
    // The scrape counts itself once it is answered, not before.
    CHECK(m.count(R"(stowage_serve_requests_total{route="metrics",status="2xx"})") == 0);
    CHECK(at(R"(stowage_serve_request_duration_seconds_count{route="model_json"})") == "2");
    CHECK(at(R"(stowage_serve_request_duration_seconds_bucket{le="+Inf",route="upload"})") == "2");
    CHECK(at(R"(stowage_serve_request_duration_seconds_count{route="list"})") == "0");
    CHECK(at(R"(stowage_serve_received_bytes_total{route="upload"})") ==
          std::to_string(body.size() + std::string("not multipart").size()));
    CHECK(at(R"(stowage_serve_sent_bytes_total{route="weights"})") == "12");
    CHECK(at(R"(stowage_serve_sent_bytes_total{route="health"})") == "3");
    CHECK(at(R"(stowage_serve_uploads_total{outcome="saved"})") == "1");
    CHECK(at(R"(stowage_serve_uploads_total{outcome="rejected"})") == "1");
    CHECK(at(R"(stowage_serve_uploads_total{outcome="failed"})") == "0");
    CHECK(at(R"(stowage_serve_uploads_total{outcome="limited"})") == "0");
    CHECK(at(R"(stowage_serve_uploads_total{outcome="aborted"})") == "0");
    const std::string store_op = R"(stowage_serve_store_operation_duration_seconds_count{)";
    CHECK(at(store_op + R"(operation="save",scheme="file"})") == "1");
    CHECK(at(store_op + R"(operation="model_json",scheme="file"})") == "2");
    CHECK(at(store_op + R"(operation="weights",scheme="file"})") == "1");
    CHECK(at(store_op + R"(operation="list",scheme="file"})") == "0");
    CHECK(at(R"(stowage_serve_rejected_connections_total{reason="per_client"})") == "0");
    CHECK(at(R"(stowage_serve_upload_bytes_in_flight{})") == "0");
    CHECK(m.count("stowage_serve_models{}") == 0);  // not listed yet
  }

  // A listing tells the number of models; the first scrape is counted now.
  REQUIRE(s.request("GET", "/models").status == 200);
  r = s.request("GET", "/metrics");
  m = parse_scrape(dir, r.body, parsed);
  if (parsed) {
    CHECK(m.at("stowage_serve_models{}") == "1");
    CHECK(m.at(R"(stowage_serve_requests_total{route="metrics",status="2xx"})") == "1");
    CHECK(m.at(R"(stowage_serve_requests_total{route="list",status="2xx"})") == "1");
    CHECK(m.at(R"(stowage_serve_store_operation_duration_seconds_count{operation="list",)"
               R"(scheme="file"})") == "1");
  }
}

TEST_CASE("serve ops: connections over a client's cap wait for one of its own, then get 503") {
  ServerOptions o;
  o.store = "memory://serve-ops-per-client-" + std::to_string(::getpid());
  o.limits.max_connections_per_client = 2;
  o.limits.max_connections = 4;  // also bounds the connections waiting at once
  o.timeouts.client_wait = std::chrono::milliseconds(1500);
  OpsServer s(o);
  {
    std::optional<Client> first(std::in_place, s.port());
    Client second(s.port());
    REQUIRE(first->connected());
    REQUIRE(second.connected());
    // The server has taken both once the second is answered.
    REQUIRE(second.send(request_text("GET", "/healthz")));
    REQUIRE(second.read().status == 200);

    // Over the cap: the third waits, unanswered, as TF.js's 65th weight
    // file would from a client that opens a connection per file...
    Client third(s.port());
    REQUIRE(third.send(request_text("GET", "/healthz")));
    CHECK(third.read(false, 300).status == 0);
    // ... until one of its client's own connections ends.
    first.reset();
    CHECK(third.read().status == 200);

    // Another address is another client: served at once.
    {
      Client other(s.port(), "127.0.0.2");
      REQUIRE(other.connected());
      REQUIRE(other.send(request_text("GET", "/healthz")));
      CHECK(other.read().status == 200);
    }

    // At most --max-connections wait at once: four do, the fifth gets 503
    // at once; the four get 503 once --client-wait has passed.
    std::vector<std::unique_ptr<Client>> waiting;
    for (int i = 0; i < 4; ++i) {
      waiting.push_back(std::make_unique<Client>(s.port()));
      REQUIRE(waiting.back()->send(request_text("GET", "/healthz")));
    }
    CHECK(waiting.front()->read(false, 300).status == 0);
    Client fifth(s.port());
    fifth.send(request_text("GET", "/healthz"));
    const Response r = fifth.read();
    CHECK(r.status == 503);
    CHECK(r.header("retry-after") == "1");
    CHECK(r.header("connection") == "close");
    CHECK(r.body == busy_body("too many connections from this client; try again"));
    for (auto& w : waiting) CHECK(w->read(false, 5000).status == 503);

    // The connections served all along still work.
    REQUIRE(second.send(request_text("GET", "/healthz")));
    CHECK(second.read().status == 200);
  }
  // Once they are gone the client is served again (a connection the
  // server has not seen end yet makes it wait a moment, never refuse).
  CHECK(s.request("GET", "/healthz").status == 200);
  const std::string metrics = s.request("GET", "/metrics").body;
  CHECK(contains(metrics, "stowage_serve_rejected_connections_total{reason=\"per_client\"} 5\n"));
  CHECK(contains(metrics,
                 "stowage_serve_rejected_connections_total{reason=\"max_connections\"} 0\n"));
  CHECK(contains(metrics, "stowage_serve_requests_total{route=\"other\",status=\"5xx\"} 5\n"));
}

TEST_CASE("serve ops: uploads past the bytes-in-flight cap get 503 with Retry-After") {
  TempDir dir;
  ServerOptions o = file_store(dir);
  const std::string body = tfjs_body();
  // Smaller than one upload: an upload alone is always taken; a second
  // one while the first is in flight is not.
  o.limits.max_upload_bytes_in_flight = 600;
  REQUIRE(body.size() > 600);
  OpsServer s(o);
  const std::string refusal = busy_body(
      "the server is receiving too many uploads at once (more than 600 bytes in flight); try "
      "again");

  REQUIRE(s.upload("/models/alone", body).status == 201);

  // The first upload sends part of its body and waits. Its Content-Length
  // is counted before the server says 100 Continue.
  Client first(s.port());
  REQUIRE(first.send(request_text("POST", "/models/a",
                                  {upload_headers_line(), "Expect: 100-continue",
                                   "Content-Length: " + std::to_string(body.size())},
                                  {}, false)));
  REQUIRE(first.fill());  // 100 Continue (read() below passes over it)
  REQUIRE(first.send(body.substr(0, 100)));
  const Response busy = s.upload("/models/b", body);
  CHECK(busy.status == 503);
  CHECK(busy.header("retry-after") == "1");
  CHECK(busy.header("connection") == "close");
  CHECK(busy.body == refusal);

  // A chunked upload is counted as its chunks arrive.
  {
    Client chunked(s.port());
    std::string text = request_text(
        "POST", "/models/c", {upload_headers_line(), "Transfer-Encoding: chunked"}, {}, false);
    char size[16];
    std::snprintf(size, sizeof size, "%zx", body.size());
    text += size + std::string("\r\n") + body + "\r\n0\r\n\r\n";
    REQUIRE(chunked.send(text));
    const Response r = chunked.read();
    CHECK(r.status == 503);
    CHECK(r.header("retry-after") == "1");
    CHECK(r.body == refusal);
  }

  // The first one finishes; its bytes are given back and uploads go on.
  REQUIRE(first.send(body.substr(100)));
  CHECK(first.read().status == 201);
  CHECK(s.upload("/models/b", body).status == 201);
  CHECK_FALSE(fs::exists(dir.path() / "store/c"));

  const std::string metrics = s.request("GET", "/metrics").body;
  CHECK(contains(metrics, "stowage_serve_uploads_total{outcome=\"limited\"} 2\n"));
  CHECK(contains(metrics, "stowage_serve_uploads_total{outcome=\"saved\"} 3\n"));
  CHECK(contains(metrics, "stowage_serve_upload_bytes_in_flight 0\n"));
  // Refusals under load are not server failures: nothing in the error log.
  CHECK(s.errors().empty());
}

#ifdef STOWAGE_CLI_EXE
TEST_CASE("serve ops: the stowage command's --log-format json, per-client cap and readiness") {
  TempDir dir;
  const auto usage = stowage::testing::run_program(
      STOWAGE_CLI_EXE,
      {"serve", "--store", dir.path().string(), "--port", "0", "--json", "--log-format", "text"},
      {.cwd = dir.path(), .drop_env = {"STOWAGE_"}, .timeout = std::chrono::seconds(30)});
  CHECK(usage.code == 2);
  CHECK(usage.out.empty());
  CHECK(contains(usage.err,
                 "--json asks for the JSON access log and --log-format text for the other"));
  const auto bad = stowage::testing::run_program(
      STOWAGE_CLI_EXE, {"serve", "--store", dir.path().string(), "--log-format", "yaml"},
      {.cwd = dir.path(), .drop_env = {"STOWAGE_"}, .timeout = std::chrono::seconds(30)});
  CHECK(bad.code == 2);

  ServeProcess serve(
      STOWAGE_CLI_EXE, dir.path() / "serve",
      {"--store", (dir.path() / "store").string(), "--create", "--log-format", "json",
       "--max-connections-per-client", "1", "--client-wait", "0.3", "--ready-timeout", "0.5"});
  const uint16_t port = serve.port();

  {
    Client held(port);
    REQUIRE(held.send(request_text("GET", "/readyz")));
    CHECK(held.read().status == 200);
    Client second(port);
    second.send(request_text("GET", "/healthz"));
    const Response r = second.read();
    CHECK(r.status == 503);
    CHECK(r.body == busy_body("too many connections from this client; try again"));
    REQUIRE(held.send(request_text("GET", "/models/m/model.json?token=s3cr3t")));
    CHECK(held.read().status == 404);
  }
  CHECK(serve.stop() == 0);
  const std::string log = serve.log();

  std::vector<std::string> lines;
  std::istringstream in(log);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  REQUIRE(lines.size() == 3);
  CHECK(lines[0].starts_with("{\"time\":\""));
  CHECK(contains(lines[0], R"("method":"GET","route":"ready","path":"/readyz","status":200,)"));
  CHECK(contains(lines[1], R"("method":"-","route":"other","path":"-","status":503,)"));
  CHECK(contains(lines[1], R"("note":"per-client connection limit"})"));
  CHECK(contains(lines[2], R"("method":"GET","route":"model_json","path":"/models/m/model.json",)"
                           R"("status":404,)"));
  CHECK_FALSE(contains(log, "s3cr3t"));
  for (const std::string& line : lines) {
    CHECK(line.back() == '}');
    CHECK(contains(line, "\"remote\":\"127.0.0.1:"));
    CHECK(contains(line, "\"ms\":"));
  }
}
#endif

}  // namespace stowage::serve
