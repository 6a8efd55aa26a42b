// localstorage://, indexeddb:// and downloads:// — the browser's model stores
// of TF.js, emulated natively with the same layout, quotas and messages, so
// code written for the browser runs unchanged and models move between a real
// browser and native storage (`stowage browser export|import`).
//
// USAGE
//
//   localstorage://<path>   TF.js's BrowserLocalStorage: five string items
//                           tensorflowjs_models/<path>/{info, model_topology,
//                           weight_specs, weight_data (base64),
//                           model_metadata}, values exactly as TF.js writes
//                           them.
//   indexeddb://<path>      TF.js's BrowserIndexedDB: database "tensorflowjs"
//                           version 1, records {modelPath, modelArtifacts,
//                           modelArtifactsInfo} in models_store and
//                           {modelPath, modelArtifactsInfo} in
//                           model_info_store.
//   downloads://<name>      TF.js's BrowserDownloads (save only): <name>.json
//                           and <name>.weights.bin in the downloads folder.
//
//   A profile folder holds one SQLite database per origin (the origin's
//   localStorage and IndexedDB), named like Chromium's origin folders:
//   <profile>/http_localhost_0.sqlite (IndexedDB blob files in
//   <profile>/http_localhost_0.blobs/). Every save and remove is one SQLite
//   transaction, so a failed, cancelled or killed save leaves the previous
//   model exactly as it was (TF.js's localStorage deletes it, spec §11.6).
//
//   save    localstorage/indexeddb: replaces the model at <path>; fails with
//           RESOURCE_EXHAUSTED past the origin's quota, naming the model, the
//           bytes it needs and the bytes free. downloads: never overwrites;
//           a taken name becomes "<name> (1)", "<name> (2)", ... (as Chromium
//           names downloads) for both files, and the JSON's manifest names
//           the weights file actually written. The response lists the files.
//   load    TF.js's steps and messages ("In local storage, there is no model
//           with name '<path>'", "Cannot find model with path '<path>' in
//           IndexedDB."). IndexedDB weights are kept in an immutable blob
//           file beside the database (as Chromium keeps large values) and
//           come back as slices of its mapping, never copied or joined.
//           downloads: UNIMPLEMENTED.
//   list    The models at <path> and under "<path>/"; localstorage:// and
//           indexeddb:// list the whole origin, as TF.js's listModels.
//   remove  Both stores, TF.js's messages ("Cannot find model at path
//           '<path>'" for localStorage).
//   stat    localstorage/indexeddb: the model's JSON and info without its
//           weight bytes, and a version that changes with every save,
//           remove and `stowage browser import` of that model (an
//           origin-wide generation counter kept in the same transaction,
//           docs/browser.md). downloads: none (save only).
//
//   Options (JSON object; others are refused):
//     localstorage, indexeddb:
//       "profile"     the profile folder; default $XDG_DATA_HOME/stowage/browser
//                     or ~/.local/share/stowage/browser.
//       "origin"      the page's origin, scheme://host[:port]; default
//                     "http://localhost".
//       "quota"       bytes per origin. localstorage: default 10485760,
//                     counting 2 bytes per UTF-16 code unit of every key and
//                     value (Chromium). indexeddb: default 60% of the size of
//                     the disk holding the profile (Chromium), counting weight
//                     bytes plus the UTF-8 bytes of the records' JSON.
//       "durable"     false skips fsync (synchronous=OFF); default true.
//       "integrity"   "sha256" or "none"; default "sha256" for indexeddb,
//                     "none" for localstorage (TF.js's five items alone).
//                     "sha256" records the weight data's SHA-256, computed as
//                     it is written: indexeddb in the models_store record's
//                     "weightDataSha256", localstorage in a sixth item
//                     tensorflowjs_models/<path>/weight_data_sha256. Loads of
//                     a model with one are checked by the host
//                     (docs/integrity.md).
//     indexeddb:
//       "chunk_size"  bytes per weight buffer a load hands out; default
//                     8388608. A record with a digest comes back as one
//                     buffer (the whole mapped file, not copied), which the
//                     host's digest check needs.
//     downloads:
//       "folder"      default XDG_DOWNLOAD_DIR (user-dirs.dirs) or ~/Downloads.
//       "durable"     as above.
//       "integrity"   "none" (default: the JSON is TF.js's, byte for byte) or
//                     "sha256": the weights file's SHA-256, computed as it is
//                     written, goes into the JSON's weight group ("sha256").
//
//   Config defaults work per scheme, e.g. {"defaults": {"localstorage":
//   {"profile": "/srv/profile"}, "indexeddb": {"profile": "/srv/profile"}}}.
//   docs/browser.md has the layout, the quotas and the page-side snippets.
#include <algorithm>
#include <filesystem>

#include "downloads_internal.hpp"
#include "indexed_db_internal.hpp"
#include "local_storage_internal.hpp"
#include "stowage/model_json.hpp"
#include "stowage/plugin.hpp"

namespace stowage::browser {
namespace {

namespace fs = std::filesystem;
using plugin::Call;
using plugin::Options;

enum class Scheme { kLocalStorage, kIndexedDb, kDownloads };

Pace pace_of(Call& call) {
  Pace p;
  p.check = [&call] { call.check(); };
  p.set_total = [&call](uint64_t total) { call.set_total(total); };
  p.advance = [&call](uint64_t bytes) { call.advance(bytes); };
  return p;
}

void finish_progress(Call& call) {
  const uint64_t total = std::max(call.total(), call.done());
  call.progress(total, total);
}

fs::path absolute_folder(const std::string& folder, const char* option, const std::string& url) {
  if (folder.empty()) {
    throw Error(ErrorCode::kInvalidArgument,
                "Option \"" + std::string(option) + "\" for " + url + " must not be empty");
  }
  return fs::absolute(fs::path(folder)).lexically_normal();
}

constexpr uint64_t kStoreCaps = STOWAGE_CAP_LOAD | STOWAGE_CAP_SAVE | STOWAGE_CAP_LIST |
                                STOWAGE_CAP_REMOVE | STOWAGE_CAP_ATOMIC_SAVE | STOWAGE_CAP_STAT;

class BrowserHandler final : public plugin::Handler {
 public:
  BrowserHandler(std::string_view url, Options& options) : Handler(url) {
    const size_t sep = url.find("://");
    if (sep == std::string_view::npos) {
      throw Error(ErrorCode::kInvalidArgument, "Not a browser store URL: " + std::string(url));
    }
    std::string scheme(url.substr(0, sep));
    std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    path_ = std::string(url.substr(sep + 3));
    const bool durable = options.get_bool("durable", true);
    if (scheme == "downloads") {
      scheme_ = Scheme::kDownloads;
      const std::string folder = options.get_string("folder");
      folder_ = options.has("folder") ? absolute_folder(folder, "folder", this->url())
                                      : default_downloads_folder();
      durable_ = durable;
      sha256_ =
          plugin::read_integrity(options, plugin::Integrity::kNone) == plugin::Integrity::kSha256;
      return;
    }
    if (scheme != "localstorage" && scheme != "indexeddb") {
      throw Error(ErrorCode::kInvalidArgument,
                  "The browser plugin serves localstorage://, "
                  "indexeddb:// and downloads://, not " +
                      this->url());
    }
    scheme_ = scheme == "localstorage" ? Scheme::kLocalStorage : Scheme::kIndexedDb;
    StoreLocation where;
    const std::string profile = options.get_string("profile");
    where.profile = options.has("profile") ? absolute_folder(profile, "profile", this->url())
                                           : default_profile();
    where.origin = normalize_origin(options.get_string("origin", std::string(kDefaultOrigin)));
    Database::Settings settings;
    settings.durable = durable;
    // IndexedDB is stowage's own kind of store; localStorage's items are
    // read by pages, so its default keeps TF.js's five items alone.
    sha256_ =
        plugin::read_integrity(options, scheme_ == Scheme::kIndexedDb ? plugin::Integrity::kSha256
                                                                      : plugin::Integrity::kNone) ==
        plugin::Integrity::kSha256;
    if (scheme_ == Scheme::kLocalStorage) {
      local_.emplace(std::move(where), options.get_uint64("quota", kDefaultLocalStorageQuota),
                     settings);
      return;
    }
    const uint64_t chunk = options.get_uint64("chunk_size", kDefaultChunkSize);
    if (chunk == 0 || chunk > kMaxChunkSize) {
      throw Error(ErrorCode::kInvalidArgument, "Option \"chunk_size\" for " + this->url() +
                                                   " must be from 1 to " +
                                                   std::to_string(kMaxChunkSize) + " bytes");
    }
    const uint64_t quota = options.has("quota") ? options.get_uint64("quota", 0)
                                                : default_indexeddb_quota(where.profile);
    indexed_.emplace(std::move(where), quota, chunk, settings);
  }

  ModelArtifacts load(Call& call) override {
    call.check();
    ModelArtifacts a;
    switch (scheme_) {
      case Scheme::kLocalStorage:
        a = local_->load_model(model_path(), pace_of(call));
        break;
      case Scheme::kIndexedDb:
        a = indexed_->load_model(model_path(), pace_of(call));
        break;
      case Scheme::kDownloads:
        throw Error(ErrorCode::kUnimplemented,
                    "downloads:// is save only: a page cannot read its downloads back (TF.js "
                    "has no load handler for it). Load the saved file instead: file://" +
                        (folder_ / (download_prefix(path_) + ".json")).string());
    }
    finish_progress(call);
    return a;
  }

  std::optional<std::string> save(const ModelArtifacts& artifacts, Call& call) override {
    call.check();
    if (scheme_ == Scheme::kLocalStorage) {
      local_->save_model(model_path(), artifacts, sha256_, pace_of(call));
    } else if (scheme_ == Scheme::kIndexedDb) {
      indexed_->save_model(model_path(), artifacts, sha256_, pace_of(call));
    } else {
      const DownloadedFiles files = save_download(folder_, download_prefix(path_), artifacts,
                                                  durable_, sha256_, pace_of(call));
      finish_progress(call);
      std::string response = "{\"files\":[" + json::quote(files.json.string());
      if (files.weights) response += "," + json::quote(files.weights->string());
      return response + "]}";
    }
    finish_progress(call);
    return std::nullopt;
  }

  std::vector<ListedModel> list(Call& call) override {
    call.check();
    std::vector<std::pair<std::string, ModelArtifactsInfo>> models;
    std::string scheme;
    if (scheme_ == Scheme::kLocalStorage) {
      models = local_->list_models(path_);
      scheme = "localstorage://";
    } else if (scheme_ == Scheme::kIndexedDb) {
      models = indexed_->list_models(path_);
      scheme = "indexeddb://";
    } else {
      throw Error(ErrorCode::kUnimplemented,
                  "downloads:// cannot list models: browsers keep no record of downloads. List "
                  "the folder instead: file://" +
                      folder_.string());
    }
    std::vector<ListedModel> out;
    out.reserve(models.size());
    for (auto& [path, info] : models) out.push_back({scheme + path, info});
    return out;
  }

  ModelArtifactsInfo remove(Call& call) override {
    call.check();
    switch (scheme_) {
      case Scheme::kLocalStorage:
        return local_->remove_model(model_path());
      case Scheme::kIndexedDb:
        return indexed_->remove_model(model_path());
      case Scheme::kDownloads:
        break;
    }
    throw Error(ErrorCode::kUnimplemented,
                "downloads:// cannot remove models: a page cannot delete its downloads. Remove "
                "the files instead: file://" +
                    (folder_ / (download_prefix(path_) + ".json")).string());
  }

  ModelStat stat(Call& call) override {
    call.check();
    ModelStat out;
    switch (scheme_) {
      case Scheme::kLocalStorage:
        out = local_->stat_model(model_path());
        break;
      case Scheme::kIndexedDb:
        out = indexed_->stat_model(model_path());
        break;
      case Scheme::kDownloads:
        // The host refuses it first (the scheme declares no STAT).
        throw Error(ErrorCode::kUnimplemented,
                    "downloads:// is save only: a page cannot read its downloads back. Stat the "
                    "saved file instead: file://" +
                        (folder_ / (download_prefix(path_) + ".json")).string());
    }
    // Hashed: the store's generation and row or blob name say nothing to a
    // caller, which only compares tokens.
    out.version = plugin::version_token({out.version});
    return out;
  }

 private:
  // The model path, which TF.js requires to be non-empty.
  const std::string& model_path() const {
    if (path_.empty()) {
      throw Error(ErrorCode::kInvalidArgument,
                  scheme_ == Scheme::kLocalStorage
                      ? "For local storage, modelPath must not be null, undefined or empty."
                      : "For IndexedDB, modelPath must not be null, undefined or empty.");
    }
    return path_;
  }

  Scheme scheme_ = Scheme::kLocalStorage;
  std::string path_;
  std::optional<LocalStorage> local_;
  std::optional<IndexedDb> indexed_;
  fs::path folder_;
  bool durable_ = true;
  bool sha256_ = false;  // record the weight data's digest (option "integrity")
};

}  // namespace
}  // namespace stowage::browser

// downloads:// is save only, as in TF.js (a page cannot read, list or delete
// its downloads), so the host refuses the rest before it reaches the handler.
STOWAGE_PLUGIN_SCHEMES(stowage::browser::BrowserHandler, "browser", STOWAGE_PLUGIN_VERSION, 0,
                       {"localstorage", stowage::browser::kStoreCaps},
                       {"indexeddb", stowage::browser::kStoreCaps},
                       {"downloads", STOWAGE_CAP_SAVE});
