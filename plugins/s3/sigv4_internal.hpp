// AWS Signature Version 4, in the Authorization header. The signer is
// generic (any service, any headers) so it can be checked against the
// published AWS test suite; the S3 client decides which headers it signs
// (always host, x-amz-date and x-amz-content-sha256).
//
// Paths are not normalised and are encoded once, as S3 requires (the other
// AWS services normalise and encode twice; S3 keys may hold "//" and "..").
//
// Thread-safety: stateless functions. Ownership: plain values.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "stowage/buffer.hpp"

namespace stowage::s3 {

// A secret key lives here and nowhere else; nothing in this plugin prints it.
struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // sent as x-amz-security-token when not empty
};

using Pairs = std::vector<std::pair<std::string, std::string>>;

// What the signature covers.
struct SignableRequest {
  std::string method;  // "GET", "PUT", ...
  // The path exactly as sent, already percent-encoded ("/bucket/a%20b").
  std::string path;
  // Query parameters, decoded; the signer encodes and sorts them.
  Pairs query;
  // The headers to sign (names in any case; repeated names allowed).
  Pairs headers;
  // Lowercase hex SHA-256 of the body.
  std::string payload_sha256;
};

struct Signature {
  std::string canonical_request;
  std::string string_to_sign;
  std::string signed_headers;  // "host;x-amz-content-sha256;x-amz-date"
  std::string signature;       // lowercase hex
  std::string authorization;   // the Authorization header's value
};

// RFC 3986 percent-encoding as SigV4 defines it: A-Z a-z 0-9 - . _ ~ stay,
// every other byte becomes %XX (uppercase). With keep_slash, '/' stays too
// (object keys in paths).
std::string uri_encode(std::string_view text, bool keep_slash);

// "Param1=value1&Param2=value2": encoded, then sorted by name and value.
std::string canonical_query(const Pairs& query);

// "20150830T123600Z" for a time in UTC.
std::string amz_date(std::chrono::system_clock::time_point when);

// Lowercase hex of SHA-256 over the bytes, or over the concatenation of pieces.
std::string sha256_hex(std::string_view bytes);
std::string sha256_hex(const std::vector<Buffer>& pieces);
// Base64 of MD5 over the bytes (Content-MD5, where a request requires it).
std::string md5_base64(std::string_view bytes);

// SHA-256 of nothing: the payload hash of every request without a body.
inline constexpr std::string_view kEmptySha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

// Signs `request` for `region` and `service` at `date` (amz_date form); the
// request's headers must already hold x-amz-date (and host).
Signature sign_v4(const SignableRequest& request, const Credentials& credentials,
                  std::string_view region, std::string_view service, std::string_view date);

}  // namespace stowage::s3
