// The server's metrics (GET /metrics), in the Prometheus text exposition
// format 0.0.4: requests by route and status class, request and store
// operation durations as histograms, body bytes, uploads by outcome,
// connections, and the number of models the store listed last. Every label
// takes values from a fixed set (routes, status classes, outcomes,
// operations) or from the server's configuration (the store's scheme):
// never a model name or a path. docs/serve.md lists the metrics.
//
// Thread-safety: every member may be called from any thread at once; the
// counters are relaxed atomics, so recording costs a few atomic adds and a
// render may see a request half-recorded (never a histogram whose buckets
// disagree with its count). No network code here.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace stowage::serve {

// What a request was for, as the metrics and the JSON access log name it.
enum class RouteLabel : uint8_t {
  kModelJson,  // GET/HEAD /models/<name>/model.json
  kWeights,    // GET/HEAD /models/<name>/<file>
  kUpload,     // POST/PUT /models/<name>
  kRemove,     // DELETE /models/<name>
  kList,       // GET/HEAD /models
  kStatic,     // the --static folder
  kHealth,     // /healthz
  kReady,      // /readyz
  kMetrics,    // /metrics
  kOther,      // preflights, refused or malformed requests
};
inline constexpr size_t kRouteLabels = 10;
std::string_view route_label_name(RouteLabel label);

enum class UploadOutcome : uint8_t {
  kSaved,     // 2xx
  kRejected,  // 4xx: a bad body, too large, no token, ...
  kFailed,    // 5xx from the store
  kLimited,   // 503: over --max-upload-bytes-in-flight
  kAborted,   // no answer: the client went away or was too slow to send
};
inline constexpr size_t kUploadOutcomes = 5;

enum class StoreOperation : uint8_t {
  kModelJson,  // reading a model's model.json
  kWeights,    // reading a weights file
  kSave,
  kRemove,
  kList,
  kProbe,  // the readiness check
};
inline constexpr size_t kStoreOperations = 6;

enum class RejectReason : uint8_t {
  kMaxConnections,  // --max-connections
  kPerClient,       // --max-connections-per-client
};
inline constexpr size_t kRejectReasons = 2;

// Label values in the text format: backslash, double quote and line feed
// escaped.
std::string escape_label_value(std::string_view value);
// A sample value: integers as such, others with enough digits to read
// back the same double; +Inf, -Inf and NaN as the format spells them.
std::string format_sample_value(double value);

// A histogram of durations with fixed bucket bounds (seconds).
class Histogram {
 public:
  static constexpr std::array<double, 14> kBounds = {
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60};
  struct Snapshot {
    std::array<uint64_t, kBounds.size() + 1> cumulative{};  // the last: +Inf, the count
    double sum_seconds = 0;
  };

  void observe(std::chrono::nanoseconds duration);
  // The buckets made cumulative, so each is at least the one before and
  // +Inf is the count, even while other threads observe.
  Snapshot snapshot() const;

 private:
  std::array<std::atomic<uint64_t>, kBounds.size() + 1> counts_{};  // per bucket, not cumulative
  std::atomic<uint64_t> sum_ns_{0};
};

using Labels = std::vector<std::pair<std::string_view, std::string_view>>;

// Writes the text format: one family (# HELP, # TYPE, samples) at a time.
class MetricsWriter {
 public:
  void family(std::string_view name, std::string_view type, std::string_view help);
  void sample(std::string_view name, const Labels& labels, double value);
  // name_bucket{...,le="..."} for each bound and +Inf, then name_sum and
  // name_count.
  void histogram(std::string_view name, const Labels& labels, const Histogram::Snapshot& h);
  const std::string& text() const { return out_; }

 private:
  void labels(const Labels& labels, std::string_view le = {});
  std::string out_;
};

// The media type of the text format.
inline constexpr std::string_view kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

class ServeMetrics {
 public:
  // store_scheme: the label of the store operation metrics ("file", "s3").
  explicit ServeMetrics(std::string store_scheme);

  // One request answered (status 100-599) or not (0: the client went away).
  void request(RouteLabel route, int status, std::chrono::nanoseconds duration, uint64_t bytes_sent,
               uint64_t bytes_received);
  void upload(UploadOutcome outcome);
  void store_operation(StoreOperation operation, std::chrono::nanoseconds duration);
  void connection_rejected(RejectReason reason);
  void tls_handshake_failed();
  void tls_reload_failed();
  void set_models(uint64_t count);
  void set_connections(uint64_t count);
  void set_upload_bytes_in_flight(uint64_t bytes);

  std::string render() const;

 private:
  static constexpr size_t kStatusClasses = 6;  // none, 1xx .. 5xx
  std::string scheme_;
  std::array<std::array<std::atomic<uint64_t>, kStatusClasses>, kRouteLabels> requests_{};
  std::array<Histogram, kRouteLabels> durations_;
  std::array<std::atomic<uint64_t>, kRouteLabels> sent_{};
  std::array<std::atomic<uint64_t>, kRouteLabels> received_{};
  std::array<std::atomic<uint64_t>, kUploadOutcomes> uploads_{};
  std::array<Histogram, kStoreOperations> store_;
  std::array<std::atomic<uint64_t>, kRejectReasons> rejected_{};
  std::atomic<uint64_t> models_{0};
  std::atomic<bool> models_known_{false};
  std::atomic<uint64_t> connections_{0};
  std::atomic<uint64_t> tls_handshake_failures_{0};
  std::atomic<uint64_t> tls_reload_failures_{0};
  std::atomic<uint64_t> upload_bytes_in_flight_{0};
};

}  // namespace stowage::serve
