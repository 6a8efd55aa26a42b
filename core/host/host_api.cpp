// The stowage_host_api table and the buffer bridge. Nothing here may throw
// into a plugin: every callback catches and records instead.
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <new>
#include <span>
#include <unordered_set>

#include "host_api_internal.hpp"
#include "model_stream_internal.hpp"
#include "nested_internal.hpp"
#include "stowage/text.hpp"

namespace stowage::host {
namespace {

// A host reference: what private_data of a host-made stowage_buffer points at.
struct HostRef {
  Buffer buffer;
};

// Every live HostRef, so buffer_share can tell a host reference from a
// plugin's own buffer without dereferencing a pointer it does not know.
// Leaked on purpose: release callbacks may run during process exit.
std::mutex& refs_mutex() {
  static auto* m = new std::mutex;
  return *m;
}
std::unordered_set<const void*>& live_refs() {
  static auto* s = new std::unordered_set<const void*>;
  return *s;
}

HostRef* new_ref(Buffer buffer) {
  auto ref = std::make_unique<HostRef>(HostRef{std::move(buffer)});
  std::lock_guard<std::mutex> lock(refs_mutex());
  live_refs().insert(ref.get());
  return ref.release();
}

void delete_ref(HostRef* ref) noexcept {
  {
    std::lock_guard<std::mutex> lock(refs_mutex());
    live_refs().erase(ref);
  }
  delete ref;
}

bool is_live_ref(const void* p) noexcept {
  std::lock_guard<std::mutex> lock(refs_mutex());
  return live_refs().count(p) != 0;
}

void release_host_ref(stowage_buffer* self) {
  if (self == nullptr || self->release == nullptr) return;
  delete_ref(static_cast<HostRef*>(self->private_data));
  self->release = nullptr;
  self->private_data = nullptr;
}

stowage_buffer to_c(HostRef* ref, bool owning) noexcept {
  stowage_buffer b{};
  b.data = ref->buffer.data();
  b.size = ref->buffer.size();
  b.release = owning ? release_host_ref : nullptr;
  b.private_data = ref;
  b.label = ref->buffer.label().empty() ? nullptr : ref->buffer.label().c_str();
  return b;
}

bool log_enabled() {
  static const bool enabled = [] {
    const char* v = std::getenv("STOWAGE_LOG");
    return v != nullptr && *v != '\0' && std::string_view(v) != "0";
  }();
  return enabled;
}

void note_misuse(stowage_sink* sink, const char* what) noexcept {
  try {
    std::lock_guard<std::mutex> lock(sink->misuse_mu);  // puts may come from several threads
    if (sink->misuse.empty()) sink->misuse = what;
  } catch (...) {
  }
}

// The digest check of a streamed load's buffer (stream_digests_internal.hpp):
// false when it failed, after failing the stream with the error.
bool digest_ok(stowage_sink* sink, uint64_t index, const Buffer& b) noexcept {
  if (!sink->digests) return true;
  try {
    sink->digests->check(sink->text ? &*sink->text : nullptr, index, b,
                         sink->verified_digest(index));
    return true;
  } catch (...) {
    std::exception_ptr error = std::current_exception();
    try {
      std::lock_guard<std::mutex> lock(sink->failure_mu);
      if (!sink->failure) sink->failure = error;
    } catch (...) {
    }
    sink->stream->fail(error);
    return false;
  }
}

// ---- the table ----

void status_set(stowage_status* st, int32_t code, int32_t retryable, const char* msg,
                size_t msg_len) noexcept {
  if (st == nullptr) return;
  st->request.reset();
  if (code == STOWAGE_OK) {
    st->failed = false;
    st->code = ErrorCode::kOk;
    st->retryable = false;
    st->message.clear();
    return;
  }
  st->failed = true;
  st->retryable = retryable != 0;
  try {
    std::string text = msg != nullptr ? std::string(msg, msg_len) : std::string();
    if (code < STOWAGE_OK || code > STOWAGE_INTERNAL) {
      st->code = ErrorCode::kInternal;
      st->message = "plugin reported unknown status code " + std::to_string(code) + ": " + text;
    } else {
      st->code = static_cast<ErrorCode>(code);
      st->message = std::move(text);
    }
  } catch (...) {
    st->code = ErrorCode::kInternal;
    st->message.clear();
  }
}

void sink_set_text(stowage_sink* sink, const char* text, size_t len) noexcept {
  if (sink == nullptr) return;
  if (sink->kind == stowage_sink::Kind::kList) {
    note_misuse(sink, "sink_set_text was called on a list sink");
    return;
  }
  try {
    sink->text.emplace(text != nullptr ? std::string(text, len) : std::string());
    if (sink->stream != nullptr) sink->stream->set_artifacts(*sink->text);
  } catch (...) {
    note_misuse(sink, "out of memory while copying sink text");
  }
}

void sink_add_buffer(stowage_sink* sink, stowage_buffer* buf) noexcept {
  if (buf == nullptr) return;
  if (sink == nullptr) {
    if (buf->release != nullptr) buf->release(buf);
    return;
  }
  if (buf->data == nullptr && buf->size != 0) {
    note_misuse(sink, "sink_add_buffer got a buffer with NULL data and a non-zero size");
    if (buf->release != nullptr) buf->release(buf);
    return;
  }
  try {
    Buffer b = adopt_plugin_buffer(buf, sink->keep_alive);
    if (sink->kind != stowage_sink::Kind::kLoad) {
      note_misuse(sink, "sink_add_buffer was called on a sink that takes no buffers");
      return;  // b releases the plugin's buffer
    }
    sink->used_add = true;
    if (sink->used_put) {
      note_misuse(sink, "a load called both sink_put_buffer and sink_add_buffer");
      return;
    }
    if (sink->stream != nullptr) {
      // A 1.0-style load into a stream waits for room like a put. A 1.0
      // plugin cannot hear that the consumer gave up: the buffer is dropped
      // and the copy fails on its own side.
      if (!digest_ok(sink, sink->added++, b)) return;
      sink->stream->add(std::move(b));
      return;
    }
    sink->buffers.push_back(std::move(b));
  } catch (...) {
    note_misuse(sink, "out of memory while adding a weight buffer");
  }
}

int32_t sink_put_buffer(stowage_sink* sink, uint64_t index, stowage_buffer* buf) noexcept {
  if (buf == nullptr) return 0;
  if (sink == nullptr) {
    if (buf->release != nullptr) buf->release(buf);
    return 1;
  }
  if (buf->data == nullptr && buf->size != 0) {
    note_misuse(sink, "sink_put_buffer got a buffer with NULL data and a non-zero size");
    if (buf->release != nullptr) buf->release(buf);
    return 1;
  }
  try {
    Buffer b = adopt_plugin_buffer(buf, sink->keep_alive);
    if (sink->kind != stowage_sink::Kind::kLoad) {
      note_misuse(sink, "sink_put_buffer was called on a sink that takes no buffers");
      return 1;
    }
    if (!sink->may_put) {
      note_misuse(sink,
                  "sink_put_buffer was called by a load whose scheme does not declare "
                  "STOWAGE_CAP_STREAMING_LOAD (use sink_add_buffer, or declare the capability)");
      return 1;
    }
    sink->used_put = true;
    if (sink->used_add) {
      note_misuse(sink, "a load called both sink_put_buffer and sink_add_buffer");
      return 1;
    }
    if (sink->stream != nullptr) {
      if (!digest_ok(sink, index, b)) return 1;
      return sink->stream->put(index, std::move(b)) ? 0 : 1;
    }
    std::lock_guard<std::mutex> lock(sink->put_mu);
    if (index >= (uint64_t{1} << 32)) {
      note_misuse(sink, "sink_put_buffer got an index beyond any weights manifest");
      return 1;
    }
    const auto i = static_cast<size_t>(index);
    if (i >= sink->buffers.size()) {
      sink->buffers.resize(i + 1);
      sink->put.resize(i + 1, false);
    }
    if (sink->put[i]) {
      note_misuse(sink, "sink_put_buffer got the same index twice");
      return 1;
    }
    sink->put[i] = true;
    sink->buffers[i] = std::move(b);
    return 0;
  } catch (...) {
    note_misuse(sink, "out of memory while adding a weight buffer");
    return 1;
  }
}

void sink_add_model(stowage_sink* sink, const char* url, size_t url_len, const char* info_json,
                    size_t info_len) noexcept {
  if (sink == nullptr) return;
  if (sink->kind != stowage_sink::Kind::kList) {
    note_misuse(sink, "sink_add_model was called on a sink that is not a list sink");
    return;
  }
  try {
    sink->models.emplace_back(
        url != nullptr ? std::string(url, url_len) : std::string(),
        info_json != nullptr ? std::string(info_json, info_len) : std::string());
  } catch (...) {
    note_misuse(sink, "out of memory while adding a listed model");
  }
}

void buffer_share(const stowage_buffer* src, stowage_buffer* out) noexcept {
  if (out == nullptr) return;
  *out = stowage_buffer{};
  if (src == nullptr) return;
  try {
    if (src->private_data != nullptr && is_live_ref(src->private_data)) {
      // A host reference: one more owner of the same bytes, no copy. The
      // plugin may have narrowed data/size; keep what it sees.
      const Buffer& whole = static_cast<const HostRef*>(src->private_data)->buffer;
      Buffer b = whole;
      if (src->data != whole.data() || src->size != whole.size()) {
        uint64_t offset = static_cast<uint64_t>(src->data - whole.data());
        if (src->data >= whole.data() && offset + src->size <= whole.size()) {
          b = whole.slice(offset, src->size);
          b.set_label(whole.label());
        } else {
          b = Buffer::copy_of({src->data, static_cast<size_t>(src->size)}, whole.label());
        }
      }
      *out = to_c(new_ref(std::move(b)), true);
      return;
    }
    // A buffer the host does not know: the only safe new reference is a copy.
    std::string label = src->label != nullptr ? src->label : "";
    Buffer copy = src->size == 0
                      ? Buffer()
                      : Buffer::copy_of({src->data, static_cast<size_t>(src->size)}, label);
    copy.set_label(std::move(label));
    *out = to_c(new_ref(std::move(copy)), true);
  } catch (...) {
    *out = stowage_buffer{};
  }
}

void log_line(int32_t level, const char* msg, size_t msg_len) noexcept {
  if (!log_enabled() || msg == nullptr) return;
  const char* name = level <= 0 ? "debug" : level == 1 ? "info" : "warning";
  std::fprintf(stderr, "stowage: plugin %s: %.*s\n", name, static_cast<int>(msg_len), msg);
}

stowage_sink* sink_new_text() noexcept {
  return new (std::nothrow) stowage_sink(stowage_sink::Kind::kText);
}

const char* sink_get_text(const stowage_sink* sink, size_t* len) noexcept {
  if (sink == nullptr || !sink->text) {
    if (len != nullptr) *len = 0;
    return nullptr;
  }
  if (len != nullptr) *len = sink->text->size();
  return sink->text->c_str();
}

void sink_free(stowage_sink* sink) noexcept { delete sink; }

stowage_status* status_new() noexcept { return new (std::nothrow) stowage_status; }

void status_free(stowage_status* st) noexcept { delete st; }

int32_t status_get(const stowage_status* st, int32_t* retryable, const char** msg,
                   size_t* msg_len) noexcept {
  const bool failed = st != nullptr && st->failed;
  if (retryable != nullptr) *retryable = failed && st->retryable ? 1 : 0;
  if (msg != nullptr) *msg = failed ? st->message.c_str() : "";
  if (msg_len != nullptr) *msg_len = failed ? st->message.size() : 0;
  return failed ? static_cast<int32_t>(st->code) : STOWAGE_OK;
}

void status_set_request(stowage_status* st, const char* method, size_t method_len, const char* url,
                        size_t url_len, const char* reason, size_t reason_len) noexcept {
  if (st == nullptr || !st->failed) return;
  auto text = [](const char* p, size_t n) {
    return p != nullptr ? std::string(p, n) : std::string();
  };
  try {
    // Redacted again: retry notices are printed, and the plugin may have
    // passed a URL with credentials in it.
    st->request = FailedRequest{text(method, method_len), redact_url(text(url, url_len)),
                                text(reason, reason_len)};
  } catch (...) {
    st->request.reset();  // out of memory: the notice falls back to the call's URL
  }
}

void sink_mark_verified(stowage_sink* sink, uint64_t index, const char* sha256_hex,
                        size_t sha256_len) noexcept {
  // Anything but a load sink has no buffers to vouch for; an empty digest
  // can equal no recorded one.
  if (sink == nullptr || sink->kind != stowage_sink::Kind::kLoad || sha256_hex == nullptr ||
      sha256_len == 0) {
    return;
  }
  try {
    std::string digest(sha256_hex, sha256_len);
    std::lock_guard<std::mutex> lock(sink->verified_mu);
    sink->verified[index] = std::move(digest);
  } catch (...) {
    // Out of memory: the mark is lost, and the host hashes the buffer.
  }
}

const stowage_host_api kHostApi = {
    sizeof(stowage_host_api),
    STOWAGE_ABI_MAJOR,
    STOWAGE_ABI_MINOR,
    0,
    status_set,
    sink_set_text,
    sink_add_buffer,
    sink_add_model,
    buffer_share,
    log_line,
    sink_new_text,
    sink_get_text,
    sink_free,
    sink_put_buffer,
    nested_open,
    nested_close,
    nested_save,
    nested_load,
    nested_artifacts_free,
    nested_list,
    nested_remove,
    nested_stat,
    status_new,
    status_free,
    status_get,
    status_set_request,
    sink_mark_verified,
    nested_load_stream,
};

}  // namespace

const stowage_host_api* host_api() noexcept { return &kHostApi; }

LentBuffers::LentBuffers(const WeightData* data) {
  if (data == nullptr) return;
  buffers_.reserve(data->size());
  try {
    for (const Buffer& b : *data) buffers_.push_back(to_c(new_ref(b), false));
  } catch (...) {
    for (auto& b : buffers_) delete_ref(static_cast<HostRef*>(b.private_data));
    throw;
  }
}

LentBuffers::~LentBuffers() {
  for (auto& b : buffers_) delete_ref(static_cast<HostRef*>(b.private_data));
}

Buffer adopt_plugin_buffer(stowage_buffer* buf, std::shared_ptr<const void> keep_alive) {
  stowage_buffer taken = *buf;
  buf->release = nullptr;
  if (taken.release == release_host_ref) {
    // One of our own references coming back: unwrap it instead of stacking
    // a second owner on top.
    auto* ref = static_cast<HostRef*>(taken.private_data);
    Buffer whole = ref->buffer;
    delete_ref(ref);
    if (taken.data == whole.data() && taken.size == whole.size()) return whole;
    uint64_t offset = static_cast<uint64_t>(taken.data - whole.data());
    if (taken.data >= whole.data() && offset + taken.size <= whole.size()) {
      Buffer b = whole.slice(offset, taken.size);
      b.set_label(whole.label());
      return b;
    }
    return Buffer::copy_of({taken.data, static_cast<size_t>(taken.size)}, whole.label());
  }
  struct Owner {
    Owner(const stowage_buffer& b, std::shared_ptr<const void> k)
        : buffer(b), keep_alive(std::move(k)) {}
    Owner(const Owner&) = delete;
    Owner& operator=(const Owner&) = delete;
    stowage_buffer buffer;
    std::shared_ptr<const void> keep_alive;
    ~Owner() {
      if (buffer.release != nullptr) buffer.release(&buffer);
    }
  };
  std::string label;
  std::shared_ptr<Owner> owner;
  try {
    if (taken.label != nullptr) label = taken.label;
    owner = std::make_shared<Owner>(taken, std::move(keep_alive));
  } catch (...) {
    if (taken.release != nullptr) taken.release(&taken);
    throw;
  }
  return Buffer::wrap(taken.data, taken.size, std::move(owner), std::move(label));
}

stowage_buffer lend_owned(Buffer b) { return to_c(new_ref(std::move(b)), true); }

uint64_t live_host_references() noexcept {
  std::lock_guard<std::mutex> lock(refs_mutex());
  return live_refs().size();
}

}  // namespace stowage::host
