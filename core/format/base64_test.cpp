#include "stowage/base64.hpp"

#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <vector>

namespace {

std::span<const uint8_t> bytes_of(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// RFC 4648 §10.
constexpr std::pair<std::string_view, std::string_view> kVectors[] = {
    {"", ""},
    {"f", "Zg=="},
    {"fo", "Zm8="},
    {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="},
    {"fooba", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy"},
};

}  // namespace

TEST_CASE("base64_encode gives RFC 4648's test vectors") {
  for (const auto& [in, expected] : kVectors) {
    CAPTURE(in);
    CHECK(stowage::base64_encode(bytes_of(in)) == expected);
  }
  // All of the alphabet, '+' and '/' included.
  const std::vector<uint8_t> all = {0x00, 0x10, 0x83, 0x10, 0x51, 0x87, 0x20, 0x92, 0x8b, 0x30,
                                    0xd3, 0x8f, 0x41, 0x14, 0x93, 0x51, 0x55, 0x97, 0x61, 0x96,
                                    0x9b, 0x71, 0xd7, 0x9f, 0x82, 0x18, 0xa3, 0x92, 0x59, 0xa7,
                                    0xa2, 0x9a, 0xab, 0xb2, 0xdb, 0xaf, 0xc3, 0x1c, 0xb3, 0xd3,
                                    0x5d, 0xb7, 0xe3, 0x9e, 0xbb, 0xf3, 0xdf, 0xbf};
  CHECK(stowage::base64_encode(all) ==
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/");
}

TEST_CASE("Base64Encoder gives the text of the whole, however the bytes are split") {
  for (const auto& [in, expected] : kVectors) {
    for (size_t cut1 = 0; cut1 <= in.size(); ++cut1) {
      for (size_t cut2 = cut1; cut2 <= in.size(); ++cut2) {
        CAPTURE(in);
        CAPTURE(cut1);
        CAPTURE(cut2);
        stowage::Base64Encoder e;
        std::string out = "prefix:";
        e.add(bytes_of(in.substr(0, cut1)), out);
        e.add(bytes_of(in.substr(cut1, cut2 - cut1)), out);
        e.add(bytes_of(in.substr(cut2)), out);
        e.finish(out);
        CHECK(out == "prefix:" + std::string(expected));
        // finish() empties the encoder: it can start again.
        e.finish(out);
        CHECK(out == "prefix:" + std::string(expected));
      }
    }
  }
  // Longer than one EVP_EncodeBlock call, in pieces not a multiple of 3.
  std::string big(7u << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7 + i / 251);
  const std::string whole = stowage::base64_encode(bytes_of(big));
  CHECK(whole.size() == (big.size() + 2) / 3 * 4);
  stowage::Base64Encoder e;
  std::string pieces;
  for (size_t at = 0; at < big.size(); at += 1000001) {
    e.add(bytes_of(std::string_view(big).substr(at, 1000001)), pieces);
  }
  e.finish(pieces);
  CHECK(pieces == whole);
  // The text at the seam between two blocks carries on without padding.
  CHECK(whole.substr((3u << 20) / 3 * 4 - 4, 8).find('=') == std::string::npos);
}
