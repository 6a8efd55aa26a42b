// SHA-256 of an open file, for plugin pins: hashing the descriptor that is
// then loaded through /proc/self/fd means the checked bytes are the loaded
// bytes. Thread-safety: stateless.
#pragma once

#include <string>
#include <string_view>

namespace stowage::host {

// Lowercase hex SHA-256 of everything readable from fd (read with pread from
// offset 0; the file offset is untouched). Throws Error naming `name`.
std::string sha256_hex_of_fd(int fd, std::string_view name);

}  // namespace stowage::host
