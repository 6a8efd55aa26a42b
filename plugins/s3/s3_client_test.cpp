// S3Client's addressing and endpoints, without a network: which URL a
// request goes to for AWS and for other endpoints, in each addressing mode.
#include <doctest/doctest.h>

#include "s3_client_internal.hpp"

using stowage::s3::Addressing;
using stowage::s3::ClientConfig;
using stowage::s3::S3Client;

namespace {
std::string url(const std::string& endpoint, Addressing a, const std::string& bucket,
                const std::string& key, const std::string& region = "us-east-1") {
  ClientConfig c;
  c.endpoint = endpoint;
  c.addressing = a;
  c.region = region;
  return S3Client(c).url_for(bucket, key);
}
}  // namespace

TEST_CASE("AWS: regional endpoint, virtual hosts when the bucket is a DNS label") {
  CHECK(url("", Addressing::kAuto, "models", "a/model.json", "eu-west-1") ==
        "https://models.s3.eu-west-1.amazonaws.com/a/model.json");
  CHECK(url("", Addressing::kAuto, "models", "a/model.json", "cn-north-1") ==
        "https://models.s3.cn-north-1.amazonaws.com.cn/a/model.json");
  // Dots do not fit the wildcard certificate; capitals are no DNS label.
  CHECK(url("", Addressing::kAuto, "my.models", "m.json", "eu-west-1") ==
        "https://s3.eu-west-1.amazonaws.com/my.models/m.json");
  CHECK(url("", Addressing::kAuto, "Models", "m.json", "eu-west-1") ==
        "https://s3.eu-west-1.amazonaws.com/Models/m.json");
  CHECK(url("", Addressing::kPath, "models", "m.json", "eu-west-1") ==
        "https://s3.eu-west-1.amazonaws.com/models/m.json");
}

TEST_CASE("other endpoints: path-style unless asked, ports and base paths kept") {
  CHECK(url("http://127.0.0.1:9000", Addressing::kAuto, "models", "a b/model.json") ==
        "http://127.0.0.1:9000/models/a%20b/model.json");
  CHECK(url("http://minio.local:9000/", Addressing::kVirtual, "models", "m.json") ==
        "http://models.minio.local:9000/m.json");
  CHECK(url("https://gw.example/s3/", Addressing::kPath, "models", "k") ==
        "https://gw.example/s3/models/k");
  CHECK(url("http://127.0.0.1:9000", Addressing::kAuto, "models", "") ==
        "http://127.0.0.1:9000/models");
}

TEST_CASE("endpoints that are not http(s) URLs are refused") {
  ClientConfig c;
  c.endpoint = "ftp://example.com";
  CHECK_THROWS_AS(S3Client{c}, stowage::Error);
  c.endpoint = "http://example.com/?x=1";
  CHECK_THROWS_AS(S3Client{c}, stowage::Error);
}
