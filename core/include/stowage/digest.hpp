// SHA-256 of weight files (docs/integrity.md): the digests a manifest group
// records, computed while bytes are written or read.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace stowage {

inline constexpr size_t kSha256HexSize = 64;

// True for exactly 64 lowercase hex digits, the form a manifest records.
bool is_sha256_hex(std::string_view text) noexcept;

// Incremental SHA-256 (OpenSSL EVP, which uses the CPU's SHA extensions
// when it has them).
// Thread-safety: one object per thread; distinct objects are independent.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;

  void update(std::span<const uint8_t> bytes);
  void update(std::string_view bytes);
  // The digest of everything updated so far; the object starts over after.
  std::array<uint8_t, 32> finish();
  std::string finish_hex();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

std::string sha256_hex(std::span<const uint8_t> bytes);
// sha256_hex of every buffer, in order, hashed on all cores (run_parallel in
// stowage/parallel.hpp): a buffer per task, since SHA-256 is serial within
// one, the largest first so that every thread stays busy to the end.
std::vector<std::string> sha256_hex_each(const std::vector<std::span<const uint8_t>>& buffers);
std::string to_hex(std::span<const uint8_t> bytes);
// The bytes of lowercase hex (to_hex's output); nullopt for anything else
// (an odd length, another character): callers read back tokens they wrote.
std::optional<std::string> from_hex(std::string_view hex);
// Standard base64 with padding (RFC 9530's sha-256=:...: form).
std::string sha256_base64_of_hex(std::string_view hex);

}  // namespace stowage
