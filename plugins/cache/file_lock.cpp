#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>

#include "file_lock_internal.hpp"
#include "stowage/plugin.hpp"

namespace stowage::cache {

FileLock::FileLock(const std::string& path, Mode mode) {
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw plugin::errno_error(errno, "Cannot open the cache lock " + path);
  const int op = mode == Mode::kShared ? LOCK_SH : LOCK_EX;
  while (::flock(fd_, op) != 0) {
    if (errno == EINTR) continue;
    const int err = errno;
    ::close(fd_);
    throw plugin::errno_error(err, "Cannot lock " + path);
  }
}

FileLock::~FileLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the last descriptor releases the lock
}

}  // namespace stowage::cache
