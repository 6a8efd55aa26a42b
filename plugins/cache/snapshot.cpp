#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <string>

#include "snapshot_internal.hpp"
#include "stowage/artifacts.hpp"
#include "stowage/digest.hpp"
#include "stowage/error.hpp"

namespace stowage::cache {
namespace {

// The snapshot's own format number; a reader refuses one it does not know
// (it reads as a miss and is filled again).
constexpr int kSnapshotFormat = 1;

[[noreturn]] void bad(std::string_view source, const std::string& what) {
  throw Error(ErrorCode::kDataLoss,
              "Cache snapshot " + std::string(source) + " is not valid: " + what);
}

const rapidjson::Value& member(const rapidjson::Value& v, const char* name,
                               std::string_view source) {
  auto it = v.FindMember(name);
  if (it == v.MemberEnd()) bad(source, std::string("it lacks \"") + name + "\"");
  return it->value;
}

std::string string_member(const rapidjson::Value& v, const char* name, std::string_view source) {
  const rapidjson::Value& m = member(v, name, source);
  if (!m.IsString()) bad(source, std::string("\"") + name + "\" is not a string");
  return std::string(m.GetString(), m.GetStringLength());
}

}  // namespace

std::string snapshot_to_json(const Snapshot& s) {
  rapidjson::StringBuffer out;
  rapidjson::Writer<rapidjson::StringBuffer> w(out);
  auto str = [&w](std::string_view text) {
    w.String(text.data(), static_cast<rapidjson::SizeType>(text.size()));
  };
  w.StartObject();
  w.Key("format");
  w.Int(kSnapshotFormat);
  w.Key("url");
  str(s.url);
  w.Key("version");
  str(s.version);
  w.Key("fetched_at");
  str(iso_date(s.fetched_at));
  w.Key("validated_at");
  str(iso_date(s.validated_at));
  w.Key("artifacts");
  str(s.artifacts_json);
  w.Key("weight_data");
  w.Bool(s.has_weight_data);
  w.Key("files");
  w.StartArray();
  for (const CachedFile& f : s.files) {
    w.StartObject();
    w.Key("path");
    if (f.path) {
      str(*f.path);
    } else {
      w.Null();
    }
    w.Key("size");
    w.Uint64(f.size);
    w.Key("sha256");
    str(f.sha256);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return std::string(out.GetString(), out.GetSize());
}

Snapshot snapshot_from_json(std::string_view text, std::string_view source) {
  rapidjson::Document doc;
  doc.Parse(text.data(), text.size());
  if (doc.HasParseError() || !doc.IsObject()) bad(source, "not a JSON object");
  const rapidjson::Value& format = member(doc, "format", source);
  if (!format.IsInt() || format.GetInt() != kSnapshotFormat) {
    bad(source, "format is not " + std::to_string(kSnapshotFormat));
  }
  Snapshot s;
  s.url = string_member(doc, "url", source);
  s.version = string_member(doc, "version", source);
  try {
    s.fetched_at = parse_iso_date(string_member(doc, "fetched_at", source));
    s.validated_at = parse_iso_date(string_member(doc, "validated_at", source));
  } catch (const Error& e) {
    bad(source, e.what());
  }
  s.artifacts_json = string_member(doc, "artifacts", source);
  const rapidjson::Value& weight_data = member(doc, "weight_data", source);
  if (!weight_data.IsBool()) bad(source, "\"weight_data\" is not a boolean");
  s.has_weight_data = weight_data.GetBool();
  const rapidjson::Value& files = member(doc, "files", source);
  if (!files.IsArray()) bad(source, "\"files\" is not an array");
  for (const auto& f : files.GetArray()) {
    if (!f.IsObject()) bad(source, "a file entry is not an object");
    CachedFile c;
    const rapidjson::Value& path = member(f, "path", source);
    if (path.IsString()) {
      c.path = std::string(path.GetString(), path.GetStringLength());
    } else if (!path.IsNull()) {
      bad(source, "a file's \"path\" is neither a string nor null");
    }
    const rapidjson::Value& size = member(f, "size", source);
    if (!size.IsUint64()) bad(source, "a file's \"size\" is not a non-negative integer");
    c.size = size.GetUint64();
    c.sha256 = string_member(f, "sha256", source);
    if (!is_sha256_hex(c.sha256)) bad(source, "a file's \"sha256\" is not 64 lowercase hex digits");
    s.files.push_back(std::move(c));
  }
  return s;
}

}  // namespace stowage::cache
