// The host side of the plugin ABI (abi.h): the status and sink objects a
// plugin writes into, the stowage_host_api table, and the bridging of
// buffers in both directions.
// Thread-safety: the table's functions may be called from any thread; one
// status or sink belongs to one call. Ownership: see each function.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "stowage/abi.h"
#include "stowage/buffer.hpp"
#include "stowage/error.hpp"
#include "stream_digests_internal.hpp"

namespace stowage::host {
class ModelStream;
}

// Host-owned; one per plugin call.
struct stowage_status {
  bool failed = false;
  stowage::ErrorCode code = stowage::ErrorCode::kOk;
  bool retryable = false;
  std::string message;
  std::optional<stowage::FailedRequest> request;  // host->status_set_request
};

// Host-owned output collector. What a plugin may put into it depends on kind;
// anything else is recorded in misuse and failed after the call.
struct stowage_sink {
  enum class Kind { kText, kLoad, kList };
  explicit stowage_sink(Kind k, std::shared_ptr<const void> plugin = nullptr)
      : kind(k), keep_alive(std::move(plugin)) {}

  Kind kind;
  // Held by the owner of every buffer the plugin hands over, so the code
  // behind its release callback stays loaded.
  std::shared_ptr<const void> keep_alive;
  std::optional<std::string> text;
  stowage::WeightData buffers;
  std::vector<std::pair<std::string, std::string>> models;  // url, info JSON
  std::string misuse;
  // ABI 1.1 loads: when set, the JSON and every buffer go to this stream as
  // they arrive instead of into text and buffers (the sink does not own it).
  stowage::host::ModelStream* stream = nullptr;
  // The load's scheme declares STOWAGE_CAP_STREAMING_LOAD: only then may
  // the plugin use sink_put_buffer (abi.h).
  bool may_put = false;
  // sink_put_buffer without a stream: buffers may come from several threads
  // and out of order; put marks which indexes arrived.
  std::mutex put_mu;
  std::vector<bool> put;
  // abi.h: one load uses one of the two ways to hand buffers over.
  std::atomic<bool> used_add{false};
  std::atomic<bool> used_put{false};
  std::mutex misuse_mu;  // guards misuse
  // A streamed load that verifies digests: each buffer is checked before it
  // enters the stream; the first failure fails the stream and is kept in
  // failure (under failure_mu) for the load to report.
  std::unique_ptr<stowage::host::StreamDigests> digests;
  std::atomic<uint64_t> added{0};  // the index of the next sink_add_buffer
  std::mutex failure_mu;
  std::exception_ptr failure;
  // ABI 1.4 sink_mark_verified: buffer index -> the digest the plugin
  // checked that buffer against (under verified_mu). The host skips a
  // buffer only where this is the digest the manifest records for it.
  std::mutex verified_mu;
  std::map<uint64_t, std::string> verified;
  // The digest the plugin checked buffer `index` against; "" when none.
  std::string verified_digest(uint64_t index) {
    std::lock_guard<std::mutex> lock(verified_mu);
    auto it = verified.find(index);
    return it == verified.end() ? std::string() : it->second;
  }
};

namespace stowage::host {

static_assert(static_cast<int>(ErrorCode::kInternal) == STOWAGE_INTERNAL);
static_assert(static_cast<int>(ErrorCode::kNotFound) == STOWAGE_NOT_FOUND);
static_assert(static_cast<int>(ErrorCode::kUnimplemented) == STOWAGE_UNIMPLEMENTED);

// The services every plugin gets from its entry function; static storage.
const stowage_host_api* host_api() noexcept;

// The weight buffers of a save, lent to the plugin for the call. Each one
// carries a host reference, so host->buffer_share hands out new owning
// references without copying. Not copyable; keep it alive for the call.
class LentBuffers {
 public:
  explicit LentBuffers(const WeightData* data);
  ~LentBuffers();
  LentBuffers(const LentBuffers&) = delete;
  LentBuffers& operator=(const LentBuffers&) = delete;

  const stowage_buffer* data() const noexcept { return buffers_.data(); }
  uint64_t size() const noexcept { return buffers_.size(); }

 private:
  std::vector<stowage_buffer> buffers_;
};

// Takes ownership of a buffer a plugin hands over (sets buf->release to
// NULL): the Buffer's owner calls the plugin's release when the last copy
// goes, and keeps `keep_alive` until then.
Buffer adopt_plugin_buffer(stowage_buffer* buf, std::shared_ptr<const void> keep_alive);

// A new host reference to b, owned by whoever receives it (its release
// callback drops the reference); host->buffer_share unwraps it without a copy.
stowage_buffer lend_owned(Buffer b);

// Number of host references currently held by plugins or lent to them (for
// tests: every reference handed out must come back).
uint64_t live_host_references() noexcept;

}  // namespace stowage::host
