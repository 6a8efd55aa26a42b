// The IndexedDB database "tensorflowjs" (version 1) of one origin, and TF.js's
// BrowserIndexedDB on top of it (spec §4.3): object stores models_store
// ({modelPath, modelArtifacts, modelArtifactsInfo}) and model_info_store
// ({modelPath, modelArtifactsInfo}), keyed on modelPath.
//
// A record's weightData lives in an immutable blob file beside the database
// (<profile>/<origin>.blobs/<id>), as Chromium keeps large IndexedDB values
// in blob files beside its database. A save writes the file from the
// caller's buffers (never joined) and syncs it, then publishes it in the
// SQLite transaction that puts the records; the file of the model it
// replaced is deleted after the commit. A load maps the file and hands it
// out in chunk_size slices without copying; a later save or remove deletes
// the file's name only, so those slices stay valid. Files no record names
// (left by a killed save) are deleted by the next save or remove, never
// while a save that may still publish them runs (a shared flock).
//
// Thread-safety: an IndexedDb may be used from several threads at once; each
// call opens its own connection, and every save and remove is one SQLite
// transaction. Ownership: plain values; loaded Buffers own their bytes.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "store_internal.hpp"
#include "stowage/artifacts.hpp"

namespace stowage::browser {

// Bytes per Buffer a load hands out.
inline constexpr uint64_t kDefaultChunkSize = 8ull << 20;
inline constexpr uint64_t kMaxChunkSize = 1ull << 30;

// Chromium's per-origin quota: 60% of the size of the disk holding the
// profile (of its nearest existing parent folder).
uint64_t default_indexeddb_quota(const std::filesystem::path& profile);

class IndexedDb {
 public:
  IndexedDb(StoreLocation where, uint64_t quota, uint64_t chunk_size, Database::Settings settings)
      : where_(std::move(where)), quota_(quota), chunk_size_(chunk_size), settings_(settings) {}

  const StoreLocation& location() const noexcept { return where_; }

  // BrowserIndexedDB.save: both records, replacing the model at `path`, in
  // one transaction. With record_digest (and weight data), the weight data's
  // SHA-256, hashed as the blob file is written, goes into the record as
  // "weightDataSha256" (a key TF.js's load never reads; docs/integrity.md)
  // and counts against the quota as those bytes of the record's JSON.
  // Error(kResourceExhausted) past the quota, saying how many bytes were
  // needed and free; the previous model stays.
  ModelArtifactsInfo save_model(const std::string& path, const ModelArtifacts& artifacts,
                                bool record_digest, const Pace& pace) const;
  // The models_store record; Error(kNotFound) "Cannot find model with path
  // '<path>' in IndexedDB." Weight data as chunk_size slices of the mapped
  // blob file; a record with a digest gives it as one slice (still not
  // copied) with a weightsManifest of one group, path "weightData" and that
  // digest, so the host's load check verifies it (docs/integrity.md).
  ModelArtifacts load_model(const std::string& path, const Pace& pace) const;
  // What load_model would give, without reading the weight data (its blob
  // file is opened and its size checked, as a load does): the fields, the
  // info (load's, with the record's dateSaved) and a version that changes
  // with every save, remove or import of the model (the store's generation
  // and the blob file's name). Error(kNotFound) naming the URL; other
  // failures as load_model's.
  ModelStat stat_model(const std::string& path) const;
  // model_info_store records whose path is `prefix` or under "prefix/".
  std::vector<std::pair<std::string, ModelArtifactsInfo>> list_models(
      std::string_view prefix) const;
  // Both records; Error(kNotFound) as load when model_info_store has none.
  ModelArtifactsInfo remove_model(const std::string& path) const;

  // The records of both stores as the page-side export snippet writes them
  // (docs/browser.md), written out piece by piece; a record with a digest
  // has its "weightDataSha256" after modelArtifactsInfo.
  void export_json(const std::function<void(std::string_view)>& write) const;
  // Puts the records of such a dump in one transaction (after deleting every
  // record when clear). Returns the number of models_store records.
  // Error(kInvalidArgument) naming the record for malformed input (a
  // "weightDataSha256" that is not 64 lowercase hex digits or has no
  // weightData), Error(kDataLoss) when a record's weight data does not hash
  // to its "weightDataSha256", Error(kResourceExhausted) past the quota;
  // nothing is written then.
  size_t import_json(std::string_view dump, bool clear, const Pace& pace) const;

  // Bytes the origin's records count against the quota: the UTF-8 bytes of
  // their JSON text (with "weightDataSha256" where recorded) plus the weight
  // bytes, in both object stores.
  uint64_t used_bytes() const;
  uint64_t quota() const noexcept { return quota_; }

 private:
  void check_quota(Database& db, const std::string& path, uint64_t needed) const;

  StoreLocation where_;
  uint64_t quota_;
  uint64_t chunk_size_;
  Database::Settings settings_;
};

}  // namespace stowage::browser
