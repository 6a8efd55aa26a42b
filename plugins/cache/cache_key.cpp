#include <algorithm>
#include <array>
#include <cctype>
#include <string>
#include <string_view>

#include "cache_key_internal.hpp"
#include "stowage/digest.hpp"
#include "stowage/text.hpp"

namespace stowage::cache {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Parameters that sign or expire a request rather than name the model:
// presigned S3 and GCS URLs, CloudFront signed URLs, Azure SAS. They change
// with every signing, so they are dropped whole; any other parameter whose
// value redact_url hides keeps its name with the value hidden.
bool signing_param(std::string_view raw_name) {
  const std::string name = lower(raw_name);
  static constexpr std::array<std::string_view, 3> kPrefixes = {"x-amz-", "x-goog-", "x-ms-"};
  for (std::string_view p : kPrefixes) {
    if (name.compare(0, p.size(), p) == 0) return true;
  }
  static constexpr std::array<std::string_view, 18> kExact = {
      "signature", "expires", "policy",       "key-pair-id",
      "sig",       "token",   "access_token", "googleaccessid",
      "se",        "sp",      "sv",           "sr",
      "st",        "spr",     "srt",          "ss",
      "skoid",     "sktid"};
  return std::find(kExact.begin(), kExact.end(), name) != kExact.end();
}

}  // namespace

std::string normalise_url(std::string_view url) {
  std::string_view rest = url;
  if (const size_t hash = rest.find('#'); hash != std::string_view::npos) {
    rest = rest.substr(0, hash);
  }
  std::string_view query;
  if (const size_t q = rest.find('?'); q != std::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  std::string out;
  const size_t sep = rest.find("://");
  if (sep == std::string_view::npos) {
    out = std::string(rest);
  } else {
    out = lower(rest.substr(0, sep)) + "://";
    std::string_view after = rest.substr(sep + 3);
    const size_t slash = after.find('/');
    std::string_view authority = after.substr(0, slash);
    const std::string_view path = slash == std::string_view::npos ? "" : after.substr(slash);
    if (const size_t at = authority.rfind('@'); at != std::string_view::npos) {
      authority = authority.substr(at + 1);
    }
    out += lower(authority);
    out += path;
  }
  std::string kept;
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? "" : query.substr(amp + 1);
    if (pair.empty()) continue;
    if (signing_param(pair.substr(0, pair.find('=')))) continue;
    kept += kept.empty() ? "" : "&";
    kept += pair;
  }
  if (!kept.empty()) out += "?" + kept;
  return redact_url(out);
}

std::string cache_key(std::string_view url) {
  const std::string n = normalise_url(url);
  return sha256_hex({reinterpret_cast<const uint8_t*>(n.data()), n.size()});
}

}  // namespace stowage::cache
