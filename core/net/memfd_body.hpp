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
// A SharedBody is one memfd that several responses fill, each its own byte
// range (the parallel ranged GETs of one large object), then handed out as
// one mapping: the parts are never joined by a copy.
//
// Thread-safety: SplicePipe and MemfdBody are used by one thread at a time;
// a SharedBody's ranges may be written from several threads at once (they
// never overlap), map() once they are all written.
// Ownership: a MemfdBody owns its memfd until finish(), unless it fills a
// range of a SharedBody (which must outlive it); the Buffer finish() or
// map() returns owns the mapping, unmapped when its last reference is
// dropped.
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

class SharedBody {
 public:
  // A memfd of `size` bytes; `label` names it in errors and becomes the
  // mapping's label. Throws Error(kResourceExhausted) naming label when no
  // memfd of that size can be made.
  SharedBody(uint64_t size, std::string label);
  ~SharedBody();
  SharedBody(const SharedBody&) = delete;
  SharedBody& operator=(const SharedBody&) = delete;

  uint64_t size() const noexcept { return size_; }
  const std::string& label() const noexcept { return label_; }
  int fd() const noexcept { return fd_; }

  // Copies n bytes to `offset` (a part received elsewhere). Throws as the
  // constructor does, or kInternal past size().
  void write_at(uint64_t offset, const uint8_t* data, uint64_t n);

  // The whole as one read-only mapping. Throws Error(kResourceExhausted)
  // naming label when it cannot be mapped.
  Buffer map() const;

 private:
  uint64_t size_;
  std::string label_;
  int fd_ = -1;
};

class MemfdBody {
 public:
  // A body of exactly `size` bytes; `label` (the redacted URL) names it in
  // errors and becomes the Buffer's label. Throws Error(kResourceExhausted)
  // naming label when no memfd can be made.
  MemfdBody(uint64_t size, std::string label);
  // A body of `size` bytes that fills [offset, offset + size) of `into`;
  // finish() then returns an empty Buffer (map `into` once every range is
  // in). Throws Error(kInternal) when the range is not inside `into`.
  MemfdBody(SharedBody& into, uint64_t offset, uint64_t size, std::string label);
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

  // The whole body as a read-only mapping (empty when it fills a range of
  // a SharedBody); requires received() == size(). Throws
  // Error(kResourceExhausted) naming label when it cannot be mapped,
  // kInternal before the body is complete.
  Buffer finish();

 private:
  [[noreturn]] void fail(const std::string& what, int err) const;

  uint64_t size_;
  uint64_t received_ = 0;
  std::string label_;
  int fd_ = -1;
  bool owns_fd_ = true;
  uint64_t base_ = 0;  // where this body starts in the memfd
};

}  // namespace stowage::net
