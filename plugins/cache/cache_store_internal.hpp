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
// Thread-safety: every member function may be called from several threads
// and processes at once; cross-process exclusion is the caller's, through
// lock_model() and lock_cache(). Ownership: holds paths only.
#pragma once

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

// What one eviction removed.
struct Eviction {
  uint64_t bytes_before = 0;
  uint64_t bytes_after = 0;
  std::vector<std::string> models;  // the normalised URLs of the models removed
  uint64_t blobs = 0;               // blob files removed
};

class CacheStore {
 public:
  // Creates the layout under root when it is missing (several processes
  // may do so at once). Throws Error(kUnimplemented) for a layout version
  // this code does not know, and an errno Error naming the path when the
  // folder cannot be made.
  explicit CacheStore(std::filesystem::path root);

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

  bool has_blob(const std::string& sha256) const;
  // Stores bytes as the blob sha256 (tmp/, fsync, rename); the caller has
  // checked that they hash to it.
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

  // Removes least-recently-used whole models (oldest snapshot mtime first,
  // never `keep`) until the blobs take at most max_bytes, then every blob
  // no remaining snapshot names. REQUIRES: lock_cache(kExclusive) held.
  Eviction evict(uint64_t max_bytes, const std::string& keep) const;
  // Bytes of every blob file.
  uint64_t blob_bytes() const;

 private:
  // Writes bytes to a new file in tmp/ and renames it to `to`.
  void write_atomically(const std::filesystem::path& to, std::span<const uint8_t> bytes) const;

  std::filesystem::path root_;
};

}  // namespace stowage::cache

#pragma GCC visibility pop
