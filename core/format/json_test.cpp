// JSON.stringify-exact output (spec §1.8).
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "stowage/error.hpp"
#include "stowage/model_json.hpp"

using namespace stowage;

TEST_CASE("json::number is ECMAScript Number::toString") {
  CHECK(json::number(0) == "0");
  CHECK(json::number(-0.0) == "0");
  CHECK(json::number(1) == "1");
  CHECK(json::number(-1.5) == "-1.5");
  CHECK(json::number(0.1) == "0.1");
  CHECK(json::number(0.1 + 0.2) == "0.30000000000000004");
  CHECK(json::number(123.456) == "123.456");
  CHECK(json::number(1e20) == "100000000000000000000");
  CHECK(json::number(1e21) == "1e+21");
  CHECK(json::number(1.5e21) == "1.5e+21");
  CHECK(json::number(-1e21) == "-1e+21");
  CHECK(json::number(0.000001) == "0.000001");
  CHECK(json::number(0.0000015) == "0.0000015");
  CHECK(json::number(1e-7) == "1e-7");
  CHECK(json::number(1.5e-7) == "1.5e-7");
  CHECK(json::number(5e-324) == "5e-324");
  CHECK(json::number(1.7976931348623157e308) == "1.7976931348623157e+308");
  CHECK(json::number(123456789012345678901.0) == "123456789012345680000");
  CHECK(json::number(9007199254740993.0) == "9007199254740992");
  CHECK(json::number(static_cast<double>(3.8f)) == "3.799999952316284");
  CHECK(json::number(std::nan("")) == "null");
  CHECK(json::number(std::numeric_limits<double>::infinity()) == "null");
  CHECK(json::number(-std::numeric_limits<double>::infinity()) == "null");
}

TEST_CASE("json::normalize: the number golden of spec §1.8") {
  CHECK(json::normalize(R"({"a":1e21,"b":0.0000001,"c":0.1,"d":-0,"h":5e-324,)"
                        R"("i":123456789012345678901})",
                        "test") ==
        R"({"a":1e+21,"b":1e-7,"c":0.1,"d":0,"h":5e-324,"i":123456789012345680000})");
  // Integers RapidJSON keeps as int64/uint64 are doubles in JS.
  CHECK(json::normalize("[9007199254740993,18446744073709551615,-9223372036854775808,-0.0]",
                        "test") ==
        "[9007199254740992,18446744073709552000,-9223372036854776000,0]");
  CHECK(json::normalize("[1.0, 2.50, 1E3, 1e-07]", "test") == "[1,2.5,1000,1e-7]");
}

// Found by fuzz/model_json_fuzzer and fuzz/config_fuzzer: RapidJSON read
// "0e39" and "0.000000000000000000000000000000" as garbage.
TEST_CASE("json::normalize: zero with an exponent is 0, as in JSON.parse") {
  CHECK(json::normalize("[0e39,-0.00E+5,0e400,0.0e-400,0E1,-0e0]", "test") == "[0,0,0,0,0,0]");
  CHECK(json::normalize("[0.000000000000000000000000000000,-0.0000000000000000000000000]",
                        "test") == "[0,0]");
  CHECK(json::normalize(R"({"0e39":"0e39","x":[1e2,0.5e1,10e1]})", "test") ==
        R"({"0e39":"0e39","x":[100,5,100]})");
  CHECK_THROWS_AS(json::normalize("[0e]", "test"), Error);
  CHECK_THROWS_AS(json::normalize("[0.e5]", "test"), Error);
  CHECK_THROWS_AS(json::normalize("[00e5]", "test"), Error);
}

// Found by fuzz/model_json_fuzzer: RapidJSON read past a table for these.
TEST_CASE("json::normalize: numbers of 1e309 and more are refused as too big") {
  const std::string zeros(60, '0');
  const std::vector<std::string> texts = {"[9007199" + zeros + "e308]", "[1e309]", "[-0.1e310]",
                                          "[1" + std::string(309, '0') + "]"};
  for (const std::string& text : texts) {
    CAPTURE(text);
    try {
      json::normalize(text, "test");
      FAIL("accepted");
    } catch (const Error& e) {
      CHECK(std::string(e.what()) ==
            "test: invalid JSON at offset 1: Number too big to be stored in double.");
    }
  }
  CHECK(json::normalize("[1e308,0.1e309,1" + zeros + "e-60]", "test") == "[1e+308,1e+308,1]");
}

TEST_CASE("json::quote escapes exactly as JSON.stringify") {
  CHECK(json::quote("") == R"("")");
  CHECK(json::quote("a\"b\\c") == R"("a\"b\\c")");
  CHECK(json::quote("\b\f\n\r\t") == R"("\b\f\n\r\t")");
  CHECK(json::quote(std::string("\x00\x01\x1f", 3)) == R"("\u0000\u0001\u001f")");
  CHECK(json::quote("\x0b\x1b") == R"("\u000b\u001b")");  // lowercase hex
  CHECK(json::quote("/\x7f") == "\"/\x7f\"");
  // Non-ASCII, U+2028 and U+2029 stay raw UTF-8.
  CHECK(json::quote("é正\xe2\x80\xa8\xe2\x80\xa9😀") == "\"é正\xe2\x80\xa8\xe2\x80\xa9😀\"");
  // An encoded lone surrogate is written as JS writes a lone surrogate.
  CHECK(json::quote("\xed\xb0\x80") == R"("\udc00")");
  CHECK(json::quote("x\xed\xa0\xbdy") == R"("x\ud83dy")");
  // Two encoded halves of a pair are one character.
  CHECK(json::quote("\xed\xa0\xbd\xed\xb8\x80") == "\"😀\"");
  // Bytes that are not UTF-8 become U+FFFD, one per maximal ill-formed part.
  CHECK(json::quote("a\xff"
                    "b") ==
        "\"a\xef\xbf\xbd"
        "b\"");
  CHECK(json::quote("a\xe6\xad") == "\"a\xef\xbf\xbd\"");
  CHECK(json::quote("\xc0\xaf") == "\"\xef\xbf\xbd\xef\xbf\xbd\"");
  CHECK(json::quote("\xf4\x90\x80\x80") == "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"");
}

TEST_CASE("json::normalize re-emits strings through the escapes") {
  CHECK(json::normalize(R"(["caf\u00e9 \u6b63", "\u2028", "\ud83d\ude00", "\/", "\u001F"])",
                        "test") == "[\"café 正\",\"\xe2\x80\xa8\",\"😀\",\"/\",\"\\u001f\"]");
  CHECK(json::normalize(R"("\udc00")", "test") == R"("\udc00")");
  // Lone surrogates survive as JSON.parse + JSON.stringify keep them.
  CHECK(json::normalize(R"(["\ud800", "a\uDBFFb", "\ud800\ud800\udc00", "\\ud800"])", "t") ==
        "[\"\\ud800\",\"a\\udbffb\",\"\\ud800𐀀\",\"\\\\ud800\"]");
  CHECK(json::normalize(R"({"\ud83d":"\ude00\ud83d"})", "t") == R"({"\ud83d":"\ude00\ud83d"})");
}

TEST_CASE("json::normalize: JS object key order") {
  // A repeated key keeps its first place and its last value.
  CHECK(json::normalize(R"({"a":1,"b":2,"a":3})", "t") == R"({"a":3,"b":2})");
  // Array-index keys come first, ascending; other keys keep insertion order.
  CHECK(json::normalize(R"({"b":1,"10":2,"2":3,"a":4,"01":5,"4294967295":6,"0":7})", "t") ==
        R"({"0":7,"2":3,"10":2,"b":1,"a":4,"01":5,"4294967295":6})");
  std::string many = "{";
  for (int i = 0; i < 40; ++i)
    many += "\"k" + std::to_string(i % 20) + "\":" + std::to_string(i) + ",";
  many.back() = '}';
  const std::string out = json::normalize(many, "t");
  CHECK(out.rfind("{\"k0\":20,\"k1\":21,", 0) == 0);
  CHECK(out.find("\"k19\":39}") != std::string::npos);
}

TEST_CASE("json::normalize: the Python converter's formatting") {
  const std::string python =
      R"({"format": "graph-model", "generatedBy": "2.11.0", "userDefinedMetadata": )"
      R"({"label": "caf\u00e9 \u6b63", "eps": 1e-07, "nan": NaN, "inf": Infinity, )"
      R"("ninf": -Infinity, "big": 1e+21, "f": 0.1, "i": 3, "neg": -2.5e-08, )"
      R"("nested": [1.0, 2.0, {"x": null, "t": true}]}})";
  CHECK(json::normalize(python, "converter.json") ==
        "{\"format\":\"graph-model\",\"generatedBy\":\"2.11.0\",\"userDefinedMetadata\":"
        "{\"label\":\"café 正\",\"eps\":1e-7,\"nan\":null,\"inf\":null,\"ninf\":null,"
        "\"big\":1e+21,\"f\":0.1,\"i\":3,\"neg\":-2.5e-8,"
        "\"nested\":[1,2,{\"x\":null,\"t\":true}]}}");
}

TEST_CASE("json::normalize: errors name the source and the offset") {
  try {
    json::normalize("{\"a\": [1, 2}", "meta.json");
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::kInvalidArgument);
    CHECK(std::string(e.what()).find("meta.json: invalid JSON at offset 11") == 0);
  }
  CHECK_THROWS_AS(json::normalize("", "empty"), Error);
  CHECK_THROWS_AS(json::normalize("{} x", "trailing"), Error);
  // A byte order mark is skipped.
  CHECK(json::normalize("\xef\xbb\xbf{ }", "bom") == "{}");
}

TEST_CASE("json::normalize: deep nesting uses no recursion") {
  constexpr int kDepth = 200000;
  const std::string deep = std::string(kDepth, '[') + std::string(kDepth, ']');
  CHECK(json::normalize(deep, "deep") == deep);
  std::string objects;
  for (int i = 0; i < kDepth; ++i) objects += "{\"a\":";
  objects += "1" + std::string(kDepth, '}');
  CHECK(json::normalize(objects, "deep") == objects);
  // Unclosed: an error, not a crash.
  CHECK_THROWS_AS(json::normalize(std::string(kDepth, '['), "deep"), Error);
}
