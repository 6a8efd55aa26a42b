#include <rapidjson/error/en.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <optional>
#include <unordered_map>
#include <vector>

#include "json_internal.hpp"
#include "stowage/error.hpp"
#include "stowage/model_json.hpp"

namespace stowage::json_internal {
namespace {

using Member = rapidjson::Value::Member;

constexpr char kHex[] = "0123456789abcdef";

void append_u_escape(std::string& out, unsigned code_unit) {
  out += "\\u";
  out += kHex[(code_unit >> 12) & 0xF];
  out += kHex[(code_unit >> 8) & 0xF];
  out += kHex[(code_unit >> 4) & 0xF];
  out += kHex[code_unit & 0xF];
}

bool is_continuation(unsigned char c) { return (c & 0xC0) == 0x80; }

// Canonical array index ("0", "17"; not "01", not 2^32 - 1): such keys come
// first in JS property order, in ascending numeric order.
bool array_index(std::string_view key, uint64_t* index) {
  if (key.empty() || key.size() > 10) return false;
  if (key.size() > 1 && key[0] == '0') return false;
  uint64_t v = 0;
  for (char c : key) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (v >= 4294967295ull) return false;
  *index = v;
  return true;
}

std::vector<const Member*> js_member_order(const rapidjson::Value& object) {
  std::vector<const Member*> members;
  members.reserve(object.MemberCount());
  std::unordered_map<std::string_view, size_t> seen;
  const bool use_map = object.MemberCount() > 16;
  for (auto it = object.MemberBegin(); it != object.MemberEnd(); ++it) {
    const std::string_view key = view_of(it->name);
    size_t found = members.size();
    if (use_map) {
      auto [pos, inserted] = seen.emplace(key, members.size());
      if (!inserted) found = pos->second;
    } else {
      for (size_t i = 0; i < members.size(); ++i) {
        if (view_of(members[i]->name) == key) {
          found = i;
          break;
        }
      }
    }
    if (found == members.size()) {
      members.push_back(&*it);
    } else {
      members[found] = &*it;
    }
  }
  bool any_index = false;
  uint64_t unused;
  for (const Member* m : members) any_index = any_index || array_index(view_of(m->name), &unused);
  if (any_index) {
    std::vector<std::pair<uint64_t, const Member*>> indexed;
    std::vector<const Member*> named;
    for (const Member* m : members) {
      uint64_t index;
      if (array_index(view_of(m->name), &index)) {
        indexed.emplace_back(index, m);
      } else {
        named.push_back(m);
      }
    }
    std::sort(indexed.begin(), indexed.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    members.clear();
    for (const auto& [index, m] : indexed) members.push_back(m);
    members.insert(members.end(), named.begin(), named.end());
  }
  return members;
}

int hex4(std::string_view text, size_t at) {
  if (at + 4 > text.size()) return -1;
  int v = 0;
  for (size_t i = at; i < at + 4; ++i) {
    const char c = text[i];
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else if (c >= 'A' && c <= 'F') {
      d = c - 'A' + 10;
    } else {
      return -1;
    }
    v = v * 16 + d;
  }
  return v;
}

// RapidJSON refuses a "\ud800" escape that has no low half; JSON.parse keeps
// it as a lone surrogate. Such escapes are replaced by the three raw bytes
// RapidJSON copies through unchecked (ED A0 80 for U+D800), which
// append_quoted writes back as "\ud800". Returns false when there are none.
bool rewrite_lone_high_surrogates(std::string_view text, std::string& out) {
  bool in_string = false;
  bool changed = false;
  size_t copied = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (!in_string) {
      in_string = c == '"';
      continue;
    }
    if (c == '"') {
      in_string = false;
      continue;
    }
    if (c != '\\' || i + 1 >= text.size()) continue;
    if (text[i + 1] != 'u') {
      ++i;  // a one-character escape
      continue;
    }
    const int unit = hex4(text, i + 2);
    if (unit < 0xD800 || unit > 0xDBFF) {
      i += unit < 0 ? 1 : 5;
      continue;
    }
    const bool paired = i + 7 < text.size() && text[i + 6] == '\\' && text[i + 7] == 'u' &&
                        hex4(text, i + 8) >= 0xDC00 && hex4(text, i + 8) <= 0xDFFF;
    if (paired) {
      i += 11;
      continue;
    }
    if (!changed) out.reserve(text.size());
    changed = true;
    out.append(text.substr(copied, i - copied));
    out += static_cast<char>(0xED);
    out += static_cast<char>(0x80 | ((unit >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (unit & 0x3F));
    i += 5;
    copied = i + 1;
  }
  if (changed) out.append(text.substr(copied));
  return changed;
}

// Two bugs of RapidJSON 1.1.0's full-precision number path, found by
// fuzz/model_json_fuzzer and worked around before parsing:
// - a zero with a long fraction or an exponent ("0e39", "-0.00E+5",
//   "0.000000000000000000000000") is read as garbage (a zero significand is
//   normalised with clz(0)) or refused as too big, where JSON.parse reads 0:
//   such numbers are blanked after their "0", which keeps every offset;
// - from about 1e359 up, a power-of-ten table is read out of bounds: numbers
//   of 1e309 or more are refused here as RapidJSON refuses "1e309".
// Returns false when no number was blanked; sets *too_big to the offset of
// the first number that is too big, or leaves it alone.
bool guard_numbers(std::string_view text, std::string& out, size_t* too_big) {
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  const size_t n = text.size();
  bool changed = false;
  bool in_string = false;
  for (size_t i = 0; i < n; ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
      continue;
    }
    if (c != '-' && !digit(c)) continue;
    // One number token: -?int(.frac)?([eE][+-]?exp)?. magnitude is the
    // decimal exponent of its first non-zero digit, plus one; none for zero.
    size_t j = c == '-' ? i + 1 : i;
    const size_t int_start = j;
    std::optional<int64_t> magnitude;
    while (j < n && digit(text[j])) {
      if (!magnitude && text[j] != '0') magnitude = static_cast<int64_t>(j - int_start);
      ++j;
    }
    const size_t int_digits = j - int_start;
    if (magnitude) *magnitude = static_cast<int64_t>(int_digits) - *magnitude;
    // JSON forbids leading zeros ("00e5"); such text is left for RapidJSON to refuse.
    bool valid = int_digits == 1 || (int_digits > 1 && text[int_start] != '0');
    bool decorated = false;  // has a fraction or an exponent
    if (j < n && text[j] == '.') {
      const size_t frac_start = ++j;
      while (j < n && digit(text[j])) {
        if (!magnitude && text[j] != '0') magnitude = -static_cast<int64_t>(j - frac_start);
        ++j;
      }
      valid = valid && j > frac_start;
      decorated = true;
    }
    int64_t exponent = 0;
    if (j < n && (text[j] == 'e' || text[j] == 'E')) {
      size_t k = j + 1;
      const bool negative = k < n && text[k] == '-';
      if (k < n && (text[k] == '+' || text[k] == '-')) ++k;
      const size_t exp_start = k;
      for (; k < n && digit(text[k]); ++k) {
        exponent = std::min<int64_t>(exponent * 10 + (text[k] - '0'), 1000000);
      }
      if (negative) exponent = -exponent;
      valid = valid && k > exp_start;
      decorated = true;
      j = k;
    }
    if (valid && !magnitude && decorated) {
      if (!changed) out.assign(text);
      changed = true;
      std::fill(out.begin() + static_cast<std::ptrdiff_t>(int_start + 1),
                out.begin() + static_cast<std::ptrdiff_t>(j), ' ');
    } else if (valid && magnitude && *magnitude + exponent > 309 && *too_big == SIZE_MAX) {
      *too_big = i;
    }
    if (j > i) i = j - 1;
  }
  return changed;
}

// Hands the document RapidJSON's events with every number converted by the
// standard library instead of RapidJSON's own strtod, which reads some
// denormals through __builtin_clzll(0) (undefined) besides the zero and
// huge-number bugs guard_numbers works around. Integers keep RapidJSON's
// typing (Int64/Uint64 when they fit, else double); the rest are correctly
// rounded doubles, as JSON.parse gives.
struct NumberConverter {
  rapidjson::Document& out;
  bool too_big = false;  // a number past DBL_MAX stopped the parse

  bool RawNumber(const char* text, rapidjson::SizeType length, bool) {
    const std::string_view s(text, length);
    if (s == "NaN") return out.Double(std::numeric_limits<double>::quiet_NaN());
    if (s == "Infinity" || s == "Inf") return out.Double(std::numeric_limits<double>::infinity());
    if (s == "-Infinity" || s == "-Inf") {
      return out.Double(-std::numeric_limits<double>::infinity());
    }
    if (s.find_first_of(".eE") == std::string_view::npos) {
      if (s.front() == '-') {
        int64_t value = 0;
        auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
        if (ec == std::errc() && end == s.data() + s.size()) return out.Int64(value);
      } else {
        uint64_t value = 0;
        auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
        if (ec == std::errc() && end == s.data() + s.size()) return out.Uint64(value);
      }
    }
    // strtod: correctly rounded, denormals and underflow to 0 as JSON.parse
    // gives them; past DBL_MAX is refused as RapidJSON refuses it.
    const std::string terminated(s);
    char* end = nullptr;
    errno = 0;
    const double value = std::strtod(terminated.c_str(), &end);
    if (end != terminated.c_str() + terminated.size()) return false;
    if (errno == ERANGE && std::isinf(value)) {
      too_big = true;
      return false;
    }
    return out.Double(value);
  }
  bool Null() { return out.Null(); }
  bool Bool(bool b) { return out.Bool(b); }
  bool Int(int i) { return out.Int(i); }
  bool Uint(unsigned u) { return out.Uint(u); }
  bool Int64(int64_t i) { return out.Int64(i); }
  bool Uint64(uint64_t u) { return out.Uint64(u); }
  bool Double(double d) { return out.Double(d); }
  bool String(const char* s, rapidjson::SizeType n, bool copy) { return out.String(s, n, copy); }
  bool StartObject() { return out.StartObject(); }
  bool Key(const char* s, rapidjson::SizeType n, bool copy) { return out.Key(s, n, copy); }
  bool EndObject(rapidjson::SizeType members) { return out.EndObject(members); }
  bool StartArray() { return out.StartArray(); }
  bool EndArray(rapidjson::SizeType elements) { return out.EndArray(elements); }
};

}  // namespace

rapidjson::Document parse(std::string_view text, std::string_view source) {
  size_t skipped = 0;
  if (text.size() >= 3 && std::memcmp(text.data(), "\xEF\xBB\xBF", 3) == 0) {
    text.remove_prefix(3);
    skipped = 3;
  }
  std::string rewritten;
  if (text.find("\\u") != std::string_view::npos && rewrite_lone_high_surrogates(text, rewritten)) {
    text = rewritten;
  }
  std::string blanked;
  size_t too_big = SIZE_MAX;
  if (guard_numbers(text, blanked, &too_big)) text = blanked;
  rapidjson::Document doc;
  rapidjson::ParseResult result;
  if (too_big == SIZE_MAX) {
    auto generate = [&](rapidjson::Document& handler) {
      NumberConverter converter{handler};
      rapidjson::MemoryStream bytes(text.data(), text.size());
      rapidjson::Reader reader;
      result = reader.Parse<kParseFlags | rapidjson::kParseNumbersAsStringsFlag>(bytes, converter);
      if (converter.too_big) result.Set(rapidjson::kParseErrorNumberTooBig, result.Offset());
      return !result.IsError();
    };
    doc.Populate(generate);
  }
  if (too_big != SIZE_MAX || result.IsError()) {
    const size_t offset = too_big != SIZE_MAX ? too_big : result.Offset();
    const rapidjson::ParseErrorCode code =
        too_big != SIZE_MAX ? rapidjson::kParseErrorNumberTooBig : result.Code();
    throw Error(ErrorCode::kInvalidArgument, std::string(source) + ": invalid JSON at offset " +
                                                 std::to_string(offset + skipped) + ": " +
                                                 rapidjson::GetParseError_En(code));
  }
  return doc;
}

void append_number(std::string& out, double value) {
  if (!std::isfinite(value)) {
    out += "null";
    return;
  }
  if (value == 0) {  // also -0
    out += '0';
    return;
  }
  // Shortest round-trip digits, then laid out as Number::toString does.
  char buf[64];
  auto result = std::to_chars(buf, buf + sizeof buf, value, std::chars_format::scientific);
  std::string_view s(buf, static_cast<size_t>(result.ptr - buf));
  if (s.front() == '-') {
    out += '-';
    s.remove_prefix(1);
  }
  const size_t e = s.find('e');
  std::string digits(1, s[0]);
  if (e > 1) digits.append(s.substr(2, e - 2));
  int exponent = 0;
  {
    std::string_view exp_text = s.substr(e + 1);
    bool negative = false;
    if (!exp_text.empty() && (exp_text[0] == '+' || exp_text[0] == '-')) {
      negative = exp_text[0] == '-';
      exp_text.remove_prefix(1);
    }
    std::from_chars(exp_text.data(), exp_text.data() + exp_text.size(), exponent);
    if (negative) exponent = -exponent;
  }
  const int k = static_cast<int>(digits.size());
  const int n = exponent + 1;  // value = 0.digits * 10^n
  if (k <= n && n <= 21) {
    out += digits;
    out.append(static_cast<size_t>(n - k), '0');
  } else if (0 < n && n <= 21) {
    out.append(digits, 0, static_cast<size_t>(n));
    out += '.';
    out.append(digits, static_cast<size_t>(n));
  } else if (-6 < n && n <= 0) {
    out += "0.";
    out.append(static_cast<size_t>(-n), '0');
    out += digits;
  } else {
    out += digits[0];
    if (k > 1) {
      out += '.';
      out.append(digits, 1);
    }
    out += 'e';
    out += n - 1 < 0 ? '-' : '+';
    out += std::to_string(n - 1 < 0 ? -(n - 1) : n - 1);
  }
}

void append_quoted(std::string& out, std::string_view utf8) {
  const auto* s = reinterpret_cast<const unsigned char*>(utf8.data());
  const size_t size = utf8.size();
  out += '"';
  size_t i = 0;
  while (i < size) {
    const unsigned char c = s[i];
    if (c < 0x80) {
      switch (c) {
        case '"':
          out += "\\\"";
          break;
        case '\\':
          out += "\\\\";
          break;
        case '\b':
          out += "\\b";
          break;
        case '\f':
          out += "\\f";
          break;
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\t':
          out += "\\t";
          break;
        default:
          if (c < 0x20) {
            append_u_escape(out, c);
          } else {
            out += static_cast<char>(c);
          }
      }
      ++i;
      continue;
    }
    // Well-formed sequences (Unicode Table 3-7), plus ED A0..BF xx: a UTF-16
    // surrogate encoded on its own, which RapidJSON makes of "\udc00".
    size_t length = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      length = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      length = 3;
      if (c == 0xE0) lo = 0xA0;
    } else if (c >= 0xF0 && c <= 0xF4) {
      length = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    }
    size_t valid = length == 0 ? 0 : 1;  // bytes of a well-formed prefix
    if (length != 0) {
      while (valid < length && i + valid < size) {
        const unsigned char b = s[i + valid];
        if (valid == 1 ? (b < lo || b > hi) : !is_continuation(b)) break;
        ++valid;
      }
    }
    if (valid == length && length != 0) {
      if (c == 0xED && s[i + 1] >= 0xA0) {
        const unsigned unit = 0xD000u | ((s[i + 1] & 0x3Fu) << 6) | (s[i + 2] & 0x3Fu);
        // A high then a low surrogate is one character in JS: write it as UTF-8.
        if (unit < 0xDC00 && i + 5 < size && s[i + 3] == 0xED && s[i + 4] >= 0xB0 &&
            s[i + 4] <= 0xBF && is_continuation(s[i + 5])) {
          const unsigned low = 0xD000u | ((s[i + 4] & 0x3Fu) << 6) | (s[i + 5] & 0x3Fu);
          const unsigned cp = 0x10000u + ((unit - 0xD800u) << 10) + (low - 0xDC00u);
          out += static_cast<char>(0xF0 | (cp >> 18));
          out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
          out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
          out += static_cast<char>(0x80 | (cp & 0x3F));
          i += 6;
        } else {
          append_u_escape(out, unit);
          i += 3;
        }
      } else {
        out.append(reinterpret_cast<const char*>(s + i), length);
        i += length;
      }
    } else {
      out += "\xEF\xBF\xBD";  // U+FFFD for the maximal ill-formed subpart
      i += valid == 0 ? 1 : valid;
    }
  }
  out += '"';
}

void append_value(std::string& out, const rapidjson::Value& root) {
  struct Frame {
    const rapidjson::Value* container;
    std::vector<const Member*> members;  // objects only, in JS order
    size_t next = 0;
  };
  std::vector<Frame> stack;
  // Writes scalars whole; opens containers and pushes a frame for them.
  auto open = [&](const rapidjson::Value& v) {
    switch (v.GetType()) {
      case rapidjson::kNullType:
        out += "null";
        break;
      case rapidjson::kFalseType:
        out += "false";
        break;
      case rapidjson::kTrueType:
        out += "true";
        break;
      case rapidjson::kNumberType:
        append_number(out, v.GetDouble());
        break;
      case rapidjson::kStringType:
        append_quoted(out, view_of(v));
        break;
      case rapidjson::kArrayType:
        if (v.Empty()) {
          out += "[]";
        } else {
          out += '[';
          stack.push_back(Frame{&v, {}, 0});
        }
        break;
      case rapidjson::kObjectType:
        if (v.ObjectEmpty()) {
          out += "{}";
        } else {
          out += '{';
          stack.push_back(Frame{&v, js_member_order(v), 0});
        }
        break;
    }
  };
  open(root);
  while (!stack.empty()) {
    Frame& top = stack.back();
    if (top.container->IsArray()) {
      if (top.next == top.container->Size()) {
        out += ']';
        stack.pop_back();
        continue;
      }
      if (top.next != 0) out += ',';
      const rapidjson::Value& item = (*top.container)[static_cast<rapidjson::SizeType>(top.next)];
      ++top.next;
      open(item);  // may invalidate `top`
    } else {
      if (top.next == top.members.size()) {
        out += '}';
        stack.pop_back();
        continue;
      }
      if (top.next != 0) out += ',';
      const Member* m = top.members[top.next];
      ++top.next;
      append_quoted(out, view_of(m->name));
      out += ':';
      open(m->value);  // may invalidate `top`
    }
  }
}

std::string stringify(const rapidjson::Value& value) {
  std::string out;
  append_value(out, value);
  return out;
}

const char* describe(const rapidjson::Value& value) noexcept {
  switch (value.GetType()) {
    case rapidjson::kNullType:
      return "null";
    case rapidjson::kFalseType:
    case rapidjson::kTrueType:
      return "a boolean";
    case rapidjson::kObjectType:
      return "an object";
    case rapidjson::kArrayType:
      return "an array";
    case rapidjson::kStringType:
      return "a string";
    case rapidjson::kNumberType:
      return "a number";
  }
  return "a value";
}

}  // namespace stowage::json_internal

namespace stowage::json {

std::string number(double value) {
  std::string out;
  json_internal::append_number(out, value);
  return out;
}

std::string quote(std::string_view utf8) {
  std::string out;
  out.reserve(utf8.size() + 2);
  json_internal::append_quoted(out, utf8);
  return out;
}

std::string normalize(std::string_view text, std::string_view source) {
  const rapidjson::Document doc = json_internal::parse(text, source);
  return json_internal::stringify(doc);
}

}  // namespace stowage::json
