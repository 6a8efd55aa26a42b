// The server's request handling without any network code: routing, auth,
// CORS, conditional and range requests, and turning uploads into saved
// models. The connection code (server.cpp) parses HTTP, feeds upload
// bodies in and writes the Replies out; tests drive App directly.
//
// Thread-safety: plan(), begin_upload() and decorate() are quick and touch
// no store; serve() and finish_upload() do store I/O and run on worker
// threads. All may run concurrently. An Upload is used by one thread at a
// time.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "metrics_internal.hpp"
#include "multipart_internal.hpp"
#include "resource_internal.hpp"
#include "routes_internal.hpp"
#include "server_internal.hpp"
#include "store_internal.hpp"
#include "stowage/error.hpp"
#include "upload_internal.hpp"

namespace stowage::serve {

// Sent with every answer: "true" tells clients that replaying an upload
// cannot store a model twice, so a failed one may be retried (docs/serve.md).
inline constexpr std::string_view kIdempotentHeader = "Stowage-Upload-Idempotent";

struct Request {
  std::string method;  // as sent: "GET", "POST", ...
  std::string target;
  std::vector<std::pair<std::string, std::string>> headers;  // names in lowercase
  bool has_body = false;  // a Content-Length above 0 or a chunked body
  std::optional<uint64_t> content_length;

  // The first value of a header (name in lowercase), or "".
  std::string_view header(std::string_view name) const;
};

struct Reply {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  WeightData body;      // the representation
  uint64_t offset = 0;  // the part of body to send
  uint64_t length = 0;
  bool head = false;   // headers only; Content-Length still says `length`
  bool close = false;  // close the connection after this reply
  std::string note;    // for the access log

  void set(std::string name, std::string value);
  void set_body(std::string text, std::string content_type);
};

// An upload being received: the streaming multipart parser and what it
// collects.
class Upload {
 public:
  Upload(std::string name, std::string boundary, const ServerLimits& limits, uint64_t size_hint);
  const std::string& name() const { return name_; }
  // Throw Error(kInvalidArgument) or Error(kResourceExhausted).
  void feed(std::string_view bytes) { parser_.feed(bytes); }
  void finish() { parser_.finish(); }
  ModelArtifacts take_artifacts() { return collector_.take_artifacts(); }

 private:
  std::string name_;
  UploadCollector collector_;
  MultipartParser parser_;
};

class App {
 public:
  enum class Work {
    kNow,     // the reply is ready
    kStore,   // call serve() on a worker thread
    kUpload,  // call begin_upload(), read the body, then finish_upload()
    kReady,   // call ready() on a worker thread, and not_ready_in_time() if it is late
  };
  struct Plan {
    Work work = Work::kNow;
    Route route;
    RouteLabel label = RouteLabel::kOther;  // for metrics and the access log
    Reply reply;                            // for kNow
  };

  // Opens the store view and the static folder (Error(kNotFound) when it
  // is missing).
  explicit App(const ServerOptions& options);

  Plan plan(const Request& request) const;
  Reply serve(const Request& request, const Route& route, const CallContext& call);
  // nullptr and a refusal in `reply` when the upload is refused before its
  // body is read (wrong media type, too large).
  std::unique_ptr<Upload> begin_upload(const Request& request, const Route& route,
                                       Reply& reply) const;
  Reply finish_upload(const Request& request, Upload& upload, const CallContext& call);
  // The reply for an upload whose body failed to arrive or parse.
  Reply upload_failed(const Error& error) const;
  // An error reply with a given status (408, 431, 503, ...).
  Reply status_reply(int status, const Error& error) const;
  // A 503 with Retry-After for a request refused by a limit on load
  // (not logged as a failure: the server is doing what it was told).
  Reply busy_reply(const std::string& message) const;
  // Adds CORS and the headers every reply has.
  void decorate(const Request& request, Reply& reply) const;

  // /readyz: 200 when the store answered a probe (ModelStore::probe), else
  // 503 with what went wrong (the details in the error log).
  Reply ready(const CallContext& call);
  // /readyz when the probe did not answer within `waited`.
  Reply not_ready_in_time(std::chrono::milliseconds waited) const;

  ModelStore& store() { return store_; }
  const ModelStore& store() const { return store_; }
  ServeMetrics& metrics() { return metrics_; }

 private:
  enum class Phase { kRequest, kRead, kStore };
  Reply error_reply(const Error& error, Phase phase) const;
  Reply resource_reply(const Request& request, const Resource& resource) const;
  Reply list_reply();
  Reply preflight(const Request& request) const;
  bool authorized(const Request& request) const;
  Plan operator_endpoint(const Request& request, Plan plan) const;

  const ServerOptions& options_;
  ModelStore store_;
  ServeMetrics metrics_;
  UniqueFd static_root_;
};

// The RFC 3986 path form of a model name ("a b/c" -> "a%20b/c").
std::string escape_path(std::string_view name);

}  // namespace stowage::serve
