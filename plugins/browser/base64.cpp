// Base64 (RFC 4648 alphabet) with atob's forgiving decoding.
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

void encode_triple(const uint8_t* in, std::string& out) {
  const uint32_t v = (uint32_t{in[0]} << 16) | (uint32_t{in[1]} << 8) | in[2];
  const char quad[4] = {kAlphabet[(v >> 18) & 63], kAlphabet[(v >> 12) & 63],
                        kAlphabet[(v >> 6) & 63], kAlphabet[v & 63]};
  out.append(quad, 4);
}

}  // namespace

void base64_append(std::string& out, std::span<const uint8_t> bytes) {
  Base64Encoder e;
  e.add(bytes, out);
  e.finish(out);
}

void Base64Encoder::add(std::span<const uint8_t> bytes, std::string& out) {
  size_t i = 0;
  out.reserve(out.size() + (bytes.size() + pending_size_) / 3 * 4 + 4);
  while (pending_size_ > 0 && pending_size_ < 3 && i < bytes.size()) {
    pending_[pending_size_++] = bytes[i++];
  }
  if (pending_size_ == 3) {
    encode_triple(pending_, out);
    pending_size_ = 0;
  }
  for (; i + 3 <= bytes.size(); i += 3) encode_triple(bytes.data() + i, out);
  while (i < bytes.size()) pending_[pending_size_++] = bytes[i++];
}

void Base64Encoder::finish(std::string& out) {
  if (pending_size_ == 0) return;
  const uint32_t v =
      (uint32_t{pending_[0]} << 16) | (pending_size_ > 1 ? uint32_t{pending_[1]} << 8 : 0);
  out += kAlphabet[(v >> 18) & 63];
  out += kAlphabet[(v >> 12) & 63];
  out += pending_size_ > 1 ? kAlphabet[(v >> 6) & 63] : '=';
  out += '=';
  pending_size_ = 0;
}

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
