// The byte writer of the file:// plugin (weight_writer_internal.hpp).
#include <limits.h>
#include <sys/mman.h>

#include <algorithm>

#include "weight_writer_internal.hpp"

namespace stowage::file {

namespace {

// Faults in the pages of a source buffer before write() copies from it. A
// write from pages not yet mapped (a freshly mmapped shard) copies short,
// and the filesystem then zeroes and retries the whole page-cache folio:
// several times slower than the copy itself. Older kernels lack the advice;
// the write then simply runs slower.
void populate(const void* data, size_t size) {
  static const uintptr_t kPage = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  auto begin = reinterpret_cast<uintptr_t>(data) & ~(kPage - 1);
  auto end = reinterpret_cast<uintptr_t>(data) + size;
#ifdef MADV_POPULATE_READ
  ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_POPULATE_READ);
#endif
}

}  // namespace

uint64_t copy_from_file(const MappedRange& source, uint64_t size, int out, const std::string& path,
                        plugin::Call& call) {
  Fd in(::open(source.file.path.c_str(), O_RDONLY | O_CLOEXEC));
  struct stat st;
  if (!in || ::fstat(in.get(), &st) != 0 || st.st_dev != source.file.dev ||
      st.st_ino != source.file.ino || static_cast<uint64_t>(st.st_size) < source.offset + size) {
    return 0;
  }
  auto offset = static_cast<loff_t>(source.offset);
  uint64_t done = 0;
  while (done < size) {
    const auto want = static_cast<size_t>(std::min(size - done, kWriteChunk));
    const ssize_t n = ::copy_file_range(in.get(), &offset, out, nullptr, want, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      // Nothing written yet by this call: the rest goes through write().
      if (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP ||
          errno == EBADF) {
        return done;
      }
      throw errno_error(errno, "Cannot write " + path);
    }
    if (n == 0) return done;  // the file shrank under us: write from the mapping
    done += static_cast<uint64_t>(n);
    call.advance(static_cast<uint64_t>(n));
    call.check();
  }
  return done;
}

WeightFileWriter::WeightFileWriter(int dir, const std::string& key, std::string path, bool durable)
    : path_(std::move(path)), durable_(durable) {
  if (key.find('/') != std::string::npos) {
    throw Error(ErrorCode::kInternal, "file:// writes no subfolders: " + path_);
  }
  fd_ = Fd(::openat(dir, key.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666));
  if (!fd_) throw errno_error(errno, "Cannot create " + path_);
}

void WeightFileWriter::write_all(const std::vector<Buffer>& pieces, plugin::Call& call) {
  for (const Buffer& piece : pieces) {
    const uint8_t* p = piece.data();
    uint64_t copied = 0;
    if (auto source = MappedFiles::instance().find(p, piece.size())) {
      if (!iov_.empty()) flush(call);
      copied = copy_from_file(*source, piece.size(), fd_.get(), path_, call);
      p += copied;
    }
    for (uint64_t left = piece.size() - copied; left > 0;) {
      uint64_t k = std::min(left, kWriteChunk - batch_);
      iov_.push_back({const_cast<uint8_t*>(p), static_cast<size_t>(k)});
      p += k;
      left -= k;
      batch_ += k;
      if (batch_ == kWriteChunk || iov_.size() == IOV_MAX) flush(call);
    }
  }
  if (!iov_.empty()) flush(call);
}

void WeightFileWriter::close(plugin::Call&) {
  if (durable_ && ::fdatasync(fd_.get()) != 0) {
    throw errno_error(errno, "Cannot sync " + path_);
  }
  if (fd_.close() != 0) throw errno_error(errno, "Cannot write " + path_);
}

void WeightFileWriter::flush(plugin::Call& call) {
  for (const iovec& v : iov_) populate(v.iov_base, v.iov_len);
  size_t first = 0;
  while (first < iov_.size()) {
    ssize_t n = ::writev(fd_.get(), iov_.data() + first,
                         static_cast<int>(std::min<size_t>(iov_.size() - first, IOV_MAX)));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw errno_error(errno, "Cannot write " + path_);
    }
    for (auto left = static_cast<size_t>(n); left > 0;) {
      size_t k = std::min(left, iov_[first].iov_len);
      iov_[first].iov_base = static_cast<char*>(iov_[first].iov_base) + k;
      iov_[first].iov_len -= k;
      left -= k;
      if (iov_[first].iov_len == 0) ++first;
    }
    while (first < iov_.size() && iov_[first].iov_len == 0) ++first;
  }
  call.advance(batch_);
  call.check();
  iov_.clear();
  batch_ = 0;
}

}  // namespace stowage::file
