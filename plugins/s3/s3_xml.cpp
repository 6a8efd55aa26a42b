#include <cstdio>
#include <cstdlib>
#include <ctime>

#include "s3_xml_internal.hpp"
#include "stowage/error.hpp"

namespace stowage::s3 {
namespace {

constexpr int kMaxDepth = 64;

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

class Parser {
 public:
  Parser(std::string_view text, std::string_view what) : s_(text), what_(what) {}

  XmlElement document() {
    if (s_.starts_with("\xEF\xBB\xBF")) i_ = 3;
    skip_misc();
    if (!at("<")) fail("no root element");
    XmlElement root = element(0);
    skip_misc();
    if (i_ != s_.size()) fail("text after the root element");
    return root;
  }

 private:
  [[noreturn]] void fail(const std::string& why) const {
    throw Error(ErrorCode::kInternal, "Malformed XML in " + std::string(what_) + " at byte " +
                                          std::to_string(i_) + ": " + why);
  }
  bool at(std::string_view token) const { return s_.substr(i_).starts_with(token); }
  static bool space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
  void skip_ws() {
    while (i_ < s_.size() && space(s_[i_])) ++i_;
  }
  void skip_past(std::string_view end, const char* what) {
    size_t e = s_.find(end, i_);
    if (e == std::string_view::npos) fail(std::string("unterminated ") + what);
    i_ = e + end.size();
  }
  // Prolog, comments and processing instructions between elements.
  void skip_misc() {
    for (;;) {
      skip_ws();
      if (at("<?")) {
        skip_past("?>", "processing instruction");
      } else if (at("<!--")) {
        skip_past("-->", "comment");
      } else if (at("<!")) {
        fail("DOCTYPE and other declarations are not accepted");
      } else {
        return;
      }
    }
  }
  std::string name() {
    size_t start = i_;
    while (i_ < s_.size() && !space(s_[i_]) && s_[i_] != '>' && s_[i_] != '/' && s_[i_] != '=') {
      ++i_;
    }
    if (i_ == start) fail("an element without a name");
    std::string_view n = s_.substr(start, i_ - start);
    size_t colon = n.rfind(':');
    return std::string(colon == std::string_view::npos ? n : n.substr(colon + 1));
  }
  void entity(std::string& out) {
    size_t semi = s_.find(';', i_);
    if (semi == std::string_view::npos || semi - i_ > 12) fail("a malformed entity");
    std::string_view e = s_.substr(i_ + 1, semi - i_ - 1);
    i_ = semi + 1;
    if (e == "amp") {
      out += '&';
    } else if (e == "lt") {
      out += '<';
    } else if (e == "gt") {
      out += '>';
    } else if (e == "quot") {
      out += '"';
    } else if (e == "apos") {
      out += '\'';
    } else if (e.size() > 1 && e[0] == '#') {
      bool hexa = e[1] == 'x';
      std::string digits(e.substr(hexa ? 2 : 1));
      char* end = nullptr;
      unsigned long cp = std::strtoul(digits.c_str(), &end, hexa ? 16 : 10);
      if (digits.empty() || *end != '\0' || cp == 0 || cp > 0x10FFFF ||
          (cp >= 0xD800 && cp <= 0xDFFF)) {
        fail("a bad character reference");
      }
      append_utf8(out, static_cast<uint32_t>(cp));
    } else {
      fail("an unknown entity &" + std::string(e) + ";");
    }
  }
  XmlElement element(int depth) {
    if (depth >= kMaxDepth) fail("elements nest too deep");
    ++i_;  // '<'
    XmlElement el;
    el.name = name();
    // Attributes are skipped, quoted values included.
    for (;;) {
      skip_ws();
      if (i_ >= s_.size()) fail("unterminated start tag");
      if (at("/>")) {
        i_ += 2;
        return el;
      }
      if (s_[i_] == '>') {
        ++i_;
        break;
      }
      if (s_[i_] == '"' || s_[i_] == '\'') {
        char q = s_[i_];
        size_t e = s_.find(q, i_ + 1);
        if (e == std::string_view::npos) fail("unterminated attribute value");
        i_ = e + 1;
      } else {
        ++i_;
      }
    }
    for (;;) {
      if (i_ >= s_.size()) fail("<" + el.name + "> is not closed");
      if (at("</")) {
        i_ += 2;
        std::string end = name();
        if (end != el.name) fail("</" + end + "> closes <" + el.name + ">");
        skip_ws();
        if (i_ >= s_.size() || s_[i_] != '>') fail("unterminated end tag");
        ++i_;
        return el;
      }
      if (at("<!--")) {
        skip_past("-->", "comment");
      } else if (at("<![CDATA[")) {
        size_t start = i_ + 9;
        skip_past("]]>", "CDATA section");
        el.text.append(s_.substr(start, i_ - 3 - start));
      } else if (at("<?")) {
        skip_past("?>", "processing instruction");
      } else if (at("<!")) {
        fail("declarations are not accepted inside elements");
      } else if (s_[i_] == '<') {
        el.children.push_back(element(depth + 1));
      } else if (s_[i_] == '&') {
        entity(el.text);
      } else {
        size_t e = s_.find_first_of("<&", i_);
        if (e == std::string_view::npos) e = s_.size();
        el.text.append(s_.substr(i_, e - i_));
        i_ = e;
      }
    }
  }

  std::string_view s_;
  std::string_view what_;
  size_t i_ = 0;
};

uint64_t to_u64(const std::string& text, std::string_view what) {
  char* end = nullptr;
  unsigned long long v = std::strtoull(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || text[0] == '-') {
    throw Error(ErrorCode::kInternal, "Malformed number \"" + text + "\" in " + std::string(what));
  }
  return v;
}

// A time from seconds since the epoch, or nullopt past what the clock holds
// (libstdc++ counts nanoseconds: about the years 1678 to 2261), where the
// conversion would overflow.
std::optional<std::chrono::system_clock::time_point> clock_time(std::time_t secs, int64_t millis) {
  using std::chrono::seconds;
  constexpr auto kLimit =
      std::chrono::duration_cast<seconds>(std::chrono::system_clock::duration::max()).count() - 1;
  if (secs > kLimit || secs < -kLimit) return std::nullopt;
  return std::chrono::system_clock::time_point(seconds(secs)) + std::chrono::milliseconds(millis);
}

void expect_root(const XmlElement& root, std::string_view name, std::string_view what) {
  if (root.name != name) {
    throw Error(ErrorCode::kInternal, "Expected <" + std::string(name) + "> in " +
                                          std::string(what) + ", got <" + root.name + ">");
  }
}

}  // namespace

const XmlElement* XmlElement::child(std::string_view n) const {
  for (const XmlElement& c : children) {
    if (c.name == n) return &c;
  }
  return nullptr;
}

std::string XmlElement::child_text(std::string_view n) const {
  const XmlElement* c = child(n);
  return c != nullptr ? c->text : std::string();
}

XmlElement parse_xml(std::string_view text, std::string_view what) {
  return Parser(text, what).document();
}

std::optional<S3Error> parse_error(std::string_view text) {
  try {
    XmlElement root = parse_xml(text, "an error response");
    if (root.name != "Error") return std::nullopt;
    return S3Error{root.child_text("Code"), root.child_text("Message"),
                   root.child_text("RequestId"), root.child_text("Region")};
  } catch (const Error&) {
    return std::nullopt;
  }
}

ListPage parse_list_objects_v2(std::string_view text, bool url_encoded, std::string_view what) {
  XmlElement root = parse_xml(text, what);
  expect_root(root, "ListBucketResult", what);
  ListPage page;
  page.truncated = root.child_text("IsTruncated") == "true";
  page.next_token = root.child_text("NextContinuationToken");
  for (const XmlElement& c : root.children) {
    if (c.name != "Contents") continue;
    ListedObject o;
    o.key = url_encoded ? percent_decode(c.child_text("Key"), true) : c.child_text("Key");
    o.size = to_u64(c.child_text("Size"), what);
    o.last_modified = parse_iso8601(c.child_text("LastModified"));
    o.etag = c.child_text("ETag");
    page.objects.push_back(std::move(o));
  }
  if (page.truncated && page.next_token.empty()) {
    throw Error(ErrorCode::kInternal,
                std::string(what) + " is truncated but has no NextContinuationToken");
  }
  return page;
}

std::string parse_upload_id(std::string_view text, std::string_view what) {
  XmlElement root = parse_xml(text, what);
  expect_root(root, "InitiateMultipartUploadResult", what);
  std::string id = root.child_text("UploadId");
  if (id.empty()) throw Error(ErrorCode::kInternal, std::string(what) + " has no UploadId");
  return id;
}

std::vector<PendingUpload> parse_multipart_uploads(std::string_view text, std::string_view what) {
  XmlElement root = parse_xml(text, what);
  expect_root(root, "ListMultipartUploadsResult", what);
  std::vector<PendingUpload> out;
  for (const XmlElement& c : root.children) {
    if (c.name == "Upload") out.push_back({c.child_text("Key"), c.child_text("UploadId")});
  }
  return out;
}

ResultOrError parse_etag_result(std::string_view text, std::string_view what) {
  XmlElement root = parse_xml(text, what);
  if (root.name == "Error") {
    return {{},
            S3Error{root.child_text("Code"), root.child_text("Message"),
                    root.child_text("RequestId"), root.child_text("Region")}};
  }
  // AWS answers <CompleteMultipartUploadResult>/<CopyObjectResult>; some
  // servers (moto) name the root ...Response, or wrap the result in it.
  const bool known =
      root.name.starts_with("CompleteMultipartUpload") || root.name.starts_with("CopyObject");
  if (!known) {
    throw Error(ErrorCode::kInternal, "Unexpected <" + root.name + "> in " + std::string(what));
  }
  if (const XmlElement* etag = root.child("ETag")) return {etag->text, std::nullopt};
  for (const XmlElement& c : root.children) {
    if (const XmlElement* etag = c.child("ETag")) return {etag->text, std::nullopt};
  }
  throw Error(ErrorCode::kInternal, "No ETag in " + std::string(what));
}

std::string complete_multipart_xml(const std::vector<std::pair<int, std::string>>& parts) {
  std::string out = "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">";
  for (const auto& [number, etag] : parts) {
    out += "<Part><PartNumber>" + std::to_string(number) + "</PartNumber><ETag>" +
           xml_escape(etag) + "</ETag></Part>";
  }
  out += "</CompleteMultipartUpload>";
  return out;
}

std::optional<std::chrono::system_clock::time_point> parse_iso8601(std::string_view text) {
  int y, mo, d, h, mi, s;
  char tail[16] = {};
  std::string t(text);
  if (std::sscanf(t.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%15s", &y, &mo, &d, &h, &mi, &s, tail) < 6) {
    return std::nullopt;
  }
  std::string rest(tail);
  int64_t millis = 0;
  if (!rest.empty() && rest[0] == '.') {
    size_t k = 1;
    int64_t scale = 100;
    for (; k < rest.size() && rest[k] >= '0' && rest[k] <= '9'; ++k) {
      millis += (rest[k] - '0') * scale;
      scale /= 10;
    }
    rest = rest.substr(k);
  }
  if (rest != "Z" && rest != "+00:00" && !rest.empty()) return std::nullopt;
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = s;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60) return std::nullopt;
  return clock_time(timegm(&tm), millis);
}

std::optional<std::chrono::system_clock::time_point> parse_http_date(std::string_view text) {
  std::tm tm{};
  std::string t(text);
  const char* end = strptime(t.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (end == nullptr || *end != '\0') return std::nullopt;
  return clock_time(timegm(&tm), 0);
}

std::string percent_decode(std::string_view text, bool plus_is_space) {
  auto hexval = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '%' && i + 2 < text.size() && hexval(text[i + 1]) >= 0 && hexval(text[i + 2]) >= 0) {
      out += static_cast<char>(hexval(text[i + 1]) * 16 + hexval(text[i + 2]));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

std::string xml_escape(std::string_view text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

}  // namespace stowage::s3
