// The server's view of its store (any stowage URL): saving, removing and
// listing models through the registry, and the files of a stored model for
// GET requests.
//
// How a model is served: from a file:// store, model.json and the weight
// files it names are sent as stored, straight from the model's folder
// (mmapped; entity tags from inode, size and mtime). From any other store
// the model is loaded through its plugin and served as model.json written
// in TF.js's http layout plus its weight files: the stored shards when the
// store keeps files (a manifest comes back), else one "model.weights.bin"
// (entity tags are content digests). Loaded models are kept for
// `cache_ttl` so the shard requests that follow a model.json request do
// not load it again; this server's own saves and removals drop them at once.
//
// Weight files are served with their SHA-256 (Resource::sha256): the one
// model.json records, else computed on first request and kept per file
// version. Saves record digests (option "integrity": "sha256") unless the
// store's options say "integrity": "none".
//
// Thread-safety: every member may be called from several threads at once.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "resource_internal.hpp"
#include "stowage/handler.hpp"
#include "stowage/registry.hpp"

namespace stowage::serve {

struct StoredModel {
  std::string name;
  ModelArtifactsInfo info;
};

class ModelStore {
 public:
  // store_url: e.g. file:///srv/models (relative file:// paths are made
  // absolute now), memory://, s3://bucket/prefix?endpoint=...; names are
  // joined onto its path, its query stays at the end. store_options: the
  // options JSON for every handler opened on it. Opens a handler on the
  // store's URL, so an unknown scheme (Error(kNotFound)) or an option the
  // plugin refuses (Error(kInvalidArgument)) is reported here. A file://
  // folder that does not exist is Error(kNotFound) unless `create`, which
  // makes it (created() then says so).
  ModelStore(std::string_view store_url, std::string store_options, Registry& registry,
             std::chrono::milliseconds cache_ttl, bool create = false);
  ~ModelStore();
  ModelStore(const ModelStore&) = delete;
  ModelStore& operator=(const ModelStore&) = delete;

  const std::string& url() const { return url_; }
  // True when the constructor made the file:// folder.
  bool created() const { return created_; }
  // True when saves record weight-file digests: the store's options set
  // "integrity" to "sha256", or leave it out (serve's default) and the
  // store's plugin takes that option.
  bool records_digests() const { return records_digests_; }
  // The stowage URL of model `name` (already checked with check_model_name).
  std::string model_url(std::string_view name) const;

  // Throw Error(kNotFound) when there is no such model or file.
  Resource model_json(const std::string& name, const CallContext& call = {});
  Resource weights_file(const std::string& name, const std::string& file,
                        const CallContext& call = {});

  // Saves atomically through the store's plugin.
  SaveResult save(const std::string& name, const ModelArtifacts& artifacts,
                  const CallContext& call = {});
  ModelArtifactsInfo remove(const std::string& name);
  // Every model under the store, by name, sorted.
  std::vector<StoredModel> list();
  // Whether the store answers, for a readiness check: a listing when its
  // plugin can list (the number of models it holds comes back), else a
  // stat of the store's URL, where "no model there" is an answer too, else
  // nothing beyond opening a handler (nullopt then and after a stat).
  // Throws what the store threw.
  std::optional<size_t> probe(const CallContext& call);

  // message with the store's location replaced by "<store>", for clients.
  std::string redact(std::string_view message) const;

 private:
  struct Rendered;
  struct FileManifest;
  std::shared_ptr<Rendered> rendered(const std::string& name, const CallContext& call);
  // The models of a listing reachable as /models/<name>, sorted.
  std::vector<StoredModel> named(const std::vector<ListedModel>& listed) const;
  void forget(const std::string& name);

  std::string url_;
  std::string url_path_;    // url_ without its query and fragment
  std::string url_suffix_;  // "?query#fragment" of url_, or ""
  std::string options_;
  std::string save_options_;  // options_ with serve's default integrity
  Registry& registry_;
  std::chrono::milliseconds cache_ttl_;
  std::string file_root_;  // set for file:// stores
  bool created_ = false;
  bool records_digests_ = false;
  struct Cache;
  std::unique_ptr<Cache> cache_;
};

}  // namespace stowage::serve
