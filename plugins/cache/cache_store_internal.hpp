// The on-disk store of the pull-through cache (layout in docs/cache.md):
//
//   <root>/stowage-cache.json        {"layout": 1}: a later layout refuses or upgrades
//   <root>/CACHEDIR.TAG              backup tools skip the folder
//   <root>/blobs/sha256/<2>/<64>     each weight buffer once, named by its SHA-256
//   <root>/models/<key>.json         one snapshot per model (snapshot_internal.hpp)
//   <root>/locks/<key>.lock          held exclusively while one model is filled
//   <root>/locks/cache.lock          shared by readers and fillers, exclusive by eviction
//   <root>/tmp/                      files being written, renamed into place
//
// Every file appears whole or not at all (written to tmp/, fsynced, renamed),
// so a reader sees a complete blob or snapshot or none; a snapshot is
// published only after every blob it names. Blobs are checked against their
// names when they are mapped, never trusted.
//
// The plugin and `stowage cache` (the command line) both use this store, so
// the two agree on the layout and on the locking.
//
// Thread-safety: every member function may be called from several threads
// and processes at once; cross-process exclusion is the caller's, through
// lock_model() and lock_cache(). Ownership: holds paths only.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "file_lock_internal.hpp"
#include "snapshot_internal.hpp"
#include "stowage/buffer.hpp"

#pragma GCC visibility push(hidden)

namespace stowage::cache {

inline constexpr int kLayoutVersion = 1;

// The cache folder when none is given: $STOWAGE_CACHE_DIR, else
// $XDG_CACHE_HOME/stowage, else $HOME/.cache/stowage (empty variables count
// as unset); nullopt when none of them is set.
std::optional<std::filesystem::path> default_cache_dir();

// One file of models/ as found: its key (the file name), when the model was
// last used (the snapshot's mtime) and its snapshot, or why it is unreadable.
struct CachedModel {
  std::string key;
  std::chrono::system_clock::time_point last_used;
  std::optional<Snapshot> snapshot;
  std::string error;  // when snapshot is nullopt
};

// What an eviction removes. Models go whole: first every model last used
// before unused_since, then least-recently-used ones until the blobs still
// named take at most max_bytes; `all` removes every model (clear). Then
// every blob no remaining snapshot names, every unreadable snapshot, and the
// files in tmp/ older than temp_age.
struct EvictionPolicy {
  std::optional<uint64_t> max_bytes;
  std::optional<std::chrono::system_clock::time_point> unused_since;
  bool all = false;
  std::string keep;  // a key never evicted (the model just filled)
  std::chrono::seconds temp_age = std::chrono::hours(1);
};

struct EvictedModel {
  std::string key;
  std::string url;  // the normalised URL
  std::chrono::system_clock::time_point last_used;
  enum class Reason { kUnused, kMaxBytes, kAll } reason = Reason::kMaxBytes;
};

// What one eviction removed.
struct Eviction {
  uint64_t bytes_before = 0;  // blob bytes on disk before
  uint64_t bytes_after = 0;   // and after
  std::vector<EvictedModel> models;
  uint64_t blobs = 0;       // blob files removed
  uint64_t unreadable = 0;  // snapshots removed because they did not parse
  uint64_t temp_files = 0;  // files removed from tmp/
  uint64_t temp_bytes = 0;
};

// One thing wrong in a cache folder (CacheStore::verify).
struct Problem {
  std::string path;
  std::string what;
};

class CacheStore {
 public:
  // Creates the layout under root when it is missing (several processes
  // may do so at once). Throws Error(kUnimplemented) for a layout version
  // this code does not know, and an errno Error naming the path when the
  // folder cannot be made.
  explicit CacheStore(std::filesystem::path root);

  // The cache at root without creating anything: nullopt when root does
  // not exist or is an empty folder (nothing was ever cached there).
  // Throws Error(kInvalidArgument) naming root when it holds files but no
  // stowage-cache.json (not a stowage cache: nothing there is touched), and
  // Error(kUnimplemented) for another layout, as the constructor does.
  static std::optional<CacheStore> open_existing(const std::filesystem::path& root);

  const std::filesystem::path& root() const noexcept { return root_; }
  std::filesystem::path blob_path(const std::string& sha256) const;
  std::filesystem::path snapshot_path(const std::string& key) const;

  // The snapshot of key; nullopt when there is none. A snapshot that does
  // not parse is logged as a warning and read as none (the next fill
  // replaces it).
  std::optional<Snapshot> read_snapshot(const std::string& key) const;
  // Replaces the snapshot of key atomically (tmp/, fsync, rename).
  void publish_snapshot(const std::string& key, const Snapshot& snapshot) const;
  // Marks the model as just used (its snapshot's mtime, which eviction
  // orders by). A snapshot removed meanwhile is left removed.
  void touch(const std::string& key) const;
  void remove_snapshot(const std::string& key) const;

  // A regular file of `size` bytes under the name. One of another size is
  // damaged (a write a crash cut short, an edit): a fill writes it again.
  bool has_blob(const std::string& sha256, uint64_t size) const;
  // Stores bytes as the blob sha256 (tmp/, rename; no fsync: every load
  // hashes a blob against its name, so one a crash cut short is found and
  // fetched again); the caller has checked that they hash to it.
  void put_blob(const std::string& sha256, std::span<const uint8_t> bytes) const;
  // The blob mapped read-only-private (zero copy, labelled with its path);
  // nullopt when it does not exist or its size is not `size`. The bytes are
  // not checked here: see blob_matches.
  std::optional<Buffer> map_blob(const std::string& sha256, uint64_t size) const;
  // True when the mapped bytes hash to the blob's name.
  static bool blob_matches(const std::string& sha256, const Buffer& bytes);
  // The first i (in order) whose buffers[i] does not hash to sha256s[i];
  // nullopt when all match. Hashed on all cores, a file per task, largest
  // first (SHA-256 is serial within a file). REQUIRES: equal sizes.
  static std::optional<size_t> first_mismatch(const std::vector<std::string>& sha256s,
                                              const std::vector<Buffer>& buffers);
  void remove_blob(const std::string& sha256) const;

  FileLock lock_model(const std::string& key) const;
  FileLock lock_cache(FileLock::Mode mode) const;

  // The snapshot file of key as found; nullopt when there is none.
  std::optional<CachedModel> model(const std::string& key) const;
  // Every snapshot file of models/, oldest use first.
  std::vector<CachedModel> models() const;

  // Removes least-recently-used whole models (oldest snapshot mtime first,
  // never `keep`) until the blobs take at most max_bytes, then every blob
  // no remaining snapshot names. REQUIRES: lock_cache(kExclusive) held.
  Eviction evict(uint64_t max_bytes, const std::string& keep) const;
  // The same for any policy (above). REQUIRES: lock_cache(kExclusive) held.
  Eviction evict(const EvictionPolicy& policy) const;
  // Bytes of every blob file.
  uint64_t blob_bytes() const;

  // Everything that is not whole and consistent: a snapshot that does not
  // parse or names a blob that is missing, of another size or whose bytes
  // do not hash to its name; a blob (named or not) whose bytes do not hash
  // to its name; a file in models/ or blobs/ the layout has no place for;
  // a CACHEDIR.TAG that is not whole.
  // Files in tmp/ are not looked at: they are allowed to be partial.
  // Reads every blob. REQUIRES: lock_cache held (shared is enough: fills
  // only ever add whole files).
  std::vector<Problem> verify() const;

 private:
  struct Existing {};
  CacheStore(std::filesystem::path root, Existing);

  // Writes bytes to a new file in tmp/ and renames it to `to`; with
  // kDurable, fsyncs the file before the rename.
  enum class Sync { kDurable, kVerifiedOnRead };
  void write_atomically(const std::filesystem::path& to, std::span<const uint8_t> bytes,
                        Sync sync = Sync::kDurable) const;

  std::filesystem::path root_;
};

}  // namespace stowage::cache

#pragma GCC visibility pop
