// mirror://<URL>: a decorator written with the kit's NestedUrl, for the
// tests of nested URLs (nested_test.cpp). Every operation goes to the
// wrapped URL, opened through the host's registry; load and save pass
// through C++ ModelArtifacts, so the kit's conversions are what is tested.
// Options: "lazy": true opens the wrapped URL in load instead of open (the
// host must refuse it: nested_open only works inside open). "stream": true
// loads with NestedUrl::load_stream (abi.h nested_load_stream) and puts
// each buffer on as it comes, with "queue_bytes" its queue (0: the host's
// default); then "hold_after": N stops after putting N buffers until the
// file "until" exists (so a test can look at what the consumer did with
// the first N while the load is still running), for at most "hold_ms"
// (default 60000), "stop_after": N throws INVALID_ARGUMENT from the
// consumer when buffer N + 1 comes. "inner_options": the wrapped URL's.
// Built twice: as mirror://, and with STOWAGE_MIRROR_SINGLE_THREADED as
// mirrorst://, which declares STOWAGE_CAP_SINGLE_THREADED (the host must
// refuse to nest it in itself, whose open holds its lock).
#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>

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
      : Handler(url),
        lazy_(options.get_bool("lazy", false)),
        stream_(options.get_bool("stream", false)),
        queue_bytes_(options.get_uint64("queue_bytes", 0)),
        hold_after_(options.get_uint64("hold_after", 0)),
        stop_after_(options.get_uint64("stop_after", 0)),
        hold_ms_(options.get_uint64("hold_ms", 60000)),
        until_(options.get_string("until")),
        inner_options_(options.get_object_json("inner_options")) {
    inner_url_ = std::string(url.substr(url.find("://") + 3));
    if (!lazy_) inner_.emplace(inner_url_, inner_options_);
  }

  ModelArtifacts load(Call& call) override { return inner().load(call); }
  void load_into(plugin::LoadSink& out, Call& call) override {
    if (!stream_) return Handler::load_into(out, call);
    uint64_t handed = 0;
    inner().load_stream(
        call, [&](const ModelArtifacts& model) { out.set_model(model); },
        [&](uint64_t index, Buffer buffer) {
          if (stop_after_ != 0 && handed == stop_after_) {
            throw Error(ErrorCode::kInvalidArgument,
                        "mirror: the consumer stops after " + std::to_string(handed) + " buffers");
          }
          out.put(index, buffer);
          if (++handed == hold_after_) hold(call);
        },
        queue_bytes_);
  }
  std::optional<std::string> save(const ModelArtifacts& artifacts, Call& call) override {
    return inner().save(artifacts, call);
  }
  std::vector<ListedModel> list(Call& call) override { return inner().list(call); }
  ModelArtifactsInfo remove(Call& call) override { return inner().remove(call); }
  ModelStat stat(Call& call) override { return inner().stat(call); }

 private:
  plugin::NestedUrl& inner() {
    if (!inner_)
      inner_.emplace(inner_url_, inner_options_);  // lazy: outside open, which the host refuses
    return *inner_;
  }

  // Waits for the file `until` to exist (a test's go-ahead), polling; the
  // call's cancellation and deadline still end the wait.
  void hold(Call& call) const {
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::milliseconds(hold_ms_);
    while (!std::filesystem::exists(until_)) {
      call.check();
      if (std::chrono::steady_clock::now() > give_up) {
        throw Error(ErrorCode::kDeadlineExceeded, "mirror: " + until_ + " did not appear within " +
                                                      std::to_string(hold_ms_) + " ms");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }

  bool lazy_;
  bool stream_;
  uint64_t queue_bytes_;
  uint64_t hold_after_;
  uint64_t stop_after_;
  uint64_t hold_ms_;
  std::string until_;
  std::string inner_options_;
  std::string inner_url_;
  std::optional<plugin::NestedUrl> inner_;
};

}  // namespace

STOWAGE_PLUGIN(MirrorHandler, STOWAGE_MIRROR_NAME, "1.0.0",
               STOWAGE_CAP_LOAD | STOWAGE_CAP_SAVE | STOWAGE_CAP_LIST | STOWAGE_CAP_REMOVE |
                   STOWAGE_CAP_STAT | STOWAGE_CAP_STREAMING_LOAD | STOWAGE_MIRROR_EXTRA_CAPS,
               STOWAGE_MIRROR_NAME);
