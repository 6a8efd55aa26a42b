#include "stowage/text.hpp"

#include <doctest/doctest.h>

#include <vector>

using stowage::join;
using stowage::redact_url;
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

TEST_CASE("split keeps every piece, empty ones included") {
  using V = std::vector<std::string_view>;
  CHECK(stowage::split("s3.ab.cd.", '.') == V{"s3", "ab", "cd", ""});
  CHECK(stowage::split("", '.') == V{""});
  CHECK(stowage::split(".", '.') == V{"", ""});
  CHECK(stowage::split("no separator", '.') == V{"no separator"});
}

TEST_CASE("redact_url hides passwords and secret query values, and nothing else") {
  CHECK(redact_url("https://u:pw@h/x?X-Amz-Signature=abc&a=1&access_token=t#f") ==
        "https://u:REDACTED@h/x?X-Amz-Signature=REDACTED&a=1&access_token=REDACTED#f");
  CHECK(redact_url("http://h/x?page=2") == "http://h/x?page=2");
  CHECK(redact_url("http://u@h/x") == "http://u@h/x");
  // Each word of the list, in any case; a name without '=' has no value.
  CHECK(redact_url("s3://b/m?ApiKey=1&PASS=2&sessionid=3&Auth=4&credential=5&secret=6&flag") ==
        "s3://b/m?ApiKey=REDACTED&PASS=REDACTED&sessionid=REDACTED&Auth=REDACTED&"
        "credential=REDACTED&secret=REDACTED&flag");
  // A '@' in the path or query is not a userinfo; '#' ends the query.
  CHECK(redact_url("http://h/a@b:c?x=1") == "http://h/a@b:c?x=1");
  CHECK(redact_url("http://h/?a=1#token=2") == "http://h/?a=1#token=2");
  CHECK(redact_url("not a url ?token=t") == "not a url ?token=REDACTED");
}
