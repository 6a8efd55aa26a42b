// An in-memory model store written against the raw C ABI (not the SDK kit),
// for the host library's tests. It keeps saved weights by taking references
// with host->buffer_share, and breaks on request through its options:
//   fail_times n, fail_op "save"|"load"|"list"|"remove"|"any", fail_code c,
//   fail_retryable b   the first n matching calls of a handler fail
//   truncate_weights n load hands out n bytes fewer than were saved
//   fail_load_after n  load hands out n weight buffers, then fails with
//                      fail_code and fail_retryable (a failure midway)
//   flip_byte_on_save  save stores its weights with the first byte changed
//   copy_buffers       load hands out plugin-owned copies (own release)
//   put_buffers        load hands buffers over with host->sink_put_buffer,
//                      which testmem's scheme does not declare (misuse)
//   convert_weight_url load asks the host's converter for "weights.bin" and
//                      puts the answer in userDefinedMetadata.converted
//   delay_ms n         every call sleeps n ms first
// Loading "<scheme>://__stats__" returns counters as the model topology.
// Built with TESTMEM_SINGLE_THREADED it declares STOWAGE_CAP_SINGLE_THREADED
// and fails any call that overlaps another one.
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "stowage/abi.h"

namespace {

const stowage_host_api* g_host = nullptr;
std::atomic<int> g_entry_calls{0};
std::atomic<int> g_live_own_buffers{0};
std::atomic<int> g_in_flight{0};
std::atomic<int> g_max_in_flight{0};
std::atomic<int> g_open_handlers{0};

constexpr std::string_view kScheme = TP_SCHEME;

void fail(stowage_status* st, stowage_code code, const std::string& msg, bool retryable = false) {
  g_host->status_set(st, code, retryable ? 1 : 0, msg.data(), msg.size());
}

// Bytes the plugin owns itself, handed out with their own release.
using Bytes = std::shared_ptr<const std::vector<uint8_t>>;

void release_own(stowage_buffer* self) {
  delete static_cast<Bytes*>(self->private_data);
  g_live_own_buffers.fetch_sub(1);
  self->release = nullptr;
}

stowage_buffer own_buffer(const Bytes& bytes, uint64_t size) {
  stowage_buffer b{};
  b.data = bytes->data();
  b.size = std::min<uint64_t>(size, bytes->size());
  b.private_data = new Bytes(bytes);
  b.release = release_own;
  b.label = nullptr;
  g_live_own_buffers.fetch_add(1);
  return b;
}

// One stored weight buffer: a host reference or plugin-owned bytes.
struct Blob {
  stowage_buffer host{};  // release != nullptr when this is a host reference
  Bytes own;
  uint64_t size() const { return own ? own->size() : host.size; }
  const uint8_t* data() const { return own ? own->data() : host.data; }
};

struct Model {
  std::string json;
  bool has_weight_data = false;
  std::vector<std::shared_ptr<Blob>> blobs;
  uint64_t weight_bytes = 0;
  uint64_t topology_bytes = 0;
  uint64_t specs_bytes = 0;
};

void free_blob(Blob* b) {
  if (b->host.release != nullptr) b->host.release(&b->host);
  delete b;
}

std::mutex g_mu;
std::map<std::string, std::shared_ptr<Model>>& store() {
  static auto* s = new std::map<std::string, std::shared_ptr<Model>>;
  return *s;
}

std::string write(const rapidjson::Value& v) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  v.Accept(w);
  return {sb.GetString(), sb.GetSize()};
}

std::string info_json(const Model& m) {
  return "{\"dateSaved\":\"2024-01-02T03:04:05.678Z\",\"modelTopologyType\":\"JSON\","
         "\"modelTopologyBytes\":" +
         std::to_string(m.topology_bytes) +
         ",\"weightSpecsBytes\":" + std::to_string(m.specs_bytes) +
         ",\"weightDataBytes\":" + std::to_string(m.weight_bytes) + "}";
}

}  // namespace

struct stowage_handler {
  std::string url;
  std::string key;
  int fail_times = 0;
  std::string fail_op = "any";
  int fail_code = STOWAGE_UNAVAILABLE;
  bool fail_retryable = true;
  uint64_t truncate_weights = 0;
  int fail_load_after = -1;
  bool flip_byte_on_save = false;
  bool copy_buffers = false;
  bool put_buffers = false;
  bool convert_weight_url = false;
  int delay_ms = 0;
  std::atomic<int> failures{0};
};

namespace {

// Entered by every call: single-threaded checks, delay, cancellation,
// deadline and injected failures. Returns false when st is set.
class Enter {
 public:
  Enter(stowage_handler* h, const char* op, const stowage_call* call, stowage_status* st) {
    int now = g_in_flight.fetch_add(1) + 1;
    int seen = g_max_in_flight.load();
    while (now > seen && !g_max_in_flight.compare_exchange_weak(seen, now)) {
    }
#ifdef TESTMEM_SINGLE_THREADED
    if (now > 1) {
      fail(st, STOWAGE_INTERNAL,
           std::string(kScheme) + ": concurrent call into a single-threaded plugin");
      return;
    }
#endif
    if (h->delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(h->delay_ms));
    if (call->is_cancelled(call->host_context)) {
      fail(st, STOWAGE_CANCELLED,
           std::string(kScheme) + ": " + op + " of '" + h->url + "' cancelled");
      return;
    }
    if (call->deadline_unix_ms != 0) {
      auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
      if (now_ms > call->deadline_unix_ms) {
        fail(st, STOWAGE_DEADLINE_EXCEEDED,
             std::string(kScheme) + ": " + op + " of '" + h->url + "' passed its deadline");
        return;
      }
    }
    if (h->fail_op == "any" || h->fail_op == op) {
      int n = h->failures.fetch_add(1) + 1;
      if (n <= h->fail_times) {
        fail(st, static_cast<stowage_code>(h->fail_code),
             std::string(kScheme) + ": injected failure " + std::to_string(n) + " of " +
                 std::to_string(h->fail_times) + " in " + op + " of '" + h->url + "'",
             h->fail_retryable);
        return;
      }
    }
    ok_ = true;
  }
  ~Enter() { g_in_flight.fetch_sub(1); }
  bool ok() const { return ok_; }

 private:
  bool ok_ = false;
};

void tm_open(const char* url, size_t url_len, const char* options_json, size_t options_len,
             stowage_handler** out, stowage_status* st) {
  std::string u(url, url_len);
  std::string prefix = std::string(kScheme) + "://";
  if (u.rfind(prefix, 0) != 0) {
    fail(st, STOWAGE_INVALID_ARGUMENT,
         std::string(kScheme) + ": not a " + prefix + " URL: '" + u + "'");
    return;
  }
  rapidjson::Document d;
  d.Parse(options_json, options_len);
  if (d.HasParseError() || !d.IsObject()) {
    fail(st, STOWAGE_INVALID_ARGUMENT, std::string(kScheme) + ": options are not a JSON object");
    return;
  }
  auto h = std::make_unique<stowage_handler>();
  h->url = u;
  h->key = u.substr(prefix.size());
  for (auto& m : d.GetObject()) {
    std::string k(m.name.GetString(), m.name.GetStringLength());
    const auto& v = m.value;
    auto need_int = [&]() {
      if (!v.IsInt()) {
        fail(st, STOWAGE_INVALID_ARGUMENT,
             std::string(kScheme) + ": option '" + k + "' must be an integer");
        return false;
      }
      return true;
    };
    auto need_bool = [&]() {
      if (!v.IsBool()) {
        fail(st, STOWAGE_INVALID_ARGUMENT,
             std::string(kScheme) + ": option '" + k + "' must be a boolean");
        return false;
      }
      return true;
    };
    if (k == "fail_times") {
      if (!need_int()) return;
      h->fail_times = v.GetInt();
    } else if (k == "fail_op") {
      if (!v.IsString()) {
        fail(st, STOWAGE_INVALID_ARGUMENT,
             std::string(kScheme) + ": option 'fail_op' must be a string");
        return;
      }
      h->fail_op = v.GetString();
    } else if (k == "fail_code") {
      if (!need_int()) return;
      h->fail_code = v.GetInt();
    } else if (k == "fail_retryable") {
      if (!need_bool()) return;
      h->fail_retryable = v.GetBool();
    } else if (k == "truncate_weights") {
      if (!need_int()) return;
      h->truncate_weights = static_cast<uint64_t>(v.GetInt());
    } else if (k == "fail_load_after") {
      if (!need_int()) return;
      h->fail_load_after = v.GetInt();
    } else if (k == "flip_byte_on_save") {
      if (!need_bool()) return;
      h->flip_byte_on_save = v.GetBool();
    } else if (k == "copy_buffers") {
      if (!need_bool()) return;
      h->copy_buffers = v.GetBool();
    } else if (k == "put_buffers") {
      if (!need_bool()) return;
      h->put_buffers = v.GetBool();
    } else if (k == "convert_weight_url") {
      if (!need_bool()) return;
      h->convert_weight_url = v.GetBool();
    } else if (k == "delay_ms") {
      if (!need_int()) return;
      h->delay_ms = v.GetInt();
    } else {
      fail(st, STOWAGE_INVALID_ARGUMENT, std::string(kScheme) + ": unknown option '" + k + "'");
      return;
    }
  }
  g_open_handlers.fetch_add(1);
  *out = h.release();
}

void tm_close(stowage_handler* h) {
  g_open_handlers.fetch_sub(1);
  delete h;
}

void tm_save(stowage_handler* h, const stowage_artifacts* a, const stowage_call* call,
             stowage_sink* result, stowage_status* st) {
  Enter enter(h, "save", call, st);
  if (!enter.ok()) return;
  auto m = std::make_shared<Model>();
  m->json.assign(a->json, a->json_size);
  rapidjson::Document d;
  d.Parse(m->json.data(), m->json.size());
  if (d.HasParseError() || !d.IsObject()) {
    fail(st, STOWAGE_INVALID_ARGUMENT, std::string(kScheme) + ": artifacts JSON is not an object");
    return;
  }
  if (d.HasMember("modelTopology")) m->topology_bytes = write(d["modelTopology"]).size();
  if (d.HasMember("weightSpecs")) m->specs_bytes = write(d["weightSpecs"]).size();
  m->has_weight_data = a->has_weight_data != 0;
  m->weight_bytes = a->weight_bytes;
  uint64_t done = 0;
  call->progress(call->host_context, 0, a->weight_bytes);
  for (uint64_t i = 0; i < a->buffer_count; ++i) {
    std::shared_ptr<Blob> blob(new Blob, free_blob);
    if (h->flip_byte_on_save && i == 0 && a->buffers[0].size > 0) {
      auto copy = std::make_shared<std::vector<uint8_t>>(a->buffers[0].data,
                                                         a->buffers[0].data + a->buffers[0].size);
      (*copy)[0] ^= 0xff;
      blob->own = copy;
    } else {
      g_host->buffer_share(&a->buffers[i], &blob->host);
    }
    done += a->buffers[i].size;
    call->progress(call->host_context, done, a->weight_bytes);
    m->blobs.push_back(std::move(blob));
  }
  {
    std::lock_guard<std::mutex> lock(g_mu);
    store()[h->key] = m;
  }
  std::string response = "{\"stored\":\"" + h->key + "\"}";
  g_host->sink_set_text(result, response.data(), response.size());
}

void load_stats(stowage_sink* out) {
  std::string json = "{\"modelTopology\":{\"entry_calls\":" + std::to_string(g_entry_calls.load()) +
                     ",\"live_own_buffers\":" + std::to_string(g_live_own_buffers.load()) +
                     ",\"max_in_flight\":" + std::to_string(g_max_in_flight.load()) +
                     ",\"open_handlers\":" + std::to_string(g_open_handlers.load()) + "}}";
  g_host->sink_set_text(out, json.data(), json.size());
}

void tm_load(stowage_handler* h, const stowage_call* call, stowage_sink* out, stowage_status* st) {
  if (h->key == "__stats__") {
    load_stats(out);
    return;
  }
  Enter enter(h, "load", call, st);
  if (!enter.ok()) return;
  std::shared_ptr<Model> m;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    auto it = store().find(h->key);
    if (it != store().end()) m = it->second;
  }
  if (!m) {
    fail(st, STOWAGE_NOT_FOUND, std::string(kScheme) + ": no model at '" + h->url + "'");
    return;
  }
  std::string json = m->json;
  if (h->convert_weight_url) {
    stowage_sink* converted = g_host->sink_new_text();
    int32_t r = call->convert_weight_url(call->host_context, "weights.bin", 11, converted, st);
    if (r < 0) {
      g_host->sink_free(converted);
      return;
    }
    size_t len = 0;
    const char* text = g_host->sink_get_text(converted, &len);
    rapidjson::Document d;
    d.Parse(json.data(), json.size());
    rapidjson::Value meta(rapidjson::kObjectType);
    if (r == 1 && text != nullptr) {
      meta.AddMember(
          "converted",
          rapidjson::Value(text, static_cast<rapidjson::SizeType>(len), d.GetAllocator()),
          d.GetAllocator());
    } else {
      meta.AddMember("converted", rapidjson::Value(), d.GetAllocator());
    }
    g_host->sink_free(converted);
    d.RemoveMember("userDefinedMetadata");
    d.AddMember("userDefinedMetadata", meta, d.GetAllocator());
    json = write(d);
  }
  g_host->sink_set_text(out, json.data(), json.size());
  if (!m->has_weight_data) return;
  uint64_t total =
      m->weight_bytes > h->truncate_weights ? m->weight_bytes - h->truncate_weights : 0;
  uint64_t done = 0;
  call->progress(call->host_context, 0, total);
  for (size_t i = 0; i < m->blobs.size(); ++i) {
    if (h->fail_load_after >= 0 && i == static_cast<size_t>(h->fail_load_after)) {
      g_host->status_set(st, h->fail_code, h->fail_retryable ? 1 : 0, "testmem: load failed midway",
                         27);
      return;
    }
    const Blob& b = *m->blobs[i];
    uint64_t size = b.size();
    if (i + 1 == m->blobs.size())
      size = size > h->truncate_weights ? size - h->truncate_weights : 0;
    stowage_buffer out_buf{};
    if (b.own) {
      out_buf = own_buffer(b.own, size);
    } else if (h->copy_buffers) {
      auto copy = std::make_shared<const std::vector<uint8_t>>(b.data(), b.data() + b.size());
      out_buf = own_buffer(copy, size);
    } else {
      g_host->buffer_share(&b.host, &out_buf);
      out_buf.size = size;
    }
    if (!h->put_buffers) {
      g_host->sink_add_buffer(out, &out_buf);
    } else if (g_host->sink_put_buffer(out, i, &out_buf) != 0) {
      static constexpr char kMsg[] = "testmem: the host refused a weight buffer";
      g_host->status_set(st, STOWAGE_CANCELLED, 0, kMsg, sizeof kMsg - 1);
      return;
    }
    done += size;
    call->progress(call->host_context, done, total);
  }
}

void tm_list(stowage_handler* h, const stowage_call* call, stowage_sink* out, stowage_status* st) {
  Enter enter(h, "list", call, st);
  if (!enter.ok()) return;
  std::lock_guard<std::mutex> lock(g_mu);
  for (const auto& [key, m] : store()) {
    if (key.rfind(h->key, 0) != 0) continue;
    std::string url = std::string(kScheme) + "://" + key;
    std::string info = info_json(*m);
    g_host->sink_add_model(out, url.data(), url.size(), info.data(), info.size());
  }
}

void tm_remove(stowage_handler* h, const stowage_call* call, stowage_sink* out,
               stowage_status* st) {
  Enter enter(h, "remove", call, st);
  if (!enter.ok()) return;
  std::shared_ptr<Model> m;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    auto it = store().find(h->key);
    if (it == store().end()) {
      fail(st, STOWAGE_NOT_FOUND, std::string(kScheme) + ": no model at '" + h->url + "'");
      return;
    }
    m = it->second;
    store().erase(it);
  }
  std::string info = info_json(*m);
  g_host->sink_set_text(out, info.data(), info.size());
}

const stowage_ops kOps = {sizeof(stowage_ops), 0,      tm_open, tm_close, tm_save, tm_load, tm_list,
                          tm_remove,           nullptr};
const char* const kSchemes[] = {TP_SCHEME};
const stowage_plugin_desc kDesc = {sizeof(stowage_plugin_desc),
                                   STOWAGE_ABI_MAJOR,
                                   STOWAGE_ABI_MINOR,
                                   1,
                                   TP_NAME,
                                   "1.2.3",
                                   kSchemes,
                                   STOWAGE_CAP_LOAD | STOWAGE_CAP_SAVE | STOWAGE_CAP_LIST |
                                       STOWAGE_CAP_REMOVE | STOWAGE_CAP_ZERO_COPY
#ifdef TESTMEM_SINGLE_THREADED
                                       | STOWAGE_CAP_SINGLE_THREADED
#endif
                                   ,
                                   &kOps,
                                   nullptr};

}  // namespace

extern "C" __attribute__((visibility("default"))) const stowage_plugin_desc*
stowage_plugin_entry_v1(const stowage_host_api* host) {
  static_assert(std::is_same_v<decltype(&stowage_plugin_entry_v1), stowage_entry_fn>);
  g_entry_calls.fetch_add(1);
  // Widens the window in which concurrent first uses could race.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  g_host = host;
  return &kDesc;
}
