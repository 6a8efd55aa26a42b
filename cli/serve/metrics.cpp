#include <algorithm>
#include <charconv>
#include <cmath>

#include "metrics_internal.hpp"

namespace stowage::serve {
namespace {

constexpr auto kRelaxed = std::memory_order_relaxed;

constexpr std::array<std::string_view, kRouteLabels> kRouteNames = {
    "model_json", "weights", "upload", "remove",  "list",
    "static",     "health",  "ready",  "metrics", "other"};
constexpr std::array<std::string_view, 6> kStatusClassNames = {"none", "1xx", "2xx",
                                                               "3xx",  "4xx", "5xx"};
constexpr std::array<std::string_view, kUploadOutcomes> kOutcomeNames = {
    "saved", "rejected", "failed", "limited", "aborted"};
constexpr std::array<std::string_view, kStoreOperations> kOperationNames = {
    "model_json", "weights", "save", "remove", "list", "probe"};
constexpr std::array<std::string_view, kRejectReasons> kRejectNames = {"max_connections",
                                                                       "per_client"};

// The bucket bounds in nanoseconds, so observing compares integers.
constexpr std::array<int64_t, Histogram::kBounds.size()> kBoundsNs = [] {
  std::array<int64_t, Histogram::kBounds.size()> out{};
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = static_cast<int64_t>(Histogram::kBounds[i] * 1e9 + 0.5);
  }
  return out;
}();

size_t status_class(int status) {
  if (status < 100 || status > 599) return 0;
  return static_cast<size_t>(status / 100);
}

std::string escape_help(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

std::string_view route_label_name(RouteLabel label) {
  return kRouteNames[static_cast<size_t>(label)];
}

std::string escape_label_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string format_sample_value(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char text[64];
  // The shortest text that reads back as the same double, without an
  // exponent (0.0005, not 5e-04 or 0.00050000000000000001): bucket bounds
  // are matched as text by some tools. Integers as such up to 2^53.
  if (std::abs(value) < 9007199254740992.0 && value == std::floor(value)) {
    const auto [end, ec] = std::to_chars(text, text + sizeof text, static_cast<int64_t>(value));
    return std::string(text, end);
  }
  const auto [end, ec] = std::to_chars(text, text + sizeof text, value, std::chars_format::fixed);
  if (ec != std::errc()) {
    const auto [short_end, short_ec] = std::to_chars(text, text + sizeof text, value);
    return std::string(text, short_end);
  }
  return std::string(text, end);
}

void Histogram::observe(std::chrono::nanoseconds duration) {
  const int64_t ns = std::max<int64_t>(0, duration.count());
  size_t i = 0;
  while (i < kBoundsNs.size() && ns > kBoundsNs[i]) ++i;
  counts_[i].fetch_add(1, kRelaxed);
  sum_ns_.fetch_add(static_cast<uint64_t>(ns), kRelaxed);
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot s;
  uint64_t total = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    total += counts_[i].load(kRelaxed);
    s.cumulative[i] = total;
  }
  s.sum_seconds = static_cast<double>(sum_ns_.load(kRelaxed)) / 1e9;
  return s;
}

void MetricsWriter::family(std::string_view name, std::string_view type, std::string_view help) {
  out_ += "# HELP ";
  out_ += name;
  out_ += ' ';
  out_ += escape_help(help);
  out_ += "\n# TYPE ";
  out_ += name;
  out_ += ' ';
  out_ += type;
  out_ += '\n';
}

void MetricsWriter::labels(const Labels& labels, std::string_view le) {
  if (labels.empty() && le.empty()) return;
  out_ += '{';
  bool first = true;
  for (const auto& [name, value] : labels) {
    if (!first) out_ += ',';
    first = false;
    out_ += name;
    out_ += "=\"";
    out_ += escape_label_value(value);
    out_ += '"';
  }
  if (!le.empty()) {
    if (!first) out_ += ',';
    out_ += "le=\"";
    out_ += le;
    out_ += '"';
  }
  out_ += '}';
}

void MetricsWriter::sample(std::string_view name, const Labels& l, double value) {
  out_ += name;
  labels(l);
  out_ += ' ';
  out_ += format_sample_value(value);
  out_ += '\n';
}

void MetricsWriter::histogram(std::string_view name, const Labels& l,
                              const Histogram::Snapshot& h) {
  const std::string bucket = std::string(name) + "_bucket";
  for (size_t i = 0; i < h.cumulative.size(); ++i) {
    out_ += bucket;
    const bool inf = i == Histogram::kBounds.size();
    labels(l, inf ? std::string("+Inf") : format_sample_value(Histogram::kBounds[i]));
    out_ += ' ';
    out_ += format_sample_value(static_cast<double>(h.cumulative[i]));
    out_ += '\n';
  }
  sample(std::string(name) + "_sum", l, h.sum_seconds);
  sample(std::string(name) + "_count", l, static_cast<double>(h.cumulative.back()));
}

ServeMetrics::ServeMetrics(std::string store_scheme) : scheme_(std::move(store_scheme)) {}

void ServeMetrics::request(RouteLabel route, int status, std::chrono::nanoseconds duration,
                           uint64_t bytes_sent, uint64_t bytes_received) {
  const auto r = static_cast<size_t>(route);
  requests_[r][status_class(status)].fetch_add(1, kRelaxed);
  durations_[r].observe(duration);
  if (bytes_sent) sent_[r].fetch_add(bytes_sent, kRelaxed);
  if (bytes_received) received_[r].fetch_add(bytes_received, kRelaxed);
}

void ServeMetrics::upload(UploadOutcome outcome) {
  uploads_[static_cast<size_t>(outcome)].fetch_add(1, kRelaxed);
}

void ServeMetrics::store_operation(StoreOperation operation, std::chrono::nanoseconds duration) {
  store_[static_cast<size_t>(operation)].observe(duration);
}

void ServeMetrics::connection_rejected(RejectReason reason) {
  rejected_[static_cast<size_t>(reason)].fetch_add(1, kRelaxed);
}

void ServeMetrics::tls_handshake_failed() { tls_handshake_failures_.fetch_add(1, kRelaxed); }

void ServeMetrics::tls_reload_failed() { tls_reload_failures_.fetch_add(1, kRelaxed); }

void ServeMetrics::set_models(uint64_t count) {
  models_.store(count, kRelaxed);
  models_known_.store(true, kRelaxed);
}

void ServeMetrics::set_connections(uint64_t count) { connections_.store(count, kRelaxed); }

void ServeMetrics::set_upload_bytes_in_flight(uint64_t bytes) {
  upload_bytes_in_flight_.store(bytes, kRelaxed);
}

std::string ServeMetrics::render() const {
  MetricsWriter w;
  auto num = [](uint64_t v) { return static_cast<double>(v); };

  // Only the status classes a route has answered with: the label set stays
  // small, and every route's duration and bytes are always there.
  w.family("stowage_serve_requests_total", "counter",
           "HTTP requests by route and status class (none: no answer was sent).");
  for (size_t r = 0; r < kRouteLabels; ++r) {
    for (size_t c = 0; c < kStatusClassNames.size(); ++c) {
      const uint64_t n = requests_[r][c].load(kRelaxed);
      if (n == 0) continue;
      w.sample("stowage_serve_requests_total",
               {{"route", kRouteNames[r]}, {"status", kStatusClassNames[c]}}, num(n));
    }
  }
  w.family("stowage_serve_request_duration_seconds", "histogram",
           "Time from a request's headers to the end of its answer, by route.");
  for (size_t r = 0; r < kRouteLabels; ++r) {
    w.histogram("stowage_serve_request_duration_seconds", {{"route", kRouteNames[r]}},
                durations_[r].snapshot());
  }
  w.family("stowage_serve_sent_bytes_total", "counter", "Response body bytes sent, by route.");
  for (size_t r = 0; r < kRouteLabels; ++r) {
    w.sample("stowage_serve_sent_bytes_total", {{"route", kRouteNames[r]}},
             num(sent_[r].load(kRelaxed)));
  }
  w.family("stowage_serve_received_bytes_total", "counter",
           "Request body bytes received, by route.");
  for (size_t r = 0; r < kRouteLabels; ++r) {
    w.sample("stowage_serve_received_bytes_total", {{"route", kRouteNames[r]}},
             num(received_[r].load(kRelaxed)));
  }
  w.family("stowage_serve_uploads_total", "counter", "Uploads by outcome.");
  for (size_t o = 0; o < kUploadOutcomes; ++o) {
    w.sample("stowage_serve_uploads_total", {{"outcome", kOutcomeNames[o]}},
             num(uploads_[o].load(kRelaxed)));
  }
  w.family("stowage_serve_store_operation_duration_seconds", "histogram",
           "Time the store took, by scheme and operation (failures included).");
  for (size_t o = 0; o < kStoreOperations; ++o) {
    w.histogram("stowage_serve_store_operation_duration_seconds",
                {{"scheme", scheme_}, {"operation", kOperationNames[o]}}, store_[o].snapshot());
  }
  w.family("stowage_serve_rejected_connections_total", "counter",
           "Connections answered 503 at once, by the limit they hit.");
  for (size_t i = 0; i < kRejectReasons; ++i) {
    w.sample("stowage_serve_rejected_connections_total", {{"reason", kRejectNames[i]}},
             num(rejected_[i].load(kRelaxed)));
  }
  w.family("stowage_serve_tls_handshake_failures_total", "counter",
           "TLS handshakes that failed or timed out (plain http on the https port included).");
  w.sample("stowage_serve_tls_handshake_failures_total", {},
           num(tls_handshake_failures_.load(kRelaxed)));
  w.family("stowage_serve_tls_reload_failures_total", "counter",
           "SIGHUP reloads of the certificate and key that failed (the previous ones stay).");
  w.sample("stowage_serve_tls_reload_failures_total", {}, num(tls_reload_failures_.load(kRelaxed)));
  w.family("stowage_serve_connections", "gauge", "Client connections open.");
  w.sample("stowage_serve_connections", {}, num(connections_.load(kRelaxed)));
  w.family("stowage_serve_upload_bytes_in_flight", "gauge",
           "Upload bytes being received or saved (see --max-upload-bytes-in-flight).");
  w.sample("stowage_serve_upload_bytes_in_flight", {}, num(upload_bytes_in_flight_.load(kRelaxed)));
  // Unknown until the store has been listed (GET /models or /readyz): no
  // sample then, rather than a 0 that looks like an empty store.
  if (models_known_.load(kRelaxed)) {
    w.family("stowage_serve_models", "gauge",
             "Models the store held at its latest listing (GET /models or /readyz).");
    w.sample("stowage_serve_models", {}, num(models_.load(kRelaxed)));
  }
  return w.text();
}

}  // namespace stowage::serve
