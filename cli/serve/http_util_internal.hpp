// Small pieces of HTTP semantics the server needs, without any network
// code: Range (RFC 9110 14.2), entity tags and If-None-Match / If-Range
// (13.1), bearer tokens (RFC 6750), CORS origins and media types.
// Thread-safety: free functions without state.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace stowage::serve {

struct ByteRange {
  uint64_t first = 0;
  uint64_t length = 0;
};
struct RangeRequest {
  enum class Kind { kWhole, kPart, kUnsatisfiable } kind = Kind::kWhole;
  ByteRange range;
};
// A Range header against a representation of `size` bytes. One range of
// "bytes=a-b", "bytes=a-" or "bytes=-n" gives kPart (clamped to the end);
// a range starting past the end, or "-0", gives kUnsatisfiable. Anything
// else (no header, other units, several ranges, bad syntax) gives kWhole,
// since a server may always ignore Range.
RangeRequest parse_range(std::string_view header, uint64_t size);

// True when an If-None-Match value ("*" or a list of entity tags, weak or
// strong) matches etag (weak comparison).
bool etag_matches_any(std::string_view if_none_match, std::string_view etag);
// If-Range with an entity tag: true when it equals etag (strong
// comparison). A date or a weak tag never matches.
bool if_range_matches(std::string_view if_range, std::string_view etag);

// The token of "Authorization: Bearer <token>", or nullopt.
std::optional<std::string_view> bearer_token(std::string_view authorization);
// Compares in time that does not depend on where the strings differ.
bool constant_time_equals(std::string_view a, std::string_view b);

// True when origin is one of allowed or allowed holds "*".
bool origin_allowed(std::string_view origin, const std::vector<std::string>& allowed);

// The media type for a static file, from its extension.
std::string_view media_type_for(std::string_view file_name);

// A quoted strong entity tag from a digest or identity text.
std::string quote_etag(std::string_view opaque);

}  // namespace stowage::serve
