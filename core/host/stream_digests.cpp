#include "stowage/digest.hpp"
#include "stowage/error.hpp"
#include "stowage/model_json.hpp"
#include "stowage/weights.hpp"
#include "stream_digests_internal.hpp"

namespace stowage::host {

void StreamDigests::read(const std::string& json) {
  ModelArtifacts a = parse_model_json(json, url_);
  if (a.weights_manifest) manifest_ = std::move(*a.weights_manifest);
  recorded_ = recorded_digest_count(manifest_);
  if (recorded_ == 0) return;
  for (size_t g = 0; g < manifest_.size(); ++g) {
    for (size_t i = 0; i < manifest_[g].paths.size(); ++i) {
      files_.push_back(manifest_[g].sha256 ? std::optional<File>(File{g, i}) : std::nullopt);
    }
  }
}

void StreamDigests::check(const std::string* json, uint64_t index, const Buffer& buffer,
                          const std::string& verified) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!read_) {
      if (json == nullptr) {
        throw Error(ErrorCode::kInternal,
                    "the load of " + url_ + " put weight buffer " + std::to_string(index) +
                        " before its artifacts JSON (abi.h: sink_set_text comes first), so the "
                        "buffer's digest cannot be checked");
      }
      read(*json);
      read_ = true;
    }
  }
  if (recorded_ == 0) return;
  if (index >= files_.size()) {
    throw Error(ErrorCode::kInternal,
                "model.json at " + url_ + " records SHA-256 digests, but its load put weight " +
                    "buffer " + std::to_string(index) + " past its " +
                    std::to_string(files_.size()) +
                    " weight files (the loader must hand over each weight file as its own buffer)");
  }
  if (!files_[index]) return;
  const File& f = *files_[index];
  const std::string& recorded = (*manifest_[f.group].sha256)[f.file];
  if (trust_marks_ && !verified.empty() && verified == recorded) return;  // the plugin hashed it
  const std::string actual = sha256_hex(buffer.bytes());
  if (actual == recorded) return;
  throw weight_digest_mismatch(url_, manifest_, f.group, f.file, buffer, actual);
}

void StreamDigests::check_count(const std::string& json, uint64_t buffer_count) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!read_) {
      read(json);
      read_ = true;
    }
  }
  if (recorded_ == 0 || buffer_count == files_.size()) return;
  throw Error(ErrorCode::kInternal,
              "model.json at " + url_ + " records SHA-256 digests for " +
                  std::to_string(recorded_) + " file(s), but its load handed over " +
                  std::to_string(buffer_count) + " weight buffer(s) for " +
                  std::to_string(files_.size()) +
                  " files instead of one per file, so the digests cannot be checked (the loader "
                  "must hand over each weight file as its own buffer)");
}

}  // namespace stowage::host
