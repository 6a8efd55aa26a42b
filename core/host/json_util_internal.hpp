// RapidJSON helpers of the host library: parsing configs, manifests and
// options with errors that name their source, and shallow merging of option
// objects. Internal: public headers never include RapidJSON.
// Thread-safety: stateless functions.
#pragma once

#include <rapidjson/document.h>

#include <string>
#include <string_view>

namespace stowage::host {

// Parses `text`. Throws Error(kInvalidArgument)
// "<source>: invalid JSON at offset N: <reason>".
rapidjson::Document parse_json(std::string_view text, std::string_view source);

// Compact JSON text of a value.
std::string write_json(const rapidjson::Value& value);

// "an object", "an array", "a string", "a number", "a boolean", "null".
const char* describe(const rapidjson::Value& value) noexcept;

inline std::string_view view_of(const rapidjson::Value& string_value) noexcept {
  return {string_value.GetString(), string_value.GetStringLength()};
}

// Both texts must be JSON objects (errors name `under_source` or
// `over_source`). Returns `under` with every member of `over` replacing the
// member of the same name or appended: a shallow merge where `over` wins.
std::string merge_objects(std::string_view under, std::string_view under_source,
                          std::string_view over, std::string_view over_source);

}  // namespace stowage::host
