// Base64 encoding (RFC 4648 §4): the standard alphabet, '=' padding, no line
// breaks; what btoa writes and what HTTP's digest fields carry. The one
// encoder of the project, on OpenSSL's EVP_EncodeBlock. Decoding is not
// here: its readers differ in what they forgive (atob's whitespace and
// optional padding in the browser stores, exactly padded digests in HTTP
// headers) and each keeps its own rules.
//
//   std::string text = stowage::base64_encode(bytes);
//   stowage::Base64Encoder e;            // for data that arrives in pieces
//   e.add(piece, out); ...; e.finish(out);
//
// Thread-safety: base64_encode is stateless; a Base64Encoder is a value.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace stowage {

// The base64 text of bytes.
std::string base64_encode(std::span<const uint8_t> bytes);

// Incremental encoder: the text appended by add() calls and then finish()
// equals base64_encode of the concatenation of the pieces.
class Base64Encoder {
 public:
  // Appends the text of every whole 3-byte group so far; keeps the rest.
  void add(std::span<const uint8_t> bytes, std::string& out);
  // Appends the last, padded group, if any. The encoder is then empty.
  void finish(std::string& out);

 private:
  uint8_t pending_[3] = {0, 0, 0};
  size_t pending_size_ = 0;
};

}  // namespace stowage
