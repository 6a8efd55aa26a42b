// memory:// — a process-wide store of named models that shares weight
// buffers instead of copying them.
//
// USAGE
//
//   memory://<name>   the model called <name>: any non-empty text after
//                     "://" (e.g. memory://mnist or memory://team/mnist-v2).
//
//   save    Keeps the artifacts and references to the caller's weight
//           buffers (no bytes are copied), replacing a model of that name
//           at once: a concurrent load gets the old model or the new one.
//           From a stream (a copy from another store, ABI 1.1) it keeps a
//           copy of each buffer's bytes instead: a streamed buffer belongs
//           to the copy's bounded queue, which must get its room back.
//   load    Hands back the same buffers (their data pointers are the saved
//           ones), described by a flat "weightSpecs", as TF.js's
//           passthrough handlers do.
//   list    memory:// lists every model; memory://<prefix> lists the model
//           <prefix> and those under "<prefix>/".
//   remove  Forgets the model; its buffers live on while anything uses them.
//   stat    The model without its buffers; the version is the save's
//           number, counted across the process, so it is never reused.
//
//   Options (a JSON object; any other key is refused):
//     "integrity"  "none" (default) or "sha256": the save hashes each weight
//                  buffer it keeps (as it takes it; a streamed one as it
//                  copies it) and loads describe the weights by a manifest
//                  of one group, one path "buffer-<i>" per kept buffer, with
//                  those digests, so the host's load check covers memory://
//                  too. The store keeps the caller's buffers, not copies: a
//                  caller that changes their bytes after the save makes
//                  every later load of the model fail with DATA_LOSS.
//
//   The store lives until the process ends; nothing is written anywhere.
#include <map>
#include <memory>
#include <mutex>

#include "stowage/digest.hpp"
#include "stowage/plugin.hpp"

namespace stowage::memory {
namespace {

using plugin::Call;
using plugin::Options;

struct StoredModel {
  ModelArtifacts artifacts;
  ModelArtifactsInfo info;
  uint64_t generation = 0;  // set by Store::put
};

// Thread-safety: every member is safe to call from several threads.
class Store {
 public:
  // Never destroyed: stored buffers may hold references into the host,
  // which must not be released while the process exits.
  static Store& instance() {
    static Store* store = new Store;
    return *store;
  }

  void put(const std::string& name, std::shared_ptr<StoredModel> model) {
    std::lock_guard<std::mutex> lock(mu_);
    model->generation = ++generations_;
    models_[name] = std::move(model);
  }

  std::shared_ptr<const StoredModel> get(const std::string& name) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = models_.find(name);
    return it == models_.end() ? nullptr : it->second;
  }

  std::shared_ptr<const StoredModel> erase(const std::string& name) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = models_.find(name);
    if (it == models_.end()) return nullptr;
    std::shared_ptr<const StoredModel> model = std::move(it->second);
    models_.erase(it);
    return model;
  }

  // Every model when prefix is empty; else the model named prefix and those
  // under "prefix/" (under prefix itself when it ends with '/').
  std::vector<std::pair<std::string, ModelArtifactsInfo>> list(const std::string& prefix) const {
    const std::string under = prefix.empty() || prefix.back() == '/' ? prefix : prefix + "/";
    std::vector<std::pair<std::string, ModelArtifactsInfo>> out;
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = models_.lower_bound(prefix); it != models_.end(); ++it) {
      if (!it->first.starts_with(prefix)) break;
      if (it->first == prefix || it->first.starts_with(under)) {
        out.emplace_back(it->first, it->second->info);
      }
    }
    return out;
  }

 private:
  mutable std::mutex mu_;
  uint64_t generations_ = 0;  // saves so far
  std::map<std::string, std::shared_ptr<const StoredModel>> models_;
};

class MemoryHandler final : public plugin::Handler {
 public:
  MemoryHandler(std::string_view url, Options& options)
      : Handler(url),
        name_(name_in(url)),
        integrity_(plugin::read_integrity(options, plugin::Integrity::kNone)) {}

  ModelArtifacts load(Call& call) override {
    call.check();
    std::shared_ptr<const StoredModel> model = Store::instance().get(named());
    if (!model) throw Error(ErrorCode::kNotFound, "Cannot find model at " + url());
    ModelArtifacts artifacts = model->artifacts;
    if (artifacts.weight_data) {
      for (Buffer& b : *artifacts.weight_data) b.set_label(url());
      uint64_t total = total_size(*artifacts.weight_data);
      call.progress(total, total);
    }
    return artifacts;
  }

  std::optional<std::string> save(const ModelArtifacts& artifacts, Call& call) override {
    return keep(artifacts, {}, call);
  }

  std::optional<std::string> save_from(const ModelArtifacts& meta, plugin::WeightSource& weights,
                                       Call& call) override {
    if (!weights.streaming()) return Handler::save_from(meta, weights, call);
    ModelArtifacts whole = meta;
    WeightData data;
    std::vector<std::string> digests;
    uint64_t done = 0;
    while (std::optional<Buffer> b = weights.next()) {
      call.check();
      data.push_back(Buffer::copy_of(b->bytes()));
      if (integrity_ == plugin::Integrity::kSha256) digests.push_back(sha256_hex(b->bytes()));
      done += b->size();
      call.progress(done, weights.total_bytes());
    }
    whole.weight_data = std::move(data);
    return keep(whole, std::move(digests), call);
  }

  std::vector<ListedModel> list(Call& call) override {
    call.check();
    std::vector<ListedModel> out;
    for (auto& [name, info] : Store::instance().list(name_)) {
      out.push_back({"memory://" + name, info});
    }
    return out;
  }

  ModelStat stat(Call& call) override {
    call.check();
    std::shared_ptr<const StoredModel> model = Store::instance().get(named());
    if (!model) throw Error(ErrorCode::kNotFound, "Cannot find model at " + url());
    ModelStat out;
    out.model = model->artifacts;
    out.model.weight_data.reset();
    out.version = "g" + std::to_string(model->generation);
    out.info = model->info;
    return out;
  }

  ModelArtifactsInfo remove(Call& call) override {
    call.check();
    std::shared_ptr<const StoredModel> model = Store::instance().erase(named());
    if (!model) throw Error(ErrorCode::kNotFound, "Cannot find model at " + url());
    return model->info;
  }

 private:
  // Stores the artifacts under the name; `digests`, when not empty, are
  // those of the buffers, computed as they were copied.
  std::optional<std::string> keep(const ModelArtifacts& artifacts, std::vector<std::string> digests,
                                  Call& call) {
    const std::string& name = named();
    call.check();
    auto model = std::make_shared<StoredModel>();
    model->artifacts = artifacts;  // the Buffers hold their own references: no bytes copied
    model->artifacts.weights_manifest.reset();
    if (integrity_ == plugin::Integrity::kSha256) {
      record_digests(model->artifacts, std::move(digests), call);
    }
    model->info = artifacts_info(model->artifacts);
    call.check();
    Store::instance().put(name, std::move(model));
    uint64_t total = artifacts.weight_data ? total_size(*artifacts.weight_data) : 0;
    call.progress(total, total);
    return std::nullopt;
  }

  static std::string name_in(std::string_view url) {
    size_t sep = url.find("://");
    if (sep == std::string_view::npos) {
      throw Error(ErrorCode::kInvalidArgument, "Not a memory:// URL: " + std::string(url));
    }
    return std::string(url.substr(sep + 3));
  }

  // Describes the kept buffers by one manifest group: a path and the
  // SHA-256 of each buffer (ABI: a manifest load has one buffer per path).
  static void record_digests(ModelArtifacts& artifacts, std::vector<std::string> digests,
                             Call& call) {
    if (!artifacts.weight_data) return;
    WeightGroup group;
    group.weights = artifacts.weight_specs.value_or(std::vector<WeightSpec>{});
    group.sha256.emplace();
    for (size_t i = 0; i < artifacts.weight_data->size(); ++i) {
      call.check();
      group.paths.push_back("buffer-" + std::to_string(i));
      group.sha256->push_back(i < digests.size() ? std::move(digests[i])
                                                 : sha256_hex((*artifacts.weight_data)[i].bytes()));
    }
    artifacts.weights_manifest = WeightsManifest{std::move(group)};
  }

  // The model name; only list works without one.
  const std::string& named() const {
    if (name_.empty()) {
      throw Error(ErrorCode::kInvalidArgument,
                  "The URL " + url() + " names no model; use memory://<name>");
    }
    return name_;
  }

  const std::string name_;
  const plugin::Integrity integrity_;
};

}  // namespace
}  // namespace stowage::memory

STOWAGE_PLUGIN(stowage::memory::MemoryHandler, "memory", STOWAGE_PLUGIN_VERSION,
               STOWAGE_CAP_LOAD | STOWAGE_CAP_SAVE | STOWAGE_CAP_LIST | STOWAGE_CAP_REMOVE |
                   STOWAGE_CAP_ZERO_COPY | STOWAGE_CAP_ATOMIC_SAVE | STOWAGE_CAP_STREAMING_SAVE |
                   STOWAGE_CAP_STREAMING_LOAD | STOWAGE_CAP_STAT,
               "memory");
