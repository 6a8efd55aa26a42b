#include "stowage/text.hpp"

#include <cctype>
#include <cstdint>

namespace stowage {

bool valid_utf8(std::string_view s) noexcept {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t more;
    uint32_t cp;
    if ((c & 0xe0) == 0xc0) {
      more = 1;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      more = 2;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      more = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (s.size() - i <= more) return false;
    for (size_t k = 1; k <= more; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3f);
    }
    constexpr uint32_t kSmallest[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kSmallest[more] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += more + 1;
  }
  return true;
}

std::string join(std::span<const std::string> items, std::string_view separator) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += separator;
    out += items[i];
  }
  return out;
}

std::vector<std::string_view> split(std::string_view text, char separator) {
  std::vector<std::string_view> pieces;
  for (size_t start = 0;;) {
    const size_t at = text.find(separator, start);
    pieces.push_back(text.substr(start, at - start));
    if (at == std::string_view::npos) return pieces;
    start = at + 1;
  }
}

std::string redact_url(std::string_view url) {
  std::string out(url);
  // A password in the userinfo: scheme://user:secret@host
  if (size_t start = out.find("://"); start != std::string::npos) {
    size_t end = out.find_first_of("/?#", start + 3);
    if (end == std::string::npos) end = out.size();
    size_t at = out.rfind('@', end);
    if (at != std::string::npos && at > start) {
      size_t colon = out.find(':', start + 3);
      if (colon != std::string::npos && colon < at)
        out.replace(colon + 1, at - colon - 1, "REDACTED");
    }
  }
  size_t q = out.find('?');
  if (q == std::string::npos) return out;
  static constexpr std::string_view kSecret[] = {"signature", "token", "key", "credential",
                                                 "password",  "auth",  "sig", "secret",
                                                 "session",   "pass"};
  std::string result = out.substr(0, q + 1);
  size_t pos = q + 1;
  size_t stop = out.find('#', pos);
  if (stop == std::string::npos) stop = out.size();
  while (pos <= stop) {
    size_t amp = out.find('&', pos);
    if (amp == std::string::npos || amp > stop) amp = stop;
    std::string_view param(out.data() + pos, amp - pos);
    size_t eq = param.find('=');
    std::string name(param.substr(0, eq));
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    bool secret = false;
    for (std::string_view s : kSecret) {
      if (name.find(s) != std::string::npos) secret = true;
    }
    if (secret && eq != std::string_view::npos) {
      result += std::string(param.substr(0, eq + 1)) + "REDACTED";
    } else {
      result += param;
    }
    if (amp == stop) break;
    result += '&';
    pos = amp + 1;
  }
  result += out.substr(stop);
  return result;
}

}  // namespace stowage
