#include <atomic>
#include <exception>
#include <mutex>

#include "json_util_internal.hpp"
#include "plugin_handler_internal.hpp"
#include "stowage/error.hpp"
#include "stowage/model_json.hpp"
#include "stowage/registry.hpp"
#include "stowage/weights.hpp"

namespace stowage::host {
namespace {

// The stowage_call of one attempt: forwards the plugin's callbacks to the
// CallContext. A callback that throws is remembered (and rethrown after the
// call) and makes is_cancelled say yes, so the plugin stops early.
class CallBridge {
 public:
  // `stat`: the call is a stat, the only one that carries known_version.
  explicit CallBridge(const CallContext& ctx, bool stat = false) : ctx_(ctx) {
    call_.struct_size = sizeof call_;
    if (ctx.deadline) {
      call_.deadline_unix_ms =
          std::chrono::duration_cast<std::chrono::milliseconds>(ctx.deadline->time_since_epoch())
              .count();
      // 0 means "no deadline"; a deadline at the epoch has passed anyway.
      if (call_.deadline_unix_ms == 0) call_.deadline_unix_ms = 1;
    }
    call_.host_context = this;
    call_.is_cancelled = &CallBridge::is_cancelled;
    call_.progress = &CallBridge::progress;
    call_.convert_weight_url = &CallBridge::convert;
    if (ctx.shallow_stat) call_.flags |= STOWAGE_CALL_STAT_SHALLOW;
    if (!ctx.verify_digests) call_.flags |= STOWAGE_CALL_SKIP_DIGESTS;
    if (stat && !ctx.known_version.empty()) {
      call_.known_version = ctx.known_version.c_str();
      call_.known_version_size = ctx.known_version.size();
    }
  }
  CallBridge(const CallBridge&) = delete;
  CallBridge& operator=(const CallBridge&) = delete;

  const stowage_call* get() const noexcept { return &call_; }

  void rethrow_if_failed() {
    std::lock_guard<std::mutex> lock(mu_);
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void remember(std::exception_ptr e) noexcept {
    std::lock_guard<std::mutex> lock(mu_);
    if (!error_) error_ = std::move(e);
    failed_.store(true);
  }

  static int32_t is_cancelled(void* context) noexcept {
    auto* self = static_cast<CallBridge*>(context);
    if (self->failed_.load()) return 1;
    if (!self->ctx_.is_cancelled) return 0;
    try {
      return self->ctx_.is_cancelled() ? 1 : 0;
    } catch (...) {
      self->remember(std::current_exception());
      return 1;
    }
  }

  static void progress(void* context, uint64_t done, uint64_t total) noexcept {
    auto* self = static_cast<CallBridge*>(context);
    if (!self->ctx_.on_progress || self->failed_.load()) return;
    try {
      self->ctx_.on_progress(done, total);
    } catch (...) {
      self->remember(std::current_exception());
    }
  }

  static int32_t convert(void* context, const char* path, size_t path_len, stowage_sink* out,
                         stowage_status* st) noexcept {
    auto* self = static_cast<CallBridge*>(context);
    const stowage_host_api* host = host_api();
    if (!self->ctx_.weight_url_converter) return 0;
    if (out == nullptr) {
      static constexpr char kMsg[] =
          "convert_weight_url needs a text sink made by host->sink_new_text";
      host->status_set(st, STOWAGE_INVALID_ARGUMENT, 0, kMsg, sizeof kMsg - 1);
      return -1;
    }
    try {
      std::optional<std::string> url =
          self->ctx_.weight_url_converter(std::string_view(path, path_len));
      if (!url) return 0;
      host->sink_set_text(out, url->data(), url->size());
      return 1;
    } catch (const Error& e) {
      std::string_view msg = e.what();
      host->status_set(st, static_cast<int32_t>(e.code()), e.retryable() ? 1 : 0, msg.data(),
                       msg.size());
    } catch (const std::exception& e) {
      std::string msg = std::string("the weight URL converter failed: ") + e.what();
      host->status_set(st, STOWAGE_INTERNAL, 0, msg.data(), msg.size());
    } catch (...) {
      static constexpr char kMsg[] = "the weight URL converter failed";
      host->status_set(st, STOWAGE_INTERNAL, 0, kMsg, sizeof kMsg - 1);
    }
    return -1;
  }

  const CallContext& ctx_;
  stowage_call call_{};
  std::mutex mu_;
  std::exception_ptr error_;
  std::atomic<bool> failed_{false};
};

Error plugin_error(const LoadedPlugin& plugin, const char* op, const std::string& url,
                   const stowage_status& st) {
  Error e = !st.message.empty()
                ? Error(st.code, st.message, st.retryable)
                : Error(st.code,
                        "plugin '" + plugin.name + "' failed to " + op + " '" + url + "' (" +
                            std::string(error_code_name(st.code)) + ", no message given)",
                        st.retryable);
  return st.request ? e.with_request(*st.request) : e;
}

}  // namespace

PluginHandler::PluginHandler(std::shared_ptr<const LoadedPlugin> plugin, std::string url,
                             std::string_view options_json, RetryPolicy policy)
    : plugin_(std::move(plugin)),
      url_(std::move(url)),
      scheme_(url_scheme(url_)),
      capabilities_(plugin_->capabilities_of(scheme_)),
      policy_(policy) {
  const std::string options(options_json);
  stowage_status st;
  stowage_handler* handle = nullptr;
  {
    auto lock = plugin_->call_lock();
    plugin_->ops.open(url_.c_str(), url_.size(), options.c_str(), options.size(), &handle, &st);
  }
  if (st.failed) {
    if (handle != nullptr) {
      auto lock = plugin_->call_lock();
      plugin_->ops.close(handle);
    }
    throw plugin_error(*plugin_, "open", url_, st);
  }
  if (handle == nullptr) {
    throw Error(ErrorCode::kInternal,
                "plugin '" + plugin_->name + "' returned no handler for '" + url_ + "'");
  }
  handle_ = handle;
}

void PluginHandler::unsupported(const char* op) const {
  std::string declared;
  for (const std::string& c : LoadedPlugin::capability_names_of(capabilities_)) {
    declared += (declared.empty() ? "" : ", ") + c;
  }
  throw Error(ErrorCode::kUnimplemented,
              "Scheme '" + scheme_ + "' (plugin '" + plugin_->name + "') does not support '" + op +
                  "' (it declares: " + (declared.empty() ? std::string("nothing") : declared) +
                  "); nothing was done for '" + url_ + "'");
}

PluginHandler::~PluginHandler() {
  auto lock = plugin_->call_lock();
  plugin_->ops.close(handle_);
}

template <class Fn>
std::unique_ptr<stowage_sink> PluginHandler::invoke(const char* op, const CallContext& call,
                                                    stowage_sink::Kind kind,
                                                    const RetryPolicy& policy, Fn&& fn) {
  std::unique_ptr<stowage_sink> result;
  run_with_retry(
      policy, call,
      [&] {
        auto sink = std::make_unique<stowage_sink>(kind, plugin_);
        sink->may_put = kind == stowage_sink::Kind::kLoad && has(STOWAGE_CAP_STREAMING_LOAD);
        stowage_status st;
        CallBridge bridge(call, std::string_view(op) == "stat");
        {
          auto lock = plugin_->call_lock();
          fn(bridge.get(), sink.get(), &st);
        }
        bridge.rethrow_if_failed();
        // A broken rule comes first: the plugin's own failure (abi.h has it
        // fail with CANCELLED when a put is refused) only follows from it.
        if (!sink->misuse.empty()) {
          throw Error(ErrorCode::kInternal, "plugin '" + plugin_->name + "' broke the ABI in " +
                                                op + " of '" + url_ + "': " + sink->misuse);
        }
        if (st.failed) throw plugin_error(*plugin_, op, url_, st);
        result = std::move(sink);
      },
      op, url_);
  return result;
}

SaveResult PluginHandler::save(const ModelArtifacts& artifacts, const CallContext& call) {
  if (!can_save()) {
    if (!plugin_->has(STOWAGE_CAP_SAVE)) return IOHandler::save(artifacts, call);
    unsupported("save");
  }
  // abi.h: save gets the flat weightSpecs only. A manifest (from a load)
  // names the source's files, which mean nothing to the destination.
  std::string json;
  if (artifacts.weights_manifest) {
    ModelArtifacts flat = artifacts;
    if (!flat.weight_specs) flat.weight_specs = flatten_specs(*flat.weights_manifest);
    flat.weights_manifest.reset();
    flat.weight_data.reset();
    json = artifacts_to_json(flat);
  } else {
    json = artifacts_to_json(artifacts);
  }
  const WeightData* data = artifacts.weight_data ? &*artifacts.weight_data : nullptr;
  LentBuffers lent(data);
  stowage_artifacts a{};
  a.struct_size = sizeof a;
  a.has_weight_data = data != nullptr ? 1 : 0;
  a.json = json.c_str();
  a.json_size = json.size();
  a.buffers = lent.data();
  a.buffer_count = lent.size();
  a.weight_bytes = data != nullptr ? total_size(*data) : 0;
  auto sink = invoke("save", call, stowage_sink::Kind::kText, policy_,
                     [&](const stowage_call* c, stowage_sink* s, stowage_status* st) {
                       plugin_->ops.save(handle_, &a, c, s, st);
                     });
  SaveResult result;
  result.model_artifacts_info = artifacts_info(artifacts);
  if (sink->text) result.responses = std::move(*sink->text);
  return result;
}

std::optional<uint64_t> fixed_need(const std::vector<WeightSpec>& specs) {
  uint64_t total = 0;
  for (const WeightSpec& spec : specs) {
    std::optional<uint64_t> n = fixed_byte_size(spec);
    if (!n || __builtin_add_overflow(total, *n, &total)) return std::nullopt;
  }
  return total;
}

namespace {

// The next_buffer side of a streaming save: hands the stream's buffers to
// the plugin as host references and holds the stream to the promised total.
struct Puller {
  ModelStream& stream;
  uint64_t weight_bytes;
  const std::string& source;
  uint64_t pulled = 0;
  bool ended = false;
  bool failed = false;

  static int32_t next(void* context, stowage_buffer* out, stowage_status* st) noexcept {
    auto* self = static_cast<Puller*>(context);
    if (out == nullptr)
      return self->fail(st, ErrorCode::kInvalidArgument, "next_buffer: out is NULL");
    if (self->ended || self->failed) {
      return self->fail(st, ErrorCode::kInternal,
                        "next_buffer was called again after it returned 0 or -1");
    }
    try {
      std::optional<Buffer> b = self->stream.next();
      if (!b) {
        if (self->pulled != self->weight_bytes) {
          return self->short_data(st);
        }
        self->ended = true;
        return 0;
      }
      if (b->size() > self->weight_bytes - self->pulled) {
        self->pulled = self->weight_bytes + 1;
        self->stream.cancel();
        return self->short_data(st);
      }
      self->pulled += b->size();
      *out = lend_owned(std::move(*b));
      return 1;
    } catch (const Error& e) {
      self->stream.cancel();
      return self->fail(st, e.code(), e.what(), e.retryable());
    } catch (const std::exception& e) {
      self->stream.cancel();
      return self->fail(st, ErrorCode::kInternal, e.what());
    } catch (...) {
      self->stream.cancel();
      return self->fail(st, ErrorCode::kInternal, "the weight stream failed");
    }
  }

  int32_t short_data(stowage_status* st) {
    return fail(st, ErrorCode::kDataLoss,
                "the load of " + source +
                    (pulled > weight_bytes ? " delivered more than " : " delivered only ") +
                    (pulled > weight_bytes ? "" : std::to_string(pulled) + " of ") +
                    std::to_string(weight_bytes) + " bytes of weight data its weight specs need");
  }

  int32_t fail(stowage_status* st, ErrorCode code, std::string_view msg, bool retryable = false) {
    failed = true;
    host_api()->status_set(st, static_cast<int32_t>(code), retryable ? 1 : 0, msg.data(),
                           msg.size());
    return -1;
  }
};

// What a streamed load handed over (its buffers' sizes, the bytes being
// gone), checked against its specs as validate_weight_bytes checks a whole
// load: per weight group when there is one buffer per manifest path.
void check_streamed_sizes(const std::string& json, const std::vector<uint64_t>& sizes,
                          const std::string& url) {
  ModelArtifacts artifacts = parse_model_json(json, url);
  const std::string prefix = "model.json at " + url + ": ";
  uint64_t have = 0;
  for (uint64_t n : sizes) have += n;
  size_t path_count = 0;
  if (artifacts.weights_manifest) {
    for (const WeightGroup& g : *artifacts.weights_manifest) path_count += g.paths.size();
  }
  if (artifacts.weights_manifest && path_count == sizes.size()) {
    size_t first = 0;
    for (size_t g = 0; g < artifacts.weights_manifest->size(); ++g) {
      const WeightGroup& group = (*artifacts.weights_manifest)[g];
      uint64_t group_have = 0;
      for (size_t i = first; i < first + group.paths.size(); ++i) group_have += sizes[i];
      first += group.paths.size();
      const std::optional<uint64_t> need = fixed_need(group.weights);
      if (!need || *need == group_have) continue;
      throw Error(ErrorCode::kDataLoss, prefix + "weight group " + std::to_string(g + 1) + " (" +
                                            std::to_string(group.weights.size()) +
                                            " weights) needs " + std::to_string(*need) +
                                            " bytes but its " + std::to_string(group.paths.size()) +
                                            " shard(s) hold " + std::to_string(group_have) +
                                            " bytes");
    }
    return;
  }
  if (!artifacts.weight_specs && !artifacts.weights_manifest) {
    if (sizes.empty()) return;
    throw Error(ErrorCode::kDataLoss, prefix + "it has no weight specs but the load handed over " +
                                          std::to_string(have) + " bytes of weight data");
  }
  const std::vector<WeightSpec> specs =
      artifacts.weight_specs ? *artifacts.weight_specs : flatten_specs(*artifacts.weights_manifest);
  const std::optional<uint64_t> need = fixed_need(specs);
  if (!need || *need == have) return;
  throw Error(ErrorCode::kDataLoss, prefix + "the weights (" + std::to_string(specs.size()) +
                                        " specs) need " + std::to_string(*need) +
                                        " bytes but the weight data holds " + std::to_string(have) +
                                        " bytes in " + std::to_string(sizes.size()) + " buffer(s)");
}

}  // namespace

SaveResult PluginHandler::save_streaming(const ModelArtifacts& meta, uint64_t weight_bytes,
                                         ModelStream& stream, const std::string& source,
                                         const CallContext& call) {
  if (!can_stream_save()) {
    throw Error(ErrorCode::kInternal, "plugin '" + plugin_->name + "' cannot save from a stream");
  }
  const std::string json = artifacts_to_json(meta);
  Puller puller{stream, weight_bytes, source};
  stowage_artifacts a{};
  a.struct_size = sizeof a;
  a.has_weight_data = 1;
  a.json = json.c_str();
  a.json_size = json.size();
  a.buffers = nullptr;
  a.buffer_count = 0;
  a.weight_bytes = weight_bytes;
  a.next_buffer = &Puller::next;
  a.source_context = &puller;
  RetryPolicy once = policy_;
  once.max_attempts = 1;
  std::unique_ptr<stowage_sink> sink;
  try {
    sink = invoke("save", call, stowage_sink::Kind::kText, once,
                  [&](const stowage_call* c, stowage_sink* s, stowage_status* st) {
                    plugin_->ops.save(handle_, &a, c, s, st);
                  });
  } catch (...) {
    stream.cancel();  // the load behind the stream stops too
    throw;
  }
  if (!puller.ended) {
    stream.cancel();
    throw Error(ErrorCode::kInternal,
                "plugin '" + plugin_->name + "' reported a successful save of '" + url_ +
                    "' without taking all of its weight data (" + std::to_string(puller.pulled) +
                    " of " + std::to_string(weight_bytes) + " bytes)");
  }
  SaveResult result;
  result.model_artifacts_info = artifacts_info(meta);
  result.model_artifacts_info.weight_data_bytes = weight_bytes;
  if (sink->text) result.responses = std::move(*sink->text);
  return result;
}

void PluginHandler::load_into(ModelStream& stream, const CallContext& call) {
  if (!can_load()) {
    IOHandler::load(call);
    return;
  }
  run_with_retry(
      policy_, call,
      [&] {
        auto sink = std::make_unique<stowage_sink>(stowage_sink::Kind::kLoad, plugin_);
        sink->stream = &stream;
        sink->may_put = has(STOWAGE_CAP_STREAMING_LOAD);
        if (call.verify_digests) {
          sink->digests = std::make_unique<StreamDigests>(url_, !call.recheck_digests);
        }
        stowage_status st;
        CallBridge bridge(call);
        try {
          {
            auto lock = plugin_->call_lock();
            plugin_->ops.load(handle_, bridge.get(), sink.get(), &st);
          }
          bridge.rethrow_if_failed();
          {
            // A bad digest stopped the load (the plugin reports it cancelled).
            std::lock_guard<std::mutex> lock(sink->failure_mu);
            if (sink->failure) std::rethrow_exception(sink->failure);
          }
          if (!sink->misuse.empty()) {
            throw Error(ErrorCode::kInternal, "plugin '" + plugin_->name +
                                                  "' broke the ABI in load of '" + url_ +
                                                  "': " + sink->misuse);
          }
          if (st.failed) throw plugin_error(*plugin_, "load", url_, st);
        } catch (const Error& e) {
          // What reached the stream cannot be taken back: no second attempt.
          if (e.retryable() && stream.touched()) throw Error(e.code(), e.what(), false);
          throw;
        }
        if (!sink->text) {
          throw Error(ErrorCode::kInternal, "plugin '" + plugin_->name +
                                                "' returned no model JSON from its load of '" +
                                                url_ + "'");
        }
        const std::vector<uint64_t> sizes = stream.sizes();
        check_streamed_sizes(*sink->text, sizes, url_);
        if (sink->digests) sink->digests->check_count(*sink->text, sizes.size());
      },
      "load", url_);
  stream.finish(url_);
}

ModelArtifacts PluginHandler::load(const CallContext& call) {
  if (!can_load()) {
    if (!plugin_->has(STOWAGE_CAP_LOAD)) return IOHandler::load(call);
    unsupported("load");
  }
  auto sink = invoke("load", call, stowage_sink::Kind::kLoad, policy_,
                     [&](const stowage_call* c, stowage_sink* s, stowage_status* st) {
                       plugin_->ops.load(handle_, c, s, st);
                     });
  if (!sink->text) {
    throw Error(
        ErrorCode::kInternal,
        "plugin '" + plugin_->name + "' returned no model JSON from its load of '" + url_ + "'");
  }
  for (size_t i = 0; i < sink->put.size(); ++i) {
    if (!sink->put[i]) {
      throw Error(ErrorCode::kInternal,
                  "plugin '" + plugin_->name + "' broke the ABI in load of '" + url_ +
                      "': it put weight buffer " + std::to_string(sink->put.size() - 1) +
                      " but never buffer " + std::to_string(i));
    }
  }
  ModelArtifacts artifacts = parse_model_json(*sink->text, url_);
  if (!sink->buffers.empty() || artifacts.weight_specs || artifacts.weights_manifest) {
    artifacts.weight_data = std::move(sink->buffers);
  }
  validate_weight_bytes(artifacts, url_);
  if (call.verify_digests) {
    // The buffers the plugin checked against the digests this manifest
    // records are not hashed again (abi.h sink_mark_verified), unless the
    // caller wants its own check of every one.
    static const std::map<uint64_t, std::string> kNoMarks;
    verify_weight_digests(artifacts, url_, call.recheck_digests ? kNoMarks : sink->verified);
  }
  return artifacts;
}

std::vector<ListedModel> PluginHandler::list(const CallContext& call) {
  if (!can_list()) {
    if (!plugin_->has(STOWAGE_CAP_LIST)) return IOHandler::list(call);
    unsupported("list");
  }
  auto sink = invoke("list", call, stowage_sink::Kind::kList, policy_,
                     [&](const stowage_call* c, stowage_sink* s, stowage_status* st) {
                       plugin_->ops.list(handle_, c, s, st);
                     });
  std::vector<ListedModel> models;
  models.reserve(sink->models.size());
  for (auto& [url, info] : sink->models) {
    models.push_back(
        {url, info_from_json(info, "plugin '" + plugin_->name + "' listing '" + url + "'")});
  }
  return models;
}

ModelArtifactsInfo PluginHandler::remove(const CallContext& call) {
  if (!can_remove()) {
    if (!plugin_->has(STOWAGE_CAP_REMOVE)) return IOHandler::remove(call);
    unsupported("remove");
  }
  auto sink = invoke("remove", call, stowage_sink::Kind::kText, policy_,
                     [&](const stowage_call* c, stowage_sink* s, stowage_status* st) {
                       plugin_->ops.remove(handle_, c, s, st);
                     });
  if (!sink->text) {
    throw Error(ErrorCode::kInternal,
                "plugin '" + plugin_->name + "' removed '" + url_ + "' but returned no model info");
  }
  return info_from_json(*sink->text, "plugin '" + plugin_->name + "' removing '" + url_ + "'");
}

ModelStat PluginHandler::stat(const CallContext& call) {
  if (!can_stat()) {
    if (!plugin_->has(STOWAGE_CAP_STAT)) return IOHandler::stat(call);
    unsupported("stat");
  }
  auto sink = invoke("stat", call, stowage_sink::Kind::kText, policy_,
                     [&](const stowage_call* c, stowage_sink* s, stowage_status* st) {
                       plugin_->ops.stat(handle_, c, s, st);
                     });
  const std::string source = "plugin '" + plugin_->name + "' stat of '" + url_ + "'";
  if (!sink->text) throw Error(ErrorCode::kInternal, source + " returned no stat JSON");
  // The plugin broke abi.h's stat contract: a bug, not bad stored data.
  auto broken = [&](const std::string& what) {
    return Error(ErrorCode::kInternal, source + " broke the ABI: " + what);
  };
  rapidjson::Document doc;
  try {
    doc = parse_json(*sink->text, source);
  } catch (const Error& e) {
    throw broken(e.what());
  }
  if (!doc.IsObject()) throw broken("the stat JSON is not an object");
  const auto model = doc.FindMember("modelJson");
  const auto version = doc.FindMember("version");
  const auto info = doc.FindMember("info");
  const auto unchanged = doc.FindMember("unchanged");
  if (version == doc.MemberEnd() || !version->value.IsString() ||
      version->value.GetStringLength() == 0) {
    throw broken("\"version\" is missing, empty or not a string");
  }
  if (unchanged != doc.MemberEnd() && !unchanged->value.IsBool()) {
    throw broken("\"unchanged\" is not a boolean");
  }
  if (unchanged != doc.MemberEnd() && unchanged->value.GetBool()) {
    // ABI 1.3: the caller keeps its copy, which only a caller holding one
    // (known_version) has.
    if (call.known_version.empty()) {
      throw broken("it answered \"unchanged\" to a stat that named no known version");
    }
    ModelStat out;
    out.unchanged = true;
    out.version = std::string(version->value.GetString(), version->value.GetStringLength());
    return out;
  }
  if (model == doc.MemberEnd() || !model->value.IsObject()) {
    throw broken("\"modelJson\" is missing or not an object");
  }
  if (info == doc.MemberEnd() || !info->value.IsObject()) {
    throw broken("\"info\" is missing or not an object");
  }
  ModelStat out;
  out.model = parse_model_json(write_json(model->value), url_);
  out.version = std::string(version->value.GetString(), version->value.GetStringLength());
  out.info = info_from_json(write_json(info->value), source);
  return out;
}

}  // namespace stowage::host
