// Base64 (RFC 4648 alphabet) decoding with atob's forgiving rules.
#include <array>

#include "base64_internal.hpp"

namespace stowage::browser {
namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr std::array<int8_t, 256> make_table() {
  std::array<int8_t, 256> t{};
  for (auto& v : t) v = -1;
  for (int i = 0; i < 64; ++i) t[static_cast<uint8_t>(kAlphabet[i])] = static_cast<int8_t>(i);
  return t;
}
constexpr std::array<int8_t, 256> kValue = make_table();

// atob skips ASCII whitespace: tab, line feed, form feed, carriage return, space.
constexpr bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r';
}

}  // namespace

std::optional<uint64_t> base64_decoded_size(std::string_view text, uint64_t* bad_offset) {
  uint64_t digits = 0;
  uint64_t padding = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (is_space(c)) continue;
    if (c == '=') {
      ++padding;
      continue;
    }
    // A digit after padding, or a character outside the alphabet.
    if (kValue[static_cast<uint8_t>(c)] < 0 || padding > 0) {
      *bad_offset = i;
      return std::nullopt;
    }
    ++digits;
  }
  // atob: with padding the total must be a multiple of 4; a remainder of 1
  // digit is never valid.
  if ((padding > 0 && ((digits + padding) % 4 != 0 || padding > 2)) || digits % 4 == 1) {
    *bad_offset = text.size();
    return std::nullopt;
  }
  return digits / 4 * 3 + (digits % 4 == 0 ? 0 : digits % 4 - 1);
}

void base64_decode(std::string_view text, uint8_t* out) {
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    const int8_t v = kValue[static_cast<uint8_t>(c)];
    if (v < 0) continue;  // whitespace and padding (validated before)
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      *out++ = static_cast<uint8_t>(acc >> bits);
    }
  }
}

}  // namespace stowage::browser
