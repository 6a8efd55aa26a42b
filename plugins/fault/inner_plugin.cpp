// Loading the wrapped plugin and the host services it gets (see
// inner_plugin.hpp).
#include "inner_plugin.hpp"

#include <dlfcn.h>
#include <rapidjson/document.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <unordered_map>

#include "stowage/error.hpp"

namespace stowage::fault {
namespace {

namespace fs = std::filesystem;

struct Watched {
  std::mutex mu;
  CallHooks hooks;
};

// Every sink and status of a forwarded call, while it runs. Leaked on
// purpose: a plugin's threads may still call the services during exit.
std::mutex& watch_mu() {
  static auto* m = new std::mutex;
  return *m;
}
std::unordered_map<const void*, std::shared_ptr<Watched>>& watched() {
  static auto* m = new std::unordered_map<const void*, std::shared_ptr<Watched>>;
  return *m;
}

std::shared_ptr<Watched> find(const void* key) {
  if (key == nullptr) return nullptr;
  std::lock_guard<std::mutex> lock(watch_mu());
  auto it = watched().find(key);
  return it == watched().end() ? nullptr : it->second;
}

stowage_host_api g_real{};     // the host's services
stowage_host_api g_wrapped{};  // what wrapped plugins get

void wrapped_status_set(stowage_status* st, int32_t code, int32_t retryable, const char* msg,
                        size_t msg_len) {
  if (auto w = find(st)) {
    std::lock_guard<std::mutex> lock(w->mu);
    w->hooks.status_seen = true;
    w->hooks.status_code = code;
  }
  g_real.status_set(st, code, retryable, msg, msg_len);
}

void wrapped_sink_set_text(stowage_sink* sink, const char* text, size_t len) {
  if (auto w = find(sink)) {
    std::lock_guard<std::mutex> lock(w->mu);
    if (w->hooks.truncate_json && !w->hooks.truncate_done) {
      len -= std::min<uint64_t>(len, *w->hooks.truncate_json);
      w->hooks.truncate_done = true;
    }
  }
  g_real.sink_set_text(sink, text, len);
}

// A buffer cut short: private_data holds the plugin's own buffer, released
// with it.
void release_cut(stowage_buffer* self) {
  auto* original = static_cast<stowage_buffer*>(self->private_data);
  if (original != nullptr) {
    if (original->release != nullptr) original->release(original);
    delete original;
  }
  self->private_data = nullptr;
  self->release = nullptr;
}

void wrapped_sink_add_buffer(stowage_sink* sink, stowage_buffer* buf) {
  std::shared_ptr<Watched> w = buf != nullptr ? find(sink) : nullptr;
  if (w) {
    std::unique_lock<std::mutex> lock(w->mu);
    uint64_t index = w->hooks.buffers_seen++;
    if (w->hooks.short_read && index == w->hooks.short_buffer) {
      w->hooks.short_read_done = true;
      uint64_t cut = std::min<uint64_t>(buf->size, *w->hooks.short_read);
      lock.unlock();
      auto* original = new (std::nothrow) stowage_buffer(*buf);
      if (original != nullptr) {
        stowage_buffer shorter = *buf;
        shorter.size = buf->size - cut;
        shorter.release = &release_cut;
        shorter.private_data = original;
        buf->release = nullptr;  // moved into `original`
        g_real.sink_add_buffer(sink, &shorter);
        if (shorter.release != nullptr) shorter.release(&shorter);
        return;
      }
    }
  }
  g_real.sink_add_buffer(sink, buf);
}

fs::path own_folder() {
  Dl_info info{};
  if (::dladdr(reinterpret_cast<void*>(&own_folder), &info) == 0 || info.dli_fname == nullptr) {
    return {};
  }
  std::error_code ec;
  fs::path p = fs::weakly_canonical(fs::path(info.dli_fname), ec);
  return (ec ? fs::path(info.dli_fname) : p).parent_path();
}

// The library a manifest names (relative to the manifest's folder).
fs::path library_of_manifest(const fs::path& manifest) {
  std::ifstream in(manifest, std::ios::binary);
  if (!in) {
    throw Error(ErrorCode::kNotFound, "fault: cannot read the manifest of the wrapped plugin '" +
                                          manifest.string() + "'");
  }
  std::ostringstream text;
  text << in.rdbuf();
  rapidjson::Document doc;
  std::string s = text.str();
  doc.Parse(s.c_str(), s.size());
  if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("library") ||
      !doc["library"].IsString()) {
    throw Error(ErrorCode::kInvalidArgument,
                "fault: the manifest '" + manifest.string() + "' has no \"library\" string");
  }
  fs::path lib(doc["library"].GetString());
  return lib.is_absolute() ? lib : manifest.parent_path() / lib;
}

fs::path resolve(const std::string& inner) {
  fs::path file;
  if (inner.find('/') == std::string::npos) {
    bool plain = std::all_of(inner.begin(), inner.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    });
    if (!plain) {
      throw Error(ErrorCode::kInvalidArgument,
                  "fault: inner '" + inner +
                      "' is neither a plugin name (lowercase letters, digits, '_', '-') nor a "
                      "path");
    }
    file = (own_folder() / ".." / "plugins" / ("stowage-" + inner + ".json")).lexically_normal();
  } else {
    file = inner;
  }
  if (file.extension() == ".json") file = library_of_manifest(file);
  std::error_code ec;
  fs::path canon = fs::canonical(file, ec);
  if (ec) {
    throw Error(ErrorCode::kNotFound, "fault: the wrapped plugin '" + inner +
                                          "' has no library at '" + file.string() +
                                          "': " + ec.message());
  }
  return canon;
}

std::unique_ptr<InnerPlugin> open_library(const fs::path& library) {
  const std::string lib = library.string();
  void* handle = ::dlopen(lib.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* why = ::dlerror();
    throw Error(ErrorCode::kInvalidArgument,
                "fault: cannot load the wrapped plugin '" + lib + "': " + (why ? why : "?"));
  }
  // Never closed: plugins are never unloaded.
  auto entry = reinterpret_cast<stowage_entry_fn>(::dlsym(handle, STOWAGE_ENTRY_SYMBOL));
  if (entry == nullptr) {
    throw Error(ErrorCode::kInvalidArgument,
                "fault: '" + lib + "' does not export " STOWAGE_ENTRY_SYMBOL);
  }
  const stowage_plugin_desc* desc = entry(&g_wrapped);
  auto refuse = [&](const std::string& why) {
    return Error(ErrorCode::kInvalidArgument, "fault: the wrapped plugin '" + lib + "' " + why);
  };
  if (desc == nullptr) throw refuse("refused to start (its entry returned NULL)");
  if (desc->struct_size < offsetof(stowage_plugin_desc, ops) + sizeof desc->ops) {
    throw refuse("has a descriptor too small for ABI 1.0");
  }
  if (desc->abi_major != STOWAGE_ABI_MAJOR) {
    throw refuse("was built for ABI major " + std::to_string(desc->abi_major));
  }
  if (desc->ops == nullptr ||
      desc->ops->struct_size < offsetof(stowage_ops, close) + sizeof(void*)) {
    throw refuse("has no usable ops table");
  }
  auto p = std::make_unique<InnerPlugin>();
  p->name = desc->name != nullptr ? desc->name : "";
  if (p->name == "fault") throw refuse("is the fault plugin itself");
  p->library = lib;
  for (uint32_t i = 0; i < desc->scheme_count && desc->schemes != nullptr; ++i) {
    if (desc->schemes[i] != nullptr) p->schemes.emplace_back(desc->schemes[i]);
  }
  p->capabilities = desc->capabilities;
  std::memcpy(&p->ops, desc->ops, std::min<size_t>(desc->ops->struct_size, sizeof p->ops));
  p->ops.struct_size = sizeof p->ops;
  if (p->ops.open == nullptr || p->ops.close == nullptr) throw refuse("has no open or close");
  return p;
}

}  // namespace

bool InnerPlugin::serves(const std::string& scheme) const {
  return std::find(schemes.begin(), schemes.end(), scheme) != schemes.end();
}

const InnerPlugin& load_inner(const std::string& inner, const stowage_host_api* host) {
  static std::mutex mu;
  static auto* loaded = new std::map<std::string, std::unique_ptr<InnerPlugin>>;
  std::lock_guard<std::mutex> lock(mu);
  if (g_wrapped.struct_size == 0) {
    std::memcpy(&g_real, host, std::min<size_t>(host->struct_size, sizeof g_real));
    g_real.struct_size = sizeof g_real;
    g_wrapped = g_real;
    g_wrapped.status_set = &wrapped_status_set;
    g_wrapped.sink_set_text = &wrapped_sink_set_text;
    g_wrapped.sink_add_buffer = &wrapped_sink_add_buffer;
    // Wrapped plugins get the services up to ABI 1.0's end: short_read
    // intercepts sink_add_buffer, so a streaming loader must use it
    // (fault:// declares no streaming capability either).
    g_wrapped.sink_put_buffer = nullptr;
    g_wrapped.struct_size = offsetof(stowage_host_api, sink_put_buffer);
  }
  fs::path library = resolve(inner);
  auto it = loaded->find(library.string());
  if (it == loaded->end()) {
    it = loaded->emplace(library.string(), open_library(library)).first;
  }
  return *it->second;
}

CallWatch::CallWatch(stowage_sink* sink, stowage_status* status, CallHooks hooks)
    : sink_(sink), status_(status) {
  auto w = std::make_shared<Watched>();
  w->hooks = std::move(hooks);
  std::lock_guard<std::mutex> lock(watch_mu());
  if (sink_ != nullptr) watched()[sink_] = w;
  if (status_ != nullptr) watched()[status_] = w;
}

CallWatch::~CallWatch() {
  std::lock_guard<std::mutex> lock(watch_mu());
  watched().erase(sink_);
  watched().erase(status_);
}

CallHooks CallWatch::snapshot() const {
  auto w = find(status_ != nullptr ? static_cast<const void*>(status_) : sink_);
  if (!w) return {};
  std::lock_guard<std::mutex> lock(w->mu);
  return w->hooks;
}

}  // namespace stowage::fault
