#include <fcntl.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>

#include "routes_internal.hpp"
#include "store_internal.hpp"
#include "stowage/error.hpp"
#include "stowage/management.hpp"
#include "stowage/model_json.hpp"
#include "stowage/sharding.hpp"
#include "upload_internal.hpp"

namespace stowage::serve {
namespace {

constexpr size_t kMaxRendered = 16;
constexpr size_t kMaxManifests = 1024;
constexpr std::string_view kJsonType = "application/json";
constexpr std::string_view kBinaryType = "application/octet-stream";
constexpr std::string_view kOneFile = "model.weights.bin";
constexpr size_t kMaxComputedDigests = 4096;

bool valid_file_name(const std::string& file) {
  try {
    check_segment(file, "a weights file");
    return file != "model.json";
  } catch (const Error&) {
    return false;
  }
}

void replace_all(std::string& text, std::string_view from, std::string_view to) {
  if (from.empty()) return;
  for (size_t pos = text.find(from); pos != std::string::npos; pos = text.find(from, pos)) {
    text.replace(pos, from.size(), to);
    pos += to.size();
  }
}

// A weight file's resource finished with its digest: a digest-named file
// whose name agrees with its digest is immutable, and its entity tag is the
// digest.
void set_digest(Resource& r, const std::string& file, std::string sha256) {
  r.sha256 = std::move(sha256);
  const std::string_view prefix = content_address_prefix(file);
  if (!prefix.empty() && r.sha256.compare(0, prefix.size(), prefix) == 0) {
    r.caching = Caching::kImmutable;
    r.etag = "\"" + r.sha256 + "\"";
  }
}

// The store's options as a JSON object.
rapidjson::Document parse_options(const std::string& options) {
  rapidjson::Document doc;
  doc.Parse(options.data(), options.size());
  if (doc.HasParseError() || !doc.IsObject()) {
    throw Error(ErrorCode::kInvalidArgument, "the store's options are not a JSON object");
  }
  return doc;
}

std::string with_default_integrity(rapidjson::Document doc) {
  doc.AddMember("integrity", "sha256", doc.GetAllocator());
  rapidjson::StringBuffer out;
  rapidjson::Writer<rapidjson::StringBuffer> writer(out);
  doc.Accept(writer);
  return std::string(out.GetString(), out.GetSize());
}

bool names_unknown_integrity_option(const Error& e) {
  return e.code() == ErrorCode::kInvalidArgument &&
         std::string_view(e.what()).starts_with("Unknown option \"integrity\"");
}

}  // namespace

// A model of a store without files: model.json as TF.js's http writer
// writes it, and its weight files.
struct ModelStore::Rendered {
  Resource json;
  std::map<std::string, WeightData> files;
  std::map<std::string, std::string> recorded;  // file -> sha256 from the loaded manifest
  std::mutex mu;
  std::map<std::string, std::string> digests;  // file -> sha256, filled on first request
};

// The weight files one file:// model.json names, for the model.json with
// that entity tag.
struct ModelStore::FileManifest {
  std::string etag;
  std::set<std::string> files;
  std::map<std::string, std::string> digests;  // file -> sha256, where model.json records one
};

struct ModelStore::Cache {
  struct Entry {
    std::chrono::steady_clock::time_point loaded;
    std::shared_ptr<Rendered> model;
  };
  std::mutex mu;
  std::map<std::string, Entry> rendered;
  std::map<std::string, std::shared_ptr<const FileManifest>> manifests;
  // Digests computed for file:// weight files without a recorded one, by
  // "<model>/<file>", for the file version its entity tag names.
  std::map<std::string, std::pair<std::string, std::string>> computed;  // -> {etag, sha256}
};

ModelStore::ModelStore(std::string_view store_url, std::string store_options, Registry& registry,
                       std::chrono::milliseconds cache_ttl, bool create)
    : options_(std::move(store_options)),
      registry_(registry),
      cache_ttl_(cache_ttl),
      cache_(std::make_unique<Cache>()) {
  if (url_scheme(store_url) == "file") {
    std::filesystem::path root(std::string(store_url.substr(7)));
    if (root.empty()) root = ".";
    std::string abs = std::filesystem::absolute(root).lexically_normal().string();
    while (abs.size() > 1 && abs.back() == '/') abs.pop_back();
    file_root_ = abs;
    url_ = "file://" + abs;
  } else {
    url_ = std::string(store_url);
    // The query (s3's endpoint, an http token, ...) and fragment stay at
    // the end of every URL made from this one: names join onto the path.
    const size_t cut = url_.find_first_of("?#", url_.find("://") + 3);
    if (cut != std::string::npos) {
      url_suffix_ = url_.substr(cut);
      url_path_ = url_.substr(0, cut);
    } else {
      url_path_ = url_;
    }
  }
  if (url_path_.empty()) url_path_ = url_;

  // Checked before the server listens: a store it cannot use is an error
  // now, not a 404 on every request. Opening a handler resolves the scheme
  // (loading its plugin) and lets the plugin check the options, as every
  // request will.
  registry_.open(url_, options_);
  // Saves record digests by default (docs/integrity.md). A plugin built
  // before the "integrity" option refuses it as unknown: such a store
  // saves without digests, which records_digests() reports. memory:// keeps
  // its default ("none"): it holds the uploaded bytes in this process, where
  // nothing can rot, and is served in TF.js's one-file layout.
  save_options_ = options_;
  rapidjson::Document given = parse_options(options_);
  if (auto it = given.FindMember("integrity"); it != given.MemberEnd()) {
    records_digests_ = it->value.IsString() && std::string_view(it->value.GetString()) == "sha256";
  } else if (url_.starts_with("memory://")) {
    records_digests_ = false;
  } else {
    std::string with = with_default_integrity(std::move(given));
    try {
      registry_.open(url_, with);
      save_options_ = std::move(with);
      records_digests_ = true;
    } catch (const Error& e) {
      if (!names_unknown_integrity_option(e)) throw;
    }
  }
  if (!file_root_.empty()) {
    std::error_code ec;
    const auto status = std::filesystem::status(file_root_, ec);
    if (status.type() == std::filesystem::file_type::not_found) {
      if (!create) {
        throw Error(ErrorCode::kNotFound, "the store folder " + file_root_ +
                                              " does not exist (create it, or pass --create)");
      }
      std::filesystem::create_directories(file_root_, ec);
      if (ec) {
        throw Error(ec == std::errc::permission_denied ? ErrorCode::kPermissionDenied
                                                       : ErrorCode::kInternal,
                    "cannot create the store folder " + file_root_ + ": " + ec.message());
      }
      created_ = true;
    } else if (ec) {
      throw Error(
          ec == std::errc::permission_denied ? ErrorCode::kPermissionDenied : ErrorCode::kInternal,
          "cannot use the store folder " + file_root_ + ": " + ec.message());
    } else if (status.type() != std::filesystem::file_type::directory) {
      throw Error(ErrorCode::kInvalidArgument,
                  "the store " + file_root_ + " is not a folder (serve needs a folder of models)");
    }
  }
}

ModelStore::~ModelStore() = default;

std::string ModelStore::model_url(std::string_view name) const {
  std::string base = url_path_;
  if (base.size() < 3 || base.compare(base.size() - 3, 3, "://") != 0) {
    while (!base.empty() && base.back() == '/') base.pop_back();
    base += '/';
  }
  return base + std::string(name) + url_suffix_;
}

std::string ModelStore::redact(std::string_view message) const {
  std::string out(message);
  if (!file_root_.empty() && file_root_ != "/") {
    replace_all(out, "file://" + file_root_, "<store>");
    replace_all(out, file_root_, "<store>");
  } else {
    replace_all(out, url_, "<store>");
    replace_all(out, url_path_, "<store>");
  }
  return out;
}

void ModelStore::forget(const std::string& name) {
  std::lock_guard<std::mutex> lock(cache_->mu);
  cache_->rendered.erase(name);
}

std::shared_ptr<ModelStore::Rendered> ModelStore::rendered(const std::string& name,
                                                           const CallContext& call) {
  const auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard<std::mutex> lock(cache_->mu);
    auto it = cache_->rendered.find(name);
    if (it != cache_->rendered.end() && now - it->second.loaded < cache_ttl_) {
      return it->second.model;
    }
  }
  ModelArtifacts a = load_model(model_url(name), options_, call, registry_);
  auto r = std::make_shared<Rendered>();

  WeightsManifest manifest;
  bool as_stored = false;
  if (a.weights_manifest && a.weight_data) {
    size_t paths = 0;
    std::set<std::string> names;
    as_stored = true;
    for (const WeightGroup& group : *a.weights_manifest) {
      for (const std::string& path : group.paths) {
        ++paths;
        const std::string file = manifest_file_name(path);
        as_stored = as_stored && valid_file_name(file) && names.insert(file).second;
      }
    }
    as_stored = as_stored && paths == a.weight_data->size();
  }
  if (as_stored) {
    manifest = *a.weights_manifest;
    size_t i = 0;
    for (const WeightGroup& group : manifest) {
      for (size_t k = 0; k < group.paths.size(); ++k) {
        const std::string file = manifest_file_name(group.paths[k]);
        r->files[file] = {(*a.weight_data)[i++]};
        if (group.sha256) r->recorded[file] = (*group.sha256)[k];
      }
    }
  } else if (a.weight_specs) {
    manifest.push_back(WeightGroup{{std::string(kOneFile)}, *a.weight_specs});
    r->files[std::string(kOneFile)] = a.weight_data.value_or(WeightData{});
  }
  std::string json = write_model_json(a, manifest, ModelJsonLayout::kTfjsHttp);
  r->json.content_type = kJsonType;
  r->json.data.push_back(Buffer::from_string(std::move(json)));
  r->json.etag = "\"" + sha256_of(r->json.data).substr(0, 32) + "\"";
  r->json.caching = Caching::kShortLived;

  std::lock_guard<std::mutex> lock(cache_->mu);
  if (cache_->rendered.size() >= kMaxRendered) {
    auto oldest = cache_->rendered.begin();
    for (auto it = cache_->rendered.begin(); it != cache_->rendered.end(); ++it) {
      if (it->second.loaded < oldest->second.loaded) oldest = it;
    }
    cache_->rendered.erase(oldest);
  }
  if (cache_ttl_.count() > 0) cache_->rendered[name] = {now, r};
  return r;
}

Resource ModelStore::model_json(const std::string& name, const CallContext& call) {
  if (file_root_.empty()) return rendered(name, call)->json;
  const UniqueFd dir = open_folder(AT_FDCWD, file_root_ + "/" + name, "model '" + name + "'");
  Resource r = read_file_at(dir.get(), "model.json", "model.json of model '" + name + "'",
                            std::string(kJsonType));
  r.caching = Caching::kShortLived;
  return r;
}

Resource ModelStore::weights_file(const std::string& name, const std::string& file,
                                  const CallContext& call) {
  const std::string missing = "model '" + name + "' has no weights file '" + file + "'";
  if (file_root_.empty()) {
    std::shared_ptr<Rendered> r = rendered(name, call);
    auto it = r->files.find(file);
    if (it == r->files.end()) throw Error(ErrorCode::kNotFound, missing);
    Resource out;
    out.data = it->second;
    out.content_type = kBinaryType;
    std::string sha256;
    if (auto rec = r->recorded.find(file); rec != r->recorded.end()) {
      sha256 = rec->second;
    } else {
      std::lock_guard<std::mutex> lock(r->mu);
      std::string& computed = r->digests[file];
      if (computed.empty()) computed = sha256_of(out.data);
      sha256 = computed;
    }
    out.etag = "\"" + sha256.substr(0, 32) + "\"";
    set_digest(out, file, std::move(sha256));
    return out;
  }

  // Only the files model.json names are served: the folder may hold others.
  const UniqueFd dir = open_folder(AT_FDCWD, file_root_ + "/" + name, "model '" + name + "'");
  const Resource json = read_file_at(dir.get(), "model.json", "model.json of model '" + name + "'",
                                     std::string(kJsonType));
  std::shared_ptr<const FileManifest> manifest;
  {
    std::lock_guard<std::mutex> lock(cache_->mu);
    auto it = cache_->manifests.find(name);
    if (it != cache_->manifests.end() && it->second->etag == json.etag) manifest = it->second;
  }
  if (!manifest) {
    auto m = std::make_shared<FileManifest>();
    m->etag = json.etag;
    const Buffer text = join(json.data);
    const ModelArtifacts a = parse_model_json(text.view(), "model.json of model '" + name + "'");
    for (const WeightGroup& group : a.weights_manifest.value_or(WeightsManifest{})) {
      for (size_t k = 0; k < group.paths.size(); ++k) {
        const std::string file = manifest_file_name(group.paths[k]);
        m->files.insert(file);
        if (group.sha256) m->digests[file] = (*group.sha256)[k];
      }
    }
    manifest = m;
    std::lock_guard<std::mutex> lock(cache_->mu);
    if (cache_->manifests.size() >= kMaxManifests) cache_->manifests.clear();
    cache_->manifests[name] = m;
  }
  if (!manifest->files.count(file)) throw Error(ErrorCode::kNotFound, missing);
  Resource out =
      read_file_at(dir.get(), file, "weights file '" + file + "' of model '" + name + "'",
                   std::string(kBinaryType));
  // model.json's digest is what the file must hold: a client that checks
  // Repr-Digest then refuses a file that rotted on disk.
  if (auto rec = manifest->digests.find(file); rec != manifest->digests.end()) {
    set_digest(out, file, rec->second);
    return out;
  }
  const std::string key = name + "/" + file;
  {
    std::lock_guard<std::mutex> lock(cache_->mu);
    auto it = cache_->computed.find(key);
    if (it != cache_->computed.end() && it->second.first == out.etag) {
      set_digest(out, file, it->second.second);
      return out;
    }
  }
  std::string sha256 = sha256_of(out.data);
  {
    std::lock_guard<std::mutex> lock(cache_->mu);
    if (cache_->computed.size() >= kMaxComputedDigests) cache_->computed.clear();
    cache_->computed[key] = {out.etag, sha256};
  }
  set_digest(out, file, std::move(sha256));
  return out;
}

SaveResult ModelStore::save(const std::string& name, const ModelArtifacts& artifacts,
                            const CallContext& call) {
  SaveResult result = save_model(model_url(name), artifacts, save_options_, call, registry_);
  forget(name);
  return result;
}

ModelArtifactsInfo ModelStore::remove(const std::string& name) {
  const std::string url = model_url(name);
  forget(name);
  ModelArtifactsInfo info =
      options_ == "{}" ? remove_model(url, registry_) : registry_.open(url, options_)->remove();
  forget(name);
  return info;
}

std::vector<StoredModel> ModelStore::list() {
  return named(options_ == "{}" ? list_models(url_, registry_)
                                : registry_.open(url_, options_)->list());
}

std::optional<size_t> ModelStore::probe(const CallContext& call) {
  if (!file_root_.empty()) {
    // A file:// listing of a folder that is gone is empty, not an error.
    std::error_code ec;
    const auto status = std::filesystem::status(file_root_, ec);
    if (status.type() == std::filesystem::file_type::not_found) {
      throw Error(ErrorCode::kNotFound, "the store folder " + file_root_ + " does not exist");
    }
    if (ec || status.type() != std::filesystem::file_type::directory) {
      throw Error(ErrorCode::kUnavailable,
                  "cannot use the store folder " + file_root_ + ": " +
                      (ec ? ec.message() : std::string("it is not a folder")));
    }
  }
  const std::unique_ptr<IOHandler> handler = registry_.open(url_, options_);
  if (handler->can_list()) return named(handler->list(call)).size();
  if (handler->can_stat()) {
    try {
      handler->stat(call);
    } catch (const Error& e) {
      if (e.code() != ErrorCode::kNotFound) throw;
    }
  }
  return std::nullopt;
}

std::vector<StoredModel> ModelStore::named(const std::vector<ListedModel>& listed) const {
  std::string prefix = model_url("");
  prefix.resize(prefix.size() - url_suffix_.size());
  std::vector<StoredModel> out;
  for (const ListedModel& m : listed) {
    std::string_view rest(m.url);
    // A store that keeps the query on the URLs it lists (s3://) lists
    // "<path>/<name>?<query>".
    if (!url_suffix_.empty() && rest.ends_with(url_suffix_)) {
      rest.remove_suffix(url_suffix_.size());
    }
    if (rest.substr(0, prefix.size()) != prefix) continue;
    rest.remove_prefix(prefix.size());
    constexpr std::string_view kJson = "/model.json";
    if (rest.size() > kJson.size() && rest.substr(rest.size() - kJson.size()) == kJson) {
      rest.remove_suffix(kJson.size());
    }
    try {
      check_model_name(rest);
    } catch (const Error&) {
      continue;  // not reachable through /models/<name>
    }
    out.push_back(StoredModel{std::string(rest), m.info});
  }
  std::sort(out.begin(), out.end(),
            [](const StoredModel& a, const StoredModel& b) { return a.name < b.name; });
  return out;
}

}  // namespace stowage::serve
