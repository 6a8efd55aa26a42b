#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "json_util_internal.hpp"
#include "stowage/error.hpp"

namespace stowage::host {

rapidjson::Document parse_json(std::string_view text, std::string_view source) {
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseFullPrecisionFlag | rapidjson::kParseIterativeFlag>(text.data(),
                                                                                 text.size());
  if (doc.HasParseError()) {
    throw Error(ErrorCode::kInvalidArgument, std::string(source) + ": invalid JSON at offset " +
                                                 std::to_string(doc.GetErrorOffset()) + ": " +
                                                 rapidjson::GetParseError_En(doc.GetParseError()));
  }
  return doc;
}

std::string write_json(const rapidjson::Value& value) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> writer(sb);
  value.Accept(writer);
  return {sb.GetString(), sb.GetSize()};
}

const char* describe(const rapidjson::Value& value) noexcept {
  switch (value.GetType()) {
    case rapidjson::kNullType:
      return "null";
    case rapidjson::kFalseType:
    case rapidjson::kTrueType:
      return "a boolean";
    case rapidjson::kObjectType:
      return "an object";
    case rapidjson::kArrayType:
      return "an array";
    case rapidjson::kStringType:
      return "a string";
    case rapidjson::kNumberType:
      return "a number";
  }
  return "a value";
}

std::string merge_objects(std::string_view under, std::string_view under_source,
                          std::string_view over, std::string_view over_source) {
  rapidjson::Document base = parse_json(under, under_source);
  if (!base.IsObject()) {
    throw Error(ErrorCode::kInvalidArgument,
                std::string(under_source) + ": expected a JSON object, got " + describe(base));
  }
  rapidjson::Document top = parse_json(over, over_source);
  if (!top.IsObject()) {
    throw Error(ErrorCode::kInvalidArgument,
                std::string(over_source) + ": expected a JSON object, got " + describe(top));
  }
  auto& alloc = base.GetAllocator();
  for (auto& m : top.GetObject()) {
    auto it = base.FindMember(m.name);
    rapidjson::Value copy(m.value, alloc);
    if (it != base.MemberEnd()) {
      it->value = std::move(copy);
    } else {
      base.AddMember(rapidjson::Value(m.name, alloc), std::move(copy), alloc);
    }
  }
  return write_json(base);
}

}  // namespace stowage::host
