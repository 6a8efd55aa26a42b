// broken:// — a model store that breaks one promise of abi.h on purpose, to
// prove that the conformance suite catches it and names the promise. Built
// for tests only; never installed.
//
// USAGE
//   broken://<name>   a model called <name> in a process-wide map.
//   The environment variable STOWAGE_BROKEN_MODE picks the broken promise
//   when the plugin loads:
//     (unset) or "none"      keeps every promise (the suite passes)
//     "no_list"              keeps every promise but declares no list: the
//                            suite skips the groups that need it
//     "undeclared_function"  declares STOWAGE_CAP_REMOVE without a remove
//     "unimplemented_list"   declares STOWAGE_CAP_LIST; list is UNIMPLEMENTED
//     "wrong_sizes"          load hands back one weight byte too few
//     "throws"               save lets a C++ exception cross the C ABI
//     "small_ops"            an ops table smaller than ABI 1.0's
//     "wrong_not_found"      load of a missing model fails with INTERNAL
//     "ignores_cancel"       save and load never look at cancellation
//     "partial_save"         a cancelled save leaves half of the new model
//     "false_mark"           load hands the weights back under a manifest
//                            recording each buffer's SHA-256, then flips a
//                            byte of the last one and still marks it
//                            verified (abi.h sink_mark_verified)
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>

#include "stowage/digest.hpp"
#include "stowage/plugin.hpp"

namespace {

using namespace stowage;
using namespace stowage::plugin;

std::string mode() {
  const char* m = std::getenv("STOWAGE_BROKEN_MODE");
  return m != nullptr ? m : "none";
}

struct Stored {
  ModelArtifacts artifacts;
  ModelArtifactsInfo info;
  uint64_t generation = 0;  // stat's version: a new one for every save
};

struct Shelf {
  std::mutex mu;
  std::map<std::string, std::shared_ptr<Stored>> models;
  uint64_t saves = 0;  // guarded by mu
};
Shelf& shelf() {
  static Shelf* s = new Shelf;  // never destroyed: it holds host buffers
  return *s;
}

std::shared_ptr<Stored> find(const std::string& name) {
  std::lock_guard<std::mutex> lock(shelf().mu);
  auto it = shelf().models.find(name);
  return it == shelf().models.end() ? nullptr : it->second;
}

class BrokenHandler final : public Handler {
 public:
  BrokenHandler(std::string_view url, Options&)
      : Handler(url), name_(url.substr(url.find("://") + 3)), mode_(mode()) {}

  ModelArtifacts load(Call& call) override {
    if (mode_ != "ignores_cancel") call.check();
    std::shared_ptr<Stored> m = find(name_);
    if (!m) {
      throw Error(mode_ == "wrong_not_found" ? ErrorCode::kInternal : ErrorCode::kNotFound,
                  "no model at " + url());
    }
    ModelArtifacts out = m->artifacts;
    uint64_t total = out.weight_data ? total_size(*out.weight_data) : 0;
    if (mode_ == "wrong_sizes" && out.weight_data && total > 0) {
      Buffer& last = out.weight_data->back();
      last = last.slice(0, last.size() - 1);
    }
    if (mode_ == "false_mark") mark_falsely(out, call);
    call.progress(total, total);
    return out;
  }

  std::optional<std::string> save(const ModelArtifacts& artifacts, Call& call) override {
    if (mode_ != "ignores_cancel") call.check();
    auto fresh = std::make_shared<Stored>(Stored{artifacts, artifacts_info(artifacts)});
    fresh->artifacts.weights_manifest.reset();
    if (mode_ == "partial_save") {
      // Publishes the weights first, then looks at cancellation.
      std::lock_guard<std::mutex> lock(shelf().mu);
      auto& slot = shelf().models[name_];
      auto half = std::make_shared<Stored>(slot ? *slot : *fresh);
      half->artifacts.weight_data = fresh->artifacts.weight_data;
      slot = half;
    }
    if (mode_ != "ignores_cancel") call.check();
    {
      std::lock_guard<std::mutex> lock(shelf().mu);
      fresh->generation = ++shelf().saves;
      shelf().models[name_] = fresh;
    }
    uint64_t total = artifacts.weight_data ? total_size(*artifacts.weight_data) : 0;
    call.progress(total, total);
    return std::nullopt;
  }

  std::vector<ListedModel> list(Call& call) override {
    if (mode_ == "unimplemented_list") {
      throw Error(ErrorCode::kUnimplemented, "list is not supported for " + url());
    }
    call.check();
    std::vector<ListedModel> out;
    std::lock_guard<std::mutex> lock(shelf().mu);
    for (const auto& [name, m] : shelf().models) {
      if (name == name_ || name.starts_with(name_ + "/"))
        out.push_back({"broken://" + name, m->info});
    }
    return out;
  }

  ModelStat stat(Call& call) override {
    call.check();
    std::shared_ptr<Stored> m = find(name_);
    if (!m) throw Error(ErrorCode::kNotFound, "no model at " + url());
    ModelStat out;
    out.model = m->artifacts;
    out.model.weight_data.reset();
    out.version = std::to_string(m->generation);
    out.info = m->info;
    return out;
  }

  ModelArtifactsInfo remove(Call& call) override {
    call.check();
    std::lock_guard<std::mutex> lock(shelf().mu);
    auto it = shelf().models.find(name_);
    if (it == shelf().models.end()) throw Error(ErrorCode::kNotFound, "no model at " + url());
    ModelArtifactsInfo info = it->second->info;
    shelf().models.erase(it);
    return info;
  }

 private:
  // One group naming every buffer, with its true digest; then the last
  // non-empty buffer changes and is marked verified against the old one.
  static void mark_falsely(ModelArtifacts& out, Call& call) {
    if (!out.weight_data || !out.weight_specs) return;
    WeightData& data = *out.weight_data;
    WeightGroup group;
    group.weights = *out.weight_specs;
    group.sha256.emplace();
    for (size_t i = 0; i < data.size(); ++i) {
      group.paths.push_back("part" + std::to_string(i + 1) + ".bin");
      group.sha256->push_back(sha256_hex(data[i].bytes()));
    }
    out.weights_manifest = WeightsManifest{group};
    for (size_t i = data.size(); i-- > 0;) {
      if (data[i].size() == 0) continue;
      std::vector<uint8_t> bytes(data[i].bytes().begin(), data[i].bytes().end());
      bytes[0] ^= 0xff;
      data[i] = Buffer::copy_of(bytes, "broken part " + std::to_string(i + 1));
      call.mark_verified(i, (*group.sha256)[i]);
      return;
    }
  }

  const std::string name_;
  const std::string mode_;
};

// ---- The broken descriptors -------------------------------------------------

void throwing_save(stowage_handler*, const stowage_artifacts*, const stowage_call*, stowage_sink*,
                   stowage_status*) {
  throw std::runtime_error("the broken plugin's save threw");  // across the C ABI: the bug
}

const stowage_call* g_ignored_call(const stowage_call* call, stowage_call* copy) {
  *copy = *call;
  copy->deadline_unix_ms = 0;
  copy->is_cancelled = [](void*) -> int32_t { return 0; };
  return copy;
}

stowage_ops g_kit_ops;
void deaf_save(stowage_handler* h, const stowage_artifacts* a, const stowage_call* c,
               stowage_sink* s, stowage_status* st) {
  stowage_call copy;
  g_kit_ops.save(h, a, g_ignored_call(c, &copy), s, st);
}
void deaf_load(stowage_handler* h, const stowage_call* c, stowage_sink* s, stowage_status* st) {
  stowage_call copy;
  g_kit_ops.load(h, g_ignored_call(c, &copy), s, st);
}

}  // namespace

extern "C" __attribute__((visibility("default"))) const stowage_plugin_desc*
stowage_plugin_entry_v1(const stowage_host_api* host) {
  static const char* const schemes[] = {"broken"};
  const uint64_t list = mode() == "no_list" ? 0 : STOWAGE_CAP_LIST;
  const stowage_plugin_desc* kit = detail::describe<BrokenHandler>(
      host, "broken", "1.0.0",
      STOWAGE_CAP_LOAD | STOWAGE_CAP_SAVE | list | STOWAGE_CAP_REMOVE | STOWAGE_CAP_STAT, schemes,
      1);
  if (kit == nullptr) return nullptr;
  static stowage_plugin_desc desc;
  static stowage_ops ops;
  desc = *kit;
  ops = *kit->ops;
  g_kit_ops = *kit->ops;
  desc.ops = &ops;
  const std::string m = mode();
  if (m == "undeclared_function") ops.remove = nullptr;
  if (m == "throws") ops.save = &throwing_save;
  if (m == "small_ops") ops.struct_size = offsetof(stowage_ops, save);
  if (m == "ignores_cancel") {
    ops.save = &deaf_save;
    ops.load = &deaf_load;
  }
  return &desc;
}
static_assert(std::is_same_v<decltype(&stowage_plugin_entry_v1), stowage_entry_fn>);
