// RapidJSON helpers of the host library: parsing configs, manifests and
// options with errors that name their source, and shallow merging of option
// objects. Internal: public headers never include RapidJSON.
// Thread-safety: stateless functions.
#pragma once

#include <rapidjson/document.h>

#include <string>
#include <string_view>

#include "json_internal.hpp"  // the format library's parser and JSON.stringify writer

namespace stowage::host {

using json_internal::describe;
using json_internal::view_of;

// Parses `text`. Throws Error(kInvalidArgument)
// "<source>: invalid JSON at offset N: <reason>".
inline rapidjson::Document parse_json(std::string_view text, std::string_view source) {
  return json_internal::parse(text, source);
}

// Compact JSON text of a value, as JSON.stringify writes it.
inline std::string write_json(const rapidjson::Value& value) {
  return json_internal::stringify(value);
}

// Both texts must be JSON objects (errors name `under_source` or
// `over_source`). Returns `under` with every member of `over` replacing the
// member of the same name or appended: a shallow merge where `over` wins.
std::string merge_objects(std::string_view under, std::string_view under_source,
                          std::string_view over, std::string_view over_source);

}  // namespace stowage::host
