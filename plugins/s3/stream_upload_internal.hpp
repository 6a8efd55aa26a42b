// The weight files of a streaming save (STOWAGE_CAP_STREAMING_SAVE), uploaded
// from a plugin::WeightSource as its buffers arrive, in the layout and with
// the names the array-form save gives them (the caller plans both).
//
// A file of at most multipart_threshold bytes (or one that arrives within a
// single buffer) goes up as one item of S3Transaction::put_item once its
// bytes are in, as a server-side copy when `prepare` says so. A larger file
// that spans buffers goes up as a multipart upload whose parts are sent as
// each one's bytes arrive. At most `concurrency` requests' bodies are held
// at once, plus the file or part being gathered: each buffer is released as
// soon as the uploads of its bytes are done. A failure (of a request, of the
// source, a cancellation) stops every upload, aborts the multipart uploads
// not completed and throws; every key was recorded in the transaction
// first, so its abort() deletes what landed.
//
// Thread-safety: one call per transaction at a time; the uploads run in an
// S3Client::Batch on the client's I/O thread. Ownership: nothing outlives
// the call.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "s3_store_internal.hpp"

namespace stowage::s3 {

struct WeightFile {
  std::string key;
  uint64_t size = 0;
};

// Uploads files (whose sizes add up to source.total_bytes()) from source,
// then pulls the source to its end. Throws Error(kDataLoss) naming `url`
// when the source ends early or has more bytes than the files hold.
// With want_sha256, returns each file's SHA-256 (lowercase hex), computed
// in the same pass that sends it: a single PutObject's digest doubles as
// its payload hash, a multipart file's running digest takes each part as
// it is cut from the source; otherwise the strings are empty.
std::vector<std::string> upload_streamed(
    S3Store& store, S3Store::S3Transaction& txn, const std::vector<WeightFile>& files,
    plugin::WeightSource& source, const std::function<void(S3Store::S3Transaction::Item&)>& prepare,
    const std::string& url, bool want_sha256, plugin::Call& call);

}  // namespace stowage::s3
