// fault:// — a decorator plugin that wraps another URL, opened through the
// host's registry (in the style of LevelDB's EnvWrapper and SQLite's
// vfstrace), and injects faults into the calls the host makes through it: failures of the Nth
// call, retryable or not, short reads, a model JSON cut short, slow
// responses and a failure in the middle of a save. For testing how the host
// and a plugin behave when things go wrong; never for production data.
//
// USAGE
//
//   fault://<wrapped URL>                    e.g. fault://file:///srv/m,
//                                            fault://s3://bucket/m?endpoint=...
//   options:
//     "inner_options"  the wrapped URL's own options ({} by default), merged
//                      over the host's defaults for its scheme.
//     "faults"         rules, each hitting calls of one "op" (save, load,
//                      list, remove, stat, or any: the default) from the "nth"
//                      (1-based, counted per handler and op) for "count"
//                      calls (1; 0 is every call from nth on):
//         "error": "unavailable"   fail with that code ("retryable" defaults
//                                  to true for unavailable only; "message";
//                                  "when": "before" the plugin runs, the
//                                  default, or "after" it succeeded)
//         "abort_after_bytes": n   forward, and stop the plugin (its
//                                  is_cancelled says yes) at its first
//                                  progress report of n bytes or more; the
//                                  call fails with "error" (unavailable,
//                                  retryable) and the message says whether
//                                  the plugin stopped or had committed
//         "delay_ms": d            sleep before forwarding, until the
//                                  call's deadline at most
//         "stall_ms": d            sleep inside the plugin's first progress
//                                  report, until the deadline at most
//         "short_read": k          load: cut k bytes off weight buffer
//                                  "buffer" (0-based, default 0)
//         "truncate_json": k       load: cut k bytes off the model JSON
//     "trace"          a file that gets one line per call:
//                      "<op> call=<n> url=<url> forwarded=<0|1>
//                       injected=<rules hit> [stalled_at=<done>/<total>]
//                       [aborted_at=<done>] result=<CODE>"
//
//   The manifest is not installed in the plugin folder: a host names it in
//   its config ("plugins": ["<libdir>/stowage/testing/stowage-fault.json"])
//   or through Registry::add_plugin, so it never loads by accident. The
//   wrapped URL is opened through the host's registry (host->nested_open,
//   ABI 1.1): its scheme alone picks the plugin, and the host's "allow"
//   list, SHA-256 pins, aliases, defaults and retry policy apply to it as
//   to any URL the host opens. fault:// loads no code itself, and a host
//   without nested URLs (ABI 1.0) does not get it started. A URL that nests
//   itself (through aliases) or more than 8 deep fails to open.
//   Capabilities: load, save, list, remove and stat are declared; an operation
//   the wrapped URL's scheme lacks fails with its UNIMPLEMENTED. A load
//   passes through the decorator whole (never streamed).
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "fault_options_internal.hpp"
#include "stowage/abi.h"
#include "stowage/error.hpp"
#include "stowage/nested_url.hpp"

namespace stowage::fault {
namespace {

using Clock = std::chrono::system_clock;

const stowage_host_api* g_host = nullptr;

void set_status(stowage_status* st, int32_t code, bool retryable, const std::string& msg) {
  g_host->status_set(st, code, retryable ? 1 : 0, msg.data(), msg.size());
}

// What one forwarded load asks of the decorator, and what it did.
struct CallHooks {
  std::optional<uint64_t> short_read;  // bytes cut off buffer `short_buffer`
  uint64_t short_buffer = 0;
  std::optional<uint64_t> truncate_json;  // bytes cut off the model JSON
  uint64_t buffers_seen = 0;
  bool short_read_done = false;
};

struct FaultHandler {
  std::string url;
  std::string inner_url;
  std::optional<plugin::NestedUrl> inner;
  FaultOptions options;
  std::mutex mu;  // counters
  uint64_t calls[5] = {0, 0, 0, 0, 0};
  uint64_t all_calls = 0;
};

FaultHandler* of(stowage_handler* h) { return reinterpret_cast<FaultHandler*>(h); }

void trace(const FaultHandler& h, const std::string& line) {
  if (h.options.trace.empty()) return;
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  std::ofstream out(h.options.trace, std::ios::app);
  out << line << '\n';
}

// The stowage_call the wrapped plugin gets: the host's, with progress and
// cancellation passing through the active rules first.
struct Forwarded {
  const stowage_call* host_call = nullptr;
  stowage_call call{};
  const FaultRule* abort_rule = nullptr;
  uint64_t stall_ms = 0;
  std::atomic<bool> stalled{false};
  std::atomic<bool> aborted{false};
  std::atomic<uint64_t> done{0};
  std::atomic<uint64_t> aborted_at{0};
  std::atomic<uint64_t> stalled_at{0};
  std::atomic<uint64_t> stalled_of{0};

  bool host_cancelled() const {
    return host_call->is_cancelled != nullptr &&
           host_call->is_cancelled(host_call->host_context) != 0;
  }

  // Sleeps for ms, cut short by the call's deadline or cancellation.
  void sleep(uint64_t ms) const {
    auto until = Clock::now() + std::chrono::milliseconds(ms);
    if (host_call->deadline_unix_ms != 0) {
      auto deadline = Clock::time_point(std::chrono::milliseconds(host_call->deadline_unix_ms));
      until = std::min(until, deadline);
    }
    while (Clock::now() < until && !host_cancelled()) {
      std::this_thread::sleep_for(
          std::min<Clock::duration>(until - Clock::now(), std::chrono::milliseconds(5)));
    }
  }

  static int32_t is_cancelled(void* ctx) {
    auto* self = static_cast<Forwarded*>(ctx);
    if (self->aborted.load()) return 1;
    return self->host_cancelled() ? 1 : 0;
  }

  // Both fire at a report, whether from the middle of a transfer or its
  // last one: what the plugin does next (stop, or commit and succeed) is
  // what a test looks at.
  static void progress(void* ctx, uint64_t done, uint64_t total) {
    auto* self = static_cast<Forwarded*>(ctx);
    uint64_t seen = self->done.load();
    while (done > seen && !self->done.compare_exchange_weak(seen, done)) {
    }
    if (self->abort_rule != nullptr && done >= *self->abort_rule->abort_after_bytes &&
        !self->aborted.exchange(true)) {
      self->aborted_at = done;
    }
    if (self->stall_ms > 0 && !self->stalled.exchange(true)) {
      self->stalled_at = done;
      self->stalled_of = total;
      self->sleep(self->stall_ms);
    }
    if (self->host_call->progress != nullptr) {
      self->host_call->progress(self->host_call->host_context, done, total);
    }
  }

  static int32_t convert(void* ctx, const char* path, size_t len, stowage_sink* out,
                         stowage_status* st) {
    auto* self = static_cast<Forwarded*>(ctx);
    if (self->host_call->convert_weight_url == nullptr) return 0;
    return self->host_call->convert_weight_url(self->host_call->host_context, path, len, out, st);
  }

  explicit Forwarded(const stowage_call* host) : host_call(host) {
    call.struct_size = sizeof call;
    call.deadline_unix_ms = host->deadline_unix_ms;
    call.host_context = this;
    call.is_cancelled = &Forwarded::is_cancelled;
    call.progress = &Forwarded::progress;
    call.convert_weight_url = &Forwarded::convert;
    // The caller's STOWAGE_CALL_* bits (a shallow stat, skipped digests)
    // reach the wrapped URL unchanged.
    if (host->struct_size >= offsetof(stowage_call, flags) + sizeof host->flags) {
      call.flags = host->flags;
    }
    // So is a revalidation's known version (ABI 1.3): a wrapped store that
    // can answer "unchanged" does so through the wrapper too.
    if (host->struct_size >=
        offsetof(stowage_call, known_version_size) + sizeof host->known_version_size) {
      call.known_version = host->known_version;
      call.known_version_size = host->known_version_size;
    }
  }
};

std::string default_message(const FaultRule& r, Op op, uint64_t n, const std::string& url) {
  return std::string("fault: injected ") + code_name(*r.error) + " into " + op_name(op) + " call " +
         std::to_string(n) + " of '" + url + "' (faults[" + std::to_string(r.index) + "])";
}

// One call through the wrapper. `forward(call, hooks)` runs the call on the
// wrapped URL with the call it is given and returns its stowage_code (a
// load also applies the hooks).
template <typename F>
void run(stowage_handler* handle, Op op, const stowage_call* host_call, stowage_status* st,
         F&& forward) {
  FaultHandler& h = *of(handle);
  uint64_t n = 0;
  uint64_t all = 0;
  {
    std::lock_guard<std::mutex> lock(h.mu);
    n = ++h.calls[static_cast<int>(op)];
    all = ++h.all_calls;
  }
  std::vector<const FaultRule*> hit;
  for (const FaultRule& r : h.options.faults) {
    if (r.hits(op, n, all)) hit.push_back(&r);
  }
  std::string injected;
  auto note = [&](const std::string& what) { injected += (injected.empty() ? "" : ",") + what; };

  Forwarded fwd(host_call);
  CallHooks hooks;
  const FaultRule* before_error = nullptr;
  const FaultRule* after_error = nullptr;
  uint64_t delay_ms = 0;
  for (const FaultRule* r : hit) {
    std::string tag = "faults[" + std::to_string(r->index) + "]:";
    delay_ms += r->delay_ms;
    if (r->delay_ms > 0) note(tag + "delay");
    if (r->stall_ms > 0) {
      fwd.stall_ms += r->stall_ms;
      note(tag + "stall");
    }
    if (r->short_read) {
      hooks.short_read = r->short_read;
      hooks.short_buffer = r->buffer;
      note(tag + "short_read");
    }
    if (r->truncate_json) {
      hooks.truncate_json = r->truncate_json;
      note(tag + "truncate_json");
    }
    if (r->abort_after_bytes) {
      if (fwd.abort_rule == nullptr) fwd.abort_rule = r;
    } else if (r->error && r->after) {
      if (after_error == nullptr) after_error = r;
    } else if (r->error) {
      if (before_error == nullptr) before_error = r;
    }
  }
  if (op == Op::kLoad || op == Op::kSave) {
    // Only load and save report progress; a rule on it elsewhere is inert.
  } else {
    fwd.abort_rule = nullptr;
  }

  auto finish = [&](bool forwarded, int32_t result) {
    trace(h, std::string(op_name(op)) + " call=" + std::to_string(n) + " url=" + h.url +
                 " forwarded=" + (forwarded ? "1" : "0") +
                 " injected=" + (injected.empty() ? "none" : injected) +
                 (fwd.stalled.load() ? " stalled_at=" + std::to_string(fwd.stalled_at.load()) +
                                           "/" + std::to_string(fwd.stalled_of.load())
                                     : std::string()) +
                 (fwd.aborted.load() ? " aborted_at=" + std::to_string(fwd.aborted_at.load())
                                     : std::string()) +
                 " result=" + code_name(result));
  };

  if (delay_ms > 0) fwd.sleep(delay_ms);
  if (before_error != nullptr) {
    note("faults[" + std::to_string(before_error->index) + "]:error");
    std::string msg = before_error->message.empty() ? default_message(*before_error, op, n, h.url)
                                                    : before_error->message;
    set_status(st, *before_error->error, before_error->retryable, msg);
    finish(false, *before_error->error);
    return;
  }

  const int32_t inner_code = forward(&fwd.call, hooks);
  const bool inner_failed = inner_code != STOWAGE_OK;
  int32_t result = inner_code;
  if (fwd.abort_rule != nullptr && fwd.aborted.load()) {
    const FaultRule& r = *fwd.abort_rule;
    note("faults[" + std::to_string(r.index) + "]:abort");
    std::string how = inner_failed ? std::string("it stopped with ") + code_name(inner_code)
                                   : std::string("it did not stop and reported success");
    std::string msg = r.message.empty()
                          ? std::string("fault: injected ") + code_name(*r.error) + " into " +
                                op_name(op) + " call " + std::to_string(n) + " of '" + h.url +
                                "' after " + std::to_string(fwd.aborted_at.load()) +
                                " bytes of progress (faults[" + std::to_string(r.index) + "]); " +
                                how
                          : r.message;
    set_status(st, *r.error, r.retryable, msg);
    result = *r.error;
  } else if (!inner_failed && hooks.short_read && !hooks.short_read_done) {
    set_status(st, STOWAGE_INTERNAL, false,
               "fault: short_read of buffer " + std::to_string(hooks.short_buffer) + " of '" +
                   h.url + "' did not happen: the load of '" + h.inner_url + "' had only " +
                   std::to_string(hooks.buffers_seen) + " weight buffers");
    result = STOWAGE_INTERNAL;
  } else if (!inner_failed && after_error != nullptr) {
    note("faults[" + std::to_string(after_error->index) + "]:error_after");
    std::string msg = after_error->message.empty()
                          ? default_message(*after_error, op, n, h.url) + ", after '" +
                                h.inner_url + "' had succeeded"
                          : after_error->message;
    set_status(st, *after_error->error, after_error->retryable, msg);
    result = *after_error->error;
  }
  finish(true, result);
}

void op_open(const char* url, size_t url_len, const char* options, size_t options_len,
             stowage_handler** out, stowage_status* st) {
  if (out != nullptr) *out = nullptr;
  try {
    auto h = std::make_unique<FaultHandler>();
    h->url.assign(url != nullptr ? url : "", url != nullptr ? url_len : 0);
    h->options = parse_fault_options(
        options != nullptr ? std::string_view(options, options_len) : "{}", h->url);
    constexpr std::string_view kPrefix = "fault://";
    if (h->url.compare(0, kPrefix.size(), kPrefix) != 0) {
      throw Error(ErrorCode::kInvalidArgument,
                  "'" + h->url + "' is not a fault:// URL (fault://<URL of the wrapped plugin>)");
    }
    h->inner_url = h->url.substr(kPrefix.size());
    auto sep = h->inner_url.find("://");
    if (sep == std::string::npos || sep == 0) {
      throw Error(ErrorCode::kInvalidArgument,
                  "'" + h->url +
                      "' does not wrap a URL: write fault://<scheme>://..., e.g. "
                      "fault://file:///srv/m");
    }
    // Through the host's registry: its allow-list, pins and retry policy
    // cover the wrapped URL (and it refuses a URL that nests itself).
    h->inner.emplace(h->inner_url, h->options.inner_options);
    if (out == nullptr) throw Error(ErrorCode::kInvalidArgument, "open: out is NULL");
    *out = reinterpret_cast<stowage_handler*>(h.release());
  } catch (const Error& e) {
    set_status(st, static_cast<int32_t>(e.code()), e.retryable(), e.what());
  } catch (const std::exception& e) {
    set_status(st, STOWAGE_INTERNAL, false, std::string("fault: ") + e.what());
  } catch (...) {
    set_status(st, STOWAGE_INTERNAL, false, "fault: unknown exception");
  }
}

void op_close(stowage_handler* handle) { delete of(handle); }

template <typename F>
void guarded(stowage_status* st, F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    set_status(st, STOWAGE_INTERNAL, false, std::string("fault: ") + e.what());
  } catch (...) {
    set_status(st, STOWAGE_INTERNAL, false, "fault: unknown exception");
  }
}

void op_save(stowage_handler* handle, const stowage_artifacts* artifacts, const stowage_call* call,
             stowage_sink* result, stowage_status* st) {
  guarded(st, [&] {
    FaultHandler& h = *of(handle);
    run(handle, Op::kSave, call, st, [&](const stowage_call* c, CallHooks&) {
      return g_host->nested_save(h.inner->raw(), artifacts, c, result, st);
    });
  });
}

// Hands the wrapped load on to the host's sink, cutting bytes where the
// hooks say: the buffers are the host's own references, shared on without
// a copy (a short read shares a narrower view of the same bytes).
int32_t forward_load(FaultHandler& h, const stowage_call* c, stowage_sink* out, stowage_status* st,
                     CallHooks& hooks) {
  stowage_artifacts* loaded = nullptr;
  const int32_t code = g_host->nested_load(h.inner->raw(), c, &loaded, st);
  if (code != STOWAGE_OK) return code;
  std::unique_ptr<stowage_artifacts, void (*)(stowage_artifacts*)> held(
      loaded, g_host->nested_artifacts_free);
  size_t json_len = static_cast<size_t>(loaded->json_size);
  if (hooks.truncate_json) json_len -= std::min<uint64_t>(json_len, *hooks.truncate_json);
  g_host->sink_set_text(out, loaded->json, json_len);
  hooks.buffers_seen = loaded->buffer_count;
  for (uint64_t i = 0; i < loaded->buffer_count; ++i) {
    stowage_buffer view = loaded->buffers[i];
    if (hooks.short_read && i == hooks.short_buffer) {
      view.size -= std::min<uint64_t>(view.size, *hooks.short_read);
      hooks.short_read_done = true;
    }
    stowage_buffer mine{};
    g_host->buffer_share(&view, &mine);
    g_host->sink_add_buffer(out, &mine);
  }
  return STOWAGE_OK;
}

void op_load(stowage_handler* handle, const stowage_call* call, stowage_sink* out,
             stowage_status* st) {
  guarded(st, [&] {
    FaultHandler& h = *of(handle);
    run(handle, Op::kLoad, call, st, [&](const stowage_call* c, CallHooks& hooks) {
      return forward_load(h, c, out, st, hooks);
    });
  });
}

void op_list(stowage_handler* handle, const stowage_call* call, stowage_sink* out,
             stowage_status* st) {
  guarded(st, [&] {
    FaultHandler& h = *of(handle);
    run(handle, Op::kList, call, st, [&](const stowage_call* c, CallHooks&) {
      return g_host->nested_list(h.inner->raw(), c, out, st);
    });
  });
}

void op_remove(stowage_handler* handle, const stowage_call* call, stowage_sink* out,
               stowage_status* st) {
  guarded(st, [&] {
    FaultHandler& h = *of(handle);
    run(handle, Op::kRemove, call, st, [&](const stowage_call* c, CallHooks&) {
      return g_host->nested_remove(h.inner->raw(), c, out, st);
    });
  });
}

// A stat passes the caller's shallow bit and known version (ABI 1.3) on, so
// a revalidation through the decorator is the wrapped store's own.
void op_stat(stowage_handler* handle, const stowage_call* call, stowage_sink* out,
             stowage_status* st) {
  guarded(st, [&] {
    FaultHandler& h = *of(handle);
    run(handle, Op::kStat, call, st, [&](const stowage_call* c, CallHooks&) {
      return g_host->nested_stat(h.inner->raw(), c, out, st);
    });
  });
}

}  // namespace
}  // namespace stowage::fault

extern "C" __attribute__((visibility("default"))) const stowage_plugin_desc*
stowage_plugin_entry_v1(const stowage_host_api* host) {
  using namespace stowage::fault;
  if (host == nullptr || host->abi_major != STOWAGE_ABI_MAJOR) return nullptr;
  stowage::plugin::use_host(host);
  g_host = &stowage::plugin::host();
  if (!stowage::plugin::nested_urls_available()) {
    static constexpr char kWhy[] =
        "fault: this host offers no nested URLs (ABI 1.1 nested_open), which fault:// wraps "
        "other URLs with";
    if (host->log != nullptr) host->log(2, kWhy, sizeof kWhy - 1);
    return nullptr;
  }
  static const char* const kSchemes[] = {"fault"};
  static stowage_ops ops{};
  ops.struct_size = sizeof ops;
  ops.open = &op_open;
  ops.close = &op_close;
  ops.save = &op_save;
  ops.load = &op_load;
  ops.list = &op_list;
  ops.remove = &op_remove;
  ops.stat = &op_stat;
  static stowage_plugin_desc desc{};
  desc.struct_size = sizeof desc;
  desc.abi_major = STOWAGE_ABI_MAJOR;
  desc.abi_minor = STOWAGE_ABI_MINOR;
  desc.scheme_count = 1;
  desc.name = "fault";
  desc.version = STOWAGE_PLUGIN_VERSION;
  desc.schemes = kSchemes;
  desc.capabilities = STOWAGE_CAP_LOAD | STOWAGE_CAP_SAVE | STOWAGE_CAP_LIST | STOWAGE_CAP_REMOVE |
                      STOWAGE_CAP_STAT;
  desc.ops = &ops;
  return &desc;
}
