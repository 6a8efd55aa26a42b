// RapidJSON helpers of the format library: parsing with the flags every
// reader uses, and a writer that matches JSON.stringify byte for byte
// (spec §1.8). Internal: public headers never include RapidJSON.
// Thread-safety: stateless functions.
#pragma once

#include <rapidjson/document.h>

#include <string>
#include <string_view>

namespace stowage::json_internal {

// Full-precision numbers (JS parses decimals exactly), NaN/Infinity tokens
// (the Python converter writes them) and an iterative parser, so hostile
// nesting cannot overflow the stack.
inline constexpr unsigned kParseFlags = rapidjson::kParseFullPrecisionFlag |
                                        rapidjson::kParseNanAndInfFlag |
                                        rapidjson::kParseIterativeFlag;

// Parses `text` (a leading UTF-8 byte order mark is skipped). Throws
// Error(kInvalidArgument) "<source>: invalid JSON at offset N: <reason>".
rapidjson::Document parse(std::string_view text, std::string_view source);

// ECMAScript Number::toString of `value` ("null" for NaN and infinities).
void append_number(std::string& out, double value);
// A JSON.stringify string literal for UTF-8 text. Encoded surrogates (from a
// "\udc00" escape) are written as \udxxx like JS does for lone surrogates;
// bytes that are not UTF-8 become U+FFFD, as a JS text decoder makes them.
void append_quoted(std::string& out, std::string_view utf8);
// JSON.stringify of a parsed value: compact, numbers taken as doubles,
// object keys in JS property order (array-index keys ascending first, then
// insertion order; a repeated key keeps its first place and last value).
// Iterative, so depth is bounded only by memory.
void append_value(std::string& out, const rapidjson::Value& value);
std::string stringify(const rapidjson::Value& value);

// "an object", "an array", "a string", "a number", "a boolean", "null".
const char* describe(const rapidjson::Value& value) noexcept;

inline std::string_view view_of(const rapidjson::Value& string_value) noexcept {
  return {string_value.GetString(), string_value.GetStringLength()};
}

}  // namespace stowage::json_internal
