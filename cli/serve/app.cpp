#include <fcntl.h>

#include <cstdio>

#include "app_internal.hpp"
#include "http_util_internal.hpp"
#include "stowage/digest.hpp"
#include "stowage/error.hpp"
#include "stowage/model_json.hpp"

namespace stowage::serve {
namespace {

constexpr std::string_view kAllMethods = "GET, HEAD, POST, PUT, DELETE, OPTIONS";
constexpr std::string_view kReadMethods = "GET, HEAD, OPTIONS";
constexpr std::string_view kDefaultAllowedHeaders =
    "Authorization, Content-Type, Range, If-None-Match, If-Range";
constexpr std::string_view kExposedHeaders =
    "ETag, Content-Length, Content-Range, Accept-Ranges, Location, Stowage-Upload-Idempotent, "
    "Repr-Digest, Digest";
// Seconds a cache may reuse model.json before asking again (see cache_control).
constexpr int kModelJsonMaxAge = 10;

// Stored models change under the same name: weight files with TF.js's
// names are revalidated on every use (304 while the entity tag holds).
// model.json may be reused for kModelJsonMaxAge seconds: a page that loads
// a model several times asks once, yet a re-saved model is seen within
// seconds (content-addressed shards of the old version are removed once no
// model.json names them, so a long-cached model.json would point at files
// that are gone). A digest-named file never changes: cached for a year.
// Models behind a read token are private to each client's cache.
std::string cache_control(Caching caching, bool auth_reads) {
  const std::string scope = auth_reads ? "private" : "public";
  switch (caching) {
    case Caching::kImmutable:
      return scope + ", max-age=31536000, immutable";
    case Caching::kShortLived:
      return scope + ", max-age=" + std::to_string(kModelJsonMaxAge) + ", must-revalidate";
    case Caching::kRevalidate:
      break;
  }
  return "no-cache";
}

bool is_read(std::string_view method) { return method == "GET" || method == "HEAD"; }
bool is_write(std::string_view method) {
  return method == "POST" || method == "PUT" || method == "DELETE";
}

std::string error_json(const Error& e, std::string_view message) {
  return "{\"error\":{\"code\":" + json::quote(error_code_name(e.code())) +
         ",\"message\":" + json::quote(message) + "}}";
}

// A header value that is a comma-separated list of tokens (what
// Access-Control-Request-Headers holds), or nullopt.
bool is_token_list(std::string_view value) {
  if (value.empty() || value.size() > 1024) return false;
  for (char c : value) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == ',' || c == ' ' || c == '.';
    if (!ok) return false;
  }
  return true;
}

// What a client is told when the store fails (the log has the details).
std::string store_failure_text(ErrorCode code) {
  std::string what;
  switch (code) {
    case ErrorCode::kNotFound:
      what = "the store was not found";
      break;
    case ErrorCode::kPermissionDenied:
      what = "the store refused access";
      break;
    case ErrorCode::kUnavailable:
      what = "the store is unavailable; try again later";
      break;
    case ErrorCode::kDeadlineExceeded:
      what = "the store did not answer in time";
      break;
    case ErrorCode::kResourceExhausted:
      what = "the store is out of space or quota";
      break;
    case ErrorCode::kUnimplemented:
      what = "the store does not support this operation";
      break;
    case ErrorCode::kCancelled:
      what = "the operation was cancelled (the server is stopping)";
      break;
    case ErrorCode::kInvalidArgument:
    case ErrorCode::kDataLoss:
      what = "the stored model is damaged or unreadable";
      break;
    case ErrorCode::kOk:
    case ErrorCode::kAlreadyExists:
    case ErrorCode::kInternal:
      what = "the store failed";
      break;
  }
  return what + " (the server's log has the details)";
}

std::string model_json_path(std::string_view name) {
  return "/models/" + escape_path(name) + "/model.json";
}

RouteLabel label_of(const Route& route, std::string_view method) {
  switch (route.kind) {
    case Route::Kind::kList:
      return RouteLabel::kList;
    case Route::Kind::kModel:
      return method == "DELETE" ? RouteLabel::kRemove : RouteLabel::kUpload;
    case Route::Kind::kModelJson:
      return RouteLabel::kModelJson;
    case Route::Kind::kModelFile:
      return RouteLabel::kWeights;
    case Route::Kind::kStatic:
      return RouteLabel::kStatic;
    case Route::Kind::kHealth:
      return RouteLabel::kHealth;
    case Route::Kind::kReady:
      return RouteLabel::kReady;
    case Route::Kind::kMetrics:
      return RouteLabel::kMetrics;
    case Route::Kind::kNoFile:
      break;
  }
  return RouteLabel::kOther;
}

// Times one store operation into the metrics, failures included.
class StoreTimer {
 public:
  StoreTimer(ServeMetrics& metrics, StoreOperation operation)
      : metrics_(metrics), operation_(operation), start_(std::chrono::steady_clock::now()) {}
  ~StoreTimer() { metrics_.store_operation(operation_, std::chrono::steady_clock::now() - start_); }
  StoreTimer(const StoreTimer&) = delete;
  StoreTimer& operator=(const StoreTimer&) = delete;

 private:
  ServeMetrics& metrics_;
  StoreOperation operation_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace

std::string escape_path(std::string_view name) {
  static const char kDigits[] = "0123456789ABCDEF";
  std::string out;
  for (char c : name) {
    const auto u = static_cast<unsigned char>(c);
    const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                       c == '-' || c == '.' || c == '_' || c == '~' || c == '/';
    if (plain) {
      out += c;
    } else {
      out += '%';
      out += kDigits[u >> 4];
      out += kDigits[u & 15];
    }
  }
  return out;
}

std::string_view Request::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return v;
  }
  return {};
}

void Reply::set(std::string name, std::string value) {
  headers.emplace_back(std::move(name), std::move(value));
}

void Reply::set_body(std::string text, std::string content_type) {
  length = text.size();
  offset = 0;
  body.clear();
  body.push_back(Buffer::from_string(std::move(text)));
  set("Content-Type", std::move(content_type));
}

Upload::Upload(std::string name, std::string boundary, const ServerLimits& limits,
               uint64_t size_hint)
    : name_(std::move(name)),
      collector_("upload of model '" + name_ + "'", limits.max_model_json_bytes, size_hint),
      parser_(std::move(boundary), collector_,
              MultipartLimits{limits.max_parts, limits.max_header_bytes}) {}

App::App(const ServerOptions& options)
    : options_(options),
      store_(options.store, options.store_options,
             options.registry ? *options.registry : Registry::global(), options.cache_ttl,
             options.create_store),
      metrics_(url_scheme(store_.url())) {
  if (!options.static_dir.empty()) {
    static_root_ = open_folder(AT_FDCWD, options.static_dir, "static folder " + options.static_dir);
  }
}

bool App::authorized(const Request& request) const {
  if (options_.token.empty()) return true;
  const std::optional<std::string_view> token = bearer_token(request.header("authorization"));
  return token && constant_time_equals(*token, options_.token);
}

App::Plan App::plan(const Request& request) const {
  Plan plan;
  const std::string& method = request.method;
  if (method == "OPTIONS") {
    plan.reply = preflight(request);
    return plan;
  }
  try {
    plan.route = route_target(request.target, is_write(method));
  } catch (const Error& e) {
    plan.reply = error_reply(e, Phase::kRequest);
    return plan;
  }
  const Route& route = plan.route;
  plan.label = label_of(route, method);

  auto refuse = [&](int status, std::string_view allow, const std::string& message) {
    plan.reply = error_reply(Error(ErrorCode::kInvalidArgument, message), Phase::kRequest);
    plan.reply.status = status;
    if (!allow.empty()) plan.reply.set("Allow", std::string(allow));
    return plan;
  };

  if (route.kind == Route::Kind::kHealth || route.kind == Route::Kind::kReady ||
      route.kind == Route::Kind::kMetrics) {
    // Open to probes and scrapers without a token: they show no model.
    if (!is_read(method)) return refuse(405, kReadMethods, method + " is not allowed here");
    return operator_endpoint(request, std::move(plan));
  }
  if (route.kind == Route::Kind::kStatic) {
    if (static_root_.get() < 0) {
      plan.reply = error_reply(
          Error(ErrorCode::kNotFound, "nothing here: models are under /models"), Phase::kRead);
      return plan;
    }
    if (!is_read(method)) return refuse(405, kReadMethods, method + " is not allowed here");
    plan.work = Work::kStore;
    return plan;
  }

  const bool needs_token = is_write(method) || (options_.auth_reads && is_read(method));
  if (needs_token && !authorized(request)) {
    const bool sent = !request.header("authorization").empty();
    plan.reply =
        error_reply(Error(ErrorCode::kPermissionDenied, sent ? "the bearer token is not valid"
                                                             : "this request needs a bearer token"),
                    Phase::kRequest);
    plan.reply.status = 401;
    plan.reply.set("WWW-Authenticate", sent ? "Bearer realm=\"stowage\", error=\"invalid_token\""
                                            : "Bearer realm=\"stowage\"");
    return plan;
  }

  switch (route.kind) {
    case Route::Kind::kList:
      if (!is_read(method)) return refuse(405, kReadMethods, method + " is not allowed on /models");
      plan.work = Work::kStore;
      return plan;
    case Route::Kind::kModel:
      if (method == "DELETE") {
        plan.work = Work::kStore;
      } else if (method == "POST" || method == "PUT") {
        plan.work = Work::kUpload;
      }
      return plan;
    case Route::Kind::kNoFile:
      if (!is_read(method)) return refuse(405, kAllMethods, method + " is not allowed here");
      plan.reply =
          error_reply(Error(ErrorCode::kNotFound, "GET /models/" + escape_path(route.name) +
                                                      "/model.json to load this model"),
                      Phase::kRead);
      return plan;
    case Route::Kind::kModelJson:
    case Route::Kind::kModelFile:
      if (!is_read(method)) {
        return refuse(405, kReadMethods, method + " is not allowed on a weights file");
      }
      plan.work = Work::kStore;
      return plan;
    case Route::Kind::kStatic:
    case Route::Kind::kHealth:
    case Route::Kind::kReady:
    case Route::Kind::kMetrics:
      break;
  }
  return refuse(405, kAllMethods, method + " is not allowed");
}

App::Plan App::operator_endpoint(const Request&, Plan plan) const {
  Reply& reply = plan.reply;
  switch (plan.route.kind) {
    case Route::Kind::kHealth:
      reply.set_body("ok\n", "text/plain; charset=utf-8");
      break;
    case Route::Kind::kReady:
      plan.work = Work::kReady;
      return plan;
    default:
      reply.set_body(metrics_.render(), std::string(kMetricsContentType));
      break;
  }
  reply.set("Cache-Control", "no-store");
  return plan;
}

Reply App::ready(const CallContext& call) {
  Reply reply;
  try {
    std::optional<size_t> models;
    {
      StoreTimer timer(metrics_, StoreOperation::kProbe);
      models = store_.probe(call);
    }
    if (models) metrics_.set_models(*models);
    reply.set_body("ready\n", "text/plain; charset=utf-8");
  } catch (const Error& e) {
    if (options_.error_log) options_.error_log("readiness check: " + std::string(e.what()));
    reply.status = 503;
    reply.set_body(error_json(Error(ErrorCode::kUnavailable, ""),
                              "not ready: " + store_failure_text(e.code())),
                   "application/json");
    reply.note = "not ready: " + std::string(error_code_name(e.code()));
  }
  reply.set("Cache-Control", "no-store");
  return reply;
}

Reply App::not_ready_in_time(std::chrono::milliseconds waited) const {
  const std::string message =
      "not ready: the store did not answer within " + std::to_string(waited.count()) + " ms";
  if (options_.error_log) options_.error_log("readiness check: " + message);
  Reply reply;
  reply.status = 503;
  reply.set_body(error_json(Error(ErrorCode::kUnavailable, ""), message), "application/json");
  reply.set("Cache-Control", "no-store");
  reply.note = "not ready: timeout";
  return reply;
}

Reply App::busy_reply(const std::string& message) const {
  Reply reply;
  reply.status = 503;
  reply.set_body(error_json(Error(ErrorCode::kUnavailable, ""), message), "application/json");
  reply.set("Retry-After", "1");
  reply.note = "busy";
  return reply;
}

Reply App::preflight(const Request& request) const {
  Reply reply;
  const std::string_view origin = request.header("origin");
  const std::string_view wanted = request.header("access-control-request-method");
  if (origin.empty() || wanted.empty()) {
    reply.status = 204;
    reply.set("Allow", std::string(kAllMethods));
    return reply;
  }
  if (!origin_allowed(origin, options_.cors_origins)) {
    reply = error_reply(
        Error(ErrorCode::kPermissionDenied, "cross-origin requests from " + std::string(origin) +
                                                " are not allowed (see --cors-origin)"),
        Phase::kRequest);
    reply.status = 403;
    return reply;
  }
  reply.status = 204;
  reply.set("Access-Control-Allow-Origin", std::string(origin));
  reply.set("Access-Control-Allow-Methods", std::string(kAllMethods));
  const std::string_view asked = request.header("access-control-request-headers");
  reply.set("Access-Control-Allow-Headers",
            is_token_list(asked) ? std::string(asked) : std::string(kDefaultAllowedHeaders));
  reply.set("Access-Control-Max-Age", "600");
  reply.set("Vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers");
  return reply;
}

void App::decorate(const Request& request, Reply& reply) const {
  // An upload replayed here stores the same model once (saves are atomic
  // overwrites), so clients may retry one that failed (docs/serve.md).
  reply.set(std::string(kIdempotentHeader), "true");
  const std::string_view origin = request.header("origin");
  if (request.method != "OPTIONS" && origin_allowed(origin, options_.cors_origins)) {
    reply.set("Access-Control-Allow-Origin", std::string(origin));
    reply.set("Access-Control-Expose-Headers", std::string(kExposedHeaders));
    reply.set("Vary", "Origin");
  }
  if (reply.head || request.method == "HEAD") reply.head = true;
}

Reply App::error_reply(const Error& e, Phase phase) const {
  Reply reply;
  switch (e.code()) {
    case ErrorCode::kNotFound:
      reply.status = 404;
      break;
    case ErrorCode::kInvalidArgument:
    case ErrorCode::kDataLoss:
      // Bad input from the client, or a damaged model in the store.
      reply.status = phase == Phase::kRead ? 500 : 400;
      break;
    case ErrorCode::kAlreadyExists:
      reply.status = 409;
      break;
    case ErrorCode::kPermissionDenied:
      reply.status = phase == Phase::kRequest ? 403 : 500;
      break;
    case ErrorCode::kResourceExhausted:
      reply.status = phase == Phase::kStore ? 507 : 413;
      break;
    case ErrorCode::kUnavailable:
    case ErrorCode::kCancelled:
      reply.status = 503;
      break;
    case ErrorCode::kDeadlineExceeded:
      reply.status = 504;
      break;
    case ErrorCode::kUnimplemented:
      reply.status = 501;
      break;
    case ErrorCode::kOk:
    case ErrorCode::kInternal:
      reply.status = 500;
      break;
  }
  // A failure of the store itself may name local folders, plugin folders,
  // endpoints or keys: the server's log gets the details, the client a
  // short answer. Refusals of the client's request keep their message.
  const std::string message = phase != Phase::kRequest && reply.status >= 500
                                  ? store_failure_text(e.code())
                                  : store_.redact(e.what());
  reply.set_body(error_json(e, message), "application/json");
  reply.note = std::string(error_code_name(e.code()));
  if (reply.status >= 500 && options_.error_log) options_.error_log(e.what());
  return reply;
}

Reply App::upload_failed(const Error& error) const { return error_reply(error, Phase::kRequest); }

Reply App::status_reply(int status, const Error& error) const {
  Reply reply = error_reply(error, Phase::kRequest);
  reply.status = status;
  return reply;
}

Reply App::resource_reply(const Request& request, const Resource& resource) const {
  Reply reply;
  const uint64_t size = resource.size();
  reply.body = resource.data;
  reply.set("Content-Type", resource.content_type);
  reply.set("ETag", resource.etag);
  reply.set("Accept-Ranges", "bytes");
  reply.set("Cache-Control", cache_control(resource.caching, options_.auth_reads));
  if (!resource.sha256.empty()) {
    // RFC 9530's field, and the RFC 3230 form it replaced, which older
    // clients and proxies still read.
    const std::string base64 = sha256_base64_of_hex(resource.sha256);
    reply.set("Repr-Digest", "sha-256=:" + base64 + ":");
    reply.set("Digest", "sha-256=" + base64);
  }

  const std::string_view if_none_match = request.header("if-none-match");
  if (!if_none_match.empty() && etag_matches_any(if_none_match, resource.etag)) {
    reply.status = 304;
    reply.body.clear();
    return reply;
  }
  const std::string_view range = request.header("range");
  const std::string_view if_range = request.header("if-range");
  if (!range.empty() && (if_range.empty() || if_range_matches(if_range, resource.etag))) {
    const RangeRequest r = parse_range(range, size);
    if (r.kind == RangeRequest::Kind::kUnsatisfiable) {
      reply.status = 416;
      reply.body.clear();
      reply.set("Content-Range", "bytes */" + std::to_string(size));
      return reply;
    }
    if (r.kind == RangeRequest::Kind::kPart) {
      reply.status = 206;
      reply.offset = r.range.first;
      reply.length = r.range.length;
      reply.set("Content-Range", "bytes " + std::to_string(r.range.first) + "-" +
                                     std::to_string(r.range.first + r.range.length - 1) + "/" +
                                     std::to_string(size));
      return reply;
    }
  }
  reply.status = 200;
  reply.offset = 0;
  reply.length = size;
  return reply;
}

Reply App::list_reply() {
  std::vector<StoredModel> models;
  {
    StoreTimer timer(metrics_, StoreOperation::kList);
    models = store_.list();
  }
  metrics_.set_models(models.size());
  std::string out = "{\"models\":[";
  bool first = true;
  for (const StoredModel& m : models) {
    if (!first) out += ',';
    first = false;
    out += "{\"name\":" + json::quote(m.name) +
           ",\"modelJson\":" + json::quote(model_json_path(m.name)) +
           ",\"modelArtifactsInfo\":" + info_to_json(m.info) + "}";
  }
  out += "]}";
  Reply reply;
  reply.set_body(std::move(out), "application/json");
  reply.set("Cache-Control", "no-store");
  return reply;
}

Reply App::serve(const Request& request, const Route& route, const CallContext& call) {
  try {
    switch (route.kind) {
      case Route::Kind::kList:
        return list_reply();
      case Route::Kind::kModelJson: {
        StoreTimer timer(metrics_, StoreOperation::kModelJson);
        return resource_reply(request, store_.model_json(route.name, call));
      }
      case Route::Kind::kModelFile: {
        StoreTimer timer(metrics_, StoreOperation::kWeights);
        return resource_reply(request, store_.weights_file(route.name, route.file, call));
      }
      case Route::Kind::kStatic:
        return resource_reply(request, read_static_file(static_root_.get(), route.path));
      case Route::Kind::kModel: {
        ModelArtifactsInfo info;
        {
          StoreTimer timer(metrics_, StoreOperation::kRemove);
          info = store_.remove(route.name);
        }
        Reply reply;
        reply.set_body("{\"name\":" + json::quote(route.name) +
                           ",\"modelArtifactsInfo\":" + info_to_json(info) + "}",
                       "application/json");
        return reply;
      }
      case Route::Kind::kNoFile:
      case Route::Kind::kHealth:
      case Route::Kind::kReady:
      case Route::Kind::kMetrics:
        break;
    }
    throw Error(ErrorCode::kInternal, "unexpected route");
  } catch (const Error& e) {
    if (e.code() == ErrorCode::kNotFound && route.kind != Route::Kind::kStatic &&
        route.kind != Route::Kind::kList) {
      // The store's own message names its folders; the client only needs this.
      const std::string what =
          route.kind == Route::Kind::kModelFile
              ? "model '" + route.name + "' has no weights file '" + route.file + "'"
              : "no model named '" + route.name + "'";
      return error_reply(Error(ErrorCode::kNotFound, what), Phase::kRead);
    }
    if (e.code() == ErrorCode::kNotFound && route.kind == Route::Kind::kList) {
      // The store's location vanished (a bucket deleted, ...): its message
      // names it.
      if (options_.error_log) options_.error_log(e.what());
      return error_reply(Error(ErrorCode::kNotFound, store_failure_text(e.code())), Phase::kRead);
    }
    return error_reply(e, route.kind == Route::Kind::kModel ? Phase::kStore : Phase::kRead);
  }
}

std::unique_ptr<Upload> App::begin_upload(const Request& request, const Route& route,
                                          Reply& reply) const {
  if (request.content_length && *request.content_length > options_.limits.max_upload_bytes) {
    reply = error_reply(Error(ErrorCode::kResourceExhausted,
                              "the upload has " + std::to_string(*request.content_length) +
                                  " bytes; this server takes at most " +
                                  std::to_string(options_.limits.max_upload_bytes)),
                        Phase::kRequest);
    reply.close = true;
    return nullptr;
  }
  std::string boundary;
  try {
    boundary = multipart_boundary(request.header("content-type"));
  } catch (const Error& e) {
    reply = error_reply(e, Phase::kRequest);
    if (std::string_view(e.what()).find("must be multipart/form-data") != std::string_view::npos) {
      reply.status = 415;
    }
    reply.close = request.has_body;
    return nullptr;
  }
  return std::make_unique<Upload>(route.name, std::move(boundary), options_.limits,
                                  request.content_length.value_or(0));
}

Reply App::finish_upload(const Request& request, Upload& upload, const CallContext& call) {
  ModelArtifacts artifacts;
  try {
    artifacts = upload.take_artifacts();
  } catch (const Error& e) {
    return error_reply(e, Phase::kRequest);
  }
  SaveResult result;
  try {
    StoreTimer timer(metrics_, StoreOperation::kSave);
    result = store_.save(upload.name(), artifacts, call);
  } catch (const Error& e) {
    return error_reply(e, Phase::kStore);
  }
  Reply reply;
  reply.status = request.method == "POST" ? 201 : 200;
  const std::string location = model_json_path(upload.name());
  reply.set("Location", location);
  reply.set_body("{\"name\":" + json::quote(upload.name()) + ",\"modelUrl\":" +
                     json::quote(location) + ",\"modelJson\":" + json::quote(location) +
                     ",\"modelArtifactsInfo\":" + info_to_json(result.model_artifacts_info) + "}",
                 "application/json");
  return reply;
}

std::string format_access_record(const AccessRecord& r, bool as_json) {
  const double ms = static_cast<double>(r.duration.count()) / 1000.0;
  char duration[32];
  std::snprintf(duration, sizeof duration, "%.1f", ms);
  // The path comes from the network: cut it short and make it printable.
  std::string path;
  for (char c : r.path.substr(0, 512)) {
    const auto u = static_cast<unsigned char>(c);
    path += (u < 0x20 || u == 0x7f || c == '"' || c == '\\') ? '?' : c;
  }
  std::string method;
  for (char c : r.method.substr(0, 32)) method += (c > 0x20 && c < 0x7f && c != '"') ? c : '?';
  if (as_json) {
    std::string out =
        "{\"time\":" + json::quote(iso_date(r.time)) + ",\"remote\":" + json::quote(r.remote) +
        ",\"method\":" + json::quote(method) + ",\"route\":" + json::quote(r.route) +
        ",\"path\":" + json::quote(path) + ",\"status\":" + std::to_string(r.status) +
        ",\"bytesSent\":" + std::to_string(r.bytes_sent) +
        ",\"bytesReceived\":" + std::to_string(r.bytes_received) + ",\"ms\":" + duration;
    if (!r.note.empty()) out += ",\"note\":" + json::quote(r.note);
    return out + "}";
  }
  std::string out = iso_date(r.time) + " " + r.remote + " \"" + method + " " + path + "\" " +
                    (r.status ? std::to_string(r.status) : std::string("-")) + " " +
                    std::to_string(r.bytes_sent) + " " + std::to_string(r.bytes_received) + " " +
                    duration + "ms";
  if (!r.note.empty()) out += " (" + r.note + ")";
  return out;
}

}  // namespace stowage::serve
