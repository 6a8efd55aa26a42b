// The native half of the `stowage` npm package: every operation of the C++
// host (core/include/stowage/management.hpp) as an asynchronous call, and
// weight buffers handed to and from JavaScript without copies.
//
// USAGE (from index.js only; the public API is there)
//
//   setup(makeError, isMainThread)
//   load(url, optionsJson, onProgress)        -> {promise, cancel}
//       resolves {json, weightData: ArrayBuffer[] | undefined}
//   save(url, optionsJson, artifactsJson, weightData, onProgress) -> {promise, cancel}
//       resolves {info, responses}: JSON texts
//   transfer(src, dst, srcOptionsJson, dstOptionsJson, move, verifyUrl, onProgress)
//                                                                    -> {promise, cancel}
//   list(url, optionsJson) (url "": the default locations), remove(url, optionsJson), info(url,
//   optionsJson, onProgress), plugins(), configure(configJson, configPath) -> {promise, cancel}
//   diagnostics()                                                       -> object (sync)
//
// WEIGHTS WITHOUT COPIES
//
//   Loads: each weight buffer of the host (an mmap of a file, a buffer the
//   http or s3 plugin received into, a memory:// blob) becomes an external
//   ArrayBuffer over the same bytes; the ArrayBuffer owns a reference to the
//   buffer until the garbage collector finalizes it.
//   Saves: the ArrayBuffers TF.js hands over are wrapped as host buffers whose
//   owner is a Pin, a strong reference to the ArrayBuffer. A pin is dropped
//   when the last host buffer over it goes, on whatever thread that happens
//   (a plugin may keep a buffer after the call, as memory:// does): the
//   reference is deleted on the JavaScript thread through a thread-safe
//   function. In worker_threads the bytes are copied instead, since a
//   Worker's ArrayBuffers die with it while memory:// could still hold them.
//
// LATER
//
//   info() settles with what a metadata-only read gives (model.json and
//   file sizes); it loads the model because the host has no such read yet,
//   and only its work function changes when it does. A streaming load would
//   settle early with a getWeightStream whose chunks come through the call's
//   thread-safe function, as progress does now.
#include <napi.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "async_call_internal.hpp"
#include "stowage/artifacts.hpp"
#include "stowage/config.hpp"
#include "stowage/error.hpp"
#include "stowage/management.hpp"
#include "stowage/model_json.hpp"
#include "stowage/registry.hpp"

namespace stowage::node {
namespace {

// Process-wide, for diagnostics(): finalizers may run after their
// environment is gone, so these are not per environment.
std::atomic<int64_t> g_external_buffers{0};
std::atomic<int64_t> g_external_bytes{0};
std::atomic<int64_t> g_pins{0};

// ---- Save side: pins -------------------------------------------------------

// Deletes references from any thread by handing them to the JavaScript
// thread. Unreferenced, so it never keeps the event loop alive.
class PinReleaser {
 public:
  explicit PinReleaser(Napi::Env env) {
    NAPI_THROW_IF_FAILED_VOID(
        env, napi_create_threadsafe_function(env, nullptr, nullptr,
                                             Napi::String::New(env, "stowage-pins"), 0, 1, nullptr,
                                             nullptr, nullptr, &PinReleaser::Delete, &tsfn_));
    napi_unref_threadsafe_function(env, tsfn_);
  }

  void Release(napi_ref ref) {
    std::lock_guard<std::mutex> lock(mu_);
    // After shutdown the environment deletes its references itself.
    if (tsfn_ != nullptr) napi_call_threadsafe_function(tsfn_, ref, napi_tsfn_nonblocking);
  }

  void Shutdown() {
    std::lock_guard<std::mutex> lock(mu_);
    if (tsfn_ != nullptr) napi_release_threadsafe_function(tsfn_, napi_tsfn_release);
    tsfn_ = nullptr;
  }

 private:
  static void Delete(napi_env env, napi_value, void*, void* data) {
    if (env != nullptr) napi_delete_reference(env, static_cast<napi_ref>(data));
  }

  std::mutex mu_;
  napi_threadsafe_function tsfn_ = nullptr;
};

struct Pin {
  Pin(napi_ref r, std::shared_ptr<PinReleaser> rel) : ref(r), releaser(std::move(rel)) {
    g_pins.fetch_add(1);
  }
  ~Pin() {
    g_pins.fetch_sub(1);
    releaser->Release(ref);
  }
  napi_ref ref;
  std::shared_ptr<PinReleaser> releaser;
};

struct Env {
  AddonState calls;
  std::shared_ptr<PinReleaser> pins;
};

Env& env_state(Napi::Env env) {
  Env* state = env.GetInstanceData<Env>();
  if (state == nullptr) throw Napi::Error::New(env, "stowage: the native addon is not set up");
  return *state;
}

// ---- Load side: external ArrayBuffers ---------------------------------------

struct Held {
  Buffer buffer;
};

void release_held(napi_env, void*, void* hint) {
  auto* held = static_cast<Held*>(hint);
  g_external_buffers.fetch_sub(1);
  g_external_bytes.fetch_sub(static_cast<int64_t>(held->buffer.size()));
  delete held;  // may unmap a file or drop a plugin's buffer: both fine on this thread
}

// An ArrayBuffer over the bytes of `buffer`, or a copy where the runtime
// refuses external memory (a V8 sandbox, as in Electron).
Napi::Value array_buffer_over(Napi::Env env, const Buffer& buffer) {
  if (buffer.size() == 0) return Napi::ArrayBuffer::New(env, 0);
  auto* held = new Held{buffer};
  napi_value out = nullptr;
  napi_status status = napi_create_external_arraybuffer(env, const_cast<uint8_t*>(buffer.data()),
                                                        static_cast<size_t>(buffer.size()),
                                                        &release_held, held, &out);
  if (status == napi_ok) {
    g_external_buffers.fetch_add(1);
    g_external_bytes.fetch_add(static_cast<int64_t>(buffer.size()));
    return Napi::Value(env, out);
  }
  delete held;
  Napi::ArrayBuffer copy = Napi::ArrayBuffer::New(env, static_cast<size_t>(buffer.size()));
  std::memcpy(copy.Data(), buffer.data(), static_cast<size_t>(buffer.size()));
  return copy;
}

// The weight data as TF.js's ArrayBuffer[]: one element per host buffer
// (one per weight file for loads from a model.json). Empty buffers are left
// out: CompositeArrayBuffer takes a first buffer of 0 bytes as the size of
// every shard and then cannot find any byte.
Napi::Array weight_data_array(Napi::Env env, const WeightData& data) {
  Napi::Array out = Napi::Array::New(env);
  uint32_t n = 0;
  for (const Buffer& b : data) {
    if (b.size() > 0) out.Set(n++, array_buffer_over(env, b));
  }
  return out;
}

// ---- Arguments ---------------------------------------------------------------

std::string string_arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsString()) {
    throw Napi::TypeError::New(info.Env(), std::string("stowage: ") + name + " must be a string");
  }
  return info[i].As<Napi::String>().Utf8Value();
}

Napi::Value progress_arg(const Napi::CallbackInfo& info, size_t i) {
  return info.Length() > i && info[i].IsFunction() ? info[i] : info.Env().Undefined();
}

Napi::Value start(const Napi::CallbackInfo& info, AsyncCall::Kind kind, std::string what,
                  std::string url, Napi::Value on_progress, AsyncCall::Work work) {
  return AsyncCall::Start(info.Env(), env_state(info.Env()).calls, kind, std::move(what),
                          std::move(url), on_progress, std::move(work));
}

// What a save reports: the SaveResult's info and responses, as JSON text.
AsyncCall::Settle settle_save_result(const SaveResult& result) {
  std::string info = info_to_json(result.model_artifacts_info);
  std::optional<std::string> responses = result.responses;
  return [info = std::move(info), responses = std::move(responses)](Napi::Env env) {
    Napi::Object out = Napi::Object::New(env);
    out.Set("info", info);
    if (responses) out.Set("responses", *responses);
    return out;
  };
}

// ---- Operations ----------------------------------------------------------------

Napi::Value Setup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsFunction()) throw Napi::TypeError::New(env, "setup(makeError, isMainThread)");
  Env& state = env_state(env);
  state.calls.make_error = Napi::Persistent(info[0].As<Napi::Function>());
  state.calls.zero_copy_saves = info[1].ToBoolean().Value();
  return env.Undefined();
}

Napi::Value Load(const Napi::CallbackInfo& info) {
  std::string url = string_arg(info, 0, "url");
  std::string options = string_arg(info, 1, "options");
  return start(info, AsyncCall::Kind::kRead, "Loading", url, progress_arg(info, 2),
               [url, options](const CallContext& ctx) -> AsyncCall::Settle {
                 auto artifacts = std::make_shared<ModelArtifacts>(load_model(url, options, ctx));
                 std::string json = artifacts_to_json(*artifacts);
                 return [artifacts, json = std::move(json)](Napi::Env env) {
                   Napi::Object out = Napi::Object::New(env);
                   out.Set("json", json);
                   if (artifacts->weight_data) {
                     out.Set("weightData", weight_data_array(env, *artifacts->weight_data));
                   }
                   return out;
                 };
               });
}

Napi::Value Save(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string url = string_arg(info, 0, "url");
  std::string options = string_arg(info, 1, "options");
  std::string json = string_arg(info, 2, "artifacts");
  Env& state = env_state(env);

  // Pin every ArrayBuffer: its bytes are read on the call's thread.
  std::optional<WeightData> weights;
  if (info[3].IsArray()) {
    Napi::Array list = info[3].As<Napi::Array>();
    weights.emplace();
    weights->reserve(list.Length());
    for (uint32_t i = 0; i < list.Length(); ++i) {
      Napi::Value v = list.Get(i);
      if (!v.IsArrayBuffer()) throw Napi::TypeError::New(env, "weightData must be ArrayBuffers");
      Napi::ArrayBuffer ab = v.As<Napi::ArrayBuffer>();
      napi_ref ref = nullptr;
      NAPI_THROW_IF_FAILED(env, napi_create_reference(env, ab, 1, &ref), Napi::Value());
      auto pin = std::make_shared<Pin>(ref, state.pins);
      weights->push_back(Buffer::wrap(static_cast<const uint8_t*>(ab.Data()), ab.ByteLength(),
                                      std::move(pin), url));
    }
  }
  const bool copy = !state.calls.zero_copy_saves;
  return start(info, AsyncCall::Kind::kWrite, "Saving to", url, progress_arg(info, 4),
               [url, options, json = std::move(json), weights = std::move(weights),
                copy](const CallContext& ctx) mutable -> AsyncCall::Settle {
                 ModelArtifacts artifacts = parse_model_json(json, "the artifacts saved to " + url);
                 if (weights) {
                   if (copy) {
                     for (Buffer& b : *weights) b = Buffer::copy_of(b.bytes(), url);
                   }
                   artifacts.weight_data = std::move(*weights);
                   weights.reset();
                 }
                 SaveResult result = save_model(url, artifacts, options, ctx);
                 return settle_save_result(result);
               });
}

Napi::Value Transfer(const Napi::CallbackInfo& info) {
  std::string src = string_arg(info, 0, "source URL");
  std::string dst = string_arg(info, 1, "destination URL");
  TransferOptions options;
  options.source_options = string_arg(info, 2, "sourceOptions");
  options.destination_options = string_arg(info, 3, "destinationOptions");
  const bool move = info[4].ToBoolean().Value();
  options.verify_url = string_arg(info, 5, "verifyUrl");
  return start(
      info, AsyncCall::Kind::kWrite, move ? "Moving" : "Copying", src, progress_arg(info, 6),
      [src, dst, options, move](const CallContext& ctx) mutable -> AsyncCall::Settle {
        options.call = ctx;
        SaveResult result = move ? move_model(src, dst, options) : copy_model(src, dst, options);
        return settle_save_result(result);
      });
}

// TF.js's managers take no options; stores such as localstorage:// need
// theirs (the profile), hence the second form.
std::unique_ptr<IOHandler> open_for(std::string_view url, const std::string& options) {
  return Registry::global().open(url, options);
}

Napi::Value List(const Napi::CallbackInfo& info) {
  std::string url = string_arg(info, 0, "url");
  std::string options = string_arg(info, 1, "options");
  return start(info, AsyncCall::Kind::kRead, "Listing", url, info.Env().Undefined(),
               [url, options](const CallContext& ctx) -> AsyncCall::Settle {
                 std::vector<ListedModel> models;
                 if (url.empty()) {
                   models = list_models();
                 } else if (options == "{}") {
                   models = list_models(url);
                 } else {
                   auto handler = open_for(url, options);
                   if (!handler->can_list()) {
                     throw Error(ErrorCode::kUnimplemented,
                                 "Cannot find model manager for scheme '" + url_scheme(url) +
                                     "': its handler cannot list models.");
                   }
                   models = handler->list(ctx);
                 }
                 std::vector<std::pair<std::string, std::string>> rows;
                 rows.reserve(models.size());
                 for (const ListedModel& m : models) rows.emplace_back(m.url, info_to_json(m.info));
                 return [rows = std::move(rows)](Napi::Env env) {
                   Napi::Array out = Napi::Array::New(env, rows.size());
                   for (uint32_t i = 0; i < rows.size(); ++i) {
                     Napi::Array row = Napi::Array::New(env, 2);
                     row.Set(0u, rows[i].first);
                     row.Set(1u, rows[i].second);
                     out.Set(i, row);
                   }
                   return out;
                 };
               });
}

Napi::Value Remove(const Napi::CallbackInfo& info) {
  std::string url = string_arg(info, 0, "url");
  std::string options = string_arg(info, 1, "options");
  return start(
      info, AsyncCall::Kind::kWrite, "Removing", url, info.Env().Undefined(),
      [url, options](const CallContext& ctx) -> AsyncCall::Settle {
        ModelArtifactsInfo removed;
        if (options == "{}") {
          removed = remove_model(url);
        } else {
          auto handler = open_for(url, options);
          if (!handler->can_remove()) {
            throw Error(ErrorCode::kUnimplemented, "Cannot find model manager for scheme '" +
                                                       url_scheme(url) +
                                                       "': its handler cannot remove models.");
          }
          removed = handler->remove(ctx);
        }
        std::string json = info_to_json(removed);
        return [json = std::move(json)](Napi::Env env) { return Napi::String::New(env, json); };
      });
}

// info(): what a model is made of, without handing its weights to
// JavaScript. Today it loads the model (the host has no metadata-only
// read yet); the JSON it settles with is what a stat would give.
Napi::Value Info(const Napi::CallbackInfo& info) {
  std::string url = string_arg(info, 0, "url");
  std::string options = string_arg(info, 1, "options");
  return start(
      info, AsyncCall::Kind::kRead, "Reading", url, progress_arg(info, 2),
      [url, options](const CallContext& ctx) -> AsyncCall::Settle {
        ModelArtifacts a = load_model(url, options, ctx);
        ModelArtifactsInfo sizes = artifacts_info(a);
        std::string out = "{\"artifacts\":" + artifacts_to_json(a);
        out += ",\"modelArtifactsInfo\":{\"modelTopologyType\":" +
               json::quote(sizes.model_topology_type) +
               ",\"modelTopologyBytes\":" + std::to_string(sizes.model_topology_bytes) +
               ",\"weightSpecsBytes\":" + std::to_string(sizes.weight_specs_bytes);
        if (sizes.weight_data_bytes) {
          out += ",\"weightDataBytes\":" + std::to_string(*sizes.weight_data_bytes);
        }
        out += "}";
        out += ",\"weightBytes\":" + std::to_string(a.weight_data ? total_size(*a.weight_data) : 0);
        // Bytes of each weight file, per manifest group, when the store
        // handed out one buffer per file (its contract for model.json loads).
        if (a.weights_manifest && a.weight_data) {
          size_t paths = 0;
          for (const WeightGroup& g : *a.weights_manifest) paths += g.paths.size();
          if (paths == a.weight_data->size()) {
            out += ",\"shardBytes\":[";
            size_t k = 0;
            for (size_t g = 0; g < a.weights_manifest->size(); ++g) {
              out += g ? ",[" : "[";
              const WeightGroup& group = (*a.weights_manifest)[g];
              for (size_t p = 0; p < group.paths.size(); ++p, ++k) {
                out += (p ? "," : "") + std::to_string((*a.weight_data)[k].size());
              }
              out += "]";
            }
            out += "]";
          }
        }
        out += "}";
        return [out = std::move(out)](Napi::Env env) { return Napi::String::New(env, out); };
      });
}

Napi::Value Plugins(const Napi::CallbackInfo& info) {
  return start(
      info, AsyncCall::Kind::kRead, "Listing plugins", "", info.Env().Undefined(),
      [](const CallContext&) -> AsyncCall::Settle {
        auto plugins = std::make_shared<std::vector<PluginInfo>>(Registry::global().plugins());
        return [plugins](Napi::Env env) {
          auto strings = [env](const std::vector<std::string>& v) {
            Napi::Array a = Napi::Array::New(env, v.size());
            for (uint32_t i = 0; i < v.size(); ++i) a.Set(i, v[i]);
            return a;
          };
          Napi::Array out = Napi::Array::New(env, plugins->size());
          for (uint32_t i = 0; i < plugins->size(); ++i) {
            const PluginInfo& p = (*plugins)[i];
            Napi::Object o = Napi::Object::New(env);
            o.Set("name", p.name);
            o.Set("version", p.version);
            o.Set("schemes", strings(p.schemes));
            o.Set("capabilities", strings(p.capabilities));
            o.Set("abi", std::to_string(p.abi_major) + "." + std::to_string(p.abi_minor));
            o.Set("manifest",
                  p.manifest.empty() ? env.Null() : Napi::String::New(env, p.manifest.string()));
            o.Set("library", p.library.string());
            o.Set("source", p.source);
            o.Set("loaded", p.loaded);
            o.Set("allowed", p.allowed);
            out.Set(i, o);
          }
          return out;
        };
      });
}

Napi::Value Configure(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::optional<std::string> json, path;
  if (info[0].IsString()) json = info[0].As<Napi::String>().Utf8Value();
  if (info[1].IsString()) path = info[1].As<Napi::String>().Utf8Value();
  if (!json == !path) throw Napi::TypeError::New(env, "configure(configJson, configPath)");
  std::string what = path ? *path : std::string("the object given to stowage.configure()");
  return start(info, AsyncCall::Kind::kWrite, "Configuring", what, env.Undefined(),
               [json, path](const CallContext&) -> AsyncCall::Settle {
                 namespace fs = std::filesystem;
                 Config config =
                     path ? load_config_file(fs::absolute(*path))
                          : parse_config(*json, "stowage.configure()", fs::current_path());
                 Registry::global().apply_config(config);
                 return nullptr;
               });
}

Napi::Value Diagnostics(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  out.Set("activeCalls", static_cast<double>(env_state(env).calls.running.size()));
  out.Set("externalBuffers", static_cast<double>(g_external_buffers.load()));
  out.Set("externalBytes", static_cast<double>(g_external_bytes.load()));
  out.Set("pinnedBuffers", static_cast<double>(g_pins.load()));
  return out;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* state = new Env;
  state->calls.js_thread = std::this_thread::get_id();
  // Created before the cleanup hook is added, so the hook (run in reverse
  // order of addition) sees it still open.
  state->pins = std::make_shared<PinReleaser>(env);
  env.SetInstanceData<Env>(state);
  env.AddCleanupHook([state] {
    AsyncCall::CancelAndJoinAll(state->calls);
    state->pins->Shutdown();
    state->calls.make_error.SuppressDestruct();
  });

  exports.Set("setup", Napi::Function::New(env, Setup, "setup"));
  exports.Set("load", Napi::Function::New(env, Load, "load"));
  exports.Set("save", Napi::Function::New(env, Save, "save"));
  exports.Set("transfer", Napi::Function::New(env, Transfer, "transfer"));
  exports.Set("list", Napi::Function::New(env, List, "list"));
  exports.Set("remove", Napi::Function::New(env, Remove, "remove"));
  exports.Set("info", Napi::Function::New(env, Info, "info"));
  exports.Set("plugins", Napi::Function::New(env, Plugins, "plugins"));
  exports.Set("configure", Napi::Function::New(env, Configure, "configure"));
  exports.Set("diagnostics", Napi::Function::New(env, Diagnostics, "diagnostics"));
  return exports;
}

}  // namespace
}  // namespace stowage::node

static Napi::Object InitStowage(Napi::Env env, Napi::Object exports) {
  return stowage::node::Init(env, exports);
}
NODE_API_MODULE(stowage, InitStowage)
