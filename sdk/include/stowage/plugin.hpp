// The C++ kit for plugin authors: write a class derived from
// stowage::plugin::Handler and export it with one macro:
//
//   class MyHandler : public stowage::plugin::Handler {
//    public:
//     MyHandler(std::string_view url, stowage::plugin::Options& options)
//         : Handler(url), verbose_(options.get_bool("verbose", false)) {}
//     stowage::ModelArtifacts load(stowage::plugin::Call& call) override;
//    private:
//     bool verbose_;
//   };
//   STOWAGE_PLUGIN(MyHandler, "mine", "1.0.0", STOWAGE_CAP_LOAD, "mine");
//
// The macro generates the static stowage_ops table, the descriptor and the
// one exported entry point; everything else stays hidden. Every exception a
// handler throws becomes a status: stowage::Error keeps its code and
// retryable flag, std::bad_alloc is RESOURCE_EXHAUSTED, std::system_error
// maps its errno, anything else is INTERNAL with its what().
//
// The kit converts between the ABI and C++ without copying weight bytes:
// save() sees Buffers that each hold a reference taken with
// host->buffer_share (a handler may keep them), and the Buffers load()
// returns go to the host as stowage_buffers that own a copy of the Buffer.
//
// Streaming (ABI 1.1): every save goes through Handler::save_from, which
// gets a WeightSource yielding the weight buffers in either form of
// stowage_artifacts (its default collects them and calls save()); a scheme
// declaring STOWAGE_CAP_STREAMING_SAVE overrides it to write each buffer as
// it comes. Every load goes through Handler::load_into, which hands buffers
// to a LoadSink (its default calls load()); with STOWAGE_CAP_STREAMING_LOAD
// each LoadSink::put reaches the host at once.
//
// Options are strict: the constructor reads what it understands, and the
// kit then refuses any key that was not read (unknown options are an error,
// never silently ignored).
//
// Thread-safety: a handler's operations may run on several threads at once
// unless the plugin declares STOWAGE_CAP_SINGLE_THREADED. Ownership: the
// host owns handlers through open/close; Buffers own their bytes.
#pragma once

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include "stowage/abi.h"
#include "stowage/artifacts.hpp"
#include "stowage/buffer.hpp"
#include "stowage/error.hpp"
#include "stowage/model_json.hpp"

static_assert(std::string_view(STOWAGE_ENTRY_SYMBOL) == "stowage_plugin_entry_v1",
              "STOWAGE_PLUGIN defines the entry under the name abi.h exports");

// Everything the kit defines is private to each plugin library (its host
// services pointer above all), whatever visibility the plugin is compiled
// with; only the entry point STOWAGE_PLUGIN defines is exported.
#pragma GCC visibility push(hidden)

namespace stowage::plugin::detail {

inline stowage_host_api& host_storage() noexcept {
  static stowage_host_api api{};
  return api;
}
inline bool& host_ready() noexcept {
  static bool ready = false;
  return ready;
}

}  // namespace stowage::plugin::detail

namespace stowage::plugin {

// The host's services; valid once the entry point ran. REQUIRES: called from
// a handler or from code the handler calls.
inline const stowage_host_api& host() noexcept { return detail::host_storage(); }

// Keeps a copy of the host's services for host() (clamped to what the host
// has; missing services read as NULL). STOWAGE_PLUGIN's entry point calls
// it; a plugin that writes its own entry point and uses kit helpers calls it
// first thing there, under the host's loader lock.
inline void use_host(const stowage_host_api* api) noexcept {
  stowage_host_api& mine = detail::host_storage();
  mine = stowage_host_api{};
  std::memcpy(&mine, api, std::min<size_t>(api->struct_size, sizeof mine));
  mine.struct_size = sizeof mine;
  detail::host_ready() = true;
}

// A diagnostic line through the host; level 0 debug, 1 info, 2 warning.
// Never pass secrets. Does nothing before the entry point ran.
inline void log(int level, std::string_view message) noexcept {
  if (detail::host_ready() && host().log != nullptr) {
    host().log(level, message.data(), message.size());
  }
}

// errno -> stowage code: ENOENT/ENOTDIR not found; EACCES/EPERM/EROFS
// permission denied; ENOSPC/EDQUOT/EFBIG/ENOMEM/EMFILE/ENFILE resource
// exhausted; EIO data loss; EEXIST already exists; ENAMETOOLONG invalid
// argument (a name too long for the store); anything else internal.
inline ErrorCode code_for_errno(int err) noexcept {
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return ErrorCode::kNotFound;
    case EACCES:
    case EPERM:
    case EROFS:
      return ErrorCode::kPermissionDenied;
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
    case ENOMEM:
    case EMFILE:
    case ENFILE:
      return ErrorCode::kResourceExhausted;
    case EIO:
      return ErrorCode::kDataLoss;
    case EEXIST:
      return ErrorCode::kAlreadyExists;
    case ENAMETOOLONG:
      return ErrorCode::kInvalidArgument;
    default:
      return ErrorCode::kInternal;
  }
}

// Error for a failed system call: "<what>: <strerror>".
inline Error errno_error(int err, const std::string& what) {
  return Error(code_for_errno(err), what + ": " + std::strerror(err));
}

// ---- Options ------------------------------------------------------------

// A strict reader over the options JSON object a handler is opened with.
// Each get_* marks its key as read and throws Error(kInvalidArgument),
// naming the key and the URL, when the value has the wrong type; finish()
// throws for the first key that no get_* read. The kit calls finish() right
// after the handler's constructor, so a constructor reads every option it
// supports. Thread-safety: not thread-safe; used while opening a handler.
class Options {
 public:
  // Throws Error(kInvalidArgument) when json is not a JSON object. An empty
  // text is read as {}.
  Options(std::string_view json, std::string url) : state_(std::make_shared<State>()) {
    state_->url = std::move(url);
    state_->doc = std::make_shared<rapidjson::Document>();
    std::string text(json.empty() ? std::string_view("{}") : json);
    state_->doc->Parse(text.c_str(), text.size());
    if (state_->doc->HasParseError()) {
      throw Error(ErrorCode::kInvalidArgument,
                  "Options for " + state_->url + " are not valid JSON: " +
                      rapidjson::GetParseError_En(state_->doc->GetParseError()) + " at offset " +
                      std::to_string(state_->doc->GetErrorOffset()));
    }
    if (!state_->doc->IsObject()) {
      throw Error(ErrorCode::kInvalidArgument,
                  "Options for " + state_->url + " must be a JSON object");
    }
    state_->object = state_->doc.get();
  }

  const std::string& url() const noexcept { return state_->url; }
  bool has(std::string_view key) const { return find(key) != nullptr; }
  // Every key present, in document order.
  std::vector<std::string> keys() const {
    std::vector<std::string> out;
    for (const auto& m : state_->object->GetObject()) out.emplace_back(m.name.GetString());
    return out;
  }

  bool get_bool(std::string_view key, bool fallback) {
    const rapidjson::Value* v = read(key);
    if (v == nullptr) return fallback;
    if (!v->IsBool()) wrong_type(key, "a boolean", *v);
    return v->GetBool();
  }

  // A non-negative integer (a JSON number without a fractional part).
  uint64_t get_uint64(std::string_view key, uint64_t fallback) {
    const rapidjson::Value* v = read(key);
    if (v == nullptr) return fallback;
    if (v->IsUint64()) return v->GetUint64();
    if (v->IsNumber()) {
      double d = v->GetDouble();
      if (std::isfinite(d) && d >= 0 && d < 18446744073709551616.0 && std::floor(d) == d) {
        return static_cast<uint64_t>(d);
      }
    }
    wrong_type(key, "a non-negative integer", *v);
  }

  double get_double(std::string_view key, double fallback) {
    const rapidjson::Value* v = read(key);
    if (v == nullptr) return fallback;
    if (!v->IsNumber()) wrong_type(key, "a number", *v);
    return v->GetDouble();
  }

  std::string get_string(std::string_view key, std::string fallback = {}) {
    const rapidjson::Value* v = read(key);
    if (v == nullptr) return fallback;
    if (!v->IsString()) wrong_type(key, "a string", *v);
    return std::string(v->GetString(), v->GetStringLength());
  }

  // A string that must be one of `allowed` (the value is named in the
  // error: choices are never secrets).
  std::string get_choice(std::string_view key, std::string fallback,
                         std::initializer_list<std::string_view> allowed) {
    std::string value = get_string(key, std::move(fallback));
    std::string list;
    for (std::string_view a : allowed) {
      if (a == value) return value;
      list += (list.empty() ? "\"" : ", \"") + std::string(a) + "\"";
    }
    throw Error(ErrorCode::kInvalidArgument, "Option \"" + state_->prefix + std::string(key) +
                                                 "\" for " + state_->url + " must be one of " +
                                                 list + ", not \"" + value + "\"");
  }

  // A nested object as Options of its own ({} when absent); its keys are
  // checked by this object's finish() too.
  Options get_object(std::string_view key) {
    const rapidjson::Value* v = read(key);
    Options child(state_, key);
    if (v != nullptr) {
      if (!v->IsObject()) wrong_type(key, "an object", *v);
      child.state_->object = v;
    }
    state_->children.push_back(child.state_);
    return child;
  }

  // An object handed on whole as its JSON text ("{}" when absent), e.g. a
  // decorator's options for the URL it wraps; its keys are the wrapped
  // handler's to check, not this object's finish().
  std::string get_object_json(std::string_view key) {
    const rapidjson::Value* v = read(key);
    if (v == nullptr) return "{}";
    if (!v->IsObject()) wrong_type(key, "an object", *v);
    rapidjson::StringBuffer out;
    rapidjson::Writer<rapidjson::StringBuffer> writer(out);
    v->Accept(writer);
    return std::string(out.GetString(), out.GetSize());
  }

  // An object of strings (e.g. HTTP headers) where every key is accepted.
  std::map<std::string, std::string> get_string_map(std::string_view key) {
    std::map<std::string, std::string> out;
    const rapidjson::Value* v = read(key);
    if (v == nullptr) return out;
    if (!v->IsObject()) wrong_type(key, "an object of strings", *v);
    for (const auto& m : v->GetObject()) {
      std::string name(m.name.GetString(), m.name.GetStringLength());
      if (!m.value.IsString()) {
        wrong_type(std::string(key) + "." + name, "a string", m.value, /*qualified=*/true);
      }
      out[name] = std::string(m.value.GetString(), m.value.GetStringLength());
    }
    return out;
  }

  // Throws Error(kInvalidArgument) for the first key no get_* read, listing
  // the keys that were read (the options this handler understands).
  void finish() const {
    for (const auto& m : state_->object->GetObject()) {
      std::string name(m.name.GetString(), m.name.GetStringLength());
      if (state_->read.count(name) != 0) continue;
      std::string known;
      for (const auto& k : state_->read) {
        known += known.empty() ? "" : ", ";
        known += "\"" + state_->prefix + k + "\"";
      }
      throw Error(ErrorCode::kInvalidArgument,
                  "Unknown option \"" + state_->prefix + name + "\" for " + state_->url +
                      (known.empty() ? std::string(": this scheme takes no options here")
                                     : "; the options here are " + known));
    }
    for (const auto& child : state_->children) Options(child).finish();
  }

 private:
  struct State {
    std::shared_ptr<rapidjson::Document> doc;  // keeps `object` alive
    const rapidjson::Value* object = nullptr;
    std::string url;
    std::string prefix;  // "headers." for a nested object
    std::set<std::string, std::less<>> read;
    std::vector<std::shared_ptr<State>> children;
  };

  explicit Options(std::shared_ptr<State> state) : state_(std::move(state)) {}
  Options(const std::shared_ptr<State>& parent, std::string_view key)
      : state_(std::make_shared<State>()) {
    static const rapidjson::Value kEmpty(rapidjson::kObjectType);
    state_->doc = parent->doc;
    state_->object = &kEmpty;
    state_->url = parent->url;
    state_->prefix = parent->prefix + std::string(key) + ".";
  }

  const rapidjson::Value* find(std::string_view key) const {
    for (const auto& m : state_->object->GetObject()) {
      if (std::string_view(m.name.GetString(), m.name.GetStringLength()) == key) return &m.value;
    }
    return nullptr;
  }
  const rapidjson::Value* read(std::string_view key) {
    state_->read.emplace(key);
    return find(key);
  }

  static const char* type_name(const rapidjson::Value& v) {
    if (v.IsNull()) return "null";
    if (v.IsBool()) return "a boolean";
    if (v.IsNumber()) return "a number";
    if (v.IsString()) return "a string";
    if (v.IsArray()) return "an array";
    return "an object";
  }
  // Names the type only: option values may be secrets.
  [[noreturn]] void wrong_type(std::string_view key, const char* expected,
                               const rapidjson::Value& v, bool qualified = false) const {
    std::string name = qualified ? std::string(key) : state_->prefix + std::string(key);
    throw Error(ErrorCode::kInvalidArgument, "Option \"" + name + "\" for " + state_->url +
                                                 " must be " + expected + ", not " + type_name(v));
  }

  std::shared_ptr<State> state_;
};

// ---- Save options every saver shares (docs/integrity.md) -----------------

// "integrity": whether a save records each weight file's SHA-256 in its
// manifest group; each scheme has its own default.
enum class Integrity { kNone, kSha256 };
inline Integrity read_integrity(Options& options, Integrity fallback) {
  const std::string v = options.get_choice(
      "integrity", fallback == Integrity::kSha256 ? "sha256" : "none", {"sha256", "none"});
  return v == "sha256" ? Integrity::kSha256 : Integrity::kNone;
}

// "shard_names": TF.js's file names, or each weight file named after its
// digest (content-addressed; implies integrity "sha256").
enum class ShardNames { kTfjs, kSha256 };
inline ShardNames read_shard_names(Options& options) {
  return options.get_choice("shard_names", "tfjs", {"tfjs", "sha256"}) == "sha256"
             ? ShardNames::kSha256
             : ShardNames::kTfjs;
}

// ---- Call ---------------------------------------------------------------

namespace detail {
// Thrown when the host has already written the call's status (a failed
// weight-URL conversion); the trampoline then leaves the status as it is.
struct StatusAlreadySet : std::exception {
  const char* what() const noexcept override { return "the host reported the failure"; }
};
}  // namespace detail

// One operation's context: cancellation, deadline, progress and the
// weight-URL converter. raw and status may be NULL (a call made inside the
// plugin). Thread-safety: cancelled(), check() and progress calls may come
// from any thread the plugin uses for this call.
class Call {
 public:
  Call(const stowage_call* raw, std::string url, std::string operation,
       stowage_status* status = nullptr)
      : raw_(raw), status_(status), url_(std::move(url)), operation_(std::move(operation)) {}
  Call(const Call&) = delete;
  Call& operator=(const Call&) = delete;

  const std::string& url() const noexcept { return url_; }
  const stowage_call* raw() const noexcept { return raw_; }

  bool cancelled() const {
    return has(offsetof(stowage_call, is_cancelled) + sizeof(stowage_call::is_cancelled)) &&
           raw_->is_cancelled != nullptr && raw_->is_cancelled(raw_->host_context) != 0;
  }

  std::optional<std::chrono::system_clock::time_point> deadline() const {
    if (!has(offsetof(stowage_call, deadline_unix_ms) + sizeof(stowage_call::deadline_unix_ms)) ||
        raw_->deadline_unix_ms == 0) {
      return std::nullopt;
    }
    return std::chrono::system_clock::time_point(std::chrono::milliseconds(raw_->deadline_unix_ms));
  }

  // Throws Error(kCancelled) once the caller asked to stop and
  // Error(kDeadlineExceeded) once the deadline has passed.
  void check() const {
    if (cancelled()) {
      throw Error(ErrorCode::kCancelled, operation_ + " of " + url_ + " was cancelled");
    }
    auto limit = deadline();
    if (limit && std::chrono::system_clock::now() >= *limit) {
      throw Error(ErrorCode::kDeadlineExceeded,
                  operation_ + " of " + url_ + " passed its deadline");
    }
  }

  // Reports progress as it is: done of total bytes.
  void progress(uint64_t done, uint64_t total) {
    done_.store(done);
    total_.store(total);
    report(done, total);
  }
  // Running totals for code that learns sizes as it goes: set_total() (may
  // grow), then advance() by each run of bytes handled; each reports.
  void set_total(uint64_t total) {
    total_.store(total);
    report(done_.load(), total);
  }
  void advance(uint64_t bytes) {
    uint64_t done = done_.fetch_add(bytes) + bytes;
    report(done, total_.load());
  }
  uint64_t done() const noexcept { return done_.load(); }
  uint64_t total() const noexcept { return total_.load(); }

  // abi.h STOWAGE_CALL_* bits (0 from a host older than ABI 1.2).
  uint64_t flags() const noexcept {
    return has(offsetof(stowage_call, flags) + sizeof(stowage_call::flags)) ? raw_->flags : 0;
  }
  // stat may read model.json alone (STOWAGE_CALL_STAT_SHALLOW).
  bool shallow_stat() const noexcept { return (flags() & STOWAGE_CALL_STAT_SHALLOW) != 0; }
  // stat: the version token of the copy the caller keeps (abi.h
  // stowage_call.known_version, ABI 1.3); nullopt when it holds none or the
  // host is older. A stat that can tell the stored model is still that one
  // returns a ModelStat with unchanged set (model and info left empty).
  std::optional<std::string_view> known_version() const noexcept {
    if (!has(offsetof(stowage_call, known_version_size) +
             sizeof(stowage_call::known_version_size)) ||
        raw_->known_version == nullptr || raw_->known_version_size == 0) {
      return std::nullopt;
    }
    return std::string_view(raw_->known_version, static_cast<size_t>(raw_->known_version_size));
  }

  // load: the bytes of weight buffer `index` (manifest path order) were
  // hashed in this call and match `sha256_hex`, the digest the returned
  // model.json records for that path, so the host need not hash them again
  // (abi.h sink_mark_verified, ABI 1.4). The default load_into hands each
  // mark to the host before the buffer; a load_into of one's own marks
  // through LoadSink::mark_verified. The host ignores a mark whose digest
  // is not the one its manifest records. Thread-safe.
  void mark_verified(uint64_t index, std::string sha256_hex) {
    std::lock_guard<std::mutex> lock(marks_mu_);
    marks_[index] = std::move(sha256_hex);
  }
  // The mark of buffer `index`; "" for none.
  std::string verified_mark(uint64_t index) const {
    std::lock_guard<std::mutex> lock(marks_mu_);
    auto it = marks_.find(index);
    return it == marks_.end() ? std::string() : it->second;
  }

  // TF.js's weightUrlConverter: the URL to fetch for a manifest path, or
  // nullopt when the caller has none (use the path as it is). A failing
  // converter fails the whole call with the caller's error.
  std::optional<std::string> convert_weight_url(std::string_view path) const {
    const stowage_host_api& h = host();
    if (!has(offsetof(stowage_call, convert_weight_url) +
             sizeof(stowage_call::convert_weight_url)) ||
        raw_->convert_weight_url == nullptr || h.sink_new_text == nullptr ||
        h.sink_get_text == nullptr || h.sink_free == nullptr) {
      return std::nullopt;
    }
    std::unique_ptr<stowage_sink, void (*)(stowage_sink*)> sink(h.sink_new_text(), h.sink_free);
    if (!sink) throw std::bad_alloc();
    int32_t r =
        raw_->convert_weight_url(raw_->host_context, path.data(), path.size(), sink.get(), status_);
    if (r == 0) return std::nullopt;
    if (r < 0) {
      if (status_ != nullptr) throw detail::StatusAlreadySet();
      throw Error(ErrorCode::kInternal,
                  "the weight URL converter failed for \"" + std::string(path) + "\"");
    }
    size_t len = 0;
    const char* text = h.sink_get_text(sink.get(), &len);
    return text != nullptr ? std::string(text, len) : std::string();
  }

 private:
  // The host's stowage_call reaches `end` (the end of a field).
  bool has(size_t end) const noexcept { return raw_ != nullptr && raw_->struct_size >= end; }
  void report(uint64_t done, uint64_t total) const {
    if (has(offsetof(stowage_call, progress) + sizeof(stowage_call::progress)) &&
        raw_->progress != nullptr) {
      raw_->progress(raw_->host_context, done, total);
    }
  }

  const stowage_call* raw_;
  stowage_status* status_;
  std::string url_;
  std::string operation_;
  std::atomic<uint64_t> done_{0};
  std::atomic<uint64_t> total_{0};
  mutable std::mutex marks_mu_;
  std::map<uint64_t, std::string> marks_;  // mark_verified
};

// ---- Streaming ----------------------------------------------------------

// The weight bytes handed to a save, in either form of stowage_artifacts:
// the array (every buffer at once) or, for a scheme declaring
// STOWAGE_CAP_STREAMING_SAVE, the pull form (buffers come while the load
// behind them runs). A saver reads next() until nullopt; the buffers'
// concatenation is the weight data, total_bytes() long.
// Thread-safety: next() from one thread at a time. Ownership: each Buffer
// owns its bytes (a host reference); release it early to let a streaming
// load go on.
class WeightSource {
 public:
  // Array form.
  WeightSource(WeightData buffers, bool has_weight_data)
      : array_(std::move(buffers)), has_weight_data_(has_weight_data) {
    for (const Buffer& b : array_) total_ += b.size();
  }
  // Pull form: raw->next_buffer must be set; status is the save's status.
  WeightSource(const stowage_artifacts* raw, stowage_status* status)
      : raw_(raw), status_(status), has_weight_data_(true), total_(raw->weight_bytes) {}
  WeightSource(const WeightSource&) = delete;
  WeightSource& operator=(const WeightSource&) = delete;

  // False for a topology-only save (no weightData at all).
  bool has_weight_data() const noexcept { return has_weight_data_; }
  // True in the pull form: the bytes are not all in memory.
  bool streaming() const noexcept { return raw_ != nullptr; }
  uint64_t total_bytes() const noexcept { return total_; }

  // The next buffer in order, or nullopt after the last. When the host
  // cannot deliver (the load behind failed, the copy was cancelled) it has
  // already set the save's status: this throws an exception that the kit
  // turns into "leave that status as it is", so a saver only has to let it
  // pass (and publish nothing).
  std::optional<Buffer> next();

  // Every remaining buffer (the whole model in memory).
  WeightData take_all() {
    WeightData out;
    while (std::optional<Buffer> b = next()) out.push_back(std::move(*b));
    return out;
  }

 private:
  const stowage_artifacts* raw_ = nullptr;
  stowage_status* status_ = nullptr;
  WeightData array_;
  size_t next_ = 0;
  bool ended_ = false;
  bool failed_ = false;
  bool has_weight_data_ = false;
  uint64_t total_ = 0;
};

// Where a load delivers: set_model() once with the model's JSON fields
// (weight_data ignored), then put() each weight buffer by index as soon as
// it is complete. For a scheme declaring STOWAGE_CAP_STREAMING_LOAD (with a
// 1.1 host) each put reaches the host at once (host->sink_put_buffer, which
// may block for back-pressure); otherwise the buffers go to the host in
// index order when the load returns.
// Thread-safety: put() from several threads at once (each its own indexes,
// increasing); set_model() before any put. Ownership: put() takes a
// reference, never copies bytes.
class LoadSink {
 public:
  LoadSink(stowage_sink* sink, bool streaming) : sink_(sink), streaming_(streaming) {}
  LoadSink(const LoadSink&) = delete;
  LoadSink& operator=(const LoadSink&) = delete;

  bool streaming() const noexcept { return streaming_; }
  void set_model(const ModelArtifacts& model);
  // Error(kCancelled) when the host's consumer gave up (stop loading).
  void put(uint64_t index, const Buffer& buffer);
  // Tells the host, before put(index, ...), that the buffer's bytes were
  // hashed in this call and match sha256_hex, the digest model.json records
  // for that path (abi.h sink_mark_verified). Does nothing with a host
  // older than ABI 1.4, which hashes every buffer itself.
  void mark_verified(uint64_t index, std::string_view sha256_hex);
  // Hands over what was kept back (non-streaming); the kit calls it.
  void flush();

 private:
  stowage_sink* sink_;
  bool streaming_;
  bool model_set_ = false;
  std::mutex mu_;
  std::map<uint64_t, Buffer> held_;
};

// ---- Handler ------------------------------------------------------------

// Base of every plugin handler, one per URL. A derived class is constructed
// from (std::string_view url, Options& options) and overrides the
// operations its capability bits declare; the others fail with
// Error(kUnimplemented).
class Handler {
 public:
  explicit Handler(std::string_view url) : url_(url) {}
  virtual ~Handler() = default;
  Handler(const Handler&) = delete;
  Handler& operator=(const Handler&) = delete;

  const std::string& url() const noexcept { return url_; }

  // The model at url(): its JSON fields, and weight_data with either one
  // Buffer per weights_manifest path (labelled) or, without a manifest, the
  // flat weight bytes.
  virtual ModelArtifacts load(Call& call) { unsupported("load", call); }
  // Stores the model; returns the store's response JSON, if it has one.
  virtual std::optional<std::string> save(const ModelArtifacts& artifacts, Call& call) {
    (void)artifacts;
    unsupported("save", call);
  }
  // Every save goes through this one. `meta` has the JSON fields (no
  // weight_data), `weights` yields the weight bytes in either form. The
  // default takes every buffer and calls save() above; a scheme declaring
  // STOWAGE_CAP_STREAMING_SAVE overrides it to write buffers as they come
  // (and releases each one when done with it).
  virtual std::optional<std::string> save_from(const ModelArtifacts& meta, WeightSource& weights,
                                               Call& call) {
    ModelArtifacts whole = meta;
    if (weights.has_weight_data()) whole.weight_data = weights.take_all();
    return save(whole, call);
  }
  // Every load goes through this one. The default calls load() above and
  // puts each of its buffers; a loader overrides it to put each buffer as
  // soon as it is complete.
  virtual void load_into(LoadSink& out, Call& call) {
    ModelArtifacts artifacts = load(call);
    // abi.h: a call that passed its deadline fails, also when the plugin
    // only checked while it waited and the last bytes came in late.
    call.check();
    out.set_model(artifacts);
    if (artifacts.weight_data) {
      for (size_t i = 0; i < artifacts.weight_data->size(); ++i) {
        // The loader's reference ends with the put: a buffer a streaming
        // copy has written and released is freed (or unmapped) then, not
        // when the whole load returns.
        const Buffer buffer = std::move((*artifacts.weight_data)[i]);
        if (std::string mark = call.verified_mark(i); !mark.empty()) out.mark_verified(i, mark);
        out.put(i, buffer);
      }
    }
  }
  virtual std::vector<ListedModel> list(Call& call) { unsupported("list", call); }
  virtual ModelArtifactsInfo remove(Call& call) { unsupported("remove", call); }
  // STOWAGE_CAP_STAT: the model.json fields (weight_data absent), a version
  // token that changes whenever the stored model does, and the info load
  // would give; without reading weight bytes. Error(kNotFound) for no model.
  // With call.known_version() it may instead return {version, unchanged:
  // true} when it can tell the stored model is still that one (abi.h).
  virtual ModelStat stat(Call& call) { unsupported("stat", call); }

 private:
  [[noreturn]] void unsupported(const char* op, Call&) const {
    throw Error(ErrorCode::kUnimplemented, std::string(op) + " is not supported for " + url_);
  }

  std::string url_;
};

// The ModelArtifactsInfo that load() followed by artifacts_info() gives for
// a model whose model.json fields are `model` and whose stored weights are
// `buffer_count` buffers (files, objects) of `weight_bytes` in all: for a
// stat, which reads no weight bytes.
inline ModelArtifactsInfo stat_info(const ModelArtifacts& model, uint64_t weight_bytes,
                                    size_t buffer_count) {
  ModelArtifactsInfo info = artifacts_info(model);
  const bool has_weights = model.weight_specs || model.weights_manifest || buffer_count > 0;
  if (has_weights) {
    info.weight_data_bytes =
        buffer_count == 0 ? std::nullopt : std::optional<uint64_t>(weight_bytes);
  }
  return info;
}

// A version token from parts that each identify one stored piece (an ETag,
// "mtime:size:inode"): a 64-bit FNV-1a digest of them in order, as 16 hex
// digits, so the token stays short and says nothing about the store.
inline std::string version_token(const std::vector<std::string>& parts) {
  uint64_t h = 14695981039346656037ull;
  auto mix = [&h](std::string_view bytes) {
    for (unsigned char c : bytes) {
      h ^= c;
      h *= 1099511628211ull;
    }
  };
  for (const std::string& part : parts) {
    mix(std::to_string(part.size()));  // length first: ("ab","c") differs from ("a","bc")
    mix(":");
    mix(part);
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i, h >>= 4) out[static_cast<size_t>(i)] = kHex[h & 0xf];
  return out;
}

// One scheme of a plugin declared with STOWAGE_PLUGIN_SCHEMES and its
// STOWAGE_CAP_* bits.
struct SchemeCaps {
  const char* scheme;
  uint64_t capabilities;
};

}  // namespace stowage::plugin

#pragma GCC visibility pop

// The ABI glue: the ops table, the descriptor and the conversions the
// macros below instantiate (and the streaming members that need them).
#include "stowage/detail/plugin_glue.hpp"

// Exports HANDLER (a stowage::plugin::Handler) as a plugin named NAME with
// version VERSION, capability bits CAPS (STOWAGE_CAP_*) and the URL schemes
// that follow (lowercase, without "://"). Use once per plugin, at namespace
// scope, followed by a semicolon.
// As STOWAGE_PLUGIN, with capability bits per scheme: the arguments after
// EXTRA (plugin-wide bits that belong to no scheme, such as
// STOWAGE_CAP_SINGLE_THREADED, or 0) are {"scheme", STOWAGE_CAP_...} pairs,
// e.g. {"downloads", STOWAGE_CAP_SAVE}. The host refuses a call a URL's
// scheme does not declare before it reaches the handler.
#define STOWAGE_PLUGIN_SCHEMES(HANDLER, NAME, VERSION, EXTRA, ...)                          \
  extern "C" __attribute__((visibility("default"))) const stowage_plugin_desc*              \
  stowage_plugin_entry_v1(const stowage_host_api* host) {                                   \
    static const ::stowage::plugin::SchemeCaps stowage_scheme_caps[] = {__VA_ARGS__};       \
    return ::stowage::plugin::detail::describe_schemes<HANDLER>(host, NAME, VERSION, EXTRA, \
                                                                stowage_scheme_caps);       \
  }                                                                                         \
  static_assert(std::is_same_v<decltype(&stowage_plugin_entry_v1), ::stowage_entry_fn>,     \
                "the entry point has the type abi.h declares")

#define STOWAGE_PLUGIN(HANDLER, NAME, VERSION, CAPS, ...)                               \
  extern "C" __attribute__((visibility("default"))) const stowage_plugin_desc*          \
  stowage_plugin_entry_v1(const stowage_host_api* host) {                               \
    static const char* const stowage_schemes[] = {__VA_ARGS__};                         \
    return ::stowage::plugin::detail::describe<HANDLER>(                                \
        host, NAME, VERSION, CAPS, stowage_schemes,                                     \
        static_cast<uint32_t>(sizeof(stowage_schemes) / sizeof(stowage_schemes[0])));   \
  }                                                                                     \
  static_assert(std::is_same_v<decltype(&stowage_plugin_entry_v1), ::stowage_entry_fn>, \
                "the entry point has the type abi.h declares")
