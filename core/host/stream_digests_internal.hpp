// The digest check of a streamed load (docs/integrity.md): each weight
// buffer is hashed when the plugin puts it, on the plugin's thread, and a
// mismatch fails the stream before its consumer (a streaming save) can take
// the buffer, so a copy from a model with a bad shard publishes nothing.
// Thread-safety: check() may be called from several threads at once.
// Ownership: holds its own copy of the manifest; borrows nothing.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "stowage/artifacts.hpp"
#include "stowage/buffer.hpp"

namespace stowage::host {

class StreamDigests {
 public:
  // `trust_marks` false: every buffer is hashed, marked or not (the
  // caller's independent check, CallContext::recheck_digests).
  explicit StreamDigests(std::string url, bool trust_marks = true)
      : url_(std::move(url)), trust_marks_(trust_marks) {}

  // Checks the buffer at `index` of a load whose artifacts JSON is `json`
  // (nullptr when it has not arrived: abi.h has the JSON come first). The
  // JSON is read on the first call. Throws Error(kDataLoss) for a digest
  // mismatch, Error(kInternal) when the load broke the rules the check
  // needs (no JSON yet, an index past the manifest's paths), or the JSON's
  // own parse error. `verified`: the digest the plugin checked the buffer
  // against (abi.h sink_mark_verified; "" for none): when it is the one the
  // manifest records, the buffer is not hashed again.
  void check(const std::string* json, uint64_t index, const Buffer& buffer,
             const std::string& verified = {});

  // After the load: throws Error(kInternal) when digests are recorded but
  // `buffer_count` buffers arrived for a different number of paths.
  void check_count(const std::string& json, uint64_t buffer_count);

 private:
  struct File {
    size_t group;
    size_t file;
  };
  void read(const std::string& json);

  const std::string url_;
  const bool trust_marks_;
  std::mutex mu_;  // guards the members below until read_ is set
  bool read_ = false;
  std::vector<WeightGroup> manifest_;
  std::vector<std::optional<File>> files_;  // by buffer index; nullopt: no digest
  size_t recorded_ = 0;
};

}  // namespace stowage::host
