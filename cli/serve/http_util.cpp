#include <algorithm>
#include <boost/beast/core/string.hpp>
#include <charconv>

#include "http_util_internal.hpp"

namespace stowage::serve {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::optional<uint64_t> parse_u64(std::string_view s) {
  if (s.empty() || s.size() > 19) return std::nullopt;
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || p != s.data() + s.size()) return std::nullopt;
  return v;
}

std::string_view opaque_tag(std::string_view tag) {
  tag = trim(tag);
  if (tag.size() >= 2 && tag[0] == 'W' && tag[1] == '/') tag.remove_prefix(2);
  return tag;
}

}  // namespace

RangeRequest parse_range(std::string_view header, uint64_t size) {
  RangeRequest out;
  header = trim(header);
  const size_t eq = header.find('=');
  if (eq == std::string_view::npos || !boost::beast::iequals(trim(header.substr(0, eq)), "bytes"))
    return out;
  const std::string_view spec = trim(header.substr(eq + 1));
  if (spec.find(',') != std::string_view::npos) return out;  // several ranges: send it all
  const size_t dash = spec.find('-');
  if (dash == std::string_view::npos) return out;
  const std::string_view a = trim(spec.substr(0, dash));
  const std::string_view b = trim(spec.substr(dash + 1));
  if (a.empty()) {
    const std::optional<uint64_t> suffix = parse_u64(b);
    if (!suffix) return out;
    if (*suffix == 0 || size == 0) {
      out.kind = RangeRequest::Kind::kUnsatisfiable;
      return out;
    }
    const uint64_t n = std::min(*suffix, size);
    out.kind = RangeRequest::Kind::kPart;
    out.range = {size - n, n};
    return out;
  }
  const std::optional<uint64_t> first = parse_u64(a);
  if (!first) return out;
  std::optional<uint64_t> last;
  if (!b.empty()) {
    last = parse_u64(b);
    if (!last || *last < *first) return out;  // invalid: ignore the header
  }
  if (*first >= size) {
    out.kind = RangeRequest::Kind::kUnsatisfiable;
    return out;
  }
  const uint64_t end = last ? std::min(*last, size - 1) : size - 1;
  out.kind = RangeRequest::Kind::kPart;
  out.range = {*first, end - *first + 1};
  return out;
}

bool etag_matches_any(std::string_view if_none_match, std::string_view etag) {
  if (trim(if_none_match) == "*") return true;
  const std::string_view want = opaque_tag(etag);
  size_t start = 0;
  while (start <= if_none_match.size()) {
    // Entity tags cannot hold commas or quotes inside, so a split on ','
    // is exact.
    const size_t comma = if_none_match.find(',', start);
    const std::string_view tag = if_none_match.substr(start, comma - start);
    if (!trim(tag).empty() && opaque_tag(tag) == want) return true;
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return false;
}

bool if_range_matches(std::string_view if_range, std::string_view etag) {
  if_range = trim(if_range);
  if (if_range.size() < 2 || if_range.front() != '"') return false;  // a date or a weak tag
  return if_range == trim(etag);
}

std::optional<std::string_view> bearer_token(std::string_view authorization) {
  authorization = trim(authorization);
  const size_t space = authorization.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  if (!boost::beast::iequals(authorization.substr(0, space), "bearer")) return std::nullopt;
  const std::string_view token = trim(authorization.substr(space + 1));
  if (token.empty()) return std::nullopt;
  return token;
}

bool constant_time_equals(std::string_view a, std::string_view b) {
  // The length may leak; the contents do not.
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const size_t n = std::max(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    const auto x = static_cast<unsigned char>(i < a.size() ? a[i] : 0);
    const auto y = static_cast<unsigned char>(i < b.size() ? b[i] : 0);
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

bool origin_allowed(std::string_view origin, const std::vector<std::string>& allowed) {
  if (origin.empty()) return false;
  for (const std::string& a : allowed) {
    if (a == "*" || boost::beast::iequals(a, origin)) return true;
  }
  return false;
}

std::string_view media_type_for(std::string_view file_name) {
  static constexpr std::pair<std::string_view, std::string_view> kTypes[] = {
      {".html", "text/html; charset=utf-8"},
      {".htm", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".mjs", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".json", "application/json"},
      {".map", "application/json"},
      {".txt", "text/plain; charset=utf-8"},
      {".wasm", "application/wasm"},
      {".png", "image/png"},
      {".jpg", "image/jpeg"},
      {".jpeg", "image/jpeg"},
      {".gif", "image/gif"},
      {".svg", "image/svg+xml"},
      {".ico", "image/x-icon"},
  };
  const size_t dot = file_name.rfind('.');
  if (dot != std::string_view::npos) {
    const std::string_view ext = file_name.substr(dot);
    for (const auto& [e, type] : kTypes) {
      if (boost::beast::iequals(e, ext)) return type;
    }
  }
  return "application/octet-stream";
}

std::string quote_etag(std::string_view opaque) {
  std::string out;
  out.reserve(opaque.size() + 2);
  out += '"';
  out += opaque;
  out += '"';
  return out;
}

}  // namespace stowage::serve
