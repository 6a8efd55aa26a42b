// Buffer: an immutable run of bytes kept alive by a shared owner, so weight
// shards move between plugins (mmap regions, stored blobs, host memory)
// without copies. WeightData is TF.js's `ArrayBuffer | ArrayBuffer[]`: an
// ordered list whose concatenation is the weight bytes.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace stowage {

// Thread-safety: a Buffer is immutable; copies share the owner and may be used
// and destroyed on any thread. Ownership: the bytes live until the last copy
// (and every slice) is gone.
class Buffer {
 public:
  Buffer() = default;

  // Takes the vector; no copy of the bytes.
  static Buffer from_vector(std::vector<uint8_t>&& bytes, std::string label = {});
  static Buffer from_string(std::string&& bytes, std::string label = {});
  // Copies bytes into a new heap block.
  static Buffer copy_of(std::span<const uint8_t> bytes, std::string label = {});
  // Borrows data; owner keeps it valid (owner may be null for static data).
  static Buffer wrap(const uint8_t* data, uint64_t size, std::shared_ptr<const void> owner,
                     std::string label = {});

  const uint8_t* data() const noexcept { return data_; }
  uint64_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  std::span<const uint8_t> bytes() const noexcept { return {data_, static_cast<size_t>(size_)}; }
  std::string_view view() const noexcept {
    return {reinterpret_cast<const char*>(data_), static_cast<size_t>(size_)};
  }
  // Where the bytes came from (file path or URL), for error messages; may be empty.
  const std::string& label() const noexcept { return label_; }
  void set_label(std::string label) { label_ = std::move(label); }
  const std::shared_ptr<const void>& owner() const noexcept { return owner_; }

  // Shares the owner. REQUIRES: offset + length <= size().
  Buffer slice(uint64_t offset, uint64_t length) const;

 private:
  std::shared_ptr<const void> owner_;
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
  std::string label_;
};

using WeightData = std::vector<Buffer>;

uint64_t total_size(const WeightData& data) noexcept;

// CompositeArrayBuffer.slice over the concatenation, clamped like
// ArrayBuffer.slice: copies bytes [begin, end) into a fresh vector.
std::vector<uint8_t> slice_bytes(const WeightData& data, uint64_t begin, uint64_t end);

// Copies `length` bytes starting at `offset` of the concatenation into dst.
// REQUIRES: offset + length <= total_size(data).
void copy_bytes(const WeightData& data, uint64_t offset, uint64_t length, uint8_t* dst);

// The concatenation as one buffer; no copy when data has exactly one buffer.
Buffer join(const WeightData& data);

}  // namespace stowage
