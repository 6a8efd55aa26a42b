// The glue between the C ABI (abi.h) and the C++ kit (plugin.hpp): the ops
// a plugin's stowage_ops table points to, the descriptor STOWAGE_PLUGIN
// builds, the conversions of buffers, artifacts and statuses, and the
// streaming members that need them. A plugin author never calls any of it:
// include stowage/plugin.hpp, which includes this header, and use its
// macros. Nothing here is a stable interface.
#pragma once

#include "stowage/plugin.hpp"

// Private to each plugin library, as the rest of the kit.
#pragma GCC visibility push(hidden)

namespace stowage::plugin {

// ---- Glue between the C ABI and the C++ kit -------------------------------

namespace detail {

inline void set_status(stowage_status* st, ErrorCode code, bool retryable,
                       std::string_view message) noexcept {
  if (st == nullptr || host().status_set == nullptr) return;
  if (code == ErrorCode::kOk) code = ErrorCode::kInternal;  // an error must not read as success
  host().status_set(st, static_cast<int32_t>(code), retryable ? 1 : 0, message.data(),
                    message.size());
}

// Runs f, turning every exception into a status.
template <typename F>
void guarded(stowage_status* st, F&& f) noexcept {
  try {
    f();
  } catch (const StatusAlreadySet&) {
  } catch (const Error& e) {
    set_status(st, e.code(), e.retryable(), e.what());
    if (const FailedRequest* r = e.request();
        r != nullptr && st != nullptr && host().status_set_request != nullptr) {
      host().status_set_request(st, r->method.data(), r->method.size(), r->url.data(),
                                r->url.size(), r->reason.data(), r->reason.size());
    }
  } catch (const std::bad_alloc&) {
    set_status(st, ErrorCode::kResourceExhausted, false, "out of memory");
  } catch (const std::system_error& e) {
    ErrorCode code = (e.code().category() == std::generic_category() ||
                      e.code().category() == std::system_category())
                         ? code_for_errno(e.code().value())
                         : ErrorCode::kInternal;
    set_status(st, code, false, e.what());
  } catch (const std::exception& e) {
    set_status(st, ErrorCode::kInternal, false, e.what());
  } catch (...) {
    set_status(st, ErrorCode::kInternal, false, "unknown exception in plugin");
  }
}

// A Buffer over a host buffer, holding its own reference (buffer_share):
// the bytes stay valid as long as any copy of the Buffer lives.
inline Buffer share_in(const stowage_buffer& src) {
  auto* ref = new stowage_buffer{};
  std::shared_ptr<stowage_buffer> holder(ref, [](stowage_buffer* b) {
    if (b->release != nullptr) b->release(b);
    delete b;
  });
  host().buffer_share(&src, ref);
  return Buffer::wrap(ref->data, ref->size, std::move(holder),
                      src.label != nullptr ? std::string(src.label) : std::string());
}

inline void release_out(stowage_buffer* self) {
  delete static_cast<Buffer*>(self->private_data);
  self->private_data = nullptr;
  self->release = nullptr;
}

// The scheme table of the descriptor (static storage), for what the kit
// decides per scheme.
struct SchemeTable {
  const char* const* schemes = nullptr;
  const uint64_t* caps = nullptr;  // NULL: every scheme has `all`
  uint32_t count = 0;
  uint64_t all = 0;
};
inline SchemeTable& scheme_table() noexcept {
  static SchemeTable table;
  return table;
}

// The bits of url's scheme (its text before "://", ASCII case-insensitive).
inline uint64_t scheme_caps_of(std::string_view url) noexcept {
  const SchemeTable& t = scheme_table();
  const size_t sep = url.find("://");
  const std::string_view scheme = url.substr(0, sep == std::string_view::npos ? 0 : sep);
  for (uint32_t i = 0; i < t.count; ++i) {
    const std::string_view name = t.schemes[i];
    if (name.size() == scheme.size() &&
        std::equal(name.begin(), name.end(), scheme.begin(), [](char a, char b) {
          return a == ((b >= 'A' && b <= 'Z') ? static_cast<char>(b - 'A' + 'a') : b);
        })) {
      return t.caps != nullptr ? t.caps[i] : t.all;
    }
  }
  return 0;
}

// abi.h: the pull form is the one with buffers NULL and next_buffer set.
inline bool is_pull_form(const stowage_artifacts* in) noexcept {
  return in->struct_size >= offsetof(stowage_artifacts, source_context) + sizeof(void*) &&
         in->buffers == nullptr && in->next_buffer != nullptr;
}

// The JSON fields of the artifacts handed to save (weight_data unset).
inline ModelArtifacts meta_in(const stowage_artifacts* in, const std::string& url) {
  if (in == nullptr || in->struct_size < offsetof(stowage_artifacts, weight_bytes) ||
      (in->json == nullptr && in->json_size != 0) ||
      (in->buffers == nullptr && in->buffer_count != 0)) {
    throw Error(ErrorCode::kInvalidArgument, "save of " + url + ": malformed stowage_artifacts");
  }
  return parse_model_json(std::string_view(in->json, static_cast<size_t>(in->json_size)), url);
}

// The array form's buffers, each with its own reference.
inline WeightData buffers_in(const stowage_artifacts* in) {
  WeightData data;
  data.reserve(static_cast<size_t>(in->buffer_count));
  for (uint64_t i = 0; i < in->buffer_count; ++i) data.push_back(share_in(in->buffers[i]));
  return data;
}

// A Buffer owning a stowage_buffer the host handed over (next_buffer).
inline Buffer adopt_in(const stowage_buffer& taken) {
  auto* ref = new stowage_buffer(taken);
  std::shared_ptr<stowage_buffer> holder(ref, [](stowage_buffer* b) {
    if (b->release != nullptr) b->release(b);
    delete b;
  });
  std::string label = ref->label != nullptr ? std::string(ref->label) : std::string();
  return Buffer::wrap(ref->data, ref->size, std::move(holder), std::move(label));
}

// A stowage_buffer owning a heap copy of the Buffer (a reference, not the
// bytes), labelled with its label.
inline stowage_buffer lend_out(const Buffer& buffer) {
  auto copy = std::make_unique<Buffer>(buffer);
  stowage_buffer out{};
  out.data = copy->data();
  out.size = copy->size();
  out.release = &release_out;
  out.label = copy->label().empty() ? nullptr : copy->label().c_str();
  out.private_data = copy.release();
  return out;
}

inline Handler* handler_of(stowage_handler* h) noexcept { return reinterpret_cast<Handler*>(h); }

template <typename H>
void op_open(const char* url, size_t url_len, const char* options, size_t options_len,
             stowage_handler** out, stowage_status* st) noexcept {
  if (out != nullptr) *out = nullptr;
  guarded(st, [&] {
    std::string u(url != nullptr ? url : "", url != nullptr ? url_len : 0);
    Options opts(options != nullptr ? std::string_view(options, options_len) : "{}", u);
    std::unique_ptr<Handler> handler = std::make_unique<H>(std::string_view(u), opts);
    opts.finish();
    if (out == nullptr) throw Error(ErrorCode::kInvalidArgument, "open: out is NULL");
    *out = reinterpret_cast<stowage_handler*>(handler.release());
  });
}

inline void op_close(stowage_handler* handler) noexcept { delete handler_of(handler); }

inline void op_save(stowage_handler* handler, const stowage_artifacts* artifacts,
                    const stowage_call* raw, stowage_sink* result, stowage_status* st) noexcept {
  guarded(st, [&] {
    Handler* h = handler_of(handler);
    Call call(raw, h->url(), "save", st);
    call.check();  // a call cancelled or late before it starts does nothing
    ModelArtifacts meta = meta_in(artifacts, h->url());
    std::optional<WeightSource> weights;
    if (is_pull_form(artifacts)) {
      weights.emplace(artifacts, st);
    } else {
      weights.emplace(buffers_in(artifacts), artifacts->has_weight_data != 0);
    }
    std::optional<std::string> response = h->save_from(meta, *weights, call);
    if (response && result != nullptr) {
      host().sink_set_text(result, response->data(), response->size());
    }
  });
}

inline void op_load(stowage_handler* handler, const stowage_call* raw, stowage_sink* out,
                    stowage_status* st) noexcept {
  guarded(st, [&] {
    Handler* h = handler_of(handler);
    Call call(raw, h->url(), "load", st);
    call.check();  // a call cancelled or late before it starts does nothing
    const bool streaming = (scheme_caps_of(h->url()) & STOWAGE_CAP_STREAMING_LOAD) != 0 &&
                           host().sink_put_buffer != nullptr;
    LoadSink sink(out, streaming);
    h->load_into(sink, call);
    sink.flush();
  });
}

inline void op_list(stowage_handler* handler, const stowage_call* raw, stowage_sink* out,
                    stowage_status* st) noexcept {
  guarded(st, [&] {
    Handler* h = handler_of(handler);
    Call call(raw, h->url(), "list", st);
    call.check();  // a call cancelled or late before it starts does nothing
    for (const ListedModel& m : h->list(call)) {
      std::string info = info_to_json(m.info);
      host().sink_add_model(out, m.url.data(), m.url.size(), info.data(), info.size());
    }
  });
}

inline void op_remove(stowage_handler* handler, const stowage_call* raw, stowage_sink* out,
                      stowage_status* st) noexcept {
  guarded(st, [&] {
    Handler* h = handler_of(handler);
    Call call(raw, h->url(), "remove", st);
    call.check();  // a call cancelled or late before it starts does nothing
    std::string info = info_to_json(h->remove(call));
    host().sink_set_text(out, info.data(), info.size());
  });
}

inline void op_stat(stowage_handler* handler, const stowage_call* raw, stowage_sink* out,
                    stowage_status* st) noexcept {
  guarded(st, [&] {
    Handler* h = handler_of(handler);
    Call call(raw, h->url(), "stat", st);
    call.check();  // a call cancelled or late before it starts does nothing
    ModelStat stat = h->stat(call);
    if (stat.unchanged) {
      // abi.h (ABI 1.3): only a caller that holds a copy may be told to keep it.
      if (!call.known_version()) {
        throw Error(ErrorCode::kInternal, "stat of " + h->url() +
                                              " answered \"unchanged\" to a caller that named "
                                              "no known version");
      }
      if (stat.version.empty()) stat.version = std::string(*call.known_version());
      const std::string json = "{\"version\":" + json::quote(stat.version) + ",\"unchanged\":true}";
      host().sink_set_text(out, json.data(), json.size());
      return;
    }
    stat.model.weight_data.reset();  // abi.h: the JSON never carries weight bytes
    std::string json = "{\"modelJson\":" + artifacts_to_json(stat.model) +
                       ",\"version\":" + json::quote(stat.version) +
                       ",\"info\":" + info_to_json(stat.info) + "}";
    host().sink_set_text(out, json.data(), json.size());
  });
}

// Builds the descriptor once (the host calls the entry under its loader
// lock). Returns NULL for a host of another ABI major.
template <typename H>
const stowage_plugin_desc* describe(const stowage_host_api* api, const char* name,
                                    const char* version, uint64_t caps, const char* const* schemes,
                                    uint32_t scheme_count,
                                    const uint64_t* scheme_caps = nullptr) noexcept {
  static_assert(std::is_base_of_v<Handler, H>, "STOWAGE_PLUGIN needs a stowage::plugin::Handler");
  static_assert(std::is_constructible_v<H, std::string_view, Options&>,
                "a handler is constructed from (std::string_view url, Options& options)");
  if (api == nullptr || api->abi_major != STOWAGE_ABI_MAJOR) return nullptr;
  use_host(api);

  static stowage_ops ops{};
  ops.struct_size = sizeof ops;
  ops.open = &op_open<H>;
  ops.close = &op_close;
  ops.save = (caps & STOWAGE_CAP_SAVE) ? &op_save : nullptr;
  ops.load = (caps & STOWAGE_CAP_LOAD) ? &op_load : nullptr;
  ops.list = (caps & STOWAGE_CAP_LIST) ? &op_list : nullptr;
  ops.remove = (caps & STOWAGE_CAP_REMOVE) ? &op_remove : nullptr;
  ops.stat = (caps & STOWAGE_CAP_STAT) ? &op_stat : nullptr;

  static stowage_plugin_desc desc{};
  desc.struct_size = sizeof desc;
  desc.abi_major = STOWAGE_ABI_MAJOR;
  desc.abi_minor = STOWAGE_ABI_MINOR;
  desc.scheme_count = scheme_count;
  desc.name = name;
  desc.version = version;
  desc.schemes = schemes;
  desc.capabilities = caps;
  desc.ops = &ops;
  desc.scheme_capabilities = scheme_caps;
  scheme_table() = SchemeTable{schemes, scheme_caps, scheme_count, caps};
  return &desc;
}

// describe() for STOWAGE_PLUGIN_SCHEMES: splits the pairs into the
// descriptor's two static arrays; the plugin-wide bits are their union plus
// `extra` (STOWAGE_CAP_SINGLE_THREADED).
template <typename H, size_t N>
const stowage_plugin_desc* describe_schemes(const stowage_host_api* api, const char* name,
                                            const char* version, uint64_t extra,
                                            const SchemeCaps (&pairs)[N]) noexcept {
  static const char* names[N];
  static uint64_t bits[N];
  uint64_t all = extra;
  for (size_t i = 0; i < N; ++i) {
    names[i] = pairs[i].scheme;
    bits[i] = pairs[i].capabilities;
    all |= pairs[i].capabilities;
  }
  return describe<H>(api, name, version, all, names, static_cast<uint32_t>(N), bits);
}

}  // namespace detail

// ---- Streaming, out of line (they need the glue above) ------------------

inline std::optional<Buffer> WeightSource::next() {
  if (raw_ == nullptr) {
    if (next_ >= array_.size()) return std::nullopt;
    return std::move(array_[next_++]);
  }
  if (ended_) return std::nullopt;
  stowage_buffer taken{};
  const int32_t r = raw_->next_buffer(raw_->source_context, &taken, status_);
  if (r == 0) {
    ended_ = true;
    return std::nullopt;
  }
  if (r < 0) {
    // The host set the save's status; asking again would break abi.h, so
    // every later next() fails the same way.
    raw_ = nullptr;
    array_.clear();
    next_ = 0;
    failed_ = true;
  }
  if (failed_) {
    if (status_ != nullptr) throw detail::StatusAlreadySet();
    throw Error(ErrorCode::kInternal, "the host could not deliver the weight data");
  }
  return detail::adopt_in(taken);
}

inline void LoadSink::set_model(const ModelArtifacts& model) {
  std::lock_guard<std::mutex> lock(mu_);
  if (model_set_) throw Error(ErrorCode::kInternal, "LoadSink::set_model called twice");
  ModelArtifacts meta = model;
  meta.weight_data.reset();
  const std::string json = artifacts_to_json(meta);
  host().sink_set_text(sink_, json.data(), json.size());
  model_set_ = true;
}

inline void LoadSink::put(uint64_t index, const Buffer& buffer) {
  if (!streaming_) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!held_.emplace(index, buffer).second) {
      throw Error(ErrorCode::kInternal, "weight buffer " + std::to_string(index) + " put twice");
    }
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!model_set_) throw Error(ErrorCode::kInternal, "LoadSink::put before set_model");
  }
  stowage_buffer out = detail::lend_out(buffer);
  if (host().sink_put_buffer(sink_, index, &out) != 0) {
    throw Error(ErrorCode::kCancelled, "the host stopped taking the weight buffers");
  }
}

inline void LoadSink::mark_verified(uint64_t index, std::string_view sha256_hex) {
  if (host().sink_mark_verified == nullptr || sha256_hex.empty()) return;
  host().sink_mark_verified(sink_, index, sha256_hex.data(), sha256_hex.size());
}

inline void LoadSink::flush() {
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t expected = 0;
  for (auto& [index, buffer] : held_) {
    if (index != expected) {
      throw Error(ErrorCode::kInternal,
                  "the load never put weight buffer " + std::to_string(expected));
    }
    ++expected;
    stowage_buffer out = detail::lend_out(buffer);
    host().sink_add_buffer(sink_, &out);
  }
  held_.clear();
}

}  // namespace stowage::plugin

#pragma GCC visibility pop
