#include "stowage/buffer.hpp"

#include <doctest/doctest.h>

#include <numeric>

#include "stowage/error.hpp"

using namespace stowage;

namespace {

// Bytes 0..16 cut into buffers of the given sizes (spec §8.2).
WeightData shards(std::initializer_list<size_t> sizes) {
  WeightData data;
  uint8_t next = 0;
  for (size_t n : sizes) {
    std::vector<uint8_t> b(n);
    for (auto& x : b) x = next++;
    data.push_back(Buffer::from_vector(std::move(b)));
  }
  return data;
}

std::vector<uint8_t> range(uint8_t begin, uint8_t end) {
  std::vector<uint8_t> v(end - begin);
  std::iota(v.begin(), v.end(), begin);
  return v;
}

}  // namespace

TEST_CASE("CompositeArrayBuffer slicing over uniform and non-uniform shards") {
  for (const WeightData& data : {shards({4, 4, 4, 4, 1}), shards({3, 5, 4, 5})}) {
    CAPTURE(data.size());
    REQUIRE(total_size(data) == 17);
    SUBCASE("slices across multiple buffers") { CHECK(slice_bytes(data, 1, 13) == range(1, 13)); }
    SUBCASE("slices to the end when end is not given") {
      CHECK(slice_bytes(data, 5, UINT64_MAX) == range(5, 17));
    }
    SUBCASE("makes a copy of everything") {
      CHECK(slice_bytes(data, 0, UINT64_MAX) == range(0, 17));
    }
    SUBCASE("a negative start clamps to 0") {  // slice(-4, 5): the caller clamps to 0
      CHECK(slice_bytes(data, 0, 5) == range(0, 5));
    }
    SUBCASE("end past the length clamps") { CHECK(slice_bytes(data, 7, 1000) == range(7, 17)); }
    SUBCASE("multiple ranges out of order") {
      CHECK(slice_bytes(data, 13, 15) == range(13, 15));
      CHECK(slice_bytes(data, 0, 2) == range(0, 2));
      CHECK(slice_bytes(data, 9, 13) == range(9, 13));
    }
    SUBCASE("end before start is empty") { CHECK(slice_bytes(data, 9, 3).empty()); }
    SUBCASE("copy_bytes spans buffers") {
      std::vector<uint8_t> out(10);
      copy_bytes(data, 2, 10, out.data());
      CHECK(out == range(2, 12));
      CHECK_THROWS_AS(copy_bytes(data, 10, 8, out.data()), Error);
    }
    SUBCASE("join") {
      const Buffer j = join(data);
      CHECK(std::vector<uint8_t>(j.bytes().begin(), j.bytes().end()) == range(0, 17));
    }
  }
}

TEST_CASE("CompositeArrayBuffer edge cases") {
  CHECK(slice_bytes({}, 0, 10).empty());
  CHECK(slice_bytes({Buffer::from_vector({})}, 0, 10).empty());
  CHECK(total_size({}) == 0);
  CHECK(join({}).size() == 0);
  const WeightData single = {Buffer::from_vector({1, 2, 3})};
  CHECK(slice_bytes(single, 0, 3) == std::vector<uint8_t>{1, 2, 3});
  // slice(NaN, 2) gives [1, 2]: NaN start is 0.
  CHECK(slice_bytes(single, 0, 2) == std::vector<uint8_t>{1, 2});
  // Empty buffers in the middle are fine.
  const WeightData mixed = {Buffer::from_vector({1}), Buffer::from_vector({}),
                            Buffer::from_vector({2, 3})};
  CHECK(slice_bytes(mixed, 0, 3) == std::vector<uint8_t>{1, 2, 3});
  std::vector<uint8_t> out(2);
  copy_bytes(mixed, 1, 2, out.data());
  CHECK(out == std::vector<uint8_t>{2, 3});
}

TEST_CASE("Buffer factories, slices and ownership") {
  Buffer b = Buffer::from_string("hello world", "greeting.bin");
  CHECK(b.size() == 11);
  CHECK(b.view() == "hello world");
  CHECK(b.label() == "greeting.bin");
  Buffer s = b.slice(6, 5);
  CHECK(s.view() == "world");
  CHECK(s.owner() == b.owner());
  b = Buffer();  // the slice keeps the bytes alive
  CHECK(s.view() == "world");
  CHECK_THROWS_AS(s.slice(3, 3), Error);
  CHECK(s.slice(5, 0).empty());

  const uint8_t raw[] = {9, 8, 7};
  Buffer c = Buffer::copy_of(raw);
  CHECK(c.data() != raw);
  CHECK(c.bytes()[2] == 7);
  Buffer w = Buffer::wrap(raw, 3, nullptr, "static");
  CHECK(w.data() == raw);
  // join of one buffer is that buffer, no copy.
  CHECK(join({w}).data() == raw);
}
