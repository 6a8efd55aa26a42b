// Nested URLs through the kit (nested_url.hpp): mirror://<URL>, a decorator
// written with NestedUrl, wraps memory:// through the real registry. Every
// operation must reach the wrapped store and come back as the store gave
// it; the outer call's cancellation and progress must reach the inner
// plugin; nested_open outside open must be refused.
#include <doctest/doctest.h>

#include <atomic>
#include <string>

#include "plugin_test_util.hpp"
#include "stowage/error.hpp"
#include "stowage/registry.hpp"

using namespace stowage;
using stowage::testing::contains;
using stowage::testing::error_of;
using stowage::testing::float_model;
using stowage::testing::ramp;
using stowage::testing::weight_bytes;

namespace {

Registry& registry() {
  static Registry* r = [] {
    Registry* registry = stowage::testing::new_registry(STOWAGE_SDK_TEST_PLUGIN_DIR);
    registry->add_plugin_folder(STOWAGE_PLUGIN_BUILD_DIR);
    return registry;
  }();
  return *r;
}

std::string what(const Error& e) { return e.what(); }

}  // namespace

TEST_CASE("every operation through a kit decorator reaches the wrapped URL") {
  const ModelArtifacts model = float_model(ramp(5000, 1.5f));
  auto mirror = registry().open("mirror://memory://nested/a");
  auto direct = registry().open("memory://nested/a");

  mirror->save(model);
  ModelArtifacts stored = direct->load();
  CHECK(weight_bytes(stored) == weight_bytes(model));

  ModelArtifacts through = mirror->load();
  CHECK(weight_bytes(through) == weight_bytes(model));
  REQUIRE(through.weight_specs);
  CHECK(through.weight_specs->size() == model.weight_specs->size());
  CHECK(through.model_topology == model.model_topology);

  ModelStat a = mirror->stat();
  ModelStat b = direct->stat();
  CHECK(a.version == b.version);
  CHECK(a.info.weight_data_bytes == b.info.weight_data_bytes);
  CHECK(a.model.model_topology == model.model_topology);

  bool listed = false;
  for (const ListedModel& m : registry().open("mirror://memory://nested")->list()) {
    listed = listed || m.url == "memory://nested/a";
  }
  CHECK(listed);

  ModelArtifactsInfo removed = mirror->remove();
  CHECK(removed.weight_data_bytes == uint64_t{20000});
  Error e = error_of([&] { direct->load(); });
  CHECK(e.code() == ErrorCode::kNotFound);
  // The inner error comes back with its code and message.
  e = error_of([&] { mirror->load(); });
  CHECK(e.code() == ErrorCode::kNotFound);
  CHECK_MESSAGE(contains(e, "memory://nested/a"), what(e));
  CHECK_FALSE(e.retryable());
}

TEST_CASE("the outer call's cancellation and progress reach the wrapped plugin") {
  auto mirror = registry().open("mirror://memory://nested/c");
  mirror->save(float_model(ramp(1000, 2.0f)));

  CallContext call;
  uint64_t last_done = 0;
  uint64_t last_total = 0;
  call.on_progress = [&](uint64_t done, uint64_t total) {
    last_done = done;
    last_total = total;
  };
  mirror->load(call);
  CHECK(last_total == 4000);
  CHECK(last_done == last_total);

  // The outer plugin checks once before it starts; every later poll is the
  // inner plugin's, which must see the cancellation and stop.
  std::atomic<int> polls{0};
  call.is_cancelled = [&] { return ++polls > 1; };
  Error e = error_of([&] { mirror->load(call); });
  CHECK(e.code() == ErrorCode::kCancelled);
  CHECK_MESSAGE(contains(e, "load of memory://nested/c was cancelled"), what(e));
  CHECK(polls > 1);
}

TEST_CASE("nested_open outside the plugin's open is refused with INTERNAL") {
  auto lazy = registry().open("mirror://memory://nested/lazy", R"({"lazy":true})");
  Error e = error_of([&] { lazy->load(); });
  CHECK(e.code() == ErrorCode::kInternal);
  CHECK_MESSAGE(contains(e,
                         "nested_open of 'memory://nested/lazy' was called outside of the "
                         "plugin's open"),
                what(e));
}

TEST_CASE("a single-threaded decorator nested in itself is refused, never a deadlock") {
  auto once = registry().open("mirrorst://memory://nested/st");
  once->save(float_model(ramp(100, 3.0f)));
  CHECK(weight_bytes(once->load()) == weight_bytes(float_model(ramp(100, 3.0f))));

  Error e = error_of([&] { registry().open("mirrorst://mirrorst://memory://nested/st"); });
  CHECK(e.code() == ErrorCode::kInvalidArgument);
  CHECK_MESSAGE(contains(e,
                         "URL 'mirrorst://memory://nested/st' would re-enter a "
                         "single-threaded plugin that is still opening an outer URL: "
                         "mirrorst://mirrorst://memory://nested/st -> "
                         "mirrorst://memory://nested/st"),
                what(e));
}
