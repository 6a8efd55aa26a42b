// What the server sends for a GET: bytes (possibly several Buffers, e.g.
// mmapped files or a model's weight blocks, sent without joining them) with
// their entity tag and media type; and reading files for it from a folder.
// Thread-safety: Resources are immutable once built; the functions keep no
// state.
#pragma once

#include <string>
#include <vector>

#include "stowage/buffer.hpp"

namespace stowage::serve {

// How long caches may keep a resource (docs/serve.md, "Caching").
enum class Caching {
  kRevalidate,  // no-cache: stored models change under the same name
  kShortLived,  // model.json: a few seconds, then revalidated
  kImmutable,   // a digest-named weight file: its name fixes its bytes
};

struct Resource {
  WeightData data;
  std::string etag;  // a quoted strong entity tag
  std::string content_type;
  // Lowercase hex SHA-256 of the whole of data (sent as Repr-Digest);
  // empty when not known.
  std::string sha256;
  Caching caching = Caching::kRevalidate;
  uint64_t size() const { return total_size(data); }
};

// An open file descriptor, closed on destruction.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept;
  ~UniqueFd();
  int get() const { return fd_; }
  int release() noexcept {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_ = -1;
};

// Opens a folder. Throws Error(kNotFound) when it does not exist or is not
// a folder, another Error naming `label` otherwise.
UniqueFd open_folder(int at_fd, const std::string& relative, const std::string& label);

// Maps the regular file `name` in the folder dir_fd (never following a
// symbolic link at its last step) and gives it with an entity tag made of
// its inode, size and modification time, which changes whenever a store
// rewrites it. Throws Error(kNotFound) when it is missing or not a
// regular file.
Resource read_file_at(int dir_fd, const std::string& name, const std::string& label,
                      std::string content_type);

// A file of a static folder, by its path segments (already checked: no
// "..", no hidden names); a folder, or the empty path, gives its
// index.html. Symbolic links are not followed. Throws Error(kNotFound).
Resource read_static_file(int root_fd, const std::vector<std::string>& path);

// Lowercase hex SHA-256 of the concatenation of data.
std::string sha256_of(const WeightData& data);

}  // namespace stowage::serve
