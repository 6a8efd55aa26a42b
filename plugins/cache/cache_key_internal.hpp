// The identity of a cached model: its inner URL without anything secret or
// short-lived (credentials, signed query values), so a presigned URL that is
// signed again tomorrow finds the same entry, and neither the key nor the
// snapshot file ever holds a secret.
//
// Thread-safety: pure functions. Ownership: results are new strings.
#pragma once

#include <string>
#include <string_view>

#pragma GCC visibility push(hidden)

namespace stowage::cache {

// The URL with its userinfo, its fragment and every signing query parameter
// (X-Amz-*, X-Goog-*, Signature, Expires, Policy, Key-Pair-Id, token,
// access_token, sig, Azure SAS fields) removed, the values redact_url hides
// replaced as it replaces them, the scheme and host lowercased. The rest of
// the query keeps its order.
std::string normalise_url(std::string_view url);

// 64 lowercase hex digits: SHA-256 of normalise_url(url).
std::string cache_key(std::string_view url);

}  // namespace stowage::cache

#pragma GCC visibility pop
