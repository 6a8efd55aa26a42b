// AsyncCall: one stowage call from JavaScript, run on a thread of its own
// and settled on the JavaScript thread through a promise.
//
// The event loop never waits: the work (plugin I/O, JSON, model checks) runs
// on a std::thread started per call, not on libuv's small pool, so a slow
// download never holds up fs or dns work of the application. The thread
// talks back through one thread-safe function per call, which also keeps the
// event loop alive while the call is pending (like an fs promise does).
//
// Thread-safety: Start, Cancel and everything named *_js run on the
// JavaScript thread; Run and Report run on the call's own thread.
// Ownership: a call is owned by the AddonState's running set until it has
// settled; its thread holds a shared_ptr as well.
#pragma once

#include <napi.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "stowage/error.hpp"
#include "stowage/handler.hpp"

namespace stowage::node {

class AsyncCall;

// Per JavaScript environment (main thread or worker_threads Worker).
struct AddonState {
  std::thread::id js_thread;
  // JavaScript's (code, retryable, message, url) -> StowageError.
  Napi::FunctionReference make_error;
  // False in worker_threads: saves copy the weights there (see Pin).
  bool zero_copy_saves = true;
  // Calls whose promise has not settled yet.
  std::set<std::shared_ptr<AsyncCall>> running;
};

class AsyncCall : public std::enable_shared_from_this<AsyncCall> {
 public:
  // What the work hands back to the JavaScript thread: builds the value the
  // promise resolves with. Runs on the JavaScript thread; may throw.
  using Settle = std::function<Napi::Value(Napi::Env)>;
  // The work itself, on the call's thread. Throws stowage::Error to reject.
  using Work = std::function<Settle(const CallContext&)>;

  enum class Kind {
    kRead,   // load, info, list, plugins: an abort always rejects
    kWrite,  // save, copy, move, remove, configure: a finished write stands
  };

  // Starts `work` and returns {promise, cancel}. `what` and `url` name the
  // call in messages ("Loading", "file:///m/model.json"). on_progress is a
  // function or undefined.
  static Napi::Object Start(Napi::Env env, AddonState& state, Kind kind, std::string what,
                            std::string url, Napi::Value on_progress, Work work);

  // Env teardown: asks every running call to stop and waits for its thread.
  static void CancelAndJoinAll(AddonState& state);

  ~AsyncCall();

 private:
  struct Event;
  static void Dispatch(Napi::Env env, Napi::Function, AsyncCall* call, Event* event);
  using Tsfn = Napi::TypedThreadSafeFunction<AsyncCall, Event, &AsyncCall::Dispatch>;

  AsyncCall(AddonState& state, Kind kind, std::string what, std::string url, Work work);

  void Run();                                  // the call's thread
  void Report(uint64_t done, uint64_t total);  // any thread of the call
  void DeliverProgress(Napi::Env env);         // JavaScript thread
  void Finish(Napi::Env env);                  // JavaScript thread
  bool CallProgress(Napi::Env env, double fraction);
  Napi::Value MakeError(Napi::Env env, ErrorCode code, bool retryable, const std::string& message);

  AddonState& state_;
  const Kind kind_;
  const std::string what_;
  const std::string url_;
  Work work_;
  Tsfn tsfn_;
  std::thread thread_;
  std::optional<Napi::Promise::Deferred> deferred_;
  Napi::FunctionReference on_progress_;

  // Set by cancel() (the AbortSignal) or by an onProgress that threw.
  std::atomic<bool> aborted_{false};
  std::atomic<bool> stop_{false};
  // Progress from the call's thread: the latest fraction, and whether a
  // delivery to JavaScript is already queued (coalesces bursts).
  std::atomic<double> fraction_{0.0};
  std::atomic<bool> progress_queued_{false};

  // Written by the call's thread before it queues the final event; read
  // on the JavaScript thread after it (the queue orders the two).
  Settle settle_;
  std::optional<Error> error_;

  // JavaScript thread only.
  double last_fraction_ = 0.0;
  bool settled_ = false;
  Napi::Reference<Napi::Value> js_error_;  // what onProgress threw
};

}  // namespace stowage::node
