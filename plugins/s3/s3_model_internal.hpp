// Load and save of a TF.js model in S3, in the kit's layout (model.json and
// weights.bin or group1-shardNofM.bin beside it) with what S3 needs on top:
//
// Load  GETs model.json, then every weight file at once (at most
//       `concurrency` in flight), then checks with a HEAD that model.json
//       is still the one it read (ETag and Last-Modified); if a save or
//       remove replaced it meanwhile, the load starts again (4 attempts,
//       then UNAVAILABLE, retryable). Weight paths go through the caller's
//       weight-URL converter when it has one, which must answer s3:// URLs.
// Save  uploads every weight file at once (each above multipart_threshold
//       as a parallel multipart upload), then model.json alone, last. Every
//       save gives its weight files names of its own (weights.<tag>.bin,
//       group1-shard1of2.<tag>.bin), so concurrent saves never overwrite
//       each other's files and an old model stays whole until the new
//       model.json replaces it in one PUT. Then the old model's files are
//       deleted, except any that the model.json read back at that moment
//       names. A failed or cancelled save deletes everything it wrote and
//       leaves the old model as it was.
//       A weight file whose bytes were loaded, unchanged, from the same store
//       is copied server-side (CopyObject, only if the source still has the
//       ETag it was read with) instead of uploaded: a copy within one store
//       downloads the weights once and uploads nothing.
//       With digests (option integrity "sha256", the default) each file's
//       SHA-256 is computed in the pass that uploads it and recorded in
//       model.json's group ("sha256"). Content-addressed saves (shard_names
//       "sha256", see SaveSettings) name files after their digests and skip
//       the upload of files already there with that digest.
// Streaming save (the pull form, a streaming copy): the same files, keys,
//       model.json, replacement and cleanup, but each weight file (or, above
//       multipart_threshold, each part) goes up as soon as its bytes have
//       arrived, so the save holds a few buffers, not the model (see
//       stream_upload_internal.hpp).
//
// Thread-safety: the functions may run on several threads at once.
#pragma once

#include <cstdint>
#include <string>

#include "s3_store_internal.hpp"
#include "stowage/artifacts.hpp"

namespace stowage::s3 {

ModelArtifacts load_model(S3Store& store, const plugin::BlobLocation& location, plugin::Call& call);

// As load_model, handing each weight file to `out` as soon as its GET
// completes (several at once, in any order). model.json is checked again
// at the end (as load_model does) only when a weight file is missing or
// newer than the model.json read (Last-Modified, to the second): files
// written before it are the ones it named. A change makes the load start
// again while nothing reached `out`, and fails it with UNAVAILABLE
// (retryable) after that.
void load_model_into(S3Store& store, const plugin::BlobLocation& location, plugin::LoadSink& out,
                     plugin::Call& call);

// model.json and a HEAD of each weight file (their ETags, sizes and times
// make the version), checked against model.json's version as load does. A
// shallow stat reads model.json alone, conditionally when the call holds a
// known version of its own (s3_plugin.cpp, stat).
// NOT_FOUND "No model at <url>: ..." without model.json; DATA_LOSS for a
// missing weight file.
ModelStat stat_model(S3Store& store, const plugin::BlobLocation& location, const std::string& url,
                     plugin::Call& call);

// How a save names and records its weight files.
struct SaveSettings {
  uint64_t shard_size = 0;  // 0: one weight file
  bool sha256 = true;       // record each file's SHA-256 in model.json (option integrity)
  // shard_names "sha256": each file is named after its digest
  // (content_addressed_names), with the digest kept as the object's
  // x-amz-meta-sha256 metadata. A file whose name already holds an object
  // with that metadata is not uploaded again; one held without it, or with
  // another digest, counts as taken (a longer name is used). Implies sha256.
  bool content_addressed = false;
};

// Returns the number of weight files copied server-side (0 in most saves).
size_t save_model(S3Store& store, const plugin::BlobLocation& location,
                  const ModelArtifacts& artifacts, const SaveSettings& settings,
                  plugin::Call& call);

// The same save with the weight bytes pulled from `weights` (meta's
// weight_data is not used). Returns the number of weight files copied
// server-side. Not for content-addressed saves: their names need every
// file's digest before its upload, so they go through save_model.
size_t save_model_streaming(S3Store& store, const plugin::BlobLocation& location,
                            const ModelArtifacts& meta, plugin::WeightSource& weights,
                            const SaveSettings& settings, plugin::Call& call);

}  // namespace stowage::s3
