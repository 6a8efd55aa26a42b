// The S3 REST calls this plugin makes, signed with SigV4 and sent through
// stowage::net: GetObject (also conditional: If-None-Match), HeadObject, PutObject (single or
// parallel multipart), DeleteObject, ListObjectsV2 (every page), CopyObject, ListMultipartUploads
// and AbortMultipartUpload.
//
// Every request signs host, x-amz-date and x-amz-content-sha256 (the SHA-256
// of the body; UNSIGNED-PAYLOAD only with ClientConfig::unsigned_payload), and
// adds no checksum headers (x-amz-checksum-*, x-amz-sdk-checksum-algorithm):
// stores that reject them keep working. A weight file's SHA-256 travels as
// user metadata (x-amz-meta-sha256, see BodyDigest), which every
// S3-compatible store keeps. Redirects are not followed (S3's 301
// means "wrong region" and is reported as such).
//
// Errors are stowage::Error whose message names the operation, s3://bucket/key,
// the HTTP status and the S3 error code and message, and never a secret:
//   NoSuchBucket, NoSuchKey, 404            kNotFound
//   AccessDenied, InvalidAccessKeyId,
//   SignatureDoesNotMatch, ExpiredToken,
//   RequestTimeTooSkewed, 401/403           kPermissionDenied
//   SlowDown, InternalError, RequestTimeout,
//   OperationAborted, 408/429/500/502/503/504  kUnavailable, retryable
//   PermanentRedirect, AuthorizationHeaderMalformed (wrong region),
//   InvalidBucketName, other 400s           kInvalidArgument
//   EntityTooLarge, 413                     kResourceExhausted
//   NotImplemented, 501                     kUnimplemented
// Connection failures come from stowage::net as retryable kUnavailable. No
// request is retried here: the host's retry policy retries the operation.
//
// Thread-safety: an S3Client may be used from many threads at once.
// Ownership: it owns its HTTP client (an I/O thread and a connection pool).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "http_client.hpp"
#include "imds_internal.hpp"
#include "s3_xml_internal.hpp"
#include "sigv4_internal.hpp"
#include "stowage/buffer.hpp"

namespace stowage::s3 {

enum class Addressing { kAuto, kPath, kVirtual };

struct ClientConfig {
  std::string endpoint;  // "http://127.0.0.1:9000"; "" is AWS's endpoint for the region
  std::string region = "us-east-1";
  Addressing addressing = Addressing::kAuto;
  std::optional<Credentials> credentials;  // nullopt: unsigned requests (without provider)
  // Credentials that change over time (instance metadata); wins when set.
  std::shared_ptr<CredentialProvider> provider;
  bool anonymous = false;          // no credentials, on purpose
  std::string credentials_source;  // for messages
  std::string searched;            // where credentials were looked for
  bool unsigned_payload = false;
  // Objects larger than this go up as multipart uploads of part_size parts
  // (made larger when 10,000 parts would not hold the object), and weight
  // files a load expects to be larger come down as parallel ranged GETs of
  // part_size (get_ranged).
  uint64_t multipart_threshold = 16ull << 20;
  uint64_t part_size = 16ull << 20;
  // Requests in flight at once for one operation (parts, shards, deletes).
  size_t concurrency = 8;
  net::ClientOptions http;
};

struct ObjectInfo {
  uint64_t size = 0;
  std::optional<std::chrono::system_clock::time_point> last_modified;
  std::string etag;
  // The x-amz-meta-sha256 user metadata a content-addressed save stores with
  // each weight object (its SHA-256, lowercase hex); empty when absent.
  std::string sha256;
};

// What a put knows and records about the body's SHA-256. `hex`, when set,
// is the whole body's digest, computed by the caller: a single PutObject
// sends it as x-amz-content-sha256 instead of hashing the body again. With
// `store`, it is also kept with the object as x-amz-meta-sha256 (on the
// PutObject, or the CreateMultipartUpload of a multipart upload).
struct BodyDigest {
  std::string hex;
  bool store = false;
};

struct Object {
  Buffer body;
  ObjectInfo info;
};

// What get_if_none_match answers: not_modified (a 304: the object still has
// the ETag asked about; no body was read), or the object as get returns it.
struct ConditionalObject {
  bool not_modified = false;
  std::optional<Object> object;  // when modified; nullopt when the key does not exist
};

class S3Client {
 public:
  // Throws Error(kInvalidArgument) for an endpoint that is not an http(s)
  // URL, naming it.
  explicit S3Client(ClientConfig config);
  ~S3Client();
  S3Client(const S3Client&) = delete;
  S3Client& operator=(const S3Client&) = delete;

  const ClientConfig& config() const noexcept { return config_; }
  // "s3://bucket/key", how messages name an object.
  static std::string name(const std::string& bucket, const std::string& key);
  // The endpoint actually used ("https://s3.eu-west-1.amazonaws.com" for AWS).
  const std::string& endpoint() const noexcept { return endpoint_; }
  // Where requests for bucket/key go: virtual-hosted (https://bucket.host/key)
  // with Addressing::kVirtual, and with kAuto for AWS endpoints when the
  // bucket name is a DNS label (without dots over https); path-style
  // (http://host/bucket/key) otherwise.
  std::string url_for(const std::string& bucket, const std::string& key) const;

  // nullopt when the key does not exist (NoSuchKey); a missing bucket is an
  // error. on_size, when set, learns the body's length before it is read
  // (on the client's I/O thread).
  std::optional<Object> get(const std::string& bucket, const std::string& key,
                            const net::Control& control,
                            std::function<void(uint64_t)> on_size = nullptr);
  // As get, but sent with If-None-Match: etag (signed like every header), so
  // a store that still holds that version answers 304 without the body.
  // A store that ignores the header answers 200, returned as get would.
  ConditionalObject get_if_none_match(const std::string& bucket, const std::string& key,
                                      const std::string& etag, const net::Control& control);
  // As get, in parallel ranged GETs of part_size bytes (at most concurrency
  // at once) received into one memfd mapping: for objects the caller expects
  // to be large. The first range's answer gives the size and the ETag; the
  // other ranges ask for that ETag (If-Match), so an object replaced during
  // the read fails with kUnavailable (retryable) instead of mixing versions.
  // A store that ignores Range answers the first request with the whole
  // object, which is used as it is.
  std::optional<Object> get_ranged(const std::string& bucket, const std::string& key,
                                   const net::Control& control,
                                   std::function<void(uint64_t)> on_size = nullptr);
  std::optional<ObjectInfo> head(const std::string& bucket, const std::string& key,
                                 const net::Control& control);
  // Stores body (the concatenation of the pieces) at key: one PutObject, or
  // above multipart_threshold a multipart upload of parallel parts that is
  // aborted when any part fails (nothing is left behind by this call, except
  // when the abort itself fails; then the message says so). Returns the ETag.
  std::string put(const std::string& bucket, const std::string& key,
                  const std::vector<Buffer>& body, const net::Control& control,
                  const BodyDigest& digest = {});
  // A multipart upload driven by the caller, for bodies that arrive in
  // pieces (a streaming save): create_multipart returns the upload id; then
  // upload_part for each part (numbered from 1 of `parts`, any order, from
  // any thread) returns its ETag; complete_multipart takes every part's ETag
  // in order and returns the object's. On failure the caller aborts the
  // upload with abort_multipart. Every part but the last must be
  // part_size_for(object size) long.
  // `sha256` (lowercase hex), when set, is stored as x-amz-meta-sha256.
  std::string create_multipart(const std::string& bucket, const std::string& key,
                               const net::Control& control, const std::string& sha256 = {});
  std::string upload_part(const std::string& bucket, const std::string& key,
                          const std::string& upload_id, size_t number, size_t parts,
                          const std::vector<Buffer>& body, const net::Control& control);
  std::string complete_multipart(const std::string& bucket, const std::string& key,
                                 const std::string& upload_id,
                                 const std::vector<std::string>& etags,
                                 const net::Control& control);
  // The part size for an object of `size` bytes: part_size, at least 5 MiB,
  // made larger when 10,000 parts would not hold the object.
  uint64_t part_size_for(uint64_t size) const;
  // DeleteObject; a key that does not exist is not an error.
  void remove(const std::string& bucket, const std::string& key, const net::Control& control);
  // Every object under prefix (ListObjectsV2, encoding-type=url, following
  // continuation tokens), in key order.
  std::vector<ListedObject> list(const std::string& bucket, const std::string& prefix,
                                 const net::Control& control);
  // CopyObject within this store, only if the source still has etag
  // (x-amz-copy-source-if-match). nullopt when the source changed (412);
  // otherwise the new ETag. `sha256` (lowercase hex), when set, replaces the
  // copy's user metadata with x-amz-meta-sha256.
  std::optional<std::string> copy(const std::string& src_bucket, const std::string& src_key,
                                  const std::string& etag, const std::string& bucket,
                                  const std::string& key, const net::Control& control,
                                  const std::string& sha256 = {});
  // The multipart uploads in progress under prefix (one page, up to 1000).
  std::vector<PendingUpload> list_multipart_uploads(const std::string& bucket,
                                                    const std::string& prefix,
                                                    const net::Control& control);
  void abort_multipart(const std::string& bucket, const std::string& key,
                       const std::string& upload_id, const net::Control& control);

 private:
  struct Request;

 public:
  // Calls sent in parallel on the HTTP client's I/O thread
  // (net::Client::Batch): the plugin's fan-outs (HEADs and GETs of a model's
  // files, uploads of files and parts, deletions). Each call's request is
  // signed as it is submitted; its answer is checked as the single call
  // above checks it (same errors), and `then` gets the result, on the
  // submitting thread (in a submit or in wait()). At most concurrency
  // requests are in flight or answered and not yet stepped, so a caller
  // holds the bodies of at most concurrency + 1 uploads. The first failure
  // (a request, a check, a `then`) cancels the others; submit then returns
  // false and wait() rethrows it. Control as for net::Client::Batch (one
  // for all calls: its on_sent counts every request's body).
  // Thread-safety: one thread submits and waits. Ownership: must not
  // outlive the client; destroyed unwaited, it cancels what is in flight.
  class Batch {
   public:
    using Order = net::Client::Batch::Order;
    Batch(S3Client& client, const net::Control& control, Order order = Order::kAnswered);
    ~Batch();
    Batch(const Batch&) = delete;
    Batch& operator=(const Batch&) = delete;

    bool head(const std::string& bucket, const std::string& key,
              std::function<void(std::optional<ObjectInfo>)> then);
    bool get(const std::string& bucket, const std::string& key,
             std::function<void(std::optional<Object>)> then,
             std::function<void(uint64_t)> on_size = nullptr);
    // One PutObject whatever the size: larger bodies go up with put().
    bool put(const std::string& bucket, const std::string& key, const std::vector<Buffer>& body,
             const BodyDigest& digest, std::function<void(std::string etag)> then = {});
    // payload_sha256 (lowercase hex): the part's SHA-256 when the caller has
    // it, else computed while signing.
    bool upload_part(const std::string& bucket, const std::string& key,
                     const std::string& upload_id, size_t number, size_t parts,
                     std::vector<Buffer> body, std::string payload_sha256,
                     std::function<void(std::string etag)> then);
    // With `refused` set, an error answer (not a transport failure) goes
    // there instead of failing the batch.
    bool copy(const std::string& src_bucket, const std::string& src_key, const std::string& etag,
              const std::string& bucket, const std::string& key, const std::string& sha256,
              std::function<void(std::optional<std::string> etag)> then,
              std::function<void(const Error& refused)> refused = {});
    bool remove(const std::string& bucket, const std::string& key);
    void wait();
    // The batch's Control, for calls a step makes on its own.
    const net::Control& control() const noexcept { return control_; }

   private:
    bool submit(const Request& request, std::function<void(net::Response&)> check);
    S3Client& client_;
    net::Control control_;
    net::Client::Batch batch_;
  };

 private:
  // Each call as its request and the check of its answer, shared by the
  // single calls and Batch.
  static Request get_request(const std::string& bucket, const std::string& key,
                             std::function<void(uint64_t)> on_size);
  std::optional<Object> get_answer(const Request& request, net::Response& response) const;
  static Request head_request(const std::string& bucket, const std::string& key);
  std::optional<ObjectInfo> head_answer(const Request& request,
                                        const net::Response& response) const;
  static Request put_request(const std::string& bucket, const std::string& key,
                             const std::vector<Buffer>& body, const BodyDigest& digest);
  std::string put_answer(const Request& request, const net::Response& response) const;
  static Request upload_part_request(const std::string& bucket, const std::string& key,
                                     const std::string& upload_id, size_t number, size_t parts,
                                     const std::vector<Buffer>& body,
                                     std::string payload_sha256 = {});
  std::string upload_part_answer(const Request& request, const net::Response& response) const;
  static Request copy_request(const std::string& src_bucket, const std::string& src_key,
                              const std::string& etag, const std::string& bucket,
                              const std::string& key, const std::string& sha256);
  std::optional<std::string> copy_answer(const Request& request,
                                         const net::Response& response) const;
  static Request remove_request(const std::string& bucket, const std::string& key);
  void remove_answer(const Request& request, const net::Response& response) const;
  net::Url target(const std::string& bucket, const std::string& key) const;
  net::Response send(const Request& request, const net::Control& control);
  // The signed HTTP request for `request` (send() sends one; a batch signs
  // each as it is submitted, so none waits long after its x-amz-date).
  net::Request signed_request(const Request& request, const net::Control& control);
  [[noreturn]] void fail(const Request& request, const net::Response& response) const;
  std::string put_multipart(const std::string& bucket, const std::string& key,
                            const std::vector<Buffer>& body, uint64_t size,
                            const net::Control& control, const std::string& sha256);

  ClientConfig config_;
  std::string endpoint_;
  net::Url base_;
  bool aws_ = false;
  std::unique_ptr<net::Client> http_;
};

// A Control for cleaning up after a failure: never cancelled, bounded by
// `budget` from now.
net::Control cleanup_control(std::chrono::milliseconds budget = std::chrono::seconds(30));

}  // namespace stowage::s3
