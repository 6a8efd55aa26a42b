// UniqueFd: owns one POSIX file descriptor and closes it when destroyed.
// Thread-safety: one object per thread; distinct objects are independent.
// Ownership: the object owns its descriptor until release() hands it back.
#pragma once

#include <unistd.h>

#include <utility>

namespace stowage {

class UniqueFd {
 public:
  UniqueFd() = default;
  // Takes fd, which may be -1 (a failed open: errno still tells why).
  explicit UniqueFd(int fd) noexcept : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = other.release();
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const noexcept { return fd_; }
  explicit operator bool() const noexcept { return fd_ >= 0; }
  // The descriptor, no longer owned (the caller closes it); -1 after.
  int release() noexcept { return std::exchange(fd_, -1); }
  // Closes the descriptor now, ignoring how that went.
  void reset() noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  // Closes now and says how that went (a deferred write error shows here).
  int close() noexcept { return ::close(release()); }

 private:
  int fd_ = -1;
};

}  // namespace stowage
