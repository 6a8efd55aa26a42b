// http:// and https:// — TF.js models on web servers, as tf.io.http() and
// tf.loadLayersModel(url) use them (spec §4.6, §4.7).
//
// USAGE
//
//   save    model.save('http://host/upload') does the same: one
//           multipart/form-data request (POST, or any other method with
//           "method") with the parts "model.json" (filename model.json,
//           application/json, its manifest naming ./model.weights.bin) and
//           "model.weights.bin" (filename model.weights.bin,
//           application/octet-stream; left out for a model without weight
//           data), written from the weight buffers without joining them.
//           Any 2xx answer is success; the save result's responses are
//             [{"status":200,"statusText":"OK","url":"<final URL>",
//               "modelUrl":"<URL>"|null,"body":"<text>"}]
//           (body only when it is UTF-8 text, at most 1 MiB kept).
//           "modelUrl" is where the saved model can be loaded from, when
//           the receiver names it: a JSON object body with a string member
//           "modelUrl" (stowage serve sends one), resolved against the final
//           upload URL; it must be http(s). null when the receiver names
//           nothing: the upload URL is not the model's URL, so a host cannot
//           read the model back from it.
//           An upload is sent once, as TF.js does: a failure is retryable
//           only when replaying it cannot store the model twice, that is
//           when the upload never left this machine whole (a refused
//           connection, a reset before the last byte), when the method is
//           PUT, when the receiver declared its uploads idempotent with the
//           response header
//             Stowage-Upload-Idempotent: true
//           (stowage serve sends it on every answer), or when the option
//           "retry_uploads" is true.
//   load    The URL names model.json. Each weight file is fetched from
//             - the weight-URL converter, when the caller has one;
//             - else "weight_path_prefix" + path + suffix, or
//               <model.json URL up to its last '/'> + path + suffix,
//           where suffix is the model.json URL's query ("?..." after the
//           last '/'), joined as plain text exactly as TF.js does; a
//           relative result is resolved against the model.json URL.
//           Shards are fetched in parallel ("max_parallel", default 6) over
//           kept-alive connections, each read into one buffer of its
//           Content-Length. A shard answered with a non-2xx status, an HTML
//           page, or bytes that do not add up to what the manifest needs is
//           an error naming the shard, its URL, status, content type, and
//           the expected and actual bytes (TF.js would take a 404 page as
//           weights; stowage does not). A missing (404) weight file is
//           DATA_LOSS; a missing model.json is NOT_FOUND. A 200 answer
//           with a Repr-Digest (RFC 9530) or Digest (RFC 3230) sha-256 is
//           checked against its bytes as they arrive (stowage::net) when
//           model.json records no digest for the file (one it records is
//           checked by the host instead, so every byte is hashed once): a
//           mismatch, or a malformed sha-256 in such a header, is DATA_LOSS
//           naming the URL.
//           In a streaming copy each weight file goes to the host as soon
//           as its GET completes, in whatever order they complete; a group
//           whose files do not add up fails the load once all are in.
//           With "from_tfhub" the URL is rewritten first as TF.js's
//           loadGraphModel(url, {fromTFHub: true}) does: "/" added when
//           missing, then "model.json?tfjs-format=file"; a URL that has a
//           query keeps it, "tfjs-format=file" joined to it with "&" (TF.js
//           appends a second "?", which breaks such URLs).
//   stat    model.json by GET and each weight file by HEAD (refused as load
//           refuses a shard). The version is a digest of model.json's bytes,
//           ETag and Last-Modified, and each weight file's ETag,
//           Last-Modified and Content-Length: a weight file replaced behind
//           an unchanged model.json changes it when the server sends a
//           validator (an ETag, or a Last-Modified that moved), and only
//           when its size changed if the server sends neither.
//           A shallow stat (abi.h STOWAGE_CALL_STAT_SHALLOW) makes the GET
//           alone; its version holds model.json's ETag and Last-Modified
//           and a digest of its bytes. Given such a version back as the
//           known one (abi.h known_version, a cache revalidating), the GET
//           is conditional: If-None-Match with the ETag, If-Modified-Since
//           with the Last-Modified when it was at least a second older than
//           the answer's Date; a 304 is "unchanged". A server that ignores
//           them answers 200, which is "unchanged" when body and
//           validators are the same. A version this stat did not make for
//           this URL is treated as none (no validator is sent).
//   list, remove  Not supported: a web server has no listing protocol.
//
//   Options (a JSON object; any other key is refused):
//     "method"          for save: "POST" (default), "PUT" or any other
//                       method fetch() takes (an RFC 9110 token; not GET,
//                       HEAD, which cannot carry a body, nor CONNECT,
//                       TRACE, TRACK). DELETE, OPTIONS, POST and PUT are
//                       upper-cased as fetch does; others are sent as given.
//     "retry_uploads"   true: a failed upload is retried like a load, also
//                       when replaying it could store the model twice.
//     "from_tfhub"      true: the URL names a TF Hub model (load only).
//     "headers"         {"Name": "value", ...} sent with every request, for
//                       example {"Authorization": "Bearer ..."}. Values
//                       never appear in messages.
//     "send_headers_to_other_hosts"  false (default): weight files on
//                       another origin than model.json get no "headers".
//     "weight_path_prefix"  TF.js's weightPathPrefix (plain concatenation).
//     "max_parallel"    shard requests at once (1..64, default 6).
//     "integrity"       for save: "none" (default: the multipart bytes TF.js
//                       sends) or "sha256": model.json's weight group
//                       records the SHA-256 of model.weights.bin
//                       (docs/integrity.md).
//     "connect_timeout_ms", "read_timeout_ms", "max_connections_per_host",
//     "max_redirects", "ca_file", "ca_path", "insecure_skip_tls_verify":
//                       connection settings (core/net/client_options.hpp).
//                       https verifies certificates against the system
//                       store plus ca_file/ca_path; insecure_skip_tls_verify
//                       turns that off and logs a warning.
//
// ERRORS AND RETRIES
//
//   This plugin never retries. Connection failures, truncated bodies,
//   timeouts and the statuses 408, 429, 500, 502, 503 and 504 are reported
//   as retryable UNAVAILABLE, so the host's retry policy tries again within
//   its budget; for an upload only when it may be replayed (see save). 404/410 is NOT_FOUND,
//   401/403 PERMISSION_DENIED, a wrong shard DATA_LOSS, bad model JSON INVALID_ARGUMENT.
//   Cancellation and the call's deadline are polled while requests run.
#include <algorithm>
#include <atomic>
#include <boost/beast/core/string.hpp>
#include <chrono>
#include <ctime>
#include <functional>
#include <map>
#include <mutex>

#include "client_options.hpp"
#include "http_client.hpp"
#include "stowage/digest.hpp"
#include "stowage/plugin.hpp"
#include "stowage/text.hpp"
#include "stowage/weights.hpp"

namespace stowage::http {
namespace {

using net::Client;
using net::Control;
using net::Request;
using net::Response;
using net::Url;
using plugin::Call;
using plugin::Options;

constexpr uint64_t kMaxModelJson = 512ull << 20;
constexpr uint64_t kMaxSaveResponse = 1ull << 20;
constexpr std::string_view kWeightsFile = "model.weights.bin";
// The answer header by which a receiver says that replaying an upload
// cannot store the model twice (documented in docs/http.md).
constexpr std::string_view kIdempotentHeader = "Stowage-Upload-Idempotent";
constexpr std::string_view kNotReplayed =
    " (not retried: an upload is sent once, as TF.js sends it, unless the method is PUT, the "
    "receiver answers with \"Stowage-Upload-Idempotent: true\", or the option retry_uploads is "
    "true)";

// The method of a save, checked as fetch() checks it (Fetch standard: a
// token; CONNECT, TRACE and TRACK are forbidden; DELETE, GET, HEAD,
// OPTIONS, POST and PUT are upper-cased, others sent as written). A save
// has a body, which fetch() refuses for GET and HEAD.
std::string save_method(const std::string& method, const std::string& where) {
  const std::string_view kTokenSymbols = "!#$%&'*+-.^_`|~";
  const bool token = !method.empty() && std::all_of(method.begin(), method.end(), [&](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           kTokenSymbols.find(c) != std::string_view::npos;
  });
  const std::string prefix = "Option \"method\" for " + where + ": " + json::quote(method);
  if (!token) throw Error(ErrorCode::kInvalidArgument, prefix + " is not a valid HTTP method");
  for (std::string_view forbidden : {"CONNECT", "TRACE", "TRACK"}) {
    if (boost::beast::iequals(method, forbidden)) {
      throw Error(ErrorCode::kInvalidArgument,
                  prefix + " is a method fetch() refuses to send (CONNECT, TRACE, TRACK)");
    }
  }
  for (std::string_view bodiless : {"GET", "HEAD"}) {
    if (boost::beast::iequals(method, bodiless)) {
      throw Error(ErrorCode::kInvalidArgument,
                  prefix + " cannot carry the upload (fetch(): \"Request with GET/HEAD method " +
                      "cannot have body.\")");
    }
  }
  for (std::string_view known : {"DELETE", "OPTIONS", "POST", "PUT"}) {
    if (boost::beast::iequals(method, known)) return std::string(known);
  }
  return method;
}

// TF.js's loadGraphModel(url, {fromTFHub: true}): "/" added unless the URL
// ends with one, then "model.json?tfjs-format=file". A query the URL has
// already stays a query (TF.js would append a second '?' after it):
// "h/m/1?x=1" gives "h/m/1/model.json?x=1&tfjs-format=file". A fragment is
// dropped, as fetch() drops it.
std::string tfhub_url(std::string_view url) {
  url = url.substr(0, url.find('#'));
  const size_t q = url.find('?');
  std::string path(url.substr(0, q));
  std::string query(q == std::string_view::npos ? std::string_view() : url.substr(q + 1));
  if (!path.ends_with('/')) path += '/';
  path += "model.json";
  bool has_format = false;
  for (size_t start = 0; start <= query.size();) {
    size_t end = std::min(query.find('&', start), query.size());
    std::string_view param = std::string_view(query).substr(start, end - start);
    if (param.substr(0, param.find('=')) == "tfjs-format") has_format = true;
    start = end + 1;
  }
  if (!has_format) {
    query += std::string(query.empty() || query.ends_with('&') ? "" : "&") + "tfjs-format=file";
  }
  return path + "?" + query;
}

// Where the receiver of an upload says the model now is: the string member
// "modelUrl" of a JSON object body, resolved against the final upload URL.
// Only an http(s) URL counts; anything else is as if nothing was named.
std::optional<std::string> named_model_url(const Response& r) {
  const std::string_view body = r.body.view();
  if (body.empty() || body.size() > kMaxSaveResponse) return std::nullopt;
  rapidjson::Document doc;
  doc.Parse(body.data(), body.size());
  if (doc.HasParseError() || !doc.IsObject()) return std::nullopt;
  auto member = doc.FindMember("modelUrl");
  if (member == doc.MemberEnd() || !member->value.IsString()) return std::nullopt;
  const std::string_view reference(member->value.GetString(), member->value.GetStringLength());
  if (reference.empty()) return std::nullopt;
  try {
    return Url::parse(r.url).resolve(reference).str();
  } catch (const Error&) {
    return std::nullopt;  // not an http(s) URL
  }
}

// TF.js parseUrl: prefix up to and with the last '/', suffix from the last
// '?' when it comes after that '/'.
std::pair<std::string, std::string> parse_url(const std::string& url) {
  size_t slash = url.rfind('/');
  size_t question = url.rfind('?');
  std::string prefix = url.substr(0, slash == std::string::npos ? 0 : slash) + "/";
  std::string suffix =
      question != std::string::npos && (slash == std::string::npos || question > slash)
          ? url.substr(question)
          : std::string();
  return {prefix, suffix};
}

std::string describe_body(const Response& r) {
  std::string type = r.content_type();
  std::string s = type.empty() ? "no content type" : type;
  s += ", " + std::to_string(r.body.size()) + " bytes";
  return s;
}

Control control_for(Call& call) {
  Control c;
  c.cancelled = [&call] { return call.cancelled(); };
  c.deadline = call.deadline();
  return c;
}

// An IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT", RFC 9110 §5.6.7) as
// Unix seconds; nullopt for anything else.
std::optional<int64_t> http_seconds(std::string_view text) {
  std::tm tm{};
  const std::string t(text);
  const char* end = ::strptime(t.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (end == nullptr || *end != '\0') return std::nullopt;
  return static_cast<int64_t>(::timegm(&tm));
}

// A header value as hex (stowage/digest.hpp's to_hex reads bytes).
std::string to_hex(std::string_view text) {
  return stowage::to_hex({reinterpret_cast<const uint8_t*>(text.data()), text.size()});
}

// The version token of a shallow stat, which the plugin reads back when a
// caller revalidates with it (abi.h known_version):
//   h2.<check>.<body>.<f|w>.<hex ETag>.<hex Last-Modified>
// body: a digest of model.json's bytes, so the token changes with them
// even where the server's validators do not. f|w: whether Last-Modified
// was firm, at least a second before the answer's Date (RFC 9110 §8.8.2.2):
// a write in the same second as the last one keeps the same Last-Modified,
// so If-Modified-Since with a value that was not firm could be answered 304
// for a model.json written after it was read. check: a digest of the rest
// and the URL (redacted: no secret goes in), so a token of another URL, or
// one cut or edited, reads as none and sends no validator.
struct ShallowToken {
  std::string body;
  bool firm = false;
  std::string etag;
  std::string last_modified;

  static ShallowToken of(const Response& r) {
    ShallowToken t;
    t.body = plugin::version_token({std::string(r.body.view())});
    t.etag = std::string(r.header("etag").value_or(""));
    t.last_modified = std::string(r.header("last-modified").value_or(""));
    const std::optional<int64_t> modified = http_seconds(t.last_modified);
    std::optional<int64_t> date = http_seconds(r.header("date").value_or(""));
    if (!date) {
      date = std::chrono::duration_cast<std::chrono::seconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
    }
    t.firm = modified && *date - *modified >= 1;
    return t;
  }

  std::string check(const std::string& url) const {
    return plugin::version_token(
        {"http shallow stat", url, body, firm ? "f" : "w", etag, last_modified});
  }

  std::string str(const std::string& url) const {
    return "h2." + check(url) + "." + body + "." + (firm ? "f" : "w") + "." + to_hex(etag) + "." +
           to_hex(last_modified);
  }

  // nullopt unless `token` is what str(url) made for this url.
  static std::optional<ShallowToken> parse(std::string_view token, const std::string& url) {
    const std::vector<std::string_view> fields = split(token, '.');
    if (fields.size() != 6 || fields[0] != "h2" || (fields[3] != "f" && fields[3] != "w")) {
      return std::nullopt;
    }
    std::optional<std::string> etag = from_hex(fields[4]);
    std::optional<std::string> modified = from_hex(fields[5]);
    if (!etag || !modified) return std::nullopt;
    ShallowToken t{std::string(fields[2]), fields[3] == "f", std::move(*etag),
                   std::move(*modified)};
    // Validators go into request headers: no line breaks, whatever the token says.
    if (t.etag.find_first_of("\r\n") != std::string::npos ||
        t.last_modified.find_first_of("\r\n") != std::string::npos || t.check(url) != fields[1]) {
      return std::nullopt;
    }
    return t;
  }

  // The same model.json: bytes and validators (firmness aside).
  bool same_model(const ShallowToken& other) const {
    return body == other.body && etag == other.etag && last_modified == other.last_modified;
  }
};

class HttpHandler final : public plugin::Handler {
 public:
  HttpHandler(std::string_view url, Options& options)
      : Handler(url),
        from_tfhub_(options.get_bool("from_tfhub", false)),
        model_url_(from_tfhub_ ? tfhub_url(url) : std::string(url)),
        parsed_(Url::parse(model_url_)),
        method_(save_method(options.get_string("method", "POST"), redact_url(url))),
        retry_uploads_(options.get_bool("retry_uploads", false)),
        headers_(options.get_string_map("headers")),
        headers_to_other_hosts_(options.get_bool("send_headers_to_other_hosts", false)),
        weight_path_prefix_(options.get_string("weight_path_prefix")),
        has_prefix_(options.has("weight_path_prefix")),
        max_parallel_(options.get_uint64("max_parallel", 6)),
        client_options_(net::read_client_options(options)),
        integrity_(plugin::read_integrity(options, plugin::Integrity::kNone)) {
    if (max_parallel_ == 0 || max_parallel_ > 64) {
      throw Error(ErrorCode::kInvalidArgument,
                  "Option \"max_parallel\" for " + redacted() + " must be from 1 to 64");
    }
    for (const auto& [name, value] : headers_) {
      if (boost::beast::iequals(name, "content-length") ||
          boost::beast::iequals(name, "transfer-encoding") || boost::beast::iequals(name, "host")) {
        throw Error(ErrorCode::kInvalidArgument, "Option \"headers\" for " + redacted() +
                                                     " may not set \"" + name +
                                                     "\": the client sets it");
      }
      if (name.empty() || name.find_first_of(" \t\r\n:") != std::string::npos ||
          value.find_first_of("\r\n") != std::string::npos) {
        throw Error(ErrorCode::kInvalidArgument, "Option \"headers\" for " + redacted() +
                                                     " has a malformed header \"" + name + "\"");
      }
    }
    // The client (its thread and TLS context) is made by the first call, so
    // opening a handler stays cheap; ca_file problems still show at open.
    if (!client_options_.ca_file.empty() || !client_options_.ca_path.empty()) client();
  }

  std::optional<std::string> save(const ModelArtifacts& artifacts, Call& call) override {
    call.check();
    if (from_tfhub_) {
      throw Error(ErrorCode::kInvalidArgument,
                  "Option \"from_tfhub\" for " + redact_url(url()) +
                      " is for loading a TF Hub model; it cannot be used to save");
    }
    WeightsManifest manifest{
        WeightGroup{{"./" + std::string(kWeightsFile)},
                    artifacts.weight_specs.value_or(std::vector<WeightSpec>{})}};
    if (integrity_ == plugin::Integrity::kSha256 && artifacts.weight_data) {
      // model.json is the form's first part (TF.js's order, which receivers
      // may rely on), so the digest is needed before the weights leave: one
      // pass over the weight bytes, already in memory.
      Sha256 hash;
      for (const Buffer& b : *artifacts.weight_data) {
        hash.update(std::span<const uint8_t>(b.data(), b.size()));
      }
      manifest[0].sha256 = std::vector<std::string>{hash.finish_hex()};
    }
    std::string model_json = write_model_json(artifacts, manifest, ModelJsonLayout::kTfjsHttp);
    std::vector<net::FormPart> parts;
    parts.push_back({"model.json",
                     "model.json",
                     "application/json",
                     {Buffer::from_string(std::move(model_json))}});
    if (artifacts.weight_data) {
      parts.push_back({std::string(kWeightsFile), std::string(kWeightsFile),
                       "application/octet-stream", *artifacts.weight_data});
    }
    net::Multipart form = net::build_multipart(parts);

    Request req;
    req.method = method_;
    req.url = url();
    req.headers = header_list(/*same_origin=*/true);
    std::erase_if(req.headers,
                  [](const auto& h) { return boost::beast::iequals(h.first, "content-type"); });
    req.headers.emplace_back("Content-Type", form.content_type);
    req.body = std::move(form.body);
    req.max_body_bytes = kMaxSaveResponse * 16;
    Control control = control_for(call);
    call.set_total(form.size);
    // Body bytes written to the socket: an upload that never left this
    // machine whole (refused connection, reset half-way) reached no receiver
    // whole, so sending it again cannot store it twice.
    std::atomic<uint64_t> sent{0};
    control.on_sent = [&call, &sent](uint64_t n) {
      sent += n;
      call.advance(n);
    };
    Response r;
    try {
      r = client().send(req, control);
    } catch (const Error& e) {
      throw sent < form.size ? e : sent_once(e);
    }
    if (auto said = r.header(kIdempotentHeader);
        said && boost::beast::iequals(trimmed(*said), "true")) {
      receiver_idempotent_ = true;
    }
    if (!r.ok()) {
      std::string said = net::body_excerpt(r.body);
      if (!said.empty()) said = "; the server said: " + said;
      throw sent_once(
          net::status_error(method_, r,
                            "BrowserHTTPRequest.save() failed due to HTTP response status " +
                                std::to_string(r.status) + ". " + method_ + " " + redacted(),
                            said));
    }
    call.progress(form.size, form.size);
    const std::optional<std::string> model_url = named_model_url(r);
    std::string out = "[{\"status\":" + std::to_string(r.status) +
                      ",\"statusText\":" + json::quote(valid_utf8(r.reason) ? r.reason : "") +
                      ",\"url\":" + json::quote(redact_url(r.url)) +
                      ",\"modelUrl\":" + (model_url ? json::quote(*model_url) : "null");
    std::string_view body = r.body.view();
    if (valid_utf8(body)) {
      out += ",\"body\":" +
             json::quote(body.substr(0, std::min<size_t>(body.size(), kMaxSaveResponse)));
    }
    out += "}]";
    return out;
  }

  ModelArtifacts load(Call& call) override {
    call.check();
    Control control = control_for(call);
    ModelArtifacts artifacts = load_model_json(control);
    if (!artifacts.weights_manifest || artifacts.weights_manifest->empty()) {
      call.progress(0, 0);
      return artifacts;
    }
    artifacts.weight_data = fetch_weights(*artifacts.weights_manifest, call, control);
    return artifacts;
  }

  // A streaming load hands each weight file over as soon as its GET
  // completes. The model goes with the first one: until then a transient
  // failure leaves the host free to retry the load.
  void load_into(plugin::LoadSink& out, Call& call) override {
    if (!out.streaming()) return Handler::load_into(out, call);
    call.check();
    Control control = control_for(call);
    ModelArtifacts artifacts = load_model_json(control);
    if (!artifacts.weights_manifest || artifacts.weights_manifest->empty()) {
      call.progress(0, 0);
      out.set_model(artifacts);
      return;
    }
    std::once_flag model_once;
    const Deliver deliver = [&](size_t index, const Buffer& body) {
      std::call_once(model_once, [&] { out.set_model(artifacts); });
      out.put(index, body);  // may wait for room in the host's queue
    };
    fetch_weights(*artifacts.weights_manifest, call, control, &deliver);
    std::call_once(model_once, [&] { out.set_model(artifacts); });  // groups that name no file
    call.check();  // abi.h: a call past its deadline fails, also when the bytes came in late
  }

  // model.json by GET, then each weight file by HEAD (in parallel, as load
  // fetches them), each refused as load refuses a shard. A shallow stat
  // makes the GET alone, conditional when the caller knows a version.
  ModelStat stat(Call& call) override {
    call.check();
    Control control = control_for(call);
    if (call.shallow_stat()) return shallow_stat(call, control);
    Response r = get_model_json(control, " (stat of the model)");
    ModelStat out;
    out.model = parse_model(r);
    std::vector<std::string> parts = {validators(r),
                                      plugin::version_token({std::string(r.body.view())})};
    uint64_t weight_bytes = 0;
    size_t files = 0;
    if (out.model.weights_manifest) {
      const WeightsManifest& manifest = *out.model.weights_manifest;
      std::vector<std::string> urls = weight_urls(manifest, call);
      const std::string origin = parsed_.origin();
      std::vector<Request> heads;
      size_t index = 0;
      for (const WeightGroup& group : manifest) {
        const std::optional<uint64_t> need = group_bytes(group);
        for (const std::string& path : group.paths) {
          const size_t i = index++;
          ++files;
          if (group.weights.empty()) continue;  // load fetches nothing for it either
          Request& head = heads.emplace_back("HEAD", urls[i]);
          const std::string name = "weight file " + std::to_string(i + 1) + " \"" + path + "\"";
          head.label = name;
          head.headers = header_list(Url::parse(urls[i]).origin() == origin);
          head.on_head = [this, name, need, single = group.paths.size() == 1](const Response& h) {
            shard_head_check(h, name, need, single);
          };
        }
      }
      for (const Response& h :
           client().send_all(heads, control, static_cast<size_t>(max_parallel_))) {
        // Without a validator only the size tells this weight file apart.
        parts.push_back(validators(h) + "|" + std::to_string(h.content_length.value_or(0)));
        weight_bytes += h.content_length.value_or(0);
      }
    }
    out.version = plugin::version_token(parts);
    out.info = plugin::stat_info(out.model, weight_bytes, files);
    return out;
  }

 private:
  // abi.h STOWAGE_CALL_STAT_SHALLOW: model.json alone, its weight bytes as
  // the specs need them. The version is a ShallowToken; given one the
  // caller knows, the GET carries its validators (If-None-Match with the
  // ETag, If-Modified-Since with a firm Last-Modified), and a 304 answers
  // "unchanged" without a body. A 200 (the model changed, or a server that
  // ignores the headers) whose body and validators are the known token's
  // is "unchanged" too, with the token of this answer.
  ModelStat shallow_stat(Call& call, const Control& control) {
    std::optional<ShallowToken> known;
    if (std::optional<std::string_view> v = call.known_version()) {
      known = ShallowToken::parse(*v, redacted());
      if (!known) {
        plugin::log(0, "http: the known version given for " + redacted() +
                           " is not a token of this URL's shallow stat; asking without validators");
      }
    }
    net::Headers conditions;
    if (known && !known->etag.empty()) conditions.emplace_back("If-None-Match", known->etag);
    if (known && known->firm && !known->last_modified.empty()) {
      conditions.emplace_back("If-Modified-Since", known->last_modified);
    }
    Response r = get_model_json(control, " (stat of the model)", conditions);
    ModelStat out;
    if (r.status == 304) {
      out.unchanged = true;
      out.version = std::string(*call.known_version());
      return out;
    }
    const ShallowToken now = ShallowToken::of(r);
    out.version = now.str(redacted());
    if (known && known->same_model(now)) {
      out.unchanged = true;
      return out;
    }
    out.model = parse_model(r);
    uint64_t weight_bytes = 0;
    size_t files = 0;
    if (out.model.weights_manifest) {
      for (const WeightGroup& group : *out.model.weights_manifest) {
        files += group.paths.size();
        weight_bytes += group_bytes(group).value_or(0);
      }
    }
    out.info = plugin::stat_info(out.model, weight_bytes, files);
    return out;
  }

  // GET model.json with `conditions` (validators: a 304 is then an answer);
  // any other status than 2xx fails naming the URL, with `advice` after the
  // status code.
  Response get_model_json(const Control& control, std::string_view advice,
                          const net::Headers& conditions = {}) {
    Request get;
    get.url = model_url_;
    get.headers = header_list(true);
    get.headers.insert(get.headers.end(), conditions.begin(), conditions.end());
    get.max_body_bytes = kMaxModelJson;
    Response r = client().send(get, control);
    if (r.status == 304 && !conditions.empty()) return r;
    if (!r.ok()) {
      throw net::status_error(get.method, r,
                              "Request to " + redacted() + " failed with status code " +
                                  std::to_string(r.status) + std::string(advice));
    }
    return r;
  }

  // The bytes a weight group's specs need; nullopt when a string weight
  // makes it unknowable before the bytes arrive.
  static std::optional<uint64_t> group_bytes(const WeightGroup& group) {
    std::optional<uint64_t> bytes = 0;
    for (const WeightSpec& spec : group.weights) {
      std::optional<uint64_t> n = fixed_byte_size(spec);
      bytes = (bytes && n) ? std::optional<uint64_t>(*bytes + *n) : std::nullopt;
    }
    return bytes;
  }

  // What identifies the version of a resource: its ETag and Last-Modified.
  static std::string validators(const Response& r) {
    return std::string(r.header("etag").value_or("")) + "|" +
           std::string(r.header("last-modified").value_or(""));
  }

  // The URL in messages: the model's (after from_tfhub), secrets hidden.
  std::string redacted() const { return redact_url(model_url_); }

  static std::string_view trimmed(std::string_view v) {
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
    return v;
  }

  // A transient failure of an upload that reached the receiver whole (or may
  // have), made final unless replaying the upload cannot store the model
  // twice (TF.js sends a save once).
  Error sent_once(const Error& e) const {
    if (!e.retryable() || retry_uploads_ || method_ == "PUT" || receiver_idempotent_.load()) {
      return e;
    }
    return Error(e.code(), std::string(e.what()) + std::string(kNotReplayed), false);
  }

  Client& client() {
    std::call_once(client_once_, [&] { client_ = std::make_unique<Client>(client_options_); });
    return *client_;
  }

  net::Headers header_list(bool same_origin) const {
    net::Headers out;
    if (!same_origin && !headers_to_other_hosts_) return out;
    for (const auto& [name, value] : headers_) out.emplace_back(name, value);
    return out;
  }

  ModelArtifacts parse_model(const Response& r) const {
    const std::string source = redacted();
    ModelArtifacts artifacts;
    try {
      artifacts = parse_model_json(r.body.view(), source);
    } catch (const Error& e) {
      std::string hint =
          model_url_.ends_with(".pb")
              ? " Your path contains a .pb file extension. Support for .pb models "
                "have been removed in TensorFlow.js 1.0 in favor of .json models."
              : " Please make sure the server is serving valid JSON for this request.";
      std::string got = " (got " + describe_body(r);
      std::string excerpt = r.content_type() == "text/html" ? net::body_excerpt(r.body, 120) : "";
      if (!excerpt.empty()) got += ": " + excerpt;
      got += "; " + std::string(e.what()) + ")";
      throw Error(ErrorCode::kInvalidArgument,
                  "Failed to parse model JSON of response from " + source + "." + hint + got);
    }
    if (!artifacts.model_topology && !artifacts.weights_manifest) {
      throw Error(ErrorCode::kInvalidArgument,
                  "The JSON from HTTP path " + source +
                      " contains neither model topology or manifest for weights.");
    }
    return artifacts;
  }

  // The URL of every shard, in manifest order (spec §4.7).
  std::vector<std::string> weight_urls(const WeightsManifest& manifest, Call& call) const {
    auto [prefix, suffix] = parse_url(model_url_);
    if (has_prefix_) prefix = weight_path_prefix_;
    std::vector<std::string> urls;
    for (const WeightGroup& group : manifest) {
      for (const std::string& path : group.paths) {
        std::optional<std::string> converted = call.convert_weight_url(path);
        std::string u = converted ? *converted : prefix + path + suffix;
        // fetch resolves what is not absolute against the page; here the
        // page is model.json.
        urls.push_back(parsed_.resolve(u).str());
      }
    }
    return urls;
  }

  ModelArtifacts load_model_json(Control& control) {
    Response r = get_model_json(
        control, ". Please verify this URL points to the model JSON of the model to load.");
    return parse_model(r);
  }

  // Takes weight file `index` (manifest order) as soon as it is complete.
  using Deliver = std::function<void(size_t index, const Buffer& body)>;

  // Every weight file of the manifest, in manifest order; with `deliver`,
  // each goes there instead once its GET and those of the files before it
  // completed (several run at once; the hand-overs run on this thread in
  // file order, so a deliver that waits for the host to take the file
  // before it never waits for itself), and the result is empty. Either way the
  // groups' sizes are checked once all are in.
  WeightData fetch_weights(const WeightsManifest& manifest, Call& call, Control control,
                           const Deliver* deliver = nullptr) {
    std::vector<std::string> urls = weight_urls(manifest, call);
    const size_t count = urls.size();

    // What each group needs; nullopt when a string weight makes it unknowable.
    std::vector<std::optional<uint64_t>> needs;
    std::optional<uint64_t> total = 0;
    for (const WeightGroup& g : manifest) {
      const std::optional<uint64_t> bytes = group_bytes(g);
      needs.push_back(bytes);
      total = (total && bytes) ? std::optional<uint64_t>(*total + *bytes) : std::nullopt;
    }

    std::vector<std::string> names;  // "shard 2 of 7 (group1-shard2of7.bin)"
    std::vector<size_t> group_of;
    for (size_t g = 0; g < manifest.size(); ++g) {
      for (const std::string& path : manifest[g].paths) {
        names.push_back("weight file " + std::to_string(names.size() + 1) + " of " +
                        std::to_string(count) + " \"" + path + "\"");
        group_of.push_back(g);
      }
    }

    // A group that lists no weights needs no bytes: its files are not
    // fetched (TF.js's http save names ./model.weights.bin even for a model
    // without weights, and uploads no such file).
    const std::string origin = parsed_.origin();
    std::vector<Request> requests;
    std::vector<size_t> fetched;  // index into urls of each request
    for (size_t i = 0; i < count; ++i) {
      if (manifest[group_of[i]].weights.empty()) continue;
      fetched.push_back(i);
      Request& req = requests.emplace_back();
      req.url = urls[i];
      req.label = names[i];
      req.headers = header_list(Url::parse(urls[i]).origin() == origin);
      const std::optional<uint64_t> need = needs[group_of[i]];
      const bool single = manifest[group_of[i]].paths.size() == 1;
      if (need) req.max_body_bytes = *need;
      // A file whose digest model.json records is checked against it by the
      // host after the load (on every core); hashing it here as well against
      // the same claim in a Repr-Digest header would read every byte twice.
      req.check_digest_headers = !manifest[group_of[i]].sha256.has_value();
      req.on_head = [this, name = names[i], need, single, &call, total](const Response& head) {
        shard_head_check(head, name, need, single);
        if (!total && head.content_length) call.set_total(call.total() + *head.content_length);
      };
    }
    call.set_total(total.value_or(0));
    control.on_received = [&call](uint64_t n) { call.advance(n); };
    std::vector<Response> responses(count);
    for (size_t i = 0; i < count; ++i) {
      responses[i].url = urls[i];
      responses[i].body = Buffer::wrap(nullptr, 0, nullptr, redact_url(urls[i]));
    }
    std::vector<uint64_t> sizes(count, 0);
    if (deliver == nullptr) {
      std::vector<Response> answered =
          client().send_all(requests, control, static_cast<size_t>(max_parallel_));
      for (size_t k = 0; k < fetched.size(); ++k) {
        sizes[fetched[k]] = answered[k].body.size();
        responses[fetched[k]] = std::move(answered[k]);
      }
    } else {
      // Each file is handed to the host in order as it arrives, on this
      // thread, while the others download.
      std::vector<bool> has_request(count, false);
      for (size_t i : fetched) has_request[i] = true;
      for (size_t i = 0; i < count; ++i) {
        if (!has_request[i]) (*deliver)(i, responses[i].body);  // a file of no weights
      }
      net::Client::Batch batch(client(), control, static_cast<size_t>(max_parallel_),
                               net::Client::Batch::Order::kSubmitted);
      for (size_t k = 0; k < fetched.size(); ++k) {
        const size_t i = fetched[k];
        const bool started = batch.submit(std::move(requests[k]), [&, i](Response& r) {
          sizes[i] = r.body.size();
          (*deliver)(i, r.body);
          r.body = Buffer();  // the host holds it now
          responses[i] = std::move(r);
        });
        if (!started) break;  // wait() says why
      }
      batch.wait();
    }

    // Each group's shards must add up to what its specs need.
    size_t first = 0;
    for (size_t g = 0; g < manifest.size(); ++g) {
      const size_t n = manifest[g].paths.size();
      uint64_t got = 0;
      for (size_t k = 0; k < n; ++k) got += sizes[first + k];
      if (needs[g] && got != *needs[g]) {
        std::string msg = "Weight group " + std::to_string(g + 1) + " of " + redacted() +
                          " needs " + std::to_string(*needs[g]) + " bytes but its " +
                          std::to_string(n) + " file(s) gave " + std::to_string(got) + ":";
        for (size_t k = 0; k < n; ++k) {
          const Response& r = responses[first + k];
          const std::string type = r.content_type();
          msg += " " + names[first + k] + " from " + redact_url(r.url) + " (HTTP " +
                 std::to_string(r.status) + ", " + (type.empty() ? "no content type" : type) +
                 ", " + std::to_string(sizes[first + k]) + " bytes)";
          msg += k + 1 < n ? ";" : "";
        }
        throw Error(ErrorCode::kDataLoss, msg);
      }
      first += n;
    }
    if (deliver != nullptr) {
      call.progress(call.done(), call.done());
      return {};
    }
    WeightData data;
    data.reserve(count);
    for (Response& r : responses) data.push_back(std::move(r.body));
    call.progress(call.done(), call.done());
    return data;
  }

  // Refuses a shard before its body is read.
  void shard_head_check(const Response& head, const std::string& name, std::optional<uint64_t> need,
                        bool single) const {
    const std::string at = name + " from " + redact_url(head.url);
    const std::string type = head.content_type();
    std::string sizes;
    if (head.content_length) sizes = std::to_string(*head.content_length) + " bytes";
    if (need) {
      sizes += std::string(sizes.empty() ? "" : "; ") +
               (single ? "expected " : "its group needs ") + std::to_string(*need) + " bytes";
    }
    std::string detail = "(" + (type.empty() ? std::string("no content type") : type) +
                         (sizes.empty() ? "" : ", " + sizes) + ")";
    if (head.status == 404 || head.status == 410) {
      // The model is there (its model.json was): a missing file is lost data.
      throw Error(ErrorCode::kDataLoss,
                  at + ": HTTP " + std::to_string(head.status) + " " + head.reason + " " + detail);
    }
    if (!head.ok()) throw net::status_error("GET", head, at, detail);
    if (type == "text/html" || type == "application/xhtml+xml") {
      throw Error(ErrorCode::kDataLoss,
                  at + ": the server sent an HTML page instead of weights " + detail);
    }
    if (need && head.content_length &&
        (single ? *head.content_length != *need : *head.content_length > *need)) {
      throw Error(ErrorCode::kDataLoss, at + ": HTTP " + std::to_string(head.status) +
                                            " with the wrong length " + detail);
    }
  }

  const bool from_tfhub_;
  const std::string model_url_;  // the URL loads fetch (url() rewritten by from_tfhub)
  const Url parsed_;             // model_url_, parsed
  const std::string method_;
  const bool retry_uploads_;
  // The receiver said "Stowage-Upload-Idempotent: true" in an answer to an
  // upload of this handler (the host's next attempt may then replay it).
  std::atomic<bool> receiver_idempotent_{false};
  const std::map<std::string, std::string> headers_;
  const bool headers_to_other_hosts_;
  const std::string weight_path_prefix_;
  const bool has_prefix_;
  const uint64_t max_parallel_;
  const net::ClientOptions client_options_;
  const plugin::Integrity integrity_;
  std::once_flag client_once_;
  std::unique_ptr<Client> client_;
};

}  // namespace
}  // namespace stowage::http

STOWAGE_PLUGIN(stowage::http::HttpHandler, "http", STOWAGE_PLUGIN_VERSION,
               STOWAGE_CAP_LOAD | STOWAGE_CAP_SAVE | STOWAGE_CAP_STAT | STOWAGE_CAP_STREAMING_LOAD,
               "http", "https");
