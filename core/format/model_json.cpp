#include "stowage/model_json.hpp"

#include <cmath>
#include <limits>

#include "json_internal.hpp"
#include "stowage/digest.hpp"
#include "stowage/error.hpp"

namespace stowage {
namespace {

using json_internal::append_number;
using json_internal::append_quoted;
using json_internal::describe;
using json_internal::view_of;
using rapidjson::Value;

// ---------------------------------------------------------------- writing

void append_spec(std::string& out, const WeightSpec& spec) {
  out += "{\"name\":";
  append_quoted(out, spec.name);
  out += ",\"shape\":[";
  for (size_t i = 0; i < spec.shape.size(); ++i) {
    if (i != 0) out += ',';
    // JS holds dims as doubles; beyond 2^53 this is what it would print.
    append_number(out, static_cast<double>(spec.shape[i]));
  }
  out += "],\"dtype\":";
  append_quoted(out, spec.dtype);
  if (spec.group) {
    out += ",\"group\":";
    append_quoted(out, *spec.group);
  }
  if (spec.quantization) {
    const Quantization& q = *spec.quantization;
    out += ",\"quantization\":{\"dtype\":";
    append_quoted(out, q.dtype);
    if (q.min) {
      out += ",\"min\":";
      append_number(out, *q.min);
    }
    if (q.scale) {
      out += ",\"scale\":";
      append_number(out, *q.scale);
    }
    if (q.original_dtype) {
      out += ",\"original_dtype\":";
      append_quoted(out, *q.original_dtype);
    }
    out += '}';
  }
  out += '}';
}

void append_specs(std::string& out, const std::vector<WeightSpec>& specs) {
  out += '[';
  for (size_t i = 0; i < specs.size(); ++i) {
    if (i != 0) out += ',';
    append_spec(out, specs[i]);
  }
  out += ']';
}

void append_manifest(std::string& out, const WeightsManifest& manifest) {
  out += '[';
  for (size_t g = 0; g < manifest.size(); ++g) {
    if (g != 0) out += ',';
    out += "{\"paths\":[";
    for (size_t i = 0; i < manifest[g].paths.size(); ++i) {
      if (i != 0) out += ',';
      append_quoted(out, manifest[g].paths[i]);
    }
    out += "],\"weights\":";
    append_specs(out, manifest[g].weights);
    // After "weights": every key TF.js writes keeps its place and bytes.
    if (manifest[g].sha256) {
      out += ",\"sha256\":[";
      for (size_t i = 0; i < manifest[g].sha256->size(); ++i) {
        if (i != 0) out += ',';
        append_quoted(out, (*manifest[g].sha256)[i]);
      }
      out += ']';
    }
    out += '}';
  }
  out += ']';
}

// Writes objects key by key, with the comma bookkeeping in one place.
class ObjectWriter {
 public:
  explicit ObjectWriter(std::string& out) : out_(out) { out_ += '{'; }
  void raw(std::string_view key, std::string_view json) {
    open(key);
    out_ += json;
  }
  void field(std::string_view key, const std::optional<std::string>& json) {
    if (json) raw(key, *json);
  }
  void nullable(std::string_view key, const NullableString& s) {
    if (!s.present()) return;
    open(key);
    if (s.is_null()) {
      out_ += "null";
    } else {
      append_quoted(out_, s.value());
    }
  }
  std::string& open(std::string_view key) {
    if (!first_) out_ += ',';
    first_ = false;
    append_quoted(out_, key);
    out_ += ':';
    return out_;
  }
  void close() { out_ += '}'; }

 private:
  std::string& out_;
  bool first_ = true;
};

// ---------------------------------------------------------------- reading

// What an error message names: the source and a key path such as
// weightsManifest[0].weights[2].shape.
class Reader {
 public:
  explicit Reader(std::string_view source) : source_(source) {}

  [[noreturn]] void fail(const std::string& path, const std::string& what) const {
    throw Error(ErrorCode::kInvalidArgument, std::string(source_) + ": " + path + " " + what);
  }

  // JSON.parse keeps the last of repeated keys.
  static const Value* find(const Value& object, std::string_view key) {
    const Value* found = nullptr;
    for (auto it = object.MemberBegin(); it != object.MemberEnd(); ++it) {
      if (view_of(it->name) == key) found = &it->value;
    }
    return found;
  }

  static std::string at(const std::string& path, size_t index) {
    return path + "[" + std::to_string(index) + "]";
  }

  std::string string(const Value& v, const std::string& path) const {
    if (!v.IsString()) fail(path, std::string("must be a string, not ") + describe(v));
    return std::string(view_of(v));
  }

  std::optional<std::string> optional_string(const Value& object, std::string_view key,
                                             const std::string& path) const {
    const Value* v = find(object, key);
    if (v == nullptr || v->IsNull()) return std::nullopt;
    return string(*v, path + "." + std::string(key));
  }

  NullableString nullable_string(const Value& object, std::string_view key) const {
    const Value* v = find(object, key);
    if (v == nullptr) return {};
    if (v->IsNull()) return NullableString::null();
    return NullableString(string(*v, std::string(key)));
  }

  // An object-valued artifact field, kept as JSON.stringify text.
  std::optional<std::string> json_object(const Value& object, std::string_view key) const {
    const Value* v = find(object, key);
    if (v == nullptr || v->IsNull()) return std::nullopt;
    if (!v->IsObject()) {
      fail(std::string(key), std::string("must be a JSON object, not ") + describe(*v));
    }
    return json_internal::stringify(*v);
  }

  std::vector<int64_t> shape(const Value& v, const std::string& path) const {
    if (!v.IsArray()) fail(path, std::string("must be an array of dimensions, not ") + describe(v));
    std::vector<int64_t> dims;
    dims.reserve(v.Size());
    for (rapidjson::SizeType i = 0; i < v.Size(); ++i) {
      const Value& d = v[i];
      const std::string where = at(path, i);
      if (!d.IsNumber()) fail(where, std::string("must be a number, not ") + describe(d));
      const double x = d.GetDouble();
      if (!std::isfinite(x) || x != std::floor(x)) {
        fail(where, "must be a whole number, not " + json_internal::stringify(d));
      }
      if (x < 0) fail(where, "must not be negative, but is " + json::number(x));
      if (x >= 9223372036854775808.0) fail(where, "is too large: " + json::number(x));
      dims.push_back(static_cast<int64_t>(x));
    }
    return dims;
  }

  std::optional<double> optional_number(const Value& object, std::string_view key,
                                        const std::string& path) const {
    const Value* v = find(object, key);
    if (v == nullptr) return std::nullopt;
    // The converter writes a NaN scale or min as NaN, which JSON.stringify
    // turns into null on the next save; reading null back as NaN keeps
    // such a model loadable and rewrites it byte for byte.
    if (v->IsNull()) return std::numeric_limits<double>::quiet_NaN();
    if (!v->IsNumber()) {
      fail(path + "." + std::string(key), std::string("must be a number, not ") + describe(*v));
    }
    return v->GetDouble();
  }

  Quantization quantization(const Value& v, const std::string& path) const {
    if (v.IsNull()) {
      fail(path,
           "is null; a weight stored without quantization must not have the key (TF.js "
           "cannot decode it)");
    }
    if (!v.IsObject()) fail(path, std::string("must be an object, not ") + describe(v));
    Quantization q;
    const Value* dtype = find(v, "dtype");
    if (dtype == nullptr) fail(path + ".dtype", "is missing");
    q.dtype = string(*dtype, path + ".dtype");
    q.scale = optional_number(v, "scale", path);
    q.min = optional_number(v, "min", path);
    q.original_dtype = optional_string(v, "original_dtype", path);
    return q;
  }

  WeightSpec spec(const Value& v, const std::string& path) const {
    if (!v.IsObject()) fail(path, std::string("must be an object, not ") + describe(v));
    WeightSpec s;
    const Value* name = find(v, "name");
    if (name == nullptr) fail(path + ".name", "is missing");
    s.name = string(*name, path + ".name");
    const Value* shape_value = find(v, "shape");
    if (shape_value == nullptr) fail(path + ".shape", "is missing");
    s.shape = shape(*shape_value, path + ".shape");
    const Value* dtype = find(v, "dtype");
    if (dtype == nullptr) fail(path + ".dtype", "is missing");
    // Unknown dtypes are kept: decoding refuses them with TF.js's message.
    s.dtype = string(*dtype, path + ".dtype");
    s.group = optional_string(v, "group", path);
    if (const Value* q = find(v, "quantization"))
      s.quantization = quantization(*q, path + ".quantization");
    return s;
  }

  std::vector<WeightSpec> specs(const Value& v, const std::string& path) const {
    if (!v.IsArray()) fail(path, std::string("must be an array, not ") + describe(v));
    std::vector<WeightSpec> out;
    out.reserve(v.Size());
    for (rapidjson::SizeType i = 0; i < v.Size(); ++i) out.push_back(spec(v[i], at(path, i)));
    return out;
  }

  // Weight paths come from untrusted files and are resolved against the
  // model's folder or URL; anything that could leave it is refused.
  void check_path(const std::string& p, const std::string& where) const {
    auto refuse = [&](const char* why) {
      throw Error(ErrorCode::kInvalidArgument, std::string(source_) + ": weight path " +
                                                   json::quote(p) + " at " + where +
                                                   " is refused: " + why);
    };
    if (p.empty()) refuse("it is empty");
    if (p.find('\0') != std::string::npos) refuse("it contains a NUL character");
    if (p.find('\\') != std::string::npos) refuse("it contains a backslash");
    if (p.find("://") != std::string::npos) refuse("it is a URL, not a relative path");
    if (p.front() == '/') refuse("it is absolute");
    size_t start = 0;
    while (start <= p.size()) {
      size_t end = p.find('/', start);
      if (end == std::string::npos) end = p.size();
      std::string segment = p.substr(start, end - start);
      for (char& c : segment) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      // URL resolution treats %2e as a dot, so ".%2e" is ".." too.
      if (segment == ".." || segment == ".%2e" || segment == "%2e." || segment == "%2e%2e") {
        refuse("it contains a '..' segment");
      }
      // %2f and %5c stay data (RFC 3986 2.2; fetch never decodes them), so
      // "..%5c..%5cm" names a folder inside this one: a server stores a
      // model at such a name and writes it so (conformance: hostile names).
      start = end + 1;
    }
  }

  // One digest per path, in path order (docs/integrity.md).
  std::vector<std::string> sha256_list(const Value& v, size_t path_count,
                                       const std::string& path) const {
    if (!v.IsArray()) {
      fail(path, std::string("must be an array of SHA-256 digests, one for each path, not ") +
                     describe(v));
    }
    if (v.Size() != path_count) {
      fail(path, "has " + std::to_string(v.Size()) + " digest(s) but the group has " +
                     std::to_string(path_count) + " path(s); it needs one digest per path");
    }
    std::vector<std::string> out;
    out.reserve(v.Size());
    for (rapidjson::SizeType i = 0; i < v.Size(); ++i) {
      const std::string where = at(path, i);
      out.push_back(string(v[i], where));
      if (!is_sha256_hex(out.back())) {
        const std::string& bad = out.back();
        fail(where,
             "must be a SHA-256 digest of 64 lowercase hex digits, not " +
                 (bad.size() <= 80 ? json::quote(bad)
                                   : "a string of " + std::to_string(bad.size()) + " bytes"));
      }
    }
    return out;
  }

  WeightsManifest manifest(const Value& v, const std::string& path) const {
    if (!v.IsArray())
      fail(path, std::string("must be an array of weight groups, not ") + describe(v));
    WeightsManifest out;
    out.reserve(v.Size());
    for (rapidjson::SizeType g = 0; g < v.Size(); ++g) {
      const Value& group = v[g];
      const std::string gpath = at(path, g);
      if (!group.IsObject()) fail(gpath, std::string("must be an object, not ") + describe(group));
      WeightGroup wg;
      const Value* paths = find(group, "paths");
      if (paths == nullptr) fail(gpath + ".paths", "is missing");
      if (!paths->IsArray()) {
        fail(gpath + ".paths", std::string("must be an array of strings, not ") + describe(*paths));
      }
      for (rapidjson::SizeType i = 0; i < paths->Size(); ++i) {
        const std::string ppath = at(gpath + ".paths", i);
        wg.paths.push_back(string((*paths)[i], ppath));
        check_path(wg.paths.back(), ppath);
      }
      const Value* weights = find(group, "weights");
      if (weights == nullptr) fail(gpath + ".weights", "is missing");
      wg.weights = specs(*weights, gpath + ".weights");
      const Value* digests = find(group, "sha256");
      if (digests != nullptr && !digests->IsNull()) {
        wg.sha256 = sha256_list(*digests, wg.paths.size(), gpath + ".sha256");
      }
      out.push_back(std::move(wg));
    }
    return out;
  }

 private:
  std::string_view source_;
};

}  // namespace

ModelArtifacts parse_model_json(std::string_view text, std::string_view source) {
  const rapidjson::Document doc = json_internal::parse(text, source);
  const Reader r(source);
  if (!doc.IsObject()) {
    throw Error(ErrorCode::kInvalidArgument,
                std::string(source) + ": model.json must be a JSON object, not " + describe(doc));
  }
  ModelArtifacts a;
  a.model_topology = r.json_object(doc, "modelTopology");
  a.format = r.nullable_string(doc, "format");
  a.generated_by = r.nullable_string(doc, "generatedBy");
  a.converted_by = r.nullable_string(doc, "convertedBy");
  a.training_config = r.json_object(doc, "trainingConfig");
  a.user_defined_metadata = r.json_object(doc, "userDefinedMetadata");
  a.signature = r.json_object(doc, "signature");
  a.model_initializer = r.json_object(doc, "modelInitializer");
  a.initializer_signature = r.json_object(doc, "initializerSignature");
  const Value* manifest = Reader::find(doc, "weightsManifest");
  if (manifest != nullptr && !manifest->IsNull()) {
    a.weights_manifest = r.manifest(*manifest, "weightsManifest");
  }
  const Value* specs = Reader::find(doc, "weightSpecs");
  if (specs != nullptr && !specs->IsNull()) {
    a.weight_specs = r.specs(*specs, "weightSpecs");
    // Compared as JSON text, where a NaN equals itself.
    if (a.weights_manifest &&
        specs_to_json(*a.weight_specs) != specs_to_json(flatten_specs(*a.weights_manifest))) {
      throw Error(
          ErrorCode::kInvalidArgument,
          std::string(source) + ": weightSpecs differs from the weights listed in weightsManifest");
    }
  } else if (a.weights_manifest) {
    a.weight_specs = flatten_specs(*a.weights_manifest);
  }
  return a;
}

std::string write_model_json(const ModelArtifacts& a, const WeightsManifest& manifest,
                             ModelJsonLayout layout) {
  std::string out;
  out.reserve((a.model_topology ? a.model_topology->size() : 0) + 256);
  ObjectWriter w(out);
  switch (layout) {
    case ModelJsonLayout::kTfjsNode:
      w.field("modelTopology", a.model_topology);
      append_manifest(w.open("weightsManifest"), manifest);
      w.nullable("format", a.format);
      w.nullable("generatedBy", a.generated_by);
      w.nullable("convertedBy", a.converted_by);
      w.field("trainingConfig", a.training_config);
      w.field("signature", a.signature);
      w.field("userDefinedMetadata", a.user_defined_metadata);
      // tfjs-node loses these two (bug B2); keeping them at the end leaves
      // every model tfjs-node can write byte-identical.
      w.field("modelInitializer", a.model_initializer);
      w.field("initializerSignature", a.initializer_signature);
      break;
    case ModelJsonLayout::kTfjsHttp:
      w.field("modelTopology", a.model_topology);
      w.nullable("format", a.format);
      w.nullable("generatedBy", a.generated_by);
      w.nullable("convertedBy", a.converted_by);
      append_manifest(w.open("weightsManifest"), manifest);
      w.field("signature", a.signature);
      w.field("userDefinedMetadata", a.user_defined_metadata);
      w.field("modelInitializer", a.model_initializer);
      w.field("initializerSignature", a.initializer_signature);
      w.field("trainingConfig", a.training_config);
      break;
  }
  w.close();
  return out;
}

std::string artifacts_to_json(const ModelArtifacts& a) {
  std::string out;
  out.reserve((a.model_topology ? a.model_topology->size() : 0) + 256);
  ObjectWriter w(out);
  w.field("modelTopology", a.model_topology);
  w.nullable("format", a.format);
  w.nullable("generatedBy", a.generated_by);
  w.nullable("convertedBy", a.converted_by);
  w.field("trainingConfig", a.training_config);
  w.field("userDefinedMetadata", a.user_defined_metadata);
  w.field("signature", a.signature);
  w.field("modelInitializer", a.model_initializer);
  w.field("initializerSignature", a.initializer_signature);
  if (a.weight_specs) append_specs(w.open("weightSpecs"), *a.weight_specs);
  if (a.weights_manifest) append_manifest(w.open("weightsManifest"), *a.weights_manifest);
  w.close();
  return out;
}

std::string specs_to_json(const std::vector<WeightSpec>& specs) {
  std::string out;
  append_specs(out, specs);
  return out;
}

std::string manifest_to_json(const WeightsManifest& manifest) {
  std::string out;
  append_manifest(out, manifest);
  return out;
}

}  // namespace stowage
