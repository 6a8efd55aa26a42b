// Threads (abi.h: "Handlers may be used from several threads at once unless
// the plugin declares STOWAGE_CAP_SINGLE_THREADED", and then the host
// serialises them): 8 threads saving and loading different and identical
// URLs at once.
#include <mutex>
#include <thread>

#include "conformance_internal.hpp"

namespace stowage::conformance {
namespace {

constexpr int kThreads = 8;
constexpr int kRounds = 6;

// Failures seen on worker threads, reported on the main thread.
class Failures {
 public:
  void add(std::string what) {
    std::lock_guard<std::mutex> lock(mu_);
    if (list_.size() < 10) list_.push_back(std::move(what));
    ++count_;
  }
  void report(const std::string& promise) const {
    if (count_ == 0) return;
    std::string text = std::to_string(count_) + " failure(s), the first ones:";
    for (const auto& f : list_) text += "\n    " + f;
    broken(promise, text);
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::string> list_;
  int count_ = 0;
};

template <typename F>
void run_threads(F&& body) {
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) threads.emplace_back([&body, t] { body(t); });
  for (auto& th : threads) th.join();
}

TEST_SUITE("concurrency") {
  TEST_CASE("8 threads save and load models at different URLs at once") {
    const std::string base = fresh("threads");
    Failures failures;
    run_threads([&](int t) {
      const std::string url = child(base, "model-" + std::to_string(t));
      for (int r = 0; r < kRounds; ++r) {
        const ModelArtifacts model = small_model(1000 + t * 100 + r, 200 + 50 * r, 1 + r % 3);
        try {
          open(url)->save(model);
          std::string diff = difference(model, open(url)->load());
          if (!diff.empty()) failures.add(url + ": " + diff);
        } catch (const std::exception& e) {
          failures.add(url + ": " + describe(e));
        }
      }
    });
    failures.report("handlers work from several threads at once (abi.h: threading)");
  }

  TEST_CASE("8 threads save and load one URL at once") {
    const std::string url = fresh("contended");
    const ModelArtifacts a = small_model(71, 1500, 3), b = small_model(72, 400, 2);
    must("save succeeds", [&] { open(url)->save(a); });
    const bool atomic = target().has("atomic_save");
    Failures failures;
    run_threads([&](int t) {
      for (int r = 0; r < kRounds; ++r) {
        try {
          if ((t + r) % 2 == 0) {
            open(url)->save((t + r) % 4 == 0 ? a : b);
            continue;
          }
          ModelArtifacts loaded = open(url)->load();
          if (!difference(a, loaded).empty() && !difference(b, loaded).empty()) {
            failures.add("a load returned neither saved model: " + difference(a, loaded));
          }
        } catch (const Error& e) {
          // Without atomic saves a load may meet a save half way; it must
          // then fail, never return a mix.
          bool tolerated =
              !atomic &&
              (e.code() == ErrorCode::kNotFound || e.code() == ErrorCode::kDataLoss ||
               e.code() == ErrorCode::kUnavailable || e.code() == ErrorCode::kInvalidArgument);
          if (!tolerated) failures.add(describe(e));
        } catch (const std::exception& e) {
          failures.add(describe(e));
        }
      }
    });
    failures.report(atomic ? "with STOWAGE_CAP_ATOMIC_SAVE, concurrent loads see the old or the "
                             "new model, never a mix and never an error (abi.h: save)"
                           : "concurrent saves of one URL succeed, and a load sees a whole "
                             "model or fails (abi.h: threading)");
    ModelArtifacts last =
        must("the model loads after the threads", [&] { return open(url)->load(); });
    if (!difference(a, last).empty() && !difference(b, last).empty()) {
      broken("after concurrent saves the URL holds one of the models saved", difference(a, last));
    }
  }

  TEST_CASE("8 threads load one model at once") {
    const std::string url = fresh("shared");
    const ModelArtifacts model = small_model(73, 3000, 4);
    must("save succeeds", [&] { open(url)->save(model); });
    std::unique_ptr<IOHandler> shared = open(url);
    Failures failures;
    run_threads([&](int) {
      for (int r = 0; r < kRounds; ++r) {
        try {
          // One handler shared by every thread, and one handler per load.
          std::string diff = difference(model, r % 2 == 0 ? shared->load() : open(url)->load());
          if (!diff.empty()) failures.add(diff);
        } catch (const std::exception& e) {
          failures.add(describe(e));
        }
      }
    });
    failures.report("one handler serves loads from several threads at once (abi.h: threading)");
  }
}

}  // namespace
}  // namespace stowage::conformance
