#include "memfd_body.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "stowage/error.hpp"

namespace stowage::net {
namespace {

// A bigger pipe means fewer splice calls per body; the unprivileged maximum
// (fs.pipe-max-size) is 1 MiB by default, and a refusal keeps the 64 KiB one.
constexpr int kPipeBytes = 1 << 20;

// Writes n bytes at `offset` of fd; errno on failure (ENOSPC for a short
// write that made no progress), 0 on success.
int write_fully_at(int fd, uint64_t offset, const uint8_t* data, uint64_t n) {
  while (n > 0) {
    const ssize_t put = ::pwrite(fd, data, static_cast<size_t>(n), static_cast<off_t>(offset));
    if (put < 0 && errno == EINTR) continue;
    if (put <= 0) return put < 0 ? errno : ENOSPC;
    data += put;
    offset += static_cast<uint64_t>(put);
    n -= static_cast<uint64_t>(put);
  }
  return 0;
}

// A read-only shared mapping of the first `size` bytes of fd, owned by the
// Buffer; size 0 is an empty Buffer. errno on failure.
int map_read_only(int fd, uint64_t size, const std::string& label, Buffer& out) {
  if (size == 0) {
    out = Buffer::wrap(nullptr, 0, nullptr, label);
    return 0;
  }
  void* p = ::mmap(nullptr, static_cast<size_t>(size), PROT_READ, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return errno;
  const size_t n = static_cast<size_t>(size);
  std::shared_ptr<const void> owner(p, [n](const void* q) { ::munmap(const_cast<void*>(q), n); });
  out = Buffer::wrap(static_cast<const uint8_t*>(p), size, std::move(owner), label);
  return 0;
}

}  // namespace

SplicePipe::SplicePipe() {
  if (::pipe2(fds_, O_CLOEXEC | O_NONBLOCK) != 0) {
    const int err = errno;
    throw Error(
        ErrorCode::kResourceExhausted,
        std::string("cannot create a pipe to receive a response body: ") + std::strerror(err));
  }
  (void)::fcntl(fds_[1], F_SETPIPE_SZ, kPipeBytes);
}

SplicePipe::~SplicePipe() {
  ::close(fds_[0]);
  ::close(fds_[1]);
}

SharedBody::SharedBody(uint64_t size, std::string label) : size_(size), label_(std::move(label)) {
  fd_ = ::memfd_create("stowage-body", MFD_CLOEXEC);
  int err = fd_ < 0 ? errno : 0;
  if (err == 0 && ::ftruncate(fd_, static_cast<off_t>(size_)) != 0) err = errno;
  if (err != 0) {
    if (fd_ >= 0) ::close(fd_);
    throw Error(ErrorCode::kResourceExhausted, "cannot create a memfd for the " +
                                                   std::to_string(size_) + "-byte body of " +
                                                   label_ + ": " + std::strerror(err));
  }
}

SharedBody::~SharedBody() { ::close(fd_); }

void SharedBody::write_at(uint64_t offset, const uint8_t* data, uint64_t n) {
  if (offset > size_ || n > size_ - offset) {
    throw Error(ErrorCode::kInternal, "bytes " + std::to_string(offset) + " to " +
                                          std::to_string(offset + n) + " are outside the " +
                                          std::to_string(size_) + "-byte body of " + label_);
  }
  if (int err = write_fully_at(fd_, offset, data, n); err != 0) {
    throw Error(ErrorCode::kResourceExhausted, "cannot store the " + std::to_string(size_) +
                                                   "-byte body of " + label_ + ": " +
                                                   std::strerror(err));
  }
}

Buffer SharedBody::map() const {
  Buffer out;
  if (int err = map_read_only(fd_, size_, label_, out); err != 0) {
    throw Error(ErrorCode::kResourceExhausted, "cannot map the " + std::to_string(size_) +
                                                   "-byte body of " + label_ + ": " +
                                                   std::strerror(err));
  }
  return out;
}

MemfdBody::MemfdBody(uint64_t size, std::string label) : size_(size), label_(std::move(label)) {
  fd_ = ::memfd_create("stowage-body", MFD_CLOEXEC);
  if (fd_ < 0) fail("cannot create a memfd for", errno);
}

MemfdBody::MemfdBody(SharedBody& into, uint64_t offset, uint64_t size, std::string label)
    : size_(size), label_(std::move(label)), fd_(into.fd()), owns_fd_(false), base_(offset) {
  if (offset > into.size() || size > into.size() - offset) {
    throw Error(ErrorCode::kInternal, "bytes " + std::to_string(offset) + " to " +
                                          std::to_string(offset + size) + " are outside the " +
                                          std::to_string(into.size()) + "-byte body of " +
                                          into.label());
  }
}

MemfdBody::~MemfdBody() {
  if (owns_fd_ && fd_ >= 0) ::close(fd_);
}

void MemfdBody::fail(const std::string& what, int err) const {
  throw Error(ErrorCode::kResourceExhausted, what + " the " + std::to_string(size_) +
                                                 "-byte body of " + label_ + ": " +
                                                 std::strerror(err));
}

void MemfdBody::append(const uint8_t* data, uint64_t n) {
  if (n > size_ - received_) {
    throw Error(ErrorCode::kInternal, "more bytes than the " + std::to_string(size_) +
                                          "-byte body of " + label_ + " were appended");
  }
  if (int err = write_fully_at(fd_, base_ + received_, data, n); err != 0)
    fail("cannot store", err);
  received_ += n;
}

int64_t MemfdBody::splice_from(int socket_fd, const SplicePipe& pipe) {
  const uint64_t want = size_ - received_;
  if (want == 0) return 0;
  ssize_t got;
  do {
    got = ::splice(socket_fd, nullptr, pipe.write_end(), nullptr, static_cast<size_t>(want),
                   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
  } while (got < 0 && errno == EINTR);
  if (got < 0) return -errno;
  // Drain the pipe whole before the next read, so that a full pipe never
  // looks like an empty socket. The offset is explicit: a SharedBody's
  // ranges are written by several connections at once.
  loff_t at = static_cast<loff_t>(base_ + received_);
  for (ssize_t left = got; left > 0;) {
    const ssize_t put =
        ::splice(pipe.read_end(), nullptr, fd_, &at, static_cast<size_t>(left), SPLICE_F_MOVE);
    if (put < 0 && errno == EINTR) continue;
    if (put <= 0) fail("cannot store", put < 0 ? errno : ENOSPC);
    left -= put;
  }
  received_ += static_cast<uint64_t>(got);
  return got;
}

Buffer MemfdBody::finish() {
  if (received_ != size_) {
    throw Error(ErrorCode::kInternal, "the body of " + label_ + " was mapped after " +
                                          std::to_string(received_) + " of " +
                                          std::to_string(size_) + " bytes");
  }
  if (!owns_fd_) return Buffer::wrap(nullptr, 0, nullptr, label_);
  Buffer out;
  if (int err = map_read_only(fd_, size_, label_, out); err != 0) fail("cannot map", err);
  // The mapping keeps the memfd's pages; the descriptor is not needed.
  ::close(fd_);
  fd_ = -1;
  return out;
}

}  // namespace stowage::net
