#include <atomic>
#include <memory>
#include <optional>

#include "stowage/digest.hpp"
#include "stream_upload_internal.hpp"

namespace stowage::s3 {
namespace {

// The source's bytes in order, as slices of its buffers; it holds only the
// buffer being cut, so a buffer is released once the slices taken from it
// are.
class Feed {
 public:
  Feed(plugin::WeightSource& source, const std::string& url, plugin::Call& call)
      : source_(source), url_(url), call_(call) {}

  // The next n bytes (a buffer that fits whole is passed as it is, so a
  // loaded object can still be recognised for a server-side copy).
  std::vector<Buffer> take(uint64_t n) {
    std::vector<Buffer> pieces;
    while (n > 0) {
      if (!fill()) {
        throw Error(ErrorCode::kDataLoss, "The weight data saved to " + url_ + " ended after " +
                                              std::to_string(taken_) + " of " +
                                              std::to_string(source_.total_bytes()) + " bytes");
      }
      const uint64_t k = std::min(current_->size() - offset_, n);
      pieces.push_back(k == current_->size() ? *current_ : current_->slice(offset_, k));
      offset_ += k;
      n -= k;
      taken_ += k;
      if (offset_ == current_->size()) current_.reset();
    }
    return pieces;
  }

  // Whether the next n bytes are all in one buffer already pulled (or the
  // next one, pulled now).
  bool within_one_buffer(uint64_t n) { return fill() && current_->size() - offset_ >= n; }

  // Pulls the source to its end, as abi.h asks of a successful save.
  void finish() {
    if (fill()) {
      throw Error(ErrorCode::kDataLoss,
                  "The weight data saved to " + url_ + " holds more than the " +
                      std::to_string(source_.total_bytes()) + " bytes its weight specs need");
    }
  }

 private:
  // True once current_ has bytes left; false at the source's end.
  bool fill() {
    while (!current_) {
      call_.check();
      std::optional<Buffer> b = source_.next();
      if (!b) return false;
      if (!b->empty()) {
        current_ = std::move(b);
        offset_ = 0;
      }
    }
    return true;
  }

  plugin::WeightSource& source_;
  const std::string& url_;
  plugin::Call& call_;
  std::optional<Buffer> current_;
  uint64_t offset_ = 0;
  uint64_t taken_ = 0;
};

// One multipart upload whose parts go up in the save's batch; the step of
// the last part answered completes it.
struct Multipart {
  std::string key;
  std::string upload_id;
  std::vector<std::string> etags;  // by part, each written by its step
  size_t left = 0;
  bool completed = false;
};

// Aborts the multipart uploads a failed save left open. Their keys are in
// the transaction, whose abort() deletes any object that did complete.
void abort_open(S3Client& client, const std::string& bucket,
                const std::vector<std::shared_ptr<Multipart>>& uploads) noexcept {
  for (const auto& up : uploads) {
    if (up->completed) continue;
    try {
      client.abort_multipart(bucket, up->key, up->upload_id, cleanup_control());
    } catch (const std::exception& e) {
      plugin::log(2, std::string("s3: a failed save could not abort its multipart upload of ") +
                         S3Client::name(bucket, up->key) + ", its parts remain: " + e.what());
    }
  }
}

}  // namespace

std::vector<std::string> upload_streamed(
    S3Store& store, S3Store::S3Transaction& txn, const std::vector<WeightFile>& files,
    plugin::WeightSource& source, const std::function<void(S3Store::S3Transaction::Item&)>& prepare,
    const std::string& url, bool want_sha256, plugin::Call& call) {
  S3Client& client = store.client();
  const std::string& bucket = store.bucket();
  const net::Control control = control_of(call, Progress::kUpload);
  net::Control quiet = control;  // requests whose bodies are not weight bytes
  quiet.on_sent = nullptr;
  std::vector<std::shared_ptr<Multipart>> uploads;
  Feed feed(source, url, call);
  // Each written by a step or by this thread; the steps run on this thread.
  std::vector<std::string> digests(files.size());
  // At most concurrency uploads in flight: their bodies are all this save
  // holds, besides the file or part being gathered.
  std::optional<S3Client::Batch> batch;
  batch.emplace(client, control);
  bool stopped = false;  // the batch failed: wait() says why
  try {
    for (size_t f = 0; f < files.size() && !stopped; ++f) {
      const WeightFile& file = files[f];
      if (file.size <= client.config().multipart_threshold || feed.within_one_buffer(file.size)) {
        S3Store::S3Transaction::Item item;
        item.key = file.key;
        item.pieces = feed.take(file.size);
        item.want_sha256 = want_sha256;
        if (prepare) prepare(item);
        stopped = !txn.put_item(*batch, item, digests[f], call);
        continue;
      }
      const uint64_t part = client.part_size_for(file.size);
      const size_t parts = static_cast<size_t>((file.size + part - 1) / part);
      auto up = std::make_shared<Multipart>();
      up->key = file.key;
      up->etags.resize(parts);
      up->left = parts;
      txn.record(file.key);
      up->upload_id = client.create_multipart(bucket, file.key, quiet);
      uploads.push_back(up);
      Sha256 whole;  // the parts come in order here, whatever order they go up in
      for (size_t i = 0; i < parts && !stopped; ++i) {
        std::vector<Buffer> body = feed.take(std::min(part, file.size - i * part));
        if (want_sha256) {
          for (const Buffer& b : body) whole.update(std::span<const uint8_t>(b.data(), b.size()));
        }
        stopped = !batch->upload_part(bucket, up->key, up->upload_id, i + 1, parts, std::move(body),
                                      {}, [&client, &bucket, &quiet, up, i](std::string etag) {
                                        up->etags[i] = std::move(etag);
                                        if (--up->left == 0) {
                                          client.complete_multipart(bucket, up->key, up->upload_id,
                                                                    up->etags, quiet);
                                          up->completed = true;
                                        }
                                      });
      }
      if (want_sha256) digests[f] = whole.finish_hex();
    }
    if (!stopped) feed.finish();
  } catch (...) {
    batch.reset();  // cancels what is in flight and waits for it
    abort_open(client, bucket, uploads);
    throw;
  }
  try {
    batch->wait();
  } catch (...) {
    abort_open(client, bucket, uploads);
    throw;
  }
  return digests;
}

}  // namespace stowage::s3
