// Base64 encoding through OpenSSL's EVP_EncodeBlock.
#include "stowage/base64.hpp"

#include <openssl/evp.h>

#include <algorithm>

namespace stowage {
namespace {

// EVP_EncodeBlock takes an int length: encode at most this many bytes (a
// multiple of 3, so only the last call pads) per call.
constexpr size_t kMaxBlock = size_t{3} << 20;

// Appends the base64 text of bytes, padding the last group.
void encode_append(std::span<const uint8_t> bytes, std::string& out) {
  for (size_t at = 0; at < bytes.size(); at += kMaxBlock) {
    const size_t n = std::min(kMaxBlock, bytes.size() - at);
    const size_t start = out.size();
    // EVP_EncodeBlock also writes a terminating NUL.
    out.resize(start + (n + 2) / 3 * 4 + 1);
    const int written = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data() + start),
                                        bytes.data() + at, static_cast<int>(n));
    out.resize(start + static_cast<size_t>(written));
  }
}

}  // namespace

std::string base64_encode(std::span<const uint8_t> bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  encode_append(bytes, out);
  return out;
}

void Base64Encoder::add(std::span<const uint8_t> bytes, std::string& out) {
  size_t i = 0;
  while (pending_size_ > 0 && pending_size_ < 3 && i < bytes.size()) {
    pending_[pending_size_++] = bytes[i++];
  }
  if (pending_size_ == 3) {
    encode_append(pending_, out);
    pending_size_ = 0;
  }
  const size_t whole = (bytes.size() - i) / 3 * 3;
  encode_append(bytes.subspan(i, whole), out);
  i += whole;
  while (i < bytes.size()) pending_[pending_size_++] = bytes[i++];
}

void Base64Encoder::finish(std::string& out) {
  encode_append({pending_, pending_size_}, out);
  pending_size_ = 0;
}

}  // namespace stowage
