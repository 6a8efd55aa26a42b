// cache+<URL> — a pull-through model cache in front of any stowage URL: a
// decorator (like fault://) that opens the wrapped URL through the host's
// registry, keeps each model it loads in a local folder, and serves it from
// there, mapped, while the store says it is unchanged, or while the host is
// offline. Layout, locking and guarantees: docs/cache.md.
//
// USAGE
//
//   cache+<wrapped URL>          e.g. cache+https://cdn.example.com/m/model.json,
//                                cache+s3://bucket/m?region=eu-west-1
//   options:
//     "dir"             the cache folder; else $STOWAGE_CACHE_DIR, else
//                       $XDG_CACHE_HOME/stowage, else ~/.cache/stowage
//     "max_age"         seconds a cached model is used without asking the
//                       store (0, the default: every load revalidates with
//                       the wrapped scheme's stat)
//     "offline"         true: never call the store; a model not fully cached
//                       fails UNAVAILABLE. Also STOWAGE_OFFLINE=1.
//     "stale_if_error"  true (default): when the store is unreachable
//                       (UNAVAILABLE, DEADLINE_EXCEEDED) serve the cached
//                       copy, with a warning in the log
//     "max_bytes"       bound on the cached weight bytes, kept by evicting
//                       least-recently-used whole models after each fill
//                       (default: 10 GiB or 10 % of the filesystem, the
//                       smaller)
//     "inner_options"   the wrapped URL's own options, merged over the
//                       host's defaults for its scheme
//
//   Operations: load; stat (the wrapped stat, or the snapshot's when it
//   is fresh, offline or stale-if-error); list (the wrapped list, each URL
//   with "cache+" in front). No save or remove: those go to the wrapped
//   URL itself. With a host without nested URLs (ABI 1.0) every open fails
//   with UNIMPLEMENTED. Every message names the cache+ URL redacted.
//
//   LOAD
//     fresh snapshot (validated within max_age)  -> blobs, no store call
//     otherwise, under the model's lock           -> wrapped stat, given the
//       snapshot's version (http and s3: a conditional GET of model.json); store
//       says unchanged (304), or the same version: blobs (validated_at
//       updated); other version or none:
//       wrapped load, streamed (abi.h nested_load_stream): each buffer
//       stored by its SHA-256 as it arrives, so writing overlaps the
//       transfer and a few buffers are held, not the model; snapshot
//       published, LRU eviction down to max_bytes; the model served from
//       the blobs just written.
//   Every blob served is mapped and checked against its SHA-256 before the
//   load returns; a mismatch removes it and fetches the model again (or,
//   offline, fails DATA_LOSS naming the file). Each checked buffer is
//   marked verified (abi.h sink_mark_verified, ABI 1.4), so the host does
//   not hash the same bytes again; a fill marks the buffers the nested
//   load's digest check covered.
#include <sys/statvfs.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "cache_key_internal.hpp"
#include "cache_store_internal.hpp"
#include "stowage/abi.h"
#include "stowage/digest.hpp"
#include "stowage/model_json.hpp"
#include "stowage/nested_url.hpp"
#include "stowage/plugin.hpp"
#include "stowage/text.hpp"

namespace stowage::cache {
namespace {

using Clock = std::chrono::system_clock;
namespace fs = std::filesystem;

constexpr std::string_view kPrefix = "cache+";
constexpr uint64_t kDefaultMaxBytes = 10ull << 30;
constexpr size_t kWriters = 4;  // blobs a fill stores at once

// Millisecond precision: the snapshot's dates are ISO strings in ms.
Clock::time_point now_ms() {
  return std::chrono::time_point_cast<std::chrono::milliseconds>(Clock::now());
}

fs::path default_dir(const std::string& url) {
  if (std::optional<fs::path> dir = default_cache_dir()) return *dir;
  throw Error(ErrorCode::kInvalidArgument,
              "No cache folder for " + redact_url(url) +
                  ": set option \"dir\", STOWAGE_CACHE_DIR, XDG_CACHE_HOME or HOME");
}

bool offline_env() {
  const char* v = std::getenv("STOWAGE_OFFLINE");
  return v != nullptr && std::string_view(v) == "1";
}

// The failures stale_if_error covers: the store did not answer, as opposed
// to answering that the model is gone or forbidden.
bool unreachable(const Error& e) {
  return e.code() == ErrorCode::kUnavailable || e.code() == ErrorCode::kDeadlineExceeded;
}

// A cached model opened for serving: its snapshot and, when every blob it
// names is there, the blobs mapped (not yet checked).
struct Opened {
  Snapshot snapshot;
  std::optional<WeightData> weights;
  std::string missing;  // the first blob that is not there, when weights is nullopt
};

class CacheHandler : public plugin::Handler {
 public:
  CacheHandler(std::string_view url, plugin::Options& options)
      : Handler(url), redacted_(redact_url(url)) {
    if (url.substr(0, kPrefix.size()) != kPrefix || url.find("://") == std::string_view::npos ||
        url.find("://") <= kPrefix.size()) {
      throw Error(ErrorCode::kInvalidArgument,
                  "'" + redacted_ +
                      "' does not wrap a URL: write cache+<scheme>://..., e.g. "
                      "cache+https://host/m/model.json");
    }
    inner_url_ = std::string(url.substr(kPrefix.size()));
    key_ = cache_key(inner_url_);
    const std::string dir = options.get_string("dir");
    dir_ = dir.empty() ? default_dir(this->url()) : fs::path(dir);
    max_age_ = std::chrono::seconds(options.get_uint64("max_age", 0));
    offline_ = options.get_bool("offline", false) || offline_env();
    stale_if_error_ = options.get_bool("stale_if_error", true);
    if (options.has("max_bytes")) max_bytes_ = options.get_uint64("max_bytes", 0);
    const std::string inner_options = options.get_object_json("inner_options");
    // Through the host's registry: its allow-list, pins and retry policy
    // cover the wrapped URL. Opening reads nothing, also offline.
    inner_.emplace(inner_url_, inner_options);
  }

  ModelArtifacts load(plugin::Call& call) override {
    const CacheStore& store = this->store();
    const Clock::time_point started = now_ms();
    if (offline_) return load_offline(store, call);

    if (std::optional<Opened> hit = open_cached(store); hit && fresh(hit->snapshot, started)) {
      if (std::optional<ModelArtifacts> served = serve(store, *hit, call)) return *served;
    }
    // One filler per model across threads and processes; the others wait
    // here and then find the model it published.
    FileLock filling = store.lock_model(key_);
    std::optional<Opened> cached = open_cached(store);
    if (cached && fresh(cached->snapshot, started)) {
      if (std::optional<ModelArtifacts> served = serve(store, *cached, call)) return *served;
    }
    std::optional<std::string> version;
    if (cached) {
      bool unchanged = false;
      try {
        const InnerVersion inner = inner_version(call, cached->snapshot.version);
        version = inner.version;
        unchanged = inner.unchanged;
      } catch (const Error& e) {
        if (std::optional<ModelArtifacts> stale = serve_stale(store, *cached, call, e)) {
          return *stale;
        }
        throw;
      }
      // An inner stat that ignored the known version (a 1.2 host, a scheme
      // that cannot revalidate) answered in full: its token tells.
      if (unchanged || (!version->empty() && *version == cached->snapshot.version)) {
        Snapshot validated = cached->snapshot;
        validated.version = *version;  // the same, or a newer token of the same model
        validated.validated_at = now_ms();
        {
          // An eviction (another process's fill, `stowage cache prune` or
          // `clear`) may have removed the model since it was opened: then
          // it stays removed, never a snapshot naming blobs that are gone.
          // The blobs mapped above still serve this load.
          FileLock shared = store.lock_cache(FileLock::Mode::kShared);
          const bool still_cached = std::all_of(
              validated.files.begin(), validated.files.end(),
              [&store](const CachedFile& f) { return store.has_blob(f.sha256, f.size); });
          if (still_cached) store.publish_snapshot(key_, validated);
        }
        if (std::optional<ModelArtifacts> served = serve(store, *cached, call)) return *served;
      }
    }
    try {
      return fill(store, call, std::move(version));
    } catch (const Error& e) {
      if (cached) {
        if (std::optional<ModelArtifacts> stale = serve_stale(store, *cached, call, e)) {
          return *stale;
        }
      }
      throw;
    }
  }

  ModelStat stat(plugin::Call& call) override {
    const Clock::time_point started = now_ms();
    if (offline_ || max_age_.count() > 0) {
      std::optional<Snapshot> s = store().read_snapshot(key_);
      if (s && (offline_ || fresh(*s, started))) return stat_of(*s);
      if (offline_) throw not_cached_offline();
    }
    try {
      return inner_->stat(call);
    } catch (const Error& e) {
      if (!stale_if_error_ || !unreachable(e)) throw;
      std::optional<Snapshot> s = store().read_snapshot(key_);
      if (!s) throw;
      warn_stale(*s, e);
      return stat_of(*s);
    }
  }

  std::vector<ListedModel> list(plugin::Call& call) override {
    if (offline_) {
      throw Error(ErrorCode::kUnavailable,
                  "Cannot list " + redacted_ +
                      ": listing asks the store, and the host is offline (STOWAGE_OFFLINE=1 or "
                      "option \"offline\")");
    }
    std::vector<ListedModel> models = inner_->list(call);
    for (ListedModel& m : models) m.url = std::string(kPrefix) + m.url;
    return models;
  }

 private:
  const CacheStore& store() {
    std::lock_guard<std::mutex> lock(store_mu_);
    if (!store_) {
      // Made on first use, not at open: opening a handler writes nothing.
      store_.emplace(dir_);
      if (!max_bytes_) max_bytes_ = default_max_bytes(dir_);
    }
    return *store_;
  }

  static uint64_t default_max_bytes(const fs::path& dir) {
    struct statvfs fs_info;
    if (::statvfs(dir.c_str(), &fs_info) != 0) return kDefaultMaxBytes;
    const uint64_t tenth = static_cast<uint64_t>(fs_info.f_blocks) * fs_info.f_frsize / 10;
    return std::min(kDefaultMaxBytes, tenth);
  }

  // Validated within max_age, or since this load began (another thread or
  // process revalidated or filled it while this one waited for the lock).
  bool fresh(const Snapshot& s, Clock::time_point started) const {
    return s.validated_at >= started ||
           (max_age_.count() > 0 && now_ms() - s.validated_at < max_age_);
  }

  // The snapshot and its blobs, read under the cache-wide shared lock, so
  // an eviction cannot remove a blob between the two.
  std::optional<Opened> open_cached(const CacheStore& store) const {
    FileLock shared = store.lock_cache(FileLock::Mode::kShared);
    std::optional<Snapshot> s = store.read_snapshot(key_);
    if (!s) return std::nullopt;
    Opened out{std::move(*s), WeightData{}, {}};
    for (const CachedFile& f : out.snapshot.files) {
      std::optional<Buffer> b = store.map_blob(f.sha256, f.size);
      if (!b) {
        out.missing = store.blob_path(f.sha256).string();
        out.weights.reset();
        break;
      }
      out.weights->push_back(std::move(*b));
    }
    return out;
  }

  // The path of the first mapped blob whose bytes do not hash to its name,
  // after removing it; nullopt when all match.
  static std::optional<std::string> corrupt_blob(const CacheStore& store, const Opened& o) {
    std::vector<std::string> names;
    for (const CachedFile& f : o.snapshot.files) names.push_back(f.sha256);
    const std::optional<size_t> bad = CacheStore::first_mismatch(names, *o.weights);
    if (!bad) return std::nullopt;
    store.remove_blob(names[*bad]);
    return store.blob_path(names[*bad]).string();
  }

  // The cached model, checked, as the inner load gave it; nullopt when a
  // blob is missing or corrupt (a corrupt one is removed and logged).
  std::optional<ModelArtifacts> serve(const CacheStore& store, const Opened& o,
                                      plugin::Call& call) const {
    if (!o.weights) return std::nullopt;
    if (std::optional<std::string> bad = corrupt_blob(store, o)) {
      plugin::log(2, "cache: the cached file " + *bad + " of " + redacted_ +
                         " does not match its SHA-256; it was removed and the model is fetched "
                         "again");
      return std::nullopt;
    }
    mark_checked(o, call);
    return artifacts_of(store, o, call);
  }

  // Every blob of `o` was just hashed and matched its name (corrupt_blob),
  // which is the digest the snapshot's model.json records for its file
  // whenever it records one: the host need not hash the same bytes again
  // (abi.h sink_mark_verified; it compares each name with its manifest).
  static void mark_checked(const Opened& o, plugin::Call& call) {
    for (size_t i = 0; i < o.snapshot.files.size(); ++i) {
      call.mark_verified(i, o.snapshot.files[i].sha256);
    }
  }

  ModelArtifacts artifacts_of(const CacheStore& store, const Opened& o, plugin::Call& call) const {
    ModelArtifacts a =
        parse_model_json(o.snapshot.artifacts_json, store.snapshot_path(key_).string());
    const uint64_t total = total_size(*o.weights);
    if (o.snapshot.has_weight_data) a.weight_data = *o.weights;
    store.touch(key_);
    call.progress(total, total);
    return a;
  }

  std::optional<ModelArtifacts> serve_stale(const CacheStore& store, const Opened& o,
                                            plugin::Call& call, const Error& e) const {
    if (!stale_if_error_ || !unreachable(e)) return std::nullopt;
    std::optional<ModelArtifacts> served = serve(store, o, call);
    if (served) warn_stale(o.snapshot, e);
    return served;
  }

  void warn_stale(const Snapshot& s, const Error& e) const {
    plugin::log(2, "cache: serving the cached copy of " + redacted_ + " (validated " +
                       iso_date(s.validated_at) +
                       ") because the store did not answer: " + e.what());
  }

  Error not_cached_offline() const {
    return Error(ErrorCode::kUnavailable,
                 "Cannot load " + redacted_ + ": it is not in the cache (" + dir_.string() +
                     ") and the host is offline (STOWAGE_OFFLINE=1 or option \"offline\")");
  }

  ModelArtifacts load_offline(const CacheStore& store, plugin::Call& call) const {
    std::optional<Opened> o = open_cached(store);
    if (!o) throw not_cached_offline();
    if (!o->weights) {
      throw Error(ErrorCode::kUnavailable,
                  "Cannot load " + redacted_ + ": it is not fully in the cache (" + o->missing +
                      " is missing) and the host is offline (STOWAGE_OFFLINE=1 or option "
                      "\"offline\")");
    }
    if (std::optional<std::string> bad = corrupt_blob(store, *o)) {
      throw Error(ErrorCode::kDataLoss,
                  "The cached file " + *bad + " of " + redacted_ +
                      " does not match its SHA-256 (damaged on disk or edited); it was removed, "
                      "and the host is offline, so the model cannot be fetched again");
    }
    mark_checked(*o, call);
    return artifacts_of(store, *o, call);
  }

  struct InnerVersion {
    std::string version;
    bool unchanged = false;  // the store said the `known` version still holds
  };

  // The wrapped store's version token; "" when its scheme has no stat (the
  // model is then fetched again at every revalidation). Shallow: one
  // request for model.json (abi.h STOWAGE_CALL_STAT_SHALLOW), whose token a
  // weight file rewritten behind an unchanged model.json does not change;
  // a manifest with digests changes with every weight file. `known`: the
  // snapshot's token, so that the request can be conditional (http: a GET
  // answered 304 with no body; abi.h known_version).
  InnerVersion inner_version(plugin::Call& call, const std::string& known = "") const {
    try {
      ModelStat s =
          inner_->stat(call, STOWAGE_CALL_STAT_SHALLOW,
                       known.empty() ? std::nullopt : std::optional<std::string_view>(known));
      return {std::move(s.version), s.unchanged};
    } catch (const Error& e) {
      if (e.code() == ErrorCode::kUnimplemented) return {};
      throw;
    }
  }

  // True when the wrapped load checked every weight file against the
  // digest model.json records: the host does so for a nested load unless
  // the call says STOWAGE_CALL_SKIP_DIGESTS (abi.h), a bit that exists
  // from ABI 1.2; a host too old to say is not trusted to have checked.
  static bool host_checked_digests(const plugin::Call& call) {
    const stowage_call* raw = call.raw();
    return raw != nullptr &&
           raw->struct_size >= offsetof(stowage_call, flags) + sizeof(stowage_call::flags) &&
           (raw->flags & STOWAGE_CALL_SKIP_DIGESTS) == 0;
  }

  // Stores one fetched weight file as its blob, unless a blob with the
  // same bytes is held, and returns the blob mapped; sets `sha` to its name
  // and `verified` to whether its bytes are known to match the digest the
  // manifest records (checked by the host, or hashed here), which the fill
  // then marks. A held blob whose bytes differ from the fetched ones
  // (damaged on disk) is replaced. Throws Error(kDataLoss) for fetched
  // bytes that do not match the recorded digest.
  Buffer store_blob(const CacheStore& store, const Buffer& b,
                    const std::optional<std::string>& recorded, bool host_checked,
                    const std::optional<std::string>& path, std::string& sha,
                    bool& verified) const {
    // The blob's name: the digest the manifest records, else the bytes'
    // own. Bytes the host checked against the recorded digest on the way
    // in (host_checked) are not hashed again; unchecked ones are, before
    // they are stored.
    const std::string name = recorded ? *recorded : sha256_hex(b.bytes());
    if (std::optional<Buffer> held = store.map_blob(name, b.size());
        held && std::equal(held->bytes().begin(), held->bytes().end(), b.bytes().begin())) {
      // The bytes of a blob checked when it was stored: no second write.
      sha = name;
      verified = recorded && host_checked;
      return *held;
    }
    if (recorded && !host_checked && sha256_hex(b.bytes()) != *recorded) {
      throw Error(ErrorCode::kDataLoss, "cache: weight file " + path.value_or("") + " of " +
                                            redacted_ +
                                            " does not match the SHA-256 its manifest records");
    }
    sha = name;
    verified = recorded.has_value();
    store.put_blob(sha, b.bytes());  // new, or in place of a damaged one
    std::optional<Buffer> written = store.map_blob(sha, b.size());
    if (!written) {
      throw Error(ErrorCode::kInternal, "cache: " + store.blob_path(sha).string() +
                                            ", just stored for " + redacted_ +
                                            ", cannot be read back");
    }
    return *written;
  }

  // Fetches the model, storing each weight file as it arrives (unless
  // held), publishes the snapshot, evicts down to max_bytes, and serves the
  // model from its blobs. The fill holds a few weight files in memory (the
  // nested load's queue), not the model: writing overlaps the transfer.
  // `version`: the token a stat made before this fill already read (it
  // must come before the load: a model replaced in between is then fetched
  // again, never recorded as newer).
  ModelArtifacts fill(const CacheStore& store, plugin::Call& call,
                      std::optional<std::string> version) const {
    if (!version) version = inner_version(call).version;
    const Clock::time_point fetched_at = now_ms();
    Snapshot s;
    s.url = normalise_url(inner_url_);
    s.version = *version;
    s.fetched_at = fetched_at;
    s.validated_at = fetched_at;
    std::optional<ModelArtifacts> model;
    std::vector<std::optional<std::string>> paths;
    std::vector<std::optional<std::string>> recorded;
    // One per weight buffer, filled by the task that stores it; a deque, so
    // that adding one never moves those a task is filling.
    struct Stored {
      std::optional<std::string> path;
      uint64_t size = 0;
      std::string sha;
      bool verified = false;
      Buffer mapped;
    };
    std::deque<Stored> stored;
    {
      // Shared with readers, exclusive of eviction: the blobs written here
      // cannot be collected before the snapshot naming them is published.
      FileLock shared = store.lock_cache(FileLock::Mode::kShared);
      const bool checked = host_checked_digests(call);
      // Blobs are stored kWriters at a time, beside the load's own threads:
      // a write that waits for the file system does not stop the next one.
      // Declared after everything its tasks use, so an unwinding fill
      // waits for them before those go.
      std::deque<std::future<void>> writing;
      auto finish_one = [&writing] {
        std::future<void> oldest = std::move(writing.front());
        writing.pop_front();
        oldest.get();  // rethrows the task's error
      };
      inner_->load_stream_json(
          call,
          [&](std::string_view json) {
            s.artifacts_json = std::string(json);
            model = parse_model_json(json, redacted_);
            if (!model->weights_manifest) return;
            for (const WeightGroup& g : *model->weights_manifest) {
              for (size_t i = 0; i < g.paths.size(); ++i) {
                paths.emplace_back(g.paths[i]);
                recorded.push_back(g.sha256 ? std::optional<std::string>((*g.sha256)[i])
                                            : std::nullopt);
              }
            }
          },
          [&](uint64_t index, Buffer b) {
            if (!model) {
              throw Error(ErrorCode::kInternal,
                          "cache: the load of " + redacted_ + " gave a buffer before its JSON");
            }
            const bool manifest = model->weights_manifest.has_value();
            if (index != stored.size() || (manifest && index >= paths.size())) {
              throw Error(ErrorCode::kInternal, "cache: the load of " + redacted_ +
                                                    " gave weight buffer " + std::to_string(index) +
                                                    " out of place");
            }
            while (writing.size() >= kWriters) finish_one();
            Stored& slot = stored.emplace_back();
            slot.path = manifest ? paths[index] : std::nullopt;
            slot.size = b.size();
            const std::optional<std::string> digest = manifest ? recorded[index] : std::nullopt;
            // The task owns b: the nested load's queue moves on once it is stored.
            writing.push_back(std::async(
                std::launch::async, [this, &store, &slot, digest, checked, b = std::move(b)] {
                  slot.mapped =
                      store_blob(store, b, digest, checked, slot.path, slot.sha, slot.verified);
                }));
          });
      while (!writing.empty()) finish_one();
      if (!model) {
        throw Error(ErrorCode::kInternal,
                    "cache: the load of " + redacted_ + " ended without its model JSON");
      }
      if (model->weights_manifest && stored.size() != paths.size()) {
        throw Error(ErrorCode::kInternal,
                    "cache: the load of " + redacted_ + " gave " + std::to_string(stored.size()) +
                        " weight buffers for " + std::to_string(paths.size()) + " manifest paths");
      }
      for (const Stored& f : stored) s.files.push_back({f.path, f.size, f.sha});
      s.has_weight_data = !s.files.empty() || model->weight_specs.has_value() ||
                          model->weights_manifest.has_value();
      call.check();  // cancelled or late: publish nothing
      store.publish_snapshot(key_, s);
    }
    WeightData served;
    for (size_t i = 0; i < stored.size(); ++i) {
      // And so the host need not check them a second time on the way out
      // (abi.h sink_mark_verified: checked once per load).
      if (stored[i].verified) call.mark_verified(i, stored[i].sha);
      served.push_back(std::move(stored[i].mapped));
    }
    if (store.blob_bytes() > *max_bytes_) {
      FileLock exclusive = store.lock_cache(FileLock::Mode::kExclusive);
      Eviction e = store.evict(*max_bytes_, key_);
      if (!e.models.empty()) {
        plugin::log(1, "cache: evicted " + std::to_string(e.models.size()) + " models (" +
                           std::to_string(e.bytes_before - e.bytes_after) + " bytes) from " +
                           dir_.string() + " to stay under max_bytes");
      }
    }
    if (s.has_weight_data) model->weight_data = std::move(served);
    return std::move(*model);
  }

  static ModelStat stat_of(const Snapshot& s) {
    ModelStat out;
    out.model = parse_model_json(s.artifacts_json, s.url);
    out.version = s.version;
    uint64_t bytes = 0;
    for (const CachedFile& f : s.files) bytes += f.size;
    out.info = plugin::stat_info(out.model, bytes, s.files.size());
    return out;
  }

  std::string redacted_;
  std::string inner_url_;
  std::string key_;
  fs::path dir_;
  std::chrono::seconds max_age_{0};
  bool offline_ = false;
  bool stale_if_error_ = true;
  std::optional<plugin::NestedUrl> inner_;
  std::mutex store_mu_;  // guards store_ and max_bytes_ until they are set
  std::optional<CacheStore> store_;
  std::optional<uint64_t> max_bytes_;
};

}  // namespace
}  // namespace stowage::cache

STOWAGE_PLUGIN(stowage::cache::CacheHandler, "cache", STOWAGE_PLUGIN_VERSION,
               STOWAGE_CAP_LOAD | STOWAGE_CAP_LIST | STOWAGE_CAP_STAT, "cache");
