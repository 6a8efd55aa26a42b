#include "stowage/sharding.hpp"

#include <doctest/doctest.h>

#include "stowage/error.hpp"

using namespace stowage;

TEST_CASE("plan_shards: one file, as tfjs-node writes it") {
  auto plan = plan_shards(12, 0);
  REQUIRE(plan.size() == 1);
  CHECK(plan[0].path == "weights.bin");
  CHECK(plan[0].offset == 0);
  CHECK(plan[0].size == 12);
  CHECK(plan_shards(12, 0, "./model.weights.bin")[0].path == "./model.weights.bin");
  CHECK(plan_shards(0, 0).empty());
}

TEST_CASE("plan_shards: the converter's layout") {
  auto plan = plan_shards(10 * 1024 * 1024, kConverterShardSize);
  REQUIRE(plan.size() == 3);
  CHECK(plan[0].path == "group1-shard1of3.bin");
  CHECK(plan[1].path == "group1-shard2of3.bin");
  CHECK(plan[2].path == "group1-shard3of3.bin");
  CHECK(plan[1].offset == kConverterShardSize);
  CHECK(plan[2].size == 2 * 1024 * 1024);

  auto exact = plan_shards(8, 4, "weights.bin", 2);
  REQUIRE(exact.size() == 2);
  CHECK(exact[1].path == "group2-shard2of2.bin");
  CHECK(exact[1].size == 4);
  CHECK(plan_shards(0, 4).empty());  // ceil(0 / n) = 0 files, "paths": []
  CHECK(plan_shards(3, 4).size() == 1);
  CHECK_THROWS_AS(plan_shards(uint64_t{1} << 40, 1), Error);
}

TEST_CASE("content_addressed_names: 16 digits, longer only where names would clash") {
  const std::string a = "aaaaaaaaaaaaaaaa" + std::string(48, '1');
  const std::string b = "aaaaaaaaaaaaaaaa" + std::string(48, '2');  // same first 16 as a
  const std::string c = std::string(64, 'c');
  const auto names = content_addressed_names({a, b, c, a});
  REQUIRE(names.size() == 4);
  CHECK(names[0] == a.substr(0, 32) + ".bin");
  CHECK(names[1] == b.substr(0, 32) + ".bin");
  CHECK(names[2] == c.substr(0, 16) + ".bin");
  CHECK(names[3] == names[0]);  // equal bytes, one file
  // A file of that name with other bytes is in the store: the next length.
  const auto around = content_addressed_names(
      {c}, [&](const std::string& name, const std::string&) { return name.size() < 68; });
  CHECK(around[0] == c + ".bin");
  CHECK_THROWS_AS(content_addressed_names({"abc"}), Error);
}

TEST_CASE("content_address_prefix recognises digest names only") {
  CHECK(content_address_prefix("0123456789abcdef.bin") == "0123456789abcdef");
  CHECK(content_address_prefix(std::string(64, 'f') + ".bin") == std::string(64, 'f'));
  CHECK(content_address_prefix("group1-shard1of1.bin").empty());
  CHECK(content_address_prefix("0123456789ABCDEF.bin").empty());
  CHECK(content_address_prefix("0123456789abcde.bin").empty());
  CHECK(content_address_prefix("0123456789abcdef.bn").empty());
}
