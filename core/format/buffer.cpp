#include "stowage/buffer.hpp"

#include <algorithm>
#include <cstring>

#include "stowage/error.hpp"

namespace stowage {

Buffer Buffer::from_vector(std::vector<uint8_t>&& bytes, std::string label) {
  auto holder = std::make_shared<std::vector<uint8_t>>(std::move(bytes));
  Buffer b;
  b.data_ = holder->data();
  b.size_ = holder->size();
  b.owner_ = std::move(holder);
  b.label_ = std::move(label);
  return b;
}

Buffer Buffer::from_string(std::string&& bytes, std::string label) {
  auto holder = std::make_shared<std::string>(std::move(bytes));
  Buffer b;
  b.data_ = reinterpret_cast<const uint8_t*>(holder->data());
  b.size_ = holder->size();
  b.owner_ = std::move(holder);
  b.label_ = std::move(label);
  return b;
}

Buffer Buffer::copy_of(std::span<const uint8_t> bytes, std::string label) {
  return from_vector(std::vector<uint8_t>(bytes.begin(), bytes.end()), std::move(label));
}

Buffer Buffer::wrap(const uint8_t* data, uint64_t size, std::shared_ptr<const void> owner,
                    std::string label) {
  Buffer b;
  b.data_ = data;
  b.size_ = size;
  b.owner_ = std::move(owner);
  b.label_ = std::move(label);
  return b;
}

Buffer Buffer::slice(uint64_t offset, uint64_t length) const {
  if (offset > size_ || length > size_ - offset) {
    throw Error(ErrorCode::kInvalidArgument,
                "buffer slice [" + std::to_string(offset) + ", +" + std::to_string(length) +
                    ") is outside a buffer of " + std::to_string(size_) + " bytes" +
                    (label_.empty() ? std::string() : " (" + label_ + ")"));
  }
  Buffer b = *this;
  b.data_ = data_ + offset;
  b.size_ = length;
  return b;
}

uint64_t total_size(const WeightData& data) noexcept {
  uint64_t total = 0;
  for (const Buffer& b : data) total += b.size();
  return total;
}

std::vector<uint8_t> slice_bytes(const WeightData& data, uint64_t begin, uint64_t end) {
  const uint64_t total = total_size(data);
  end = std::min(end, total);
  begin = std::min(begin, total);
  if (end <= begin) return {};
  std::vector<uint8_t> out(static_cast<size_t>(end - begin));
  copy_bytes(data, begin, end - begin, out.data());
  return out;
}

void copy_bytes(const WeightData& data, uint64_t offset, uint64_t length, uint8_t* dst) {
  const uint64_t total = total_size(data);
  if (offset > total || length > total - offset) {
    throw Error(ErrorCode::kDataLoss, "cannot read " + std::to_string(length) +
                                          " bytes at offset " + std::to_string(offset) +
                                          " of weight data holding " + std::to_string(total) +
                                          " bytes");
  }
  uint64_t start = 0;  // offset of the current buffer in the concatenation
  for (const Buffer& b : data) {
    if (length == 0) break;
    const uint64_t stop = start + b.size();
    if (offset < stop) {
      const uint64_t in_buffer = offset - start;
      const uint64_t n = std::min(length, b.size() - in_buffer);
      std::memcpy(dst, b.data() + in_buffer, static_cast<size_t>(n));
      dst += n;
      offset += n;
      length -= n;
    }
    start = stop;
  }
}

Buffer join(const WeightData& data) {
  if (data.empty()) return Buffer::from_vector({});
  if (data.size() == 1) return data.front();
  std::vector<uint8_t> out(static_cast<size_t>(total_size(data)));
  uint8_t* dst = out.data();
  for (const Buffer& b : data) {
    if (b.size() != 0) std::memcpy(dst, b.data(), static_cast<size_t>(b.size()));
    dst += b.size();
  }
  return Buffer::from_vector(std::move(out));
}

}  // namespace stowage
