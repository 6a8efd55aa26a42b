// `stowage serve --store URL`: an HTTP server that receives TF.js uploads
// (model.save('http://host:port/models/<name>')) into any stowage URL and
// serves them back to tf.loadLayersModel. docs/serve.md has the URL layout.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <mutex>
#include <sstream>

#include "commands_internal.hpp"
#include "serve/server_internal.hpp"
#include "serve/tls_internal.hpp"

namespace stowage::cli {
namespace {

struct ServeArgs {
  std::string store;
  bool create = false;
  UrlOptions store_options;
  std::string host = "127.0.0.1";
  uint16_t port = 8080;
  std::string static_dir;
  std::vector<std::string> cors_origins;
  std::string token;
  std::string token_file;
  bool auth_reads = false;
  uint64_t max_upload_bytes = 1ull << 30;
  uint64_t max_model_json_bytes = 64ull << 20;
  size_t max_parts = 64;
  uint64_t max_header_bytes = 16 * 1024;
  size_t max_connections = 256;
  size_t max_connections_per_client = 64;
  uint64_t max_upload_bytes_in_flight = 2ull << 30;
  double header_timeout = 30;
  double body_timeout = 60;
  double shutdown_timeout = 30;
  double ready_timeout = 3;
  double client_wait = 30;
  std::string log_format;  // "", "text" or "json"
  size_t threads = 4;
  double cache_seconds = 5;
  std::string tls_cert;
  std::string tls_key;
};

std::chrono::milliseconds millis(double seconds) {
  return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
}

std::string read_token_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError("--token-file: cannot read " + path);
  std::ostringstream text;
  text << in.rdbuf();
  std::string token = text.str();
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' ' ||
                            token.back() == '\t')) {
    token.pop_back();
  }
  if (token.empty()) throw UsageError("--token-file: " + path + " is empty");
  return token;
}

void check_token(const std::string& token, std::string_view where) {
  for (char c : token) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f) {
      throw UsageError(std::string(where) + ": the token must be printable ASCII without spaces");
    }
  }
}

int run_serve(const ServeArgs& args, const CommonOptions& common) {
  serve::ServerOptions options;
  options.store = normalize_url(args.store);
  options.store_options = options_json(args.store_options, "--options");
  options.create_store = args.create;
  options.host = args.host;
  options.port = args.port;
  options.static_dir = args.static_dir;
  options.cors_origins = args.cors_origins;
  if (!args.token_file.empty()) {
    options.token = read_token_file(args.token_file);
    check_token(options.token, "--token-file");
  } else if (!args.token.empty()) {
    options.token = args.token;
    check_token(options.token, "--token");
  } else if (const char* env = std::getenv("STOWAGE_SERVE_TOKEN"); env && *env) {
    options.token = env;
    check_token(options.token, "STOWAGE_SERVE_TOKEN");
  }
  if (args.auth_reads && options.token.empty()) {
    throw UsageError("--auth-reads needs a token (--token-file, --token or STOWAGE_SERVE_TOKEN)");
  }
  options.auth_reads = args.auth_reads;
  options.limits.max_upload_bytes = args.max_upload_bytes;
  options.limits.max_model_json_bytes = args.max_model_json_bytes;
  options.limits.max_parts = args.max_parts;
  options.limits.max_header_bytes = static_cast<size_t>(args.max_header_bytes);
  options.limits.max_connections = args.max_connections;
  options.limits.max_connections_per_client = args.max_connections_per_client;
  options.limits.max_upload_bytes_in_flight = args.max_upload_bytes_in_flight;
  options.timeouts.header = millis(args.header_timeout);
  options.timeouts.body = millis(args.body_timeout);
  options.timeouts.shutdown = millis(args.shutdown_timeout);
  options.timeouts.ready = millis(args.ready_timeout);
  options.timeouts.client_wait = millis(args.client_wait);
  options.worker_threads = args.threads;
  options.cache_ttl = millis(args.cache_seconds);
  options.handle_signals = true;
  if (args.tls_cert.empty() != args.tls_key.empty()) {
    throw UsageError(args.tls_cert.empty() ? "--tls-key needs --tls-cert (the certificate it signs)"
                                           : "--tls-cert needs --tls-key (the certificate's key)");
  }
  // Loaded before the store is opened, so a bad certificate is named as
  // such (Error naming the file).
  if (!args.tls_cert.empty()) {
    options.tls = std::make_shared<serve::TlsConfig>(args.tls_cert, args.tls_key);
  }
  const bool tls = options.tls != nullptr;

  // The access log is the command's output (stdout, one line per request);
  // failures and lifecycle messages go to stderr. Neither ever holds a
  // token: requests are logged by method and path only.
  auto out_mutex = std::make_shared<std::mutex>();
  if (common.json && args.log_format == "text") {
    throw UsageError("--json asks for the JSON access log and --log-format text for the other");
  }
  if (!common.quiet) {
    const bool json = common.json || args.log_format == "json";
    options.access_log = [out_mutex, json](const serve::AccessRecord& record) {
      const std::string line = serve::format_access_record(record, json) + "\n";
      std::lock_guard<std::mutex> lock(*out_mutex);
      std::fwrite(line.data(), 1, line.size(), stdout);
      std::fflush(stdout);
    };
  }
  options.error_log = [out_mutex](std::string_view message) {
    std::lock_guard<std::mutex> lock(*out_mutex);
    std::fprintf(stderr, "stowage serve: %s\n", one_line(message).c_str());
  };

  const std::string store = options.store;
  std::unique_ptr<serve::Server> server_holder;
  try {
    server_holder = std::make_unique<serve::Server>(std::move(options));
  } catch (const Error& e) {
    rethrow_naming(e, store);
  }
  serve::Server& server = *server_holder;
  const uint16_t port = server.port();
  if (server.created_store() && !common.quiet) {
    std::fprintf(stderr, "stowage serve: created the store folder %s\n", store.c_str());
  }
  {
    // The first line of stdout is the port, so a script that asked for
    // --port 0 learns which one it got.
    std::lock_guard<std::mutex> lock(*out_mutex);
    std::printf("%u\n", static_cast<unsigned>(port));
    std::fflush(stdout);
    const std::string host =
        args.host.find(':') != std::string::npos ? "[" + args.host + "]" : args.host;
    if (!common.quiet) {
      std::fprintf(stderr,
                   "stowage serve: serving %s at %s://%s:%u/models (SIGINT or SIGTERM stops%s)\n",
                   redact_url(store).c_str(), tls ? "https" : "http", host.c_str(),
                   static_cast<unsigned>(port), tls ? ", SIGHUP reloads the certificate" : "");
    }
  }
  if (interrupted()) return kExitCancelled;
  server.run();
  if (!common.quiet) std::fprintf(stderr, "stowage serve: stopped\n");
  return kExitOk;
}

}  // namespace

void add_serve_command(CLI::App& app, CommonOptions& common, Runner& run) {
  auto args = std::make_shared<ServeArgs>();
  CLI::App* sub = app.add_subcommand(
      "serve",
      "Run an HTTP server that stores TF.js uploads (model.save('http://HOST:PORT/models/NAME')) "
      "into a stowage URL and serves them to tf.loadLayersModel "
      "('http://HOST:PORT/models/NAME/model.json'). Prints the port as the first line of stdout, "
      "then one access-log line per request");
  sub->add_option("--store", args->store,
                  "Where models are kept, e.g. file:///srv/models, memory://, "
                  "'s3://bucket/prefix?endpoint=...' or a bare folder")
      ->required();
  sub->add_flag("--create", args->create,
                "Make the file:// store's folder when it does not exist (without it, a missing "
                "folder is an error)");
  sub->add_option("--host", args->host, "Address to listen on")->capture_default_str();
  sub->add_option("--port", args->port, "Port to listen on; 0 picks a free one")
      ->capture_default_str();
  add_url_options(*sub, args->store_options);
  sub->add_option("--static", args->static_dir,
                  "Also serve this folder's files at every path outside /models")
      ->check(CLI::ExistingDirectory);
  sub->add_option("--cors-origin", args->cors_origins,
                  "Let pages from this origin (e.g. http://localhost:3000) use the server; "
                  "repeatable; * allows any origin");
  sub->add_option("--token-file", args->token_file,
                  "File holding the bearer token that uploads and removals must send")
      ->check(CLI::ExistingFile);
  sub->add_option("--token", args->token,
                  "The bearer token itself (visible to other users in the process list; prefer "
                  "--token-file or STOWAGE_SERVE_TOKEN)");
  sub->add_flag("--auth-reads", args->auth_reads, "Require the token for reading models too");
  sub->add_option("--max-upload-bytes", args->max_upload_bytes,
                  "Largest upload body (suffixes K, M, G, KiB, MiB, GiB)")
      ->transform(CLI::AsSizeValue(false))
      ->capture_default_str();
  sub->add_option("--max-model-json-bytes", args->max_model_json_bytes,
                  "Largest model.json part of an upload")
      ->transform(CLI::AsSizeValue(false))
      ->capture_default_str();
  sub->add_option("--max-parts", args->max_parts, "Most parts in one upload")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  sub->add_option("--max-header-bytes", args->max_header_bytes,
                  "Largest request header block (and multipart part header block)")
      ->transform(CLI::AsSizeValue(false))
      ->capture_default_str();
  sub->add_option("--max-connections", args->max_connections,
                  "Most connections open at once; more get 503")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  sub->add_option("--max-connections-per-client", args->max_connections_per_client,
                  "Most connections served at once from one IP address; more wait for one of "
                  "them to end (--client-wait), then get 503 (0: no such limit, e.g. behind a "
                  "proxy that all clients come through)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  sub->add_option("--client-wait", args->client_wait,
                  "Seconds a connection over its client's cap waits for one of the client's "
                  "connections to end before it gets 503")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  sub->add_option("--max-upload-bytes-in-flight", args->max_upload_bytes_in_flight,
                  "Most upload bytes being received or saved at once; an upload that would pass "
                  "it gets 503, unless it is the only one")
      ->transform(CLI::AsSizeValue(false))
      ->capture_default_str();
  sub->add_option("--header-timeout", args->header_timeout,
                  "Seconds a client has to send a request's headers (also the keep-alive idle "
                  "time)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  sub->add_option("--body-timeout", args->body_timeout,
                  "Seconds an upload may go without sending bytes, or a download without "
                  "taking any")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  sub->add_option("--shutdown-timeout", args->shutdown_timeout,
                  "Seconds requests in flight may take to finish after SIGTERM or SIGINT")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  sub->add_option("--ready-timeout", args->ready_timeout,
                  "Seconds the store has to answer the probe of GET /readyz before it says 503")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  sub->add_option("--threads", args->threads, "Threads for store operations")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  sub->add_option("--cache-seconds", args->cache_seconds,
                  "How long a model loaded from a store without files (memory://, ...) is reused "
                  "for the requests that follow")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  sub->add_option("--tls-cert", args->tls_cert,
                  "Serve https with this PEM certificate (its chain after it); needs --tls-key. "
                  "SIGHUP reloads both files");
  sub->add_option("--tls-key", args->tls_key, "The certificate's PEM private key (unencrypted)");
  sub->add_option("--log-format", args->log_format,
                  "Access log lines as text (the default) or json (one object per line)")
      ->check(CLI::IsMember({"text", "json"}));
  sub->add_flag("--json", common.json, "Access log lines as JSON objects (--log-format json)");
  sub->add_flag(
      "-q,--quiet", common.quiet,
      "No access log and no notes on stderr (the port line and failures are still printed)");
  sub->add_option("--config", common.config,
                  "Host configuration file (plugin folders, allow-list, aliases, defaults)")
      ->check(CLI::ExistingFile);
  sub->callback(
      [&run, &common, args] { run = [&common, args] { return run_serve(*args, common); }; });
}

}  // namespace stowage::cli
