// ModelStore's save options: serve's store records digests unless told not
// to, and still works over a store plugin that predates the option.
#include <doctest/doctest.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "store_internal.hpp"
#include "stowage/error.hpp"

namespace stowage::serve {
namespace {

// Records the options of each handler opened for a save; refuses
// "integrity" as unknown when `knows_integrity` is false (as a plugin built
// before the option does).
struct Recorder {
  bool knows_integrity = true;
  std::mutex mu;
  std::vector<std::string> saved_with;
};

class RecordingHandler final : public IOHandler {
 public:
  RecordingHandler(std::string url, std::string options, std::shared_ptr<Recorder> rec)
      : url_(std::move(url)), options_(std::move(options)), rec_(std::move(rec)) {}
  const std::string& url() const override { return url_; }
  bool can_save() const override { return true; }
  SaveResult save(const ModelArtifacts&, const CallContext&) override {
    std::lock_guard<std::mutex> lock(rec_->mu);
    rec_->saved_with.push_back(options_);
    return {};
  }

 private:
  std::string url_;
  std::string options_;
  std::shared_ptr<Recorder> rec_;
};

std::shared_ptr<Recorder> register_recorder(Registry& registry, bool knows_integrity) {
  auto rec = std::make_shared<Recorder>();
  rec->knows_integrity = knows_integrity;
  registry.register_scheme("rec", [rec](std::string_view url, std::string_view options) {
    if (!rec->knows_integrity && options.find("\"integrity\"") != std::string_view::npos) {
      throw Error(ErrorCode::kInvalidArgument, "Unknown option \"integrity\" for " +
                                                   std::string(url) +
                                                   ": this scheme takes no options here");
    }
    return std::make_unique<RecordingHandler>(std::string(url), std::string(options), rec);
  });
  return rec;
}

ModelArtifacts topology_only() {
  ModelArtifacts a;
  a.model_topology = std::string("{}");
  return a;
}

}  // namespace

TEST_CASE("store: saves record digests by default; the store's options can turn that off") {
  Registry registry;
  auto rec = register_recorder(registry, /*knows_integrity=*/true);
  {
    ModelStore store("rec://s", "{}", registry, std::chrono::milliseconds(0));
    CHECK(store.records_digests());
    store.save("m", topology_only());
  }
  {
    ModelStore store("rec://s", R"({"integrity":"none"})", registry, std::chrono::milliseconds(0));
    CHECK_FALSE(store.records_digests());
    store.save("m", topology_only());
  }
  {
    ModelStore store("rec://s", R"({"integrity":"sha256","x":1})", registry,
                     std::chrono::milliseconds(0));
    CHECK(store.records_digests());
    store.save("m", topology_only());
  }
  CHECK(rec->saved_with == std::vector<std::string>{R"({"integrity":"sha256"})",
                                                    R"({"integrity":"none"})",
                                                    R"({"integrity":"sha256","x":1})"});
}

TEST_CASE("store: a store plugin without the integrity option saves without digests") {
  Registry registry;
  auto rec = register_recorder(registry, /*knows_integrity=*/false);
  ModelStore store("rec://s", "{}", registry, std::chrono::milliseconds(0));
  CHECK_FALSE(store.records_digests());
  store.save("m", topology_only());
  CHECK(rec->saved_with == std::vector<std::string>{"{}"});
  // Asked for explicitly, the plugin's refusal is the store's error.
  try {
    ModelStore explicit_store("rec://s", R"({"integrity":"sha256"})", registry,
                              std::chrono::milliseconds(0));
    FAIL("an option the plugin refuses was accepted");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::kInvalidArgument);
    CHECK(std::string(e.what()) ==
          "Unknown option \"integrity\" for rec://s: this scheme takes no options here");
  }
}

}  // namespace stowage::serve
