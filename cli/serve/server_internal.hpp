// stowage_server: the HTTP model server behind `stowage serve`. It receives
// TF.js uploads (the multipart POST of model.save('http://...')) into any
// stowage URL and serves models back to tf.loadLayersModel, with CORS,
// ETag, Range, HEAD, bearer tokens, limits, timeouts and graceful shutdown,
// over http or https (tls_internal.hpp), and for operators /healthz, /readyz
// and /metrics (metrics_internal.hpp).
// The URL layout is in routes_internal.hpp and docs/serve.md.
//
// This header keeps Boost.Asio and Beast out of its users.
// Thread-safety: port() and shutdown() may be called from any thread;
// run() from one thread. Ownership: the server owns its sockets, threads
// and store view; the registry (by default Registry::global()) must
// outlive it.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "stowage/registry.hpp"

namespace stowage::serve {

class TlsConfig;  // tls_internal.hpp

struct ServerLimits {
  uint64_t max_upload_bytes = 1ull << 30;       // one request body
  uint64_t max_model_json_bytes = 64ull << 20;  // the model.json part of an upload
  size_t max_parts = 64;                        // parts of one upload
  size_t max_header_bytes = 16 * 1024;          // request headers; one part's headers
  // Open at once; more get 503. Also the most connections that may wait
  // for a slot of their client (below) at once.
  size_t max_connections = 256;
  // Served at once from one IP address; more wait for one of them to end
  // (ServerTimeouts::client_wait), then get 503. 0: no such limit.
  size_t max_connections_per_client = 64;
  // Upload bodies being received or saved, counted by their Content-Length
  // (chunked ones as they arrive), at once; an upload that would pass it
  // gets 503, unless no other upload is in flight.
  uint64_t max_upload_bytes_in_flight = 2ull << 30;
};

struct ServerTimeouts {
  // To receive a request's headers, counted from the end of the previous
  // response on a kept-alive connection.
  std::chrono::milliseconds header{30000};
  // Longest wait for the next body bytes of an upload, or for a response's
  // bytes to leave.
  std::chrono::milliseconds body{60000};
  // After shutdown(): how long in-flight requests may still take.
  std::chrono::milliseconds shutdown{30000};
  // GET /readyz: how long the store has to answer its probe.
  std::chrono::milliseconds ready{3000};
  // How long a connection over its client's cap waits for a slot.
  std::chrono::milliseconds client_wait{30000};
};

// One line of the access log.
struct AccessRecord {
  std::chrono::system_clock::time_point time;
  std::string remote;  // "127.0.0.1:54321"
  std::string method;
  std::string_view route = "other";  // route_label_name(): model_json, weights, upload, ...
  std::string path;                  // the target without its query: tokens never travel there
  int status = 0;                    // 0: no response was sent (the client went away)
  uint64_t bytes_sent = 0;           // body bytes
  uint64_t bytes_received = 0;       // body bytes
  std::chrono::microseconds duration{0};
  std::string note;  // the error's code, "timeout", ...
};
// "2024-01-02T03:04:05.678Z 127.0.0.1:54321 \"GET /models/m/model.json\" 200
// 1234 0 1.2ms" or, with json, a JSON object on one line (with the route
// label too).
std::string format_access_record(const AccessRecord& record, bool json);

struct ServerOptions {
  std::string store;                 // a stowage URL, e.g. file:///srv/models or memory://
  bool create_store = false;         // make a file:// store's folder when it is missing
  std::string store_options = "{}";  // options JSON for the store's handlers
  std::string host = "127.0.0.1";
  uint16_t port = 8080;                   // 0: a free port, see port()
  std::string static_dir;                 // served at every path outside /models; empty: none
  std::vector<std::string> cors_origins;  // "*" allows every origin
  std::string token;                      // bearer token for writes; empty: no authentication
  bool auth_reads = false;                // the token also guards reads of /models
  ServerLimits limits;
  ServerTimeouts timeouts;
  size_t worker_threads = 4;  // store operations run on these
  std::chrono::milliseconds cache_ttl{5000};
  // Serve https with this certificate and key (nullptr: plain http).
  std::shared_ptr<TlsConfig> tls;
  // SIGINT and SIGTERM start a graceful shutdown; a second one stops at
  // once. With tls, SIGHUP reloads the certificate and key.
  bool handle_signals = false;
  std::function<void(const AccessRecord&)> access_log;  // one call per request
  std::function<void(std::string_view)> error_log;      // server-side failures
  Registry* registry = nullptr;                         // nullptr: Registry::global()
};

class Server {
 public:
  // Opens the store (its scheme resolved, its options checked by opening a
  // handler, a file:// folder present or made with create_store) and the
  // static folder, then binds the listening socket. Throws Error(kNotFound)
  // for an unknown scheme or a missing folder, Error(kInvalidArgument) for
  // an option the store's plugin refuses, Error(kUnavailable) when the
  // address cannot be bound.
  explicit Server(ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // The bound port (the chosen one when options.port was 0).
  uint16_t port() const;
  // True when the server made the file:// store's folder (create_store).
  bool created_store() const;

  // Serves until a shutdown has completed.
  void run();
  // Stops accepting, closes idle connections and lets requests in flight
  // finish (their responses say Connection: close); after
  // timeouts.shutdown, or on a second call, closes everything and cancels
  // store operations in flight.
  void shutdown();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace stowage::serve
