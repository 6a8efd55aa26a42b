// Atomicity (abi.h, save): "A failed or cancelled save leaves the previous
// model, or no model, exactly as it was." Cancellation is tried at every
// point where the plugin polls for it, one save per point.
#include <atomic>
#include <chrono>

#include "conformance_internal.hpp"

namespace stowage::conformance {
namespace {

constexpr int kMaxPolls = 400;

struct CallbackFailure : std::exception {
  const char* what() const noexcept override { return "the progress callback failed"; }
};

// A context whose is_cancelled says yes from its n-th poll on.
CallContext cancel_at(std::shared_ptr<std::atomic<int>> polls, int n) {
  CallContext ctx;
  ctx.is_cancelled = [polls, n] { return polls->fetch_add(1) + 1 >= n; };
  return ctx;
}

void require_model(const std::string& url, const ModelArtifacts& want, const std::string& promise) {
  ModelArtifacts loaded =
      must(promise + ": the model still loads", [&] { return open(url)->load(); });
  std::string diff = difference(want, loaded);
  if (!diff.empty()) broken(promise, url + ": " + diff);
}

void require_no_model(const std::string& url, const std::string& promise) {
  must_fail(promise + ": load finds no model", {ErrorCode::kNotFound}, [&] { open(url)->load(); });
  if (target().has("list")) {
    auto listed = list_models_at(url);
    if (!listed.empty()) broken(promise, "list still finds " + listed[0].url);
  }
}

TEST_SUITE("atomicity") {
  TEST_CASE("a save cancelled at any point leaves the previous model exactly as it was") {
    const std::string url = fresh("cancel-over");
    const ModelArtifacts old_model = small_model(61, 4000, 3), new_model = small_model(62, 900, 5);
    must("save succeeds", [&] { open(url)->save(old_model); });
    const std::string promise =
        "a cancelled save leaves the previous model exactly as it was (abi.h: save, "
        "stowage_call.is_cancelled)";
    int n = 1;
    for (; n <= kMaxPolls; ++n) {
      auto polls = std::make_shared<std::atomic<int>>(0);
      std::optional<Error> e = may_fail(promise, {ErrorCode::kCancelled},
                                        [&] { open(url)->save(new_model, cancel_at(polls, n)); });
      if (!e) break;
      require_model(url, old_model, promise + ", cancelled at poll " + std::to_string(n));
    }
    REQUIRE_MESSAGE(n <= kMaxPolls, "a save completes once cancellation comes late enough");
    require_model(url, new_model, "a save that was not cancelled stores the new model");
    MESSAGE("cancelled a save at each of its " << n - 1 << " cancellation polls");
  }

  TEST_CASE("a save cancelled at any point where there was no model leaves no model") {
    const ModelArtifacts model = small_model(63, 900, 3);
    const std::string promise =
        "a cancelled save leaves no model where there was none (abi.h: save)";
    int n = 1;
    for (; n <= kMaxPolls; ++n) {
      const std::string url = fresh("cancel-fresh");
      auto polls = std::make_shared<std::atomic<int>>(0);
      std::optional<Error> e = may_fail(promise, {ErrorCode::kCancelled},
                                        [&] { open(url)->save(model, cancel_at(polls, n)); });
      if (!e) break;
      require_no_model(url, promise + ", cancelled at poll " + std::to_string(n));
    }
    REQUIRE_MESSAGE(n <= kMaxPolls, "a save completes once cancellation comes late enough");
  }

  TEST_CASE("a save past its deadline fails and leaves the previous model") {
    const std::string url = fresh("late");
    const ModelArtifacts old_model = small_model(64), new_model = small_model(65, 50, 2);
    must("save succeeds", [&] { open(url)->save(old_model); });
    CallContext ctx;
    ctx.deadline = std::chrono::system_clock::now() - std::chrono::seconds(1);
    must_fail(
        "a save whose deadline has passed fails with DEADLINE_EXCEEDED (abi.h: "
        "stowage_call.deadline_unix_ms)",
        {ErrorCode::kDeadlineExceeded}, [&] { open(url)->save(new_model, ctx); });
    require_model(url, old_model, "a failed save leaves the previous model (abi.h: save)");
  }

  TEST_CASE("a save that fails part way (its progress callback throws) leaves the previous model") {
    const std::string url = fresh("failing");
    const ModelArtifacts old_model = small_model(66, 3000, 2), new_model = small_model(67, 600, 4);
    must("save succeeds", [&] { open(url)->save(old_model); });
    CallContext ctx;
    ctx.on_progress = [](uint64_t done, uint64_t) {
      if (done > 0) throw CallbackFailure();
    };
    bool failed = false;
    try {
      open(url)->save(new_model, ctx);
    } catch (const CallbackFailure&) {
      failed = true;
    } catch (const Error& e) {
      failed = true;
      if (e.code() != ErrorCode::kCancelled) {
        broken("a save stops when the host says so (abi.h: is_cancelled)", describe(e));
      }
    }
    if (!failed) {
      require_model(url, new_model, "a save that completed stores the new model");
      return;
    }
    // The callback may fail after the plugin published (a last report):
    // then the new model is whole. A mix of the two is never allowed.
    ModelArtifacts loaded = must("the model still loads", [&] { return open(url)->load(); });
    if (!difference(old_model, loaded).empty() && !difference(new_model, loaded).empty()) {
      broken("a failed save leaves the previous model exactly as it was (abi.h: save)",
             url + ": " + difference(old_model, loaded));
    }
  }
}

}  // namespace
}  // namespace stowage::conformance
