#include <doctest/doctest.h>

#include "http_util_internal.hpp"

namespace stowage::serve {
namespace {

std::pair<uint64_t, uint64_t> part(std::string_view header, uint64_t size) {
  const RangeRequest r = parse_range(header, size);
  REQUIRE(r.kind == RangeRequest::Kind::kPart);
  return {r.range.first, r.range.length};
}

RangeRequest::Kind kind(std::string_view header, uint64_t size) {
  return parse_range(header, size).kind;
}

}  // namespace

TEST_CASE("http: Range") {
  using K = RangeRequest::Kind;
  CHECK(part("bytes=0-0", 10) == std::make_pair<uint64_t, uint64_t>(0, 1));
  CHECK(part("bytes=2-5", 10) == std::make_pair<uint64_t, uint64_t>(2, 4));
  CHECK(part("bytes=2-", 10) == std::make_pair<uint64_t, uint64_t>(2, 8));
  CHECK(part("bytes=5-100", 10) == std::make_pair<uint64_t, uint64_t>(5, 5));
  CHECK(part("bytes=-3", 10) == std::make_pair<uint64_t, uint64_t>(7, 3));
  CHECK(part("bytes=-30", 10) == std::make_pair<uint64_t, uint64_t>(0, 10));
  CHECK(part("Bytes = 9-9", 10) == std::make_pair<uint64_t, uint64_t>(9, 1));

  CHECK(kind("bytes=10-", 10) == K::kUnsatisfiable);
  CHECK(kind("bytes=10-20", 10) == K::kUnsatisfiable);
  CHECK(kind("bytes=-0", 10) == K::kUnsatisfiable);
  CHECK(kind("bytes=0-", 0) == K::kUnsatisfiable);
  CHECK(kind("bytes=-1", 0) == K::kUnsatisfiable);

  // Ignored: the whole representation is sent.
  CHECK(kind("", 10) == K::kWhole);
  CHECK(kind("items=0-1", 10) == K::kWhole);
  CHECK(kind("bytes=0-1,3-4", 10) == K::kWhole);
  CHECK(kind("bytes=5-2", 10) == K::kWhole);
  CHECK(kind("bytes=a-b", 10) == K::kWhole);
  CHECK(kind("bytes=-", 10) == K::kWhole);
  CHECK(kind("bytes=99999999999999999999-", 10) == K::kWhole);
}

TEST_CASE("http: entity tags") {
  CHECK(etag_matches_any("\"abc\"", "\"abc\""));
  CHECK(etag_matches_any("W/\"abc\"", "\"abc\""));
  CHECK(etag_matches_any("\"x\", \"abc\"", "\"abc\""));
  CHECK(etag_matches_any("*", "\"abc\""));
  CHECK_FALSE(etag_matches_any("\"abd\"", "\"abc\""));
  CHECK_FALSE(etag_matches_any("abc", "\"abc\""));
  CHECK_FALSE(etag_matches_any("", "\"abc\""));

  CHECK(if_range_matches("\"abc\"", "\"abc\""));
  CHECK_FALSE(if_range_matches("W/\"abc\"", "\"abc\""));
  CHECK_FALSE(if_range_matches("Wed, 21 Oct 2015 07:28:00 GMT", "\"abc\""));
}

TEST_CASE("http: bearer tokens and origins") {
  CHECK(bearer_token("Bearer abc") == std::optional<std::string_view>("abc"));
  CHECK(bearer_token("bearer   abc ") == std::optional<std::string_view>("abc"));
  CHECK_FALSE(bearer_token("Basic abc").has_value());
  CHECK_FALSE(bearer_token("Bearer").has_value());
  CHECK_FALSE(bearer_token("Bearer ").has_value());
  CHECK_FALSE(bearer_token("").has_value());

  CHECK(constant_time_equals("secret", "secret"));
  CHECK_FALSE(constant_time_equals("secret", "secreT"));
  CHECK_FALSE(constant_time_equals("secret", "secret2"));
  CHECK_FALSE(constant_time_equals("", "x"));

  const std::vector<std::string> allowed{"http://localhost:3000", "https://app.example"};
  CHECK(origin_allowed("http://localhost:3000", allowed));
  CHECK(origin_allowed("HTTPS://APP.EXAMPLE", allowed));
  CHECK_FALSE(origin_allowed("http://localhost:3001", allowed));
  CHECK_FALSE(origin_allowed("", allowed));
  CHECK_FALSE(origin_allowed("http://a", {}));
  CHECK(origin_allowed("http://anything", {"*"}));
  CHECK_FALSE(origin_allowed("", {"*"}));
}

TEST_CASE("http: media types") {
  CHECK(media_type_for("index.html") == "text/html; charset=utf-8");
  CHECK(media_type_for("tf.min.js") == "text/javascript; charset=utf-8");
  CHECK(media_type_for("model.json") == "application/json");
  CHECK(media_type_for("weights.bin") == "application/octet-stream");
  CHECK(media_type_for("README") == "application/octet-stream");
}

}  // namespace stowage::serve
