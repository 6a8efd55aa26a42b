#include "stowage/artifacts.hpp"

#include <cstdio>
#include <limits>

#include "json_internal.hpp"
#include "stowage/error.hpp"
#include "stowage/model_json.hpp"

namespace stowage {

uint64_t WeightSpec::element_count() const {
  uint64_t count = 1;
  for (int64_t dim : shape) {
    if (dim < 0) {
      throw Error(ErrorCode::kInvalidArgument, "weight '" + name + "' has a negative dimension " +
                                                   std::to_string(dim) + " in its shape");
    }
    if (__builtin_mul_overflow(count, static_cast<uint64_t>(dim), &count)) {
      throw Error(ErrorCode::kInvalidArgument,
                  "weight '" + name + "' has a shape whose element count overflows 64 bits");
    }
  }
  return count;
}

std::vector<WeightSpec> flatten_specs(const WeightsManifest& manifest) {
  std::vector<WeightSpec> specs;
  size_t n = 0;
  for (const WeightGroup& g : manifest) n += g.weights.size();
  specs.reserve(n);
  for (const WeightGroup& g : manifest)
    specs.insert(specs.end(), g.weights.begin(), g.weights.end());
  return specs;
}

ModelArtifactsInfo artifacts_info(const ModelArtifacts& artifacts,
                                  std::chrono::system_clock::time_point now) {
  ModelArtifactsInfo info;
  info.date_saved = now;
  info.model_topology_type = "JSON";
  // The JSON fields already hold JSON.stringify text, so its size is the
  // UTF-8 byte count TF.js measures.
  info.model_topology_bytes = artifacts.model_topology ? artifacts.model_topology->size() : 0;
  info.weight_specs_bytes =
      artifacts.weight_specs ? specs_to_json(*artifacts.weight_specs).size() : 0;
  if (!artifacts.weight_data) {
    info.weight_data_bytes = 0;
  } else if (artifacts.weight_data->empty()) {
    info.weight_data_bytes = std::nullopt;  // CompositeArrayBuffer([]).byteLength is undefined
  } else {
    info.weight_data_bytes = total_size(*artifacts.weight_data);
  }
  return info;
}

std::string info_to_json(const ModelArtifactsInfo& info) {
  std::string out = "{\"dateSaved\":";
  json_internal::append_quoted(out, iso_date(info.date_saved));
  out += ",\"modelTopologyType\":";
  json_internal::append_quoted(out, info.model_topology_type);
  out += ",\"modelTopologyBytes\":" + std::to_string(info.model_topology_bytes);
  out += ",\"weightSpecsBytes\":" + std::to_string(info.weight_specs_bytes);
  if (info.weight_data_bytes)
    out += ",\"weightDataBytes\":" + std::to_string(*info.weight_data_bytes);
  out += '}';
  return out;
}

namespace {

uint64_t byte_count(const rapidjson::Value& v, const char* key, std::string_view source) {
  constexpr double kMaxExact = 9007199254740992.0;  // 2^53
  if (!v.IsNumber() || v.GetDouble() < 0 || v.GetDouble() > kMaxExact ||
      v.GetDouble() != static_cast<double>(static_cast<uint64_t>(v.GetDouble()))) {
    throw Error(ErrorCode::kInvalidArgument, std::string(source) + ": model info field '" + key +
                                                 "' must be a non-negative integer, not " +
                                                 json_internal::stringify(v));
  }
  return static_cast<uint64_t>(v.GetDouble());
}

}  // namespace

ModelArtifactsInfo info_from_json(std::string_view json, std::string_view source) {
  const rapidjson::Document doc = json_internal::parse(json, source);
  if (!doc.IsObject()) {
    throw Error(ErrorCode::kInvalidArgument, std::string(source) +
                                                 ": model info must be a JSON object, not " +
                                                 json_internal::describe(doc));
  }
  ModelArtifactsInfo info;
  auto date = doc.FindMember("dateSaved");
  if (date == doc.MemberEnd() || !date->value.IsString()) {
    throw Error(ErrorCode::kInvalidArgument,
                std::string(source) + ": model info has no 'dateSaved' string");
  }
  try {
    info.date_saved = parse_iso_date(json_internal::view_of(date->value));
  } catch (const Error& e) {
    throw Error(ErrorCode::kInvalidArgument, std::string(source) + ": " + e.what());
  }
  auto type = doc.FindMember("modelTopologyType");
  if (type != doc.MemberEnd()) {
    if (!type->value.IsString()) {
      throw Error(ErrorCode::kInvalidArgument,
                  std::string(source) + ": model info field 'modelTopologyType' must be a string");
    }
    info.model_topology_type = std::string(json_internal::view_of(type->value));
  }
  auto topology = doc.FindMember("modelTopologyBytes");
  if (topology != doc.MemberEnd() && !topology->value.IsNull()) {
    info.model_topology_bytes = byte_count(topology->value, "modelTopologyBytes", source);
  }
  auto specs = doc.FindMember("weightSpecsBytes");
  if (specs != doc.MemberEnd() && !specs->value.IsNull()) {
    info.weight_specs_bytes = byte_count(specs->value, "weightSpecsBytes", source);
  }
  auto data = doc.FindMember("weightDataBytes");
  if (data != doc.MemberEnd() && !data->value.IsNull()) {
    info.weight_data_bytes = byte_count(data->value, "weightDataBytes", source);
  } else {
    info.weight_data_bytes = std::nullopt;
  }
  return info;
}

std::string iso_date(std::chrono::system_clock::time_point t) {
  using namespace std::chrono;
  const auto ms = floor<milliseconds>(t);
  const auto day = floor<days>(ms);
  const year_month_day ymd{day};
  const hh_mm_ss<milliseconds> time{ms - day};
  const int y = static_cast<int>(ymd.year());
  char buf[64];
  // JS writes years outside 0..9999 as +YYYYYY / -YYYYYY.
  char year[16];
  if (y >= 0 && y <= 9999) {
    std::snprintf(year, sizeof year, "%04d", y);
  } else {
    std::snprintf(year, sizeof year, "%c%06d", y < 0 ? '-' : '+', y < 0 ? -y : y);
  }
  std::snprintf(buf, sizeof buf, "%s-%02u-%02uT%02d:%02d:%02d.%03dZ", year,
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<int>(time.hours().count()), static_cast<int>(time.minutes().count()),
                static_cast<int>(time.seconds().count()),
                static_cast<int>(time.subseconds().count()));
  return buf;
}

namespace {

// Reads exactly `n` digits at `pos`; false when they are not all digits.
bool read_digits(std::string_view text, size_t& pos, size_t n, int& value) {
  if (pos + n > text.size()) return false;
  value = 0;
  for (size_t i = 0; i < n; ++i) {
    const char c = text[pos + i];
    if (c < '0' || c > '9') return false;
    value = value * 10 + (c - '0');
  }
  pos += n;
  return true;
}

bool expect(std::string_view text, size_t& pos, char c) {
  if (pos >= text.size() || text[pos] != c) return false;
  ++pos;
  return true;
}

}  // namespace

std::chrono::system_clock::time_point parse_iso_date(std::string_view text) {
  using namespace std::chrono;
  auto fail = [&]() -> Error {
    return Error(ErrorCode::kInvalidArgument,
                 "'" + std::string(text) + "' is not an ISO date (YYYY-MM-DDTHH:mm:ss.sssZ)");
  };
  size_t pos = 0;
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0, ms = 0;
  if (!text.empty() && (text[0] == '+' || text[0] == '-')) {
    const bool negative = text[0] == '-';
    pos = 1;
    if (!read_digits(text, pos, 6, y)) throw fail();
    if (negative) y = -y;
  } else if (!read_digits(text, pos, 4, y)) {
    throw fail();
  }
  if (!expect(text, pos, '-') || !read_digits(text, pos, 2, mo) || !expect(text, pos, '-') ||
      !read_digits(text, pos, 2, d)) {
    throw fail();
  }
  int offset_minutes = 0;
  if (pos < text.size()) {
    if (!expect(text, pos, 'T') || !read_digits(text, pos, 2, h) || !expect(text, pos, ':') ||
        !read_digits(text, pos, 2, mi)) {
      throw fail();
    }
    if (pos < text.size() && text[pos] == ':') {
      ++pos;
      if (!read_digits(text, pos, 2, s)) throw fail();
      if (pos < text.size() && text[pos] == '.') {
        ++pos;
        size_t digits = 0;
        int scale = 100;
        while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
          if (digits < 3) {
            ms += (text[pos] - '0') * scale;
            scale /= 10;
          }
          ++digits;
          ++pos;
        }
        if (digits == 0) throw fail();
      }
    }
    if (pos < text.size() && text[pos] == 'Z') {
      ++pos;
    } else if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) {
      const int sign = text[pos] == '-' ? -1 : 1;
      ++pos;
      int oh = 0, om = 0;
      if (!read_digits(text, pos, 2, oh) || !expect(text, pos, ':') ||
          !read_digits(text, pos, 2, om) || oh > 23 || om > 59) {
        throw fail();
      }
      offset_minutes = sign * (oh * 60 + om);
    } else {
      throw fail();
    }
    if (pos != text.size()) throw fail();
  }
  const year_month_day ymd{year{y}, month{static_cast<unsigned>(mo)},
                           day{static_cast<unsigned>(d)}};
  if (!ymd.ok() || h > 24 || mi > 59 || s > 59 || (h == 24 && (mi != 0 || s != 0 || ms != 0))) {
    throw fail();
  }
  return time_point_cast<system_clock::duration>(sys_days{ymd} + hours{h} + minutes{mi} +
                                                 seconds{s} + milliseconds{ms} -
                                                 minutes{offset_minutes});
}

}  // namespace stowage
