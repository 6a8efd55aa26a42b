#include "stowage/digest.hpp"

#include <openssl/evp.h>

#include <algorithm>

#include "stowage/base64.hpp"
#include "stowage/error.hpp"
#include "stowage/parallel.hpp"

namespace stowage {

bool is_sha256_hex(std::string_view text) noexcept {
  if (text.size() != kSha256HexSize) return false;
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

struct Sha256::State {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx{EVP_MD_CTX_new(), EVP_MD_CTX_free};
};

namespace {
void start(EVP_MD_CTX* ctx) {
  if (ctx == nullptr || EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) != 1) {
    throw Error(ErrorCode::kResourceExhausted, "cannot start a SHA-256 digest");
  }
}
}  // namespace

Sha256::Sha256() : state_(std::make_unique<State>()) { start(state_->ctx.get()); }
Sha256::~Sha256() = default;
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;

void Sha256::update(std::span<const uint8_t> bytes) {
  if (bytes.empty()) return;
  if (EVP_DigestUpdate(state_->ctx.get(), bytes.data(), bytes.size()) != 1) {
    throw Error(ErrorCode::kInternal, "SHA-256 update failed");
  }
}

void Sha256::update(std::string_view bytes) {
  update(std::span(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
}

std::array<uint8_t, 32> Sha256::finish() {
  std::array<uint8_t, 32> out{};
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(state_->ctx.get(), out.data(), &len) != 1 || len != out.size()) {
    throw Error(ErrorCode::kInternal, "SHA-256 finish failed");
  }
  start(state_->ctx.get());
  return out;
}

std::string Sha256::finish_hex() {
  const std::array<uint8_t, 32> d = finish();
  return to_hex(d);
}

std::string sha256_hex(std::span<const uint8_t> bytes) {
  Sha256 h;
  h.update(bytes);
  return h.finish_hex();
}

std::vector<std::string> sha256_hex_each(const std::vector<std::span<const uint8_t>>& buffers) {
  std::vector<size_t> order(buffers.size());
  uint64_t total = 0;
  for (size_t i = 0; i < buffers.size(); ++i) {
    order[i] = i;
    total += buffers[i].size();
  }
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return buffers[a].size() > buffers[b].size(); });
  std::vector<std::string> hex(buffers.size());  // one element per task: no sharing
  run_parallel(order.size(), cpu_width(order.size(), total),
               [&](size_t k, const auto&) { hex[order[k]] = sha256_hex(buffers[order[k]]); });
  return hex;
}

std::optional<std::string> from_hex(std::string_view hex) {
  if (hex.size() % 2 != 0) return std::nullopt;
  auto digit = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  std::string out;
  out.reserve(hex.size() / 2);
  for (size_t i = 0; i < hex.size(); i += 2) {
    const int hi = digit(hex[i]);
    const int lo = digit(hex[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi * 16 + lo);
  }
  return out;
}

std::string to_hex(std::span<const uint8_t> bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (uint8_t b : bytes) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

std::string sha256_base64_of_hex(std::string_view hex) {
  if (!is_sha256_hex(hex)) {
    throw Error(ErrorCode::kInvalidArgument, "not a SHA-256 hex digest: " + std::string(hex));
  }
  uint8_t raw[32];
  auto nibble = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
  for (size_t i = 0; i < 32; ++i) {
    raw[i] = static_cast<uint8_t>(nibble(hex[2 * i]) << 4 | nibble(hex[2 * i + 1]));
  }
  return base64_encode(raw);
}

}  // namespace stowage
