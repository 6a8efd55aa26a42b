// localStorage of one origin, and TF.js's BrowserLocalStorage on top of it
// (spec §4.2): five string items per model under
// "tensorflowjs_models/<path>/", values exactly as TF.js writes them (and a
// sixth, the weight data's digest, when one is recorded), and a per-origin
// quota counted as Chromium counts it.
//
// Thread-safety: a LocalStorage may be used from several threads at once;
// each call opens its own connection, and every save and remove is one
// SQLite transaction. Ownership: plain values.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "store_internal.hpp"
#include "stowage/artifacts.hpp"

namespace stowage::browser {

inline constexpr std::string_view kLocalStoragePrefix = "tensorflowjs_models/";
// Chromium: 10 MiB per origin, counting 2 bytes per UTF-16 code unit of
// every key and value (5,242,880 code units in all).
inline constexpr uint64_t kDefaultLocalStorageQuota = 10ull << 20;

// Bytes an item counts against the quota: 2 per UTF-16 code unit.
uint64_t local_storage_cost(std::string_view key, std::string_view value) noexcept;

class LocalStorage {
 public:
  LocalStorage(StoreLocation where, uint64_t quota, Database::Settings settings)
      : where_(std::move(where)), quota_(quota), settings_(settings) {}

  const StoreLocation& location() const noexcept { return where_; }

  // BrowserLocalStorage.save: all five items or none, replacing the model at
  // `path` in one transaction. With record_digest (and weight data), a sixth
  // item ".../weight_data_sha256" holds {"sha256": the weight data's SHA-256,
  // hashed as it is encoded, "dateSaved": the info item's}, counted against
  // the quota as any item; without, an earlier save's is removed.
  // Error(kResourceExhausted) past the quota, saying how many bytes were
  // needed and free; the previous model stays.
  ModelArtifactsInfo save_model(const std::string& path, const ModelArtifacts& artifacts,
                                bool record_digest, const Pace& pace) const;
  // BrowserLocalStorage.load, step by step with TF.js's messages. With a
  // digest item of the same dateSaved as the info item, the weight data
  // comes with a weightsManifest of one group, path "weight_data" and that
  // digest, which the host's load check verifies (docs/integrity.md); a
  // digest item that is not digest_item's form is Error(kInvalidArgument)
  // naming it.
  ModelArtifacts load_model(const std::string& path, const Pace& pace) const;
  // What load_model would give, without decoding the weight data: the
  // fields, the info (load's, with the info item's dateSaved) and a version
  // that changes with every save, remove or import of the model (the store's
  // generation and the info item's row). Error(kNotFound) naming the URL;
  // other failures as load_model's.
  ModelStat stat_model(const std::string& path) const;
  // Models whose path is `prefix`, or under "prefix/" (all for "").
  std::vector<std::pair<std::string, ModelArtifactsInfo>> list_models(
      std::string_view prefix) const;
  // The five items and the digest item; Error(kNotFound) "Cannot find model
  // at path '<path>'".
  ModelArtifactsInfo remove_model(const std::string& path) const;

  // Every item of the origin, in key order (for export).
  std::vector<std::pair<std::string, std::string>> items() const;
  // Sets items in one transaction (after removing every item when clear).
  // Error(kResourceExhausted) when that would exceed the quota.
  void put_items(const std::vector<std::pair<std::string, std::string>>& items, bool clear) const;
  // Bytes the origin's items count against the quota.
  uint64_t used_bytes() const;
  uint64_t quota() const noexcept { return quota_; }

 private:
  StoreLocation where_;
  uint64_t quota_;
  Database::Settings settings_;
};

}  // namespace stowage::browser
