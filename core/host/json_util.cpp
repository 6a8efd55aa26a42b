
#include "json_util_internal.hpp"
#include "stowage/error.hpp"

namespace stowage::host {

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
