// verify_weight_digests: the per-file SHA-256 check every load runs.
#include <doctest/doctest.h>

#include <algorithm>

#include "stowage/digest.hpp"
#include "stowage/error.hpp"
#include "stowage/weights.hpp"

using namespace stowage;

namespace {

std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 7 + (i >> 9));
  return v;
}

// A manifest of one group per entry of `files_per_group`, each file
// `file_bytes` long and labelled "/m/<path>"; groups listed in `digested`
// record their files' digests.
ModelArtifacts model(const std::vector<size_t>& files_per_group, size_t file_bytes,
                     const std::vector<size_t>& digested) {
  ModelArtifacts a;
  a.weights_manifest.emplace();
  WeightData data;
  uint8_t seed = 1;
  for (size_t g = 0; g < files_per_group.size(); ++g) {
    WeightGroup group;
    WeightSpec spec;
    spec.name = "w" + std::to_string(g);
    spec.dtype = "float32";
    spec.shape = {static_cast<int64_t>(files_per_group[g] * file_bytes / 4)};
    group.weights.push_back(spec);
    std::vector<std::string> digests;
    for (size_t i = 0; i < files_per_group[g]; ++i) {
      const std::string path = "group" + std::to_string(g + 1) + "-shard" + std::to_string(i + 1) +
                               "of" + std::to_string(files_per_group[g]) + ".bin";
      std::vector<uint8_t> bytes = pattern(file_bytes, seed++);
      digests.push_back(sha256_hex(bytes));
      group.paths.push_back(path);
      data.push_back(Buffer::from_vector(std::move(bytes), "/m/" + path));
    }
    if (std::find(digested.begin(), digested.end(), g) != digested.end()) group.sha256 = digests;
    a.weights_manifest->push_back(std::move(group));
  }
  a.weight_data = std::move(data);
  return a;
}

// The same artifacts with byte `at` of buffer `index` flipped.
void flip(ModelArtifacts& a, size_t index, size_t at) {
  Buffer& b = (*a.weight_data)[index];
  std::vector<uint8_t> bytes(b.data(), b.data() + b.size());
  bytes[at] ^= 0x01;
  b = Buffer::from_vector(std::move(bytes), b.label());
}

std::string digest_of(const ModelArtifacts& a, size_t index) {
  return sha256_hex((*a.weight_data)[index].bytes());
}

}  // namespace

TEST_CASE("verify_weight_digests counts the files it checked") {
  ModelArtifacts a = model({3, 2}, 64, {0});
  CHECK(verify_weight_digests(a, "file:///m") == 3);
  CHECK(recorded_digest_count(*a.weights_manifest) == 3);
  // A flipped byte in a group without digests is not this check's business.
  flip(a, 4, 0);
  CHECK(verify_weight_digests(a, "file:///m") == 3);

  ModelArtifacts none = model({2}, 64, {});
  CHECK(verify_weight_digests(none, "file:///m") == 0);
  ModelArtifacts flat;
  CHECK(verify_weight_digests(flat, "file:///m") == 0);
}

TEST_CASE("a same-size flipped byte is DATA_LOSS naming group, file, label, size and digests") {
  ModelArtifacts a = model({1, 3}, 64, {0, 1});
  const std::string expected = (*(*a.weights_manifest)[1].sha256)[1];
  flip(a, 2, 17);
  try {
    verify_weight_digests(a, "file:///m");
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::kDataLoss);
    CHECK(std::string(e.what()) ==
          "model.json at file:///m: weight group 2 file 2 of 3 'group2-shard2of3.bin' "
          "(/m/group2-shard2of3.bin, 64 bytes) has SHA-256 " +
              digest_of(a, 2) + ", but model.json records " + expected);
  }
}

TEST_CASE("a buffer without a label is named by its path alone") {
  ModelArtifacts a = model({2}, 16, {0});
  flip(a, 0, 0);
  (*a.weight_data)[0].set_label("");
  CHECK_THROWS_WITH_AS(
      verify_weight_digests(a, "memory://m"),
      ("model.json at memory://m: weight group 1 file 1 of 2 "
       "'group1-shard1of2.bin' (16 bytes) has SHA-256 " +
       digest_of(a, 0) + ", but model.json records " + (*(*a.weights_manifest)[0].sha256)[0])
          .c_str(),
      Error);
}

TEST_CASE("many large files hash on several threads; the first bad file in order is named") {
  // 16 MiB: over the threshold where the files are split among threads.
  ModelArtifacts a = model({16}, 1 << 20, {0});
  CHECK(verify_weight_digests(a, "file:///big") == 16);
  flip(a, 13, (1 << 20) - 1);
  flip(a, 6, 0);
  try {
    verify_weight_digests(a, "file:///big");
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::kDataLoss);
    CHECK(std::string(e.what()) ==
          "model.json at file:///big: weight group 1 file 7 of 16 'group1-shard7of16.bin' "
          "(/m/group1-shard7of16.bin, 1048576 bytes) has SHA-256 " +
              digest_of(a, 6) + ", but model.json records " +
              (*(*a.weights_manifest)[0].sha256)[6]);
  }
}

TEST_CASE("digests with weight data that is not one buffer per path are the loader's bug") {
  ModelArtifacts a = model({3}, 8, {0});
  a.weight_data = WeightData{join(*a.weight_data)};
  try {
    verify_weight_digests(a, "x://m");
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::kInternal);
    CHECK(std::string(e.what()) ==
          "model.json at x://m records SHA-256 digests for 3 files, but its load handed over 1 "
          "weight buffer(s) for 3 files instead of one per file, so the digests cannot be "
          "checked (the loader must hand over each weight file as its own buffer)");
  }
  a.weight_data.reset();
  CHECK_THROWS_AS(verify_weight_digests(a, "x://m"), Error);
}
