#include <openssl/evp.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

#include "file_hash_internal.hpp"
#include "stowage/error.hpp"

namespace stowage::host {

std::string sha256_hex_of_fd(int fd, std::string_view name) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    throw Error(ErrorCode::kInternal, "cannot start SHA-256 of '" + std::string(name) + "'");
  }
  std::vector<unsigned char> chunk(1 << 20);
  off_t offset = 0;
  for (;;) {
    ssize_t n = ::pread(fd, chunk.data(), chunk.size(), offset);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw Error(ErrorCode::kDataLoss,
                  "cannot read '" + std::string(name) + "' to hash it: " + std::strerror(errno));
    }
    if (n == 0) break;
    if (EVP_DigestUpdate(ctx.get(), chunk.data(), static_cast<size_t>(n)) != 1) {
      throw Error(ErrorCode::kInternal, "SHA-256 of '" + std::string(name) + "' failed");
    }
    offset += n;
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx.get(), digest, &len) != 1) {
    throw Error(ErrorCode::kInternal, "SHA-256 of '" + std::string(name) + "' failed");
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * len);
  for (unsigned int i = 0; i < len; ++i) {
    hex.push_back(kHex[digest[i] >> 4]);
    hex.push_back(kHex[digest[i] & 15]);
  }
  return hex;
}

}  // namespace stowage::host
