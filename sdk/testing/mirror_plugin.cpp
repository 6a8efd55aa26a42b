// mirror://<URL>: a decorator written with the kit's NestedUrl, for the
// tests of nested URLs (nested_test.cpp). Every operation goes to the
// wrapped URL, opened through the host's registry; load and save pass
// through C++ ModelArtifacts, so the kit's conversions are what is tested.
// Options: "lazy": true opens the wrapped URL in load instead of open (the
// host must refuse it: nested_open only works inside open).
#include <optional>
#include <string>

#include "stowage/nested_url.hpp"
#include "stowage/plugin.hpp"

namespace {

using namespace stowage;
using stowage::plugin::Call;

class MirrorHandler final : public plugin::Handler {
 public:
  MirrorHandler(std::string_view url, plugin::Options& options)
      : Handler(url), lazy_(options.get_bool("lazy", false)) {
    constexpr std::string_view kPrefix = "mirror://";
    inner_url_ = std::string(url.substr(kPrefix.size()));
    if (!lazy_) inner_.emplace(inner_url_);
  }

  ModelArtifacts load(Call& call) override { return inner().load(call); }
  std::optional<std::string> save(const ModelArtifacts& artifacts, Call& call) override {
    return inner().save(artifacts, call);
  }
  std::vector<ListedModel> list(Call& call) override { return inner().list(call); }
  ModelArtifactsInfo remove(Call& call) override { return inner().remove(call); }
  ModelStat stat(Call& call) override { return inner().stat(call); }

 private:
  plugin::NestedUrl& inner() {
    if (!inner_) inner_.emplace(inner_url_);  // lazy: outside open, which the host refuses
    return *inner_;
  }

  bool lazy_;
  std::string inner_url_;
  std::optional<plugin::NestedUrl> inner_;
};

}  // namespace

STOWAGE_PLUGIN(MirrorHandler, "mirror", "1.0.0",
               STOWAGE_CAP_LOAD | STOWAGE_CAP_SAVE | STOWAGE_CAP_LIST | STOWAGE_CAP_REMOVE |
                   STOWAGE_CAP_STAT,
               "mirror");
