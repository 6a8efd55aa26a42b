#include <array>
#include <cstdint>

#include "http_client.hpp"
#include "stowage/digest.hpp"

namespace stowage::net {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool iequal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// 32 bytes in canonical padded base64 (44 characters, the last one '=',
// unused bits zero) as lowercase hex; nullopt for anything else.
std::optional<std::string> sha256_hex_of_base64(std::string_view text) {
  if (text.size() != 44 || text[43] != '=') return std::nullopt;
  std::array<uint8_t, 33> bytes{};
  uint32_t bits = 0;
  int have = 0;
  size_t out = 0;
  for (size_t i = 0; i < 43; ++i) {
    const int v = base64_value(text[i]);
    if (v < 0) return std::nullopt;
    bits = (bits << 6) | static_cast<uint32_t>(v);
    have += 6;
    if (have >= 8) {
      have -= 8;
      bytes[out++] = static_cast<uint8_t>(bits >> have);
      bits &= (1u << have) - 1;
    }
  }
  if (out != 32 || bits != 0) return std::nullopt;
  return to_hex(std::span<const uint8_t>(bytes.data(), 32));
}

// Visits each "key=value" member of a comma-separated header value.
template <typename F>
void each_member(std::string_view value, F&& visit) {
  while (!value.empty()) {
    const size_t comma = value.find(',');
    const std::string_view member = trim(value.substr(0, comma));
    value = comma == std::string_view::npos ? std::string_view{} : value.substr(comma + 1);
    const size_t eq = member.find('=');
    if (eq == std::string_view::npos) {
      visit(trim(member), std::optional<std::string_view>{});
    } else {
      visit(trim(member.substr(0, eq)),
            std::optional<std::string_view>(trim(member.substr(eq + 1))));
    }
  }
}

}  // namespace

DigestHeader sha256_from_digest_headers(const Headers& headers) {
  DigestHeader out;
  auto note = [&out](std::string_view header, std::optional<std::string> hex) {
    if (!hex) {
      if (out.malformed.empty()) out.malformed = std::string(header);
      return;
    }
    if (out.hex.empty()) {
      out.hex = std::move(*hex);
      out.header = std::string(header);
    } else if (out.hex != *hex && out.malformed.empty()) {
      out.malformed = std::string(header);  // two different sha-256 claims
    }
  };
  for (const auto& [name, value] : headers) {
    if (iequal(name, "repr-digest")) {
      // RFC 9530: a structured-field dictionary, sha-256=:<base64>:, maybe
      // with parameters after ';'.
      each_member(value, [&](std::string_view key, std::optional<std::string_view> v) {
        if (key != "sha-256") return;
        std::string_view item = v.value_or("");
        item = trim(item.substr(0, item.find(';')));
        if (item.size() < 2 || item.front() != ':' || item.back() != ':') {
          note("Repr-Digest", std::nullopt);
          return;
        }
        note("Repr-Digest", sha256_hex_of_base64(item.substr(1, item.size() - 2)));
      });
    } else if (iequal(name, "digest")) {
      // RFC 3230 (obsoleted by RFC 9530): SHA-256=<base64>, the algorithm
      // name case-insensitive.
      each_member(value, [&](std::string_view key, std::optional<std::string_view> v) {
        if (!iequal(key, "sha-256")) return;
        note("Digest", v ? sha256_hex_of_base64(*v) : std::nullopt);
      });
    }
  }
  return out;
}

}  // namespace stowage::net
