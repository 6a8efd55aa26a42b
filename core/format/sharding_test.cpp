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
