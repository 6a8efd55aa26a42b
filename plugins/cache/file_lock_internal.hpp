// An flock(2) lock on a file of the cache's locks/ folder, held for the
// life of the object. Each FileLock opens the file itself, so two threads of
// one process exclude each other as two processes do (flock locks belong to
// the open file description), and the kernel drops the lock when a process
// dies, so a killed fill never leaves a lock behind.
//
// Thread-safety: one object per holder. Ownership: owns its descriptor;
// the destructor unlocks and closes it.
#pragma once

#include <string>
#include <utility>

#pragma GCC visibility push(hidden)

namespace stowage::cache {

class FileLock {
 public:
  enum class Mode { kShared, kExclusive };

  // Blocks until the lock is granted. Throws Error naming path when the
  // file cannot be opened or locked.
  FileLock(const std::string& path, Mode mode);
  ~FileLock();
  FileLock(FileLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  FileLock& operator=(FileLock&&) = delete;
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace stowage::cache

#pragma GCC visibility pop
