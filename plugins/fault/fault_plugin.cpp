// fault:// — a decorator plugin that wraps another plugin's function table
// (in the style of LevelDB's EnvWrapper and SQLite's vfstrace) and injects
// faults into the calls the host makes through it: failures of the Nth
// call, retryable or not, short reads, a model JSON cut short, slow
// responses and a failure in the middle of a save. For testing how the host
// and a plugin behave when things go wrong; never for production data.
//
// USAGE
//
//   fault://<URL of the wrapped plugin>      e.g. fault://file:///srv/m,
//                                            fault://s3://bucket/m?endpoint=...
//   options:
//     "inner"          the plugin to wrap: a name ("file": its manifest
//                      stowage-file.json in <libdir>/stowage/plugins) or the
//                      path of its manifest or library. Required: the
//                      options (host config or API), never the URL, pick
//                      the code that loads.
//     "inner_options"  the wrapped plugin's own options ({} by default).
//     "faults"         rules, each hitting calls of one "op" (save, load,
//                      list, remove, or any: the default) from the "nth"
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
//   wrapped library is loaded by this plugin, not by the registry: the
//   config's "allow" list and SHA-256 pins do not reach it, which is why
//   only options may name it.
//   Capabilities: load, save, list and remove are declared; an operation
//   the wrapped plugin lacks fails with UNIMPLEMENTED. The wrapped plugin's
//   single-threaded flag is honoured by serialising calls into it.
//   Load the wrapped plugin only through fault:// in one process: when the
//   host loads the same library directly, the library's services become the
//   host's again and short_read / truncate_json fail with INTERNAL instead
//   of silently doing nothing.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "fault_options.hpp"
#include "inner_plugin.hpp"
#include "stowage/abi.h"
#include "stowage/error.hpp"

namespace stowage::fault {
namespace {

using Clock = std::chrono::system_clock;

const stowage_host_api* g_host = nullptr;

void set_status(stowage_status* st, int32_t code, bool retryable, const std::string& msg) {
  g_host->status_set(st, code, retryable ? 1 : 0, msg.data(), msg.size());
}

struct FaultHandler {
  std::string url;
  std::string inner_url;
  const InnerPlugin* inner = nullptr;
  stowage_handler* inner_handle = nullptr;
  FaultOptions options;
  std::mutex mu;  // counters
  uint64_t calls[4] = {0, 0, 0, 0};
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
  }
};

std::string default_message(const FaultRule& r, Op op, uint64_t n, const std::string& url) {
  return std::string("fault: injected ") + code_name(*r.error) + " into " + op_name(op) + " call " +
         std::to_string(n) + " of '" + url + "' (faults[" + std::to_string(r.index) + "])";
}

// One call through the wrapper. `forward` calls the wrapped plugin with the
// call it is given.
template <typename F>
void run(stowage_handler* handle, Op op, const stowage_call* host_call, stowage_sink* sink,
         stowage_status* st, F&& forward) {
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

  CallHooks seen;
  {
    CallWatch watch(sink, st, hooks);
    {
      std::unique_lock<std::mutex> serial(h.inner->serial, std::defer_lock);
      if (h.inner->capabilities & STOWAGE_CAP_SINGLE_THREADED) serial.lock();
      forward(&fwd.call);
    }
    seen = watch.snapshot();
  }
  const bool inner_failed = seen.status_seen && seen.status_code != STOWAGE_OK;
  int32_t result = inner_failed ? seen.status_code : STOWAGE_OK;
  if (fwd.abort_rule != nullptr && fwd.aborted.load()) {
    const FaultRule& r = *fwd.abort_rule;
    note("faults[" + std::to_string(r.index) + "]:abort");
    std::string how = inner_failed ? std::string("it stopped with ") + code_name(seen.status_code)
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
  } else if (!inner_failed && hooks.short_read && !seen.short_read_done) {
    set_status(st, STOWAGE_INTERNAL, false,
               "fault: short_read of buffer " + std::to_string(hooks.short_buffer) + " of '" +
                   h.url + "' did not happen: the load handed over " +
                   std::to_string(seen.buffers_seen) +
                   " buffers through the fault plugin's services (is '" + h.inner->name +
                   "' also loaded directly by the host?)");
    result = STOWAGE_INTERNAL;
  } else if (!inner_failed && hooks.truncate_json && !seen.truncate_done) {
    set_status(st, STOWAGE_INTERNAL, false,
               "fault: truncate_json of '" + h.url +
                   "' did not happen: the model JSON did not pass through the fault plugin's "
                   "services (is '" +
                   h.inner->name + "' also loaded directly by the host?)");
    result = STOWAGE_INTERNAL;
  } else if (!inner_failed && after_error != nullptr) {
    note("faults[" + std::to_string(after_error->index) + "]:error_after");
    std::string msg = after_error->message.empty()
                          ? default_message(*after_error, op, n, h.url) + ", after '" +
                                h.inner->name + "' had succeeded"
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
    std::string scheme = h->inner_url.substr(0, sep);
    for (char& c : scheme) {
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
    h->inner = &load_inner(h->options.inner, g_host);
    if (!h->inner->serves(scheme)) {
      throw Error(ErrorCode::kInvalidArgument, "'" + h->url + "': the wrapped plugin '" +
                                                   h->inner->name + "' (" + h->inner->library +
                                                   ") does not serve scheme '" + scheme + "'");
    }
    stowage_handler* inner = nullptr;
    h->inner->ops.open(h->inner_url.c_str(), h->inner_url.size(), h->options.inner_options.c_str(),
                       h->options.inner_options.size(), &inner, st);
    if (inner == nullptr) return;  // the wrapped plugin's status stands
    h->inner_handle = inner;
    if (out == nullptr) {
      h->inner->ops.close(inner);
      throw Error(ErrorCode::kInvalidArgument, "open: out is NULL");
    }
    *out = reinterpret_cast<stowage_handler*>(h.release());
  } catch (const Error& e) {
    set_status(st, static_cast<int32_t>(e.code()), e.retryable(), e.what());
  } catch (const std::exception& e) {
    set_status(st, STOWAGE_INTERNAL, false, std::string("fault: ") + e.what());
  } catch (...) {
    set_status(st, STOWAGE_INTERNAL, false, "fault: unknown exception");
  }
}

void op_close(stowage_handler* handle) {
  FaultHandler* h = of(handle);
  if (h == nullptr) return;
  if (h->inner_handle != nullptr) h->inner->ops.close(h->inner_handle);
  delete h;
}

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

bool unsupported(stowage_handler* handle, bool present, const char* op, stowage_status* st) {
  if (present) return false;
  FaultHandler& h = *of(handle);
  set_status(st, STOWAGE_UNIMPLEMENTED, false,
             std::string(op) + " is not supported for " + h.url + " (plugin '" + h.inner->name +
                 "' has no " + op + ")");
  return true;
}

void op_save(stowage_handler* handle, const stowage_artifacts* artifacts, const stowage_call* call,
             stowage_sink* result, stowage_status* st) {
  guarded(st, [&] {
    FaultHandler& h = *of(handle);
    if (unsupported(handle, h.inner->ops.save != nullptr, "save", st)) return;
    run(handle, Op::kSave, call, result, st, [&](const stowage_call* c) {
      h.inner->ops.save(h.inner_handle, artifacts, c, result, st);
    });
  });
}

void op_load(stowage_handler* handle, const stowage_call* call, stowage_sink* out,
             stowage_status* st) {
  guarded(st, [&] {
    FaultHandler& h = *of(handle);
    if (unsupported(handle, h.inner->ops.load != nullptr, "load", st)) return;
    run(handle, Op::kLoad, call, out, st,
        [&](const stowage_call* c) { h.inner->ops.load(h.inner_handle, c, out, st); });
  });
}

void op_list(stowage_handler* handle, const stowage_call* call, stowage_sink* out,
             stowage_status* st) {
  guarded(st, [&] {
    FaultHandler& h = *of(handle);
    if (unsupported(handle, h.inner->ops.list != nullptr, "list", st)) return;
    run(handle, Op::kList, call, out, st,
        [&](const stowage_call* c) { h.inner->ops.list(h.inner_handle, c, out, st); });
  });
}

void op_remove(stowage_handler* handle, const stowage_call* call, stowage_sink* out,
               stowage_status* st) {
  guarded(st, [&] {
    FaultHandler& h = *of(handle);
    if (unsupported(handle, h.inner->ops.remove != nullptr, "remove", st)) return;
    run(handle, Op::kRemove, call, out, st,
        [&](const stowage_call* c) { h.inner->ops.remove(h.inner_handle, c, out, st); });
  });
}

}  // namespace
}  // namespace stowage::fault

extern "C" __attribute__((visibility("default"))) const stowage_plugin_desc*
stowage_plugin_entry_v1(const stowage_host_api* host) {
  using namespace stowage::fault;
  if (host == nullptr || host->abi_major != STOWAGE_ABI_MAJOR) return nullptr;
  g_host = host;
  static const char* const kSchemes[] = {"fault"};
  static stowage_ops ops{};
  ops.struct_size = sizeof ops;
  ops.open = &op_open;
  ops.close = &op_close;
  ops.save = &op_save;
  ops.load = &op_load;
  ops.list = &op_list;
  ops.remove = &op_remove;
  static stowage_plugin_desc desc{};
  desc.struct_size = sizeof desc;
  desc.abi_major = STOWAGE_ABI_MAJOR;
  desc.abi_minor = STOWAGE_ABI_MINOR;
  desc.scheme_count = 1;
  desc.name = "fault";
  desc.version = STOWAGE_PLUGIN_VERSION;
  desc.schemes = kSchemes;
  desc.capabilities = STOWAGE_CAP_LOAD | STOWAGE_CAP_SAVE | STOWAGE_CAP_LIST | STOWAGE_CAP_REMOVE;
  desc.ops = &ops;
  return &desc;
}
