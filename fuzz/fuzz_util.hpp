// Helpers shared by the fuzz targets: splitting one input into parts and
// failing loudly when an invariant breaks (libFuzzer saves the input).
//
//   FUZZ_CHECK(a == b, "what differs");
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace stowage::fuzz {

[[noreturn]] inline void invariant_failed(const char* condition, const char* what, const char* file,
                                          int line) {
  std::fprintf(stderr, "%s:%d: invariant broken: %s (%s)\n", file, line, what, condition);
  std::abort();
}

#define FUZZ_CHECK(condition, what)                                                            \
  do {                                                                                         \
    if (!(condition)) ::stowage::fuzz::invariant_failed(#condition, what, __FILE__, __LINE__); \
  } while (0)

inline std::string_view as_text(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// Splits `text` at the first `separator`: the part before it goes to head
// and the rest stays in text. Without a separator, head is everything.
inline std::string_view take_until(std::string_view& text, std::string_view separator) {
  const size_t at = text.find(separator);
  if (at == std::string_view::npos) {
    std::string_view head = text;
    text = {};
    return head;
  }
  std::string_view head = text.substr(0, at);
  text.remove_prefix(at + separator.size());
  return head;
}

}  // namespace stowage::fuzz
