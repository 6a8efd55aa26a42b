// The byte writer of the file:// plugin's saves: one new file in a save's
// temporary folder, filled from the caller's buffers with writev in batches,
// or file to file with copy_file_range when the bytes are a mapping of a
// file this plugin loaded (mapped_files_internal.hpp), and synced at close
// unless the save is not durable.
// Thread-safety: a WeightFileWriter belongs to one thread at a time; the
// free functions are stateless.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <string>
#include <vector>

#include "file_internal.hpp"
#include "mapped_files_internal.hpp"
#include "stowage/blob_store.hpp"

#pragma GCC visibility push(hidden)

namespace stowage::file {

// Progress and cancellation granularity of every write: bytes between two
// Call::advance/check.
inline constexpr uint64_t kWriteChunk = 8ull << 20;

// Copies size bytes of a file this plugin mapped into out with
// copy_file_range, so the kernel moves page cache to page cache (or shares
// extents) instead of write() copying out of the mapping. Returns the bytes
// copied; the caller writes the rest from the mapping. That is everything
// when the file was replaced since it was mapped or the kernel or the
// filesystems cannot copy between these files. Throws naming path for any
// other failure.
uint64_t copy_from_file(const MappedRange& source, uint64_t size, int out, const std::string& path,
                        plugin::Call& call);

// One new file `key` in the open folder dir (which must not hold it yet),
// named `path` in messages. Reports bytes with call.advance() at most every
// kWriteChunk and stops early with call.check().
class WeightFileWriter final : public plugin::BlobStore::Transaction::Writer {
 public:
  // Throws Error(kInternal) for a key with a '/', and errno's error naming
  // path when the file cannot be created (EEXIST: it exists already).
  WeightFileWriter(int dir, const std::string& key, std::string path, bool durable);

  void write(const Buffer& piece, plugin::Call& call) override { write_all({piece}, call); }
  void write_all(const std::vector<Buffer>& pieces, plugin::Call& call);
  // fdatasync when durable, then close; a deferred write error shows here.
  void close(plugin::Call& call) override;

 private:
  void flush(plugin::Call& call);

  const std::string path_;
  const bool durable_;
  Fd fd_;
  std::vector<iovec> iov_;
  uint64_t batch_ = 0;
};

}  // namespace stowage::file

#pragma GCC visibility pop
