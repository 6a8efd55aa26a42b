// A large response body received by the kernel straight into shared memory:
// splice(2) moves the bytes from the TCP socket through a pipe into a memfd,
// which is then handed out as one read-only mapping. Fresh anonymous memory
// must be zeroed and faulted in page by page before a receive can fill it;
// a memfd's pages are written once by the kernel, with no user copy and no
// page faults (bench/README.md, "http:// load", has the profile and figures).
//
// Plain TCP only: TLS bodies are decrypted in user space and go into
// populated anonymous memory instead (client.cpp).
//
// Thread-safety: SplicePipe and MemfdBody are used by one thread at a time.
// Ownership: a MemfdBody owns its memfd until finish(); the Buffer finish()
// returns owns the mapping, unmapped when its last reference is dropped.
#pragma once

#include <cstdint>
#include <string>

#include "stowage/buffer.hpp"

namespace stowage::net {

// A pipe to splice through, kept with a connection and reused for every body
// it receives. Throws Error(kResourceExhausted) when no pipe can be made.
class SplicePipe {
 public:
  SplicePipe();
  ~SplicePipe();
  SplicePipe(const SplicePipe&) = delete;
  SplicePipe& operator=(const SplicePipe&) = delete;

  int read_end() const noexcept { return fds_[0]; }
  int write_end() const noexcept { return fds_[1]; }

 private:
  int fds_[2] = {-1, -1};
};

class MemfdBody {
 public:
  // A body of exactly `size` bytes; `label` (the redacted URL) names it in
  // errors and becomes the Buffer's label. Throws Error(kResourceExhausted)
  // naming label when no memfd can be made.
  MemfdBody(uint64_t size, std::string label);
  ~MemfdBody();
  MemfdBody(const MemfdBody&) = delete;
  MemfdBody& operator=(const MemfdBody&) = delete;

  uint64_t size() const noexcept { return size_; }
  uint64_t received() const noexcept { return received_; }

  // Adds bytes already in user space (those that arrived with the head).
  // Throws Error(kResourceExhausted) naming label when memory runs out, or
  // kInternal past size().
  void append(const uint8_t* data, uint64_t n);

  // Moves what the non-blocking socket has now, up to the rest of the body,
  // into the memfd. Returns the bytes moved, or 0 at the end of the stream;
  // -errno for a socket error (-EAGAIN: nothing to read yet). Errors on the
  // memfd side throw as append() does.
  int64_t splice_from(int socket_fd, const SplicePipe& pipe);

  // The whole body as a read-only mapping; requires received() == size().
  // Throws Error(kResourceExhausted) naming label when it cannot be mapped,
  // kInternal before the body is complete.
  Buffer finish();

 private:
  [[noreturn]] void fail(const std::string& what, int err) const;

  uint64_t size_;
  uint64_t received_ = 0;
  std::string label_;
  int fd_ = -1;
};

}  // namespace stowage::net
