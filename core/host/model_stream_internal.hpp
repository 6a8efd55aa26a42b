// ModelStream: the bounded queue between a running load (the producer: a
// plugin's load sink) and its consumer (a streaming save, or a host reading
// buffers as they arrive). It holds the artifacts JSON and the weight
// buffers, hands the buffers out strictly in index order and limits the
// bytes the host holds: a buffer counts from its put until the last
// reference to what next() handed out is gone.
//
// put() waits for room, except when waiting could deadlock: before the
// artifacts JSON arrived (the consumer cannot start without it), for the
// buffer the consumer needs next, and when nothing is held (a buffer larger
// than the limit then passes alone).
//
// Thread-safety: every member may be called from any thread; producers may
// put from several threads (each its own buffers in increasing index
// order), one consumer calls next(). Ownership: the stream owns queued
// buffers; a handed-out Buffer keeps the accounting alive on its own, so it
// may outlive the stream.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "stowage/buffer.hpp"

namespace stowage::host {

class ModelStream {
 public:
  static constexpr uint64_t kDefaultLimit = 64ull << 20;

  explicit ModelStream(uint64_t limit_bytes = kDefaultLimit);
  ModelStream(const ModelStream&) = delete;
  ModelStream& operator=(const ModelStream&) = delete;

  // ---- producer ----
  // The artifacts JSON; the first call counts, later ones are ignored.
  void set_artifacts(std::string json);
  // Queues the buffer at `index`; may block. Returns false (and drops the
  // buffer) once the consumer gave up, or for an index put twice.
  bool put(uint64_t index, Buffer buffer);
  // Appends after the last index put (the 1.0 sink_add_buffer order).
  bool add(Buffer buffer);
  // The load succeeded: next() returns nullopt after the last buffer.
  // Throws Error(kInternal) naming `source` when an index was never put.
  void finish(const std::string& source);
  // The load failed with `error`: next() and artifacts() throw it.
  void fail(std::exception_ptr error);

  // ---- consumer ----
  // Blocks until the JSON arrived (returns it) or the load failed (throws
  // its error) or ended without JSON (returns nullopt).
  std::optional<std::string> artifacts();
  // The next buffer in index order; blocks until it is there. nullopt after
  // the last one of a finished load; throws the load's error or
  // Error(kCancelled) after cancel().
  std::optional<Buffer> next();
  // The consumer gives up: producers' puts return false, queued buffers
  // are dropped. Safe to call more than once.
  void cancel();

  // True once the JSON or any buffer arrived (a load that started
  // delivering cannot be retried into the same stream).
  bool touched() const;
  // True once the consumer gave up or the load failed.
  bool stopped() const;
  // Sizes of the buffers put so far, by index (for validation at the end).
  std::vector<uint64_t> sizes() const;
  uint64_t limit() const noexcept { return limit_; }
  // The most bytes held at once.
  uint64_t peak_bytes() const;
  // The bytes held now (queued plus handed out and still referenced).
  uint64_t held_bytes() const;
  // How many put() calls are waiting for room now.
  uint64_t waiting_puts() const;

 private:
  struct Shared;

  const uint64_t limit_;
  std::shared_ptr<Shared> shared_;
};

}  // namespace stowage::host
