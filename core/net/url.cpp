// URL parsing and resolution (RFC 3986) for http(s), secret redaction, and
// the small helpers of http_client.hpp that need no networking code.
#include <algorithm>
#include <boost/beast/core/string.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url.hpp>
// Boost.URL is a compiled library that Boost 1.81 also ships as source to
// build into one translation unit of the program; this is that unit.
#include <boost/url/src.hpp>
#include <cctype>
#include <charconv>

#include "http_client.hpp"

namespace stowage::net {
namespace {

char lower(char c) noexcept {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

std::string to_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = lower(c);
  return out;
}

bool is_hex(char c) noexcept {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// Characters allowed as they are in a request target: unreserved, sub-delims,
// ':', '@', '/', '?' and '%' (kept when it starts a valid escape).
bool target_char(char c) noexcept {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("-._~!$&'()*+,;=:@/?").find(c) != std::string_view::npos;
}

// Percent-encodes what may not appear on the request line; keeps %XX.
std::string encode_target(std::string_view s) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%' && i + 2 < s.size() && is_hex(s[i + 1]) && is_hex(s[i + 2])) {
      out += c;
    } else if (target_char(c)) {
      out += c;
    } else {
      auto u = static_cast<unsigned char>(c);
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 15];
    }
  }
  return out;
}

[[noreturn]] void bad_url(std::string_view text, const std::string& why) {
  throw Error(ErrorCode::kInvalidArgument, "Invalid URL \"" + redact_url(text) + "\": " + why);
}

// RFC 3986 §5.2.4.
std::string remove_dot_segments(std::string_view path) {
  std::string in(path);
  std::string out;
  while (!in.empty()) {
    if (in.starts_with("../")) {
      in.erase(0, 3);
    } else if (in.starts_with("./")) {
      in.erase(0, 2);
    } else if (in.starts_with("/./")) {
      in.erase(0, 2);
    } else if (in == "/.") {
      in = "/";
    } else if (in.starts_with("/../") || in == "/..") {
      in = in == "/.." ? "/" : in.substr(3);
      size_t cut = out.rfind('/');
      out.erase(cut == std::string::npos ? 0 : cut);
    } else if (in == "." || in == "..") {
      in.clear();
    } else {
      size_t start = in[0] == '/' ? 1 : 0;
      size_t end = in.find('/', start);
      if (end == std::string::npos) end = in.size();
      out += in.substr(0, end);
      in.erase(0, end);
    }
  }
  return out;
}

struct Parts {
  std::optional<std::string_view> scheme, authority, query;
  std::string_view path;
};

// RFC 3986 appendix B, without the fragment.
Parts split(std::string_view s) {
  Parts p;
  if (size_t hash = s.find('#'); hash != std::string_view::npos) s = s.substr(0, hash);
  size_t colon = s.find(':');
  size_t stop = s.find_first_of("/?");
  if (colon != std::string_view::npos && colon > 0 &&
      (stop == std::string_view::npos || colon < stop) &&
      std::isalpha(static_cast<unsigned char>(s[0]))) {
    bool ok = true;
    for (char c : s.substr(0, colon)) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '-' && c != '.')
        ok = false;
    }
    if (ok) {
      p.scheme = s.substr(0, colon);
      s = s.substr(colon + 1);
    }
  }
  if (s.starts_with("//")) {
    s = s.substr(2);
    size_t end = s.find_first_of("/?");
    if (end == std::string_view::npos) end = s.size();
    p.authority = s.substr(0, end);
    s = s.substr(end);
  }
  size_t q = s.find('?');
  if (q != std::string_view::npos) {
    p.query = s.substr(q + 1);
    s = s.substr(0, q);
  }
  p.path = s;
  return p;
}

}  // namespace

std::optional<std::string_view> find_header(const Headers& headers, std::string_view name) {
  for (const auto& [k, v] : headers) {
    if (boost::beast::iequals(k, name)) return std::string_view(v);
  }
  return std::nullopt;
}

Url Url::parse(std::string_view text) {
  // Surrounding whitespace is dropped, as the WHATWG URL parser does.
  while (!text.empty() && static_cast<unsigned char>(text.front()) <= ' ') text.remove_prefix(1);
  while (!text.empty() && static_cast<unsigned char>(text.back()) <= ' ') text.remove_suffix(1);
  Parts p = split(text);
  if (!p.scheme) bad_url(text, "it is not an absolute http:// or https:// URL");
  Url url;
  url.scheme = to_lower(*p.scheme);
  if (url.scheme != "http" && url.scheme != "https") {
    bad_url(text, "the scheme must be http or https, not \"" + url.scheme + "\"");
  }
  if (!p.authority || p.authority->empty()) bad_url(text, "it has no host");
  std::string_view auth = *p.authority;
  if (size_t at = auth.rfind('@'); at != std::string_view::npos) {
    url.userinfo = std::string(auth.substr(0, at));
    auth = auth.substr(at + 1);
  }
  std::string_view port_text;
  if (auth.starts_with('[')) {
    size_t close = auth.find(']');
    if (close == std::string_view::npos) bad_url(text, "an IPv6 host has no closing ']'");
    url.host = to_lower(auth.substr(1, close - 1));
    std::string_view rest = auth.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':') bad_url(text, "unexpected characters after the IPv6 host");
      port_text = rest.substr(1);
    }
    if (url.host.empty() || url.host.find_first_not_of("0123456789abcdef:.") != std::string::npos) {
      bad_url(text, "the IPv6 host is malformed");
    }
  } else {
    size_t colon = auth.rfind(':');
    if (colon != std::string_view::npos) {
      port_text = auth.substr(colon + 1);
      auth = auth.substr(0, colon);
    }
    url.host = to_lower(auth);
    if (url.host.empty()) bad_url(text, "it has no host");
    // A ':' left here ("h:1:2") would be written back as an IPv6 literal.
    for (char c : url.host) {
      auto u = static_cast<unsigned char>(c);
      if (u <= ' ' || u >= 0x7f ||
          std::string_view("/\\?#@[]<>^|%\":").find(c) != std::string_view::npos) {
        bad_url(text, "the host contains a character that is not allowed");
      }
    }
  }
  url.port = url.scheme == "https" ? 443 : 80;
  if (!port_text.empty()) {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), value);
    if (ec != std::errc() || end != port_text.data() + port_text.size() || value == 0 ||
        value > 65535) {
      bad_url(text, "the port \"" + std::string(port_text) + "\" is not a number from 1 to 65535");
    }
    url.port = static_cast<uint16_t>(value);
  }
  std::string path = p.path.empty() ? std::string("/") : remove_dot_segments(p.path);
  if (path.empty() || path[0] != '/') path.insert(path.begin(), '/');
  url.target = encode_target(path);
  if (p.query) url.target += "?" + encode_target(*p.query);
  return url;
}

Url Url::resolve(std::string_view reference) const {
  reference = reference.substr(0, reference.find('#'));
  Parts r = split(reference);
  // An absolute URL or a network-path reference keeps nothing of this URL
  // but the scheme; Url::parse applies its lenient rules to it as written.
  if (r.scheme) return parse(reference);
  std::string base = scheme + ":";
  if (r.authority)
    return parse(base + "//" + std::string(reference.substr(reference.find("//") + 2)));

  // A relative path or a query: RFC 3986 §5.2 by Boost.URL. Url::parse drops
  // trailing whitespace of the text it is given, so it is dropped here from
  // the last part of the reference before that part is percent-encoded.
  auto trim_end = [](std::string_view s) {
    while (!s.empty() && static_cast<unsigned char>(s.back()) <= ' ') s.remove_suffix(1);
    return s;
  };
  std::string_view ref_path = r.path;
  std::optional<std::string_view> ref_query = r.query;
  if (ref_query) {
    ref_query = trim_end(*ref_query);
  } else {
    ref_path = trim_end(ref_path);
  }
  // Boost.URL resolves with syntax-based normalization: it decodes escapes
  // of unreserved characters and takes "%2E" for a dot. This URL sends
  // escapes as written, so every '%' is hidden as "%25" through resolution.
  auto hide = [](std::string_view s) {
    std::string out;
    for (char c : encode_target(s)) {
      out += c;
      if (c == '%') out += "25";
    }
    return out;
  };
  auto unhide = [](std::string_view s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
      out += s[i];
      if (s[i] == '%') i += 2;  // always "%25"
    }
    return out;
  };
  std::string ref_text = hide(ref_path);
  // A first segment with a ':' would read as a scheme (RFC 3986 §4.2).
  if (!r.path.empty() && ref_path.empty()) {
    ref_text = ".";  // only whitespace: the base's folder, as the merge gives
  } else if (ref_text.substr(0, ref_text.find('/')).find(':') != std::string::npos) {
    ref_text.insert(0, "./");
  }
  if (ref_query) ref_text += "?" + hide(*ref_query);
  // The base without its authority: the host syntax Url::parse accepted
  // need not be Boost.URL's, and the authority is kept from this URL.
  const std::string base_text = scheme + "://" + hide(target);
  auto parsed_base = boost::urls::parse_uri(base_text);
  auto parsed_ref = boost::urls::parse_relative_ref(ref_text);
  boost::urls::url resolved;
  if (!parsed_base || !parsed_ref || !boost::urls::resolve(*parsed_base, *parsed_ref, resolved)) {
    bad_url(reference, "it cannot be resolved against " + redact_url(str()));
  }
  std::string path_query = unhide(resolved.encoded_path());
  if (resolved.has_query()) path_query += "?" + unhide(resolved.encoded_query());
  std::string auth = (userinfo.empty() ? "" : userinfo + "@") + authority();
  return parse(base + "//" + auth + path_query);
}

std::string Url::authority() const {
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return default_port() ? h : h + ":" + std::to_string(port);
}

std::string Url::origin() const {
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return scheme + "://" + h + ":" + std::to_string(port);
}

std::string Url::str() const {
  return scheme + "://" + (userinfo.empty() ? "" : userinfo + "@") + authority() + target;
}

std::string Response::content_type() const {
  auto v = header("content-type");
  if (!v) return {};
  std::string_view t = *v;
  t = t.substr(0, t.find(';'));
  while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.remove_suffix(1);
  while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) t.remove_prefix(1);
  return to_lower(t);
}

bool retryable_status(int status) noexcept {
  return status == 408 || status == 429 || status == 500 || status == 502 || status == 503 ||
         status == 504;
}

Error status_error(int status, std::string_view reason, const std::string& what,
                   std::string_view detail) {
  ErrorCode code = ErrorCode::kInternal;
  switch (status) {
    case 404:
    case 410:
      code = ErrorCode::kNotFound;
      break;
    case 401:
    case 403:
      code = ErrorCode::kPermissionDenied;
      break;
    case 400:
    case 405:
    case 411:
    case 414:
    case 422:
      code = ErrorCode::kInvalidArgument;
      break;
    case 409:
    case 412:
      code = ErrorCode::kAlreadyExists;
      break;
    case 413:
    case 507:
      code = ErrorCode::kResourceExhausted;
      break;
    case 501:
      code = ErrorCode::kUnimplemented;
      break;
    default:
      if (status == 408 || status == 429 || status >= 500) code = ErrorCode::kUnavailable;
  }
  std::string msg = what;
  msg.append(": HTTP ").append(std::to_string(status));
  if (!reason.empty()) msg.append(" ").append(reason);
  if (!detail.empty()) msg.append(" ").append(detail);
  return Error(code, msg, retryable_status(status));
}

Error status_error(std::string_view method, const Response& response, const std::string& what,
                   std::string_view detail) {
  return status_error(response.status, response.reason, what, detail)
      .with_request({std::string(method), redact_url(response.url),
                     "HTTP " + std::to_string(response.status)});
}

std::string body_excerpt(const Buffer& body, size_t max_chars) {
  std::string_view v = body.view();
  size_t n = std::min(v.size(), max_chars);
  std::string out;
  out.reserve(n + 3);
  size_t controls = 0;
  for (size_t i = 0; i < n; ++i) {
    auto u = static_cast<unsigned char>(v[i]);
    if (u == 0 || (u < 0x20 && u != '\n' && u != '\r' && u != '\t')) ++controls;
    out += (u < 0x20 || u == 0x7f) ? ' ' : v[i];
  }
  if (controls * 8 > n) return {};  // binary
  // Collapse runs of spaces from newlines and indentation.
  std::string squeezed;
  for (char c : out) {
    if (c == ' ' && !squeezed.empty() && squeezed.back() == ' ') continue;
    squeezed += c;
  }
  while (!squeezed.empty() && squeezed.back() == ' ') squeezed.pop_back();
  if (v.size() > n) squeezed += "...";
  return squeezed;
}

}  // namespace stowage::net
