// Base64 decoding as atob reads it (ASCII whitespace skipped, padding
// optional); what TF.js writes into localStorage (btoa) is encoded by the
// format library's encoder (stowage/base64.hpp). Thread-safety: stateless
// functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace stowage::browser {

// Number of bytes text decodes to, or nullopt with *bad_offset set to the
// first character that is not base64 (or the end when the length is
// impossible).
std::optional<uint64_t> base64_decoded_size(std::string_view text, uint64_t* bad_offset);
// Decodes text into out, which has base64_decoded_size(text) bytes.
// REQUIRES: base64_decoded_size(text) succeeded.
void base64_decode(std::string_view text, uint8_t* out);

}  // namespace stowage::browser
