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

MemfdBody::MemfdBody(uint64_t size, std::string label) : size_(size), label_(std::move(label)) {
  fd_ = ::memfd_create("stowage-body", MFD_CLOEXEC);
  if (fd_ < 0) fail("cannot create a memfd for", errno);
}

MemfdBody::~MemfdBody() {
  if (fd_ >= 0) ::close(fd_);
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
  while (n > 0) {
    const ssize_t put = ::write(fd_, data, static_cast<size_t>(n));
    if (put < 0 && errno == EINTR) continue;
    if (put <= 0) fail("cannot store", put < 0 ? errno : ENOSPC);
    data += put;
    n -= static_cast<uint64_t>(put);
    received_ += static_cast<uint64_t>(put);
  }
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
  // looks like an empty socket.
  for (ssize_t left = got; left > 0;) {
    const ssize_t put =
        ::splice(pipe.read_end(), nullptr, fd_, nullptr, static_cast<size_t>(left), SPLICE_F_MOVE);
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
  if (size_ == 0) return Buffer::wrap(nullptr, 0, nullptr, label_);
  void* p = ::mmap(nullptr, static_cast<size_t>(size_), PROT_READ, MAP_SHARED, fd_, 0);
  if (p == MAP_FAILED) fail("cannot map", errno);
  // The mapping keeps the memfd's pages; the descriptor is not needed.
  ::close(fd_);
  fd_ = -1;
  const size_t n = static_cast<size_t>(size_);
  std::shared_ptr<const void> owner(p, [n](const void* q) { ::munmap(const_cast<void*>(q), n); });
  return Buffer::wrap(static_cast<const uint8_t*>(p), size_, std::move(owner), label_);
}

}  // namespace stowage::net
