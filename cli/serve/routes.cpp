#include <cstdint>

#include "routes_internal.hpp"
#include "stowage/error.hpp"
#include "stowage/text.hpp"

namespace stowage::serve {
namespace {

constexpr size_t kMaxSegments = 16;

[[noreturn]] void bad(const std::string& message) {
  throw Error(ErrorCode::kInvalidArgument, message);
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

void check_segment(std::string_view segment, std::string_view what) {
  const std::string w(what);
  if (segment.empty()) bad(w + " has an empty path segment");
  if (segment == "." || segment == "..") bad(w + " has a '" + std::string(segment) + "' segment");
  if (segment.front() == '.') bad(w + " has a segment starting with '.'");
  for (char c : segment) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) bad(w + " has a control character");
    if (c == '\\' || c == '?' || c == '#' || c == '%' || c == '"' || c == '/') {
      bad(w + " has the character '" + std::string(1, c) + "'");
    }
  }
  if (!valid_utf8(segment)) bad(w + " is not valid UTF-8");
}

void check_model_name(std::string_view name) {
  if (name.empty()) bad("the model name is empty");
  if (name.size() > kMaxModelNameBytes) {
    bad("the model name is longer than " + std::to_string(kMaxModelNameBytes) + " bytes");
  }
  if (name.front() == '/') bad("the model name is absolute (starts with '/')");
  size_t segments = 0;
  size_t start = 0;
  for (;;) {
    const size_t slash = name.find('/', start);
    const std::string_view segment = name.substr(start, slash - start);
    check_segment(segment, "the model name");
    if (segment == "model.json") bad("the model name has a segment 'model.json'");
    if (++segments > kMaxSegments) {
      bad("the model name has more than " + std::to_string(kMaxSegments) + " segments");
    }
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
}

std::string percent_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out += text[i];
      continue;
    }
    if (text.size() - i < 3) bad("the URL has a cut-off %-escape");
    const int hi = hex_value(text[i + 1]);
    const int lo = hex_value(text[i + 2]);
    if (hi < 0 || lo < 0) bad("the URL has a bad %-escape");
    const char c = static_cast<char>(hi * 16 + lo);
    if (c == '\0') bad("the URL has an encoded NUL byte");
    out += c;
    i += 2;
  }
  return out;
}

std::string_view target_path(std::string_view target) {
  const size_t end = target.find_first_of("?#");
  return target.substr(0, end);
}

Route route_target(std::string_view target, bool whole_model) {
  std::string_view path = target_path(target);
  // absolute-form (RFC 9112 3.2.2): drop "scheme://authority".
  if (const size_t scheme = path.find("://");
      scheme != std::string_view::npos && path.front() != '/') {
    const size_t slash = path.find('/', scheme + 3);
    path = slash == std::string_view::npos ? std::string_view("/") : path.substr(slash);
  }
  if (path.empty() || path.front() != '/') bad("the request target must start with '/'");

  std::vector<std::string> segments;
  size_t start = 1;
  for (;;) {
    const size_t slash = path.find('/', start);
    const std::string_view raw = path.substr(start, slash - start);
    const bool last = slash == std::string_view::npos;
    if (raw.empty()) {
      if (!last) bad("the URL path has an empty segment ('//')");
    } else {
      std::string segment = percent_decode(raw);
      if (segment == "..") bad("the URL path has a '..' segment");
      if (segment != ".") segments.push_back(std::move(segment));
    }
    if (last) break;
    start = slash + 1;
  }

  Route route;
  if (segments.size() == 1) {
    // The operators' endpoints take the place of static files of these names.
    if (segments.front() == "healthz") route.kind = Route::Kind::kHealth;
    if (segments.front() == "readyz") route.kind = Route::Kind::kReady;
    if (segments.front() == "metrics") route.kind = Route::Kind::kMetrics;
    if (route.kind != Route::Kind::kStatic) return route;
  }
  if (segments.empty() || segments.front() != "models") {
    for (const std::string& s : segments) check_segment(s, "the URL path");
    route.kind = Route::Kind::kStatic;
    route.path = std::move(segments);
    return route;
  }
  size_t end = segments.size();
  if (end == 1) {
    route.kind = whole_model ? Route::Kind::kModel : Route::Kind::kList;
    if (whole_model) bad("the URL names no model: use /models/<name>");
    return route;
  }
  if (whole_model) {
    if (segments.back() == "model.json" && end > 2) --end;
    route.kind = Route::Kind::kModel;
    route.name = join(std::span(segments).subspan(1, end - 1), "/");
    check_model_name(route.name);
    return route;
  }
  if (end == 2) {
    route.kind = Route::Kind::kNoFile;
    route.name = segments[1];
    check_model_name(route.name);
    return route;
  }
  route.name = join(std::span(segments).subspan(1, end - 2), "/");
  check_model_name(route.name);
  route.file = segments.back();
  if (route.file == "model.json") {
    route.kind = Route::Kind::kModelJson;
  } else {
    check_segment(route.file, "the weights file name");
    route.kind = Route::Kind::kModelFile;
  }
  return route;
}

}  // namespace stowage::serve
