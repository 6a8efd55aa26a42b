// stowage::net: URLs, multipart bodies, status mapping, and the client
// against a scripted local server (test_server.py): keep-alive and the
// per-host cap, redirects, faults, timeouts, cancellation and TLS.
#include <doctest/doctest.h>
#include <openssl/sha.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "http_client.hpp"
#include "memfd_body.hpp"
#include "plugin_test_util.hpp"
#include "stowage/digest.hpp"
#include "test_server.hpp"

namespace fs = std::filesystem;
using namespace stowage;
using namespace stowage::net;
using stowage::testing::error_of;

namespace {

std::string sha256_hex(std::string_view data) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), md);
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : md) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

std::string random_bytes(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng() & 0xff);
  return s;
}

void write_file(const fs::path& p, std::string_view data) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary).write(data.data(), static_cast<std::streamsize>(data.size()));
}

// A scratch folder with the files the server serves.
struct Fixture {
  fs::path dir;
  std::string big = random_bytes(3 << 20, 1);
  std::string small = "hello, weights";
  Fixture() {
    dir = fs::temp_directory_path() /
          ("stowage-net-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++));
    fs::remove_all(dir);
    write_file(dir / "big.bin", big);
    write_file(dir / "small.txt", small);
    write_file(dir / "dir" / "m.json", "{\"a\":1}");
  }
  ~Fixture() { fs::remove_all(dir); }
  static int& counter() {
    static int n = 0;
    return n;
  }
};

const std::string kServerScript = std::string(STOWAGE_SOURCE_DIR) + "/core/net/test_server.py";

testing::PythonServer start(const Fixture& f, std::vector<std::string> extra = {}) {
  std::vector<std::string> args{kServerScript, "--root", f.dir.string()};
  args.insert(args.end(), extra.begin(), extra.end());
  return testing::PythonServer(args);
}

// The server's {"connections": n, "requests": m} counters.
int server_connections(const testing::PythonServer& s) {
  Client fresh;
  Response r = fresh.send(Request{"GET", s.base() + "/stats"});
  std::string body(r.body.view());
  auto at = body.find("\"connections\": ");
  REQUIRE(at != std::string::npos);
  return std::atoi(body.c_str() + at + 15);
}

// GETs `size` bytes of url in `parts` ranges at once, each received into its
// place in one SharedBody, and maps it.
Buffer ranged_into(Client& client, const std::string& url, uint64_t size, uint64_t parts) {
  auto whole = std::make_shared<SharedBody>(size, url);
  std::vector<Request> requests;
  const uint64_t part = (size + parts - 1) / parts;
  for (uint64_t from = 0; from < size; from += part) {
    const uint64_t to = std::min(size, from + part) - 1;
    Request r{"GET", url};
    r.headers.emplace_back("Range", "bytes=" + std::to_string(from) + "-" + std::to_string(to));
    r.into = whole;
    r.into_offset = from;
    r.into_length = to - from + 1;
    requests.push_back(std::move(r));
  }
  for (const Response& r : client.send_all(requests, {}, requests.size())) {
    CHECK(r.status == 206);
    CHECK(r.body.empty());
  }
  return whole->map();
}

}  // namespace

TEST_CASE("Url::parse splits http(s) URLs for the wire") {
  Url u = Url::parse("http://Models.Example.COM:8080/a/b/model.json?x=1&y=%2F#frag");
  CHECK(u.scheme == "http");
  CHECK(u.host == "models.example.com");
  CHECK(u.port == 8080);
  CHECK(u.target == "/a/b/model.json?x=1&y=%2F");
  CHECK(u.authority() == "models.example.com:8080");
  CHECK(u.origin() == "http://models.example.com:8080");

  Url s = Url::parse("HTTPS://h");
  CHECK(s.scheme == "https");
  CHECK(s.port == 443);
  CHECK(s.target == "/");
  CHECK(s.default_port());
  CHECK(s.str() == "https://h/");

  Url v6 = Url::parse("http://[::1]:9000/x");
  CHECK(v6.host == "::1");
  CHECK(v6.authority() == "[::1]:9000");

  CHECK(Url::parse("http://h/a b/ü").target == "/a%20b/%C3%BC");
  CHECK(Url::parse("http://h/a/./b/../c").target == "/a/c");
  CHECK(Url::parse("http://user:pw@h/p").userinfo == "user:pw");

  for (const char* bad :
       {"ftp://h/x", "http://", "http://h:99999/", "http://h:0/", "model.json", "http://[::1/x",
        "http://h:port/", "http://a b/", "http://127&0.0.1:808:/m"}) {
    CAPTURE(bad);
    Error e = error_of([&] { Url::parse(bad); });
    CHECK(e.code() == ErrorCode::kInvalidArgument);
  }
  // Secrets in a bad URL stay out of the message.
  Error e = error_of([] { Url::parse("ftp://u:hunter2@h/?token=abc"); });
  CHECK(std::string(e.what()).find("hunter2") == std::string::npos);
  CHECK(std::string(e.what()).find("abc") == std::string::npos);
}

TEST_CASE("Url::resolve follows RFC 3986") {
  Url base = Url::parse("http://h/a/b/model.json?q=1");
  CHECK(base.resolve("w.bin").str() == "http://h/a/b/w.bin");
  CHECK(base.resolve("./w.bin?x").str() == "http://h/a/b/w.bin?x");
  CHECK(base.resolve("../w.bin").str() == "http://h/a/w.bin");
  CHECK(base.resolve("/w.bin").str() == "http://h/w.bin");
  CHECK(base.resolve("//cdn:81/w").str() == "http://cdn:81/w");
  CHECK(base.resolve("https://z/w").str() == "https://z/w");
  CHECK(base.resolve("?r=2").str() == "http://h/a/b/model.json?r=2");
  CHECK(base.resolve("").str() == "http://h/a/b/model.json?q=1");
}

TEST_CASE("Url::resolve gives RFC 3986 section 5.4's results") {
  // The examples of §5.4 whose result is an http URL; a fragment is never
  // kept (it is not sent), and an empty path is written "/".
  Url base = Url::parse("http://a/b/c/d;p?q");
  const std::pair<const char*, const char*> kExamples[] = {
      // §5.4.1 normal examples
      {"g", "http://a/b/c/g"},
      {"./g", "http://a/b/c/g"},
      {"g/", "http://a/b/c/g/"},
      {"/g", "http://a/g"},
      {"//g", "http://g/"},
      {"?y", "http://a/b/c/d;p?y"},
      {"g?y", "http://a/b/c/g?y"},
      {"#s", "http://a/b/c/d;p?q"},
      {"g#s", "http://a/b/c/g"},
      {"g?y#s", "http://a/b/c/g?y"},
      {";x", "http://a/b/c/;x"},
      {"g;x", "http://a/b/c/g;x"},
      {"g;x?y#s", "http://a/b/c/g;x?y"},
      {"", "http://a/b/c/d;p?q"},
      {".", "http://a/b/c/"},
      {"./", "http://a/b/c/"},
      {"..", "http://a/b/"},
      {"../", "http://a/b/"},
      {"../g", "http://a/b/g"},
      {"../..", "http://a/"},
      {"../../", "http://a/"},
      {"../../g", "http://a/g"},
      // §5.4.2 abnormal examples
      {"../../../g", "http://a/g"},
      {"../../../../g", "http://a/g"},
      {"/./g", "http://a/g"},
      {"/../g", "http://a/g"},
      {"g.", "http://a/b/c/g."},
      {".g", "http://a/b/c/.g"},
      {"g..", "http://a/b/c/g.."},
      {"..g", "http://a/b/c/..g"},
      {"./../g", "http://a/b/g"},
      {"./g/.", "http://a/b/c/g/"},
      {"g/./h", "http://a/b/c/g/h"},
      {"g/../h", "http://a/b/c/h"},
      {"g;x=1/./y", "http://a/b/c/g;x=1/y"},
      {"g;x=1/../y", "http://a/b/c/y"},
      {"g?y/./x", "http://a/b/c/g?y/./x"},
      {"g?y/../x", "http://a/b/c/g?y/../x"},
      {"g#s/./x", "http://a/b/c/g"},
      {"g#s/../x", "http://a/b/c/g"},
  };
  for (const auto& [reference, expected] : kExamples) {
    CAPTURE(reference);
    CHECK(base.resolve(reference).str() == expected);
  }
  // "g:h" and the strict "http:g" are absolute URLs this client cannot use.
  CHECK(error_of([&] { base.resolve("g:h"); }).code() == ErrorCode::kInvalidArgument);
  CHECK(error_of([&] { base.resolve("http:g"); }).code() == ErrorCode::kInvalidArgument);
}

TEST_CASE("Url::resolve sends escapes as written and encodes what may not be sent") {
  Url base = Url::parse("http://u:pw@h:8080/a/b%2Fc/model.json?q=%41");
  // Escapes are not normalized: %41 stays, and %2E is not a dot.
  CHECK(base.resolve("w%41.bin").str() == "http://u:pw@h:8080/a/b%2Fc/w%41.bin");
  CHECK(base.resolve("%2e%2E/w").str() == "http://u:pw@h:8080/a/b%2Fc/%2e%2E/w");
  CHECK(base.resolve("").str() == "http://u:pw@h:8080/a/b%2Fc/model.json?q=%41");
  CHECK(base.resolve("../x").str() == "http://u:pw@h:8080/a/x");
  // Spaces, non-ASCII and a lone '%' are encoded; trailing whitespace goes.
  CHECK(base.resolve("my shard ü.bin ").str() ==
        "http://u:pw@h:8080/a/b%2Fc/my%20shard%20%C3%BC.bin");
  CHECK(base.resolve("100%.bin?x=1 2 ").str() == "http://u:pw@h:8080/a/b%2Fc/100%25.bin?x=1%202");
  CHECK(base.resolve("  ").str() == "http://u:pw@h:8080/a/b%2Fc/");
  // A ':' in the first segment is a path, not a scheme, when what precedes
  // it cannot be one.
  CHECK(base.resolve("1a:b/c").str() == "http://u:pw@h:8080/a/b%2Fc/1a:b/c");
  CHECK(base.resolve("[x]").str() == "http://u:pw@h:8080/a/b%2Fc/%5Bx%5D");
  Url v6 = Url::parse("https://[::1]:9000/m/model.json");
  CHECK(v6.resolve("w.bin").str() == "https://[::1]:9000/m/w.bin");
  CHECK(v6.resolve("//[::2]/x").str() == "https://[::2]/x");
}

TEST_CASE("build_multipart writes what FormData writes, referencing the content") {
  Buffer weights = Buffer::from_string(std::string("\x00\x00\x80\x3f", 4));
  Multipart m = build_multipart(
      {{"model.json", "model.json", "application/json", {Buffer::from_string("{\"a\":1}")}},
       {"model.weights.bin", "model.weights.bin", "application/octet-stream", {weights}}},
      "BOUND");
  CHECK(m.content_type == "multipart/form-data; boundary=BOUND");
  std::string body;
  for (const Buffer& b : m.body) body += b.view();
  const std::string expected =
      "--BOUND\r\nContent-Disposition: form-data; name=\"model.json\"; filename=\"model.json\"\r\n"
      "Content-Type: application/json\r\n\r\n{\"a\":1}\r\n"
      "--BOUND\r\nContent-Disposition: form-data; name=\"model.weights.bin\"; "
      "filename=\"model.weights.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n" +
      std::string(weights.view()) + "\r\n--BOUND--\r\n";
  CHECK(body == expected);
  CHECK(m.size == body.size());
  // The weight bytes are referenced, not copied.
  bool shared = false;
  for (const Buffer& b : m.body) shared = shared || b.data() == weights.data();
  CHECK(shared);

  Error e = error_of([] {
    build_multipart({{"f", "", "", {Buffer::from_string("xx--BOUNDyy")}}}, "--BOUND");
  });
  CHECK(e.code() == ErrorCode::kInvalidArgument);
  Multipart r = build_multipart({{"f", "", "", {Buffer::from_string("x")}}});
  CHECK(r.content_type.starts_with("multipart/form-data; boundary=----stowageFormBoundary"));
}

TEST_CASE("status_error maps statuses to codes and marks transient ones retryable") {
  struct Case {
    int status;
    ErrorCode code;
    bool retryable;
  };
  for (Case c :
       {Case{404, ErrorCode::kNotFound, false}, Case{403, ErrorCode::kPermissionDenied, false},
        Case{401, ErrorCode::kPermissionDenied, false},
        Case{400, ErrorCode::kInvalidArgument, false},
        Case{413, ErrorCode::kResourceExhausted, false}, Case{429, ErrorCode::kUnavailable, true},
        Case{500, ErrorCode::kUnavailable, true}, Case{502, ErrorCode::kUnavailable, true},
        Case{503, ErrorCode::kUnavailable, true}, Case{504, ErrorCode::kUnavailable, true},
        Case{501, ErrorCode::kUnimplemented, false}, Case{418, ErrorCode::kInternal, false}}) {
    CAPTURE(c.status);
    Error e = status_error(c.status, "Reason", "GET http://h/x");
    CHECK(e.code() == c.code);
    CHECK(e.retryable() == c.retryable);
    CHECK(std::string(e.what()) == "GET http://h/x: HTTP " + std::to_string(c.status) + " Reason");
  }
  CHECK(body_excerpt(Buffer::from_string("<html>\n  <p>Not   here</p>\n</html>")) ==
        "<html> <p>Not here</p> </html>");
  CHECK(body_excerpt(Buffer::from_string(std::string(10, '\0'))).empty());
  CHECK(body_excerpt(Buffer::from_string(std::string(300, 'a')), 10) == "aaaaaaaaaa...");
}

TEST_CASE("the client reads bodies whole, over kept-alive connections") {
  Fixture f;
  auto server = start(f);
  Client client;
  const int before = server_connections(server);

  uint64_t received = 0;
  Control control;
  control.on_received = [&](uint64_t n) { received += n; };
  Response r = client.send(Request{"GET", server.base() + "/files/big.bin"}, control);
  CHECK(r.status == 200);
  CHECK(r.ok());
  CHECK(r.content_length == std::optional<uint64_t>(f.big.size()));
  CHECK(r.body.view() == f.big);
  CHECK(received == f.big.size());
  CHECK(r.content_type() == "application/octet-stream");
  CHECK(r.body.label() == server.base() + "/files/big.bin");

  for (int i = 0; i < 5; ++i) {
    Response s = client.send(Request{"GET", server.base() + "/files/small.txt"});
    CHECK(s.body.view() == f.small);
  }
  Response chunked = client.send(Request{"GET", server.base() + "/chunked/big.bin"});
  CHECK(!chunked.content_length);
  CHECK(chunked.body.view() == f.big);
  Request head{"HEAD", server.base() + "/files/big.bin"};
  Response h = client.send(head);
  CHECK(h.body.empty());
  CHECK(h.content_length == std::optional<uint64_t>(f.big.size()));
  CHECK(client.open_connections() == 1);
  // One connection for all of the above (the counter query adds its own).
  CHECK(server_connections(server) - before == 2);

  // A non-2xx status is an answer, not an exception.
  Response missing = client.send(Request{"GET", server.base() + "/status/404/x"});
  CHECK(missing.status == 404);
  CHECK(!missing.ok());
  CHECK(missing.content_type() == "text/html");
  CHECK(body_excerpt(missing.body).find("status 404") != std::string::npos);
}

TEST_CASE("sha256_from_digest_headers reads RFC 9530 and RFC 3230 sha-256 claims") {
  // sha-256 of "abc".
  const std::string hex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
  const std::string b64 = "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=";
  DigestHeader d = sha256_from_digest_headers({{"Repr-Digest", "sha-256=:" + b64 + ":"}});
  CHECK(d.hex == hex);
  CHECK(d.header == "Repr-Digest");
  CHECK(d.malformed.empty());
  // Other algorithms and parameters are skipped; the legacy header is case-blind.
  d = sha256_from_digest_headers({{"repr-digest", "sha-512=:AAAA:, sha-256=:" + b64 + ":;p=1"}});
  CHECK(d.hex == hex);
  d = sha256_from_digest_headers({{"Digest", "MD5=xyz, SHA-256=" + b64}});
  CHECK(d.hex == hex);
  CHECK(d.header == "Digest");
  CHECK(sha256_from_digest_headers({{"Repr-Digest", "sha-512=:AAAA:"}}).hex.empty());
  CHECK(sha256_from_digest_headers({{"ETag", "\"x\""}}).malformed.empty());
  // Malformed: truncated, not padded, bad characters, non-zero spare bits,
  // not a byte sequence, or two claims that disagree.
  for (const std::string& bad :
       {"sha-256=:" + b64.substr(0, 20) + ":", "sha-256=:" + b64.substr(0, 43) + ":",
        "sha-256=:" + b64.substr(0, 42) + "!=:", "sha-256=:" + b64.substr(0, 42) + "b=:",
        "sha-256=" + b64, std::string("sha-256")}) {
    CAPTURE(bad);
    d = sha256_from_digest_headers({{"Repr-Digest", bad}});
    CHECK(d.malformed == "Repr-Digest");
  }
  d = sha256_from_digest_headers(
      {{"Repr-Digest", "sha-256=:" + b64 + ":"},
       {"Digest", "sha-256=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="}});
  CHECK(d.malformed == "Digest");
}

TEST_CASE("a 200 body is checked against its Repr-Digest or Digest header as it arrives") {
  Fixture f;
  auto server = start(f);
  Client client;
  for (const char* mode : {"repr", "legacy", "chunked"}) {
    CAPTURE(mode);
    Response r =
        client.send(Request{"GET", server.base() + "/digest/" + std::string(mode) + "/big.bin"});
    CHECK(r.status == 200);
    CHECK(r.body.view() == f.big);
  }
  const std::string actual = sha256_hex(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(f.big.data()), f.big.size()));
  const std::string other = sha256_hex(std::span<const uint8_t>(
      reinterpret_cast<const uint8_t*>((f.big + "x").data()), f.big.size() + 1));
  Request wrong{"GET", server.base() + "/digest/wrong/big.bin"};
  wrong.label = "shard 1 of 1";
  Error e = error_of([&] { client.send(wrong); });
  CHECK(e.code() == ErrorCode::kDataLoss);
  CHECK_FALSE(e.retryable());
  CHECK(std::string(e.what()) ==
        "GET " + server.base() +
            "/digest/wrong/big.bin (shard 1 of 1): the body's SHA-256 does not match its "
            "Repr-Digest header: 3145728 bytes, expected sha-256 (hex) " +
            other + ", got " + actual);
  e = error_of([&] { client.send(Request{"GET", server.base() + "/digest/bad/big.bin"}); });
  CHECK(e.code() == ErrorCode::kDataLoss);
  CHECK(std::string(e.what()) ==
        "GET " + server.base() +
            "/digest/bad/big.bin: the Repr-Digest header's sha-256 is malformed (not 32 bytes "
            "of padded base64) or contradicts another digest header");
  // A HEAD answer's header describes the body a GET would get, not its own
  // empty one (stat heads every weight file of a model that records digests).
  Response head = client.send(Request{"HEAD", server.base() + "/digest/repr/big.bin"});
  CHECK(head.status == 200);
  CHECK(head.body.size() == 0);
  CHECK(head.header("Repr-Digest").has_value());
  // Opting out, and answers that are not the whole file, are not checked.
  wrong.check_digest_headers = false;
  CHECK(client.send(wrong).body.view() == f.big);
  std::vector<Request> parallel;
  for (int i = 0; i < 4; ++i) parallel.push_back({"GET", server.base() + "/digest/repr/big.bin"});
  parallel.push_back({"GET", server.base() + "/digest/wrong/small.txt"});
  e = error_of([&] { client.send_all(parallel, {}, 5); });
  CHECK(e.code() == ErrorCode::kDataLoss);
  CHECK(std::string(e.what()).find("/digest/wrong/small.txt: the body's SHA-256 does not match") !=
        std::string::npos);
}

TEST_CASE("send_all runs in parallel within the per-host cap and keeps order") {
  Fixture f;
  auto server = start(f);
  ClientOptions options;
  options.max_connections_per_host = 3;
  Client client(options);
  const int before = server_connections(server);
  std::vector<Request> requests;
  for (int i = 0; i < 12; ++i) {
    requests.push_back(
        Request{"GET", server.base() + (i % 2 ? "/files/small.txt" : "/slow/small.txt")});
  }
  std::atomic<uint64_t> received{0};
  Control control;
  control.on_received = [&](uint64_t n) { received += n; };
  std::vector<Response> out = client.send_all(requests, control, 12);
  REQUIRE(out.size() == 12);
  for (const Response& r : out) CHECK(r.body.view() == f.small);
  CHECK(received == 12 * f.small.size());
  CHECK(client.open_connections() <= 3);
  CHECK(server_connections(server) - before <= 4);
  CHECK(client.send_all({}, control, 4).empty());
}

TEST_CASE("request bodies are streamed from the pieces, with progress") {
  Fixture f;
  auto server = start(f);
  Client client;
  Request post{"POST", server.base() + "/echo"};
  post.headers = {{"X-Test", "1"}, {"Authorization", "Bearer secret"}};
  post.body = {Buffer::from_string(std::string(f.big.substr(0, 1000))),
               Buffer::from_string(std::string(f.big.substr(1000)))};
  uint64_t sent = 0;
  Control control;
  control.on_sent = [&](uint64_t n) { sent += n; };
  Response r = client.send(post, control);
  std::string echo(r.body.view());
  CHECK(echo.find("\"method\": \"POST\"") != std::string::npos);
  CHECK(echo.find("\"length\": " + std::to_string(f.big.size())) != std::string::npos);
  CHECK(echo.find(sha256_hex(f.big)) != std::string::npos);
  CHECK(echo.find("\"x-test\": \"1\"") != std::string::npos);
  CHECK(sent == f.big.size());

  // An empty POST still says Content-Length: 0.
  Response empty = client.send(Request{"PUT", server.base() + "/echo"});
  CHECK(std::string(empty.body.view()).find("\"content-length\": \"0\"") != std::string::npos);

  Request bad{"GET", server.base() + "/echo"};
  bad.headers = {{"X-Evil", "a\r\nInjected: 1"}};
  Error e = error_of([&] { client.send(bad); });
  CHECK(e.code() == ErrorCode::kInvalidArgument);
  CHECK(std::string(e.what()).find("Injected") == std::string::npos);
}

TEST_CASE("redirects are followed, loops and long chains refused") {
  Fixture f;
  auto server = start(f);
  ClientOptions options;
  options.max_redirects = 3;
  Client client(options);
  Response r = client.send(Request{"GET", server.base() + "/redirect/3/small.txt"});
  CHECK(r.status == 200);
  CHECK(r.body.view() == f.small);
  CHECK(r.url == server.base() + "/files/small.txt");

  Error loop = error_of([&] { client.send(Request{"GET", server.base() + "/loop/x"}); });
  CHECK(loop.code() == ErrorCode::kUnavailable);
  CHECK(!loop.retryable());
  CHECK(std::string(loop.what()).find("redirect loop") != std::string::npos);

  Error chain = error_of([&] {
    client.send(Request{"GET", server.base() + "/redirect/5/small.txt"});
  });
  CHECK(std::string(chain.what()).find("more than 3 redirects") != std::string::npos);

  Request no_follow{"GET", server.base() + "/redirect/1/small.txt"};
  no_follow.follow_redirects = false;
  CHECK(client.send(no_follow).status == 302);

  // 303 after a POST continues as a GET without the body.
  Request post{"POST", server.base() + "/see-other"};
  post.body = {Buffer::from_string("payload")};
  std::string echo(client.send(post).body.view());
  CHECK(echo.find("\"method\": \"GET\"") != std::string::npos);
  CHECK(echo.find("\"length\": 0") != std::string::npos);

  // Credentials stay on the origin unless asked otherwise.
  auto via = [&](const std::string& host, bool keep) {
    Request req{"GET", server.base() + "/goto?to=" + server.base("http", host) + "/echo"};
    req.headers = {{"Authorization", "Bearer secret"}, {"X-Other", "kept"}};
    req.keep_credentials_across_origins = keep;
    return std::string(client.send(req).body.view());
  };
  CHECK(via("127.0.0.1", false).find("bearer secret") == std::string::npos);
  CHECK(via("127.0.0.1", false).find("Bearer secret") != std::string::npos);
  std::string other = via("localhost", false);
  CHECK(other.find("Bearer secret") == std::string::npos);
  CHECK(other.find("\"x-other\": \"kept\"") != std::string::npos);
  CHECK(via("localhost", true).find("Bearer secret") != std::string::npos);
}

TEST_CASE("large plain-TCP bodies arrive in a memfd mapping, whole, however they are paced") {
  Fixture f;
  const std::string mid = random_bytes(300 << 10, 2);  // above the 256 KiB threshold
  write_file(f.dir / "mid.bin", mid);
  auto server = start(f);
  ClientOptions options;
  options.read_timeout = std::chrono::milliseconds(400);
  Client client(options);
  auto mapped_from_memfd = [](const Buffer& b) {
    std::ifstream maps("/proc/self/maps");
    char start[32];
    std::snprintf(start, sizeof start, "%lx-", reinterpret_cast<unsigned long>(b.data()));
    for (std::string line; std::getline(maps, line);) {
      if (line.rfind(start, 0) == 0) return line.find("memfd:stowage-body") != std::string::npos;
    }
    return false;
  };

  // Paced in 4 KiB pieces, the receive waits for the socket again and again.
  uint64_t received = 0;
  Control control;
  control.on_received = [&](uint64_t n) { received += n; };
  Response slow = client.send(Request{"GET", server.base() + "/slow/mid.bin"}, control);
  CHECK(slow.body.view() == mid);
  CHECK(received == mid.size());
  CHECK(mapped_from_memfd(slow.body));
  // The connection (and its pipe) serves the next large body.
  Response big = client.send(Request{"GET", server.base() + "/files/big.bin"});
  CHECK(big.body.view() == f.big);
  CHECK(mapped_from_memfd(big.body));
  CHECK(client.open_connections() == 1);
  // Small bodies stay on the heap.
  CHECK_FALSE(
      mapped_from_memfd(client.send(Request{"GET", server.base() + "/files/small.txt"}).body));

  // Half the body, then silence: the read timeout, naming the URL.
  Error stall = error_of([&] {
    client.send(Request{"GET", server.base() + "/stall-body/mid.bin"});
  });
  CHECK(stall.code() == ErrorCode::kUnavailable);
  CHECK(stall.retryable());
  CHECK(std::string(stall.what()) == "GET " + server.base() +
                                         "/stall-body/mid.bin: the server sent nothing for 400 ms "
                                         "(read timeout)");

  // A wrong Repr-Digest on a large body is still caught.
  Error wrong = error_of([&] {
    client.send(Request{"GET", server.base() + "/digest/wrong/mid.bin"});
  });
  CHECK(wrong.code() == ErrorCode::kDataLoss);
  CHECK(std::string(wrong.what()).find("got " + sha256_hex(mid)) != std::string::npos);
}

TEST_CASE("faults are clear errors, transient ones retryable") {
  Fixture f;
  auto server = start(f);
  ClientOptions options;
  options.read_timeout = std::chrono::milliseconds(400);
  Client client(options);

  Error truncated = error_of([&] {
    client.send(Request{"GET", server.base() + "/truncate/big.bin"});
  });
  CHECK(truncated.code() == ErrorCode::kUnavailable);
  CHECK(truncated.retryable());
  CHECK(std::string(truncated.what()).find("truncated") != std::string::npos);
  CHECK(std::string(truncated.what()).find(std::to_string(f.big.size())) != std::string::npos);

  Error reset = error_of([&] { client.send(Request{"GET", server.base() + "/reset/big.bin"}); });
  CHECK(reset.code() == ErrorCode::kUnavailable);
  CHECK(reset.retryable());

  auto t0 = std::chrono::steady_clock::now();
  Error stall = error_of([&] { client.send(Request{"GET", server.base() + "/stall/x"}); });
  CHECK(stall.code() == ErrorCode::kUnavailable);
  CHECK(stall.retryable());
  CHECK(std::string(stall.what()).find("read timeout") != std::string::npos);
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5));

  Request capped{"GET", server.base() + "/files/big.bin"};
  capped.max_body_bytes = 1000;
  CHECK(error_of([&] { client.send(capped); }).code() == ErrorCode::kDataLoss);
  Request capped_chunked{"GET", server.base() + "/chunked/big.bin"};
  capped_chunked.max_body_bytes = 1000;
  CHECK(error_of([&] { client.send(capped_chunked); }).code() == ErrorCode::kDataLoss);

  // A kept-alive connection the server dropped is replaced without an error.
  for (int i = 0; i < 3; ++i) {
    CHECK(client.send(Request{"GET", server.base() + "/then-close/small.txt"}).body.view() ==
          f.small);
  }

  // Nothing listens on a port just released.
  std::string dead = server.base();
  server.stop();
  Error refused = error_of([&] { client.send(Request{"GET", dead + "/files/small.txt"}); });
  CHECK(refused.code() == ErrorCode::kUnavailable);
  CHECK(refused.retryable());
  CHECK(std::string(refused.what()).find(dead) != std::string::npos);

  Error unknown = error_of([&] { client.send(Request{"GET", "http://no-such-host.invalid/x"}); });
  CHECK(unknown.code() == ErrorCode::kUnavailable);
}

TEST_CASE("cancellation, deadlines and on_head stop every request of a call") {
  Fixture f;
  write_file(f.dir / "slow.bin", random_bytes(1 << 20, 2));  // ~5 s at the slow route's pace
  auto server = start(f);
  Client client;

  std::atomic<bool> cancel{false};
  Control control;
  control.cancelled = [&] { return cancel.load(); };
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    cancel = true;
  });
  auto t0 = std::chrono::steady_clock::now();
  std::vector<Request> slow(3, Request{"GET", server.base() + "/slow/slow.bin"});
  Error cancelled = error_of([&] { client.send_all(slow, control, 3); });
  stopper.join();
  CHECK(cancelled.code() == ErrorCode::kCancelled);
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(3000));

  Control deadline;
  deadline.deadline = std::chrono::system_clock::now() + std::chrono::milliseconds(200);
  Error late = error_of([&] { client.send(Request{"GET", server.base() + "/stall/x"}, deadline); });
  CHECK(late.code() == ErrorCode::kDeadlineExceeded);
  CHECK(!late.retryable());

  // A request refused by on_head stops the slow ones beside it.
  std::vector<Request> mixed(3, Request{"GET", server.base() + "/slow/slow.bin"});
  mixed.push_back(Request{"GET", server.base() + "/status/404/w.bin"});
  for (Request& r : mixed) {
    r.on_head = [](const Response& head) {
      if (!head.ok()) throw status_error(head.status, head.reason, "shard");
    };
  }
  t0 = std::chrono::steady_clock::now();
  Error refused = error_of([&] { client.send_all(mixed, {}, 4); });
  CHECK(refused.code() == ErrorCode::kNotFound);
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(3000));

  // The client is still usable afterwards.
  CHECK(client.send(Request{"GET", server.base() + "/files/small.txt"}).body.view() == f.small);
}

TEST_CASE(
    "a Batch runs steps on the submitting thread, in either order, holding at most its width") {
  Fixture f;
  const std::string mid = random_bytes(64 << 10, 3);  // ~0.3 s on the slow route
  write_file(f.dir / "mid.bin", mid);
  auto server = start(f);
  Client client;
  const std::thread::id caller = std::this_thread::get_id();
  for (Client::Batch::Order order :
       {Client::Batch::Order::kAnswered, Client::Batch::Order::kSubmitted}) {
    CAPTURE(static_cast<int>(order));
    std::vector<size_t> steps;
    size_t submitted = 0;
    size_t most_held = 0;
    std::atomic<uint64_t> received{0};
    Control control;
    control.on_received = [&](uint64_t n) { received += n; };
    Client::Batch batch(client, control, 3, order);
    // The first request is slow, the other seven fast.
    for (size_t i = 0; i < 8; ++i) {
      const std::string url = server.base() + (i == 0 ? "/slow/mid.bin" : "/files/small.txt");
      CHECK(batch.submit(Request{"GET", url}, [&, i](Response& r) {
        CHECK(std::this_thread::get_id() == caller);
        CHECK(r.body.view() == (i == 0 ? std::string_view(mid) : std::string_view(f.small)));
        steps.push_back(i);
      }));
      ++submitted;
      most_held = std::max(most_held, submitted - steps.size());
    }
    batch.wait();
    CHECK(most_held == 3);
    CHECK(received == mid.size() + 7 * f.small.size());
    REQUIRE(steps.size() == 8);
    if (order == Client::Batch::Order::kSubmitted) {
      CHECK(steps == std::vector<size_t>{0, 1, 2, 3, 4, 5, 6, 7});
    } else {
      // The two fast requests beside the slow one are taken first.
      CHECK(steps.front() != 0);
    }
  }
}

TEST_CASE("a Batch stops at the first failing step or request, and on cancellation") {
  Fixture f;
  write_file(f.dir / "slow.bin", random_bytes(1 << 20, 2));  // ~5 s at the slow route's pace
  auto server = start(f);
  Client client;
  const std::string slow = server.base() + "/slow/slow.bin";
  const std::string fast = server.base() + "/files/small.txt";

  // A step that throws: the slow requests beside it are cancelled, later
  // submits are refused, and wait() rethrows the step's exception.
  auto t0 = std::chrono::steady_clock::now();
  {
    Client::Batch batch(client, {}, 3);
    CHECK(batch.submit(Request{"GET", slow}));
    CHECK(batch.submit(Request{"GET", slow}));
    CHECK(batch.submit(Request{"GET", fast}, [](Response&) {
      throw Error(ErrorCode::kDataLoss, "the fast file is wrong");
    }));
    // Room frees only once the step ran (and failed): refused.
    CHECK_FALSE(batch.submit(Request{"GET", fast}, [](Response&) { FAIL("no step after"); }));
    Error e = error_of([&] { batch.wait(); });
    CHECK(e.code() == ErrorCode::kDataLoss);
    CHECK(std::string(e.what()) == "the fast file is wrong");
  }
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(3000));

  // A request that fails (refused by on_head) stops the batch the same way.
  t0 = std::chrono::steady_clock::now();
  {
    Client::Batch batch(client, {}, 2);
    CHECK(batch.submit(Request{"GET", slow}));
    Request missing{"GET", server.base() + "/status/404/w.bin"};
    missing.on_head = [](const Response& head) {
      if (!head.ok()) throw status_error(head.status, head.reason, "shard");
    };
    CHECK(batch.submit(missing));
    Error e = error_of([&] { batch.wait(); });
    CHECK(e.code() == ErrorCode::kNotFound);
  }
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(3000));

  // Cancellation, polled while wait() waits, names the batch.
  std::atomic<bool> cancel{false};
  Control control;
  control.cancelled = [&] { return cancel.load(); };
  t0 = std::chrono::steady_clock::now();
  {
    Client::Batch batch(client, control, 3);
    for (int i = 0; i < 3; ++i) CHECK(batch.submit(Request{"GET", slow}));
    std::thread stopper([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      cancel = true;
    });
    Error e = error_of([&] { batch.wait(); });
    stopper.join();
    CHECK(e.code() == ErrorCode::kCancelled);
    CHECK(std::string(e.what()) == "3 HTTP requests was cancelled");
  }
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(3000));

  // A batch left without wait() cancels what is in flight and runs no
  // more steps, without throwing.
  t0 = std::chrono::steady_clock::now();
  {
    Client::Batch batch(client, {}, 3);
    CHECK(batch.submit(Request{"GET", slow}));
    CHECK(batch.submit(Request{"GET", slow}));
    CHECK(batch.submit(Request{"GET", fast}, [](Response&) { FAIL("no step once left"); }));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the fast one is answered
  }
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(3000));

  // The client is still usable afterwards.
  CHECK(client.send(Request{"GET", fast}).body.view() == f.small);
}

TEST_CASE("a failure beside a request whose body is sent awaits that request's answer") {
  Fixture f;
  auto server = start(f);
  Client client;
  // The upload is read at once and answered a second later; the GET beside
  // it fails at once. The upload is not cut off (the server may be acting
  // on it, and what the caller does after the failure, such as deleting
  // what it wrote, must come after that): wait() reports the failure only
  // once the upload's answer came.
  const auto t0 = std::chrono::steady_clock::now();
  {
    Client::Batch batch(client, {}, 2);
    Request put{"PUT", server.base() + "/late/late/files/small.txt"};
    put.body = {Buffer::from_string("an upload")};
    CHECK(batch.submit(put));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // its body is sent
    Request missing{"GET", server.base() + "/status/404/w.bin"};
    missing.on_head = [](const Response& head) {
      if (!head.ok()) throw status_error(head.status, head.reason, "shard");
    };
    CHECK(batch.submit(missing));
    Error e = error_of([&] { batch.wait(); });
    CHECK(e.code() == ErrorCode::kNotFound);
  }
  CHECK(std::chrono::steady_clock::now() - t0 >= std::chrono::milliseconds(950));
}

TEST_CASE("ranged answers fill their places in one shared body") {
  Fixture f;
  auto server = start(f);
  Client client;
  // Ranges of every size, plain TCP: spliced into the memfd at their offsets.
  for (uint64_t parts : {1, 2, 7}) {
    Buffer whole = ranged_into(client, server.base() + "/range/big.bin", f.big.size(), parts);
    CHECK(whole.view() == f.big);
  }
  // An answer whose length is not the range asked for fails, naming it.
  auto into = std::make_shared<SharedBody>(f.big.size(), "big");
  Request shortened{"GET", server.base() + "/range/short/big.bin"};
  shortened.headers.emplace_back("Range", "bytes=0-1048575");
  shortened.into = into;
  shortened.into_length = 1048576;
  Error e = error_of([&] { client.send(shortened); });
  CHECK(e.code() == ErrorCode::kDataLoss);
  CHECK(std::string(e.what()) == "GET " + server.base() +
                                     "/range/short/big.bin: the ranged answer announces 1048575 "
                                     "bytes, the range asked for 1048576");
  // A 200 (a server that ignores Range) is read into a buffer of its own.
  Request plain{"GET", server.base() + "/files/big.bin"};
  plain.headers.emplace_back("Range", "bytes=0-1048575");
  plain.into = into;
  plain.into_length = 1048576;
  Response full = client.send(plain);
  CHECK(full.status == 200);
  CHECK(full.body.view() == f.big);
}

TEST_CASE("https verifies certificates and host names") {
  if (std::system("openssl version > /dev/null 2>&1") != 0) {
    FAIL("the openssl command is needed to make the test certificates");
  }
  Fixture f;
  const fs::path d = f.dir / "tls";
  fs::create_directories(d);
  const std::string q = "'" + d.string() + "/";
  // A CA, and a server certificate it signs for the name localhost only.
  std::string cmd = "cd " + q +
                    "' && "
                    "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 "
                    "-subj /CN=stowage-test-ca > /dev/null 2>&1 && "
                    "openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr "
                    "-subj /CN=localhost > /dev/null 2>&1 && "
                    "printf 'subjectAltName=DNS:localhost\\n' > ext.cnf && "
                    "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
                    "-out server.pem -days 2 -extfile ext.cnf > /dev/null 2>&1";
  REQUIRE(std::system(cmd.c_str()) == 0);
  auto server =
      start(f, {"--cert", (d / "server.pem").string(), "--key", (d / "server.key").string()});
  const std::string url = server.base("https", "localhost") + "/files/small.txt";

  Error untrusted = error_of([&] { Client().send(Request{"GET", url}); });
  CHECK(untrusted.code() == ErrorCode::kUnavailable);
  CHECK(!untrusted.retryable());
  CHECK(std::string(untrusted.what()).find("certificate verification failed") != std::string::npos);

  ClientOptions trusted;
  trusted.ca_file = (d / "ca.pem").string();
  Client client(trusted);
  CHECK(client.send(Request{"GET", url}).body.view() == f.small);
  CHECK(client.send(Request{"GET", server.base("https", "localhost") + "/files/big.bin"})
            .body.view() == f.big);
  // Ranged answers over TLS are copied into their places in one shared body.
  CHECK(ranged_into(client, server.base("https", "localhost") + "/range/big.bin", f.big.size(), 3)
            .view() == f.big);

  // A redirect to plain http is refused before anything is sent there.
  const std::string down = server.base("http", "localhost") + "/files/small.txt";
  const std::string from = server.base("https", "localhost") + "/goto?to=" + down;
  Error downgrade = error_of([&] { client.send(Request{"GET", from}); });
  CHECK(downgrade.code() == ErrorCode::kPermissionDenied);
  CHECK(!downgrade.retryable());
  CHECK(std::string(downgrade.what()) ==
        "GET " + from + ": refused a redirect from https to plain http (" + from + " -> " + down +
            "); name the http:// URL to load over plain HTTP");

  // The certificate does not name 127.0.0.1.
  Error wrong_name = error_of([&] {
    client.send(Request{"GET", server.base("https", "127.0.0.1") + "/files/small.txt"});
  });
  CHECK(std::string(wrong_name.what()).find("certificate verification failed") !=
        std::string::npos);

  ClientOptions insecure;
  insecure.insecure_skip_tls_verify = true;
  CHECK(Client(insecure)
            .send(Request{"GET", server.base("https", "127.0.0.1") + "/files/small.txt"})
            .body.view() == f.small);

  ClientOptions missing;
  missing.ca_file = (d / "nope.pem").string();
  CHECK(error_of([&] { Client c(missing); }).code() == ErrorCode::kInvalidArgument);
}
