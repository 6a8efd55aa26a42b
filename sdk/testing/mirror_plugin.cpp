// mirror://<URL>: a decorator written with the kit's NestedUrl, for the
// tests of nested URLs (nested_test.cpp). Every operation goes to the
// wrapped URL, opened through the host's registry; load and save pass
// through C++ ModelArtifacts, so the kit's conversions are what is tested.
// Options: "lazy": true opens the wrapped URL in load instead of open (the
// host must refuse it: nested_open only works inside open).
// Built twice: as mirror://, and with STOWAGE_MIRROR_SINGLE_THREADED as
// mirrorst://, which declares STOWAGE_CAP_SINGLE_THREADED (the host must
// refuse to nest it in itself, whose open holds its lock).
#include <optional>
#include <string>

#include "stowage/nested_url.hpp"
#include "stowage/plugin.hpp"

#ifdef STOWAGE_MIRROR_SINGLE_THREADED
#define STOWAGE_MIRROR_NAME "mirrorst"
#define STOWAGE_MIRROR_EXTRA_CAPS STOWAGE_CAP_SINGLE_THREADED
#else
#define STOWAGE_MIRROR_NAME "mirror"
#define STOWAGE_MIRROR_EXTRA_CAPS 0
#endif

namespace {

using namespace stowage;
using stowage::plugin::Call;

class MirrorHandler final : public plugin::Handler {
 public:
  MirrorHandler(std::string_view url, plugin::Options& options)
      : Handler(url), lazy_(options.get_bool("lazy", false)) {
    inner_url_ = std::string(url.substr(url.find("://") + 3));
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

STOWAGE_PLUGIN(MirrorHandler, STOWAGE_MIRROR_NAME, "1.0.0",
               STOWAGE_CAP_LOAD | STOWAGE_CAP_SAVE | STOWAGE_CAP_LIST | STOWAGE_CAP_REMOVE |
                   STOWAGE_CAP_STAT | STOWAGE_MIRROR_EXTRA_CAPS,
               STOWAGE_MIRROR_NAME);
