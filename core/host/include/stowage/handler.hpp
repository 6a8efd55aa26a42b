// IOHandler: TF.js's IOHandler made native, plus the model-store operations
// of its ModelStoreManager. Handlers come from the registry (a plugin or an
// in-process scheme) or from the host itself (TF.js's custom handler).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "stowage/artifacts.hpp"

namespace stowage {

// What one call may be given besides its data. Every member is optional.
struct CallContext {
  // Byte-level progress: done grows to total; total may grow during a load.
  std::function<void(uint64_t done, uint64_t total)> on_progress;
  // Polled by the plugin; true stops the call with Error(kCancelled).
  std::function<bool()> is_cancelled;
  // After this instant the call fails with Error(kDeadlineExceeded).
  std::optional<std::chrono::system_clock::time_point> deadline;
  // TF.js's weightUrlConverter: maps a manifest path to the URL to fetch;
  // nullopt keeps the path as it is.
  std::function<std::optional<std::string>(std::string_view path)> weight_url_converter;
  // Loads check every weight file against the SHA-256 its model.json
  // records (docs/integrity.md); false skips the hashing, for stores the
  // caller trusts. The byte-count check runs either way.
  bool verify_digests = true;
  // Loads hash every weight file that records a digest, also those the
  // plugin says it already checked against exactly that digest (abi.h
  // sink_mark_verified, ABI 1.4), which are otherwise not hashed twice: an
  // independent check (`stowage verify`, a copy reading back what it
  // wrote) that does not take the plugin's word. No effect without
  // verify_digests.
  bool recheck_digests = false;
  // stat may read model.json alone, for a version token of model.json only
  // (abi.h STOWAGE_CALL_STAT_SHALLOW); a handler may stat in full anyway.
  bool shallow_stat = false;
  // stat only: the version token of a copy the caller keeps, from an
  // earlier stat of the same URL with the same shallow_stat ("" for none).
  // A handler that can tell the stored model is still that one answers
  // ModelStat::unchanged (one conditional request over http); any other
  // answers in full, and the caller compares the tokens (abi.h, ABI 1.3).
  std::string known_version;
};

// Thread-safety: a handler may be used from several threads at once (the
// registry serialises plugins that say they are single-threaded).
// Ownership: handlers from the registry keep their plugin loaded.
class IOHandler {
 public:
  virtual ~IOHandler() = default;

  // The URL this handler was created for.
  virtual const std::string& url() const = 0;
  virtual bool can_save() const { return false; }
  virtual bool can_load() const { return false; }
  virtual bool can_list() const { return false; }
  virtual bool can_remove() const { return false; }
  virtual bool can_stat() const { return false; }

  // Each throws Error(kUnimplemented) unless the matching can_*() is true.
  virtual SaveResult save(const ModelArtifacts& artifacts, const CallContext& call = {});
  virtual ModelArtifacts load(const CallContext& call = {});
  virtual std::vector<ListedModel> list(const CallContext& call = {});
  virtual ModelArtifactsInfo remove(const CallContext& call = {});
  // Throws Error(kNotFound) when there is no model.
  virtual ModelStat stat(const CallContext& call = {});
};

}  // namespace stowage
