// `stowage serve --tls-cert FILE --tls-key FILE`: the command itself under
// test, with a test CA and server certificates that the openssl command
// makes at test time (make_test_certs.sh). Clients: the stowage http client
// (its ca_file option), curl, openssl s_client, the hand-written plain
// HTTP client (for plain http on the https port) and a small OpenSSL client
// of the test's own, which can hold a connection open across a reload.
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "run_program.hpp"
#include "serve_process.hpp"
#include "stowage/buffer.hpp"
#include "stowage/error.hpp"
#include "stowage/management.hpp"
#include "test_client.hpp"
#include "test_files.hpp"

namespace stowage::serve {
namespace {

namespace fs = std::filesystem;
using namespace stowage::serve::test;  // NOLINT: the test client
using stowage::testing::read_file;
using stowage::testing::run_program;
using stowage::testing::ServeProcess;
using stowage::testing::write_file;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

size_t count_of(const std::string& text, const std::string& part) {
  size_t n = 0;
  for (size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
  return n;
}

// The clients are real programs, found when the build was configured;
// missing, the tests fail saying which.
constexpr const char* kCurl = STOWAGE_CURL;
constexpr const char* kOpenssl = STOWAGE_OPENSSL;

stowage::testing::RunOptions run_options(const fs::path& dir) {
  return {.cwd = dir, .drop_env = {"STOWAGE_"}, .timeout = std::chrono::seconds(60)};
}

// ca.pem, server.pem/.key (CN "stowage serve test 1"), server2.pem/.key
// (CN "... 2"), other-ca.pem and other.pem/.key, in dir/certs.
fs::path make_certs(const fs::path& dir) {
  for (const char* program : {kCurl, kOpenssl}) {
    REQUIRE_MESSAGE(fs::exists(program),
                    (std::string(program) + " is not installed: the https tests need curl and the "
                                            "openssl command"));
  }
  const fs::path certs = dir / "certs";
  const auto made =
      run_program("/bin/sh", {STOWAGE_MAKE_TEST_CERTS, certs.string()}, run_options(dir));
  REQUIRE_MESSAGE(made.code == 0, (std::string("make_test_certs.sh failed: ") + made.err));
  return certs;
}

// SIGHUP, then waits until the server has logged the reload's outcome (its
// count-th SIGHUP line).
void reload(ServeProcess& serve, size_t count) {
  serve.signal(SIGHUP);
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (count_of(serve.err(), "stowage serve: SIGHUP: ") < count) {
    if (std::chrono::steady_clock::now() >= until) FAIL("no reload was logged: " << serve.err());
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

// One TLS connection to 127.0.0.1:port that trusts ca_file only, checks the
// certificate names 127.0.0.1 and offers ALPN http/1.1.
class TlsClient {
 public:
  TlsClient(uint16_t port, const fs::path& ca_file) {
    ctx_ = SSL_CTX_new(TLS_client_method());
    REQUIRE(ctx_ != nullptr);
    REQUIRE(SSL_CTX_load_verify_locations(ctx_, ca_file.c_str(), nullptr) == 1);
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
    static const unsigned char kAlpn[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
    REQUIRE(SSL_CTX_set_alpn_protos(ctx_, kAlpn, sizeof kAlpn) == 0);
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    timeval timeout{10, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    ssl_ = SSL_new(ctx_);
    REQUIRE(ssl_ != nullptr);
    REQUIRE(X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), "127.0.0.1") == 1);
    SSL_set_fd(ssl_, fd_);
    connected_ = SSL_connect(ssl_) == 1;
    ERR_clear_error();
  }
  ~TlsClient() {
    if (ssl_) SSL_free(ssl_);
    if (fd_ >= 0) ::close(fd_);
    if (ctx_) SSL_CTX_free(ctx_);
  }
  TlsClient(const TlsClient&) = delete;
  TlsClient& operator=(const TlsClient&) = delete;

  bool connected() const { return connected_; }
  std::string protocol() const { return SSL_get_version(ssl_); }
  std::string alpn() const {
    const unsigned char* data = nullptr;
    unsigned int length = 0;
    SSL_get0_alpn_selected(ssl_, &data, &length);
    return std::string(reinterpret_cast<const char*>(data), length);
  }
  // The server certificate's common name.
  std::string subject() const {
    X509* cert = SSL_get0_peer_certificate(ssl_);
    if (!cert) return "";
    char name[256] = {};
    X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, name, sizeof name);
    return name;
  }

  // Sends a request and reads its response (Content-Length bodies only).
  Response request(const std::string& text) {
    Response r;
    if (SSL_write(ssl_, text.data(), static_cast<int>(text.size())) !=
        static_cast<int>(text.size()))
      return r;
    size_t end;
    while ((end = in_.find("\r\n\r\n")) == std::string::npos) {
      if (!fill()) return r;
    }
    read_head(in_.substr(0, end), r);
    in_.erase(0, end + 4);
    const size_t length = r.has("content-length") ? std::stoul(r.header("content-length")) : 0;
    while (in_.size() < length) {
      if (!fill()) break;
    }
    r.body = in_.substr(0, length);
    in_.erase(0, std::min(length, in_.size()));
    return r;
  }

 private:
  bool fill() {
    char buf[16384];
    const int n = SSL_read(ssl_, buf, sizeof buf);
    if (n <= 0) return false;
    in_.append(buf, static_cast<size_t>(n));
    return true;
  }

  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  int fd_ = -1;
  bool connected_ = false;
  std::string in_;
};

// A model folder with a 1 MiB weights file (several TLS records each way).
fs::path write_source_model(const fs::path& dir) {
  const fs::path src = dir / "src";
  fs::create_directories(src);
  write_file(src / "model.json",
             R"({"modelTopology":{"class_name":"Sequential","config":{"layers":[]}},)"
             R"("format":"layers-model","weightsManifest":[{"paths":["weights.bin"],)"
             R"("weights":[{"name":"w","shape":[65536,4],"dtype":"float32"}]}]})");
  std::string weights(1 << 20, '\0');
  for (size_t i = 0; i < weights.size(); ++i) weights[i] = static_cast<char>((i * 7919) >> 3);
  write_file(src / "weights.bin", weights);
  return src;
}

std::string ca_options(const fs::path& ca) { return R"({"ca_file":")" + ca.string() + R"("})"; }

TEST_CASE("serve tls: a certificate or key that cannot serve stops the command, naming the file") {
  stowage::testing::TempDir dir("stowage-serve-tls");
  const fs::path certs = make_certs(dir.path());
  const std::string store = (dir.path() / "store").string();
  auto serve = [&](std::vector<std::string> tls) {
    std::vector<std::string> args = {"serve", "--store", store, "--create", "--port", "0"};
    args.insert(args.end(), tls.begin(), tls.end());
    return run_program(STOWAGE_CLI_EXE, args, run_options(dir.path()));
  };
  const std::string cert = (certs / "server.pem").string();
  const std::string key = (certs / "server.key").string();

  auto r = serve({"--tls-cert", cert});
  CHECK(r.code == 2);
  CHECK(r.err == "stowage: error: --tls-cert needs --tls-key (the certificate's key)\n");
  r = serve({"--tls-key", key});
  CHECK(r.code == 2);
  CHECK(r.err == "stowage: error: --tls-key needs --tls-cert (the certificate it signs)\n");

  const std::string missing = (certs / "missing.pem").string();
  r = serve({"--tls-cert", missing, "--tls-key", key});
  CHECK(r.code == 4);
  CHECK(r.out.empty());  // no port line: it never listened
  CHECK(r.err == "stowage: error: cannot read TLS certificate file '" + missing +
                     "': No such file or directory\n");
  r = serve({"--tls-cert", cert, "--tls-key", missing});
  CHECK(r.code == 4);
  CHECK(r.err ==
        "stowage: error: cannot read TLS key file '" + missing + "': No such file or directory\n");

  const fs::path garbage = certs / "garbage.pem";
  write_file(garbage, "not a certificate\n");
  r = serve({"--tls-cert", garbage.string(), "--tls-key", key});
  CHECK(r.code == 4);
  CHECK(r.err == "stowage: error: TLS certificate file '" + garbage.string() +
                     "' holds no PEM certificate: no start line\n");
  // A certificate given as the key.
  r = serve({"--tls-cert", cert, "--tls-key", cert});
  CHECK(r.code == 4);
  CHECK(r.err == "stowage: error: TLS key file '" + cert +
                     "' holds no unencrypted PEM private key: unsupported\n");
  // Another certificate's key.
  const std::string other_key = (certs / "other.key").string();
  r = serve({"--tls-cert", cert, "--tls-key", other_key});
  CHECK(r.code == 4);
  CHECK(r.err == "stowage: error: TLS key file '" + other_key +
                     "' does not match the certificate in '" + cert + "'\n");
  CHECK_FALSE(fs::exists(store));  // refused before the store was opened
}

TEST_CASE("serve tls: the stowage http client saves and loads over https trusting the test CA") {
  stowage::testing::TempDir dir("stowage-serve-tls");
  const fs::path certs = make_certs(dir.path());
  const fs::path src = write_source_model(dir.path());
  ServeProcess serve(
      STOWAGE_CLI_EXE, dir.path() / "serve",
      {"--store", (dir.path() / "store").string(), "--create", "--tls-cert",
       (certs / "server.pem").string(), "--tls-key", (certs / "server.key").string()});
  const std::string trusted = ca_options(certs / "ca.pem");

  const ModelArtifacts model = load_model("file://" + src.string());
  const SaveResult saved = save_model(serve.url("/models/m"), model, trusted);
  CHECK(saved.model_artifacts_info.weight_data_bytes == (1u << 20));
  const std::string url = serve.url("/models/m/model.json");
  const ModelArtifacts back = load_model(url, trusted);
  CHECK(join(*back.weight_data).view() == join(*model.weight_data).view());

  // Without the test CA (the system's store only), and with another CA.
  for (const std::string& options : {std::string("{}"), ca_options(certs / "other-ca.pem")}) {
    CAPTURE(options);
    try {
      load_model(url, options);
      FAIL("a server certificate from an untrusted CA was accepted");
    } catch (const Error& e) {
      CHECK(e.code() == ErrorCode::kUnavailable);
      CHECK(std::string(e.what()) ==
            "GET " + url +
                ": TLS certificate verification failed for 127.0.0.1: unable to get local issuer "
                "certificate (trust its CA with a CA file, or use the system store)");
    }
  }

  // The test's own client: TLS 1.3, ALPN http/1.1, the certificate named.
  TlsClient client(serve.port(), certs / "ca.pem");
  REQUIRE(client.connected());
  CHECK(client.protocol() == "TLSv1.3");
  CHECK(client.alpn() == "http/1.1");
  CHECK(client.subject() == "stowage serve test 1");
  CHECK(client.request(request_text("GET", "/healthz")).body == "ok\n");
  CHECK(serve.stop() == 0);
}

TEST_CASE("serve tls: curl and openssl s_client; plain http and TLS 1.1 are refused and counted") {
  stowage::testing::TempDir dir("stowage-serve-tls");
  const fs::path certs = make_certs(dir.path());
  const fs::path store = dir.path() / "store";
  fs::create_directories(store / "m");
  fs::copy(write_source_model(dir.path()), store / "m", fs::copy_options::recursive);
  ServeProcess serve(STOWAGE_CLI_EXE, dir.path() / "serve",
                     {"--store", store.string(), "--tls-cert", (certs / "server.pem").string(),
                      "--tls-key", (certs / "server.key").string()});
  const std::string ca = (certs / "ca.pem").string();
  const std::string port = std::to_string(serve.port());
  auto curl = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"-sS", "--cacert", ca});
    return run_program(kCurl, args, run_options(dir.path()));
  };

  auto r = curl({serve.url("/models/m/model.json")});
  CHECK(r.code == 0);
  CHECK(r.out == read_file(store / "m/model.json"));
  // The DNS name of the certificate too; a Range over https.
  r = curl(
      {"-r", "4-11", "-w", " %{http_code}", "https://localhost:" + port + "/models/m/weights.bin"});
  CHECK(r.code == 0);
  CHECK(r.out == read_file(store / "m/weights.bin").substr(4, 8) + " 206");
  // Not trusted: curl's certificate error.
  r = run_program(kCurl,
                  {"-sS", "--cacert", (certs / "other-ca.pem").string(), serve.url("/healthz")},
                  run_options(dir.path()));
  CHECK(r.code == 60);

  // Plain http on the https port: no answer, the connection closed, the
  // failure logged and counted; the server goes on.
  {
    Client plain(serve.port());
    REQUIRE(plain.send(request_text("GET", "/healthz")));
    CHECK(plain.read().status == 0);
    CHECK(plain.closed_by_server());
  }
  // TLS 1.1 is refused with a protocol_version alert; 1.2 and 1.3 are taken.
  r = run_program(kOpenssl, {"s_client", "-connect", "127.0.0.1:" + port, "-tls1_1"},
                  run_options(dir.path()));
  CHECK(r.code == 1);
  CHECK(contains(r.err, "tlsv1 alert protocol version"));
  for (const std::string version : {"-tls1_2", "-tls1_3"}) {
    r = run_program(kOpenssl,
                    {"s_client", "-connect", "127.0.0.1:" + port, version, "-CAfile", ca,
                     "-verify_return_error", "-alpn", "http/1.1"},
                    run_options(dir.path()));
    CHECK(r.code == 0);
    CHECK(contains(r.out, version == "-tls1_2" ? "New, TLSv1.2, Cipher is ECDHE-ECDSA-AES"
                                               : "New, TLSv1.3, Cipher is TLS_"));
    CHECK(contains(r.out, "ALPN protocol: http/1.1"));
    CHECK(contains(r.out, "Verify return code: 0 (ok)"));
  }
  r = curl({serve.url("/metrics")});
  CHECK(contains(r.out, "\nstowage_serve_tls_handshake_failures_total 3\n"));
  CHECK(serve.stop() == 0);
  const std::string err = serve.err();
  CAPTURE(err);
  // curl that does not trust the CA, plain http, TLS 1.1.
  CHECK(count_of(err, "stowage serve: TLS handshake with 127.0.0.1:") == 3);
  CHECK(contains(err, " failed: tlsv1 alert unknown ca (SSL routines)\n"));
  CHECK(contains(err, " failed: http request (SSL routines)\n"));
  CHECK(contains(err, " failed: unsupported protocol (SSL routines)\n"));
}

TEST_CASE(
    "serve tls: SIGHUP reloads the certificate for new connections, a bad one keeps the old") {
  stowage::testing::TempDir dir("stowage-serve-tls");
  const fs::path certs = make_certs(dir.path());
  const fs::path cert = dir.path() / "live.pem";
  const fs::path key = dir.path() / "live.key";
  fs::copy_file(certs / "server.pem", cert);
  fs::copy_file(certs / "server.key", key);
  ServeProcess serve(STOWAGE_CLI_EXE, dir.path() / "serve",
                     {"--store", (dir.path() / "store").string(), "--create", "--tls-cert",
                      cert.string(), "--tls-key", key.string()});
  const fs::path ca = certs / "ca.pem";
  const std::string health = request_text("GET", "/healthz");
  auto curl_subject = [&] {
    const auto r = run_program(kCurl, {"-sSv", "--cacert", ca.string(), serve.url("/healthz")},
                               run_options(dir.path()));
    CHECK(r.code == 0);
    return contains(r.err, "*  subject: CN=stowage serve test 2\n")   ? 2
           : contains(r.err, "*  subject: CN=stowage serve test 1\n") ? 1
                                                                      : 0;
  };

  TlsClient held(serve.port(), ca);  // opened before the reload, kept alive across it
  REQUIRE(held.connected());
  CHECK(held.subject() == "stowage serve test 1");
  CHECK(held.request(health).status == 200);
  CHECK(curl_subject() == 1);

  fs::copy_file(certs / "server2.pem", cert, fs::copy_options::overwrite_existing);
  fs::copy_file(certs / "server2.key", key, fs::copy_options::overwrite_existing);
  reload(serve, 1);
  CHECK(contains(serve.err(), "stowage serve: SIGHUP: reloaded the TLS certificate " +
                                  cert.string() + " and key " + key.string() +
                                  " for new connections\n"));
  {
    TlsClient fresh(serve.port(), ca);
    REQUIRE(fresh.connected());
    CHECK(fresh.subject() == "stowage serve test 2");
  }
  CHECK(curl_subject() == 2);
  CHECK(held.request(health).body == "ok\n");  // the open connection goes on

  // A broken certificate file: logged, naming it; the previous one stays.
  write_file(cert, "-----BEGIN CERTIFICATE-----\nbroken\n");
  reload(serve, 2);
  CHECK(contains(serve.err(), "stowage serve: SIGHUP: TLS certificate file '" + cert.string() +
                                  "' holds no PEM certificate: bad end line; still serving the "
                                  "previous certificate\n"));
  CHECK(curl_subject() == 2);
  // The first certificate with the second one's key.
  fs::copy_file(certs / "server.pem", cert, fs::copy_options::overwrite_existing);
  reload(serve, 3);
  CHECK(contains(serve.err(), "stowage serve: SIGHUP: TLS key file '" + key.string() +
                                  "' does not match the certificate in '" + cert.string() +
                                  "'; still serving the previous certificate\n"));
  CHECK(curl_subject() == 2);
  CHECK(held.request(health).body == "ok\n");

  const auto metrics = run_program(kCurl, {"-sS", "--cacert", ca.string(), serve.url("/metrics")},
                                   run_options(dir.path()));
  CHECK(contains(metrics.out, "\nstowage_serve_tls_reload_failures_total 2\n"));
  CHECK(serve.stop() == 0);
  CHECK_FALSE(contains(serve.err(), "PRIVATE KEY"));
}

TEST_CASE("serve tls: a connection over the per-client cap gets its 503 over TLS") {
  stowage::testing::TempDir dir("stowage-serve-tls");
  const fs::path certs = make_certs(dir.path());
  // The second connection waits --client-wait for the first to end (its
  // handshake with it), then is answered 503.
  ServeProcess serve(STOWAGE_CLI_EXE, dir.path() / "serve",
                     {"--store", (dir.path() / "store").string(), "--create", "--tls-cert",
                      (certs / "server.pem").string(), "--tls-key", (certs / "server.key").string(),
                      "--max-connections-per-client", "1", "--client-wait", "0.3"});
  TlsClient held(serve.port(), certs / "ca.pem");
  REQUIRE(held.connected());
  CHECK(held.request(request_text("GET", "/healthz")).status == 200);
  TlsClient second(serve.port(), certs / "ca.pem");
  REQUIRE(second.connected());
  const Response r = second.request(request_text("GET", "/healthz"));
  CHECK(r.status == 503);
  CHECK(r.header("retry-after") == "1");
  CHECK(r.body ==
        R"({"error":{"code":"unavailable","message":"too many connections from this client; )"
        R"(try again"}})");
  CHECK(held.request(request_text("GET", "/healthz")).status == 200);
  CHECK(serve.stop() == 0);
}

}  // namespace
}  // namespace stowage::serve
