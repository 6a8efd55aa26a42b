// Cancellation, deadlines (abi.h, stowage_call) and progress reports.
#include <chrono>
#include <mutex>

#include "conformance_internal.hpp"

namespace stowage::conformance {
namespace {

CallContext cancelled() {
  CallContext ctx;
  ctx.is_cancelled = [] { return true; };
  return ctx;
}

CallContext late() {
  CallContext ctx;
  ctx.deadline = std::chrono::system_clock::now() - std::chrono::seconds(1);
  return ctx;
}

const char* kCancelPromise =
    "a call whose caller wants it to stop fails with CANCELLED (abi.h: stowage_call.is_cancelled)";
const char* kDeadlinePromise =
    "a call whose deadline has passed fails with DEADLINE_EXCEEDED (abi.h: "
    "stowage_call.deadline_unix_ms)";

void require_still_there(const std::string& url, const ModelArtifacts& model) {
  if (target().has("load")) {
    std::string diff =
        difference(model, must("the model still loads", [&] { return open(url)->load(); }));
    if (!diff.empty()) broken("a cancelled or late call changes nothing", diff);
  } else if (target().has("list") && list_models_at(url).empty()) {
    broken("a cancelled or late call changes nothing", "the model is gone from " + url);
  }
}

TEST_SUITE("cancellation: save") {
  TEST_CASE("save: cancelled before it starts, or past its deadline") {
    const ModelArtifacts model = small_model(81);
    for (bool deadline : {false, true}) {
      const std::string url = fresh(deadline ? "late-save" : "cancelled-save");
      must_fail(deadline ? kDeadlinePromise : kCancelPromise,
                {deadline ? ErrorCode::kDeadlineExceeded : ErrorCode::kCancelled},
                [&] { open(url)->save(model, deadline ? late() : cancelled()); });
      if (target().has("load")) {
        must_fail("a cancelled or late save leaves no model (abi.h: save)", {ErrorCode::kNotFound},
                  [&] { open(url)->load(); });
      }
      if (target().has("list") && !list_models_at(url).empty()) {
        broken("a cancelled or late save leaves no model (abi.h: save)",
               "list finds one at " + url);
      }
    }
  }
}

TEST_SUITE("cancellation: load") {
  TEST_CASE("load: cancelled before it starts, or past its deadline") {
    const std::string url = fresh("cancelled-load");
    const ModelArtifacts model = small_model(82, 500, 2);
    must("save succeeds", [&] { open(url)->save(model); });
    must_fail(kCancelPromise, {ErrorCode::kCancelled}, [&] { open(url)->load(cancelled()); });
    must_fail(kDeadlinePromise, {ErrorCode::kDeadlineExceeded}, [&] { open(url)->load(late()); });
    require_still_there(url, model);
  }
}

TEST_SUITE("cancellation: list") {
  TEST_CASE("list: cancelled before it starts, or past its deadline") {
    const std::string url = fresh("cancelled-list");
    must_fail(kCancelPromise, {ErrorCode::kCancelled}, [&] { open(url)->list(cancelled()); });
    must_fail(kDeadlinePromise, {ErrorCode::kDeadlineExceeded}, [&] { open(url)->list(late()); });
  }
}

TEST_SUITE("cancellation: remove") {
  TEST_CASE("remove: cancelled before it starts, or past its deadline, removes nothing") {
    const std::string url = fresh("cancelled-remove");
    const ModelArtifacts model = small_model(83);
    must("save succeeds", [&] { open(url)->save(model); });
    must_fail(kCancelPromise, {ErrorCode::kCancelled}, [&] { open(url)->remove(cancelled()); });
    require_still_there(url, model);
    must_fail(kDeadlinePromise, {ErrorCode::kDeadlineExceeded}, [&] { open(url)->remove(late()); });
    require_still_there(url, model);
  }
}

// Every report of one call, in order.
struct Reports {
  std::mutex mu;
  std::vector<std::pair<uint64_t, uint64_t>> seen;
  CallContext context() {
    CallContext ctx;
    ctx.on_progress = [this](uint64_t done, uint64_t total) {
      std::lock_guard<std::mutex> lock(mu);
      seen.emplace_back(done, total);
    };
    return ctx;
  }
};

// abi.h: "the last report of a successful call has done == total"; done
// never passes total, and never goes back in a call that runs alone.
void check_reports(const Reports& r, uint64_t weight_bytes, const std::string& what) {
  const std::string promise = "progress reports of a successful " + what +
                              " end with done == total, at least the weight bytes (abi.h: "
                              "stowage_call.progress)";
  if (r.seen.empty()) {
    if (weight_bytes > 0) broken(promise, "no progress was reported");
    return;
  }
  uint64_t last_done = 0;
  for (const auto& [done, total] : r.seen) {
    if (done > total) {
      broken(promise,
             "a report has done " + std::to_string(done) + " > total " + std::to_string(total));
    }
    if (done < last_done) {
      broken(promise,
             "done went back from " + std::to_string(last_done) + " to " + std::to_string(done));
    }
    last_done = done;
  }
  const auto& [done, total] = r.seen.back();
  if (done != total || total < weight_bytes) {
    broken(promise, "the last report is " + std::to_string(done) + " of " + std::to_string(total) +
                        " bytes for " + std::to_string(weight_bytes) + " weight bytes");
  }
}

TEST_SUITE("progress") {
  TEST_CASE("save and load report progress that ends at the total byte count") {
    for (const Golden& g : goldens()) {
      if (!g.artifacts.model_topology && target().deviates(kDeviationRefusesWeightsOnly)) continue;
      const std::string url = fresh("progress-" + g.id);
      const uint64_t bytes = weight_bytes(g.artifacts).size();
      Reports saving, loading;
      must("save succeeds", [&] { open(url)->save(g.artifacts, saving.context()); });
      check_reports(saving, bytes, "save of '" + g.id + "'");
      if (!target().has("load")) continue;  // a save-only scheme (downloads://)
      must("load succeeds", [&] { return open(url)->load(loading.context()); });
      check_reports(loading, bytes, "load of '" + g.id + "'");
    }
  }
}

}  // namespace
}  // namespace stowage::conformance
