// The helpers every conformance case uses: URLs, promise checks, models.
#include <rapidjson/document.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>

#include "conformance_internal.hpp"
#include "stowage/model_json.hpp"

namespace stowage::conformance {

namespace fs = std::filesystem;

const std::vector<std::string>& Target::capabilities() const {
  for (size_t i = 0; i < info.schemes.size() && i < info.scheme_capabilities.size(); ++i) {
    if (info.schemes[i] == scheme) return info.scheme_capabilities[i];
  }
  return info.capabilities;
}

bool Target::has(const std::string& capability) const {
  const std::vector<std::string>& caps = capabilities();
  return std::find(caps.begin(), caps.end(), capability) != caps.end();
}

Target& target() {
  static Target t;
  return t;
}

std::string child(const std::string& base, const std::string& name) {
  if (!base.empty() && (base.back() == '/' || base.back() == '#')) return base + name;
  return base + "/" + name;
}

std::string fresh(const std::string& what) {
  static std::atomic<int> n{0};
  return child(target().run_root, what + "-" + std::to_string(n.fetch_add(1)));
}

std::unique_ptr<IOHandler> open(const std::string& url) {
  return target().registry->open(url, target().options);
}

void broken(const std::string& promise, const std::string& detail) {
  FAIL("BROKEN PROMISE: " << promise << "\n  " << detail);
  std::terminate();  // not reached: FAIL throws
}

void broken_check(const std::string& promise, const std::string& detail) {
  FAIL_CHECK("BROKEN PROMISE: " << promise << "\n  " << detail);
}

std::string code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk:
      return "OK";
    case ErrorCode::kNotFound:
      return "NOT_FOUND";
    case ErrorCode::kInvalidArgument:
      return "INVALID_ARGUMENT";
    case ErrorCode::kAlreadyExists:
      return "ALREADY_EXISTS";
    case ErrorCode::kPermissionDenied:
      return "PERMISSION_DENIED";
    case ErrorCode::kUnavailable:
      return "UNAVAILABLE";
    case ErrorCode::kDataLoss:
      return "DATA_LOSS";
    case ErrorCode::kResourceExhausted:
      return "RESOURCE_EXHAUSTED";
    case ErrorCode::kCancelled:
      return "CANCELLED";
    case ErrorCode::kDeadlineExceeded:
      return "DEADLINE_EXCEEDED";
    case ErrorCode::kUnimplemented:
      return "UNIMPLEMENTED";
    case ErrorCode::kInternal:
      return "INTERNAL";
  }
  return "code " + std::to_string(static_cast<int>(code));
}

std::string describe(const std::exception& e) {
  if (const auto* err = dynamic_cast<const Error*>(&e)) {
    return code_name(err->code()) + ": " + err->what();
  }
  return std::string("a C++ exception (") + e.what() + ")";
}

std::string describe(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return describe(x);
  } catch (...) {
    return "an exception of unknown type";
  }
}

namespace detail {
std::string codes_text(std::initializer_list<ErrorCode> codes) {
  std::string out;
  for (ErrorCode c : codes) {
    if (!out.empty()) out += " or ";
    out += code_name(c);
  }
  return out;
}
bool one_of(ErrorCode code, std::initializer_list<ErrorCode> codes) {
  return std::find(codes.begin(), codes.end(), code) != codes.end();
}
}  // namespace detail

// ---- Models ---------------------------------------------------------------

namespace {

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw Error(ErrorCode::kNotFound, "cannot read golden file " + p.string());
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

Golden read_golden(const fs::path& folder, const std::string& id, const std::string& model_json,
                   const std::string& description) {
  const fs::path file = folder / model_json;
  Golden g{id, description, parse_model_json(read_file(file), file.string())};
  WeightData data;
  for (const WeightGroup& group : g.artifacts.weights_manifest.value_or(WeightsManifest{})) {
    for (const std::string& path : group.paths) {
      fs::path shard = file.parent_path() / path;
      data.push_back(Buffer::from_string(read_file(shard), shard.string()));
    }
  }
  if (g.artifacts.weights_manifest) g.artifacts.weight_data = std::move(data);
  return g;
}

}  // namespace

const std::vector<Golden>& goldens() {
  static const std::vector<Golden> all = [] {
    const fs::path folder = target().fixtures;
    rapidjson::Document index;
    const std::string text = read_file(folder / "index.json");
    index.Parse(text.c_str(), text.size());
    if (index.HasParseError() || !index.IsObject() || !index.HasMember("models")) {
      throw Error(ErrorCode::kInvalidArgument, (folder / "index.json").string() + " is not valid");
    }
    std::vector<Golden> out;
    for (const auto& m : index["models"].GetArray()) {
      out.push_back(read_golden(folder, m["id"].GetString(), m["model_json"].GetString(),
                                m["description"].GetString()));
    }
    return out;
  }();
  return all;
}

ModelArtifacts small_model(uint32_t seed, size_t floats, size_t pieces) {
  ModelArtifacts a;
  a.model_topology = R"({"class_name":"Sequential","config":{"name":"conformance_)" +
                     std::to_string(seed) +
                     R"(","layers":[]},"keras_version":"tfjs-layers 4.22.0"})";
  a.format = "layers-model";
  a.generated_by = "TensorFlow.js tfjs-layers v4.22.0";
  a.converted_by = NullableString::null();
  a.user_defined_metadata = R"({"seed":)" + std::to_string(seed) + "}";
  a.weight_specs = std::vector<WeightSpec>{
      WeightSpec{"dense/kernel", {static_cast<int64_t>(floats)}, "float32", {}, {}},
      WeightSpec{"dense/step", {}, "int32", {}, {}}};
  std::vector<uint8_t> bytes(floats * 4 + 4);
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < floats; ++i) {
    x = x * 1664525u + 1013904223u;
    float f = static_cast<float>(x >> 8) / 16777216.0f - 0.5f;
    std::memcpy(&bytes[i * 4], &f, 4);
  }
  std::memcpy(&bytes[floats * 4], &seed, 4);
  WeightData data;
  const size_t n = std::max<size_t>(pieces, 1);
  size_t at = 0;
  for (size_t i = 0; i < n; ++i) {
    // Cuts at odd offsets, so tensors span the buffers.
    size_t end = i + 1 == n ? bytes.size() : std::min(bytes.size(), (i + 1) * bytes.size() / n + 1);
    data.push_back(Buffer::copy_of({bytes.data() + at, end - at}));
    at = end;
  }
  a.weight_data = std::move(data);
  return a;
}

std::string weight_bytes(const ModelArtifacts& artifacts) {
  std::string out;
  if (artifacts.weight_data) {
    for (const Buffer& b : *artifacts.weight_data) out.append(b.view());
  }
  return out;
}

std::vector<WeightSpec> all_specs(const ModelArtifacts& artifacts) {
  if (artifacts.weights_manifest) return flatten_specs(*artifacts.weights_manifest);
  return artifacts.weight_specs.value_or(std::vector<WeightSpec>{});
}

namespace {

std::string shown(const std::optional<std::string>& v) {
  if (!v) return "(absent)";
  if (v->size() > 120) return v->substr(0, 117) + "...";
  return *v;
}
std::string shown(const NullableString& v) {
  if (!v.present()) return "(absent)";
  if (v.is_null()) return "null";
  return "\"" + v.value() + "\"";
}

}  // namespace

std::string difference(const ModelArtifacts& saved, const ModelArtifacts& loaded) {
  struct Field {
    const char* name;
    const std::optional<std::string>& a;
    const std::optional<std::string>& b;
  };
  const Field fields[] = {
      {"modelTopology", saved.model_topology, loaded.model_topology},
      {"trainingConfig", saved.training_config, loaded.training_config},
      {"userDefinedMetadata", saved.user_defined_metadata, loaded.user_defined_metadata},
      {"signature", saved.signature, loaded.signature},
      {"modelInitializer", saved.model_initializer, loaded.model_initializer},
      {"initializerSignature", saved.initializer_signature, loaded.initializer_signature},
  };
  for (const Field& f : fields) {
    if (f.a != f.b) {
      return std::string(f.name) + " differs: saved " + shown(f.a) + ", loaded " + shown(f.b);
    }
  }
  struct Text {
    const char* name;
    const NullableString& a;
    const NullableString& b;
  };
  const Text texts[] = {{"format", saved.format, loaded.format},
                        {"generatedBy", saved.generated_by, loaded.generated_by},
                        {"convertedBy", saved.converted_by, loaded.converted_by}};
  for (const Text& t : texts) {
    if (t.a != t.b) {
      return std::string(t.name) + " differs: saved " + shown(t.a) + ", loaded " + shown(t.b);
    }
  }
  std::vector<WeightSpec> a = all_specs(saved), b = all_specs(loaded);
  if (a != b) {
    return "the weight specs differ: saved " + specs_to_json(a) + ", loaded " + specs_to_json(b);
  }
  std::string x = weight_bytes(saved), y = weight_bytes(loaded);
  if (x.size() != y.size()) {
    return "the weight data differs: saved " + std::to_string(x.size()) + " bytes, loaded " +
           std::to_string(y.size());
  }
  auto [p, q] = std::mismatch(x.begin(), x.end(), y.begin());
  if (p != x.end()) {
    return "the weight data differs from byte " + std::to_string(p - x.begin()) + " of " +
           std::to_string(x.size());
  }
  return {};
}

void round_trip(const std::string& url, const ModelArtifacts& model, const std::string& promise) {
  must(promise + " (save)", [&] { open(url)->save(model); });
  ModelArtifacts loaded = must(promise + " (load)", [&] { return open(url)->load(); });
  std::string diff = difference(model, loaded);
  if (!diff.empty()) broken(promise, "at " + url + ": " + diff);
}

std::vector<ListedModel> list_models_at(const std::string& url) {
  return must("list of " + url + " succeeds (abi.h: list)", [&] { return open(url)->list(); });
}

TempDir::TempDir() {
  std::string tmpl = (fs::temp_directory_path() / "stowage-conformance-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) {
    throw Error(ErrorCode::kInternal, "cannot make a temporary folder: " + tmpl);
  }
  path = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path, ec);
}

}  // namespace stowage::conformance
