// Model management across schemes (spec §5) with TF.js's messages, and a move
// that removes its source only after the destination has been written, read
// back and compared (fixing TF.js bug B4, which deletes first).
#include "stowage/management.hpp"

#include <algorithm>
#include <cstring>
#include <mutex>
#include <thread>
#include <typeinfo>

#include "model_stream_internal.hpp"
#include "plugin_handler_internal.hpp"
#include "registry_internal.hpp"
#include "stowage/error.hpp"
#include "stowage/model_json.hpp"
#include "stowage/weights.hpp"

namespace stowage {
namespace {

std::string scheme_text(std::string_view url) {
  auto sep = url.find("://");
  return std::string(url.substr(0, sep));
}

// TF.js's ModelStoreManagerRegistry lookup: list and remove need a scheme
// whose handler manages a store.
std::unique_ptr<IOHandler> open_manager(std::string_view url, Registry& registry) {
  if (url.find("://") == std::string_view::npos) {
    std::string schemes;
    for (const auto& s : registry.schemes()) schemes += (schemes.empty() ? "" : ",") + s;
    throw Error(
        ErrorCode::kInvalidArgument,
        "The url string provided does not contain a scheme. Supported schemes are: " + schemes);
  }
  try {
    return registry.open(url);
  } catch (const host::NoHandlerError& e) {
    throw Error(ErrorCode::kNotFound,
                "Cannot find model manager for scheme '" + scheme_text(url) + "'. " + e.what());
  }
}

bool is_plugin_handler(const IOHandler& h) {
  return dynamic_cast<const host::PluginHandler*>(&h) != nullptr;
}

// " Scheme 'downloads' (plugin 'browser') declares only: save." when the
// handler's plugin serves `bit` to other schemes but not to this one, so
// TF.js's wording still says why this URL cannot.
std::string scheme_note(const IOHandler& h, uint64_t bit) {
  const auto* p = dynamic_cast<const host::PluginHandler*>(&h);
  if (p == nullptr || !p->plugin()->has(bit) || (p->capabilities() & bit) != 0) return {};
  std::string declared;
  for (const std::string& c : host::LoadedPlugin::capability_names_of(p->capabilities())) {
    declared += (declared.empty() ? "" : ", ") + c;
  }
  return " Scheme '" + p->scheme() + "' (plugin '" + p->plugin()->name +
         "') declares only: " + (declared.empty() ? std::string("nothing") : declared) + ".";
}

// Whether two handlers reach the same store, so that one URL may name the
// other's model in another spelling.
bool same_store(const IOHandler& a, const IOHandler& b) {
  auto* pa = dynamic_cast<const host::PluginHandler*>(&a);
  auto* pb = dynamic_cast<const host::PluginHandler*>(&b);
  if (pa != nullptr && pb != nullptr) return pa->plugin() == pb->plugin();
  return typeid(a) == typeid(b);
}

// Progress of a transfer as one run of bytes: the load's bytes, then the
// save's. While loading, the save is assumed to move as many bytes again.
class SplitProgress {
 public:
  explicit SplitProgress(std::function<void(uint64_t, uint64_t)> sink) : sink_(std::move(sink)) {}

  std::function<void(uint64_t, uint64_t)> load_phase() {
    if (!sink_) return {};
    return [this](uint64_t done, uint64_t total) {
      std::lock_guard<std::mutex> lock(mu_);
      load_total_ = std::max(total, done);
      report(done, 2 * load_total_);
    };
  }

  std::function<void(uint64_t, uint64_t)> save_phase() {
    if (!sink_) return {};
    return [this](uint64_t done, uint64_t total) {
      std::lock_guard<std::mutex> lock(mu_);
      report(load_total_ + done, load_total_ + std::max(total, done));
    };
  }

  // The last report of a successful transfer has done == total.
  void finish(uint64_t load_bytes, uint64_t save_bytes) {
    if (!sink_) return;
    std::lock_guard<std::mutex> lock(mu_);
    uint64_t total = std::max(load_total_, load_bytes) + save_bytes;
    if (last_done_ != last_total_ || last_total_ != total) report(total, total);
  }

 private:
  void report(uint64_t done, uint64_t total) {
    done = std::max(done, last_done_);  // never backwards
    total = std::max(total, done);
    last_done_ = done;
    last_total_ = total;
    sink_(done, total);
  }

  std::function<void(uint64_t, uint64_t)> sink_;
  std::mutex mu_;
  uint64_t load_total_ = 0;
  uint64_t last_done_ = 0;
  uint64_t last_total_ = 0;
};

bool same_text(const NullableString& a, const NullableString& b) {
  // TF.js drops null fields on save: null and absent are the same model.
  return a.has_value() == b.has_value() && (!a.has_value() || a.value() == b.value());
}

// The first difference between what was loaded from the source and what the
// destination gives back, or nullopt when they are the same model.
std::optional<std::string> difference(const ModelArtifacts& a, const ModelArtifacts& b) {
  struct Field {
    const char* name;
    const std::optional<std::string>& x;
    const std::optional<std::string>& y;
  };
  const Field fields[] = {
      {"modelTopology", a.model_topology, b.model_topology},
      {"trainingConfig", a.training_config, b.training_config},
      {"userDefinedMetadata", a.user_defined_metadata, b.user_defined_metadata},
      {"signature", a.signature, b.signature},
      {"modelInitializer", a.model_initializer, b.model_initializer},
      {"initializerSignature", a.initializer_signature, b.initializer_signature},
  };
  for (const auto& f : fields) {
    if (f.x != f.y) {
      return std::string(f.name) + (f.y ? (f.x ? " differs" : " appeared") : " is missing");
    }
  }
  if (!same_text(a.format, b.format)) return std::string("format differs");
  if (!same_text(a.generated_by, b.generated_by)) return std::string("generatedBy differs");
  if (!same_text(a.converted_by, b.converted_by)) return std::string("convertedBy differs");

  static const std::vector<WeightSpec> kNone;
  const auto& sa = a.weight_specs ? *a.weight_specs : kNone;
  const auto& sb = b.weight_specs ? *b.weight_specs : kNone;
  if (sa.size() != sb.size()) {
    return "weightSpecs has " + std::to_string(sa.size()) + " entries at the source and " +
           std::to_string(sb.size()) + " at the destination";
  }
  for (size_t i = 0; i < sa.size(); ++i) {
    if (!(sa[i] == sb[i])) {
      return "weightSpecs[" + std::to_string(i) + "] ('" + sa[i].name + "') differs";
    }
  }

  static const WeightData kEmpty;
  const WeightData& da = a.weight_data ? *a.weight_data : kEmpty;
  const WeightData& db = b.weight_data ? *b.weight_data : kEmpty;
  uint64_t ta = total_size(da), tb = total_size(db);
  if (ta != tb) {
    return "the weight data has " + std::to_string(ta) + " bytes at the source and " +
           std::to_string(tb) + " at the destination";
  }
  // Walk both buffer lists side by side: no joined copy of either.
  size_t ia = 0, ib = 0;
  uint64_t oa = 0, ob = 0, offset = 0;
  while (offset < ta) {
    while (ia < da.size() && oa == da[ia].size()) ++ia, oa = 0;
    while (ib < db.size() && ob == db[ib].size()) ++ib, ob = 0;
    uint64_t n = std::min(da[ia].size() - oa, db[ib].size() - ob);
    const uint8_t* pa = da[ia].data() + oa;
    const uint8_t* pb = db[ib].data() + ob;
    if (std::memcmp(pa, pb, static_cast<size_t>(n)) != 0) {
      uint64_t k = 0;
      while (pa[k] == pb[k]) ++k;
      return "the weight data differs at byte " + std::to_string(offset + k);
    }
    oa += n;
    ob += n;
    offset += n;
  }
  return std::nullopt;
}

// The weight specs of a model, flat.
std::vector<WeightSpec> specs_of(const ModelArtifacts& a) {
  if (a.weight_specs) return *a.weight_specs;
  if (a.weights_manifest) return flatten_specs(*a.weights_manifest);
  return {};
}

// The weight bytes a model's specs fix, or nullopt when they do not (string
// weights) or when the model has no specs at all (nothing to stream).
std::optional<uint64_t> fixed_weight_bytes(const ModelArtifacts& a) {
  if (!a.weight_specs && !a.weights_manifest) return std::nullopt;
  return host::fixed_need(specs_of(a));
}

// A load running on its own thread into a stream; the destructor stops and
// joins it, so no exit path leaves it running.
class LoadThread {
 public:
  LoadThread(host::PluginHandler& source, host::ModelStream& stream, CallContext call)
      : stream_(stream), call_(std::move(call)) {
    // The load stops as soon as the consumer gave up, even a 1.0 plugin
    // that only hears about it through is_cancelled.
    std::function<bool()> user = call_.is_cancelled;
    call_.is_cancelled = [&stream, user] { return stream.stopped() || (user && user()); };
    thread_ = std::thread([this, &source] {
      try {
        source.load_into(stream_, call_);
      } catch (...) {
        stream_.fail(std::current_exception());
      }
    });
  }
  ~LoadThread() {
    if (thread_.joinable()) {
      stream_.cancel();
      thread_.join();
    }
  }
  LoadThread(const LoadThread&) = delete;
  LoadThread& operator=(const LoadThread&) = delete;

  void join() { thread_.join(); }

 private:
  host::ModelStream& stream_;
  CallContext call_;
  std::thread thread_;
};

// Every buffer left in the stream, in order (a model that cannot stream).
WeightData drain(host::ModelStream& stream) {
  WeightData data;
  while (std::optional<Buffer> b = stream.next()) data.push_back(std::move(*b));
  return data;
}

// The loaded JSON with the drained buffers, validated like any load.
ModelArtifacts materialised(ModelArtifacts meta, WeightData data, const std::string& url) {
  if (!data.empty() || meta.weight_specs || meta.weights_manifest) {
    meta.weight_data = std::move(data);
  }
  validate_weight_bytes(meta, url);
  return meta;
}

// A copy through a bounded queue: the source loads on a thread while the
// destination saves from the queue.
SaveResult stream_copy(host::PluginHandler& source, host::PluginHandler& destination,
                       const std::string& src, const TransferOptions& options,
                       const CallContext& load_call, const CallContext& save_call,
                       TransferStats& stats, uint64_t& bytes) {
  host::ModelStream stream(options.queue_bytes);
  LoadThread loader(source, stream, load_call);
  struct Peak {
    host::ModelStream& stream;
    TransferStats& stats;
    ~Peak() { stats.peak_queued_bytes = std::max(stats.peak_queued_bytes, stream.peak_bytes()); }
  } peak{stream, stats};
  std::optional<std::string> json = stream.artifacts();
  if (!json) {
    throw Error(ErrorCode::kInternal, "the load of " + src + " ended without its model JSON");
  }
  ModelArtifacts meta = parse_model_json(*json, src);
  std::optional<uint64_t> total = fixed_weight_bytes(meta);
  if (!total) {
    ModelArtifacts whole = materialised(std::move(meta), drain(stream), src);
    loader.join();
    bytes = whole.weight_data ? total_size(*whole.weight_data) : 0;
    stats.streamed = false;
    return destination.save(whole, save_call);
  }
  ModelArtifacts flat = std::move(meta);
  flat.weight_specs = specs_of(flat);
  flat.weights_manifest.reset();
  stats.streamed = true;
  SaveResult result = destination.save_streaming(flat, *total, stream, src, save_call);
  loader.join();
  bytes = *total;
  return result;
}

SaveResult transfer(std::string_view src, std::string_view dst, const TransferOptions& options,
                    Registry& registry, bool move) {
  const std::string s(src), d(dst);
  if (src == dst) {
    throw Error(ErrorCode::kInvalidArgument, "Old path and new path are the same: '" + s + "'");
  }
  std::unique_ptr<IOHandler> source;
  try {
    source = registry.open(src, options.source_options);
  } catch (const host::NoHandlerError& e) {
    throw Error(
        ErrorCode::kNotFound,
        "Copying failed because no load handler is found for source URL " + s + ". " + e.what());
  }
  if (!source->can_load()) {
    throw Error(ErrorCode::kUnimplemented,
                "Copying failed because no load handler is found for source URL " + s +
                    ". The handler of scheme '" + scheme_text(src) + "' cannot load models.");
  }
  std::unique_ptr<IOHandler> destination;
  try {
    destination = registry.open(dst, options.destination_options);
  } catch (const host::NoHandlerError& e) {
    throw Error(ErrorCode::kNotFound,
                "Copying failed because no save handler is found for destination URL " + d + ". " +
                    e.what());
  }
  if (!destination->can_save()) {
    throw Error(ErrorCode::kUnimplemented,
                "Copying failed because no save handler is found for destination URL " + d +
                    ". The handler of scheme '" + scheme_text(dst) + "' cannot save models.");
  }
  if (move && !destination->can_load()) {
    throw Error(ErrorCode::kUnimplemented,
                "Cannot move to " + d + ": the handler of scheme '" + scheme_text(dst) +
                    "' cannot load models, so the copy could not be verified before the source "
                    "is removed; nothing was copied. Copy it instead.");
  }
  if (move && !source->can_remove()) {
    throw Error(ErrorCode::kUnimplemented,
                "Cannot find model manager for scheme '" + scheme_text(src) +
                    "': moving needs a source that can be removed, so nothing was copied.");
  }

  SplitProgress progress(options.on_phase_progress ? nullptr : options.call.on_progress);
  CallContext load_call = options.call;
  load_call.on_progress = progress.load_phase();
  CallContext save_call = options.call;
  save_call.on_progress = progress.save_phase();
  if (options.on_phase_progress) {
    load_call.on_progress = [sink = options.on_phase_progress](uint64_t done, uint64_t total) {
      sink(TransferPhase::kLoading, done, total);
    };
    save_call.on_progress = [sink = options.on_phase_progress](uint64_t done, uint64_t total) {
      sink(TransferPhase::kSaving, done, total);
    };
  }
  save_call.weight_url_converter = nullptr;  // a converter belongs to the source's manifest

  TransferStats local_stats;
  TransferStats& stats = options.stats != nullptr ? *options.stats : local_stats;
  stats = TransferStats{};
  auto* source_plugin = dynamic_cast<host::PluginHandler*>(source.get());
  auto* destination_plugin = dynamic_cast<host::PluginHandler*>(destination.get());
  // A move keeps the loaded model to compare the copy with (and to restore
  // it), so it holds the whole model anyway.
  if (!move && options.streaming && !options.transform && source_plugin != nullptr &&
      destination_plugin != nullptr && destination_plugin->can_stream_save()) {
    uint64_t bytes = 0;
    SaveResult result = stream_copy(*source_plugin, *destination_plugin, s, options, load_call,
                                    save_call, stats, bytes);
    progress.finish(bytes, bytes);
    return result;
  }

  // The loaded buffers go straight into the save: no copy of the weights.
  ModelArtifacts artifacts = source->load(load_call);
  stats.peak_queued_bytes = artifacts.weight_data ? total_size(*artifacts.weight_data) : 0;
  if (!is_plugin_handler(*source)) {
    validate_weight_bytes(artifacts, s);
    if (load_call.verify_digests) verify_weight_digests(artifacts, s);
  }
  if (options.transform) options.transform(artifacts);
  SaveResult result = destination->save(artifacts, save_call);
  uint64_t bytes = artifacts.weight_data ? total_size(*artifacts.weight_data) : 0;
  if (!move) {
    progress.finish(bytes, bytes);
    return result;
  }

  CallContext quiet = options.call;
  quiet.on_progress = nullptr;
  quiet.weight_url_converter = nullptr;
  const std::optional<ReadBack> back =
      read_back_target(dst, options.destination_options, result, options.verify_url, registry);
  if (!back) {
    throw Error(ErrorCode::kUnimplemented,
                "Moving '" + s + "' to '" + d + "': the model was saved, but the receiver did " +
                    "not say where it can be loaded from, and '" + d + "' itself is the upload " +
                    "URL, so the copy cannot be read back to verify it and the source was not " +
                    "removed. Name the saved model.json with verify_url (--verify-url URL).");
  }
  ModelArtifacts copy;
  try {
    copy = registry.open(back->url, back->options_json)->load(quiet);
  } catch (const Error& e) {
    throw Error(e.code(),
                "Moving '" + s + "' to '" + d + "' failed: the copy was written but reading it " +
                    "back to verify it failed, so the source was not removed: " + e.what(),
                e.retryable());
  }
  if (auto diff = difference(artifacts, copy)) {
    throw Error(ErrorCode::kDataLoss, "Moving '" + s + "' to '" + d +
                                          "' failed: the model read back from the destination "
                                          "differs from the source (" +
                                          *diff + "). The source was not removed.");
  }
  copy = ModelArtifacts();
  try {
    source->remove(quiet);
  } catch (const Error& e) {
    throw Error(e.code(),
                "The model was copied from '" + s + "' to '" + d +
                    "' and verified, but removing the source failed: " + e.what(),
                e.retryable());
  }
  if (same_store(*source, *destination)) {
    // Two spellings of one model in one store: removing the source removed
    // the destination too. Put it back from what is still held in memory.
    bool still_there = true;
    try {
      registry.open(back->url, back->options_json)->load(quiet);
    } catch (const Error&) {
      still_there = false;
    }
    if (!still_there) {
      destination->save(artifacts, CallContext{});
      throw Error(ErrorCode::kInvalidArgument,
                  "'" + s + "' and '" + d +
                      "' name the same model: moving it onto itself would have deleted it. "
                      "It was saved back to '" +
                      d + "'.");
    }
  }
  progress.finish(bytes, bytes);
  return result;
}

}  // namespace

ModelArtifacts load_model(std::string_view url, std::string_view options_json,
                          const CallContext& call, Registry& registry) {
  return load_model(*registry.open(url, options_json), call);
}

ModelArtifacts load_model(IOHandler& handler, const CallContext& call) {
  if (!handler.can_load()) {
    throw Error(ErrorCode::kUnimplemented,
                "Cannot proceed with model loading because the IOHandler provided for '" +
                    handler.url() + "' does not have the `load` method implemented." +
                    scheme_note(handler, STOWAGE_CAP_LOAD));
  }
  ModelArtifacts artifacts = handler.load(call);
  // Plugin handlers validate inside load; a host's own handler is checked here.
  if (!is_plugin_handler(handler)) {
    validate_weight_bytes(artifacts, handler.url());
    if (call.verify_digests) verify_weight_digests(artifacts, handler.url());
  }
  return artifacts;
}

SaveResult save_model(std::string_view url, const ModelArtifacts& artifacts,
                      std::string_view options_json, const CallContext& call, Registry& registry) {
  return save_model(*registry.open(url, options_json), artifacts, call);
}

SaveResult save_model(IOHandler& handler, const ModelArtifacts& artifacts,
                      const CallContext& call) {
  if (!handler.can_save()) {
    throw Error(ErrorCode::kUnimplemented,
                "Cannot proceed with saving because the IOHandler provided for '" + handler.url() +
                    "' does not have the `save` attribute defined." +
                    scheme_note(handler, STOWAGE_CAP_SAVE));
  }
  return handler.save(artifacts, call);
}

void load_model_streaming(std::string_view url, std::string_view options_json,
                          const std::function<void(const ModelArtifacts&)>& on_artifacts,
                          const std::function<void(uint64_t index, const Buffer&)>& on_buffer,
                          const CallContext& call, uint64_t queue_bytes, Registry& registry) {
  load_model_streaming(*registry.open(url, options_json), on_artifacts, on_buffer, call,
                       queue_bytes);
}

void load_model_streaming(IOHandler& handler,
                          const std::function<void(const ModelArtifacts&)>& on_artifacts,
                          const std::function<void(uint64_t index, const Buffer&)>& on_buffer,
                          const CallContext& call, uint64_t queue_bytes) {
  const std::string& u = handler.url();
  auto deliver = [&](const ModelArtifacts& whole) {
    ModelArtifacts meta = whole;
    meta.weight_data.reset();
    on_artifacts(meta);
    if (!whole.weight_data) return;
    for (size_t i = 0; i < whole.weight_data->size(); ++i) on_buffer(i, (*whole.weight_data)[i]);
  };
  auto* plugin = dynamic_cast<host::PluginHandler*>(&handler);
  if (plugin == nullptr || !handler.can_load()) {
    deliver(load_model(handler, call));
    return;
  }
  host::ModelStream stream(queue_bytes);
  LoadThread loader(*plugin, stream, call);
  std::optional<std::string> json = stream.artifacts();
  if (!json) {
    throw Error(ErrorCode::kInternal, "the load of " + u + " ended without its model JSON");
  }
  ModelArtifacts meta = parse_model_json(*json, u);
  if (!fixed_weight_bytes(meta) && (meta.weight_specs || meta.weights_manifest)) {
    // String weights: their sizes are only known from their bytes, so the
    // whole model is checked before any buffer is handed out.
    ModelArtifacts whole = materialised(std::move(meta), drain(stream), u);
    loader.join();
    deliver(whole);
    return;
  }
  on_artifacts(meta);
  uint64_t index = 0;
  while (std::optional<Buffer> b = stream.next()) on_buffer(index++, *b);
  loader.join();
}

std::vector<ListedModel> list_models(std::string_view url, Registry& registry) {
  auto handler = open_manager(url, registry);
  if (!handler->can_list()) {
    throw Error(ErrorCode::kUnimplemented, "Cannot find model manager for scheme '" +
                                               scheme_text(url) +
                                               "': its handler cannot list models.");
  }
  return handler->list();
}

ModelArtifactsInfo remove_model(std::string_view url, Registry& registry) {
  auto handler = open_manager(url, registry);
  if (!handler->can_remove()) {
    throw Error(ErrorCode::kUnimplemented, "Cannot find model manager for scheme '" +
                                               scheme_text(url) +
                                               "': its handler cannot remove models.");
  }
  return handler->remove();
}

SaveResult copy_model(std::string_view src, std::string_view dst, const TransferOptions& options,
                      Registry& registry) {
  return transfer(src, dst, options, registry, false);
}

SaveResult move_model(std::string_view src, std::string_view dst, const TransferOptions& options,
                      Registry& registry) {
  return transfer(src, dst, options, registry, true);
}

}  // namespace stowage
