// Base64 as TF.js writes it into localStorage (btoa): the standard alphabet,
// '=' padding, no line breaks; and decoding as atob reads it (ASCII
// whitespace skipped, padding optional). Thread-safety: stateless functions.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace stowage::browser {

// Appends the base64 text of bytes to out.
void base64_append(std::string& out, std::span<const uint8_t> bytes);

// Incremental encoder for data that arrives in pieces (the weight buffers):
// the output equals base64_append of the concatenation.
class Base64Encoder {
 public:
  void add(std::span<const uint8_t> bytes, std::string& out);
  void finish(std::string& out);

 private:
  uint8_t pending_[3] = {0, 0, 0};
  size_t pending_size_ = 0;
};

// Number of bytes text decodes to, or nullopt with *bad_offset set to the
// first character that is not base64 (or the end when the length is
// impossible).
std::optional<uint64_t> base64_decoded_size(std::string_view text, uint64_t* bad_offset);
// Decodes text into out, which has base64_decoded_size(text) bytes.
// REQUIRES: base64_decoded_size(text) succeeded.
void base64_decode(std::string_view text, uint8_t* out);

}  // namespace stowage::browser
