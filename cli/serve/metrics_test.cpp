// The Prometheus text format as the server writes it: escaping, sample
// values, histogram rendering and the families of ServeMetrics. The
// scrape over HTTP, read by the Prometheus client's parser, is in
// server_ops_test.cpp.
#include <doctest/doctest.h>

#include <thread>
#include <vector>

#include "metrics_internal.hpp"

namespace stowage::serve {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("metrics: label values escape backslash, double quote and line feed only") {
  CHECK(escape_label_value("plain-value_1.2") == "plain-value_1.2");
  CHECK(escape_label_value("a\\b") == "a\\\\b");
  CHECK(escape_label_value("say \"hi\"") == "say \\\"hi\\\"");
  CHECK(escape_label_value("two\nlines") == "two\\nlines");
  CHECK(escape_label_value("tab\tand\rcr") == "tab\tand\rcr");
  CHECK(escape_label_value("") == "");

  MetricsWriter w;
  w.family("x_total", "counter", "Help with a \\ and a\nline feed.");
  w.sample("x_total", {{"scheme", "we\"ird\\sch\neme"}}, 3);
  CHECK(w.text() ==
        "# HELP x_total Help with a \\\\ and a\\nline feed.\n"
        "# TYPE x_total counter\n"
        "x_total{scheme=\"we\\\"ird\\\\sch\\neme\"} 3\n");
}

TEST_CASE("metrics: sample values read back as the same number") {
  CHECK(format_sample_value(0) == "0");
  CHECK(format_sample_value(42) == "42");
  CHECK(format_sample_value(18446744073709.0) == "18446744073709");
  CHECK(format_sample_value(0.0005) == "0.0005");
  CHECK(format_sample_value(2.5) == "2.5");
  CHECK(format_sample_value(1.0 / 0.0) == "+Inf");
  CHECK(format_sample_value(-1.0 / 0.0) == "-Inf");
  CHECK(format_sample_value(0.0 / 0.0) == "NaN");
}

TEST_CASE("metrics: a histogram renders cumulative buckets, +Inf, _sum and _count") {
  Histogram h;
  h.observe(microseconds(300));         // <= 0.0005
  h.observe(microseconds(500));         // == 0.0005: bounds are inclusive
  h.observe(milliseconds(7));           // <= 0.01
  h.observe(milliseconds(7));           // <= 0.01
  h.observe(std::chrono::seconds(61));  // only +Inf
  const Histogram::Snapshot s = h.snapshot();
  CHECK(s.cumulative[0] == 2);
  CHECK(s.cumulative[3] == 2);   // 0.005
  CHECK(s.cumulative[4] == 4);   // 0.01
  CHECK(s.cumulative[13] == 4);  // 60
  CHECK(s.cumulative[14] == 5);  // +Inf
  CHECK(s.sum_seconds == doctest::Approx(61.0148));

  MetricsWriter w;
  w.histogram("d_seconds", {{"route", "list"}}, s);
  CHECK(w.text() ==
        "d_seconds_bucket{route=\"list\",le=\"0.0005\"} 2\n"
        "d_seconds_bucket{route=\"list\",le=\"0.001\"} 2\n"
        "d_seconds_bucket{route=\"list\",le=\"0.0025\"} 2\n"
        "d_seconds_bucket{route=\"list\",le=\"0.005\"} 2\n"
        "d_seconds_bucket{route=\"list\",le=\"0.01\"} 4\n"
        "d_seconds_bucket{route=\"list\",le=\"0.025\"} 4\n"
        "d_seconds_bucket{route=\"list\",le=\"0.05\"} 4\n"
        "d_seconds_bucket{route=\"list\",le=\"0.1\"} 4\n"
        "d_seconds_bucket{route=\"list\",le=\"0.25\"} 4\n"
        "d_seconds_bucket{route=\"list\",le=\"0.5\"} 4\n"
        "d_seconds_bucket{route=\"list\",le=\"1\"} 4\n"
        "d_seconds_bucket{route=\"list\",le=\"2.5\"} 4\n"
        "d_seconds_bucket{route=\"list\",le=\"10\"} 4\n"
        "d_seconds_bucket{route=\"list\",le=\"60\"} 4\n"
        "d_seconds_bucket{route=\"list\",le=\"+Inf\"} 5\n"
        "d_seconds_sum{route=\"list\"} 61.0148\n"
        "d_seconds_count{route=\"list\"} 5\n");

  // Unlabelled: only le in braces.
  MetricsWriter bare;
  bare.histogram("e_seconds", {}, Histogram().snapshot());
  CHECK(contains(bare.text(),
                 "e_seconds_bucket{le=\"+Inf\"} 0\ne_seconds_sum 0\ne_seconds_count 0\n"));
}

TEST_CASE("metrics: observations from many threads all count") {
  Histogram h;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&h, t] {
      for (int i = 0; i < 10000; ++i) h.observe(microseconds(100 * (t + 1) * (i % 7)));
    });
  }
  for (auto& t : threads) t.join();
  CHECK(h.snapshot().cumulative.back() == 40000);
}

TEST_CASE("metrics: ServeMetrics families, labels and values") {
  ServeMetrics m("file");
  m.request(RouteLabel::kModelJson, 200, milliseconds(2), 100, 0);
  m.request(RouteLabel::kModelJson, 304, milliseconds(1), 0, 0);
  m.request(RouteLabel::kUpload, 201, milliseconds(30), 50, 900);
  m.request(RouteLabel::kUpload, 0, milliseconds(30), 0, 10);
  m.upload(UploadOutcome::kSaved);
  m.upload(UploadOutcome::kAborted);
  m.store_operation(StoreOperation::kSave, milliseconds(20));
  m.connection_rejected(RejectReason::kPerClient);
  m.set_connections(3);
  m.set_upload_bytes_in_flight(77);
  const std::string text = m.render();

  CHECK(contains(text, "# TYPE stowage_serve_requests_total counter\n"));
  CHECK(contains(text, "stowage_serve_requests_total{route=\"model_json\",status=\"2xx\"} 1\n"));
  CHECK(contains(text, "stowage_serve_requests_total{route=\"model_json\",status=\"3xx\"} 1\n"));
  CHECK(contains(text, "stowage_serve_requests_total{route=\"upload\",status=\"none\"} 1\n"));
  CHECK_FALSE(contains(text, "stowage_serve_requests_total{route=\"list\""));  // none yet
  CHECK(contains(text, "stowage_serve_request_duration_seconds_count{route=\"upload\"} 2\n"));
  CHECK(contains(text, "stowage_serve_request_duration_seconds_sum{route=\"upload\"} 0.06\n"));
  CHECK(contains(text, "stowage_serve_sent_bytes_total{route=\"model_json\"} 100\n"));
  CHECK(contains(text, "stowage_serve_received_bytes_total{route=\"upload\"} 910\n"));
  CHECK(contains(text, "stowage_serve_uploads_total{outcome=\"saved\"} 1\n"));
  CHECK(contains(text, "stowage_serve_uploads_total{outcome=\"aborted\"} 1\n"));
  CHECK(contains(text, "stowage_serve_uploads_total{outcome=\"limited\"} 0\n"));
  CHECK(contains(text,
                 "stowage_serve_store_operation_duration_seconds_bucket{scheme=\"file\","
                 "operation=\"save\",le=\"0.025\"} 1\n"));
  CHECK(contains(text, "stowage_serve_rejected_connections_total{reason=\"per_client\"} 1\n"));
  CHECK(contains(text, "stowage_serve_connections 3\n"));
  CHECK(contains(text, "stowage_serve_upload_bytes_in_flight 77\n"));
  // The number of models is unknown until the store is listed.
  CHECK_FALSE(contains(text, "stowage_serve_models"));
  m.set_models(0);
  CHECK(contains(m.render(), "# TYPE stowage_serve_models gauge\nstowage_serve_models 0\n"));
}

}  // namespace stowage::serve
