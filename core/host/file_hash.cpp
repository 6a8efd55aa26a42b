#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "file_hash_internal.hpp"
#include "stowage/digest.hpp"
#include "stowage/error.hpp"

namespace stowage::host {

std::string sha256_hex_of_fd(int fd, std::string_view name) {
  Sha256 hash;
  std::vector<uint8_t> chunk(1 << 20);
  off_t offset = 0;
  for (;;) {
    ssize_t n = ::pread(fd, chunk.data(), chunk.size(), offset);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw Error(ErrorCode::kDataLoss,
                  "cannot read '" + std::string(name) + "' to hash it: " + std::strerror(errno));
    }
    if (n == 0) break;
    hash.update(std::span<const uint8_t>(chunk.data(), static_cast<size_t>(n)));
    offset += n;
  }
  return hash.finish_hex();
}

}  // namespace stowage::host
