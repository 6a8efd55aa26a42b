// Nested URLs: the chain of opens per thread and the host->nested_*
// services (see nested_internal.hpp and abi.h). Nothing here may throw into
// a plugin: every service catches and sets the plugin's status.
#include <chrono>
#include <cstddef>
#include <new>
#include <optional>
#include <type_traits>
#include <vector>

#include "host_api_internal.hpp"
#include "model_stream_internal.hpp"
#include "nested_internal.hpp"
#include "stowage/error.hpp"
#include "stowage/management.hpp"
#include "stowage/model_json.hpp"
#include "stowage/registry.hpp"

namespace stowage::host {
namespace {

struct NestLink {
  Registry* registry;
  std::string requested;
  std::string resolved;
  const void* single_threaded_plugin;
};

// The URLs being opened on this thread, outermost first.
thread_local std::vector<NestLink> t_chain;

std::string describe_chain(const std::vector<NestLink>& chain, const NestLink& next) {
  std::string out;
  auto add = [&](const NestLink& link) {
    if (!out.empty()) out += " -> ";
    out += link.requested;
    if (link.resolved != link.requested) out += " (= " + link.resolved + ")";
  };
  for (const NestLink& link : chain) add(link);
  add(next);
  return out;
}

int32_t fail(stowage_status* st, ErrorCode code, std::string_view message) noexcept {
  host_api()->status_set(st, static_cast<int32_t>(code), 0, message.data(), message.size());
  return static_cast<int32_t>(code);
}

// Runs body, turning what it throws into st (never retryable: see abi.h).
template <class Fn>
int32_t guarded(stowage_status* st, Fn&& body) noexcept {
  try {
    body();
    return STOWAGE_OK;
  } catch (const Error& e) {
    return fail(st, e.code(), e.what());
  } catch (const std::bad_alloc&) {
    return fail(st, ErrorCode::kResourceExhausted, "out of memory in a nested URL call");
  } catch (const std::exception& e) {
    return fail(st, ErrorCode::kInternal, std::string("nested URL call failed: ") + e.what());
  } catch (...) {
    return fail(st, ErrorCode::kInternal, "nested URL call failed");
  }
}

template <class Field>
bool call_has(const stowage_call* c, size_t offset) {
  return c != nullptr && c->struct_size >= offset + sizeof(Field);
}

// The outer plugin's call, as the context of the inner one: its
// cancellation, deadline, progress and weight-URL converter pass through.
CallContext context_of(const stowage_call* c) {
  CallContext ctx;
  if (c == nullptr) return ctx;
  if (call_has<int64_t>(c, offsetof(stowage_call, deadline_unix_ms)) && c->deadline_unix_ms != 0) {
    ctx.deadline =
        std::chrono::system_clock::time_point(std::chrono::milliseconds(c->deadline_unix_ms));
  }
  if (call_has<void*>(c, offsetof(stowage_call, is_cancelled)) && c->is_cancelled != nullptr) {
    ctx.is_cancelled = [c] { return c->is_cancelled(c->host_context) != 0; };
  }
  if (call_has<void*>(c, offsetof(stowage_call, progress)) && c->progress != nullptr) {
    ctx.on_progress = [c](uint64_t done, uint64_t total) {
      c->progress(c->host_context, done, total);
    };
  }
  if (call_has<uint64_t>(c, offsetof(stowage_call, flags))) {
    ctx.shallow_stat = (c->flags & STOWAGE_CALL_STAT_SHALLOW) != 0;
    ctx.verify_digests = (c->flags & STOWAGE_CALL_SKIP_DIGESTS) == 0;
  }
  if (call_has<uint64_t>(c, offsetof(stowage_call, known_version_size)) &&
      c->known_version != nullptr && c->known_version_size != 0) {
    ctx.known_version.assign(c->known_version, static_cast<size_t>(c->known_version_size));
  }
  if (call_has<void*>(c, offsetof(stowage_call, convert_weight_url)) &&
      c->convert_weight_url != nullptr) {
    ctx.weight_url_converter = [c](std::string_view path) -> std::optional<std::string> {
      stowage_sink out(stowage_sink::Kind::kText);
      stowage_status st;
      int32_t r = c->convert_weight_url(c->host_context, path.data(), path.size(), &out, &st);
      if (r == 0) return std::nullopt;
      if (r < 0) {
        if (st.failed) throw Error(st.code, st.message, st.retryable);
        throw Error(ErrorCode::kInternal,
                    "the weight URL converter failed for \"" + std::string(path) + "\"");
      }
      return out.text.value_or(std::string());
    };
  }
  return ctx;
}

void require(const stowage_nested* nested) {
  if (nested == nullptr || !nested->handler) {
    throw Error(ErrorCode::kInvalidArgument, "a nested URL call got a NULL handle");
  }
}

// The artifacts JSON a load sink accepts for `a`: its manifest when it has
// one (its buffers are one per path), else the flat specs.
std::string load_json(const ModelArtifacts& a) {
  if (a.weights_manifest) {
    return write_model_json(a, *a.weights_manifest, ModelJsonLayout::kTfjsHttp);
  }
  return artifacts_to_json(a);
}

// What nested_load hands out: the C struct first, so the pointer the
// plugin gets back is the holder's.
struct LoadedRest {
  std::string json;
  WeightData data;
  std::optional<LentBuffers> lent;
};
struct LoadedHolder {
  stowage_artifacts c;
  LoadedRest* rest;
};
static_assert(std::is_standard_layout_v<LoadedHolder>);

// A Buffer over a buffer the plugin lends for one call: a host reference
// comes back without a copy, anything else is copied (it is only borrowed).
Buffer borrow(const stowage_buffer& b) {
  stowage_buffer owned{};
  host_api()->buffer_share(&b, &owned);
  if (owned.release == nullptr && b.size != 0) throw std::bad_alloc();
  return adopt_plugin_buffer(&owned, nullptr);
}

ModelArtifacts artifacts_of(const stowage_artifacts* a, const std::string& url) {
  if (a == nullptr || a->struct_size < offsetof(stowage_artifacts, weight_bytes) + 8 ||
      (a->json == nullptr && a->json_size != 0) ||
      (a->buffers == nullptr && a->buffer_count != 0)) {
    throw Error(ErrorCode::kInvalidArgument, "nested save of " + url + ": malformed artifacts");
  }
  ModelArtifacts out =
      parse_model_json(std::string_view(a->json, static_cast<size_t>(a->json_size)), url);
  if (a->has_weight_data == 0) return out;
  WeightData data;
  const bool pull = a->struct_size >= offsetof(stowage_artifacts, source_context) + sizeof(void*) &&
                    a->buffers == nullptr && a->next_buffer != nullptr;
  if (pull) {
    for (;;) {
      stowage_buffer b{};
      stowage_status pulled;
      int32_t r = a->next_buffer(a->source_context, &b, &pulled);
      if (r == 0) break;
      if (r < 0) {
        // The host set the pull's status: it becomes the save's.
        throw Error(pulled.failed ? pulled.code : ErrorCode::kInternal, pulled.message);
      }
      data.push_back(adopt_plugin_buffer(&b, nullptr));
    }
  } else {
    for (uint64_t i = 0; i < a->buffer_count; ++i) data.push_back(borrow(a->buffers[i]));
  }
  out.weight_data = std::move(data);
  return out;
}

}  // namespace

NestScope::NestScope(Registry& registry, std::string_view requested, const std::string& resolved,
                     const void* single_threaded_plugin) {
  NestLink next{&registry, std::string(requested), resolved, single_threaded_plugin};
  for (const NestLink& link : t_chain) {
    if (link.resolved == resolved) {
      throw Error(ErrorCode::kInvalidArgument,
                  "URL '" + next.requested +
                      "' nests itself: each URL below is opened by the one before it: " +
                      describe_chain(t_chain, next));
    }
  }
  if (t_chain.size() + 1 > kMaxNesting) {
    throw Error(ErrorCode::kInvalidArgument,
                "URL '" + t_chain.front().requested + "' nests more than " +
                    std::to_string(kMaxNesting) + " URLs deep: " + describe_chain(t_chain, next));
  }
  if (single_threaded_plugin != nullptr) {
    for (const NestLink& link : t_chain) {
      if (link.single_threaded_plugin != single_threaded_plugin) continue;
      throw Error(ErrorCode::kInvalidArgument,
                  "URL '" + next.requested +
                      "' would re-enter a single-threaded plugin that is still opening an "
                      "outer URL: " +
                      describe_chain(t_chain, next));
    }
  }
  t_chain.push_back(std::move(next));
}

NestScope::~NestScope() { t_chain.pop_back(); }

bool opened_by_wrapper_of(std::string_view url) {
  if (t_chain.empty()) return false;
  const std::string_view outer = t_chain.back().resolved;
  if (outer.size() <= url.size() || outer.substr(outer.size() - url.size()) != url) return false;
  const std::string_view prefix = outer.substr(0, outer.size() - url.size());
  return prefix.size() >= 2 && prefix.back() == '+' && prefix.find("://") == std::string_view::npos;
}

int32_t nested_open(const char* url, size_t url_len, const char* options_json, size_t options_len,
                    stowage_nested** out, stowage_status* st) noexcept {
  if (out != nullptr) *out = nullptr;
  if (out == nullptr) return fail(st, ErrorCode::kInvalidArgument, "nested_open: out is NULL");
  if (url == nullptr) return fail(st, ErrorCode::kInvalidArgument, "nested_open: url is NULL");
  if (t_chain.empty()) {
    return fail(st, ErrorCode::kInternal,
                "nested_open of '" + std::string(url, url_len) +
                    "' was called outside of the plugin's open (only there does the host know "
                    "which registry the URL belongs to)");
  }
  return guarded(st, [&] {
    std::string_view options = options_json != nullptr && options_len != 0
                                   ? std::string_view(options_json, options_len)
                                   : std::string_view("{}");
    auto nested = std::make_unique<stowage_nested>();
    nested->handler = t_chain.back().registry->open(std::string_view(url, url_len), options);
    *out = nested.release();
  });
}

void nested_close(stowage_nested* nested) noexcept { delete nested; }

int32_t nested_save(stowage_nested* nested, const stowage_artifacts* artifacts,
                    const stowage_call* call, stowage_sink* result, stowage_status* st) noexcept {
  return guarded(st, [&] {
    require(nested);
    ModelArtifacts a = artifacts_of(artifacts, nested->handler->url());
    SaveResult r = nested->handler->save(a, context_of(call));
    if (result != nullptr && r.responses) {
      host_api()->sink_set_text(result, r.responses->data(), r.responses->size());
    }
  });
}

int32_t nested_load(stowage_nested* nested, const stowage_call* call, stowage_artifacts** out,
                    stowage_status* st) noexcept {
  if (out != nullptr) *out = nullptr;
  return guarded(st, [&] {
    require(nested);
    if (out == nullptr) throw Error(ErrorCode::kInvalidArgument, "nested_load: out is NULL");
    // Validated and digest-checked like any load (load_model; a handler that
    // cannot load keeps its own message) unless the call says
    // STOWAGE_CALL_SKIP_DIGESTS.
    IOHandler& handler = *nested->handler;
    ModelArtifacts a =
        handler.can_load() ? load_model(handler, context_of(call)) : handler.load(context_of(call));
    auto rest = std::make_unique<LoadedRest>();
    rest->json = load_json(a);
    if (a.weight_data) rest->data = std::move(*a.weight_data);
    rest->lent.emplace(&rest->data);
    auto holder = std::make_unique<LoadedHolder>();
    holder->c = stowage_artifacts{};
    holder->c.struct_size = sizeof(stowage_artifacts);
    holder->c.has_weight_data = a.weight_data ? 1 : 0;
    holder->c.json = rest->json.c_str();
    holder->c.json_size = rest->json.size();
    holder->c.buffers = rest->lent->size() != 0 ? rest->lent->data() : nullptr;
    holder->c.buffer_count = rest->lent->size();
    holder->c.weight_bytes = total_size(rest->data);
    holder->rest = rest.release();
    *out = &holder.release()->c;
  });
}

int32_t nested_load_stream(stowage_nested* nested, const stowage_call* call,
                           const stowage_load_consumer* consumer, stowage_status* st) noexcept {
  return guarded(st, [&] {
    require(nested);
    if (consumer == nullptr ||
        consumer->struct_size < offsetof(stowage_load_consumer, queue_bytes) + sizeof(uint64_t) ||
        consumer->on_artifacts == nullptr || consumer->on_buffer == nullptr) {
      throw Error(ErrorCode::kInvalidArgument,
                  "nested_load_stream of " + nested->handler->url() +
                      ": the consumer is NULL, too small or lacks a callback");
    }
    IOHandler& handler = *nested->handler;
    // A handler that cannot load keeps its own message, as in nested_load.
    if (!handler.can_load()) handler.load(context_of(call));
    const std::string stopped = "the load of " + handler.url() + " was stopped by its consumer";
    const uint64_t queue =
        consumer->queue_bytes != 0 ? consumer->queue_bytes : host::ModelStream::kDefaultLimit;
    load_model_streaming(
        handler,
        [&](const ModelArtifacts& meta) {
          const std::string json = load_json(meta);
          if (consumer->on_artifacts(consumer->context, json.data(), json.size()) != 0) {
            throw Error(ErrorCode::kCancelled, stopped);
          }
        },
        [&](uint64_t index, const Buffer& b) {
          stowage_buffer out = lend_owned(b);
          if (consumer->on_buffer(consumer->context, index, &out) != 0) {
            throw Error(ErrorCode::kCancelled, stopped);
          }
        },
        context_of(call), queue);
  });
}

void nested_artifacts_free(stowage_artifacts* artifacts) noexcept {
  if (artifacts == nullptr) return;
  auto* holder = reinterpret_cast<LoadedHolder*>(artifacts);
  delete holder->rest;
  delete holder;
}

int32_t nested_list(stowage_nested* nested, const stowage_call* call, stowage_sink* out,
                    stowage_status* st) noexcept {
  return guarded(st, [&] {
    require(nested);
    if (out == nullptr) throw Error(ErrorCode::kInvalidArgument, "nested_list: out is NULL");
    std::vector<ListedModel> models = nested->handler->list(context_of(call));
    if (out->kind == stowage_sink::Kind::kList) {
      for (const ListedModel& m : models) {
        const std::string info = info_to_json(m.info);
        host_api()->sink_add_model(out, m.url.data(), m.url.size(), info.data(), info.size());
      }
      return;
    }
    std::string text = "[";
    for (const ListedModel& m : models) {
      if (text.size() > 1) text += ',';
      text += "{\"url\":" + json::quote(m.url) + ",\"info\":" + info_to_json(m.info) + "}";
    }
    text += ']';
    host_api()->sink_set_text(out, text.data(), text.size());
  });
}

int32_t nested_remove(stowage_nested* nested, const stowage_call* call, stowage_sink* out,
                      stowage_status* st) noexcept {
  return guarded(st, [&] {
    require(nested);
    const std::string info = info_to_json(nested->handler->remove(context_of(call)));
    host_api()->sink_set_text(out, info.data(), info.size());
  });
}

int32_t nested_stat(stowage_nested* nested, const stowage_call* call, stowage_sink* out,
                    stowage_status* st) noexcept {
  return guarded(st, [&] {
    require(nested);
    ModelStat s = nested->handler->stat(context_of(call));
    if (s.unchanged) {
      const std::string text = "{\"version\":" + json::quote(s.version) + ",\"unchanged\":true}";
      host_api()->sink_set_text(out, text.data(), text.size());
      return;
    }
    const std::string text = "{\"modelJson\":" + load_json(s.model) +
                             ",\"version\":" + json::quote(s.version) +
                             ",\"info\":" + info_to_json(s.info) + "}";
    host_api()->sink_set_text(out, text.data(), text.size());
  });
}

}  // namespace stowage::host
