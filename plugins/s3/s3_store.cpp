#include <future>

#include "s3_store_internal.hpp"
#include "stowage/digest.hpp"
#include "stowage/parallel.hpp"

namespace stowage::s3 {

std::string sha256_of(const std::vector<Buffer>& pieces) {
  Sha256 h;
  for (const Buffer& b : pieces) h.update(std::span<const uint8_t>(b.data(), b.size()));
  return h.finish_hex();
}

net::Control control_of(plugin::Call& call, Progress progress) {
  net::Control c;
  c.cancelled = [&call] { return call.cancelled(); };
  c.deadline = call.deadline();
  if (progress == Progress::kUpload) c.on_sent = [&call](uint64_t n) { call.advance(n); };
  if (progress == Progress::kDownload) c.on_received = [&call](uint64_t n) { call.advance(n); };
  return c;
}

S3Store::S3Store(std::shared_ptr<S3Client> client, std::string bucket, std::string url_suffix)
    : client_(std::move(client)), bucket_(std::move(bucket)), url_suffix_(std::move(url_suffix)) {}

std::optional<Buffer> S3Store::get(const std::string& key, plugin::Call& call) {
  std::optional<Object> o = client_->get(bucket_, key, control_of(call, Progress::kNone));
  if (!o) return std::nullopt;
  return std::move(o->body);
}

std::unique_ptr<plugin::BlobStore::Transaction> S3Store::begin(plugin::Call&) {
  return std::make_unique<S3Transaction>(*this);
}

namespace {

// A key with a "." or ".." segment has no s3:// URL that loads it
// (the plugin refuses such URLs), and a listed URL must load.
bool addressable(std::string_view key) {
  size_t start = 0;
  while (start <= key.size()) {
    size_t end = key.find('/', start);
    if (end == std::string_view::npos) end = key.size();
    const std::string_view segment = key.substr(start, end - start);
    if (segment == "." || segment == "..") return false;
    start = end + 1;
  }
  return true;
}

}  // namespace

std::vector<plugin::BlobInfo> S3Store::list(const std::string& prefix, plugin::Call& call) {
  std::vector<plugin::BlobInfo> out;
  for (ListedObject& o : client_->list(bucket_, prefix, control_of(call, Progress::kNone))) {
    // The store answered another question: nothing in this listing can be
    // trusted to belong to the prefix.
    if (o.key.compare(0, prefix.size(), prefix) != 0) {
      throw Error(ErrorCode::kInternal, "The listing of " + S3Client::name(bucket_, prefix) +
                                            " returned the key \"" + o.key +
                                            "\", which is outside that prefix");
    }
    if (!addressable(o.key)) continue;
    out.push_back({std::move(o.key), o.size, o.last_modified});
  }
  return out;
}

void S3Store::remove(const std::vector<std::string>& keys, plugin::Call& call) {
  if (keys.empty()) return;
  // The first key (model.json) goes first, so no reader finds a model.json
  // whose weight files are already gone.
  client_->remove(bucket_, keys.front(), control_of(call, Progress::kNone));
  remove_all(*client_, bucket_, {keys.begin() + 1, keys.end()}, control_of(call, Progress::kNone));
}

void remove_all(S3Client& client, const std::string& bucket, const std::vector<std::string>& keys,
                const net::Control& control) {
  S3Client::Batch batch(client, control);
  for (const std::string& key : keys) {
    if (!batch.remove(bucket, key)) break;  // wait() says why
  }
  batch.wait();
}

std::string S3Store::url_of(const std::string& key) const {
  return S3Client::name(bucket_, key) + url_suffix_;
}

std::string S3Store::name_of(const std::string& key) const { return S3Client::name(bucket_, key); }

std::optional<plugin::BlobInfo> S3Store::stat(const std::string& key, plugin::Call& call) {
  std::optional<ObjectInfo> info = client_->head(bucket_, key, control_of(call, Progress::kNone));
  if (!info) return std::nullopt;
  return plugin::BlobInfo{key, info->size, info->last_modified};
}

void S3Store::S3Transaction::put(const std::string& key, const std::vector<Buffer>& pieces,
                                 plugin::Call& call) {
  record(key);
  store_.client_->put(store_.bucket_, key, pieces, control_of(call, Progress::kUpload));
}

std::vector<std::string> S3Store::S3Transaction::put_all(const std::vector<Item>& items,
                                                         plugin::Call& call) {
  S3Client& client = *store_.client_;
  // The digests the single requests need (for the caller, and as their
  // payload hash), on all cores: the requests are signed one by one on this
  // thread as they are submitted.
  std::vector<std::string> digests(items.size());
  uint64_t bytes = 0;
  for (const Item& item : items) bytes += total_size(item.pieces);
  stowage::run_parallel(
      items.size(), cpu_width(items.size(), bytes), [&](size_t i, const std::atomic<bool>&) {
        const Item& item = items[i];
        digests[i] = item.sha256;
        if (digests[i].empty() && item.want_sha256 &&
            (item.copy_from || total_size(item.pieces) <= client.config().multipart_threshold)) {
          digests[i] = sha256_of(item.pieces);
        }
      });
  S3Client::Batch batch(client, control_of(call, Progress::kUpload));
  for (size_t i = 0; i < items.size(); ++i) {
    if (!put_item(batch, items[i], digests[i], call)) break;  // wait() says why
  }
  batch.wait();
  return digests;
}

bool S3Store::S3Transaction::put_item(S3Client::Batch& batch, const Item& item, std::string& digest,
                                      plugin::Call& call) {
  S3Client& client = *store_.client_;
  const uint64_t size = total_size(item.pieces);
  const bool single = size <= client.config().multipart_threshold;
  if (!item.copy_from && !single) {
    // A multipart upload, its parts in a batch of their own.
    digest = put_item(item, batch.control(), call);
    return true;
  }
  // A single PutObject hashes its body once for both the digest and SigV4's
  // payload hash; a copy sends no byte, so the digest comes from the bytes
  // in hand.
  if (digest.empty() && item.want_sha256) digest = sha256_of(item.pieces);
  record(item.key);  // before the request: a cut-short PUT may still land
  if (!item.copy_from) {
    return batch.put(store_.bucket_, item.key, item.pieces, {digest, item.store_sha256});
  }
  // Refused or outdated copies are uploaded instead, on this thread while
  // the batch's other requests go on; the step holds the item until then.
  auto upload = [this, held = std::make_shared<const Item>(item), &batch, digest] {
    store_.client_->put(store_.bucket_, held->key, held->pieces, batch.control(),
                        {digest, held->store_sha256});
  };
  return batch.copy(
      item.copy_from->first, item.copy_from->second, item.copy_etag, store_.bucket_, item.key,
      item.store_sha256 ? digest : std::string(),
      [this, from = S3Client::name(item.copy_from->first, item.copy_from->second), &call, size,
       upload](std::optional<std::string> etag) {
        if (etag) {
          copies_.fetch_add(1);
          call.advance(size);
          return;
        }
        plugin::log(0, "s3: " + from + " changed since it was read; uploading instead of copying");
        upload();
      },
      [upload](const Error& e) {
        if (e.retryable() || e.code() == ErrorCode::kCancelled ||
            e.code() == ErrorCode::kDeadlineExceeded) {
          throw e;
        }
        plugin::log(
            0, std::string("s3: server-side copy refused (") + e.what() + "); uploading instead");
        upload();
      });
}

std::string S3Store::S3Transaction::put_item(const Item& item, const net::Control& c,
                                             plugin::Call& call) {
  S3Client& client = *store_.client_;
  record(item.key);  // before the request: a cut-short PUT may still land
  std::string digest = item.sha256;
  const uint64_t size = total_size(item.pieces);
  if (item.copy_from) {
    try {
      net::Control quiet = c;
      quiet.on_sent = nullptr;
      // No byte goes up: the digest comes from the bytes in hand.
      if (digest.empty() && item.want_sha256) digest = sha256_of(item.pieces);
      if (client.copy(item.copy_from->first, item.copy_from->second, item.copy_etag, store_.bucket_,
                      item.key, quiet, item.store_sha256 ? digest : std::string())) {
        copies_.fetch_add(1);
        call.advance(size);
        return digest;
      }
      plugin::log(0, "s3: " + S3Client::name(item.copy_from->first, item.copy_from->second) +
                         " changed since it was read; uploading instead of copying");
    } catch (const Error& e) {
      if (e.retryable() || e.code() == ErrorCode::kCancelled ||
          e.code() == ErrorCode::kDeadlineExceeded) {
        throw;
      }
      plugin::log(
          0, std::string("s3: server-side copy refused (") + e.what() + "); uploading instead");
    }
  }
  if (!digest.empty() || !item.want_sha256) {
    client.put(store_.bucket_, item.key, item.pieces, c, {digest, item.store_sha256});
    return digest;
  }
  if (size <= client.config().multipart_threshold) {
    digest = sha256_of(item.pieces);
    client.put(store_.bucket_, item.key, item.pieces, c, {digest, false});
    return digest;
  }
  // Each part is hashed for its own signature; the whole body's digest is
  // another hash, computed here while the parts go up.
  std::future<void> upload =
      std::async(std::launch::async, [&] { client.put(store_.bucket_, item.key, item.pieces, c); });
  try {
    digest = sha256_of(item.pieces);
  } catch (...) {
    upload.wait();
    throw;
  }
  upload.get();
  return digest;
}

void S3Store::S3Transaction::remove(const std::vector<std::string>& keys, plugin::Call&) {
  stale_.insert(stale_.end(), keys.begin(), keys.end());
}

void S3Store::S3Transaction::commit(plugin::Call&) {
  forget_written();
  if (stale_.empty()) return;
  // The new model is published; its replaced weight files go now. A failure
  // leaves unreferenced objects behind, never a broken model.
  try {
    remove_all(*store_.client_, store_.bucket_, stale_, cleanup_control());
  } catch (const std::exception& e) {
    plugin::log(2, std::string("s3: the new model is saved, but deleting the weight files it "
                               "replaced failed: ") +
                       e.what());
  }
}

void S3Store::S3Transaction::abort() noexcept {
  std::vector<std::string> keys;
  {
    std::lock_guard<std::mutex> lock(mu_);
    keys.swap(written_);
  }
  if (keys.empty()) return;
  try {
    remove_all(*store_.client_, store_.bucket_, keys, cleanup_control());
  } catch (const std::exception& e) {
    plugin::log(2, std::string("s3: a failed save could not delete what it wrote: ") + e.what());
  } catch (...) {
  }
}

}  // namespace stowage::s3
