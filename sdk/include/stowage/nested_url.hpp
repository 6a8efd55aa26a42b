// The kit's side of nested URLs (abi.h host->nested_*, ABI 1.1): a URL a
// plugin wraps, opened through the host's registry, so the host's
// allow-list, SHA-256 pins, aliases, defaults and retry policy apply to it
// and the plugin loads no code itself. For decorators:
//
//   class Mirror : public stowage::plugin::Handler {
//    public:
//     Mirror(std::string_view url, stowage::plugin::Options& options)
//         : Handler(url), inner_(std::string(url.substr(9))) {}  // mirror://<URL>
//     stowage::ModelArtifacts load(stowage::plugin::Call& call) override {
//       return inner_.load(call);
//     }
//    private:
//     stowage::plugin::NestedUrl inner_;
//   };
//
// Open it in the handler's constructor: the host runs it inside open, the
// only place nested_open works. The C++ calls throw the inner call's
// stowage::Error (code and message; never retryable, the host retried it
// already) and pass the outer call's cancellation, deadline, progress and
// weight-URL converter on. Loaded buffers are host references (no copy);
// the buffers save() hands over are copied once by the host. raw() gives
// the handle for forwarding the host's own objects without conversion.
//
// Thread-safety: as a handler: calls from several threads at once.
// Ownership: owns the nested handle; the destructor closes it.
#pragma once

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>

#include "stowage/plugin.hpp"

#pragma GCC visibility push(hidden)

namespace stowage::plugin {

// Whether the host offers nested URLs (a 1.0 host does not).
inline bool nested_urls_available() noexcept {
  const stowage_host_api& h = host();
  return h.nested_open != nullptr && h.nested_close != nullptr && h.nested_load != nullptr &&
         h.nested_save != nullptr && h.nested_list != nullptr && h.nested_remove != nullptr &&
         h.nested_stat != nullptr && h.nested_artifacts_free != nullptr &&
         h.status_new != nullptr && h.status_free != nullptr && h.status_get != nullptr;
}

namespace detail {

// A status of the plugin's own for one nested call, read back as an Error.
class OwnStatus {
 public:
  OwnStatus() : st_(host().status_new()) {
    if (st_ == nullptr) throw std::bad_alloc();
  }
  ~OwnStatus() { host().status_free(st_); }
  OwnStatus(const OwnStatus&) = delete;
  OwnStatus& operator=(const OwnStatus&) = delete;

  stowage_status* get() const noexcept { return st_; }
  // Throws the status's error when code is not STOWAGE_OK.
  void check(int32_t code) const {
    if (code == STOWAGE_OK) return;
    const char* msg = nullptr;
    size_t len = 0;
    int32_t set = host().status_get(st_, nullptr, &msg, &len);
    if (set == STOWAGE_OK) set = code;
    throw Error(static_cast<ErrorCode>(set), std::string(msg != nullptr ? msg : "", len));
  }

 private:
  stowage_status* st_;
};

// A text sink of the plugin's own.
class OwnText {
 public:
  OwnText() : sink_(host().sink_new_text()) {
    if (sink_ == nullptr) throw std::bad_alloc();
  }
  ~OwnText() { host().sink_free(sink_); }
  OwnText(const OwnText&) = delete;
  OwnText& operator=(const OwnText&) = delete;

  stowage_sink* get() const noexcept { return sink_; }
  std::optional<std::string> text() const {
    size_t len = 0;
    const char* t = host().sink_get_text(sink_, &len);
    if (t == nullptr) return std::nullopt;
    return std::string(t, len);
  }

 private:
  stowage_sink* sink_;
};

inline std::string write_value(const rapidjson::Value& v) {
  rapidjson::StringBuffer out;
  rapidjson::Writer<rapidjson::StringBuffer> writer(out);
  v.Accept(writer);
  return std::string(out.GetString(), out.GetSize());
}

inline rapidjson::Document parse_host_json(const std::string& text, const std::string& what) {
  rapidjson::Document doc;
  doc.Parse(text.data(), text.size());
  if (doc.HasParseError()) {
    throw Error(ErrorCode::kInternal, what + ": the host returned JSON that does not parse");
  }
  return doc;
}

}  // namespace detail

class NestedUrl {
 public:
  // Opens url (options: a JSON object merged over the host's defaults for
  // its scheme). Throws the registry's error (e.g. NOT_FOUND for a scheme
  // nobody serves or a plugin the allow-list leaves out, INVALID_ARGUMENT
  // for a cycle), or Error(kUnimplemented) from a host without nested URLs.
  explicit NestedUrl(std::string url, std::string_view options_json = "{}") : url_(std::move(url)) {
    if (!nested_urls_available()) {
      throw Error(ErrorCode::kUnimplemented,
                  "cannot open '" + url_ + "': the host offers no nested URLs (ABI 1.1)");
    }
    detail::OwnStatus st;
    st.check(host().nested_open(url_.data(), url_.size(), options_json.data(), options_json.size(),
                                &handle_, st.get()));
  }
  ~NestedUrl() {
    if (handle_ != nullptr) host().nested_close(handle_);
  }
  NestedUrl(NestedUrl&& other) noexcept
      : url_(std::move(other.url_)), handle_(std::exchange(other.handle_, nullptr)) {}
  NestedUrl& operator=(NestedUrl&& other) noexcept {
    if (this != &other) {
      if (handle_ != nullptr) host().nested_close(handle_);
      url_ = std::move(other.url_);
      handle_ = std::exchange(other.handle_, nullptr);
    }
    return *this;
  }
  NestedUrl(const NestedUrl&) = delete;
  NestedUrl& operator=(const NestedUrl&) = delete;

  const std::string& url() const noexcept { return url_; }
  stowage_nested* raw() const noexcept { return handle_; }

  // The model, validated by the host; its weight buffers are host
  // references in the form load() returns (one per manifest path, or the
  // flat weight data).
  // `flags`: abi.h STOWAGE_CALL_* bits added to the call for the inner
  // load (STOWAGE_CALL_SKIP_DIGESTS).
  ModelArtifacts load(Call& call, uint64_t flags = 0) const {
    const Loaded a = load_whole(with_flags(call, flags));
    ModelArtifacts out =
        parse_model_json(std::string_view(a->json, static_cast<size_t>(a->json_size)), url_);
    if (a->has_weight_data != 0) {
      WeightData data;
      data.reserve(static_cast<size_t>(a->buffer_count));
      for (uint64_t i = 0; i < a->buffer_count; ++i)
        data.push_back(detail::share_in(a->buffers[i]));
      out.weight_data = std::move(data);
    }
    return out;
  }

  // The model streamed (abi.h nested_load_stream, ABI 1.5), so a decorator
  // can write or forward it while it downloads: on_artifacts gets the
  // model's JSON fields (weight_data unset) once, then on_buffer each
  // weight buffer with its index, in order, on this thread, as soon as the
  // inner load completed it and the host checked its recorded digest. The
  // host holds at most queue_bytes (0: its default, 64 MiB) that on_buffer
  // has not dropped yet, so a consumer that drops each buffer when done
  // holds a few. Nothing may be published before this returns: the sizes
  // are checked when the load ends, and a failure then throws. An
  // exception from a callback stops the inner load and is rethrown. A
  // host older than 1.5 loads whole, then calls the callbacks the same way.
  void load_stream(Call& call, const std::function<void(const ModelArtifacts&)>& on_artifacts,
                   const std::function<void(uint64_t index, Buffer buffer)>& on_buffer,
                   uint64_t queue_bytes = 0, uint64_t flags = 0) const {
    load_stream_json(
        call, [&](std::string_view json) { on_artifacts(parse_model_json(json, url_)); }, on_buffer,
        queue_bytes, flags);
  }

  // The same with the artifacts JSON as the host set it (the form a load
  // sink accepts), for a plugin that keeps the text itself.
  void load_stream_json(Call& call, const std::function<void(std::string_view json)>& on_json,
                        const std::function<void(uint64_t index, Buffer buffer)>& on_buffer,
                        uint64_t queue_bytes = 0, uint64_t flags = 0) const {
    const stowage_host_api& h = host();
    const stowage_call inner = with_flags(call, flags);
    if (h.struct_size < offsetof(stowage_host_api, nested_load_stream) + sizeof(void*) ||
        h.nested_load_stream == nullptr) {
      const Loaded a = load_whole(inner);
      on_json(std::string_view(a->json, static_cast<size_t>(a->json_size)));
      for (uint64_t i = 0; i < a->buffer_count; ++i) on_buffer(i, detail::share_in(a->buffers[i]));
      return;
    }
    struct Context {
      const std::function<void(std::string_view)>& on_json;
      const std::function<void(uint64_t, Buffer)>& on_buffer;
      std::exception_ptr thrown;
    } ctx{on_json, on_buffer, nullptr};
    stowage_load_consumer consumer{};
    consumer.struct_size = sizeof consumer;
    consumer.context = &ctx;
    consumer.on_artifacts = [](void* c, const char* json, size_t len) -> int32_t {
      auto& x = *static_cast<Context*>(c);
      try {
        x.on_json(std::string_view(json, len));
        return 0;
      } catch (...) {
        x.thrown = std::current_exception();
        return 1;
      }
    };
    consumer.on_buffer = [](void* c, uint64_t index, stowage_buffer* buf) -> int32_t {
      auto& x = *static_cast<Context*>(c);
      stowage_buffer taken = *buf;  // ours now (abi.h)
      buf->release = nullptr;
      try {
        Buffer owned;
        try {
          owned = detail::adopt_in(taken);  // released with its last copy
        } catch (...) {
          if (taken.release != nullptr) taken.release(&taken);
          throw;
        }
        x.on_buffer(index, std::move(owned));
        return 0;
      } catch (...) {
        x.thrown = std::current_exception();
        return 1;
      }
    };
    consumer.queue_bytes = queue_bytes;
    detail::OwnStatus st;
    const int32_t code = h.nested_load_stream(handle_, &inner, &consumer, st.get());
    if (ctx.thrown) std::rethrow_exception(ctx.thrown);
    st.check(code);
  }

  // The inner save's response JSON, when it has one.
  std::optional<std::string> save(const ModelArtifacts& artifacts, Call& call) const {
    ModelArtifacts flat = artifacts;
    if (flat.weights_manifest) {
      if (!flat.weight_specs) flat.weight_specs = flatten_specs(*flat.weights_manifest);
      flat.weights_manifest.reset();
    }
    const std::string json = artifacts_to_json(flat);
    std::vector<stowage_buffer> lent;
    struct Release {
      std::vector<stowage_buffer>& all;
      ~Release() {
        for (auto& b : all) {
          if (b.release != nullptr) b.release(&b);
        }
      }
    } release{lent};
    if (artifacts.weight_data) {
      lent.reserve(artifacts.weight_data->size());
      for (const Buffer& b : *artifacts.weight_data) lent.push_back(detail::lend_out(b));
    }
    stowage_artifacts a{};
    a.struct_size = sizeof a;
    a.has_weight_data = artifacts.weight_data ? 1 : 0;
    a.json = json.c_str();
    a.json_size = json.size();
    a.buffers = lent.empty() ? nullptr : lent.data();
    a.buffer_count = lent.size();
    a.weight_bytes = artifacts.weight_data ? total_size(*artifacts.weight_data) : 0;
    detail::OwnStatus st;
    detail::OwnText result;
    st.check(host().nested_save(handle_, &a, call.raw(), result.get(), st.get()));
    return result.text();
  }

  std::vector<ListedModel> list(Call& call) const {
    detail::OwnStatus st;
    detail::OwnText out;
    st.check(host().nested_list(handle_, call.raw(), out.get(), st.get()));
    const std::string what = "list of " + url_;
    rapidjson::Document doc = detail::parse_host_json(out.text().value_or("[]"), what);
    std::vector<ListedModel> models;
    if (!doc.IsArray()) throw Error(ErrorCode::kInternal, what + ": not a JSON array");
    for (const auto& m : doc.GetArray()) {
      if (!m.IsObject() || !m.HasMember("url") || !m["url"].IsString() || !m.HasMember("info")) {
        throw Error(ErrorCode::kInternal, what + ": an entry lacks \"url\" or \"info\"");
      }
      models.push_back(
          {m["url"].GetString(), info_from_json(detail::write_value(m["info"]), what)});
    }
    return models;
  }

  ModelArtifactsInfo remove(Call& call) const {
    detail::OwnStatus st;
    detail::OwnText out;
    st.check(host().nested_remove(handle_, call.raw(), out.get(), st.get()));
    return info_from_json(out.text().value_or(""), "remove of " + url_);
  }

  // `flags`: abi.h STOWAGE_CALL_* bits added to the call for the inner
  // stat (STOWAGE_CALL_STAT_SHALLOW). `known_version`: the token of a copy
  // this plugin keeps (abi.h, ABI 1.3; never the outer call's, which names
  // a copy of the outer URL); the answer may then be unchanged, with model
  // and info empty. A 1.2 host or an inner plugin that ignores it answers
  // in full: compare the versions.
  ModelStat stat(Call& call, uint64_t flags = 0,
                 std::optional<std::string_view> known_version = std::nullopt) const {
    detail::OwnStatus st;
    detail::OwnText out;
    stowage_call inner = with_flags(call, flags);
    const std::string known(known_version.value_or(""));  // abi.h: NUL-terminated
    if (!known.empty()) {
      inner.known_version = known.c_str();
      inner.known_version_size = known.size();
    }
    st.check(host().nested_stat(handle_, &inner, out.get(), st.get()));
    const std::string what = "stat of " + url_;
    rapidjson::Document doc = detail::parse_host_json(out.text().value_or(""), what);
    if (doc.IsObject() && doc.HasMember("unchanged") && doc["unchanged"].IsBool() &&
        doc["unchanged"].GetBool() && doc.HasMember("version") && doc["version"].IsString()) {
      ModelStat s;
      s.unchanged = true;
      s.version = doc["version"].GetString();
      return s;
    }
    if (!doc.IsObject() || !doc.HasMember("modelJson") || !doc.HasMember("version") ||
        !doc["version"].IsString() || !doc.HasMember("info")) {
      throw Error(ErrorCode::kInternal, what + ": the stat JSON lacks a field");
    }
    ModelStat s;
    s.model = parse_model_json(detail::write_value(doc["modelJson"]), url_);
    s.version = doc["version"].GetString();
    s.info = info_from_json(detail::write_value(doc["info"]), what);
    return s;
  }

 private:
  std::string url_;
  // nested_load's artifacts, freed with the holder.
  using Loaded = std::unique_ptr<stowage_artifacts, void (*)(stowage_artifacts*)>;
  Loaded load_whole(const stowage_call& inner) const {
    detail::OwnStatus st;
    stowage_artifacts* a = nullptr;
    st.check(host().nested_load(handle_, &inner, &a, st.get()));
    return Loaded(a, host().nested_artifacts_free);
  }

  // The outer call with `flags` added: the same deadline, callbacks and
  // host context, for one inner call.
  static stowage_call with_flags(const Call& call, uint64_t flags) {
    stowage_call out{};
    const stowage_call* c = call.raw();
    if (c != nullptr) std::memcpy(&out, c, std::min<size_t>(c->struct_size, sizeof out));
    out.struct_size = sizeof out;
    out.flags |= flags;
    // The outer call's known version names the outer URL's copy.
    out.known_version = nullptr;
    out.known_version_size = 0;
    return out;
  }

  stowage_nested* handle_ = nullptr;
};

}  // namespace stowage::plugin

#pragma GCC visibility pop
