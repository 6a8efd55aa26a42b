// One bucket of an S3-compatible store as a stowage::plugin::BlobStore
// (get, put, list, remove on keys), so the kit's TF.js layout code lists and
// removes models here exactly as it does for files. Save and load have their
// own S3 versions (s3_model_internal.hpp): parallel, with replacement-safe names.
//
// Thread-safety: every member may be called from several threads at once; a
// Transaction is used by one thread at a time. Ownership: the store shares
// its S3Client with the handler.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "s3_client_internal.hpp"
#include "stowage/blob_store.hpp"

// Private to the plugin library, like the kit it builds on.
#pragma GCC visibility push(hidden)

namespace stowage::s3 {

// A net::Control for one plugin call: its cancellation and deadline, and
// byte progress of request bodies (upload) or response bodies (download).
enum class Progress { kNone, kUpload, kDownload };
net::Control control_of(plugin::Call& call, Progress progress);

// SHA-256 (lowercase hex) of the pieces' concatenation.
std::string sha256_of(const std::vector<Buffer>& pieces);

// DeleteObject of every key, in parallel (S3Client::Batch); the first
// failure stops the rest and is thrown.
void remove_all(S3Client& client, const std::string& bucket, const std::vector<std::string>& keys,
                const net::Control& control);

class S3Store final : public plugin::BlobStore {
 public:
  // url_suffix ("?endpoint=...") is appended to the URLs of listed models
  // so they load with the same settings.
  S3Store(std::shared_ptr<S3Client> client, std::string bucket, std::string url_suffix);

  class S3Transaction;

  std::optional<Buffer> get(const std::string& key, plugin::Call& call) override;
  std::unique_ptr<Transaction> begin(plugin::Call& call) override;
  std::vector<plugin::BlobInfo> list(const std::string& prefix, plugin::Call& call) override;
  // model.json first, then the other keys in parallel.
  void remove(const std::vector<std::string>& keys, plugin::Call& call) override;
  std::string url_of(const std::string& key) const override;
  std::string name_of(const std::string& key) const override;
  std::optional<plugin::BlobInfo> stat(const std::string& key, plugin::Call& call) override;

  S3Client& client() const noexcept { return *client_; }
  const std::string& bucket() const noexcept { return bucket_; }

 private:
  std::shared_ptr<S3Client> client_;
  std::string bucket_;
  std::string url_suffix_;
};

// The writes of one save. put() uploads at once (S3 has no transactions);
// what matters is what abort() undoes: every key this transaction started
// to write is deleted (a request cut short may still have landed), and
// multipart uploads are aborted by S3Client::put itself. commit() deletes
// the keys passed to remove(); a failure there is logged, not thrown, since
// the new model is already published. put, put_all, put_item and record
// may run on several threads at once.
class S3Store::S3Transaction final : public plugin::BlobStore::Transaction {
 public:
  explicit S3Transaction(S3Store& store) : store_(store) {}
  ~S3Transaction() override = default;

  void put(const std::string& key, const std::vector<Buffer>& pieces, plugin::Call& call) override;
  // Several puts at once, at most the client's concurrency in flight. Each
  // item may instead be a server-side copy (copy_from set): when the copy
  // is refused (the source changed, or no permission) it is uploaded.
  // Returns each item's SHA-256 (put_item's answer), in items' order.
  struct Item {
    std::string key;
    std::vector<Buffer> pieces;
    std::optional<std::pair<std::string, std::string>> copy_from;  // bucket, key
    std::string copy_etag;
    // The pieces' SHA-256 (lowercase hex) when the caller has it already;
    // else computed when want_sha256: a single PutObject hashes its body
    // once for both the digest and SigV4's payload hash, a multipart upload
    // hashes the whole body on the calling thread while its parts go up.
    std::string sha256;
    bool want_sha256 = false;
    bool store_sha256 = false;  // keep it with the object as x-amz-meta-sha256
  };
  std::vector<std::string> put_all(const std::vector<Item>& items, plugin::Call& call);
  // One item of put_all, with the caller's control (its stop flag); may run
  // on any thread. Returns the item's SHA-256, empty when it was neither
  // given nor wanted.
  std::string put_item(const Item& item, const net::Control& control, plugin::Call& call);
  // One item of put_all submitted to `batch`; `digest` (the item's sha256,
  // or one computed here when wanted) must outlive batch.wait(). A
  // multipart upload runs here and now (its parts in a batch of their
  // own); a copy refused is uploaded in its step. False once the batch
  // failed (its wait() says why).
  bool put_item(S3Client::Batch& batch, const Item& item, std::string& digest, plugin::Call& call);
  // Marks key as written by this save (abort() deletes it), before any
  // request that may create it: a cut-short request may still land.
  void record(const std::string& key) {
    std::lock_guard<std::mutex> lock(mu_);
    written_.push_back(key);
  }
  void remove(const std::vector<std::string>& keys, plugin::Call& call) override;
  void commit(plugin::Call& call) override;
  void abort() noexcept override;
  // Keys written so far that a successful save keeps (after commit(), the
  // cleanup of abort() no longer applies to them).
  void forget_written() {
    std::lock_guard<std::mutex> lock(mu_);
    written_.clear();
  }
  // Server-side copies done (for tests and logs).
  size_t copies() const noexcept { return copies_.load(); }

 private:
  S3Store& store_;
  std::mutex mu_;
  std::vector<std::string> written_;
  std::vector<std::string> stale_;
  std::atomic<size_t> copies_{0};
};

}  // namespace stowage::s3

#pragma GCC visibility pop
