// s3:// through the real loader, against a real S3 server: moto_server,
// started by this test (testing/s3_test_server.py) in three forms:
//   open     no authentication, pages of 3 keys: layout, listing, pagination,
//            multipart, replacement, copies;
//   signed   signature checking on, with an IAM user's key: right and wrong
//            keys, the credentials chain. moto 5.2.1's checker rejects
//            correctly signed requests whose query values hold an encoded
//            '/' (ListObjectsV2 with prefix=models%2F; the aws CLI fails the
//            same way), so this server only sees saves, loads and removes;
//   faulty   a proxy in front of moto that injects S3 errors and dropped
//            connections: SlowDown, failing parts, expired credentials.
// Every error message is checked to hold no secret key.
#include <doctest/doctest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <regex>
#include <set>
#include <thread>

#include "http_client.hpp"
#include "plugin_test_util.hpp"
#include "s3_client_internal.hpp"
#include "stowage/digest.hpp"
#include "stowage/error.hpp"
#include "stowage/management.hpp"
#include "stowage/model_json.hpp"
#include "stowage/registry.hpp"
#include "testing/s3_test_server.hpp"

namespace fs = std::filesystem;
using namespace stowage;
using stowage::s3::testing::S3TestServer;
using testing::error_of;
using testing::float_model;
using testing::ramp;
using testing::weight_bytes;

using testing::registry;
namespace {

const char* kBucket = "stowage-models";

// moto without authentication still refuses unsigned requests to a
// private bucket, so the open and faulty servers get their (unchecked) keys
// through the environment, as a user's shell would give them.
void use_env_keys(const S3TestServer& s) {
  ::setenv("AWS_ACCESS_KEY_ID", s.access_key_id.c_str(), 1);
  ::setenv("AWS_SECRET_ACCESS_KEY", s.secret_access_key.c_str(), 1);
}

// The first use starts the server (and sets the keys once: a test may
// change the environment afterwards).
S3TestServer& open_server() {
  static std::unique_ptr<S3TestServer> server = [] {
    auto s = std::make_unique<S3TestServer>(
        std::vector<std::string>{"--max-keys", "3", "--bucket", kBucket});
    use_env_keys(*s);
    return s;
  }();
  return *server;
}
S3TestServer& signed_server() {
  static S3TestServer server({"--auth", "--imds", "--bucket", kBucket});
  return server;
}
S3TestServer& faulty_server() {
  static std::unique_ptr<S3TestServer> server = [] {
    auto s =
        std::make_unique<S3TestServer>(std::vector<std::string>{"--proxy", "--bucket", kBucket});
    use_env_keys(*s);
    return s;
  }();
  return *server;
}

// Every secret a test server handed out; no error message may contain one.
void check_no_secret(const std::string& text) {
  for (S3TestServer* s : {&open_server(), &signed_server(), &faulty_server()}) {
    CHECK_MESSAGE(text.find(s->secret_access_key) == std::string::npos, text);
  }
  CHECK(text.find("wrong-secret-key") == std::string::npos);
}

Error error_from(const std::function<void()>& f) {
  Error e = error_of(f);
  check_no_secret(e.what());
  return e;
}

std::string url(const S3TestServer& s, const std::string& path) {
  return std::string("s3://") + kBucket + "/" + path + "?endpoint=" + s.endpoint;
}

std::string keys_json(const S3TestServer& s) {
  return R"({"access_key_id":")" + s.access_key_id + R"(","secret_access_key":")" +
         s.secret_access_key + R"("})";
}

// Direct S3 access for checks, past the plugin.
s3::S3Client& direct(const S3TestServer& s) {
  static std::map<std::string, std::unique_ptr<s3::S3Client>> clients;
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  auto& c = clients[s.moto];
  if (!c) {
    s3::ClientConfig config;
    config.endpoint = s.moto;
    config.addressing = s3::Addressing::kPath;
    config.credentials = s3::Credentials{s.access_key_id, s.secret_access_key, ""};
    c = std::make_unique<s3::S3Client>(config);
  }
  return *c;
}

std::set<std::string> keys_under(const S3TestServer& s, const std::string& prefix) {
  std::set<std::string> out;
  for (const auto& o : direct(s).list(kBucket, prefix, {})) out.insert(o.key);
  return out;
}

// The keys under prefix with every save's weight-file tag replaced by
// "<tag>" (weights.0f3a9c21.bin -> weights.<tag>.bin), and the tags seen.
std::set<std::string> untagged_keys(const S3TestServer& s, const std::string& prefix,
                                    std::set<std::string>* tags = nullptr) {
  static const std::regex kTagged(R"(^(.*)\.([0-9a-f]{8})\.bin$)");
  std::set<std::string> out;
  for (const std::string& k : keys_under(s, prefix)) {
    std::smatch m;
    if (!std::regex_match(k, m, kTagged)) {
      out.insert(k);
      continue;
    }
    out.insert(m[1].str() + ".<tag>.bin");
    if (tags != nullptr) tags->insert(m[2].str());
  }
  return out;
}

// The one key under prefix that starts with prefix + stem ("weights.").
std::string key_of(const S3TestServer& s, const std::string& prefix, const std::string& stem) {
  std::string found;
  for (const std::string& k : keys_under(s, prefix)) {
    if (k.starts_with(prefix + stem)) {
      CHECK(found.empty());
      found = k;
    }
  }
  REQUIRE(!found.empty());
  return found;
}

ModelArtifacts model(size_t n, float start, std::vector<uint64_t> cuts = {}) {
  return float_model(ramp(n, start), std::move(cuts));
}

ModelArtifacts load(const std::string& u, const std::string& options = "{}",
                    const CallContext& ctx = {}) {
  return load_model(u, options, ctx, registry());
}
void save(const std::string& u, const ModelArtifacts& a, const std::string& options = "{}",
          const CallContext& ctx = {}) {
  save_model(u, a, options, ctx, registry());
}

// The test proxy's control endpoints.
net::Client& control_client() {
  static net::Client client;
  return client;
}
void set_faults(const std::string& rules) {
  net::Request r{"POST", faulty_server().endpoint + "/__faults"};
  r.body = {Buffer::from_string(std::string(rules))};
  REQUIRE(control_client().send(r).ok());
}
std::string proxy_log() {
  net::Response r = control_client().send({"GET", faulty_server().endpoint + "/__log"});
  REQUIRE(r.ok());
  return std::string(r.body.view());
}
void clear_log() {
  REQUIRE(control_client().send({"POST", faulty_server().endpoint + "/__log/clear"}).ok());
}
size_t count(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

// Sets (or, for nullopt, unsets) environment variables for one scope.
struct ScopedEnv {
  explicit ScopedEnv(std::vector<std::pair<std::string, std::optional<std::string>>> vars) {
    for (auto& [k, v] : vars) {
      const char* old = std::getenv(k.c_str());
      saved.emplace_back(k, old ? std::optional<std::string>(old) : std::nullopt);
      if (v) {
        ::setenv(k.c_str(), v->c_str(), 1);
      } else {
        ::unsetenv(k.c_str());
      }
    }
  }
  ~ScopedEnv() {
    for (auto& [k, v] : saved) {
      if (v) {
        ::setenv(k.c_str(), v->c_str(), 1);
      } else {
        ::unsetenv(k.c_str());
      }
    }
  }
  std::vector<std::pair<std::string, std::optional<std::string>>> saved;
};

}  // namespace

TEST_CASE("a load's progress total is what model.json's specs need, fixed from the start") {
  S3TestServer& s = open_server();
  ModelArtifacts a = model(1000, 1.0f);  // 4000 bytes in 8 files of at most 512
  save(url(s, "progress/m"), a, R"({"shard_size": 512})");
  std::mutex mu;
  std::set<uint64_t> totals;
  uint64_t reports = 0;
  CallContext ctx;
  ctx.on_progress = [&](uint64_t, uint64_t t) {
    std::lock_guard<std::mutex> lock(mu);
    ++reports;
    if (t > 0) totals.insert(t);  // 0: before model.json is read
  };
  CHECK(weight_bytes(load(url(s, "progress/m/model.json"), "{}", ctx)) == weight_bytes(a));
  // Not one total per Content-Length seen so far.
  CHECK(totals == std::set<uint64_t>{4000});
  CHECK(reports > 8);
}

TEST_CASE("save, load, list and remove in TF.js's layout") {
  S3TestServer& s = open_server();
  ModelArtifacts a = model(300, 1.0f, {100, 700});
  std::atomic<uint64_t> done{0}, total{0};
  CallContext ctx;
  ctx.on_progress = [&](uint64_t d, uint64_t t) {
    done = d;
    total = t;
  };
  save(url(s, "layout/mnist"), a, "{}", ctx);
  CHECK(done.load() == total.load());
  CHECK(total.load() > 1200);
  // Even a first save names its weight file uniquely: a concurrent save
  // into the same empty place must not overwrite it.
  CHECK(untagged_keys(s, "layout/") ==
        std::set<std::string>{"layout/mnist/model.json", "layout/mnist/weights.<tag>.bin"});
  const std::string weights_key = key_of(s, "layout/mnist/", "weights.");
  const std::string weights_name = weights_key.substr(std::string("layout/mnist/").size());

  done = total = 0;
  ModelArtifacts back = load(url(s, "layout/mnist/model.json"), "{}", ctx);
  CHECK(weight_bytes(back) == weight_bytes(a));
  CHECK(back.model_topology == a.model_topology);
  CHECK(back.format == a.format);
  CHECK(back.weight_data->at(0).label() == std::string("s3://") + kBucket + "/" + weights_key);
  CHECK(done.load() == 1200);
  CHECK(total.load() == 1200);
  // The folder URL loads the same model.
  CHECK(weight_bytes(load(url(s, "layout/mnist"))) == weight_bytes(a));

  // model.json is tfjs-node's, byte for byte, but for the weight file's name
  // and the file's SHA-256 (integrity "sha256" is the default).
  auto json = direct(s).get(kBucket, "layout/mnist/model.json", {});
  REQUIRE(json);
  ModelArtifacts plain = a;
  plain.weight_data.reset();
  WeightGroup g;
  g.paths = {weights_name};
  g.weights = *a.weight_specs;
  const std::string bytes = weight_bytes(a);
  g.sha256 = {sha256_hex({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()})};
  CHECK(std::string(json->body.view()) == write_model_json(plain, {g}, ModelJsonLayout::kTfjsNode));

  save(url(s, "layout/other"), model(10, 2.0f));
  auto listed = list_models(url(s, "layout"), registry());
  REQUIRE(listed.size() == 2);
  CHECK(listed[0].url == url(s, "layout/mnist/model.json"));
  CHECK(listed[0].info.weight_data_bytes == 1200);
  CHECK(listed[1].url == url(s, "layout/other/model.json"));
  // A listed URL loads.
  CHECK(weight_bytes(load(listed[1].url)) == weight_bytes(model(10, 2.0f)));

  ModelArtifactsInfo removed = remove_model(url(s, "layout/mnist"), registry());
  CHECK(removed.weight_data_bytes == 1200);
  CHECK(keys_under(s, "layout/mnist/").empty());
  Error e = error_from([&] { load(url(s, "layout/mnist")); });
  CHECK(e.code() == ErrorCode::kNotFound);
  CHECK(testing::contains(e, "s3://stowage-models/layout/mnist/model.json does not exist"));
  CHECK(error_from([&] { remove_model(url(s, "layout/mnist"), registry()); }).code() ==
        ErrorCode::kNotFound);
}

TEST_CASE("sharded saves, and listings of many pages") {
  S3TestServer& s = open_server();
  ModelArtifacts a = model(1000, -3.0f);  // 4000 bytes
  save(url(s, "pages/sharded"), a, R"({"shard_size": 1024})");
  std::set<std::string> tags;
  CHECK(untagged_keys(s, "pages/sharded/", &tags) ==
        std::set<std::string>{
            "pages/sharded/model.json", "pages/sharded/group1-shard1of4.<tag>.bin",
            "pages/sharded/group1-shard2of4.<tag>.bin", "pages/sharded/group1-shard3of4.<tag>.bin",
            "pages/sharded/group1-shard4of4.<tag>.bin"});
  CHECK(tags.size() == 1);  // one tag per save
  CHECK(weight_bytes(load(url(s, "pages/sharded"))) == weight_bytes(a));
  // The URL's query sets the shard size too.
  save(url(s, "pages/q") + "&shard_size=2048", a);
  CHECK(keys_under(s, "pages/q/").size() == 3);

  // moto answers in pages of 3 keys: 7 models of 2 keys each are 5 pages.
  for (int i = 0; i < 5; ++i) save(url(s, "pages/m" + std::to_string(i)), model(4, float(i)));
  auto listed = list_models(url(s, "pages"), registry());
  CHECK(listed.size() == 7);
  std::set<std::string> urls;
  for (const auto& m : listed) urls.insert(m.url);
  CHECK(urls.count(url(s, "pages/m4/model.json")) == 1);
  CHECK(urls.count(url(s, "pages/sharded/model.json")) == 1);
  CHECK(list_models(url(s, "nothing-here"), registry()).empty());
}

TEST_CASE("large weight files go up as parallel multipart uploads") {
  S3TestServer& s = open_server();
  ModelArtifacts a = model(3 * 1024 * 1024 + 5, 0.25f);  // 12 MiB + 20 bytes
  save(url(s, "multi/m"), a,
       R"({"multipart_threshold": 5242880, "part_size": 5242880, "concurrency": 3})");
  auto head = direct(s).head(kBucket, key_of(s, "multi/m/", "weights."), {});
  REQUIRE(head);
  CHECK(head->size == 3 * 1024 * 1024 * 4 + 20);
  CHECK(head->etag.find("-3\"") != std::string::npos);  // a 3-part upload's ETag
  CHECK(weight_bytes(load(url(s, "multi/m"), R"({"concurrency": 2})")) == weight_bytes(a));
  CHECK(direct(s).list_multipart_uploads(kBucket, "multi/", {}).empty());
}

// The proxy log's entries for GETs with a Range header, as "range|if_match".
std::vector<std::string> ranged_gets(const std::string& log) {
  static const std::regex kEntry(
      R"re("method": "GET", "target": "[^"]*", "copy_source": "[^"]*", "range": "(bytes=[^"]*)", "if_match": "((?:[^"\\]|\\.)*)")re");
  std::vector<std::string> out;
  for (auto it = std::sregex_iterator(log.begin(), log.end(), kEntry); it != std::sregex_iterator();
       ++it) {
    out.push_back((*it)[1].str() + "|" + (*it)[2].str());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Waits (up to 30 s) until the proxy has seen a request whose log entry
// contains needle.
void wait_for_request(const std::string& needle) {
  for (int i = 0; i < 600 && proxy_log().find(needle) == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  REQUIRE(proxy_log().find(needle) != std::string::npos);
}

TEST_CASE("a large weight file comes down as parallel ranged GETs of one version") {
  S3TestServer& s = faulty_server();
  set_faults("[]");
  ModelArtifacts a = model(3 * 1024 * 1024 + 5, 0.75f);  // one weights.bin of 12 MiB + 20 bytes
  const std::string parts = R"({"multipart_threshold": 5242880, "part_size": 5242880})";
  save(url(s, "ranged/m"), a, parts);
  const std::string key = key_of(s, "ranged/m/", "weights.");
  const std::string etag = direct(s).head(kBucket, key, {})->etag;
  const std::string quoted = std::regex_replace(etag, std::regex("\""), "\\\"");

  clear_log();
  CHECK(weight_bytes(load(url(s, "ranged/m"), parts)) == weight_bytes(a));
  // The first range gives the size and the ETag; the others ask for it.
  CHECK(ranged_gets(proxy_log()) == std::vector<std::string>{"bytes=0-5242879|",
                                                             "bytes=10485760-12582931|" + quoted,
                                                             "bytes=5242880-10485759|" + quoted});

  // Above the default threshold (16 MiB) only: the same file in one GET.
  clear_log();
  CHECK(weight_bytes(load(url(s, "ranged/m"))) == weight_bytes(a));
  CHECK(ranged_gets(proxy_log()).empty());

  // The client alone: the object in one mapping, labelled with its URL.
  s3::ClientConfig config;
  config.endpoint = s.endpoint;
  config.addressing = s3::Addressing::kPath;
  config.credentials = s3::Credentials{s.access_key_id, s.secret_access_key, ""};
  config.part_size = 5242880;
  config.concurrency = 2;
  s3::S3Client client(config);
  std::optional<s3::Object> whole = client.get_ranged(kBucket, key, {});
  REQUIRE(whole);
  CHECK(whole->info.size == 12582932);
  CHECK(whole->info.etag == etag);
  CHECK(whole->body.label() == "s3://stowage-models/" + key);
  CHECK(std::string(whole->body.view()) ==
        std::string(direct(s).get(kBucket, key, {})->body.view()));
  CHECK(!client.get_ranged(kBucket, "ranged/m/no-such-file.bin", {}));

  // A store that ignores Range answers the first request with the whole
  // object, which is used as it is.
  clear_log();
  set_faults(R"([{"method":"GET","range":"bytes=0-","strip_range":true,"times":1}])");
  std::optional<s3::Object> unranged = client.get_ranged(kBucket, key, {});
  REQUIRE(unranged);
  CHECK(unranged->body.view() == whole->body.view());
  CHECK(ranged_gets(proxy_log()) == std::vector<std::string>{"bytes=0-5242879|"});
  set_faults("[]");
}

TEST_CASE("a weight file replaced while its ranges are read: never a mix of versions") {
  S3TestServer& s = faulty_server();
  set_faults("[]");
  ModelArtifacts a = model(3 * 1024 * 1024 + 5, 0.75f);
  // No digests in model.json: the replacement has the same size and other
  // bytes, and only the ranges' If-Match can tell.
  const std::string parts =
      R"({"multipart_threshold": 5242880, "part_size": 5242880, "integrity": "none"})";
  save(url(s, "replaced/m"), a, parts);
  const std::string key = key_of(s, "replaced/m/", "weights.");
  const std::string old_etag = direct(s).head(kBucket, key, {})->etag;
  std::vector<float> other = ramp(3 * 1024 * 1024 + 5, 9.0f);
  const std::vector<uint8_t> other_bytes = testing::float_bytes(other);
  auto put_other = [&](const std::string& k) {
    direct(s).put(kBucket, k, {Buffer::copy_of(other_bytes)}, {});
  };

  // The client alone: the second range is held back by the proxy while the
  // object is replaced, then answered 412 by the store.
  s3::ClientConfig config;
  config.endpoint = s.endpoint;
  config.addressing = s3::Addressing::kPath;
  config.credentials = s3::Credentials{s.access_key_id, s.secret_access_key, ""};
  config.part_size = 5242880;
  config.concurrency = 1;
  s3::S3Client client(config);
  clear_log();
  set_faults(R"([{"method":"GET","range":"bytes=5242880-","delay_ms":1500,"times":1}])");
  std::future<Error> failed = std::async(
      std::launch::async, [&] { return error_from([&] { client.get_ranged(kBucket, key, {}); }); });
  wait_for_request("bytes=5242880-10485759");
  put_other(key);
  Error e = failed.get();
  CHECK(e.code() == ErrorCode::kUnavailable);
  CHECK(e.retryable());
  CHECK(std::string(e.what()) ==
        "GetObject s3://stowage-models/" + key +
            ": the object was replaced or removed while it was read in parts (its ETag is no "
            "longer " +
            old_etag + ")");

  // Through the host: the retry reads the new version whole.
  save(url(s, "replaced/m"), a, parts);
  const std::string key2 = key_of(s, "replaced/m/", "weights.");
  clear_log();
  set_faults(R"([{"method":"GET","range":"bytes=5242880-","delay_ms":1500,"times":1}])");
  std::future<ModelArtifacts> loaded =
      std::async(std::launch::async, [&] { return load(url(s, "replaced/m"), parts); });
  wait_for_request("bytes=5242880-10485759");
  put_other(key2);
  ModelArtifacts got = loaded.get();
  CHECK(weight_bytes(got) == weight_bytes(float_model(other)));
  // The first attempt's three ranges, then the retry's three.
  CHECK(ranged_gets(proxy_log()).size() == 6);
  set_faults("[]");
}

TEST_CASE("replacing a model: the old one stays whole until model.json changes") {
  S3TestServer& s = open_server();
  ModelArtifacts a = model(64, 1.0f);
  ModelArtifacts b = model(64, 100.0f);
  ModelArtifacts c = model(300, -7.0f);
  save(url(s, "replace/m"), a);
  save(url(s, "replace/m"), b);
  std::set<std::string> keys = keys_under(s, "replace/m/");
  REQUIRE(keys.size() == 2);
  std::string weights = *std::next(keys.begin());  // after model.json
  CHECK(weights.starts_with("replace/m/weights."));
  CHECK(weights.ends_with(".bin"));
  CHECK(weights != "replace/m/weights.bin");
  CHECK(weight_bytes(load(url(s, "replace/m"))) == weight_bytes(b));
  save(url(s, "replace/m"), c, R"({"shard_size": 512})");
  keys = keys_under(s, "replace/m/");
  CHECK(keys.size() == 4);
  CHECK(keys.count(weights) == 0);
  CHECK(weight_bytes(load(url(s, "replace/m"))) == weight_bytes(c));
}

TEST_CASE("saves into an empty place never share weight files") {
  S3TestServer& s = open_server();
  ModelArtifacts a = model(2048, 1.0f);
  ModelArtifacts b = model(2048, 5000.0f);
  const std::string u = url(s, "fresh/m");
  const std::string opts = R"({"shard_size": 1024})";
  save(u, a, opts);
  std::set<std::string> first = keys_under(s, "fresh/m/");
  remove_model(u, registry());
  save(u, b, opts);
  std::set<std::string> second = keys_under(s, "fresh/m/");
  REQUIRE(second.size() == 9);
  for (const std::string& k : second) {
    if (!k.ends_with("model.json")) CHECK(first.count(k) == 0);
  }

  // Two saves at once into an empty place: whichever model.json lands last
  // names only its own weight files, so the model loads whole.
  for (int round = 0; round < 3; ++round) {
    remove_model(u, registry());
    std::string other_error;
    std::thread other([&] {
      try {
        save(u, a, opts);
      } catch (const std::exception& e) {
        other_error = e.what();
      }
    });
    save(u, b, opts);
    other.join();
    CHECK(other_error == "");
    const std::string got = weight_bytes(load(u));
    CHECK((got == weight_bytes(a) || got == weight_bytes(b)));
  }
}

TEST_CASE("concurrent loads during replacements see one model or the other, never a mix") {
  S3TestServer& s = open_server();
  ModelArtifacts a = model(2048, 1.0f);
  ModelArtifacts b = model(2048, 5000.0f);
  const std::string u = url(s, "race/m");
  const std::string opts = R"({"shard_size": 1024})";
  save(u, a, opts);
  std::atomic<bool> stop{false};
  std::atomic<int> loads{0}, bad{0};
  struct Join {
    std::atomic<bool>& stop;
    std::thread& t;
    ~Join() {
      stop = true;
      if (t.joinable()) t.join();
    }
  };
  std::thread reader([&] {
    while (!stop.load()) {
      try {
        std::string got = weight_bytes(load(u));
        if (got != weight_bytes(a) && got != weight_bytes(b)) ++bad;
        ++loads;
      } catch (const Error& e) {
        ++bad;
        MESSAGE(std::string(e.what()));
      }
    }
  });
  {
    Join join{stop, reader};
    for (int i = 0; i < 6; ++i) save(u, i % 2 ? a : b, opts);
  }
  CHECK(bad.load() == 0);
  CHECK(loads.load() > 0);
}

TEST_CASE("copies within one store are server-side copies") {
  S3TestServer& s = faulty_server();
  set_faults("[]");
  ModelArtifacts a = model(5000, 3.0f);
  save(url(s, "copy/src"), a, R"({"shard_size": 8192})");
  clear_log();
  TransferOptions t;
  t.destination_options = R"({"shard_size": 8192})";
  copy_model(url(s, "copy/src"), url(s, "copy/dst"), t, registry());
  std::string log = proxy_log();
  // Three weight files copied by CopyObject, model.json uploaded.
  CHECK(count(log, "\"copy_source\": \"/stowage-models/copy/src/group1-shard") == 3);
  CHECK(count(log, "\"method\": \"PUT\"") == 4);
  CHECK(weight_bytes(load(url(s, "copy/dst"))) == weight_bytes(a));

  // Another shard size cuts the bytes differently: uploaded, not copied.
  clear_log();
  copy_model(url(s, "copy/src"), url(s, "copy/single"), {}, registry());
  CHECK(count(proxy_log(), "copy/src/group1-shard") == 3);  // the GETs of the load
  CHECK(count(proxy_log(), "\"copy_source\": \"/") == 0);
  CHECK(weight_bytes(load(url(s, "copy/single"))) == weight_bytes(a));
}

TEST_CASE("signed requests: the right key works, a wrong secret is SignatureDoesNotMatch") {
  S3TestServer& s = signed_server();
  ModelArtifacts a = model(100, 9.0f);
  save(url(s, "signed/m"), a, keys_json(s));
  CHECK(weight_bytes(load(url(s, "signed/m"), keys_json(s))) == weight_bytes(a));
  // Multipart requests sign query parameters (uploads, partNumber, uploadId).
  ModelArtifacts big = model(1536 * 1024, 2.0f);  // 6 MiB
  std::string opts = keys_json(s);
  opts.insert(opts.size() - 1, R"(,"multipart_threshold":5242880,"part_size":5242880)");
  save(url(s, "signed/big"), big, opts);
  CHECK(weight_bytes(load(url(s, "signed/big"), keys_json(s))) == weight_bytes(big));

  const std::string wrong =
      R"({"access_key_id":")" + s.access_key_id + R"(","secret_access_key":"wrong-secret-key"})";
  Error e = error_from([&] { load(url(s, "signed/m"), wrong); });
  CHECK(e.code() == ErrorCode::kPermissionDenied);
  CHECK_FALSE(e.retryable());
  CHECK(testing::contains(e, "SignatureDoesNotMatch"));
  CHECK(testing::contains(e, "HTTP 403"));
  CHECK(testing::contains(e, "s3://stowage-models/signed/m/model.json"));
  CHECK(testing::contains(e, "the options"));

  e = error_from([&] { save(url(s, "signed/n"), a, wrong); });
  CHECK(e.code() == ErrorCode::kPermissionDenied);
  CHECK(testing::contains(e, "SignatureDoesNotMatch"));

  e = error_from([&] {
    load(url(s, "signed/m"), R"({"access_key_id":"AKIAUNKNOWN","secret_access_key":"x"})");
  });
  CHECK(e.code() == ErrorCode::kPermissionDenied);
  CHECK(testing::contains(e, "InvalidAccessKeyId"));

  // No credentials at all: unsigned, refused, and the message says where it looked.
  ScopedEnv env({{"AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials"},
                 {"AWS_CONFIG_FILE", "/nonexistent/config"},
                 {"AWS_ACCESS_KEY_ID", std::nullopt},
                 {"AWS_SECRET_ACCESS_KEY", std::nullopt},
                 {"AWS_PROFILE", std::nullopt}});
  e = error_from([&] { load(url(s, "signed/m")); });
  CHECK(e.code() == ErrorCode::kPermissionDenied);
  CHECK(testing::contains(e, "no credentials were found"));
  CHECK(testing::contains(e, "/nonexistent/credentials"));
}

TEST_CASE("credentials from the environment and from a profile file") {
  S3TestServer& s = signed_server();
  ModelArtifacts a = model(50, -1.0f);
  {
    ScopedEnv env(
        {{"AWS_ACCESS_KEY_ID", s.access_key_id}, {"AWS_SECRET_ACCESS_KEY", s.secret_access_key}});
    save(url(s, "chain/env"), a);
    CHECK(weight_bytes(load(url(s, "chain/env"))) == weight_bytes(a));
  }
  fs::path dir = fs::temp_directory_path() / ("stowage-s3-profile-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "credentials")
      << "[default]\naws_access_key_id = AKIAWRONG\n"
         "aws_secret_access_key = wrong-secret-key\n"
         "[stowage-test]\naws_access_key_id = "
      << s.access_key_id << "\naws_secret_access_key = " << s.secret_access_key << "\n";
  std::ofstream(dir / "config") << "[profile stowage-test]\nregion = us-east-1\n";
  {
    ScopedEnv env({{"AWS_SHARED_CREDENTIALS_FILE", (dir / "credentials").string()},
                   {"AWS_CONFIG_FILE", (dir / "config").string()},
                   {"AWS_PROFILE", "stowage-test"},
                   {"AWS_ACCESS_KEY_ID", std::nullopt},
                   {"AWS_SECRET_ACCESS_KEY", std::nullopt}});
    CHECK(weight_bytes(load(url(s, "chain/env"))) == weight_bytes(a));
    // The profile in the URL wins over AWS_PROFILE; "default" has a wrong key.
    Error e = error_from([&] { load(url(s, "chain/env") + "&profile=default"); });
    CHECK(e.code() == ErrorCode::kPermissionDenied);
    CHECK(testing::contains(e, "InvalidAccessKeyId"));
    CHECK(testing::contains(e, "profile \"default\""));
  }
  fs::remove_all(dir);
}

TEST_CASE("instance metadata only when asked for") {
  S3TestServer& s = signed_server();
  ModelArtifacts a = model(30, 8.0f);
  save(url(s, "imds/m"), a, keys_json(s));
  ScopedEnv env({{"AWS_EC2_METADATA_SERVICE_ENDPOINT", s.imds},
                 {"AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials"},
                 {"AWS_CONFIG_FILE", "/nonexistent/config"},
                 {"AWS_ACCESS_KEY_ID", std::nullopt},
                 {"AWS_SECRET_ACCESS_KEY", std::nullopt},
                 {"AWS_PROFILE", std::nullopt}});
  // Not asked: nothing is probed, the request goes unsigned and is refused.
  Error e = error_from([&] { load(url(s, "imds/m")); });
  CHECK(e.code() == ErrorCode::kPermissionDenied);
  CHECK(testing::contains(e, "no credentials were found"));
  // Asked: IMDSv2's token, role and keys.
  CHECK(weight_bytes(load(url(s, "imds/m"), R"({"ec2_metadata": true})")) == weight_bytes(a));
  // A machine without the service fails fast and says where it looked.
  ScopedEnv off({{"AWS_EC2_METADATA_SERVICE_ENDPOINT", std::string("http://127.0.0.1:9")}});
  auto t0 = std::chrono::steady_clock::now();
  e = error_from([&] { load(url(s, "imds/m"), R"({"ec2_metadata": true})"); });
  CHECK(e.code() == ErrorCode::kUnavailable);
  CHECK_FALSE(e.retryable());
  CHECK(testing::contains(e, "instance metadata service at http://127.0.0.1:9"));
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(10));
}

TEST_CASE("a missing bucket is NoSuchBucket, named") {
  S3TestServer& s = open_server();
  const std::string u = "s3://no-such-bucket-here/m?endpoint=" + s.endpoint;
  Error e = error_from([&] { load(u); });
  CHECK(e.code() == ErrorCode::kNotFound);
  CHECK(testing::contains(e, "NoSuchBucket"));
  CHECK(testing::contains(e, "no-such-bucket-here"));
  CHECK(testing::contains(e, "HTTP 404"));
  e = error_from([&] { save(u, model(4, 1.0f)); });
  CHECK(e.code() == ErrorCode::kNotFound);
  CHECK(testing::contains(e, "NoSuchBucket"));
  e = error_from([&] { list_models(u, registry()); });
  CHECK(testing::contains(e, "NoSuchBucket"));
}

TEST_CASE("no checksum headers: stores that reject them keep working") {
  S3TestServer& s = faulty_server();
  set_faults("[]");
  clear_log();
  ModelArtifacts a = model(1536 * 1024 + 3, 1.5f);  // 6 MiB: a multipart upload
  save(url(s, "sums/m"), a, R"({"multipart_threshold": 5242880, "part_size": 5242880})");
  save(url(s, "sums/m"), model(10, 1.0f));  // a replacement: deletes too
  CHECK(weight_bytes(load(url(s, "sums/m"))) == weight_bytes(model(10, 1.0f)));
  std::string log = proxy_log();
  CHECK(count(log, "uploadId=") >= 3);
  CHECK(count(log, "\"method\": \"DELETE\"") >= 1);
  CHECK(count(log, "\"checksums\": []") == count(log, "\"method\""));
}

TEST_CASE("SlowDown then success: the host's retry policy retries, the plugin does not") {
  S3TestServer& s = faulty_server();
  ModelArtifacts a = model(100, 4.0f);
  set_faults("[]");
  save(url(s, "slow/m"), a);
  clear_log();
  set_faults(R"([{"method":"GET","contains":"slow/m/model.json","status":503,"code":"SlowDown",
                 "message":"Please reduce your request rate.","times":1}])");
  CHECK(weight_bytes(load(url(s, "slow/m"))) == weight_bytes(a));
  // 503, then the GET; no HEAD after: each weight file is checked against
  // model.json by its own time as it arrives.
  CHECK(count(proxy_log(), "slow/m/model.json") == 2);

  // Always slow: the host gives up after its attempts, with S3's words.
  set_faults(R"([{"method":"GET","contains":"slow/m/model.json","status":503,"code":"SlowDown",
                 "message":"Please reduce your request rate.","times":100}])");
  clear_log();
  Error e = error_from([&] { load(url(s, "slow/m")); });
  CHECK(e.code() == ErrorCode::kUnavailable);
  CHECK(e.retryable());
  CHECK(testing::contains(e, "SlowDown"));
  CHECK(testing::contains(e, "HTTP 503"));
  CHECK(testing::contains(e, "s3://stowage-models/slow/m/model.json"));
  // One request per attempt: no retry loop inside the plugin.
  CHECK(count(proxy_log(), "slow/m/model.json") == 4);

  // A dropped connection is retryable too.
  set_faults(R"([{"method":"PUT","contains":"drop/m/weights.","drop":true,"times":1}])");
  save(url(s, "drop/m"), a);
  CHECK(weight_bytes(load(url(s, "drop/m"))) == weight_bytes(a));
  set_faults("[]");
}

TEST_CASE("a part that fails aborts the multipart upload and the save leaves nothing") {
  S3TestServer& s = faulty_server();
  ModelArtifacts a = model(3 * 1024 * 1024, 0.5f);  // 12 MiB
  const std::string opts = R"({"multipart_threshold": 5242880, "part_size": 5242880})";
  set_faults(R"([{"method":"PUT","contains":"partNumber=2","status":500,"code":"InternalError",
                 "times":100}])");
  clear_log();
  Error e = error_from([&] { save(url(s, "parts/m"), a, opts); });
  CHECK(e.code() == ErrorCode::kUnavailable);
  CHECK(e.retryable());
  CHECK(testing::contains(e, "InternalError"));
  CHECK(testing::contains(e, "UploadPart 2/3"));
  CHECK(testing::contains(e, "s3://stowage-models/parts/m/weights."));
  std::string log = proxy_log();
  static const std::regex kAbort(
      R"("method": "DELETE", "target": "/stowage-models/parts/m/weights\.[0-9a-f]{8}\.bin\?uploadId=)");
  CHECK(std::regex_search(log, kAbort));
  CHECK(direct(s).list_multipart_uploads(kBucket, "parts/", {}).empty());
  CHECK(keys_under(s, "parts/").empty());

  // One failure only: the host's retry saves it.
  set_faults(R"([{"method":"PUT","contains":"partNumber=3","status":500,"code":"InternalError",
                 "times":1}])");
  save(url(s, "parts/m"), a, opts);
  CHECK(weight_bytes(load(url(s, "parts/m"))) == weight_bytes(a));
  CHECK(direct(s).list_multipart_uploads(kBucket, "parts/", {}).empty());
  set_faults("[]");
}

TEST_CASE("a failed replacement leaves the previous model exactly as it was") {
  S3TestServer& s = faulty_server();
  set_faults("[]");
  ModelArtifacts a = model(500, 1.0f);
  ModelArtifacts b = model(700, 2.0f);
  save(url(s, "keep/m"), a, R"({"shard_size": 1000})");
  std::set<std::string> before = keys_under(s, "keep/m/");
  set_faults(R"([{"method":"PUT","contains":"keep/m/model.json","status":500,
                 "code":"InternalError","times":100}])");
  Error e = error_from([&] { save(url(s, "keep/m"), b); });
  CHECK(e.code() == ErrorCode::kUnavailable);
  set_faults("[]");
  CHECK(keys_under(s, "keep/m/") == before);
  CHECK(weight_bytes(load(url(s, "keep/m"))) == weight_bytes(a));

  // A cancelled save of a new model leaves nothing.
  CallContext ctx;
  std::atomic<bool> cancel{false};
  ctx.on_progress = [&](uint64_t done, uint64_t) {
    if (done > 0) cancel = true;
  };
  ctx.is_cancelled = [&] { return cancel.load(); };
  e = error_from(
      [&] { save(url(s, "keep/new"), model(400000, 1.0f), R"({"shard_size": 65536})", ctx); });
  CHECK(e.code() == ErrorCode::kCancelled);
  CHECK(keys_under(s, "keep/new/").empty());
}

TEST_CASE("a remove whose DeleteObject of a weight file fails reports that object") {
  S3TestServer& s = faulty_server();
  set_faults("[]");
  save(url(s, "del/m"), model(3000, 1.0f), R"({"shard_size": 4096})");  // three files
  set_faults(R"([{"method":"DELETE","contains":"del/m/group1-shard2of3","status":403,
                 "code":"AccessDenied","times":100}])");
  Error e = error_from([&] { remove_model(url(s, "del/m"), registry()); });
  set_faults("[]");
  CHECK(e.code() == ErrorCode::kPermissionDenied);
  CHECK_MESSAGE(testing::contains(e, "DeleteObject s3://stowage-models/del/m/group1-shard2of3."),
                e.what());
  CHECK_MESSAGE(testing::contains(e, ": HTTP 403 AccessDenied: injected by the test proxy"),
                e.what());
  // The refused file stays; model.json, deleted first, is gone.
  std::set<std::string> left = keys_under(s, "del/m/");
  CHECK(left.count("del/m/model.json") == 0);
  CHECK(std::any_of(left.begin(), left.end(),
                    [](const std::string& k) { return k.starts_with("del/m/group1-shard2of3."); }));
}

TEST_CASE("expired credentials are PERMISSION_DENIED and say what to do") {
  S3TestServer& s = faulty_server();
  set_faults(R"([{"contains":"expired/","status":400,"code":"ExpiredToken",
                 "message":"The provided token has expired.","times":100}])");
  const std::string opts = R"({"access_key_id":"AKIAEXAMPLE","secret_access_key":"wrong-secret-key",
                               "session_token":"token"})";
  Error e = error_from([&] { load(url(s, "expired/m"), opts); });
  CHECK(e.code() == ErrorCode::kPermissionDenied);
  CHECK_FALSE(e.retryable());
  CHECK(testing::contains(e, "ExpiredToken"));
  CHECK(testing::contains(e, "refresh"));
  CHECK(testing::contains(e, "HTTP 400"));
  set_faults("[]");
}

TEST_CASE("URLs and options are checked") {
  S3TestServer& s = open_server();
  auto open_error = [&](const std::string& u, const std::string& o = "{}") {
    return error_from([&] { registry().open(u, o); });
  };
  Error e = open_error("s3:///m");
  CHECK(e.code() == ErrorCode::kInvalidArgument);
  CHECK(testing::contains(e, "names no bucket"));
  e = open_error(url(s, "m") + "&colour=blue");
  CHECK(e.code() == ErrorCode::kInvalidArgument);
  CHECK(testing::contains(e, "colour"));
  e = open_error(url(s, "m") + "&secret_access_key=wrong-secret-key");
  CHECK(e.code() == ErrorCode::kInvalidArgument);
  CHECK(testing::contains(e, "do not go in s3:// URLs"));
  e = open_error(url(s, "m"), R"({"colour": "blue"})");
  CHECK(testing::contains(e, "Unknown option \"colour\""));
  e = open_error(url(s, "m"), R"({"part_size": 1024})");
  CHECK(testing::contains(e, "part_size"));
  e = open_error(url(s, "a/../b"));
  CHECK(e.code() == ErrorCode::kInvalidArgument);
  e = open_error(url(s, "m") + "&path_style=maybe");
  CHECK(testing::contains(e, "true or false"));
  e = open_error("s3://b/m?endpoint=ftp://x");
  CHECK(e.code() == ErrorCode::kInvalidArgument);
  // Settings that are right open without touching the network.
  CHECK(registry().open("s3://any-bucket/m?region=eu-west-1&path_style=false") != nullptr);
}

TEST_CASE("stat: model.json and a HEAD of each weight object; a weight replaced behind it shows") {
  S3TestServer& s = open_server();
  auto stat = [&](const std::string& path) { return registry().open(url(s, path))->stat(); };
  ModelArtifacts a = model(64, 1.0f);
  save(url(s, "stat/m"), a, R"({"shard_size": 100})");
  const ModelArtifacts loaded = load(url(s, "stat/m"));
  ModelStat first = stat("stat/m");
  CHECK_FALSE(first.model.weight_data.has_value());
  CHECK(first.model.weight_specs == loaded.weight_specs);
  CHECK(first.info.weight_data_bytes == std::optional<uint64_t>(256));
  CHECK(first.info.model_topology_bytes == artifacts_info(loaded).model_topology_bytes);
  CHECK(stat("stat/m").version == first.version);
  // A shallow stat (abi.h STOWAGE_CALL_STAT_SHALLOW) reads model.json alone.
  CallContext shallow;
  shallow.shallow_stat = true;
  auto shallow_stat = [&] { return registry().open(url(s, "stat/m"))->stat(shallow); };
  const ModelStat light = shallow_stat();
  CHECK(light.model.weight_specs == loaded.weight_specs);
  CHECK(light.info.weight_data_bytes == std::optional<uint64_t>(256));

  // Other bytes of the same size under a weight object's key, model.json
  // untouched: only the weight's HEAD can tell (the shallow stat cannot).
  const std::string shard = "stat/m/" + (*loaded.weights_manifest)[0].paths[1];
  std::optional<s3::Object> old = direct(s).get(kBucket, shard, {});
  REQUIRE(old);
  std::string bytes(old->body.view());
  for (char& c : bytes) c = static_cast<char>(~c);
  direct(s).put(kBucket, shard, {Buffer::from_string(std::string(bytes))}, {});
  const std::string changed = stat("stat/m").version;
  CHECK(changed != first.version);
  CHECK(stat("stat/m").version == changed);
  CHECK(shallow_stat().version == light.version);

  direct(s).remove(kBucket, shard, {});
  Error gone = error_from([&] { stat("stat/m"); });
  CHECK(gone.code() == ErrorCode::kDataLoss);
  CHECK(std::string(gone.what()).find(shard) != std::string::npos);
  CHECK(shallow_stat().version == light.version);  // no HEAD, so the missing object goes unseen

  // A rewritten model.json changes the shallow version too.
  std::optional<s3::Object> json = direct(s).get(kBucket, "stat/m/model.json", {});
  REQUIRE(json);
  direct(s).put(kBucket, "stat/m/model.json",
                {Buffer::from_string(std::string(json->body.view()) + " ")}, {});
  CHECK(shallow_stat().version != light.version);

  Error missing = error_from([&] { stat("stat/none"); });
  CHECK(missing.code() == ErrorCode::kNotFound);
  CHECK(std::string(missing.what()).starts_with("No model at " + url(s, "stat/none") + ": "));
}

namespace {

// The version token a shallow stat gave before tokens carried model.json's
// ETag (caches hold such tokens): plugin::version_token (stowage/plugin.hpp,
// a 64-bit FNV-1a as 16 hex digits) of "<ETag>|<size>|<time>", restated
// here so that a change on either side shows.
std::string earlier_shallow_version(const s3::ObjectInfo& info) {
  const auto time = info.last_modified ? info.last_modified->time_since_epoch().count() : 0;
  const std::string part = info.etag + "|" + std::to_string(info.size) + "|" + std::to_string(time);
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : std::to_string(part.size()) + ":" + part) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char out[17];
  std::snprintf(out, sizeof(out), "%016llx", static_cast<unsigned long long>(h));
  return out;
}

}  // namespace

// abi.h known_version (ABI 1.3): a shallow stat given the version an
// earlier one gave sends model.json's ETag as If-None-Match, and moto's 304
// is "unchanged"; counted in the test proxy's log.
TEST_CASE("shallow stat with a known version: one GET with If-None-Match, 304 is unchanged") {
  S3TestServer& s = faulty_server();
  save(url(s, "reval/m"), model(64, 6.0f), R"({"shard_size": 100})");
  auto stat = [&](const std::string& path, const std::string& known) {
    CallContext c;
    c.shallow_stat = true;
    c.known_version = known;
    return registry().open(url(s, path))->stat(c);
  };
  const std::string target = R"("target": "/stowage-models/reval/m/model.json")";
  const ModelStat first = stat("reval/m", "");
  CHECK_FALSE(first.unchanged);
  CHECK(first.version.rfind("s3.", 0) == 0);
  REQUIRE(first.model.weights_manifest);
  CHECK(first.info.weight_data_bytes == std::optional<uint64_t>(256));

  clear_log();
  const ModelStat again = stat("reval/m", first.version);
  CHECK(again.unchanged);
  CHECK(again.version == first.version);
  CHECK_FALSE(again.model.weights_manifest.has_value());
  CHECK_FALSE(again.model.model_topology.has_value());
  std::string log = proxy_log();
  CHECK(count(log, "\"method\"") == 1);       // exactly one request:
  CHECK(count(log, target) == 1);             // model.json's GET,
  CHECK(count(log, "\"status\": 304") == 1);  // answered 304,
  std::optional<s3::ObjectInfo> head = direct(s).head(kBucket, "reval/m/model.json", {});
  REQUIRE(head);
  std::string etag;  // as the log's JSON writes it
  for (char c : head->etag) etag += c == '"' ? std::string("\\\"") : std::string(1, c);
  CHECK(count(log, R"("if_none_match": ")" + etag + "\"") == 1);  // asked with its ETag

  // The form shallow stats gave before: a digest of model.json's ETag, size
  // and time. Still read: the same object is "unchanged", with the new form.
  const std::string earlier = earlier_shallow_version(*head);
  clear_log();
  const ModelStat from_earlier = stat("reval/m", earlier);
  CHECK(from_earlier.unchanged);
  CHECK(from_earlier.version == first.version);
  log = proxy_log();
  CHECK(count(log, "\"method\"") == 1);
  CHECK(count(log, "\"status\": 200") == 1);  // no ETag to ask with
  CHECK(count(log, R"("if_none_match": "")") == 1);

  // A token that is not this stat's, is cut, or is another object's: no
  // token. A full answer, asked without If-None-Match.
  save(url(s, "reval/other"), model(64, 6.0f), R"({"shard_size": 100})");
  for (const std::string& other :
       {std::string("not-a-token"), std::string("0123456789abcdef"),
        first.version.substr(0, first.version.size() - 2), stat("reval/other", "").version}) {
    INFO(other);
    clear_log();
    const ModelStat full = stat("reval/m", other);
    CHECK_FALSE(full.unchanged);
    CHECK(full.version == first.version);
    CHECK(full.model.weight_specs == first.model.weight_specs);
    CHECK(full.info.weight_data_bytes == std::optional<uint64_t>(256));
    log = proxy_log();
    CHECK(count(log, "\"method\"") == 1);
    CHECK(count(log, R"("if_none_match": "")") == 1);
    CHECK(count(log, "\"status\": 200") == 1);
  }

  // model.json replaced: the conditional GET is answered 200, in full.
  std::optional<s3::Object> json = direct(s).get(kBucket, "reval/m/model.json", {});
  REQUIRE(json);
  direct(s).put(kBucket, "reval/m/model.json",
                {Buffer::from_string(std::string(json->body.view()) + " ")}, {});
  clear_log();
  const ModelStat changed = stat("reval/m", first.version);
  CHECK_FALSE(changed.unchanged);
  CHECK(changed.version.rfind("s3.", 0) == 0);
  CHECK(changed.version != first.version);
  CHECK(changed.model.weight_specs == first.model.weight_specs);
  log = proxy_log();
  CHECK(count(log, "\"method\"") == 1);
  CHECK(count(log, R"("if_none_match": ")" + etag + "\"") == 1);
  CHECK(count(log, "\"status\": 200") == 1);
  CHECK(stat("reval/m", changed.version).unchanged);

  // A full (not shallow) stat ignores the known version and answers in full.
  CallContext full;
  full.known_version = changed.version;
  const ModelStat deep = registry().open(url(s, "reval/m"))->stat(full);
  CHECK_FALSE(deep.unchanged);
  CHECK(deep.info.weight_data_bytes == std::optional<uint64_t>(256));

  direct(s).remove(kBucket, "reval/m/model.json", {});
  Error missing = error_from([&] { stat("reval/m", changed.version); });
  CHECK(missing.code() == ErrorCode::kNotFound);
  CHECK(std::string(missing.what()) ==
        "No model at " + url(s, "reval/m") +
            ": s3://stowage-models/reval/m/model.json does not exist");
}

// A store that sends no ETag (the proxy strips it from every answer): a
// shallow stat has no condition to send, and its token holds model.json's
// SHA-256, so a model.json replaced by another of the same size, within
// the same second, is still seen as another version.
TEST_CASE(
    "shallow stat from a store that sends no ETag: no condition, model.json's digest decides") {
  S3TestServer& s = faulty_server();
  save(url(s, "noetag/m"), model(64, 6.0f), R"({"shard_size": 100})");
  // The same layout with other values: a model.json of the same size.
  save(url(s, "noetag/n"), model(64, 7.0f), R"({"shard_size": 100})");
  set_faults(R"([{"method":"GET","strip_etag":true,"times":1000}])");
  struct Restore {
    ~Restore() { set_faults("[]"); }
  } restore;
  auto stat = [&](const std::string& known) {
    CallContext c;
    c.shallow_stat = true;
    c.known_version = known;
    return registry().open(url(s, "noetag/m"))->stat(c);
  };
  const ModelStat first = stat("");
  CHECK_FALSE(first.unchanged);
  REQUIRE(!first.version.empty());
  CHECK(first.version.back() == '.');  // an empty ETag at the token's end

  clear_log();
  const ModelStat again = stat(first.version);
  CHECK(again.unchanged);
  CHECK(again.version == first.version);
  std::string log = proxy_log();
  CHECK(count(log, "\"method\"") == 1);
  CHECK(count(log, R"("if_none_match": "")") == 1);  // nothing to ask with
  CHECK(count(log, "\"status\": 200") == 1);

  std::optional<s3::Object> m = direct(s).get(kBucket, "noetag/m/model.json", {});
  std::optional<s3::Object> n = direct(s).get(kBucket, "noetag/n/model.json", {});
  REQUIRE(m);
  REQUIRE(n);
  REQUIRE(n->body.size() == m->body.size());
  REQUIRE(n->body.view() != m->body.view());
  direct(s).put(kBucket, "noetag/m/model.json", {Buffer::from_string(std::string(n->body.view()))},
                {});
  clear_log();
  const ModelStat replaced = stat(first.version);
  CHECK_FALSE(replaced.unchanged);
  CHECK(replaced.version != first.version);
  CHECK(replaced.version.back() == '.');
  REQUIRE(replaced.model.weights_manifest);
  log = proxy_log();
  CHECK(count(log, "\"method\"") == 1);
  CHECK(count(log, R"("if_none_match": "")") == 1);
  CHECK(stat(replaced.version).unchanged);
}

// If-None-Match is signed with the other headers: a store that checks
// signatures accepts the conditional GET.
TEST_CASE("a conditional shallow stat is signed: accepted where signatures are checked") {
  S3TestServer& s = signed_server();
  save(url(s, "signed/reval"), model(16, 1.0f), keys_json(s));
  auto stat = [&](const std::string& known) {
    CallContext c;
    c.shallow_stat = true;
    c.known_version = known;
    return registry().open(url(s, "signed/reval"), keys_json(s))->stat(c);
  };
  const ModelStat first = stat("");
  CHECK_FALSE(first.unchanged);
  const ModelStat again = stat(first.version);
  CHECK(again.unchanged);
  CHECK(again.version == first.version);
}

// ---- Streaming copies (ABI 1.1) -------------------------------------------

namespace {

struct TempFolder {
  fs::path path;
  TempFolder() {
    std::string tmpl = (fs::temp_directory_path() / "stowage-s3-stream-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~TempFolder() { fs::remove_all(path); }
};

std::map<std::string, std::string> files_in(const fs::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    std::ifstream in(e.path(), std::ios::binary);
    out[e.path().filename().string()] = std::string(std::istreambuf_iterator<char>(in), {});
  }
  return out;
}

}  // namespace

TEST_CASE("a copy s3:// to file:// streams within the queue and writes what a whole copy writes") {
  S3TestServer& s = open_server();
  ModelArtifacts a = model(5000, 6.0f);  // 20000 bytes in objects of 8192, 8192, 3616
  save(url(s, "stream/src"), a, R"({"shard_size": 8192})");
  TempFolder tmp;

  TransferStats stats;
  TransferOptions t;
  t.destination_options = R"({"shard_size": 8192})";
  t.queue_bytes = 8192;
  t.stats = &stats;
  copy_model(url(s, "stream/src"), "file://" + (tmp.path / "streamed").string(), t, registry());
  CHECK(stats.streamed);
  // Out of order, the host holds at most what its queue let in, the buffer
  // the save needs next (never made to wait) and the one it is writing.
  CHECK(stats.peak_queued_bytes >= 8192);
  CHECK(stats.peak_queued_bytes <= 8192 + 2 * 8192);

  TransferStats whole_stats;
  t.streaming = false;
  t.stats = &whole_stats;
  copy_model(url(s, "stream/src"), "file://" + (tmp.path / "whole").string(), t, registry());
  CHECK_FALSE(whole_stats.streamed);
  const auto streamed = files_in(tmp.path / "streamed");
  CHECK(streamed.size() == 4);
  CHECK(streamed == files_in(tmp.path / "whole"));
  CHECK(weight_bytes(load_model("file://" + (tmp.path / "streamed").string(), "{}", {},
                                registry())) == weight_bytes(a));
}

TEST_CASE("a streaming s3:// copy that fails midway leaves the destination as it was") {
  S3TestServer& s = faulty_server();
  set_faults("[]");
  ModelArtifacts a = model(5000, 7.0f);
  save(url(s, "stream/failing"), a, R"({"shard_size": 8192})");
  TempFolder tmp;
  const std::string dst = "file://" + (tmp.path / "model").string();
  ModelArtifacts old = model(10, -3.0f);
  save_model(dst, old, "{}", {}, registry());
  const auto before = files_in(tmp.path / "model");

  struct Case {
    std::string name;
    std::string rule;  // for the GET of the third weight object
  };
  for (const Case& c : {Case{"an S3 error", R"("status":500,"code":"InternalError")"},
                        Case{"a dropped connection", R"("drop":true)"}}) {
    CAPTURE(c.name);
    // The third object fails once the first two are in: the copy fails
    // midway, after the destination got weight bytes.
    set_faults(R"([{"method":"GET","contains":"stream/failing/group1-shard3of3","times":100,)"
               R"("fail_after_ms":300,)" +
               c.rule + "}]");
    TransferStats stats;
    TransferOptions t;
    t.queue_bytes = 8192;
    t.stats = &stats;
    Error e = error_from([&] { copy_model(url(s, "stream/failing"), dst, t, registry()); });
    CHECK(stats.streamed);
    CHECK_MESSAGE(e.code() == ErrorCode::kUnavailable, e.what());
    CHECK_MESSAGE(testing::contains(e, "group1-shard3of3"), e.what());
    CHECK(files_in(tmp.path / "model") == before);
    // No temporary folder left beside the model.
    CHECK(std::distance(fs::directory_iterator(tmp.path), fs::directory_iterator()) == 1);
  }
  set_faults("[]");
  CHECK(weight_bytes(load_model(dst, "{}", {}, registry())) == weight_bytes(old));
}

TEST_CASE("a streaming s3:// load hands a weight file over while another is still coming") {
  S3TestServer& s = faulty_server();
  set_faults("[]");
  save(url(s, "stream/slow"), model(5000, 8.0f), R"({"shard_size": 8192})");
  TempFolder tmp;
  // The third object's GET waits 20 s at the proxy; the first two come at
  // once. The copy is cancelled as soon as the destination's temporary
  // folder holds a weight file: that happens only if the load handed the
  // first objects over before the third arrived.
  set_faults(
      R"([{"method":"GET","contains":"stream/slow/group1-shard3of3","delay_ms":20000,"times":1}])");
  std::atomic<bool> shard_written{false};
  TransferStats stats;
  TransferOptions t;
  t.destination_options = R"({"shard_size": 8192})";
  t.queue_bytes = 8192;
  t.stats = &stats;
  t.call.deadline = std::chrono::system_clock::now() + std::chrono::seconds(15);
  t.call.is_cancelled = [&] {
    for (const auto& e : fs::directory_iterator(tmp.path)) {
      if (e.path().filename().string().find(".stowage-tmp-") != std::string::npos &&
          fs::directory_iterator(e.path()) != fs::directory_iterator()) {
        shard_written = true;
      }
    }
    return shard_written.load();
  };
  Error e = error_from([&] {
    copy_model(url(s, "stream/slow"), "file://" + (tmp.path / "m").string(), t, registry());
  });
  set_faults("[]");
  CHECK(stats.streamed);
  CHECK(shard_written);
  CHECK_MESSAGE(e.code() == ErrorCode::kCancelled, e.what());
  CHECK_FALSE(fs::exists(tmp.path / "m"));
}
