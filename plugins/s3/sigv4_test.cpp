// SigV4 against the published AWS test suite (tests/data/sigv4), plus the
// S3 example of the S3 API reference and the encoding rules S3 depends on.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "sigv4_internal.hpp"

namespace {

using stowage::s3::Credentials;
using stowage::s3::SignableRequest;

const std::string kSuiteToken =
    "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSP"
    "fIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7"
    "WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8F"
    "DrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==";

// The sections of one vector file: req, creq, sts, authz.
std::map<std::string, std::string> read_vector(const std::filesystem::path& file) {
  std::ifstream in(file);
  REQUIRE(in.good());
  std::map<std::string, std::vector<std::string>> lines;
  std::string line, current;
  while (std::getline(in, line)) {
    if (current.empty() && line.starts_with("#")) continue;
    if (line.size() > 2 && line.front() == '[' && line.back() == ']') {
      current = line.substr(1, line.size() - 2);
      lines[current];
      continue;
    }
    REQUIRE(!current.empty());
    lines[current].push_back(line);
  }
  std::map<std::string, std::string> sections;
  for (const auto& [name, text] : lines) {
    std::string joined;
    for (size_t i = 0; i < text.size(); ++i) joined += (i ? "\n" : "") + text[i];
    sections[name] = joined;
  }
  return sections;
}

struct ParsedRequest {
  SignableRequest request;
  std::string body;
};

// "METHOD /path?query HTTP/1.1", "Name:value" lines, a blank line, the body.
ParsedRequest parse_req(const std::string& text) {
  ParsedRequest out;
  std::istringstream in(text);
  std::string line;
  std::getline(in, line);
  size_t sp = line.find(' ');
  size_t proto = line.rfind(" HTTP/");
  out.request.method = line.substr(0, sp);
  std::string uri = line.substr(sp + 1, proto - sp - 1);
  std::string path = uri.substr(0, uri.find('?'));
  out.request.path = stowage::s3::uri_encode(path, /*keep_slash=*/true);
  if (uri.find('?') != std::string::npos) {
    std::string query = uri.substr(uri.find('?') + 1);
    size_t start = 0;
    while (start <= query.size()) {
      size_t end = std::min(query.find('&', start), query.size());
      std::string pair = query.substr(start, end - start);
      size_t eq = pair.find('=');
      if (!pair.empty()) {
        out.request.query.emplace_back(pair.substr(0, eq),
                                       eq == std::string::npos ? "" : pair.substr(eq + 1));
      }
      start = end + 1;
    }
  }
  while (std::getline(in, line) && !line.empty()) {
    size_t colon = line.find(':');
    out.request.headers.emplace_back(line.substr(0, colon), line.substr(colon + 1));
  }
  std::string rest((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  out.body = rest;
  out.request.payload_sha256 = stowage::s3::sha256_hex(out.body);
  return out;
}

// The header names listed after "SignedHeaders=" in an authz line.
std::vector<std::string> signed_names(const std::string& authz) {
  size_t a = authz.find("SignedHeaders=") + 14;
  std::string list = authz.substr(a, authz.find(',', a) - a);
  std::vector<std::string> names;
  size_t start = 0;
  while (start <= list.size()) {
    size_t end = std::min(list.find(';', start), list.size());
    names.push_back(list.substr(start, end - start));
    start = end + 1;
  }
  return names;
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

TEST_CASE("every vector of the AWS SigV4 test suite signs as published") {
  const std::filesystem::path dir = std::filesystem::path(STOWAGE_SOURCE_DIR) / "tests/data/sigv4";
  int checked = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".txt") continue;
    const std::string name = entry.path().stem().string();
    CAPTURE(name);
    auto v = read_vector(entry.path());
    REQUIRE(v.count("req"));
    REQUIRE(v.count("creq"));
    REQUIRE(v.count("sts"));
    REQUIRE(v.count("authz"));
    ParsedRequest parsed = parse_req(v["req"]);
    Credentials creds{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""};

    auto all =
        stowage::s3::sign_v4(parsed.request, creds, "us-east-1", "service", "20150830T123600Z");
    CHECK(all.canonical_request == v["creq"]);

    // The string to sign and the signature, over the headers authz names.
    SignableRequest subset = parsed.request;
    std::vector<std::string> names = signed_names(v["authz"]);
    subset.headers.clear();
    for (const auto& h : parsed.request.headers) {
      if (std::find(names.begin(), names.end(), lower(h.first)) != names.end()) {
        subset.headers.push_back(h);
      }
    }
    auto s = stowage::s3::sign_v4(subset, creds, "us-east-1", "service", "20150830T123600Z");
    CHECK(s.string_to_sign == v["sts"]);
    CHECK(s.authorization == v["authz"]);
    ++checked;
  }
  CHECK(checked >= 20);
}

TEST_CASE("the suite's session-token vector carries the token it signs") {
  auto v = read_vector(std::filesystem::path(STOWAGE_SOURCE_DIR) /
                       "tests/data/sigv4/post-sts-header-before.txt");
  CHECK(v["req"].find(kSuiteToken) != std::string::npos);
}

// The worked example "GET Object" of the S3 API reference (Signature
// Version 4, header authentication): examplebucket, a Range header, the
// x-amz-content-sha256 of an empty body.
TEST_CASE("the S3 GetObject example of the S3 API reference") {
  SignableRequest r;
  r.method = "GET";
  r.path = "/test.txt";
  r.headers = {{"Host", "examplebucket.s3.amazonaws.com"},
               {"Range", "bytes=0-9"},
               {"x-amz-content-sha256", std::string(stowage::s3::kEmptySha256)},
               {"x-amz-date", "20130524T000000Z"}};
  r.payload_sha256 = std::string(stowage::s3::kEmptySha256);
  Credentials creds{"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ""};
  auto s = stowage::s3::sign_v4(r, creds, "us-east-1", "s3", "20130524T000000Z");
  CHECK(s.signed_headers == "host;range;x-amz-content-sha256;x-amz-date");
  CHECK(s.signature == "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

TEST_CASE("uri_encode keeps only the unreserved set (and '/' in paths)") {
  using stowage::s3::uri_encode;
  CHECK(uri_encode("models/a b+c", true) == "models/a%20b%2Bc");
  CHECK(uri_encode("models/a b+c", false) == "models%2Fa%20b%2Bc");
  CHECK(uri_encode("-._~AZaz09", false) == "-._~AZaz09");
  CHECK(uri_encode("=&?#%", false) == "%3D%26%3F%23%25");
  CHECK(uri_encode("\xc3\xa9", false) == "%C3%A9");
}

TEST_CASE("canonical_query encodes, then sorts by name and value") {
  using stowage::s3::canonical_query;
  CHECK(canonical_query({{"prefix", "models/"}, {"list-type", "2"}}) ==
        "list-type=2&prefix=models%2F");
  CHECK(canonical_query({{"uploads", ""}}) == "uploads=");
  CHECK(canonical_query({{"b", "2"}, {"a", "z"}, {"a", "y"}}) == "a=y&a=z&b=2");
  CHECK(canonical_query({}) == "");
}

TEST_CASE("amz_date is UTC in the basic ISO 8601 form") {
  auto t = std::chrono::system_clock::time_point(std::chrono::seconds(1440938160));
  CHECK(stowage::s3::amz_date(t) == "20150830T123600Z");
}

TEST_CASE("digests") {
  CHECK(stowage::s3::sha256_hex("") == stowage::s3::kEmptySha256);
  std::vector<stowage::Buffer> pieces = {stowage::Buffer::from_string("Param1="),
                                         stowage::Buffer::from_string("value1")};
  CHECK(stowage::s3::sha256_hex(pieces) == stowage::s3::sha256_hex("Param1=value1"));
  CHECK(stowage::s3::md5_base64("") == "1B2M2Y8AsgTpgAmY7PhCfg==");
}

TEST_CASE("the signature changes with the secret, and the secret is in no output") {
  SignableRequest r;
  r.method = "GET";
  r.path = "/bucket/key";
  r.headers = {{"host", "h"}, {"x-amz-date", "20240101T000000Z"}};
  r.payload_sha256 = std::string(stowage::s3::kEmptySha256);
  Credentials a{"AKID", "secret-one-SECRET", ""};
  Credentials b{"AKID", "secret-two-SECRET", ""};
  auto sa = stowage::s3::sign_v4(r, a, "us-east-1", "s3", "20240101T000000Z");
  auto sb = stowage::s3::sign_v4(r, b, "us-east-1", "s3", "20240101T000000Z");
  CHECK(sa.signature != sb.signature);
  for (const auto& s : {sa, sb}) {
    for (const std::string* text :
         {&s.canonical_request, &s.string_to_sign, &s.authorization, &s.signature}) {
      CHECK(text->find("SECRET") == std::string::npos);
    }
  }
}
