// Which file each weight mapping handed out by the file:// plugin came from.
//
// A save of bytes that this plugin loaded (file:// to file://, a model a
// host loaded and saves elsewhere) can then ask the kernel to copy file to
// file with copy_file_range: page cache to page cache, or a reflink where
// the filesystem shares extents, instead of write() copying every byte out
// of the mapping. A file is remembered by path and inode, not by an open
// descriptor, so holding a model with thousands of shards costs no file
// descriptors; the inode check makes a file replaced since it was mapped
// fall back to writing from the mapping.
//
// Thread-safety: every member function is safe to call from several threads.
// Ownership: entries are added when a mapping is made and removed by its
// unmapping owner, before munmap.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#pragma GCC visibility push(hidden)

namespace stowage::file {

struct MappedFile {
  std::string path;  // absolute, as the mapping was made
  dev_t dev = 0;
  ino_t ino = 0;
  uint64_t size = 0;  // bytes mapped, from file offset 0
};

// A byte range found inside one mapping: its file and the offset there.
struct MappedRange {
  MappedFile file;
  uint64_t offset = 0;
};

class MappedFiles {
 public:
  static MappedFiles& instance() {
    static MappedFiles* files = new MappedFiles;  // never destroyed: owners may outlive statics
    return *files;
  }

  void add(const void* address, MappedFile file) {
    std::lock_guard lock(mutex_);
    by_address_[reinterpret_cast<uintptr_t>(address)] = std::move(file);
  }

  void remove(const void* address) {
    std::lock_guard lock(mutex_);
    by_address_.erase(reinterpret_cast<uintptr_t>(address));
  }

  // The mapping that holds all of [data, data + size), if one does.
  std::optional<MappedRange> find(const void* data, uint64_t size) const {
    const auto begin = reinterpret_cast<uintptr_t>(data);
    std::lock_guard lock(mutex_);
    auto it = by_address_.upper_bound(begin);
    if (it == by_address_.begin()) return std::nullopt;
    --it;
    const uint64_t offset = begin - it->first;
    if (offset > it->second.size || size > it->second.size - offset) return std::nullopt;
    return MappedRange{it->second, offset};
  }

 private:
  mutable std::mutex mutex_;
  std::map<uintptr_t, MappedFile> by_address_;
};

}  // namespace stowage::file

#pragma GCC visibility pop
