#include "async_call_internal.hpp"

#include <new>
#include <utility>
#include <vector>

namespace stowage::node {

struct AsyncCall::Event {
  enum Type { kProgress, kDone } type;
};

Napi::Object AsyncCall::Start(Napi::Env env, AddonState& state, Kind kind, std::string what,
                              std::string url, Napi::Value on_progress, Work work) {
  std::shared_ptr<AsyncCall> call(
      new AsyncCall(state, kind, std::move(what), std::move(url), std::move(work)));
  call->deferred_.emplace(Napi::Promise::Deferred::New(env));
  if (on_progress.IsFunction()) {
    call->on_progress_ = Napi::Persistent(on_progress.As<Napi::Function>());
  }
  call->tsfn_ = Tsfn::New(env, "stowage", 0, 1, call.get());
  state.running.insert(call);
  try {
    call->thread_ = std::thread([call] { call->Run(); });
  } catch (const std::system_error& e) {
    state.running.erase(call);
    call->tsfn_.Release();
    throw Napi::Error::New(env, std::string("stowage: cannot start a thread: ") + e.what());
  }

  Napi::Object handle = Napi::Object::New(env);
  handle.Set("promise", call->deferred_->Promise());
  std::weak_ptr<AsyncCall> weak = call;
  handle.Set("cancel", Napi::Function::New(env, [weak](const Napi::CallbackInfo&) {
               if (auto c = weak.lock()) {
                 c->aborted_.store(true);
                 c->stop_.store(true);
               }
             }));
  return handle;
}

void AsyncCall::CancelAndJoinAll(AddonState& state) {
  std::vector<std::shared_ptr<AsyncCall>> calls(state.running.begin(), state.running.end());
  for (auto& c : calls) c->stop_.store(true);
  for (auto& c : calls) {
    if (c->thread_.joinable()) c->thread_.join();
    // The environment is going away: its references die with it.
    c->on_progress_.SuppressDestruct();
    c->js_error_.SuppressDestruct();
    c->settled_ = true;
  }
  state.running.clear();
}

AsyncCall::AsyncCall(AddonState& state, Kind kind, std::string what, std::string url, Work work)
    : state_(state),
      kind_(kind),
      what_(std::move(what)),
      url_(std::move(url)),
      work_(std::move(work)) {}

AsyncCall::~AsyncCall() {
  if (thread_.joinable()) thread_.detach();  // only when the thread could not be joined
}

void AsyncCall::Run() {
  CallContext ctx;
  ctx.is_cancelled = [this] { return stop_.load(std::memory_order_relaxed); };
  if (!on_progress_.IsEmpty()) {
    ctx.on_progress = [this](uint64_t done, uint64_t total) { Report(done, total); };
  }
  try {
    settle_ = work_(ctx);
  } catch (const Error& e) {
    error_.emplace(e);
  } catch (const std::bad_alloc&) {
    error_.emplace(ErrorCode::kResourceExhausted, what_ + " '" + url_ + "' ran out of memory");
  } catch (const std::exception& e) {
    error_.emplace(ErrorCode::kInternal, what_ + " '" + url_ + "' failed: " + e.what());
  } catch (...) {
    error_.emplace(ErrorCode::kInternal, what_ + " '" + url_ + "' failed with an unknown error");
  }
  // Whatever the work captured (pinned JavaScript buffers of a save, open
  // handlers) goes now, before the promise settles.
  work_ = nullptr;
  tsfn_.NonBlockingCall(new Event{Event::kDone});
  tsfn_.Release();
}

void AsyncCall::Report(uint64_t done, uint64_t total) {
  const double f = total == 0 ? 0.0 : static_cast<double>(done) / static_cast<double>(total);
  fraction_.store(f, std::memory_order_relaxed);
  if (!progress_queued_.exchange(true)) tsfn_.NonBlockingCall(new Event{Event::kProgress});
}

void AsyncCall::Dispatch(Napi::Env env, Napi::Function, AsyncCall* call, Event* event) {
  std::unique_ptr<Event> owned(event);
  if (static_cast<napi_env>(env) == nullptr || call == nullptr) return;  // teardown
  if (owned->type == Event::kProgress) {
    call->DeliverProgress(env);
  } else {
    call->Finish(env);
  }
}

// Calls onProgress(fraction); false when it threw (the call then stops and
// rejects with what it threw, as TF.js's loaders do).
bool AsyncCall::CallProgress(Napi::Env env, double fraction) {
  try {
    on_progress_.Call({Napi::Number::New(env, fraction)});
    return true;
  } catch (const Napi::Error& e) {
    js_error_ = Napi::Persistent(Napi::Value(e.Value()));
    stop_.store(true);
    return false;
  }
}

void AsyncCall::DeliverProgress(Napi::Env env) {
  progress_queued_.store(false);
  if (settled_ || on_progress_.IsEmpty() || !js_error_.IsEmpty()) return;
  const double f = fraction_.load(std::memory_order_relaxed);
  // Fractions only grow, and 1 is said once, when the call has succeeded
  // (a load learns sizes as it goes, so done == total may come early).
  if (f <= last_fraction_ || f >= 1.0) return;
  last_fraction_ = f;
  Napi::HandleScope scope(env);
  CallProgress(env, f);
}

Napi::Value AsyncCall::MakeError(Napi::Env env, ErrorCode code, bool retryable,
                                 const std::string& message) {
  return state_.make_error.Call({Napi::Number::New(env, static_cast<int32_t>(code)),
                                 Napi::Boolean::New(env, retryable),
                                 Napi::String::New(env, message), Napi::String::New(env, url_)});
}

void AsyncCall::Finish(Napi::Env env) {
  auto self = shared_from_this();
  if (thread_.joinable()) thread_.join();  // it has queued this event and is ending
  state_.running.erase(self);
  Napi::HandleScope scope(env);
  Napi::Promise::Deferred deferred = *deferred_;
  settled_ = true;

  auto reject_with = [&](Napi::Value error) {
    on_progress_.Reset();
    settle_ = nullptr;
    deferred.Reject(error);
  };
  try {
    if (!js_error_.IsEmpty()) {
      Napi::Value thrown = js_error_.Value();
      js_error_.Reset();
      reject_with(thrown);
      return;
    }
    const bool aborted = aborted_.load();
    const bool succeeded = !error_.has_value();
    if (aborted && !(succeeded && kind_ == Kind::kWrite)) {
      // The signal was aborted and nothing took effect: CANCELLED, with the
      // plugin's own words when it stopped because of it.
      std::string message = error_ && error_->code() == ErrorCode::kCancelled
                                ? error_->what()
                                : what_ + " '" + url_ + "' was cancelled";
      reject_with(MakeError(env, ErrorCode::kCancelled, false, message));
      return;
    }
    if (error_) {
      reject_with(MakeError(env, error_->code(), error_->retryable(), error_->what()));
      return;
    }
    if (!on_progress_.IsEmpty() && last_fraction_ < 1.0) {
      last_fraction_ = 1.0;
      if (!CallProgress(env, 1.0)) {
        Napi::Value thrown = js_error_.Value();
        js_error_.Reset();
        reject_with(thrown);
        return;
      }
    }
    on_progress_.Reset();
    Napi::Value value = settle_ ? settle_(env) : env.Undefined();
    settle_ = nullptr;
    deferred.Resolve(value);
  } catch (const Napi::Error& e) {
    reject_with(e.Value());
  } catch (const Error& e) {
    reject_with(MakeError(env, e.code(), e.retryable(), e.what()));
  } catch (const std::exception& e) {
    reject_with(
        MakeError(env, ErrorCode::kInternal, false, what_ + " '" + url_ + "' failed: " + e.what()));
  }
}

}  // namespace stowage::node
