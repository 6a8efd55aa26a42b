// stowage::net — a small HTTP/1.1 client for plugins (http, s3, ...), built on
// Boost.Beast and OpenSSL behind this header (nothing of Asio leaks out).
//
// The API is synchronous: a call blocks the calling thread while the
// client's own I/O thread does the work, polling the caller's cancellation
// flag and deadline. Many requests can run in parallel through send_all(),
// over kept-alive connections pooled per origin with a per-host cap.
//
//   stowage::net::ClientOptions options;
//   options.ca_file = "/etc/my-ca.pem";
//   stowage::net::Client client(options);
//   stowage::net::Request get{"GET", "https://h/models/a/model.json"};
//   stowage::net::Response r = client.send(get);
//   if (!r.ok()) ... r.status, r.header("content-type"), r.body.view() ...
//
// What the client does for every request:
//   - TLS with certificate verification on (system CA store, or ca_file /
//     ca_path), SNI and host name (or IP address) verification; only
//     insecure_skip_tls_verify turns verification off.
//   - Redirects (301, 302, 303, 307, 308) followed up to max_redirects; a
//     URL seen twice is reported as a loop. 303, and 301/302 after a POST,
//     continue as GET without a body (as fetch does); 307/308 resend the
//     body. Authorization, Cookie and Proxy-Authorization are dropped when a
//     redirect leaves the origin, unless the request says otherwise.
//   - Response bodies with a Content-Length are read straight into one
//     buffer allocated once at that size (no intermediate copies); from
//     256 KiB on plain TCP that buffer is a memfd the kernel splices the
//     socket's bytes into, handed out as a read-only mapping (memfd_body.hpp);
//     chunked bodies grow a buffer. A ranged answer can go into its part of
//     a buffer shared with the other ranges (Request::into).
//   - Request bodies are written from a list of Buffers as they are (gather
//     writes), so a multipart upload never joins the weight bytes.
//   - A kept-alive connection the server closed while idle is replaced and
//     the request sent again on a fresh connection (only when no byte of an
//     answer had arrived on the old one).
//   - A 200 answer whose Repr-Digest (RFC 9530) or Digest (RFC 3230) header
//     gives a sha-256 has its body hashed as it arrives and checked against
//     it (Request::check_digest_headers); see sha256_from_digest_headers().
//
// Errors: transport failures throw stowage::Error; an HTTP status is never an
// error here (callers decide, see status_error() below). Codes:
//   kInvalidArgument  malformed URL or header, unsupported scheme
//   kUnavailable      connection refused/reset/closed, a truncated body,
//                     connect or read timeout — retryable; an unknown host,
//                     a TLS handshake or certificate failure, a redirect
//                     loop or too many redirects — not retryable
//   kDataLoss         a body longer than max_body_bytes; a body whose SHA-256
//                     differs from its Repr-Digest/Digest header, or such a
//                     header with a malformed sha-256 (not retryable)
//   kCancelled        Control::cancelled returned true
//   kDeadlineExceeded Control::deadline passed (not retryable)
//   (none)            an HTTP status is never thrown; see status_error()
// Messages name the method and URL with secrets redacted (redact_url) and
// never contain header values; every error thrown also names its request
// (Error::request()), so the host can announce a retry of it.
//
// Thread-safety: a Client may be used from many threads at once; Request,
// Response and Control are plain values owned by the caller. Ownership: the
// Client owns its I/O thread and connections; destroying it cancels what is
// in flight and joins the thread (no call may still be running).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "stowage/buffer.hpp"
#include "stowage/error.hpp"
#include "stowage/text.hpp"

namespace stowage::net {

// ---- URLs -----------------------------------------------------------------

// An absolute http or https URL split for the wire. Thread-safety: a value.
struct Url {
  std::string scheme;    // "http" or "https", lowercase
  std::string userinfo;  // as written, without the '@'; usually empty
  std::string host;      // lowercase; an IPv6 literal without brackets
  uint16_t port = 0;     // the default port of the scheme when none was written
  std::string target;    // path and query as sent ("/" when the path is empty); no fragment

  // Parses an absolute http(s) URL. Characters that may not appear in a
  // request target (spaces, non-ASCII, controls) are percent-encoded;
  // existing %XX escapes are kept. Throws Error(kInvalidArgument) naming
  // the (redacted) URL.
  static Url parse(std::string_view text);

  // RFC 3986 §5 resolution of a reference (absolute URL, "//host/p",
  // "/abs", "rel", "?q", "../x") against this URL; used for Location.
  Url resolve(std::string_view reference) const;

  bool default_port() const noexcept { return port == (scheme == "https" ? 443 : 80); }
  // "host" or "host:port" (brackets around IPv6), as the Host header wants.
  std::string authority() const;
  // "scheme://host:port" with the port always written: the pool's key.
  std::string origin() const;
  // The URL as text (userinfo kept), "scheme://authority/target".
  std::string str() const;
};

// ---- Requests and responses ----------------------------------------------

// Header lists keep order and duplicates; names compare case-insensitively.
using Headers = std::vector<std::pair<std::string, std::string>>;

// Case-insensitive lookup of the first header named name.
std::optional<std::string_view> find_header(const Headers& headers, std::string_view name);

struct Response;
class SharedBody;  // memfd_body.hpp

struct Request {
  Request() = default;
  Request(std::string method_, std::string url_)
      : method(std::move(method_)), url(std::move(url_)) {}

  std::string method = "GET";
  std::string url;  // absolute http(s) URL
  // Sent as given, in order. The client adds Host, Content-Length (when there
  // is a body or the method is POST/PUT/PATCH), User-Agent and Accept-Encoding:
  // identity unless the request sets them. Names and values with CR, LF or
  // NUL are refused (kInvalidArgument).
  Headers headers;
  // The body: the concatenation of these pieces, written without copying.
  std::vector<Buffer> body;
  // A body longer than this is kDataLoss (protects against a wrong URL
  // answering with gigabytes). Also bounds chunked bodies.
  uint64_t max_body_bytes = UINT64_MAX;
  bool follow_redirects = true;
  // Keep Authorization/Cookie/Proxy-Authorization on redirects to another
  // origin (off by default, as browsers do).
  bool keep_credentials_across_origins = false;
  // Called on the client's I/O thread once the status line and headers of
  // the final response are in, before the body is read (redirects are
  // followed first). Throwing fails the request with that exception without
  // reading the body, and the connection is dropped: use it to refuse a
  // response early (wrong status, length or content type). Keep it short.
  std::function<void(const Response& head)> on_head;
  // A name for messages ("shard 3 of 7"); may be empty.
  std::string label;
  // Check a 200 answer's body against the sha-256 of its Repr-Digest or
  // Digest header, when it has one (other algorithms are ignored; 206
  // answers are not checked: the header describes the whole file).
  bool check_digest_headers = true;
  // A 206 answer's body goes into [into_offset, into_offset + into_length)
  // of `into` instead of a buffer of its own, so the parallel ranged GETs of
  // one large object fill one mapping without a copy (SharedBody in
  // memfd_body.hpp; it must stay alive until the call returns). Its
  // Content-Length must be into_length, else kDataLoss; Response::body is
  // then empty. Answers of any other status are read as usual.
  std::shared_ptr<SharedBody> into;
  uint64_t into_offset = 0;
  uint64_t into_length = 0;
};

struct Response {
  int status = 0;
  std::string reason;
  Headers headers;
  // The URL that answered, after redirects (as text, not redacted).
  std::string url;
  // The body; exactly Content-Length bytes when the server sent one. Its
  // label is the URL, redacted. Empty for HEAD, 204 and 304.
  Buffer body;
  // The Content-Length the server announced, when it did.
  std::optional<uint64_t> content_length;

  bool ok() const noexcept { return status >= 200 && status <= 299; }
  std::optional<std::string_view> header(std::string_view name) const {
    return find_header(headers, name);
  }
  // The media type without parameters, lowercase ("text/html"); "" if none.
  std::string content_type() const;
};

// Per-call hooks. All are optional. on_sent and on_received run on the
// client's I/O thread and must not block or call back into the client.
struct Control {
  // Polled on the calling thread every poll_interval while the call waits,
  // and on the I/O thread between runs of a request body; returning true
  // aborts every request of the call with kCancelled.
  std::function<bool()> cancelled;
  // The call fails with kDeadlineExceeded once this passes.
  std::optional<std::chrono::system_clock::time_point> deadline;
  // Request body bytes written to the socket, as they go (deltas).
  std::function<void(uint64_t bytes)> on_sent;
  // Response body bytes received for final (non-redirect) responses (deltas).
  std::function<void(uint64_t bytes)> on_received;
  std::chrono::milliseconds poll_interval{50};
};

// ---- The client -----------------------------------------------------------

struct ClientOptions {
  // TCP connect (per address tried) and the TLS handshake.
  std::chrono::milliseconds connect_timeout{10000};
  // Longest wait for any progress while writing or reading one request (a
  // stalled server); each received or sent byte run restarts it.
  std::chrono::milliseconds read_timeout{30000};
  // Connections open at once to one origin (scheme, host, port); requests
  // beyond it wait for a free connection.
  uint32_t max_connections_per_host = 6;
  uint32_t max_redirects = 10;
  // Idle kept-alive connections are closed after this long.
  std::chrono::milliseconds idle_timeout{30000};
  // Extra trust anchors: a PEM file and/or an OpenSSL hashed folder; the
  // system store is always used as well.
  std::string ca_file;
  std::string ca_path;
  // Turns certificate and host name verification OFF. For tests and
  // self-signed lab servers only; the plugin logs a warning when set.
  bool insecure_skip_tls_verify = false;
  std::string user_agent = "stowage";
};

class Client {
 public:
  // Starts the I/O thread. Throws Error(kInvalidArgument) when ca_file or
  // ca_path cannot be loaded (naming the file).
  explicit Client(ClientOptions options = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  const ClientOptions& options() const noexcept;

  // Sends one request (following redirects) and returns the final response
  // with its whole body. Throws as listed at the top of this header.
  Response send(const Request& request, const Control& control = {});

  // Sends every request, at most max_parallel at a time (per-host caps
  // still apply), and returns the responses in request order. The first
  // request that throws (including from on_head) cancels the others and its
  // exception is rethrown here once all have stopped. A request whose whole
  // body is sent is not cut off (by a failure, a cancellation or the
  // deadline): the server may be acting on it, so its answer is awaited
  // (within read_timeout) and anything the caller does next comes after it.
  // max_parallel 0 means 1.
  std::vector<Response> send_all(const std::vector<Request>& requests, const Control& control,
                                 size_t max_parallel);

  // Connections open now (idle and busy), for tests of the pool.
  size_t open_connections() const;

  // Requests sent in parallel on the client's I/O thread as the caller
  // learns them, each with a step the caller runs on its answer: the way
  // plugins run network requests in parallel when each answer needs a step
  // (a streaming load's weight files, the ranged parts of one object).
  // send_all() is a batch known up front without steps.
  //
  //   Client::Batch batch(client, control, 4);
  //   for (...) batch.submit(request, [&](Response& r) { ... check, keep r.body ... });
  //   batch.wait();  // rethrows the first failure
  //
  // submit() waits while max_parallel requests are in flight or answered
  // with their step not yet run, running the steps of answered ones
  // meanwhile, so a caller never holds the data of more than
  // max_parallel + 1 requests. Steps run on the calling thread (in submit
  // and wait), one at a time, while the other requests go on; a response
  // is released once its step returned. Steps run as answers arrive, or
  // with Order::kSubmitted in the order of submit(): a step that may block
  // until an earlier request's step ran (a streaming load's hand-over of
  // weight file i, which may wait for file i - 1) needs that order.
  //
  // The first request that throws, or step that throws, stops the batch:
  // requests in flight are cancelled, submit() returns false, and wait()
  // rethrows that exception once all have stopped. Answers that came in
  // before a request failed still get their steps (with Order::kSubmitted,
  // those whose predecessors did), as a request's own thread would have
  // gone on; after a step threw, none. Control works as for send_all
  // (cancellation and deadline polled while submit or wait waits); per-host
  // caps apply across all calls of the client.
  // Thread-safety: one thread submits and waits. Ownership: the batch owns
  // its requests until they are answered; it must not outlive the client.
  // Destroying a batch that was not waited for (its submitter is unwinding)
  // cancels what is in flight and waits for it, runs no more steps, and
  // does not throw.
  class Batch {
   public:
    using Step = std::function<void(Response& response)>;
    enum class Order { kAnswered, kSubmitted };

    Batch(Client& client, const Control& control, size_t max_parallel,
          Order order = Order::kAnswered);
    ~Batch();
    Batch(const Batch&) = delete;
    Batch& operator=(const Batch&) = delete;

    // Starts request once there is room; `step` (may be empty) runs on its
    // answer. False, request dropped, once the batch has failed.
    bool submit(Request request, Step step = {});
    // Waits for every request and step; rethrows the first failure.
    void wait();

   private:
    struct State;
    Client& client_;
    std::shared_ptr<State> state_;
  };

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// ---- Helpers for plugins ---------------------------------------------------

// 408, 429, 500, 502, 503 and 504: a status worth another try (the host's
// retry policy does the trying).
bool retryable_status(int status) noexcept;

// The stowage error for a non-2xx answer: 404/410 kNotFound, 401/403
// kPermissionDenied, 400/405/411/414/422 kInvalidArgument, 409/412
// kAlreadyExists, 413/507 kResourceExhausted, 501 kUnimplemented, 408/429/5xx
// kUnavailable (retryable as retryable_status says), others kInternal.
// The message is "<what>: HTTP <status> <reason>" plus detail (e.g. a body
// excerpt the caller chose; never header values).
Error status_error(int status, std::string_view reason, const std::string& what,
                   std::string_view detail = {});
// The same for a response to a request made with method, naming that request
// (Error::request(): method, the answering URL redacted, "HTTP <status>") so
// the host can announce a retry of it.
Error status_error(std::string_view method, const Response& response, const std::string& what,
                   std::string_view detail = {});

// A printable excerpt of a body for error messages: at most max_chars,
// control characters replaced, "..." when cut; "" for binary bytes.
std::string body_excerpt(const Buffer& body, size_t max_chars = 200);

// The sha-256 a response's headers claim for its whole representation:
// Repr-Digest's "sha-256=:<base64>:" member (RFC 9530), else Digest's
// "sha-256=<base64>" (RFC 3230, algorithm name in any case). `hex` is empty
// when neither names sha-256; `malformed` names the header ("Repr-Digest"
// or "Digest") whose sha-256 is not 32 bytes of padded base64, or that
// disagrees with another sha-256 claim.
struct DigestHeader {
  std::string hex;        // lowercase hex
  std::string header;     // the header hex came from
  std::string malformed;  // empty when every sha-256 claim is well-formed and agrees
};
DigestHeader sha256_from_digest_headers(const Headers& headers);

// ---- multipart/form-data ----------------------------------------------------

// One part of a form: Content-Disposition: form-data; name="<name>"
// [; filename="<filename>"], then Content-Type when set.
struct FormPart {
  std::string name;
  std::string filename;
  std::string content_type;
  std::vector<Buffer> content;  // concatenated; never copied
};

// A multipart/form-data body as the WHATWG FormData encoder writes it
// (undici, browsers): "--<b>\r\nheaders\r\n\r\n<content>\r\n" per part, then
// "--<b>--\r\n". The body pieces reference the part contents; only the small
// delimiters are new buffers.
struct Multipart {
  std::string content_type;  // "multipart/form-data; boundary=<b>"
  std::vector<Buffer> body;
  uint64_t size = 0;
};

// boundary empty: a random one ("----stowageFormBoundary" + 24 random
// alphanumerics) that is checked not to occur in any part.
Multipart build_multipart(const std::vector<FormPart>& parts, std::string boundary = {});

}  // namespace stowage::net
