#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include "http_util_internal.hpp"
#include "resource_internal.hpp"
#include "stowage/digest.hpp"
#include "stowage/error.hpp"

namespace stowage::serve {
namespace {

// Small files (model.json, static pages) are read: mapping costs a page
// fault per page and an munmap that interrupts every thread of the server,
// more than copying a few pages.
constexpr uint64_t kReadRatherThanMapBytes = 256 * 1024;

Error errno_error(int err, const std::string& what) {
  const ErrorCode code = (err == ENOENT || err == ENOTDIR || err == ELOOP) ? ErrorCode::kNotFound
                         : (err == EACCES || err == EPERM) ? ErrorCode::kPermissionDenied
                                                           : ErrorCode::kInternal;
  return Error(code, what + ": " + std::strerror(err));
}

std::string hex(uint64_t v) {
  char text[24];
  std::snprintf(text, sizeof text, "%llx", static_cast<unsigned long long>(v));
  return text;
}

}  // namespace

UniqueFd& UniqueFd::operator=(UniqueFd&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.release();
  }
  return *this;
}

UniqueFd::~UniqueFd() {
  if (fd_ >= 0) ::close(fd_);
}

UniqueFd open_folder(int at_fd, const std::string& relative, const std::string& label) {
  const int fd = ::openat(at_fd, relative.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw errno_error(errno, "cannot open " + label);
  return UniqueFd(fd);
}

Resource read_file_at(int dir_fd, const std::string& name, const std::string& label,
                      std::string content_type) {
  UniqueFd fd(::openat(dir_fd, name.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  if (fd.get() < 0) throw errno_error(errno, "cannot open " + label);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw errno_error(errno, "cannot stat " + label);
  if (!S_ISREG(st.st_mode)) throw Error(ErrorCode::kNotFound, label + " is not a regular file");

  Resource r;
  r.content_type = std::move(content_type);
  const uint64_t mtime_ns = static_cast<uint64_t>(st.st_mtim.tv_sec) * 1000000000ull +
                            static_cast<uint64_t>(st.st_mtim.tv_nsec);
  r.etag = "\"" + hex(static_cast<uint64_t>(st.st_ino)) + "-" +
           hex(static_cast<uint64_t>(st.st_size)) + "-" + hex(mtime_ns) + "\"";
  const auto size = static_cast<uint64_t>(st.st_size);
  if (size == 0) return r;
  if (size <= kReadRatherThanMapBytes) {
    std::vector<uint8_t> bytes(size);
    uint64_t got = 0;
    while (got < size) {
      const ssize_t n = ::pread(fd.get(), bytes.data() + got, size - got, static_cast<off_t>(got));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw errno_error(errno, "cannot read " + label);
      // Stores replace files and never truncate one in place: a file
      // shorter than fstat said was edited by someone else while it was read.
      if (n == 0) throw Error(ErrorCode::kUnavailable, label + " changed while it was read");
      got += static_cast<uint64_t>(n);
    }
    r.data.push_back(Buffer::from_vector(std::move(bytes), label));
    return r;
  }
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd.get(), 0);
  if (map == MAP_FAILED) throw errno_error(errno, "cannot map " + label);
  // The mapping keeps the bytes readable after the store replaces or
  // deletes the file (stores write new files; they never truncate in place).
  std::shared_ptr<const void> owner(
      map, [size](const void* p) { ::munmap(const_cast<void*>(p), size); });
  r.data.push_back(Buffer::wrap(static_cast<const uint8_t*>(map), size, owner, label));
  return r;
}

Resource read_static_file(int root_fd, const std::vector<std::string>& path) {
  UniqueFd dir(::dup(root_fd));
  if (dir.get() < 0) throw errno_error(errno, "cannot open the static folder");
  std::string label = "static file /";
  for (size_t i = 0; i < path.size(); ++i) {
    label += path[i];
    const int fd =
        ::openat(dir.get(), path[i].c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) throw errno_error(errno, "cannot open " + label);
    UniqueFd next(fd);
    struct stat st {};
    if (::fstat(next.get(), &st) != 0) throw errno_error(errno, "cannot stat " + label);
    if (S_ISDIR(st.st_mode)) {
      dir = std::move(next);
      label += "/";
      continue;
    }
    if (i + 1 != path.size()) throw Error(ErrorCode::kNotFound, label + " is not a folder");
    return read_file_at(dir.get(), path[i], label, std::string(media_type_for(path[i])));
  }
  return read_file_at(dir.get(), "index.html", label + "index.html",
                      std::string(media_type_for("index.html")));
}

std::string sha256_of(const WeightData& data) {
  Sha256 hash;
  for (const Buffer& b : data) hash.update(std::span<const uint8_t>(b.data(), b.size()));
  return hash.finish_hex();
}

}  // namespace stowage::serve
