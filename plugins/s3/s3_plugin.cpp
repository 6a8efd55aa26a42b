// s3:// — TF.js models in S3-compatible object stores (AWS S3, MinIO, Ceph
// RGW, Cloudflare R2, ...), over HTTP(S) with SigV4; no AWS SDK.
//
// USAGE
//
//   s3://<bucket>/<prefix>               the model in that "folder":
//                                        <prefix>/model.json + weight files
//   s3://<bucket>/<prefix>/model.json    the same, naming the model file
//   s3://<bucket>/<prefix>?endpoint=http://127.0.0.1:9000&path_style=true
//                                        settings in the URL's query
//
//   Keys are taken as written after the bucket (no percent-decoding); empty
//   segments are dropped; "." or ".." segments and control characters are
//   refused.
//
//   save    Uploads the weight files (weights.<tag>.bin, or
//           group1-shardNofM.<tag>.bin with "shard_size"; <tag> is fresh for
//           every save) in parallel, then model.json last. Files above
//           "multipart_threshold" go up as parallel multipart uploads; a
//           failed one is aborted (AbortMultipartUpload). Since no two saves
//           share a weight file name, readers see one model or another,
//           never a mix, even with concurrent saves; a replaced model's files
//           are deleted once the new model.json is in place. A failed or
//           cancelled save deletes what it wrote. In a streaming copy
//           (to s3:// from any scheme) each weight file, or each part of a
//           multipart one, goes up as soon as its bytes arrived: the copy
//           holds about concurrency x max(part_size, file size up to
//           multipart_threshold) bytes, not the model.
//   load    GETs model.json, then the weight files in parallel (at most
//           "concurrency" at once), each handed out as it arrived, labelled
//           s3://bucket/key. A file that model.json says is larger than
//           "multipart_threshold" (a group of one file) comes down as
//           parallel ranged GETs of "part_size" into one mapping, each range
//           asking for the first one's ETag (If-Match). In a streaming copy each goes to the host
//           as soon as its GET completes, in whatever order they complete.
//   list    Every model.json under the prefix (ListObjectsV2, all pages),
//           listed by URL (with this URL's query, so it loads the same way).
//   remove  model.json, then exactly the weight files its manifest names.
//   stat    GETs model.json and HEADs each weight file: the version is a
//           digest of their ETags, sizes and times, so a weight object
//           replaced behind an unchanged model.json changes it. A shallow
//           stat (abi.h STOWAGE_CALL_STAT_SHALLOW) makes the GET alone; its
//           version holds model.json's ETag and a digest of its ETag, size
//           and time. Given such a version back as the known one (abi.h
//           known_version, a cache revalidating), the GET asks
//           If-None-Match with that ETag, and a 304 is "unchanged" (no
//           body). A 200 of the same object (a store that ignores the
//           header), or of the one a shallow version of the earlier form
//           (the digest alone) named, is "unchanged" too, with the new
//           version. Any other known version is treated as none.
//   copy    Within one store (same endpoint and access key) a weight file
//           that arrives unchanged is copied server-side (CopyObject) rather
//           than uploaded again.
//
//   Options (a JSON object; the URL's query may set those marked *, and
//   then wins over the options; any other key is refused):
//     endpoint*         "http://127.0.0.1:9000"; default AWS
//                       (https://s3.<region>.amazonaws.com), or
//                       AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL / the profile
//     region*           default AWS_REGION, AWS_DEFAULT_REGION, the profile's
//                       region, else us-east-1
//     path_style*       true: http://host/bucket/key; false: virtual hosts
//                       (http://bucket.host/key). Default: virtual hosts for
//                       AWS, path-style for any other endpoint.
//     profile*          the AWS profile (else AWS_PROFILE, else "default")
//     anonymous*        true: unsigned requests (public buckets)
//     access_key_id, secret_access_key, session_token
//                       credentials (never in the URL); else the environment
//                       and the shared files, see credentials_internal.hpp
//     shard_size*       bytes per weight file; 0 (default) one weights.<tag>.bin
//     multipart_threshold*  bytes; default 16 MiB: larger weight files go up
//                       as multipart uploads and come down as ranged GETs
//     part_size*        bytes per multipart part or ranged GET; default
//                       16 MiB, at least 5 MiB
//     concurrency*      requests in flight per operation; default 8
//     integrity         "sha256" (default): each weight file's SHA-256, computed
//                       as it is uploaded, goes into model.json's group
//                       ("sha256"); "none": no digests
//     shard_names       "tfjs" (default): the names above; "sha256": each
//                       weight file named after its digest (<16 hex>.bin,
//                       longer on a clash) with the digest kept as the
//                       object's x-amz-meta-sha256 metadata; a save skips a
//                       file already there with that metadata (a new version
//                       uploads only what changed). Implies integrity
//                       "sha256" (an explicit "none" is INVALID_ARGUMENT).
//                       Such a save gathers the model before uploading, also
//                       in a streaming copy: names need digests first.
//     unsigned_payload  true sends UNSIGNED-PAYLOAD instead of the body's
//                       SHA-256 (for HTTPS endpoints, saves hashing)
//     ec2_metadata      true: when the options, the environment and the
//                       shared files give no credentials, ask the EC2 instance
//                       metadata service (IMDSv2, see imds_internal.hpp); default false
//     connect_timeout_ms, read_timeout_ms   default 10000, 30000
//     ca_file, ca_path  extra trust anchors for HTTPS
//     insecure_skip_tls_verify  true turns certificate checks off (warns)
//
//   No checksum headers (x-amz-checksum-*) are sent: stores that reject
//   them keep working. Instance metadata is asked only with ec2_metadata.
//
// ERRORS
//
//   Each names the operation, s3://bucket/key, the HTTP status and the S3
//   error code: NoSuchBucket/NoSuchKey NOT_FOUND; AccessDenied,
//   SignatureDoesNotMatch, InvalidAccessKeyId, ExpiredToken
//   PERMISSION_DENIED; SlowDown, InternalError, 5xx and connection
//   failures UNAVAILABLE and retryable (the host's retry policy retries;
//   this plugin never does). A missing model.json: NOT_FOUND "Path
//   s3://b/k does not exist: loading failed"; a missing weight file:
//   DATA_LOSS. Secrets never appear in messages.
#include <map>
#include <memory>

#include "credentials_internal.hpp"
#include "imds_internal.hpp"
#include "s3_model_internal.hpp"
#include "s3_store_internal.hpp"

namespace stowage::s3 {
namespace {

using plugin::Call;
using plugin::Options;

// The URL's query keys, and whether each is a boolean or a number.
enum class Kind { kString, kBool, kNumber };
const std::map<std::string, Kind, std::less<>>& query_keys() {
  static const std::map<std::string, Kind, std::less<>> keys = {
      {"endpoint", Kind::kString},
      {"region", Kind::kString},
      {"path_style", Kind::kBool},
      {"profile", Kind::kString},
      {"anonymous", Kind::kBool},
      {"shard_size", Kind::kNumber},
      {"multipart_threshold", Kind::kNumber},
      {"part_size", Kind::kNumber},
      {"concurrency", Kind::kNumber}};
  return keys;
}

struct ParsedUrl {
  std::string bucket;
  std::string path;
  std::string query;  // as written, without '?'
  std::map<std::string, std::string> params;
};

ParsedUrl parse_url(std::string_view url) {
  ParsedUrl out;
  if (!url.starts_with("s3://")) {
    throw Error(ErrorCode::kInvalidArgument, "Not an s3:// URL: " + std::string(url));
  }
  std::string_view rest = url.substr(5);
  size_t q = rest.find('?');
  if (q != std::string_view::npos) {
    out.query = std::string(rest.substr(q + 1));
    rest = rest.substr(0, q);
  }
  size_t slash = rest.find('/');
  out.bucket = std::string(rest.substr(0, slash));
  out.path = slash == std::string_view::npos ? std::string() : std::string(rest.substr(slash + 1));
  if (out.bucket.empty()) {
    throw Error(ErrorCode::kInvalidArgument,
                "The URL " + std::string(url) + " names no bucket; use s3://<bucket>/<prefix>");
  }
  for (unsigned char c : out.path) {
    if (c < 0x20 || c == 0x7f) {
      throw Error(ErrorCode::kInvalidArgument,
                  "The key in " + std::string(url) +
                      " has a control character; S3-compatible stores handle those "
                      "inconsistently (AWS lists them as characters to avoid), so s3:// refuses "
                      "them");
    }
  }
  for (char c : out.bucket) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_';
    if (!ok) {
      throw Error(ErrorCode::kInvalidArgument, "The bucket name \"" + out.bucket + "\" in " +
                                                   std::string(url) +
                                                   " has a character buckets cannot have");
    }
  }
  size_t start = 0;
  while (start < out.query.size()) {
    size_t end = std::min(out.query.find('&', start), out.query.size());
    std::string_view pair = std::string_view(out.query).substr(start, end - start);
    start = end + 1;
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    std::string key = percent_decode(pair.substr(0, eq), false);
    std::string value =
        eq == std::string_view::npos ? "" : percent_decode(pair.substr(eq + 1), false);
    if (key == "access_key_id" || key == "secret_access_key" || key == "session_token") {
      throw Error(ErrorCode::kInvalidArgument,
                  "Credentials do not go in s3:// URLs (they end up in logs); pass \"" + key +
                      "\" in the options, the environment or a profile");
    }
    if (query_keys().count(key) == 0) {
      std::string known;
      for (const auto& [k, kind] : query_keys()) known += (known.empty() ? "" : ", ") + k;
      throw Error(ErrorCode::kInvalidArgument, "Unknown setting \"" + key + "\" in the query of " +
                                                   std::string(url) + "; the URL may set " + known);
    }
    if (out.params.count(key) != 0) {
      throw Error(ErrorCode::kInvalidArgument,
                  "The query of " + std::string(url) + " sets \"" + key + "\" twice");
    }
    out.params[key] = value;
  }
  return out;
}

bool query_bool(const std::string& key, const std::string& value, std::string_view url) {
  if (value == "true" || value == "1" || value.empty()) return true;
  if (value == "false" || value == "0") return false;
  throw Error(ErrorCode::kInvalidArgument, "The setting \"" + key + "\" in " + std::string(url) +
                                               " must be true or false, not \"" + value + "\"");
}

uint64_t query_number(const std::string& key, const std::string& value, std::string_view url) {
  char* end = nullptr;
  unsigned long long v = std::strtoull(value.c_str(), &end, 10);
  if (value.empty() || *end != '\0' || value[0] == '-') {
    throw Error(ErrorCode::kInvalidArgument, "The setting \"" + key + "\" in " + std::string(url) +
                                                 " must be a non-negative integer, not \"" + value +
                                                 "\"");
  }
  return v;
}

class S3Handler final : public plugin::Handler {
 public:
  S3Handler(std::string_view url, Options& options) : Handler(url) {
    ParsedUrl parsed = parse_url(url);
    location_ = plugin::locate_model(parsed.path, url);
    auto& q = parsed.params;
    auto str = [&](const char* key) {
      std::string v = options.get_string(key);
      auto it = q.find(key);
      return it != q.end() ? it->second : v;
    };
    auto flag = [&](const char* key) -> std::optional<bool> {
      std::optional<bool> v;
      const bool given = options.has(key);
      const bool value = options.get_bool(key, false);
      if (given) v = value;
      auto it = q.find(key);
      if (it != q.end()) v = query_bool(key, it->second, url);
      return v;
    };
    auto num = [&](const char* key, uint64_t fallback) {
      uint64_t v = options.get_uint64(key, fallback);
      auto it = q.find(key);
      return it != q.end() ? query_number(key, it->second, url) : v;
    };

    SettingOptions so;
    so.endpoint = str("endpoint");
    so.region = str("region");
    so.profile = str("profile");
    so.anonymous = flag("anonymous").value_or(false);
    so.access_key_id = options.get_string("access_key_id");
    so.secret_access_key = options.get_string("secret_access_key");
    so.session_token = options.get_string("session_token");
    std::optional<bool> path_style = flag("path_style");
    settings_.shard_size = num("shard_size", 0);
    const bool integrity_given = options.has("integrity");
    settings_.sha256 =
        plugin::read_integrity(options, plugin::Integrity::kSha256) == plugin::Integrity::kSha256;
    settings_.content_addressed = plugin::read_shard_names(options) == plugin::ShardNames::kSha256;
    if (settings_.content_addressed && integrity_given && !settings_.sha256) {
      throw Error(ErrorCode::kInvalidArgument,
                  "shard_names \"sha256\" names weight files after their digests, so it needs "
                  "integrity \"sha256\", not \"none\", for " +
                      this->url());
    }
    settings_.sha256 = settings_.sha256 || settings_.content_addressed;

    ClientConfig config;
    config.multipart_threshold = num("multipart_threshold", 16ull << 20);
    config.part_size = num("part_size", 16ull << 20);
    config.concurrency = static_cast<size_t>(num("concurrency", 8));
    config.unsigned_payload = options.get_bool("unsigned_payload", false);
    config.http.connect_timeout =
        std::chrono::milliseconds(options.get_uint64("connect_timeout_ms", 10000));
    config.http.read_timeout =
        std::chrono::milliseconds(options.get_uint64("read_timeout_ms", 30000));
    config.http.ca_file = options.get_string("ca_file");
    config.http.ca_path = options.get_string("ca_path");
    config.http.insecure_skip_tls_verify = options.get_bool("insecure_skip_tls_verify", false);
    config.http.user_agent = "stowage-s3/" STOWAGE_PLUGIN_VERSION;
    const bool ec2_metadata = options.get_bool("ec2_metadata", false);

    if (config.part_size < (5ull << 20) || config.part_size > (5ull << 30)) {
      throw Error(ErrorCode::kInvalidArgument,
                  "part_size for " + this->url() +
                      " must be between 5 MiB and 5 GiB (S3's part limits), not " +
                      std::to_string(config.part_size));
    }
    if (config.concurrency < 1 || config.concurrency > 256) {
      throw Error(ErrorCode::kInvalidArgument,
                  "concurrency for " + this->url() + " must be between 1 and 256");
    }

    Settings settings = resolve_settings(so, process_env());
    config.endpoint = settings.endpoint;
    config.region = settings.region;
    config.credentials = settings.credentials;
    config.anonymous = settings.anonymous;
    config.credentials_source = settings.credentials_source;
    config.searched = settings.searched;
    if (!settings.credentials && !settings.anonymous && ec2_metadata) {
      config.provider = std::make_shared<InstanceMetadataCredentials>("");
    }
    if (path_style) {
      config.addressing = *path_style ? Addressing::kPath : Addressing::kVirtual;
    } else if (settings.addressing_style == "path") {
      config.addressing = Addressing::kPath;
    } else if (settings.addressing_style == "virtual") {
      config.addressing = Addressing::kVirtual;
    }
    if (config.http.insecure_skip_tls_verify) {
      plugin::log(2, "s3: TLS certificate verification is OFF for " + this->url());
    }
    const bool from_imds = config.provider != nullptr;
    auto client = std::make_shared<S3Client>(std::move(config));
    plugin::log(0, "s3: " + S3Client::name(parsed.bucket, location_.folder) + " at " +
                       redact_url(client->endpoint()) + ", region " + client->config().region +
                       ", credentials from " +
                       (settings.credentials ? settings.credentials_source
                        : from_imds          ? std::string("EC2 instance metadata")
                                             : std::string("nowhere (unsigned)")));
    store_ = std::make_unique<S3Store>(std::move(client), parsed.bucket,
                                       parsed.query.empty() ? "" : "?" + parsed.query);
  }

  ModelArtifacts load(Call& call) override { return load_model(*store_, location_, call); }
  void load_into(plugin::LoadSink& out, Call& call) override {
    if (!out.streaming()) return Handler::load_into(out, call);
    load_model_into(*store_, location_, out, call);
    call.check();  // abi.h: a call past its deadline fails, also when the bytes came in late
  }
  ModelStat stat(Call& call) override { return stat_model(*store_, location_, url(), call); }

  std::optional<std::string> save(const ModelArtifacts& artifacts, Call& call) override {
    save_model(*store_, location_, artifacts, settings_, call);
    return std::nullopt;
  }
  // The pull form uploads each weight file as its bytes arrive; the array
  // form goes through save() above.
  std::optional<std::string> save_from(const ModelArtifacts& meta, plugin::WeightSource& weights,
                                       Call& call) override {
    // A content-addressed save needs every file's digest before its name,
    // so it gathers the model first (through save() above).
    if (!weights.streaming() || settings_.content_addressed) {
      return Handler::save_from(meta, weights, call);
    }
    save_model_streaming(*store_, location_, meta, weights, settings_, call);
    return std::nullopt;
  }

  std::vector<ListedModel> list(Call& call) override { return layout().list(call); }
  ModelArtifactsInfo remove(Call& call) override { return layout().remove(call); }

 private:
  plugin::BlobLayout layout() const {
    return plugin::BlobLayout(*store_, location_, settings_.shard_size, url());
  }

  plugin::BlobLocation location_;
  SaveSettings settings_;
  std::unique_ptr<S3Store> store_;
};

}  // namespace
}  // namespace stowage::s3

STOWAGE_PLUGIN(stowage::s3::S3Handler, "s3", STOWAGE_PLUGIN_VERSION,
               stowage::plugin::kBlobStoreCaps | STOWAGE_CAP_ATOMIC_SAVE | STOWAGE_CAP_STAT |
                   STOWAGE_CAP_STREAMING_SAVE | STOWAGE_CAP_STREAMING_LOAD,
               "s3");
