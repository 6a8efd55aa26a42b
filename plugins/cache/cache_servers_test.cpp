// cache+<URL> in front of the other real servers: python's http.server (its
// access log, on stderr, read from a file) and moto_server for s3:// (behind
// the test proxy, which logs every request). The same cases run against
// both, each counting what reached the server: a first load fetches, a
// second (max_age 0) makes one revalidation request and no weight request,
// an update upstream is seen after revalidation, and two versions sharing
// shards store those shards once. Each server also shows its conditional
// revalidation: a GET answered 304 (If-Modified-Since for python's,
// If-None-Match for moto). cache_plugin_test runs the full set against
// `stowage serve`.
//
//   cache_servers_test                          every case, both servers
//   cache_servers_test -tc='*revalidation*'     one case
#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "plugin_test_util.hpp"
#include "stowage/digest.hpp"
#include "stowage/error.hpp"
#include "stowage/handler.hpp"
#include "stowage/registry.hpp"
#include "testing/proxied_bucket.hpp"

extern char** environ;

namespace fs = std::filesystem;
using namespace stowage;
using stowage::testing::float_model;
using stowage::testing::ramp;
using stowage::testing::read_file;
using stowage::testing::registry;
using stowage::testing::weight_bytes;

namespace {

fs::path scratch() { return stowage::testing::scratch("stowage-cache-servers"); }

// Four 4 KiB shards per model: enough files to see which ones a load asks for.
constexpr size_t kValues = 4 * 4096 / 4;
constexpr char kShards[] = R"({"shard_size":4096})";

size_t count_lines(const std::vector<std::string>& lines, const std::string& needle) {
  size_t n = 0;
  for (const std::string& line : lines) n += line.find(needle) != std::string::npos ? 1 : 0;
  return n;
}

// `python3 -m http.server` over a folder this test saves into with file://.
// Its access log (one line per request, written before the response is
// sent) goes to a file.
class PythonHttp {
 public:
  static constexpr char kName[] = "python";

  static PythonHttp& get() {
    static std::unique_ptr<PythonHttp> s(new PythonHttp);  // stopped at exit
    return *s;
  }
  ~PythonHttp() {
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
  }

  void put(const std::string& model, const ModelArtifacts& a) {
    registry().open("file://" + (root_ / model).string(), kShards)->save(a);
  }
  std::string url(const std::string& model) const {
    return "http://127.0.0.1:" + std::to_string(port_) + "/" + model + "/model.json";
  }
  // The served folder of a model, for writing behind the server's back.
  fs::path folder(const std::string& model) const { return root_ / model; }
  // The request lines so far. First waits for a marker request of its own,
  // made after everything before it returned, so no line is still to come.
  std::vector<std::string> requests() {
    const std::string marker = "/marker-" + std::to_string(++markers_) + "/";
    try {
      registry().open(url(marker.substr(1, marker.size() - 2)))->load();
    } catch (const Error&) {
      // 404, as meant: only the log line matters.
    }
    std::string text;
    for (int i = 0; i < 500 && text.find(marker) == std::string::npos; ++i) {
      text = read_file(log_);
      if (text.find(marker) == std::string::npos) ::usleep(10000);
    }
    REQUIRE(text.find(marker) != std::string::npos);
    std::vector<std::string> out;
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
      // 127.0.0.1 - - [date] "GET /m/model.json HTTP/1.1" 200 -
      const size_t quote = line.find('"');
      if (quote != std::string::npos) out.push_back(line.substr(quote + 1));
    }
    return out;
  }
  size_t weight_gets(const std::string& model) {
    return count_lines(requests(), "GET /" + model + "/group");
  }
  size_t json_gets(const std::string& model) {
    return count_lines(requests(), "GET /" + model + "/model.json ");
  }
  size_t all(const std::string& model) { return count_lines(requests(), " /" + model + "/"); }
  // GETs of the model's model.json answered with `status`.
  size_t json_gets(const std::string& model, int status) {
    return count_lines(requests(),
                       "GET /" + model + "/model.json HTTP/1.1\" " + std::to_string(status) + " ");
  }
  // Sets model.json's modification time `ago` in the past.
  void age_model_json(const std::string& model, std::chrono::seconds ago) {
    const fs::path json = folder(model) / "model.json";
    fs::last_write_time(json, fs::file_time_type::clock::now() - ago);
  }

 private:
  PythonHttp() : root_(scratch() / "python-root"), log_(scratch() / "python.log") {
    fs::create_directories(root_);
    const fs::path out = scratch() / "python.out";
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&fa, 2, log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    std::vector<std::string> args{STOWAGE_PYTHON, "-u",        "-m",          "http.server", "0",
                                  "--bind",       "127.0.0.1", "--directory", root_.string()};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int rc = posix_spawn(&pid_, STOWAGE_PYTHON, &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    REQUIRE_MESSAGE(rc == 0, "cannot run " STOWAGE_PYTHON);
    // "Serving HTTP on 127.0.0.1 port 41234 (http://127.0.0.1:41234/) ..."
    std::string text;
    for (int i = 0; i < 3000 && text.find('\n') == std::string::npos; ++i) {
      text = read_file(out);
      if (text.find('\n') == std::string::npos) ::usleep(10000);
    }
    const size_t at = text.find(" port ");
    port_ = at == std::string::npos ? 0 : std::atoi(text.c_str() + at + 6);
    REQUIRE_MESSAGE(port_ > 0,
                    (std::string("python3 -m http.server did not print its port: '") + text + "'"));
  }

  fs::path root_;
  fs::path log_;
  pid_t pid_ = -1;
  int port_ = 0;
  int markers_ = 0;
};

// moto_server behind the logging proxy; models saved through the proxy
// with s3://, their requests counted from its log.
class MotoS3 {
 public:
  static constexpr char kName[] = "moto";

  static MotoS3& get() {
    static MotoS3 s;
    return s;
  }

  void put(const std::string& model, const ModelArtifacts& a) {
    const size_t from = bucket_.requests().size();
    registry().open(bucket_.url(model + "/"), kShards)->save(a);
    saves_.emplace_back(from, bucket_.requests().size());
  }
  std::string url(const std::string& model) const { return bucket_.url(model + "/model.json"); }
  // "METHOD /bucket/key?query" lines but the saves' own (PUTs, the read
  // back of model.json); the proxy logs a request before it forwards it,
  // so every request of a load that returned is there.
  std::vector<std::string> requests(bool with_status = false) {
    std::vector<std::string> lines = bucket_.requests(with_status);
    std::vector<std::string> out;
    for (size_t i = 0; i < lines.size(); ++i) {
      bool saving = false;
      for (const auto& [from, to] : saves_) saving = saving || (i >= from && i < to);
      if (!saving) out.push_back(lines[i]);
    }
    return out;
  }
  size_t weight_gets(const std::string& model) {
    return count_lines(requests(), "GET /" + bucket_.name() + "/" + model + "/group");
  }
  size_t json_gets(const std::string& model) {
    return count_lines(requests(), "GET /" + bucket_.name() + "/" + model + "/model.json");
  }
  size_t all(const std::string& model) {
    const std::vector<std::string> lines = requests();
    return count_lines(lines, " /" + bucket_.name() + "/" + model + "/") +
           count_lines(lines, "prefix=" + model);
  }
  // Writes from's model.json bytes over to's, past the proxy.
  void copy_model_json(const std::string& from, const std::string& to) {
    const std::optional<s3::Object> json =
        bucket_.direct().get(bucket_.name(), from + "/model.json", {});
    REQUIRE(json);
    bucket_.direct().put(bucket_.name(), to + "/model.json", {json->body}, {});
  }
  // model.json's ETag, asked past the proxy.
  std::string json_etag(const std::string& model) {
    const std::optional<s3::ObjectInfo> info =
        bucket_.direct().head(bucket_.name(), model + "/model.json", {});
    REQUIRE(info);
    return info->etag;
  }
  // GETs of the model's model.json answered with `status`.
  size_t json_gets(const std::string& model, int status) {
    return count_lines(requests(true), "GET /" + bucket_.name() + "/" + model + "/model.json " +
                                           std::to_string(status));
  }

 private:
  MotoS3() : bucket_("stowage-cache") {}
  s3::testing::ProxiedBucket bucket_;
  std::vector<std::pair<size_t, size_t>> saves_;  // [from, to) log lines of each put
};

std::string options(const fs::path& dir, const std::string& extra = "") {
  return "{\"dir\":\"" + dir.string() + "\"" + (extra.empty() ? "" : "," + extra) + "}";
}

template <typename S>
fs::path new_cache(const std::string& name) {
  return scratch() / "caches" / (std::string(S::kName) + "-" + name);
}

ModelArtifacts load(const std::string& url, const std::string& opts) {
  return registry().open("cache+" + url, opts)->load();
}

size_t files_under(const fs::path& dir) {
  size_t n = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir)) n += e.is_regular_file() ? 1 : 0;
  return n;
}

}  // namespace

TEST_CASE_TEMPLATE("a first load fetches; a revalidation is one request and fetches no weight", S,
                   PythonHttp, MotoS3) {
  S& s = S::get();
  const ModelArtifacts model = float_model(ramp(kValues, 1.0f));
  s.put("basic", model);
  const fs::path dir = new_cache<S>("basic");

  const ModelArtifacts first = load(s.url("basic"), options(dir));
  CHECK(weight_bytes(first) == weight_bytes(model));
  CHECK(s.weight_gets("basic") == 4);
  // The shallow stat that names the version, then the load's own GET.
  CHECK(s.json_gets("basic") == 2);
  CHECK(s.all("basic") == 6);

  // max_age 0: one GET of model.json, then the model from the cache.
  const ModelArtifacts second = load(s.url("basic"), options(dir));
  CHECK(weight_bytes(second) == weight_bytes(model));
  CHECK(s.weight_gets("basic") == 4);
  CHECK(s.json_gets("basic") == 3);
  CHECK(s.all("basic") == 7);
  REQUIRE(second.weight_data->size() == 4);
  CHECK(second.weight_data->front().label().rfind((dir / "blobs" / "sha256").string(), 0) == 0);

  // Fresh under max_age: not one request.
  CHECK(weight_bytes(load(s.url("basic"), options(dir, "\"max_age\":3600"))) ==
        weight_bytes(model));
  CHECK(s.all("basic") == 7);
  CHECK(files_under(dir / "models") == 1);
  CHECK(files_under(dir / "blobs") == 4);
}

TEST_CASE_TEMPLATE("a model updated upstream is seen after revalidation", S, PythonHttp, MotoS3) {
  S& s = S::get();
  std::vector<float> values = ramp(kValues, 2.0f);
  const ModelArtifacts v1 = float_model(values);
  s.put("update", v1);
  const fs::path dir = new_cache<S>("update");
  CHECK(weight_bytes(load(s.url("update"), options(dir))) == weight_bytes(v1));
  CHECK(weight_bytes(load(s.url("update"), options(dir))) == weight_bytes(v1));
  CHECK(s.weight_gets("update") == 4);

  values.back() = -1.0f;  // the last shard changes, and with it model.json's digests
  const ModelArtifacts v2 = float_model(values);
  s.put("update", v2);
  const size_t json_before = s.json_gets("update");
  const ModelArtifacts seen = load(s.url("update"), options(dir));
  CHECK(weight_bytes(seen) == weight_bytes(v2));
  // The revalidation, then a fill: stat and load. A load is whole (docs/cache.md).
  CHECK(s.json_gets("update") == json_before + 2);
  CHECK(s.weight_gets("update") == 8);
  CHECK(files_under(dir / "blobs") == 5);

  // v2 is what the cache now holds: revalidated, served, nothing fetched.
  CHECK(weight_bytes(load(s.url("update"), options(dir))) == weight_bytes(v2));
  CHECK(s.weight_gets("update") == 8);
  CHECK(weight_bytes(load(s.url("update"), options(dir, "\"offline\":true"))) == weight_bytes(v2));
}

TEST_CASE_TEMPLATE("two versions sharing shards store those shards once", S, PythonHttp, MotoS3) {
  S& s = S::get();
  std::vector<float> values = ramp(kValues, 3.0f);
  const ModelArtifacts v1 = float_model(values);
  values.front() = -1.0f;  // the first shard differs; the other three are the same bytes
  const ModelArtifacts v2 = float_model(values);
  s.put("shared-v1", v1);
  s.put("shared-v2", v2);
  const fs::path dir = new_cache<S>("shared");

  const ModelArtifacts a = load(s.url("shared-v1"), options(dir));
  REQUIRE(files_under(dir / "blobs") == 4);
  const ModelArtifacts b = load(s.url("shared-v2"), options(dir));
  CHECK(weight_bytes(a) == weight_bytes(v1));
  CHECK(weight_bytes(b) == weight_bytes(v2));
  CHECK(files_under(dir / "models") == 2);
  CHECK(files_under(dir / "blobs") == 5);  // 4 + the one shard v2 does not share

  // Both served from the cache, the shared shards from the same files.
  const std::string fresh = options(dir, "\"max_age\":3600");
  const ModelArtifacts a2 = load(s.url("shared-v1"), fresh);
  const ModelArtifacts b2 = load(s.url("shared-v2"), fresh);
  REQUIRE(a2.weight_data->size() == 4);
  REQUIRE(b2.weight_data->size() == 4);
  CHECK(a2.weight_data->at(0).label() != b2.weight_data->at(0).label());
  for (size_t i = 1; i < 4; ++i) {
    CHECK(a2.weight_data->at(i).label() == b2.weight_data->at(i).label());
  }
  CHECK(weight_bytes(a2) == weight_bytes(v1));
  CHECK(weight_bytes(b2) == weight_bytes(v2));
}

// The fill stores a weight file under the digest model.json records without
// hashing it again when the host checked it on the way in (the default),
// and hashes it itself when the call skipped that check: bytes that do not
// match never enter the cache either way.
TEST_CASE("a fill trusts the digests the host checked, and checks them when it did not") {
  PythonHttp& s = PythonHttp::get();
  const ModelArtifacts model = float_model(ramp(kValues, 4.0f));
  s.put("tampered", model);
  {
    // The second file's bytes changed behind model.json, same size.
    std::fstream f(s.folder("tampered") / "group1-shard2of4.bin",
                   std::ios::in | std::ios::out | std::ios::binary);
    REQUIRE(f);
    f.seekp(10);
    f.put('\x7f');
  }
  const std::string url = s.url("tampered");

  const fs::path checked = new_cache<PythonHttp>("tampered-checked");
  const Error by_host = stowage::testing::error_of([&] { load(url, options(checked)); });
  CHECK(by_host.code() == ErrorCode::kDataLoss);
  CHECK(std::string(by_host.what())
            .rfind("model.json at " + url +
                       ": weight group 1 file 2 of 4 "
                       "'group1-shard2of4.bin' (",
                   0) == 0);
  // A fill stores each file as it arrives (abi.h nested_load_stream): the
  // good files stored before the bad one came are blobs no snapshot names
  // (the next eviction collects them), each holding the bytes of its name;
  // the tampered bytes are in none of them.
  const std::string tampered = read_file(s.folder("tampered") / "group1-shard2of4.bin");
  auto good_blobs = [&](const fs::path& dir) {
    size_t blobs = 0;
    if (!fs::exists(dir / "blobs")) return blobs;
    for (const auto& e : fs::recursive_directory_iterator(dir / "blobs")) {
      if (!e.is_regular_file()) continue;
      ++blobs;
      const Buffer blob = Buffer::from_string(read_file(e.path()));
      CHECK(sha256_hex(blob.bytes()) == e.path().filename().string());
      CHECK(blob.view() != tampered);
    }
    return blobs;
  };
  CHECK(files_under(checked / "models") == 0);
  // The host fails the load when the second file comes, on the load's
  // thread: the fill may or may not have stored the first one by then.
  CHECK(good_blobs(checked) <= 1);

  const fs::path unchecked = new_cache<PythonHttp>("tampered-unchecked");
  CallContext skip;
  skip.verify_digests = false;
  const Error by_cache = stowage::testing::error_of(
      [&] { registry().open("cache+" + url, options(unchecked))->load(skip); });
  CHECK(by_cache.code() == ErrorCode::kDataLoss);
  CHECK(std::string(by_cache.what()) == "cache: weight file group1-shard2of4.bin of cache+" + url +
                                            " does not match the SHA-256 its manifest records");
  CHECK(files_under(unchecked / "models") == 0);
  // The fill hashes and stores up to four files at once: the three good
  // ones may all be stored before the second is found wrong.
  CHECK(good_blobs(unchecked) <= 3);
}

// abi.h known_version (ABI 1.3) over python's http.server, which sends no
// ETag and answers If-Modified-Since: the revalidation is one GET answered
// 304. model.json's modification time is set seconds back, as it is for a
// model saved before it was first fetched: a Last-Modified within a second
// of the answer's Date is never sent back (docs/http.md), since a write in
// that same second would keep it.
TEST_CASE("python http.server: revalidation is one conditional GET answered 304, an update a 200") {
  PythonHttp& s = PythonHttp::get();
  std::vector<float> values = ramp(kValues, 5.0f);
  const ModelArtifacts v1 = float_model(values);
  s.put("conditional", v1);
  s.age_model_json("conditional", std::chrono::seconds(20));
  const fs::path dir = new_cache<PythonHttp>("conditional");
  CHECK(weight_bytes(load(s.url("conditional"), options(dir))) == weight_bytes(v1));
  CHECK(s.json_gets("conditional", 200) == 2);
  CHECK(s.weight_gets("conditional") == 4);
  const size_t all = s.all("conditional");

  const ModelArtifacts second = load(s.url("conditional"), options(dir));
  CHECK(weight_bytes(second) == weight_bytes(v1));
  REQUIRE(second.weight_data->size() == 4);
  CHECK(second.weight_data->front().label().rfind((dir / "blobs").string(), 0) == 0);
  CHECK(s.all("conditional") == all + 1);       // exactly one request:
  CHECK(s.json_gets("conditional", 304) == 1);  // the conditional GET, answered 304
  CHECK(s.weight_gets("conditional") == 4);

  values.back() = -5.0f;
  const ModelArtifacts v2 = float_model(values);
  s.put("conditional", v2);
  s.age_model_json("conditional", std::chrono::seconds(10));
  const ModelArtifacts seen = load(s.url("conditional"), options(dir));
  CHECK(weight_bytes(seen) == weight_bytes(v2));
  // Modified since: the revalidation answered 200, then the fill's load.
  CHECK(s.json_gets("conditional", 304) == 1);
  CHECK(s.json_gets("conditional", 200) == 4);
  CHECK(s.weight_gets("conditional") == 8);

  CHECK(weight_bytes(load(s.url("conditional"), options(dir))) == weight_bytes(v2));
  CHECK(s.json_gets("conditional", 304) == 2);
  CHECK(s.weight_gets("conditional") == 8);
}

// abi.h known_version (ABI 1.3) over moto: the revalidation is one GetObject
// of model.json with If-None-Match (its ETag), answered 304; a model saved
// again upstream changes the ETag, so that GET is a 200 and the fill follows.
TEST_CASE("moto: revalidation is one conditional GET answered 304, an update a 200") {
  MotoS3& s = MotoS3::get();
  std::vector<float> values = ramp(kValues, 5.0f);
  const ModelArtifacts v1 = float_model(values);
  s.put("conditional", v1);
  const fs::path dir = new_cache<MotoS3>("conditional");
  CHECK(weight_bytes(load(s.url("conditional"), options(dir))) == weight_bytes(v1));
  CHECK(s.json_gets("conditional", 200) == 2);  // the stat, then the load
  CHECK(s.weight_gets("conditional") == 4);
  const size_t all = s.all("conditional");

  const ModelArtifacts second = load(s.url("conditional"), options(dir));
  CHECK(weight_bytes(second) == weight_bytes(v1));
  REQUIRE(second.weight_data->size() == 4);
  CHECK(second.weight_data->front().label().rfind((dir / "blobs").string(), 0) == 0);
  CHECK(s.all("conditional") == all + 1);       // exactly one request:
  CHECK(s.json_gets("conditional", 304) == 1);  // the conditional GET, answered 304
  CHECK(s.weight_gets("conditional") == 4);

  values.back() = -5.0f;
  const ModelArtifacts v2 = float_model(values);
  s.put("conditional", v2);
  const ModelArtifacts seen = load(s.url("conditional"), options(dir));
  CHECK(weight_bytes(seen) == weight_bytes(v2));
  // Modified: the revalidation answered 200, then the fill's load.
  CHECK(s.json_gets("conditional", 304) == 1);
  CHECK(s.json_gets("conditional", 200) == 4);
  CHECK(s.weight_gets("conditional") == 8);

  CHECK(weight_bytes(load(s.url("conditional"), options(dir))) == weight_bytes(v2));
  CHECK(s.json_gets("conditional", 304) == 2);
  CHECK(s.weight_gets("conditional") == 8);
}

// The token is the s3 plugin's to read back, and only for its own object.
// twin-b's model.json is a copy of twin-a's bytes, so it has the same ETag:
// sent to twin-b, twin-a's ETag would be answered 304 though twin-b was
// never read. The token of another object sends no If-None-Match: a 200.
TEST_CASE("moto: a known version made for another object sends no If-None-Match") {
  MotoS3& s = MotoS3::get();
  const ModelArtifacts model = float_model(ramp(kValues, 7.0f));
  s.put("twin-a", model);
  s.put("twin-b", model);
  s.copy_model_json("twin-a", "twin-b");  // a save names its files with a tag of its own
  auto stat = [&](const std::string& name, const std::string& known) {
    CallContext c;
    c.shallow_stat = true;
    c.known_version = known;
    return registry().open(s.url(name))->stat(c);
  };
  REQUIRE(s.json_etag("twin-a") == s.json_etag("twin-b"));
  const ModelStat a = stat("twin-a", "");
  CHECK(stat("twin-a", a.version).unchanged);
  CHECK(s.json_gets("twin-a", 304) == 1);

  const ModelStat b = stat("twin-b", a.version);
  CHECK_FALSE(b.unchanged);
  CHECK(b.model.weight_specs == a.model.weight_specs);
  CHECK(b.version != a.version);
  CHECK(s.json_gets("twin-b", 304) == 0);
  CHECK(s.json_gets("twin-b", 200) == 1);
}

// The guard of docs/http.md: a Last-Modified that was not at least a second
// older than the answer's Date is never sent back (a write in that second
// would keep it, and If-Modified-Since would say 304 for the new bytes).
// A model.json dated in the future is such a case, whatever the clock does
// while the test runs: the revalidation is a plain GET, answered 200, and
// the same bytes still serve the snapshot.
TEST_CASE("python http.server: a Last-Modified not firmly past is never sent back") {
  PythonHttp& s = PythonHttp::get();
  const ModelArtifacts model = float_model(ramp(kValues, 6.0f));
  s.put("unfirm", model);
  s.age_model_json("unfirm", std::chrono::seconds(-30));
  const fs::path dir = new_cache<PythonHttp>("unfirm");
  CHECK(weight_bytes(load(s.url("unfirm"), options(dir))) == weight_bytes(model));
  const ModelArtifacts second = load(s.url("unfirm"), options(dir));
  CHECK(weight_bytes(second) == weight_bytes(model));
  REQUIRE(second.weight_data->size() == 4);
  CHECK(second.weight_data->front().label().rfind((dir / "blobs").string(), 0) == 0);
  CHECK(s.json_gets("unfirm", 304) == 0);
  CHECK(s.json_gets("unfirm", 200) == 3);  // stat and load, then the revalidation
  CHECK(s.weight_gets("unfirm") == 4);
}

// The token is the http plugin's to read back, and only for its own URL.
// Sent to twin-b, twin-a's Last-Modified would be answered 304 (twin-b's
// model.json is older), though its bytes were never read: the token of
// another URL sends no validator, and the answer is a full one, a 200.
TEST_CASE("python http.server: a known version made for another URL sends no validator") {
  PythonHttp& s = PythonHttp::get();
  const ModelArtifacts model = float_model(ramp(kValues, 7.0f));
  s.put("twin-a", model);
  s.put("twin-b", model);
  s.age_model_json("twin-a", std::chrono::seconds(20));
  s.age_model_json("twin-b", std::chrono::seconds(40));
  auto stat = [&](const std::string& name, const std::string& known) {
    CallContext c;
    c.shallow_stat = true;
    c.known_version = known;
    return registry().open(s.url(name))->stat(c);
  };
  const ModelStat a = stat("twin-a", "");
  CHECK(stat("twin-a", a.version).unchanged);
  CHECK(s.json_gets("twin-a", 304) == 1);

  const ModelStat b = stat("twin-b", a.version);
  CHECK_FALSE(b.unchanged);
  CHECK(b.model.weight_specs == a.model.weight_specs);
  CHECK(b.version != a.version);
  CHECK(s.json_gets("twin-b", 304) == 0);
  CHECK(s.json_gets("twin-b", 200) == 1);
}
