#include "stowage/text.hpp"

#include <doctest/doctest.h>

#include <vector>

using stowage::join;
using stowage::valid_utf8;

TEST_CASE("valid_utf8 accepts RFC 3629 UTF-8 and nothing else") {
  CHECK(valid_utf8(""));
  CHECK(valid_utf8("plain ASCII"));
  CHECK(valid_utf8("\xc3\xa9"));          // U+00E9
  CHECK(valid_utf8("\xe2\x82\xac"));      // U+20AC
  CHECK(valid_utf8("\xf0\x9f\x98\x80"));  // U+1F600
  CHECK(valid_utf8("\xf4\x8f\xbf\xbf"));  // U+10FFFF, the last code point
  CHECK(valid_utf8("\xed\x9f\xbf"));      // U+D7FF, just below the surrogates

  CHECK_FALSE(valid_utf8("\x80"));                  // a continuation byte alone
  CHECK_FALSE(valid_utf8("\xc3"));                  // cut short
  CHECK_FALSE(valid_utf8("\xe2\x82"));              // cut short
  CHECK_FALSE(valid_utf8("\xc3\x28"));              // bad continuation
  CHECK_FALSE(valid_utf8("\xc0\xaf"));              // overlong '/'
  CHECK_FALSE(valid_utf8("\xe0\x80\xaf"));          // overlong '/'
  CHECK_FALSE(valid_utf8("\xf0\x80\x80\xaf"));      // overlong '/'
  CHECK_FALSE(valid_utf8("\xed\xa0\x80"));          // U+D800, a surrogate
  CHECK_FALSE(valid_utf8("\xed\xbf\xbf"));          // U+DFFF, a surrogate
  CHECK_FALSE(valid_utf8("\xf4\x90\x80\x80"));      // U+110000
  CHECK_FALSE(valid_utf8("\xf8\x88\x80\x80\x80"));  // 5-byte form
  CHECK_FALSE(valid_utf8("\xff"));
  CHECK_FALSE(valid_utf8(std::string_view("a\xc3", 2)));
}

TEST_CASE("join puts the separator between items only") {
  const std::vector<std::string> none, one{"a"}, three{"a", "b", "c"};
  CHECK(join(none) == "");
  CHECK(join(one) == "a");
  CHECK(join(three) == "a, b, c");
  CHECK(join(three, "/") == "a/b/c");
  CHECK(join(std::span(three).subspan(1), "") == "bc");
}
