#include <algorithm>
#include <boost/beast/core/string.hpp>

#include "memfd_body.hpp"
#include "s3_client_internal.hpp"
#include "stowage/error.hpp"
#include "stowage/parallel.hpp"

namespace stowage::s3 {
namespace {

constexpr uint64_t kMinPartSize = 5ull << 20;  // S3's smallest part but the last
constexpr uint64_t kMaxParts = 10000;
constexpr uint64_t kMaxXmlBytes = 64ull << 20;
constexpr const char* kMetaSha256 = "x-amz-meta-sha256";

bool ends_with_ci(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         boost::beast::iequals(s.substr(s.size() - suffix.size()), suffix);
}

// A bucket name that can be a DNS label of a virtual host (and, over TLS, of
// the wildcard certificate: no dots).
bool dns_compatible(const std::string& bucket, bool tls) {
  if (bucket.size() < 3 || bucket.size() > 63) return false;
  for (char c : bucket) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || (c == '.' && !tls);
    if (!ok) return false;
  }
  return bucket.front() != '-' && bucket.back() != '-';
}

// Bytes [offset, offset + length) of the concatenation, as slices.
std::vector<Buffer> slice_pieces(const std::vector<Buffer>& body, uint64_t offset,
                                 uint64_t length) {
  std::vector<Buffer> out;
  for (const Buffer& b : body) {
    if (length == 0) break;
    if (offset >= b.size()) {
      offset -= b.size();
      continue;
    }
    uint64_t n = std::min(b.size() - offset, length);
    out.push_back(offset == 0 && n == b.size() ? b : b.slice(offset, n));
    length -= n;
    offset = 0;
  }
  return out;
}

std::string header_or(const net::Response& r, std::string_view name) {
  auto v = r.header(name);
  return v ? std::string(*v) : std::string();
}

ErrorCode code_for(const std::string& s3_code, int status, bool* retryable) {
  *retryable = false;
  static const char* const kRetryable[] = {"SlowDown", "InternalError", "RequestTimeout",
                                           "OperationAborted", "ServiceUnavailable"};
  for (const char* c : kRetryable) {
    if (s3_code == c) {
      *retryable = true;
      return ErrorCode::kUnavailable;
    }
  }
  if (s3_code == "NoSuchBucket" || s3_code == "NoSuchKey" || s3_code == "NoSuchUpload") {
    return ErrorCode::kNotFound;
  }
  if (s3_code == "AccessDenied" || s3_code == "InvalidAccessKeyId" ||
      s3_code == "SignatureDoesNotMatch" || s3_code == "ExpiredToken" ||
      s3_code == "InvalidToken" || s3_code == "TokenRefreshRequired" ||
      s3_code == "RequestTimeTooSkewed" || s3_code == "AllAccessDisabled" ||
      s3_code == "AccountProblem" || s3_code == "InvalidSecurity") {
    return ErrorCode::kPermissionDenied;
  }
  if (s3_code == "EntityTooLarge" || s3_code == "TooManyBuckets" || s3_code == "QuotaExceeded") {
    return ErrorCode::kResourceExhausted;
  }
  if (s3_code == "NotImplemented") return ErrorCode::kUnimplemented;
  if (s3_code == "PermanentRedirect" || s3_code == "AuthorizationHeaderMalformed" ||
      s3_code == "InvalidBucketName" || s3_code == "IllegalLocationConstraintException" ||
      s3_code == "TemporaryRedirect") {
    return ErrorCode::kInvalidArgument;
  }
  if (status >= 300 && status < 400) return ErrorCode::kInvalidArgument;
  Error e = net::status_error(status, "", "");
  *retryable = e.retryable();
  return e.code();
}

}  // namespace

// Built with designated initialisers: op, method, bucket and key always,
// the rest as a request needs them.
struct S3Client::Request {
  std::string op;  // "GetObject", for messages
  std::string method;
  std::string bucket;
  std::string key;
  // Every member after key has a default (`{}` too): designated
  // initialisers name only what a request sets.
  Pairs query{};
  net::Headers headers{};  // besides those every request has; all signed
  std::vector<Buffer> body{};
  std::string payload_sha256{};  // computed from body when empty
  uint64_t max_body = UINT64_MAX;
  std::function<void(const net::Response&)> on_head{};
  // A 206 answer's body goes here (net::Request::into).
  std::shared_ptr<net::SharedBody> into{};
  uint64_t into_offset = 0;
  uint64_t into_length = 0;
};

S3Client::S3Client(ClientConfig config) : config_(std::move(config)) {
  if (config_.endpoint.empty()) {
    std::string domain = config_.region.starts_with("cn-") ? ".amazonaws.com.cn" : ".amazonaws.com";
    endpoint_ = "https://s3." + config_.region + domain;
  } else {
    endpoint_ = config_.endpoint;
  }
  try {
    base_ = net::Url::parse(endpoint_);
  } catch (const Error& e) {
    throw Error(ErrorCode::kInvalidArgument,
                "The s3 endpoint " + redact_url(endpoint_) + " is not an http(s) URL: " + e.what());
  }
  if (base_.target.find('?') != std::string::npos) {
    throw Error(ErrorCode::kInvalidArgument,
                "The s3 endpoint " + redact_url(endpoint_) + " must not have a query");
  }
  while (!base_.target.empty() && base_.target.back() == '/') base_.target.pop_back();
  aws_ =
      ends_with_ci(base_.host, ".amazonaws.com") || ends_with_ci(base_.host, ".amazonaws.com.cn");
  net::ClientOptions http = config_.http;
  http.max_connections_per_host =
      std::max<uint32_t>(http.max_connections_per_host, static_cast<uint32_t>(config_.concurrency));
  http_ = std::make_unique<net::Client>(http);
}

S3Client::~S3Client() = default;

std::string S3Client::name(const std::string& bucket, const std::string& key) {
  return "s3://" + bucket + "/" + key;
}

net::Url S3Client::target(const std::string& bucket, const std::string& key) const {
  bool virtual_host = false;
  if (config_.addressing == Addressing::kVirtual) {
    virtual_host = true;
  } else if (config_.addressing == Addressing::kAuto) {
    virtual_host = aws_ && dns_compatible(bucket, base_.scheme == "https");
  }
  net::Url url = base_;
  if (virtual_host) {
    url.host = bucket + "." + url.host;
    url.target += "/" + uri_encode(key, true);
  } else {
    url.target += "/" + uri_encode(bucket, false);
    if (!key.empty()) url.target += "/" + uri_encode(key, true);
  }
  return url;
}

std::string S3Client::url_for(const std::string& bucket, const std::string& key) const {
  return target(bucket, key).str();
}

net::Response S3Client::send(const Request& request, const net::Control& control) {
  return http_->send(signed_request(request, control), control);
}

net::Request S3Client::signed_request(const Request& request, const net::Control& control) {
  net::Url url = target(request.bucket, request.key);
  const std::string path = url.target;
  std::string query = canonical_query(request.query);
  url.target = path + (query.empty() ? "" : "?" + query);

  std::string payload;
  if (config_.unsigned_payload && !request.body.empty()) {
    payload = "UNSIGNED-PAYLOAD";
  } else if (!request.payload_sha256.empty()) {
    payload = request.payload_sha256;
  } else {
    payload = request.body.empty() ? std::string(kEmptySha256) : sha256_hex(request.body);
  }

  net::Request out;
  out.method = request.method;
  out.url = url.str();
  out.follow_redirects = false;
  out.max_body_bytes = request.max_body;
  out.label = request.op;
  out.body = request.body;
  out.on_head = request.on_head;
  out.into = request.into;
  out.into_offset = request.into_offset;
  out.into_length = request.into_length;
  out.headers.emplace_back("Host", url.authority());
  out.headers.emplace_back("x-amz-date", amz_date(std::chrono::system_clock::now()));
  out.headers.emplace_back("x-amz-content-sha256", payload);
  std::optional<Credentials> credentials = config_.credentials;
  if (config_.provider) credentials = config_.provider->current(control);
  if (credentials && !credentials->session_token.empty()) {
    out.headers.emplace_back("x-amz-security-token", credentials->session_token);
  }
  for (const auto& h : request.headers) out.headers.push_back(h);
  if (credentials) {
    SignableRequest s;
    s.method = request.method;
    s.path = path;
    s.query = request.query;
    s.headers = out.headers;
    s.payload_sha256 = payload;
    Signature sig = sign_v4(s, *credentials, config_.region, "s3", out.headers[1].second);
    out.headers.emplace_back("Authorization", sig.authorization);
  }
  return out;
}

void S3Client::fail(const Request& request, const net::Response& response) const {
  std::optional<S3Error> e = parse_error(response.body.view());
  std::string s3_code = e ? e->code : std::string();
  bool retryable = false;
  ErrorCode code = code_for(s3_code, response.status, &retryable);
  std::string where =
      request.key.empty() ? "s3://" + request.bucket : name(request.bucket, request.key);
  std::string msg = request.op + " " + where + ": HTTP " + std::to_string(response.status) + " " +
                    (s3_code.empty() ? response.reason : s3_code);
  if (e && !e->message.empty()) msg += ": " + e->message;
  if (!e && !response.body.empty()) {
    std::string excerpt = net::body_excerpt(response.body, 200);
    if (!excerpt.empty()) msg += ": " + excerpt;
  }

  std::string source = config_.provider                     ? config_.provider->source()
                       : config_.credentials_source.empty() ? "?"
                                                            : config_.credentials_source;
  std::string region = header_or(response, "x-amz-bucket-region");
  if (region.empty() && e) region = e->region;
  if (s3_code == "SignatureDoesNotMatch") {
    msg += " (the secret key does not belong to the access key from " + source +
           ", or the store expects another region than " + config_.region + ")";
  } else if (s3_code == "InvalidAccessKeyId") {
    msg += " (the access key from " + source + " is unknown to " + redact_url(endpoint_) + ")";
  } else if (s3_code == "ExpiredToken" || s3_code == "TokenRefreshRequired") {
    msg += " (the session token from " + source + " has expired; refresh the credentials)";
  } else if (s3_code == "RequestTimeTooSkewed") {
    msg += " (this machine's clock is off; signatures are valid for 15 minutes)";
  } else if (s3_code == "NoSuchBucket") {
    msg += " (no bucket \"" + request.bucket + "\" at " + redact_url(endpoint_) + ")";
  } else if (!region.empty() && region != config_.region) {
    msg += " (the bucket is in region " + region + ", not " + config_.region +
           "; set region=" + region + ")";
  } else if ((response.status == 401 || response.status == 403) && !config_.credentials &&
             !config_.provider) {
    msg += config_.anonymous ? std::string(" (the request was anonymous, as asked)")
                             : " (no credentials were found, so the request was not signed; "
                               "looked in " +
                                   config_.searched + ")";
  }
  if (auto id = e ? e->request_id : header_or(response, "x-amz-request-id"); !id.empty()) {
    msg += " [request id " + id + "]";
  }
  throw Error(code, msg, retryable)
      .with_request(
          {request.method, redact_url(url_for(request.bucket, request.key)),
           "HTTP " + std::to_string(response.status) + (s3_code.empty() ? "" : " " + s3_code)});
}

namespace {

// A GetObject's 2xx answer as an Object labelled `label`.
Object object_of(net::Response&& resp, const std::string& label) {
  Object o;
  o.info.size = resp.body.size();
  o.info.etag = header_or(resp, "ETag");
  o.info.last_modified = parse_http_date(header_or(resp, "Last-Modified"));
  o.info.sha256 = header_or(resp, kMetaSha256);
  o.body = std::move(resp.body);
  o.body.set_label(label);
  return o;
}

}  // namespace

std::optional<Object> S3Client::get(const std::string& bucket, const std::string& key,
                                    const net::Control& control,
                                    std::function<void(uint64_t)> on_size) {
  Request r = get_request(bucket, key, std::move(on_size));
  net::Response resp = send(r, control);
  return get_answer(r, resp);
}

S3Client::Request S3Client::get_request(const std::string& bucket, const std::string& key,
                                        std::function<void(uint64_t)> on_size) {
  Request r{.op = "GetObject", .method = "GET", .bucket = bucket, .key = key};
  if (on_size) {
    r.on_head = [on_size](const net::Response& head) {
      if (head.ok() && head.content_length) on_size(*head.content_length);
    };
  }
  return r;
}

std::optional<Object> S3Client::get_answer(const Request& r, net::Response& resp) const {
  const std::string& bucket = r.bucket;
  const std::string& key = r.key;
  if (resp.status == 404) {
    std::optional<S3Error> e = parse_error(resp.body.view());
    if (!e || e->code == "NoSuchKey") return std::nullopt;
  }
  if (!resp.ok()) fail(r, resp);
  return object_of(std::move(resp), name(bucket, key));
}

ConditionalObject S3Client::get_if_none_match(const std::string& bucket, const std::string& key,
                                              const std::string& etag,
                                              const net::Control& control) {
  Request r{.op = "GetObject",
            .method = "GET",
            .bucket = bucket,
            .key = key,
            .headers = {{"If-None-Match", etag}}};
  net::Response resp = send(r, control);
  if (resp.status == 304) return {.not_modified = true, .object = std::nullopt};
  if (resp.status == 404) {
    std::optional<S3Error> e = parse_error(resp.body.view());
    if (!e || e->code == "NoSuchKey") return {};
  }
  if (!resp.ok()) fail(r, resp);
  return {.not_modified = false, .object = object_of(std::move(resp), name(bucket, key))};
}

namespace {

// "bytes <first>-<last>/<total>" of a Content-Range header; nullopt when it
// is not that (an unknown total "*" included).
struct ContentRange {
  uint64_t first = 0;
  uint64_t last = 0;
  uint64_t total = 0;
};
std::optional<ContentRange> parse_content_range(std::string_view v) {
  if (!v.starts_with("bytes ")) return std::nullopt;
  v.remove_prefix(6);
  ContentRange r;
  auto number = [&v](uint64_t& out, char stop) {
    size_t i = 0;
    out = 0;
    while (i < v.size() && v[i] >= '0' && v[i] <= '9' && i < 19) out = out * 10 + (v[i++] - '0');
    if (i == 0 || (stop != 0 && (i >= v.size() || v[i] != stop))) return false;
    v.remove_prefix(stop != 0 ? i + 1 : i);
    return true;
  };
  if (!number(r.first, '-') || !number(r.last, '/') || !number(r.total, 0) || !v.empty() ||
      r.first > r.last || r.last >= r.total) {
    return std::nullopt;
  }
  return r;
}

std::string byte_range(uint64_t first, uint64_t last) {
  return "bytes=" + std::to_string(first) + "-" + std::to_string(last);
}

}  // namespace

std::optional<Object> S3Client::get_ranged(const std::string& bucket, const std::string& key,
                                           const net::Control& control,
                                           std::function<void(uint64_t)> on_size) {
  const uint64_t part = std::max<uint64_t>(config_.part_size, 1);
  const std::string where = name(bucket, key);
  Request first{.op = "GetObject",
                .method = "GET",
                .bucket = bucket,
                .key = key,
                .headers = {{"Range", byte_range(0, part - 1)}}};
  if (on_size) {
    first.on_head = [on_size](const net::Response& head) {
      if (head.status == 206) {
        if (auto r = parse_content_range(head.header("content-range").value_or(""))) {
          on_size(r->total);
        }
      } else if (head.ok() && head.content_length) {
        on_size(*head.content_length);
      }
    };
  }
  net::Response resp = send(first, control);
  if (resp.status == 404) {
    std::optional<S3Error> e = parse_error(resp.body.view());
    if (!e || e->code == "NoSuchKey") return std::nullopt;
  }
  if (!resp.ok()) fail(first, resp);
  Object o;
  o.info.etag = header_or(resp, "ETag");
  o.info.last_modified = parse_http_date(header_or(resp, "Last-Modified"));
  o.info.sha256 = header_or(resp, kMetaSha256);
  if (resp.status != 206) {
    // A store that ignores Range sends the whole object.
    o.info.size = resp.body.size();
    o.body = std::move(resp.body);
    o.body.set_label(where);
    return o;
  }
  const std::string header = header_or(resp, "Content-Range");
  std::optional<ContentRange> range = parse_content_range(header);
  if (!range || range->first != 0 || range->last + 1 != resp.body.size()) {
    throw Error(ErrorCode::kDataLoss, "GetObject " + where + ": the answer to Range " +
                                          byte_range(0, part - 1) + " has Content-Range \"" +
                                          header + "\" and " + std::to_string(resp.body.size()) +
                                          " bytes");
  }
  o.info.size = range->total;
  if (range->total == resp.body.size()) {
    o.body = std::move(resp.body);
    o.body.set_label(where);
    return o;
  }
  if (o.info.etag.empty()) {
    throw Error(ErrorCode::kDataLoss,
                "GetObject " + where + ": the store gave no ETag, so the parts of a " +
                    std::to_string(range->total) + "-byte object cannot be read as one version");
  }
  // The other parts go straight into their places in one memfd, each asking
  // for the version the first part came from (If-Match): an object replaced
  // meanwhile fails the read instead of mixing two versions.
  auto whole = std::make_shared<net::SharedBody>(range->total, where);
  whole->write_at(0, resp.body.data(), resp.body.size());
  const uint64_t start = resp.body.size();
  resp.body = Buffer();
  const uint64_t rest = range->total - start;
  const size_t parts = static_cast<size_t>((rest + part - 1) / part);
  // Each part is signed as it is submitted and checked as it is answered,
  // on this thread; the bytes went to their place on the client's.
  net::Client::Batch batch(*http_, control, config_.concurrency);
  for (size_t i = 0; i < parts; ++i) {
    const uint64_t from = start + i * part;
    const uint64_t to = std::min(range->total, from + part) - 1;
    Request r{.op = "GetObject",
              .method = "GET",
              .bucket = bucket,
              .key = key,
              .headers = {{"Range", byte_range(from, to)}, {"If-Match", o.info.etag}},
              .into = whole,
              .into_offset = from,
              .into_length = to - from + 1};
    auto check = [&, r, from, to](net::Response& answer) {
      if (answer.status == 412 || answer.status == 404) {
        throw Error(ErrorCode::kUnavailable,
                    "GetObject " + where + ": the object was replaced or removed while it was " +
                        "read in parts (its ETag is no longer " + o.info.etag + ")",
                    /*retryable=*/true);
      }
      if (!answer.ok()) fail(r, answer);
      const std::string got = header_or(answer, "Content-Range");
      std::optional<ContentRange> gr = parse_content_range(got);
      if (answer.status != 206 || !gr || gr->first != from || gr->last != to ||
          gr->total != range->total) {
        throw Error(ErrorCode::kDataLoss, "GetObject " + where + ": the answer to Range " +
                                              byte_range(from, to) + " is HTTP " +
                                              std::to_string(answer.status) +
                                              " with Content-Range \"" + got + "\"");
      }
    };
    if (!batch.submit(signed_request(r, control), std::move(check))) break;  // wait() says why
  }
  batch.wait();
  o.body = whole->map();
  return o;
}

std::optional<ObjectInfo> S3Client::head(const std::string& bucket, const std::string& key,
                                         const net::Control& control) {
  Request r = head_request(bucket, key);
  net::Response resp = send(r, control);
  return head_answer(r, resp);
}

S3Client::Request S3Client::head_request(const std::string& bucket, const std::string& key) {
  return {
      .op = "HeadObject", .method = "HEAD", .bucket = bucket, .key = key, .max_body = kMaxXmlBytes};
}

std::optional<ObjectInfo> S3Client::head_answer(const Request& r, const net::Response& resp) const {
  if (resp.status == 404) return std::nullopt;
  if (!resp.ok()) fail(r, resp);
  ObjectInfo info;
  info.size = resp.content_length.value_or(0);
  info.etag = header_or(resp, "ETag");
  info.last_modified = parse_http_date(header_or(resp, "Last-Modified"));
  info.sha256 = header_or(resp, kMetaSha256);
  return info;
}

std::string S3Client::put(const std::string& bucket, const std::string& key,
                          const std::vector<Buffer>& body, const net::Control& control,
                          const BodyDigest& digest) {
  uint64_t size = total_size(body);
  const std::string meta = digest.store ? digest.hex : std::string();
  if (size > config_.multipart_threshold) {
    return put_multipart(bucket, key, body, size, control, meta);
  }
  Request r = put_request(bucket, key, body, digest);
  net::Response resp = send(r, control);
  return put_answer(r, resp);
}

S3Client::Request S3Client::put_request(const std::string& bucket, const std::string& key,
                                        const std::vector<Buffer>& body, const BodyDigest& digest) {
  const std::string meta = digest.store ? digest.hex : std::string();
  net::Headers headers;
  if (!meta.empty()) headers.emplace_back(kMetaSha256, meta);
  // The body's digest is its payload hash: SigV4 need not hash it again.
  Request r{.op = "PutObject",
            .method = "PUT",
            .bucket = bucket,
            .key = key,
            .headers = std::move(headers),
            .body = body,
            .payload_sha256 = digest.hex,
            .max_body = kMaxXmlBytes};
  return r;
}

std::string S3Client::put_answer(const Request& r, const net::Response& resp) const {
  if (!resp.ok()) fail(r, resp);
  return header_or(resp, "ETag");
}

uint64_t S3Client::part_size_for(uint64_t size) const {
  uint64_t part = std::max(config_.part_size, kMinPartSize);
  if ((size + part - 1) / part > kMaxParts) {
    part = ((size + kMaxParts - 1) / kMaxParts + (1ull << 20) - 1) & ~((1ull << 20) - 1);
  }
  return part;
}

std::string S3Client::create_multipart(const std::string& bucket, const std::string& key,
                                       const net::Control& control, const std::string& sha256) {
  net::Headers headers;
  if (!sha256.empty()) headers.emplace_back(kMetaSha256, sha256);
  Request create{.op = "CreateMultipartUpload",
                 .method = "POST",
                 .bucket = bucket,
                 .key = key,
                 .query = {{"uploads", ""}},
                 .headers = std::move(headers),
                 .max_body = kMaxXmlBytes};
  net::Response created = send(create, control);
  if (!created.ok()) fail(create, created);
  return parse_upload_id(created.body.view(),
                         "the CreateMultipartUpload response for " + name(bucket, key));
}

std::string S3Client::upload_part(const std::string& bucket, const std::string& key,
                                  const std::string& upload_id, size_t number, size_t parts,
                                  const std::vector<Buffer>& body, const net::Control& control) {
  Request r = upload_part_request(bucket, key, upload_id, number, parts, body);
  net::Response resp = send(r, control);
  return upload_part_answer(r, resp);
}

S3Client::Request S3Client::upload_part_request(const std::string& bucket, const std::string& key,
                                                const std::string& upload_id, size_t number,
                                                size_t parts, const std::vector<Buffer>& body,
                                                std::string payload_sha256) {
  return {.op = "UploadPart " + std::to_string(number) + "/" + std::to_string(parts),
          .method = "PUT",
          .bucket = bucket,
          .key = key,
          .query = {{"partNumber", std::to_string(number)}, {"uploadId", upload_id}},
          .body = body,
          .payload_sha256 = std::move(payload_sha256),
          .max_body = kMaxXmlBytes};
}

std::string S3Client::upload_part_answer(const Request& r, const net::Response& resp) const {
  if (!resp.ok()) fail(r, resp);
  std::string etag = header_or(resp, "ETag");
  if (etag.empty()) {
    throw Error(ErrorCode::kInternal,
                r.op + " " + name(r.bucket, r.key) + ": no ETag in the answer");
  }
  return etag;
}

std::string S3Client::complete_multipart(const std::string& bucket, const std::string& key,
                                         const std::string& upload_id,
                                         const std::vector<std::string>& etags,
                                         const net::Control& control) {
  std::vector<std::pair<int, std::string>> list;
  for (size_t i = 0; i < etags.size(); ++i) list.emplace_back(static_cast<int>(i + 1), etags[i]);
  Request complete{.op = "CompleteMultipartUpload",
                   .method = "POST",
                   .bucket = bucket,
                   .key = key,
                   .query = {{"uploadId", upload_id}},
                   .headers = {{"Content-Type", "application/xml"}},
                   .body = {Buffer::from_string(complete_multipart_xml(list))},
                   .max_body = kMaxXmlBytes};
  net::Response done = send(complete, control);
  if (!done.ok()) fail(complete, done);
  ResultOrError result = parse_etag_result(
      done.body.view(), "the CompleteMultipartUpload response for " + name(bucket, key));
  // A 200 with an <Error> body: reported by its code (InternalError and
  // SlowDown stay retryable).
  if (result.error) fail(complete, done);
  return result.etag;
}

std::string S3Client::put_multipart(const std::string& bucket, const std::string& key,
                                    const std::vector<Buffer>& body, uint64_t size,
                                    const net::Control& control, const std::string& sha256) {
  const uint64_t part = part_size_for(size);
  const size_t parts = static_cast<size_t>((size + part - 1) / part);
  const std::string upload_id = create_multipart(bucket, key, control, sha256);

  try {
    std::vector<std::vector<Buffer>> pieces(parts);
    for (size_t i = 0; i < parts; ++i) {
      const uint64_t offset = static_cast<uint64_t>(i) * part;
      pieces[i] = slice_pieces(body, offset, std::min(part, size - offset));
    }
    // Each part's payload hash, on all cores: the parts are signed one by
    // one on this thread as they are submitted.
    std::vector<std::string> hashes(parts);
    if (!config_.unsigned_payload) {
      stowage::run_parallel(parts, cpu_width(parts, size), [&](size_t i, const std::atomic<bool>&) {
        hashes[i] = sha256_hex(pieces[i]);
      });
    }
    std::vector<std::string> etags(parts);
    Batch batch(*this, control);
    for (size_t i = 0; i < parts; ++i) {
      const bool started = batch.upload_part(bucket, key, upload_id, i + 1, parts,
                                             std::move(pieces[i]), std::move(hashes[i]),
                                             [&etags, i](std::string etag) { etags[i] = etag; });
      if (!started) break;  // wait() says why
    }
    batch.wait();
    return complete_multipart(bucket, key, upload_id, etags, control);
  } catch (const Error& e) {
    try {
      abort_multipart(bucket, key, upload_id, cleanup_control());
    } catch (const Error& abort_error) {
      throw Error(e.code(),
                  std::string(e.what()) +
                      "; aborting the multipart upload also failed, its parts "
                      "remain: " +
                      abort_error.what(),
                  e.retryable());
    }
    throw;
  } catch (...) {
    try {
      abort_multipart(bucket, key, upload_id, cleanup_control());
    } catch (...) {
    }
    throw;
  }
}

void S3Client::abort_multipart(const std::string& bucket, const std::string& key,
                               const std::string& upload_id, const net::Control& control) {
  Request r{.op = "AbortMultipartUpload",
            .method = "DELETE",
            .bucket = bucket,
            .key = key,
            .query = {{"uploadId", upload_id}},
            .max_body = kMaxXmlBytes};
  net::Response resp = send(r, control);
  if (resp.status == 404) return;  // NoSuchUpload: already gone
  if (!resp.ok()) fail(r, resp);
}

void S3Client::remove(const std::string& bucket, const std::string& key,
                      const net::Control& control) {
  Request r = remove_request(bucket, key);
  net::Response resp = send(r, control);
  remove_answer(r, resp);
}

S3Client::Request S3Client::remove_request(const std::string& bucket, const std::string& key) {
  return {.op = "DeleteObject",
          .method = "DELETE",
          .bucket = bucket,
          .key = key,
          .max_body = kMaxXmlBytes};
}

void S3Client::remove_answer(const Request& r, const net::Response& resp) const {
  if (resp.status == 404) {
    std::optional<S3Error> e = parse_error(resp.body.view());
    if (!e || e->code == "NoSuchKey") return;
  }
  if (!resp.ok()) fail(r, resp);
}

std::vector<ListedObject> S3Client::list(const std::string& bucket, const std::string& prefix,
                                         const net::Control& control) {
  std::vector<ListedObject> out;
  std::string token;
  for (int page = 0;; ++page) {
    Request r{.op = "ListObjectsV2",
              .method = "GET",
              .bucket = bucket,
              .key = "",
              .query = {{"list-type", "2"}, {"encoding-type", "url"}},
              .max_body = kMaxXmlBytes};
    if (!prefix.empty()) r.query.emplace_back("prefix", prefix);
    if (!token.empty()) r.query.emplace_back("continuation-token", token);
    net::Response resp = send(r, control);
    if (!resp.ok()) fail(r, resp);
    ListPage p = parse_list_objects_v2(
        resp.body.view(), true,
        "page " + std::to_string(page + 1) + " of the listing of " + name(bucket, prefix));
    for (ListedObject& o : p.objects) out.push_back(std::move(o));
    if (!p.truncated) break;
    if (p.next_token == token) {
      throw Error(ErrorCode::kInternal,
                  "The listing of " + name(bucket, prefix) + " repeats its continuation token");
    }
    token = p.next_token;
  }
  std::sort(out.begin(), out.end(),
            [](const ListedObject& a, const ListedObject& b) { return a.key < b.key; });
  return out;
}

std::optional<std::string> S3Client::copy(const std::string& src_bucket, const std::string& src_key,
                                          const std::string& etag, const std::string& bucket,
                                          const std::string& key, const net::Control& control,
                                          const std::string& sha256) {
  Request r = copy_request(src_bucket, src_key, etag, bucket, key, sha256);
  net::Response resp = send(r, control);
  return copy_answer(r, resp);
}

S3Client::Request S3Client::copy_request(const std::string& src_bucket, const std::string& src_key,
                                         const std::string& etag, const std::string& bucket,
                                         const std::string& key, const std::string& sha256) {
  Request r{.op = "CopyObject",
            .method = "PUT",
            .bucket = bucket,
            .key = key,
            .headers = {{"x-amz-copy-source",
                         "/" + uri_encode(src_bucket, false) + "/" + uri_encode(src_key, true)},
                        {"x-amz-copy-source-if-match", etag}},
            .max_body = kMaxXmlBytes};
  if (!sha256.empty()) {
    r.headers.emplace_back("x-amz-metadata-directive", "REPLACE");
    r.headers.emplace_back(kMetaSha256, sha256);
  }
  return r;
}

std::optional<std::string> S3Client::copy_answer(const Request& r,
                                                 const net::Response& resp) const {
  if (resp.status == 412) return std::nullopt;
  if (!resp.ok()) fail(r, resp);
  ResultOrError result =
      parse_etag_result(resp.body.view(), "the CopyObject response for " + name(r.bucket, r.key));
  if (result.error) {
    if (result.error->code == "PreconditionFailed") return std::nullopt;
    fail(r, resp);
  }
  return result.etag;
}

std::vector<PendingUpload> S3Client::list_multipart_uploads(const std::string& bucket,
                                                            const std::string& prefix,
                                                            const net::Control& control) {
  Request r{.op = "ListMultipartUploads",
            .method = "GET",
            .bucket = bucket,
            .key = "",
            .query = {{"uploads", ""}},
            .max_body = kMaxXmlBytes};
  if (!prefix.empty()) r.query.emplace_back("prefix", prefix);
  net::Response resp = send(r, control);
  if (!resp.ok()) fail(r, resp);
  return parse_multipart_uploads(resp.body.view(),
                                 "the ListMultipartUploads response for " + name(bucket, prefix));
}

S3Client::Batch::Batch(S3Client& client, const net::Control& control, Order order)
    : client_(client),
      control_(control),
      batch_(*client.http_, control, client.config_.concurrency, order) {}

S3Client::Batch::~Batch() = default;

bool S3Client::Batch::submit(const Request& request, std::function<void(net::Response&)> check) {
  // Signed now, so no request waits long after its x-amz-date.
  return batch_.submit(client_.signed_request(request, control_), std::move(check));
}

bool S3Client::Batch::head(const std::string& bucket, const std::string& key,
                           std::function<void(std::optional<ObjectInfo>)> then) {
  Request r = head_request(bucket, key);
  return submit(r, [this, r, then = std::move(then)](net::Response& resp) {
    std::optional<ObjectInfo> info = client_.head_answer(r, resp);
    if (then) then(std::move(info));
  });
}

bool S3Client::Batch::get(const std::string& bucket, const std::string& key,
                          std::function<void(std::optional<Object>)> then,
                          std::function<void(uint64_t)> on_size) {
  Request r = get_request(bucket, key, std::move(on_size));
  return submit(r, [this, r, then = std::move(then)](net::Response& resp) {
    std::optional<Object> o = client_.get_answer(r, resp);
    if (then) then(std::move(o));
  });
}

bool S3Client::Batch::put(const std::string& bucket, const std::string& key,
                          const std::vector<Buffer>& body, const BodyDigest& digest,
                          std::function<void(std::string etag)> then) {
  Request r = put_request(bucket, key, body, digest);
  net::Request request = client_.signed_request(r, control_);
  r.body.clear();  // the check needs no bytes: they go once answered
  return batch_.submit(std::move(request), [this, r, then = std::move(then)](net::Response& resp) {
    std::string etag = client_.put_answer(r, resp);
    if (then) then(std::move(etag));
  });
}

bool S3Client::Batch::upload_part(const std::string& bucket, const std::string& key,
                                  const std::string& upload_id, size_t number, size_t parts,
                                  std::vector<Buffer> body, std::string payload_sha256,
                                  std::function<void(std::string etag)> then) {
  Request r = upload_part_request(bucket, key, upload_id, number, parts, {});
  Request signed_part = r;
  signed_part.body = std::move(body);
  signed_part.payload_sha256 = std::move(payload_sha256);
  return batch_.submit(client_.signed_request(signed_part, control_),
                       [this, r, then = std::move(then)](net::Response& resp) {
                         std::string etag = client_.upload_part_answer(r, resp);
                         if (then) then(std::move(etag));
                       });
}

bool S3Client::Batch::copy(const std::string& src_bucket, const std::string& src_key,
                           const std::string& etag, const std::string& bucket,
                           const std::string& key, const std::string& sha256,
                           std::function<void(std::optional<std::string> etag)> then,
                           std::function<void(const Error& refused)> refused) {
  Request r = copy_request(src_bucket, src_key, etag, bucket, key, sha256);
  return submit(
      r, [this, r, then = std::move(then), refused = std::move(refused)](net::Response& resp) {
        std::optional<std::string> copied;
        try {
          copied = client_.copy_answer(r, resp);
        } catch (const Error& e) {
          if (!refused) throw;
          refused(e);
          return;
        }
        if (then) then(std::move(copied));
      });
}

bool S3Client::Batch::remove(const std::string& bucket, const std::string& key) {
  Request r = remove_request(bucket, key);
  return submit(r, [this, r](net::Response& resp) { client_.remove_answer(r, resp); });
}

void S3Client::Batch::wait() { batch_.wait(); }

net::Control cleanup_control(std::chrono::milliseconds budget) {
  net::Control c;
  c.deadline = std::chrono::system_clock::now() + budget;
  return c;
}

}  // namespace stowage::s3
