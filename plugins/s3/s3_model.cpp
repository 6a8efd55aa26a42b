#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <unordered_map>

#include "s3_model_internal.hpp"
#include "stowage/digest.hpp"
#include "stowage/model_json.hpp"
#include "stowage/parallel.hpp"
#include "stowage/sharding.hpp"
#include "stowage/text.hpp"
#include "stowage/weights.hpp"
#include "stream_upload_internal.hpp"

namespace stowage::s3 {
namespace {

constexpr int kLoadAttempts = 4;

// Which store an object lives in, as far as a server-side copy cares: the
// same endpoint, read with the same access key.
std::string store_id(const S3Client& client) {
  const ClientConfig& c = client.config();
  return client.endpoint() + "|" + (c.credentials ? c.credentials->access_key_id : "");
}

// The weight buffers this plugin loaded, by address, while they are alive:
// a save that gets one of them back whole (a copy within the store) can ask
// S3 to copy the object instead of uploading its bytes.
class LoadedObjects {
 public:
  struct Origin {
    std::weak_ptr<const void> owner;
    uint64_t size = 0;
    std::string store;
    std::string bucket;
    std::string key;
    std::string etag;
  };

  // Never destroyed: buffers may outlive static destruction.
  static LoadedObjects& instance() {
    static LoadedObjects* objects = new LoadedObjects;
    return *objects;
  }

  void add(const Buffer& b, Origin origin) {
    if (!b.owner() || b.empty() || origin.etag.empty()) return;
    origin.owner = b.owner();
    origin.size = b.size();
    std::lock_guard<std::mutex> lock(mu_);
    if (map_.size() >= prune_at_) {
      for (auto it = map_.begin(); it != map_.end();) {
        it = it->second.owner.expired() ? map_.erase(it) : std::next(it);
      }
      prune_at_ = std::max<size_t>(64, map_.size() * 2);
    }
    map_[b.data()] = std::move(origin);
  }

  // The origin of exactly these bytes, if they are a live loaded object.
  std::optional<Origin> find(const Buffer& b, const std::string& store) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = map_.find(b.data());
    if (it == map_.end() || it->second.owner.expired() || it->second.size != b.size() ||
        it->second.store != store) {
      return std::nullopt;
    }
    return it->second;
  }

 private:
  std::mutex mu_;
  std::unordered_map<const uint8_t*, Origin> map_;
  size_t prune_at_ = 64;
};

// Bucket and key of "s3://bucket/key[?...]"; nullopt for anything else.
std::optional<std::pair<std::string, std::string>> split_s3_url(std::string_view url) {
  if (!url.starts_with("s3://")) return std::nullopt;
  url.remove_prefix(5);
  url = url.substr(0, url.find('?'));
  size_t slash = url.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 >= url.size()) {
    return std::nullopt;
  }
  return std::make_pair(std::string(url.substr(0, slash)), std::string(url.substr(slash + 1)));
}

std::string random_tag() {
  std::random_device rd;
  std::mt19937_64 gen((static_cast<uint64_t>(rd()) << 32) ^ rd());
  static const char kDigits[] = "0123456789abcdef";
  std::string tag;
  uint64_t v = gen();
  for (int i = 0; i < 8; ++i) tag += kDigits[(v >> (4 * i)) & 15];
  return tag;
}

// "weights.bin" -> "weights.<tag>.bin".
std::string tagged(const std::string& path, const std::string& tag) {
  size_t dot = path.rfind('.');
  if (dot == std::string::npos) return path + "." + tag;
  return path.substr(0, dot) + "." + tag + path.substr(dot);
}

// The weight bytes cut into shards as slices of the caller's buffers.
std::vector<std::vector<Buffer>> cut(const WeightData& data, const std::vector<ShardPlan>& plan) {
  std::vector<std::vector<Buffer>> out;
  size_t index = 0;
  uint64_t offset = 0;
  for (const ShardPlan& p : plan) {
    std::vector<Buffer> pieces;
    uint64_t n = p.size;
    while (n > 0 && index < data.size()) {
      const Buffer& b = data[index];
      uint64_t k = std::min(b.size() - offset, n);
      if (k > 0) pieces.push_back(k == b.size() ? b : b.slice(offset, k));
      offset += k;
      n -= k;
      if (offset == b.size()) {
        ++index;
        offset = 0;
      }
    }
    out.push_back(std::move(pieces));
  }
  return out;
}

// Drops from stale the keys that the model.json now in place names (another
// writer may have published a model that reuses them since the old one was
// read). False when model.json cannot be read or parsed: then nothing may be
// deleted safely.
bool still_unreferenced(S3Store& store, const plugin::BlobLocation& location,
                        const std::string& url, const std::string& model_key,
                        std::vector<std::string>& stale) {
  try {
    std::optional<Object> now = store.client().get(store.bucket(), model_key, cleanup_control());
    if (!now) return true;  // removed meanwhile: its remove took its own files
    ModelArtifacts current = parse_model_json(now->body.view(), url);
    std::set<std::string> named;
    for (const WeightGroup& group : current.weights_manifest.value_or(WeightsManifest{})) {
      for (const std::string& path : group.paths) {
        named.insert(plugin::weight_key(location.folder, path, url));
      }
    }
    std::erase_if(stale, [&](const std::string& k) { return named.count(k) > 0; });
    return true;
  } catch (const std::exception& e) {
    plugin::log(2, "save " + url + ": the model is saved, but the weight files it replaced stay (" +
                       "reading model.json back failed: " + e.what() + ")");
    return false;
  }
}

bool same_version(const ObjectInfo& a, const ObjectInfo& b) {
  return a.etag == b.etag && a.last_modified == b.last_modified && a.size == b.size;
}

// Whether model.json (`key`) is still the version `seen` before its weight
// files were read: a save that replaced it meanwhile deletes the old weight
// files, so what was read may mix two versions. False asks the caller for
// another attempt; after the last one, throws UNAVAILABLE saying the model
// kept changing while it was `done` ("read", "loaded").
bool unchanged_since(S3Store& store, const std::string& key, const std::string& name,
                     const ObjectInfo& seen, int attempt, const char* done, plugin::Call& call) {
  std::optional<ObjectInfo> now =
      store.client().head(store.bucket(), key, control_of(call, Progress::kNone));
  if (now && same_version(*now, seen)) return true;
  if (attempt < kLoadAttempts) return false;
  throw Error(ErrorCode::kUnavailable,
              "The model at " + name + " kept changing while it was " + done + " (" +
                  std::to_string(kLoadAttempts) + " attempts)",
              /*retryable=*/true);
}

// The bucket and key of every weight file of the manifest, in its order.
std::vector<std::pair<std::string, std::string>> weight_objects(
    const S3Store& store, const plugin::BlobLocation& location, const WeightsManifest& manifest,
    const std::string& name, plugin::Call& call) {
  std::vector<std::pair<std::string, std::string>> objects;
  for (const WeightGroup& group : manifest) {
    for (const std::string& path : group.paths) {
      std::optional<std::string> url = call.convert_weight_url(path);
      if (!url) {
        objects.emplace_back(store.bucket(), plugin::weight_key(location.folder, path, name));
        continue;
      }
      auto target = split_s3_url(*url);
      if (!target) {
        throw Error(ErrorCode::kInvalidArgument, "The weight URL converter mapped \"" + path +
                                                     "\" of " + name + " to \"" + *url +
                                                     "\"; s3:// loads need s3://bucket/key URLs");
      }
      objects.push_back(std::move(*target));
    }
  }
  return objects;
}

// The size each weight file of the manifest must have, in weight_objects'
// order, where the manifest says: a group of one file holds exactly the
// group's bytes. nullopt for the files of a group split over several (where
// the split falls is the saver's choice) and for string tensors.
std::vector<std::optional<uint64_t>> expected_sizes(const WeightsManifest& manifest) {
  std::vector<std::optional<uint64_t>> out;
  for (const WeightGroup& group : manifest) {
    std::optional<uint64_t> size;
    if (group.paths.size() == 1) {
      size = 0;
      for (const WeightSpec& spec : group.weights) {
        std::optional<uint64_t> n = fixed_byte_size(spec);
        if (!n) {
          size.reset();
          break;
        }
        *size += *n;
      }
    }
    out.insert(out.end(), group.paths.size(), size);
  }
  return out;
}

// Whether a weight file comes down in parallel ranged GETs: when it is
// expected to be larger than multipart_threshold (one large weights.bin
// loads as fast as shards).
bool ranged(const S3Client& client, std::optional<uint64_t> expected) {
  return expected && *expected > client.config().multipart_threshold;
}

// What identifies one stored object in a version token. ETags change with
// the bytes (an MD5 or a multipart digest); the size and the time tell
// apart stores whose ETags do not.
std::string object_part(const ObjectInfo& info) {
  const auto time = info.last_modified ? info.last_modified->time_since_epoch().count() : 0;
  return info.etag + "|" + std::to_string(info.size) + "|" + std::to_string(time);
}

// The version token of a shallow stat, which stat_model reads back when a
// caller revalidates with it (abi.h known_version):
//   s3.<check>.<object>.<hex ETag>
// object: plugin::version_token of model.json's object_part, which is the
// whole token shallow stats gave before this form (16 hex digits, no dot);
// from a store that sends no ETag, of model.json's SHA-256 instead (the
// body is at hand, and its size and second-resolution time would miss a
// model.json replaced by one of the same size within a second). The ETag
// (empty from a store that sends none: then no condition is sent) goes
// back to the store as If-None-Match. check: a digest of the rest, the endpoint and
// s3://bucket/key, so a token of another object, or one cut or edited,
// reads as none and sends no condition.
struct ShallowToken {
  std::string object;
  std::string etag;

  static ShallowToken of(const Object& o) {
    if (o.info.etag.empty()) {
      return {plugin::version_token({"sha256", stowage::sha256_hex(o.body.bytes())}),
              std::string()};
    }
    return {plugin::version_token({object_part(o.info)}), o.info.etag};
  }

  static std::string check(const std::string& where, const std::string& object,
                           const std::string& etag) {
    return plugin::version_token({"s3 shallow stat", where, object, etag});
  }

  std::string str(const std::string& where) const {
    return "s3." + check(where, object, etag) + "." + object + "." +
           to_hex({reinterpret_cast<const uint8_t*>(etag.data()), etag.size()});
  }

  // nullopt unless `token` is what str(where) made.
  static std::optional<ShallowToken> parse(std::string_view token, const std::string& where) {
    const std::vector<std::string_view> fields = split(token, '.');
    if (fields.size() != 4 || fields[0] != "s3") return std::nullopt;
    std::optional<std::string> etag = from_hex(fields[3]);
    // The ETag goes into a request header: no line breaks, whatever the token says.
    if (!etag || etag->find_first_of("\r\n") != std::string::npos ||
        check(where, std::string(fields[2]), *etag) != fields[1]) {
      return std::nullopt;
    }
    return ShallowToken{std::string(fields[2]), std::move(*etag)};
  }
};

// abi.h STOWAGE_CALL_STAT_SHALLOW: model.json alone, its weight bytes as
// the specs need them; the version is a ShallowToken. Given one the caller
// knows, the GET asks If-None-Match with its ETag, and a 304 answers
// "unchanged" without a body. A 200 whose object is the known one (a store
// that ignores the header), or is the one a token of the earlier form
// named, is "unchanged" too, with this answer's token; any other known
// version is treated as none.
ModelStat shallow_stat(S3Store& store, const std::string& key, const std::string& url,
                       plugin::Call& call) {
  S3Client& client = store.client();
  const std::string name = store.name_of(key);
  const std::string where = redact_url(client.endpoint()) + " " + name;
  std::optional<ShallowToken> known;
  std::optional<std::string_view> earlier;  // a token of the form before ShallowToken
  if (std::optional<std::string_view> v = call.known_version()) {
    known = ShallowToken::parse(*v, where);
    if (!known && v->find('.') == std::string_view::npos) earlier = v;
  }
  const net::Control control = control_of(call, Progress::kNone);
  std::optional<Object> text;
  if (known && !known->etag.empty()) {
    ConditionalObject c = client.get_if_none_match(store.bucket(), key, known->etag, control);
    ModelStat out;
    if (c.not_modified) {
      out.unchanged = true;
      out.version = std::string(*call.known_version());
      return out;
    }
    text = std::move(c.object);
  } else {
    text = client.get(store.bucket(), key, control);
  }
  if (!text)
    throw Error(ErrorCode::kNotFound, "No model at " + url + ": " + name + " does not exist");
  const ShallowToken now = ShallowToken::of(*text);
  ModelStat out;
  out.version = now.str(where);
  if ((known && known->object == now.object) || (earlier && *earlier == now.object)) {
    out.unchanged = true;
    return out;
  }
  out.model = parse_model_json(text->body.view(), name);
  uint64_t weight_bytes = 0;
  size_t files = 0;
  if (out.model.weights_manifest) {
    for (const WeightGroup& group : *out.model.weights_manifest) {
      files += group.paths.size();
      for (const WeightSpec& spec : group.weights) {
        weight_bytes += fixed_byte_size(spec).value_or(0);
      }
    }
  }
  out.info = plugin::stat_info(out.model, weight_bytes, files);
  if (text->info.last_modified) out.info.date_saved = *text->info.last_modified;
  return out;
}

}  // namespace

ModelStat stat_model(S3Store& store, const plugin::BlobLocation& location, const std::string& url,
                     plugin::Call& call) {
  S3Client& client = store.client();
  const std::string key = location.folder + location.model_name;
  const std::string name = store.name_of(key);
  if (call.shallow_stat()) {
    call.check();
    return shallow_stat(store, key, url, call);
  }
  for (int attempt = 1;; ++attempt) {
    call.check();
    std::optional<Object> text = client.get(store.bucket(), key, control_of(call, Progress::kNone));
    if (!text)
      throw Error(ErrorCode::kNotFound, "No model at " + url + ": " + name + " does not exist");
    ModelStat out;
    out.model = parse_model_json(text->body.view(), name);
    std::vector<std::pair<std::string, std::string>> objects;
    if (out.model.weights_manifest) {
      objects = weight_objects(store, location, *out.model.weights_manifest, name, call);
    }
    std::vector<std::optional<ObjectInfo>> heads(objects.size());
    S3Client::Batch batch(client, control_of(call, Progress::kNone));
    for (size_t i = 0; i < objects.size(); ++i) {
      if (!batch.head(objects[i].first, objects[i].second,
                      [&heads, i](std::optional<ObjectInfo> h) { heads[i] = std::move(h); })) {
        break;  // wait() says why
      }
    }
    batch.wait();
    if (!unchanged_since(store, key, name, text->info, attempt, "read", call)) continue;
    std::vector<std::string> parts = {object_part(text->info)};
    uint64_t weight_bytes = 0;
    for (size_t i = 0; i < heads.size(); ++i) {
      if (!heads[i]) {
        throw Error(ErrorCode::kDataLoss, "Weight file " +
                                              S3Client::name(objects[i].first, objects[i].second) +
                                              " does not exist: stat of " + url + " failed");
      }
      parts.push_back(object_part(*heads[i]));
      weight_bytes += heads[i]->size;
    }
    out.version = plugin::version_token(parts);
    out.info = plugin::stat_info(out.model, weight_bytes, objects.size());
    if (text->info.last_modified) out.info.date_saved = *text->info.last_modified;
    return out;
  }
}

namespace {

// The weight bytes a manifest's specs need; nullopt when a string weight
// makes it unknowable before the bytes arrive.
std::optional<uint64_t> weight_bytes_needed(const WeightsManifest& manifest) {
  uint64_t bytes = 0;
  for (const WeightGroup& group : manifest) {
    for (const WeightSpec& spec : group.weights) {
      const std::optional<uint64_t> n = fixed_byte_size(spec);
      if (!n) return std::nullopt;
      bytes += *n;
    }
  }
  return bytes;
}

}  // namespace

ModelArtifacts load_model(S3Store& store, const plugin::BlobLocation& location,
                          plugin::Call& call) {
  S3Client& client = store.client();
  const std::string key = location.folder + location.model_name;
  const std::string name = store.name_of(key);
  for (int attempt = 1;; ++attempt) {
    call.check();
    call.progress(0, 0);
    std::optional<Object> text = client.get(store.bucket(), key, control_of(call, Progress::kNone));
    if (!text) {
      throw Error(ErrorCode::kNotFound, "Path " + name + " does not exist: loading failed");
    }
    ModelArtifacts artifacts = parse_model_json(text->body.view(), name);
    if (!artifacts.weights_manifest) return artifacts;
    std::vector<std::pair<std::string, std::string>> objects =
        weight_objects(store, location, *artifacts.weights_manifest, name, call);

    const std::vector<std::optional<uint64_t>> expected =
        expected_sizes(*artifacts.weights_manifest);
    std::vector<std::optional<Object>> shards(objects.size());
    net::Control control = control_of(call, Progress::kDownload);
    // The total is what model.json's specs need, fixed from the start; the
    // objects' Content-Lengths only when a string weight makes it unknowable.
    const std::optional<uint64_t> known = weight_bytes_needed(*artifacts.weights_manifest);
    if (known) call.set_total(*known);
    std::atomic<uint64_t> announced{0};  // Content-Lengths seen so far
    auto on_size = [&](uint64_t size) {
      if (!known) call.set_total(announced.fetch_add(size) + size);
    };
    {
      // Files expected to be large come down in parallel parts of their
      // own (get_ranged) while the batch's requests go on.
      S3Client::Batch batch(client, control);
      for (size_t i = 0; i < objects.size(); ++i) {
        if (ranged(client, expected[i])) {
          shards[i] = client.get_ranged(objects[i].first, objects[i].second, control, on_size);
        } else if (!batch.get(
                       objects[i].first, objects[i].second,
                       [&shards, i](std::optional<Object> o) { shards[i] = std::move(o); },
                       on_size)) {
          break;  // wait() says why
        }
      }
      batch.wait();
    }

    if (!unchanged_since(store, key, name, text->info, attempt, "loaded", call)) continue;
    WeightData data;
    const std::string id = store_id(client);
    for (size_t i = 0; i < shards.size(); ++i) {
      const std::string shard = S3Client::name(objects[i].first, objects[i].second);
      if (!shards[i]) {
        throw Error(ErrorCode::kDataLoss,
                    "Weight file " + shard + " does not exist: loading failed");
      }
      LoadedObjects::instance().add(
          shards[i]->body, {{}, 0, id, objects[i].first, objects[i].second, shards[i]->info.etag});
      data.push_back(std::move(shards[i]->body));
    }
    uint64_t total = total_size(data);
    call.progress(total, total);
    artifacts.weight_data = std::move(data);
    return artifacts;
  }
}

void load_model_into(S3Store& store, const plugin::BlobLocation& location, plugin::LoadSink& out,
                     plugin::Call& call) {
  S3Client& client = store.client();
  const std::string key = location.folder + location.model_name;
  const std::string name = store.name_of(key);
  const std::string id = store_id(client);
  for (int attempt = 1;; ++attempt) {
    call.check();
    call.progress(0, 0);
    std::optional<Object> text = client.get(store.bucket(), key, control_of(call, Progress::kNone));
    if (!text) {
      throw Error(ErrorCode::kNotFound, "Path " + name + " does not exist: loading failed");
    }
    ModelArtifacts artifacts = parse_model_json(text->body.view(), name);
    if (!artifacts.weights_manifest) {
      out.set_model(artifacts);
      return;
    }
    std::vector<std::pair<std::string, std::string>> objects =
        weight_objects(store, location, *artifacts.weights_manifest, name, call);

    // The model goes to the host with the first complete shard, not
    // before: until then a transient failure leaves the host free to retry.
    std::mutex model_mu;
    bool model_set = false;
    std::atomic<bool> delivered{false};
    std::optional<size_t> missing;   // a weight file that is gone
    std::atomic<bool> newer{false};  // one written after the model.json read
    const std::vector<std::optional<uint64_t>> expected =
        expected_sizes(*artifacts.weights_manifest);
    net::Control control = control_of(call, Progress::kDownload);
    // The total is what model.json's specs need, fixed from the start; the
    // objects' Content-Lengths only when a string weight makes it unknowable.
    const std::optional<uint64_t> known = weight_bytes_needed(*artifacts.weights_manifest);
    if (known) call.set_total(*known);
    std::atomic<uint64_t> announced{0};  // Content-Lengths seen so far
    std::atomic<uint64_t> bytes{0};
    auto on_size = [&](uint64_t size) {
      if (!known) call.set_total(announced.fetch_add(size) + size);
    };
    // Runs on this thread, file after file in the manifest's order (the
    // host's queue may wait for file i - 1 before it takes file i).
    auto deliver = [&](size_t i, std::optional<Object> shard) {
      if (!shard) {
        std::lock_guard<std::mutex> lock(model_mu);
        missing = i;
        throw Error(ErrorCode::kDataLoss, "missing");  // stops the others; handled below
      }
      // Files written before the model.json read are the ones it named
      // (a save writes them first); a later one may be a new version
      // (or just uploaded after model.json): model.json is checked
      // again at the end then.
      const auto& written = text->info.last_modified;
      if (!written || !shard->info.last_modified || *shard->info.last_modified > *written) {
        newer = true;
      }
      LoadedObjects::instance().add(
          shard->body, {{}, 0, id, objects[i].first, objects[i].second, shard->info.etag});
      {
        std::lock_guard<std::mutex> lock(model_mu);
        if (!model_set) out.set_model(artifacts);
        model_set = true;
      }
      delivered = true;
      bytes += shard->body.size();
      out.put(i, shard->body);  // may wait for room in the host's queue
    };
    try {
      using Order = S3Client::Batch::Order;
      std::optional<S3Client::Batch> batch;
      batch.emplace(client, control, Order::kSubmitted);
      for (size_t i = 0; i < objects.size(); ++i) {
        if (ranged(client, expected[i])) {
          // A large file comes down in parallel parts of its own, handed
          // over after the files before it.
          batch->wait();
          deliver(i, client.get_ranged(objects[i].first, objects[i].second, control, on_size));
          batch.emplace(client, control, Order::kSubmitted);
        } else if (!batch->get(
                       objects[i].first, objects[i].second,
                       [&deliver, i](std::optional<Object> o) { deliver(i, std::move(o)); },
                       on_size)) {
          break;  // wait() says why
        }
      }
      batch->wait();
    } catch (const Error&) {
      if (!missing) throw;
    }
    if ((missing || newer) &&
        !unchanged_since(store, key, name, text->info, attempt, "loaded", call)) {
      // A save replaced the model meanwhile: start again while nothing
      // reached the host; what did cannot be taken back.
      if (!delivered) continue;
      throw Error(ErrorCode::kUnavailable,
                  "The model at " + name + " changed while it was loaded; load it again",
                  /*retryable=*/true);
    }
    if (missing) {
      const std::string shard = S3Client::name(objects[*missing].first, objects[*missing].second);
      throw Error(ErrorCode::kDataLoss, "Weight file " + shard + " does not exist: loading failed");
    }
    if (!model_set) out.set_model(artifacts);  // a manifest that names no file
    call.progress(bytes, bytes);
    return;
  }
}

namespace {

// How the weight files of a save go up (all at once, or as they stream in),
// given the transaction and the planned files, named as they will be (a
// content-addressed upload names them itself). Returns each file's SHA-256
// (empty strings without digests).
using UploadWeights =
    std::function<std::vector<std::string>(S3Store::S3Transaction&, std::vector<ShardPlan>&)>;

// A save of `meta` (weight_data unused) whose weight bytes are `total` long:
// plans the files, has `upload` write them, then publishes model.json and
// deletes the replaced model's files.
size_t save_with(S3Store& store, const plugin::BlobLocation& location, const ModelArtifacts& meta,
                 uint64_t total, const SaveSettings& settings, plugin::Call& call,
                 const UploadWeights& upload) {
  S3Client& client = store.client();
  const std::string url = store.name_of(location.folder + location.model_name);
  const std::string model_key = location.folder + location.model_name;
  std::vector<ShardPlan> plan = plan_shards(total, settings.shard_size);

  // The model being replaced, if any: its weight files stay untouched until
  // the new model.json is in place. Every save (a first one too) writes its
  // weight files under names of its own: two saves into the same place, or a
  // save racing a remove, must never write or delete each other's files, and
  // "the location is empty" is stale as soon as it has been read.
  std::optional<Object> old =
      client.get(store.bucket(), model_key, control_of(call, Progress::kNone));
  std::set<std::string> old_keys;
  if (old) {
    try {
      ModelArtifacts previous = parse_model_json(old->body.view(), url);
      for (const WeightGroup& group : previous.weights_manifest.value_or(WeightsManifest{})) {
        for (const std::string& path : group.paths) {
          old_keys.insert(plugin::weight_key(location.folder, path, url));
        }
      }
    } catch (const Error& e) {
      if (e.code() != ErrorCode::kInvalidArgument) throw;
      plugin::log(2, "save " + url + ": the model it replaces is unreadable (" + e.what() +
                         "); its weight files stay");
    }
  }
  const std::vector<ShardPlan> plain = plan;
  for (; !settings.content_addressed;) {
    const std::string tag = random_tag();
    bool clash = false;
    for (size_t i = 0; i < plan.size(); ++i) {
      plan[i].path = tagged(plain[i].path, tag);
      clash = clash || old_keys.count(location.folder + plan[i].path) > 0;
    }
    if (!clash) break;  // overwriting a live weight file would mix models
  }

  // model.json's size before its digests and content-addressed names are
  // known: both have fixed lengths (a longer name on a clash only adds a
  // little, so progress is then a few bytes off, never backwards).
  auto model_json = [&](const std::vector<std::string>& digests) {
    WeightGroup group;
    for (const ShardPlan& p : plan) group.paths.push_back(p.path);
    if (meta.weight_specs) group.weights = *meta.weight_specs;
    if (settings.sha256 || settings.content_addressed) group.sha256 = digests;
    return write_model_json(meta, {group}, ModelJsonLayout::kTfjsNode);
  };
  if (settings.content_addressed) {
    for (ShardPlan& p : plan) p.path = std::string(16, '0') + ".bin";
  }
  uint64_t json_size =
      model_json(std::vector<std::string>(plan.size(), std::string(64, '0'))).size();
  call.progress(0, total + json_size);

  S3Store::S3Transaction txn(store);
  struct Guard {
    S3Store::S3Transaction* txn;
    ~Guard() {
      if (txn != nullptr) txn->abort();
    }
  } guard{&txn};

  const std::vector<std::string> digests = upload(txn, plan);
  call.check();  // the last moment a cancellation leaves nothing behind
  const std::string json = model_json(digests);
  json_size = json.size();

  try {
    // Not through txn: a model.json that failed to go up must not be deleted
    // (it is the old model's).
    client.put(store.bucket(), model_key, {Buffer::from_string(std::string(json))},
               control_of(call, Progress::kUpload));
  } catch (const Error& e) {
    // The PUT may have landed even though its answer was lost: then the
    // model is published and its weight files must stay.
    std::optional<Object> now;
    try {
      now = client.get(store.bucket(), model_key, cleanup_control());
    } catch (const Error& check) {
      guard.txn = nullptr;
      throw Error(e.code(),
                  std::string(e.what()) + "; whether " + url +
                      " was replaced is unknown (reading it back failed: " + check.what() +
                      "), so the weight files written are left in place",
                  e.retryable());
    }
    if (!now || now->body.view() != json) throw;
  }
  std::set<std::string> keep;
  for (const ShardPlan& p : plan) keep.insert(location.folder + p.path);
  keep.insert(model_key);
  std::vector<std::string> stale;
  for (const std::string& k : old_keys) {
    if (keep.count(k) == 0) stale.push_back(k);
  }
  if (!stale.empty() && !still_unreferenced(store, location, url, model_key, stale)) stale.clear();
  txn.remove(stale, call);
  txn.commit(call);
  guard.txn = nullptr;
  call.progress(total + json_size, total + json_size);
  return txn.copies();
}

// Sets item to a server-side copy when its bytes are exactly one object this
// plugin loaded from the same store (a copy within the store).
void copy_if_loaded(S3Store& store, S3Store::S3Transaction::Item& item) {
  if (item.pieces.size() != 1 || item.pieces[0].size() > (5ull << 30)) return;
  if (auto origin = LoadedObjects::instance().find(item.pieces[0], store_id(store.client()))) {
    if (origin->bucket != store.bucket() || origin->key != item.key) {
      item.copy_from = std::make_pair(origin->bucket, origin->key);
      item.copy_etag = origin->etag;
    }
  }
}

// The upload of a content-addressed save: hashes every file (single
// PutObjects send that digest as their payload hash, so their bytes are
// hashed once), names each after its digest, and uploads only the files
// whose name does not already hold an object recorded (x-amz-meta-sha256)
// with that digest. An object under the name without that record, or with
// another digest, is another file: the name counts as taken and
// content_addressed_names picks a longer one. Sets plan's paths; returns the
// digests.
std::vector<std::string> put_content_addressed(S3Store& store, const plugin::BlobLocation& location,
                                               S3Store::S3Transaction& txn,
                                               std::vector<ShardPlan>& plan,
                                               std::vector<std::vector<Buffer>> pieces,
                                               plugin::Call& call) {
  S3Client& client = store.client();
  std::vector<std::string> digests(plan.size());
  net::Control quiet = control_of(call, Progress::kNone);
  // CPU work: as wide as the cores, not as the store's request limit.
  uint64_t bytes = 0;
  for (const ShardPlan& p : plan) bytes += p.size;
  stowage::run_parallel(
      plan.size(), cpu_width(plan.size(), bytes),
      [&](size_t i, const std::atomic<bool>&) { digests[i] = sha256_of(pieces[i]); });
  // What the store holds under each name asked about: its recorded digest
  // ("" for an object without one), nullopt for nothing. The short names
  // are asked all at once; content_addressed_names asks about longer ones
  // only on a clash.
  std::mutex mu;
  std::map<std::string, std::optional<std::string>> held;
  auto record = [&](const std::string& name, const std::optional<ObjectInfo>& head) {
    std::lock_guard<std::mutex> lock(mu);
    return held[name] = head ? std::optional<std::string>(head->sha256) : std::nullopt;
  };
  auto ask = [&](const std::string& name, const net::Control& control) {
    return record(name, client.head(store.bucket(), location.folder + name, control));
  };
  std::vector<std::string> short_names;
  for (const std::string& d : digests) short_names.push_back(d.substr(0, 16) + ".bin");
  {
    S3Client::Batch batch(client, quiet);
    for (const std::string& name : short_names) {
      if (!batch.head(store.bucket(), location.folder + name,
                      [&record, name](std::optional<ObjectInfo> head) { record(name, head); })) {
        break;  // wait() says why
      }
    }
    batch.wait();
  }
  auto lookup = [&](const std::string& name) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (auto it = held.find(name); it != held.end()) return it->second;
    }
    return ask(name, quiet);
  };
  std::vector<std::string> names =
      content_addressed_names(digests, [&](const std::string& name, const std::string& digest) {
        std::optional<std::string> there = lookup(name);
        return there && *there != digest;
      });
  std::vector<S3Store::S3Transaction::Item> items;
  std::set<std::string> queued;
  uint64_t skipped = 0;
  for (size_t i = 0; i < plan.size(); ++i) {
    plan[i].path = names[i];
    // Under a full-digest name (the last resort) an object with no or
    // another recorded digest is damaged: it is uploaded over.
    const bool there = lookup(names[i]) == std::optional<std::string>(digests[i]);
    if (there || !queued.insert(names[i]).second) {
      skipped += plan[i].size;
      continue;
    }
    S3Store::S3Transaction::Item item;
    item.key = location.folder + names[i];
    item.pieces = std::move(pieces[i]);
    item.sha256 = digests[i];
    item.store_sha256 = true;
    copy_if_loaded(store, item);
    items.push_back(std::move(item));
  }
  call.advance(skipped);
  txn.put_all(items, call);
  return digests;
}

}  // namespace

size_t save_model(S3Store& store, const plugin::BlobLocation& location,
                  const ModelArtifacts& artifacts, const SaveSettings& settings,
                  plugin::Call& call) {
  const std::string url = store.name_of(location.folder + location.model_name);
  call.check();
  if (artifacts.weight_specs && artifacts.weight_data) {
    try {
      validate_weight_bytes(artifacts, url);
    } catch (const Error& e) {
      if (e.code() != ErrorCode::kDataLoss) throw;
      throw Error(ErrorCode::kInvalidArgument, "Refusing to save " + url +
                                                   ": its weight data does not match its weight "
                                                   "specs: " +
                                                   e.what());
    }
  }
  static const WeightData kNone;
  const WeightData& data = artifacts.weight_data ? *artifacts.weight_data : kNone;
  return save_with(store, location, artifacts, total_size(data), settings, call,
                   [&](S3Store::S3Transaction& txn, std::vector<ShardPlan>& plan) {
                     std::vector<S3Store::S3Transaction::Item> items;
                     std::vector<std::vector<Buffer>> pieces = cut(data, plan);
                     if (settings.content_addressed)
                       return put_content_addressed(store, location, txn, plan, std::move(pieces),
                                                    call);
                     for (size_t i = 0; i < plan.size(); ++i) {
                       S3Store::S3Transaction::Item item;
                       item.key = location.folder + plan[i].path;
                       item.pieces = std::move(pieces[i]);
                       item.want_sha256 = settings.sha256;
                       copy_if_loaded(store, item);
                       items.push_back(std::move(item));
                     }
                     return txn.put_all(items, call);
                   });
}

size_t save_model_streaming(S3Store& store, const plugin::BlobLocation& location,
                            const ModelArtifacts& meta, plugin::WeightSource& weights,
                            const SaveSettings& settings, plugin::Call& call) {
  const std::string url = store.name_of(location.folder + location.model_name);
  if (settings.content_addressed) {
    throw Error(ErrorCode::kInternal, "A content-addressed save of " + url +
                                          " cannot stream: its names need the digests first");
  }
  call.check();
  return save_with(store, location, meta, weights.total_bytes(), settings, call,
                   [&](S3Store::S3Transaction& txn, std::vector<ShardPlan>& plan) {
                     std::vector<WeightFile> files;
                     for (const ShardPlan& p : plan) {
                       files.push_back({location.folder + p.path, p.size});
                     }
                     return upload_streamed(
                         store, txn, files, weights,
                         [&](S3Store::S3Transaction::Item& item) { copy_if_loaded(store, item); },
                         url, settings.sha256, call);
                   });
}

}  // namespace stowage::s3
