// file:// through the real loader: the plugin is found in the build tree's
// plugin folder and loaded by stowage::Registry, never linked in.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <rapidjson/document.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <boost/dll/library_info.hpp>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "plugin_test_util.hpp"
#include "stowage/error.hpp"
#include "stowage/management.hpp"
#include "stowage/model_json.hpp"
#include "stowage/registry.hpp"
#include "stowage/weights.hpp"
#include "test_files.hpp"

namespace fs = std::filesystem;
using namespace stowage;
using testing::error_of;
using testing::float_bytes;
using testing::float_model;
using testing::ramp;
using testing::read_file;
using testing::weight_bytes;
using testing::write_file;

using testing::registry;
namespace {

class TempDir : public testing::TempDir {
 public:
  TempDir() : testing::TempDir("stowage-file-test") {}
};

// Runs a test in another working directory.
class InDir {
 public:
  explicit InDir(const fs::path& dir) : old_(fs::current_path()) { fs::current_path(dir); }
  ~InDir() { fs::current_path(old_); }

 private:
  fs::path old_;
};

std::set<std::string> names_in(const fs::path& dir) {
  std::set<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.insert(e.path().filename().string());
  return out;
}

bool has_temp_folder(const fs::path& dir) {
  for (const auto& name : names_in(dir)) {
    if (name.find(".stowage-tmp-") != std::string::npos) return true;
  }
  return false;
}

SaveResult save(const std::string& url, const ModelArtifacts& a, const std::string& options = "{}",
                const CallContext& call = {}) {
  return registry().open(url, options)->save(a, call);
}
ModelArtifacts load(const std::string& url, const CallContext& call = {}) {
  return registry().open(url)->load(call);
}

// The mapping of /proc/self/maps that holds p, with its file name.
std::string mapping_of(const void* p) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  auto addr = reinterpret_cast<uintptr_t>(p);
  while (std::getline(maps, line)) {
    uintptr_t start = 0, end = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx", &start, &end) != 2) continue;
    if (addr < start || addr >= end) continue;
    std::istringstream fields(line);
    std::string skip;
    for (int i = 0; i < 5; ++i) fields >> skip;
    std::string name;
    std::getline(fields >> std::ws, name);
    return name;
  }
  return {};
}

}  // namespace

TEST_CASE("save writes tfjs-node's layout: model.json and weights.bin") {
  TempDir tmp;
  ModelArtifacts a = float_model(ramp(6, 1.0f), {4, 10});
  // Without digests model.json is byte for byte what tfjs-node writes.
  SaveResult r = save(tmp.url("m"), a, R"({"integrity": "none"})");
  CHECK(names_in(tmp.path() / "m") == std::set<std::string>{"model.json", "weights.bin"});
  CHECK(read_file(tmp.path() / "m" / "weights.bin") == weight_bytes(a));
  CHECK(read_file(tmp.path() / "m" / "model.json") ==
        R"({"modelTopology":{"class_name":"Sequential","config":{"name":"t","layers":[]}},)"
        R"("weightsManifest":[{"paths":["weights.bin"],"weights":[{"name":"dense/kernel",)"
        R"("shape":[6],"dtype":"float32"}]}],"format":"layers-model",)"
        R"("generatedBy":"TensorFlow.js tfjs-layers v4.22.0","convertedBy":null})");
  CHECK(r.model_artifacts_info.weight_data_bytes == 24u);
  CHECK_FALSE(r.responses.has_value());
  CHECK_FALSE(has_temp_folder(tmp.path()));
}

TEST_CASE("round trip: bytes, specs and fields come back identical") {
  TempDir tmp;
  ModelArtifacts a = float_model(ramp(100, -3.0f), {1, 7, 200});
  a.user_defined_metadata = R"({"labels":["a","b"]})";
  a.training_config = R"({"loss":"mse","optimizer_config":{"class_name":"SGD"}})";
  save(tmp.url("m"), a);
  for (const std::string& url : {tmp.url("m/model.json"), tmp.url("m")}) {
    CAPTURE(url);
    ModelArtifacts b = load(url);
    CHECK(weight_bytes(b) == weight_bytes(a));
    CHECK(b.weight_specs == a.weight_specs);
    CHECK(b.model_topology == a.model_topology);
    CHECK(b.user_defined_metadata == a.user_defined_metadata);
    CHECK(b.training_config == a.training_config);
    CHECK(b.format == a.format);
    CHECK(b.converted_by == a.converted_by);
    REQUIRE(b.weight_data->size() == 1);
    CHECK(b.weight_data->front().label() == (tmp.path() / "m" / "weights.bin").string());
  }
}

TEST_CASE("sharded layout: a tensor spans shards, input buffers cross shard boundaries") {
  TempDir tmp;
  ModelArtifacts a = float_model(ramp(6, 2.0f), {7, 16});  // 24 bytes in buffers of 7, 9, 8
  save(tmp.url("m"), a, R"({"shard_size": 10})");
  const fs::path m = tmp.path() / "m";
  CHECK(names_in(m) == std::set<std::string>{"model.json", "group1-shard1of3.bin",
                                             "group1-shard2of3.bin", "group1-shard3of3.bin"});
  CHECK(fs::file_size(m / "group1-shard1of3.bin") == 10);
  CHECK(fs::file_size(m / "group1-shard2of3.bin") == 10);
  CHECK(fs::file_size(m / "group1-shard3of3.bin") == 4);
  std::string json = read_file(m / "model.json");
  CHECK(json.find(R"("paths":["group1-shard1of3.bin","group1-shard2of3.bin",)"
                  R"("group1-shard3of3.bin"])") != std::string::npos);

  ModelArtifacts b = load(tmp.url("m/model.json"));
  REQUIRE(b.weights_manifest.has_value());
  REQUIRE(b.weight_data->size() == 3);
  CHECK((*b.weight_data)[1].label() == (m / "group1-shard2of3.bin").string());
  CHECK(weight_bytes(b) == weight_bytes(a));
  std::vector<Tensor> t = decode_weights(*b.weight_data, *b.weight_specs);
  REQUIRE(t.size() == 1);
  CHECK(t[0].floats == ramp(6, 2.0f));
}

TEST_CASE("empty weights: no weight file and no paths") {
  TempDir tmp;
  ModelArtifacts a = float_model({});
  a.weight_specs = std::vector<WeightSpec>{};
  save(tmp.url("m"), a);
  CHECK(names_in(tmp.path() / "m") == std::set<std::string>{"model.json"});
  CHECK(read_file(tmp.path() / "m" / "model.json").find(R"("weightsManifest":[{"paths":[],)") !=
        std::string::npos);
  ModelArtifacts b = load(tmp.url("m"));
  CHECK(weight_bytes(b).empty());
}

TEST_CASE("overwrite replaces the whole model and leaves nothing behind") {
  TempDir tmp;
  save(tmp.url("m"), float_model(ramp(30, 0.0f)), R"({"shard_size": 40})");
  CHECK(names_in(tmp.path() / "m").size() == 4);
  ModelArtifacts b = float_model(ramp(5, 9.0f));
  save(tmp.url("m"), b);
  CHECK(names_in(tmp.path() / "m") == std::set<std::string>{"model.json", "weights.bin"});
  CHECK(weight_bytes(load(tmp.url("m"))) == weight_bytes(b));
  CHECK(names_in(tmp.path()) == std::set<std::string>{"m"});
}

TEST_CASE("a save cancelled after its first shard leaves the old model exactly as it was") {
  TempDir tmp;
  ModelArtifacts old_model = float_model(ramp(40, 1.0f));
  save(tmp.url("m"), old_model, R"({"shard_size": 64})");
  const std::string old_json = read_file(tmp.path() / "m" / "model.json");
  const std::set<std::string> old_names = names_in(tmp.path() / "m");

  std::atomic<bool> stop{false};
  std::atomic<uint64_t> reports{0};
  CallContext call;
  call.on_progress = [&](uint64_t done, uint64_t) {
    ++reports;
    if (done >= 64) stop = true;
  };
  call.is_cancelled = [&] { return stop.load(); };
  Error e = error_of(
      [&] { save(tmp.url("m"), float_model(ramp(80, 5.0f)), R"({"shard_size": 64})", call); });
  CHECK(e.code() == ErrorCode::kCancelled);
  CHECK(reports > 0);
  CHECK(names_in(tmp.path() / "m") == old_names);
  CHECK(read_file(tmp.path() / "m" / "model.json") == old_json);
  CHECK(weight_bytes(load(tmp.url("m"))) == weight_bytes(old_model));
  CHECK_FALSE(has_temp_folder(tmp.path()));
}

TEST_CASE("a saver killed mid-save leaves the old model; the next save clears its debris") {
  TempDir tmp;
  ModelArtifacts old_model = float_model(ramp(40, 1.0f));
  save(tmp.url("m"), old_model, R"({"shard_size": 64})");
  const std::string old_json = read_file(tmp.path() / "m" / "model.json");

  int ready[2];
  REQUIRE(::pipe(ready) == 0);
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    CallContext call;
    call.on_progress = [&](uint64_t done, uint64_t) {
      if (done >= 64) {  // the first shard is written: stop here until killed
        char c = 1;
        (void)!::write(ready[1], &c, 1);
        for (;;) ::pause();
      }
    };
    try {
      save(tmp.url("m"), float_model(ramp(80, 5.0f)), R"({"shard_size": 64})", call);
    } catch (...) {
    }
    ::_exit(1);
  }
  char c = 0;
  REQUIRE(::read(ready[0], &c, 1) == 1);
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  ::close(ready[0]);
  ::close(ready[1]);

  CHECK(has_temp_folder(tmp.path()));  // the dead saver's work
  CHECK(read_file(tmp.path() / "m" / "model.json") == old_json);
  CHECK(weight_bytes(load(tmp.url("m"))) == weight_bytes(old_model));
  ModelArtifacts next = float_model(ramp(3, 2.0f));
  save(tmp.url("m"), next);
  CHECK_FALSE(has_temp_folder(tmp.path()));
  CHECK(weight_bytes(load(tmp.url("m"))) == weight_bytes(next));
}

TEST_CASE("a save whose deadline has passed publishes nothing") {
  TempDir tmp;
  CallContext call;
  call.deadline = std::chrono::system_clock::now() - std::chrono::seconds(1);
  Error e = error_of([&] { save(tmp.url("m"), float_model(ramp(4, 0.0f)), "{}", call); });
  CHECK(e.code() == ErrorCode::kDeadlineExceeded);
  CHECK_FALSE(fs::exists(tmp.path() / "m"));
  CHECK(names_in(tmp.path()).empty());
}

TEST_CASE("progress ends with done == total on save and load") {
  TempDir tmp;
  std::vector<std::pair<uint64_t, uint64_t>> seen;
  CallContext call;
  call.on_progress = [&](uint64_t done, uint64_t total) { seen.emplace_back(done, total); };
  save(tmp.url("m"), float_model(ramp(50, 0.0f)), R"({"shard_size": 64})", call);
  REQUIRE_FALSE(seen.empty());
  CHECK(seen.back().first == seen.back().second);
  CHECK(seen.back().second > 200);  // 200 weight bytes and model.json
  seen.clear();
  load(tmp.url("m"), call);
  REQUIRE_FALSE(seen.empty());
  CHECK(seen.back() == std::pair<uint64_t, uint64_t>{200, 200});
}

TEST_CASE("concurrent loads during repeated saves see a complete old or new model") {
  TempDir tmp;
  const ModelArtifacts a = float_model(ramp(3000, 1.0f));   // 12000 bytes in 3 shards
  const ModelArtifacts b = float_model(ramp(1000, -7.0f));  // one weights.bin
  const std::string a_bytes = weight_bytes(a);
  const std::string b_bytes = weight_bytes(b);
  save(tmp.url("m"), a, R"({"shard_size": 5000, "durable": false})");

  std::atomic<bool> done{false};
  std::atomic<int> loads{0};
  std::atomic<bool> failed{false};
  std::string failure;  // written by the reader before it sets `failed`
  std::thread reader([&] {
    auto handler = registry().open(tmp.url("m/model.json"));
    while (!done.load() && !failed.load()) {
      try {
        ModelArtifacts got = handler->load();
        std::string bytes = weight_bytes(got);
        bool is_a =
            got.weight_specs == a.weight_specs && bytes == a_bytes && got.weight_data->size() == 3;
        bool is_b =
            got.weight_specs == b.weight_specs && bytes == b_bytes && got.weight_data->size() == 1;
        if (!is_a && !is_b) {
          failure = "a load saw a mix of two models";
          failed = true;
        }
        ++loads;
      } catch (const std::exception& e) {
        failure = std::string("a load failed: ") + e.what();
        failed = true;
      }
    }
  });
  for (int i = 0; i < 40 && !failed.load(); ++i) {
    if (i % 2 == 0) {
      save(tmp.url("m"), b, R"({"durable": false})");
    } else {
      save(tmp.url("m"), a, R"({"shard_size": 5000, "durable": false})");
    }
  }
  while (loads.load() < 5 && !failed.load()) std::this_thread::yield();
  done = true;
  reader.join();
  CHECK(failure == "");
  CHECK(loads.load() >= 5);
  CHECK_FALSE(has_temp_folder(tmp.path()));
}

TEST_CASE("files that are not part of the model survive a save; foreign folders refuse it") {
  TempDir tmp;
  const fs::path m = tmp.path() / "m";
  save(tmp.url("m"), float_model(ramp(20, 0.0f)), R"({"shard_size": 32})");
  write_file(m / "notes.txt", "keep me");
  fs::create_symlink("notes.txt", m / "link-to-notes");
  struct stat before;
  REQUIRE(::stat((m / "notes.txt").c_str(), &before) == 0);

  ModelArtifacts b = float_model(ramp(3, 4.0f));
  save(tmp.url("m"), b);
  CHECK(names_in(m) ==
        std::set<std::string>{"model.json", "weights.bin", "notes.txt", "link-to-notes"});
  CHECK(read_file(m / "notes.txt") == "keep me");
  CHECK(fs::read_symlink(m / "link-to-notes") == "notes.txt");
  struct stat after;
  REQUIRE(::stat((m / "notes.txt").c_str(), &after) == 0);
  CHECK(after.st_ino == before.st_ino);  // the same file, not a copy

  fs::create_directory(m / "photos");
  write_file(m / "photos" / "cat.jpg", "meow");
  Error e = error_of([&] { save(tmp.url("m"), float_model(ramp(8, 1.0f))); });
  CHECK(e.code() == ErrorCode::kAlreadyExists);
  CHECK(std::string(e.what()).find((m / "photos").string()) != std::string::npos);
  CHECK(weight_bytes(load(tmp.url("m"))) == weight_bytes(b));
  CHECK(read_file(m / "photos" / "cat.jpg") == "meow");
  CHECK_FALSE(has_temp_folder(tmp.path()));
}

TEST_CASE("a subfolder of the old model's weights is replaced, unless it holds more") {
  TempDir tmp;
  const fs::path m = tmp.path() / "m";
  save(tmp.url("m"), float_model(ramp(4, 1.0f)));
  fs::create_directory(m / "sub");
  fs::rename(m / "weights.bin", m / "sub" / "w.bin");
  std::string json = read_file(m / "model.json");
  json.replace(json.find("\"weights.bin\""), 13, "\"sub/w.bin\"");
  write_file(m / "model.json", json);
  REQUIRE(load(tmp.url("m")).weight_data->front().label() == (m / "sub" / "w.bin").string());

  write_file(m / "sub" / "extra.txt", "mine");
  Error e = error_of([&] { save(tmp.url("m"), float_model(ramp(2, 0.0f))); });
  CHECK(e.code() == ErrorCode::kAlreadyExists);
  CHECK(read_file(m / "sub" / "extra.txt") == "mine");

  fs::remove(m / "sub" / "extra.txt");
  save(tmp.url("m"), float_model(ramp(2, 0.0f)));
  CHECK(names_in(m) == std::set<std::string>{"model.json", "weights.bin"});
}

TEST_CASE("a save into a folder that does not hold a model keeps its files") {
  TempDir tmp;
  fs::create_directory(tmp.path() / "m");
  write_file(tmp.path() / "m" / "README", "mine");
  save(tmp.url("m"), float_model(ramp(2, 0.0f)));
  CHECK(names_in(tmp.path() / "m") == std::set<std::string>{"README", "model.json", "weights.bin"});
}

TEST_CASE("temporary folders of dead saves are deleted; a live save's folder is not") {
  TempDir tmp;
  const fs::path dead = tmp.path() / ".m.stowage-tmp-AbC123";
  const fs::path live = tmp.path() / ".m.stowage-tmp-XyZ789";
  fs::create_directory(dead);
  write_file(dead / "weights.bin", "partial");
  fs::create_directory(live);
  int fd = ::open(live.c_str(), O_RDONLY | O_DIRECTORY);
  REQUIRE(fd >= 0);
  REQUIRE(::flock(fd, LOCK_EX) == 0);  // as a running save holds it
  save(tmp.url("m"), float_model(ramp(2, 0.0f)));
  CHECK_FALSE(fs::exists(dead));
  CHECK(fs::exists(live));
  CHECK(list_models(tmp.url(), registry()).size() == 1);  // list skips temporary folders
  ::close(fd);
}

TEST_CASE("URL forms: relative, ./relative, absolute, spaces, non-ASCII, no percent-decoding") {
  TempDir tmp;
  InDir cwd(tmp.path());
  ModelArtifacts a = float_model(ramp(3, 1.0f));

  save("file://rel/dir", a);
  CHECK(fs::exists(tmp.path() / "rel" / "dir" / "model.json"));
  CHECK(weight_bytes(load("file://./rel/dir/model.json")) == weight_bytes(a));
  CHECK(weight_bytes(load("file://" + (tmp.path() / "rel/dir/model.json").string())) ==
        weight_bytes(a));

  save("file://./dot/rel", a);
  CHECK(fs::exists(tmp.path() / "dot" / "rel" / "weights.bin"));

  const std::string odd = "my models/модель ü 模型";
  save("file://" + (tmp.path() / odd).string(), a);
  CHECK(fs::exists(tmp.path() / odd / "model.json"));
  ModelArtifacts b = load("file://" + odd + "/model.json");
  CHECK(weight_bytes(b) == weight_bytes(a));
  CHECK(b.weight_data->front().label() == (tmp.path() / odd / "weights.bin").string());

  save("file://a%20b", a);
  CHECK(fs::exists(tmp.path() / "a%20b" / "model.json"));
  CHECK_FALSE(fs::exists(tmp.path() / "a b"));

  save("file://nested/m/model.json", a);  // a model.json path saves into its folder
  CHECK(names_in(tmp.path() / "nested" / "m") ==
        std::set<std::string>{"model.json", "weights.bin"});
}

TEST_CASE("a path that exists as a file gives TF.js's error") {
  TempDir tmp;
  write_file(tmp.path() / "f", "x");
  Error e = error_of([&] { save(tmp.url("f"), float_model(ramp(2, 0.0f))); });
  CHECK(e.code() == ErrorCode::kAlreadyExists);
  CHECK(std::string(e.what()) ==
        "Path " + (tmp.path() / "f").string() +
            " exists as a file. The path must be nonexistent or point to a directory.");
  Error inner = error_of([&] { save(tmp.url("f/sub"), float_model(ramp(2, 0.0f))); });
  CHECK(inner.code() == ErrorCode::kAlreadyExists);
  CHECK(std::string(inner.what()).find("exists as a file") != std::string::npos);
}

TEST_CASE("missing model.json and missing shards give TF.js's messages") {
  TempDir tmp;
  Error missing = error_of([&] { load(tmp.url("nope/model.json")); });
  CHECK(missing.code() == ErrorCode::kNotFound);
  CHECK(std::string(missing.what()) ==
        "Path " + (tmp.path() / "nope/model.json").string() + " does not exist: loading failed");

  save(tmp.url("m"), float_model(ramp(20, 0.0f)), R"({"shard_size": 32})");
  fs::remove(tmp.path() / "m" / "group1-shard2of3.bin");
  Error shard = error_of([&] { load(tmp.url("m/model.json")); });
  CHECK(shard.code() == ErrorCode::kDataLoss);
  CHECK(std::string(shard.what()) == "Weight file " +
                                         (tmp.path() / "m/group1-shard2of3.bin").string() +
                                         " does not exist: loading failed");
}

TEST_CASE("weight files that are symlinks: inside the folder load, outside are refused") {
  TempDir tmp;
  const fs::path m = tmp.path() / "m";
  ModelArtifacts a = float_model(ramp(4, 1.0f));
  save(tmp.url("m"), a);

  fs::create_directory(m / "data");
  fs::rename(m / "weights.bin", m / "data" / "real.bin");
  fs::create_symlink("data/real.bin", m / "weights.bin");
  CHECK(weight_bytes(load(tmp.url("m"))) == weight_bytes(a));

  fs::rename(m / "data" / "real.bin", tmp.path() / "outside.bin");
  fs::remove(m / "weights.bin");
  fs::create_symlink("../outside.bin", m / "weights.bin");
  Error e = error_of([&] { load(tmp.url("m")); });
  CHECK(e.code() == ErrorCode::kInvalidArgument);
  CHECK(std::string(e.what()).find("outside the model folder") != std::string::npos);

  // A folder on the way that leads outside is refused too.
  fs::create_directory(tmp.path() / "elsewhere");
  fs::copy_file(tmp.path() / "outside.bin", tmp.path() / "elsewhere" / "w.bin");
  fs::create_symlink("../elsewhere", m / "sub");
  std::string json = read_file(m / "model.json");
  json.replace(json.find("\"weights.bin\""), 13, "\"sub/w.bin\"");
  write_file(m / "model.json", json);
  Error via_folder = error_of([&] { load(tmp.url("m")); });
  CHECK(via_folder.code() == ErrorCode::kInvalidArgument);
  CHECK(std::string(via_folder.what()).find("outside the model folder") != std::string::npos);
}

TEST_CASE("weight paths that leave the model folder are refused") {
  TempDir tmp;
  const fs::path m = tmp.path() / "m";
  save(tmp.url("m"), float_model(ramp(4, 1.0f)));
  fs::copy_file(m / "weights.bin", tmp.path() / "secret.bin");
  std::string json = read_file(m / "model.json");
  for (std::string path : {"../secret.bin", "/etc/passwd", "a/../../secret.bin"}) {
    CAPTURE(path);
    std::string bad = json;
    bad.replace(bad.find("\"weights.bin\""), 13, "\"" + path + "\"");
    write_file(m / "model.json", bad);
    CHECK(error_of([&] { load(tmp.url("m")); }).code() == ErrorCode::kInvalidArgument);
  }
}

TEST_CASE("list finds every model under a folder; remove deletes exactly one model") {
  TempDir tmp;
  const fs::path root = tmp.path() / "root";
  save("file://" + (root / "a").string(), float_model(ramp(4, 0.0f)));
  save("file://" + (root / "b" / "c").string(), float_model(ramp(10, 0.0f)),
       R"({"shard_size": 16})");
  write_file(root / "x.txt", "not a model");

  std::vector<ListedModel> models = list_models("file://" + root.string(), registry());
  REQUIRE(models.size() == 2);
  CHECK(models[0].url == "file://" + (root / "a" / "model.json").string());
  CHECK(models[1].url == "file://" + (root / "b" / "c" / "model.json").string());
  CHECK(models[0].info.weight_data_bytes == 16u);
  CHECK(models[1].info.weight_data_bytes == 40u);
  CHECK(models[1].info.model_topology_bytes == float_model({}).model_topology->size());
  struct stat st;
  REQUIRE(::stat((root / "a" / "model.json").c_str(), &st) == 0);
  auto mtime_ms = std::chrono::milliseconds(static_cast<int64_t>(st.st_mtim.tv_sec) * 1000 +
                                            st.st_mtim.tv_nsec / 1000000);
  CHECK(std::chrono::duration_cast<std::chrono::milliseconds>(
            models[0].info.date_saved.time_since_epoch()) == mtime_ms);

  // Listed URLs are what load and remove take.
  CHECK(weight_bytes(load(models[1].url)).size() == 40);
  CHECK(list_models(models[0].url, registry()).size() == 1);
  CHECK(list_models(tmp.url("missing"), registry()).empty());

  write_file(root / "b" / "c" / "keep.txt", "mine");
  ModelArtifactsInfo removed = remove_model(models[1].url, registry());
  CHECK(removed.weight_data_bytes == 40u);
  CHECK(names_in(root / "b" / "c") == std::set<std::string>{"keep.txt"});

  remove_model("file://" + (root / "a").string(), registry());
  CHECK_FALSE(fs::exists(root / "a"));  // emptied, so removed
  CHECK(list_models("file://" + root.string(), registry()).empty());

  Error e = error_of([&] { remove_model("file://" + (root / "a").string(), registry()); });
  CHECK(e.code() == ErrorCode::kNotFound);
  Error none = error_of([&] { remove_model("file://" + (root / "b").string(), registry()); });
  CHECK(none.code() == ErrorCode::kNotFound);
}

TEST_CASE("loads are zero copy: each weight buffer lies in a mapping of its file") {
  TempDir tmp;
  save(tmp.url("m"), float_model(ramp(3000, 1.0f)), R"({"shard_size": 5000})");
  for (int round = 0; round < 2; ++round) {
    ModelArtifacts b = load(tmp.url("m/model.json"));
    REQUIRE(b.weight_data->size() == 3);
    for (const Buffer& buf : *b.weight_data) {
      CAPTURE(buf.label());
      CHECK(mapping_of(buf.data()) == buf.label());
    }
  }
}

// KiB of the mapping holding p that are resident in this process: a save
// that copies file to file in the kernel never faults the source in.
long resident_kib(const void* p) {
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  auto addr = reinterpret_cast<uintptr_t>(p);
  bool inside = false;
  while (std::getline(smaps, line)) {
    uintptr_t start = 0, end = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &start, &end) == 2 && line.find(':') > 8) {
      inside = addr >= start && addr < end;
    } else if (inside && line.starts_with("Rss:")) {
      return std::atol(line.c_str() + 4);
    }
  }
  return -1;
}

TEST_CASE("saving a model loaded from file:// copies file to file, not through the mapping") {
  TempDir tmp;
  constexpr size_t kFloats = 2u << 20;  // 8 MiB of weights
  ModelArtifacts a = float_model(ramp(kFloats, 0.5f));
  // Without digests on either side: checking them on load or recording them
  // on save reads every byte through the mapping.
  save(tmp.url("src"), a, R"({"shard_size": 3000000, "integrity": "none"})");
  ModelArtifacts loaded = load(tmp.url("src"));
  save(tmp.url("dst"), loaded, R"({"durable": false, "shard_size": 1000000, "integrity": "none"})");
  REQUIRE(loaded.weight_data->size() == 3);
  for (const Buffer& b : *loaded.weight_data) {
    CAPTURE(b.label());
    const long kib = resident_kib(b.data());
    CHECK(kib >= 0);
    CHECK(kib < static_cast<long>(b.size() / 1024 / 2));  // written out of the mapping: all of it
  }
  CHECK(weight_bytes(load(tmp.url("dst"))) == weight_bytes(a));
  save(tmp.url("one"), loaded);  // one weights.bin from three source files
  CHECK(read_file(tmp.path() / "one" / "weights.bin") == weight_bytes(a));
}

TEST_CASE("a loaded model whose files were replaced since still saves its own bytes") {
  TempDir tmp;
  ModelArtifacts first = float_model(ramp(5000, 1.0f));
  save(tmp.url("m"), first, R"({"shard_size": 4096})");
  ModelArtifacts loaded = load(tmp.url("m"));
  // Same names, new files: the paths the mappings came from now hold other bytes.
  save(tmp.url("m"), float_model(ramp(5000, -7.0f)), R"({"shard_size": 4096})");
  save(tmp.url("copy"), loaded);
  CHECK(read_file(tmp.path() / "copy" / "weights.bin") == weight_bytes(first));
}

TEST_CASE("durable: false saves and loads the same model") {
  TempDir tmp;
  ModelArtifacts a = float_model(ramp(64, 3.0f));
  save(tmp.url("m"), a, R"({"durable": false, "shard_size": 100})");
  CHECK(weight_bytes(load(tmp.url("m"))) == weight_bytes(a));
}

TEST_CASE("options: unknown keys and wrong types are refused at open") {
  Error unknown = error_of([] { registry().open("file:///tmp/x", R"({"shard_sise": 1})"); });
  CHECK(unknown.code() == ErrorCode::kInvalidArgument);
  CHECK(std::string(unknown.what()).find("\"shard_sise\"") != std::string::npos);
  CHECK(std::string(unknown.what()).find("file:///tmp/x") != std::string::npos);
  Error type = error_of([] { registry().open("file:///tmp/x", R"({"durable": "yes"})"); });
  CHECK(type.code() == ErrorCode::kInvalidArgument);
  CHECK(std::string(type.what()).find("\"durable\"") != std::string::npos);
  Error size = error_of([] { registry().open("file:///tmp/x", R"({"shard_size": -4})"); });
  CHECK(size.code() == ErrorCode::kInvalidArgument);
}

TEST_CASE("a save whose weight bytes do not match the specs is refused") {
  TempDir tmp;
  ModelArtifacts a = float_model(ramp(4, 0.0f));
  a.weight_data->pop_back();
  a.weight_data->push_back(Buffer::copy_of(float_bytes(ramp(3, 0.0f))));
  Error e = error_of([&] { save(tmp.url("m"), a); });
  CHECK(e.code() == ErrorCode::kInvalidArgument);
  CHECK_FALSE(fs::exists(tmp.path() / "m"));
}

TEST_CASE("the plugin exports only its entry point") {
  boost::dll::library_info info(fs::path(STOWAGE_PLUGIN_BUILD_DIR) / "libstowage_file.so");
  std::vector<std::string> symbols = info.symbols();
  CHECK(symbols == std::vector<std::string>{"stowage_plugin_entry_v1"});
}

TEST_CASE("the bad-input corpus fails through file:// with its named cause") {
  const fs::path corpus = fs::path(STOWAGE_SOURCE_DIR) / "tests" / "data" / "bad" / "format";
  rapidjson::Document cases;
  std::string text = read_file(corpus / "cases.json");
  cases.Parse(text.c_str(), text.size());
  REQUIRE(cases.IsArray());
  REQUIRE(cases.Size() > 0);
  for (const auto& c : cases.GetArray()) {
    std::string name = c["name"].GetString();
    std::string code = c["code"].GetString();
    CAPTURE(name);
    Error e = error_of([&] { load("file://" + (corpus / name / "model.json").string()); });
    CHECK(error_code_name(e.code()) == code);
    for (const auto& part : c["contains"].GetArray()) {
      std::string want = part.GetString();
      CAPTURE(want);
      CHECK(std::string(e.what()).find(want) != std::string::npos);
    }
  }
}

namespace {

ModelStat stat(const std::string& url) { return registry().open(url)->stat(); }

// Moves a file's mtime one second on: what a later write would show. Kernel
// timestamps tick every few milliseconds, so a rewrite within the test's
// first tick would otherwise look like the file it replaced.
void later_mtime(const fs::path& path) {
  struct stat st;
  REQUIRE(::stat(path.c_str(), &st) == 0);
  struct timespec times[2] = {st.st_atim, st.st_mtim};
  times[1].tv_sec += 1;
  REQUIRE(::utimensat(AT_FDCWD, path.c_str(), times, 0) == 0);
}

ino_t inode_of(const fs::path& path) {
  struct stat st;
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_ino;
}

}  // namespace

TEST_CASE("stat gives model.json, the info load gives and a stable version, reading no weights") {
  TempDir tmp;
  ModelArtifacts a = float_model(ramp(20, 0.0f), {4, 10});
  a.user_defined_metadata = R"({"k":1})";
  save(tmp.url("m"), a, R"({"shard_size": 32})");
  ModelArtifacts loaded = load(tmp.url("m"));
  const ModelArtifactsInfo expected = artifacts_info(loaded);
  for (const std::string& url : {tmp.url("m"), tmp.url("m/model.json")}) {
    CAPTURE(url);
    ModelStat s = stat(url);
    CHECK_FALSE(s.model.weight_data.has_value());
    CHECK(s.model.weight_specs == loaded.weight_specs);
    REQUIRE(s.model.weights_manifest.has_value());
    CHECK((*s.model.weights_manifest)[0].paths == (*loaded.weights_manifest)[0].paths);
    CHECK(s.model.model_topology == loaded.model_topology);
    CHECK(s.model.user_defined_metadata == loaded.user_defined_metadata);
    CHECK(s.model.format == loaded.format);
    CHECK(s.info.weight_data_bytes == std::optional<uint64_t>(80));
    CHECK(s.info.model_topology_bytes == expected.model_topology_bytes);
    CHECK(s.info.weight_specs_bytes == expected.weight_specs_bytes);
    CHECK(s.info.model_topology_type == expected.model_topology_type);
    CHECK(s.version.size() == 16);
    CHECK(stat(url).version == s.version);
  }
  CHECK(stat(tmp.url("m")).version == stat(tmp.url("m/model.json")).version);
}

TEST_CASE("stat's version changes with a weight file rewritten in place, model.json, a save") {
  TempDir tmp;
  const fs::path m = tmp.path() / "m";
  save(tmp.url("m"), float_model(ramp(20, 0.0f)), R"({"shard_size": 32})");
  const std::string v0 = stat(tmp.url("m")).version;

  // Other bytes of the same size in the same file: only its status tells.
  const fs::path shard = m / "group1-shard2of3.bin";
  const ino_t inode = inode_of(shard);
  std::string bytes = read_file(shard);
  for (char& c : bytes) c = static_cast<char>(~c);
  write_file(shard, bytes);
  later_mtime(shard);
  REQUIRE(inode_of(shard) == inode);
  const std::string v1 = stat(tmp.url("m")).version;
  CHECK(v1 != v0);
  CHECK(stat(tmp.url("m")).version == v1);

  std::string json = read_file(m / "model.json");
  json.replace(json.find("\"format\""), 8, "\"userDefinedMetadata\":{\"x\":2},\"format\"");
  write_file(m / "model.json", json);
  later_mtime(m / "model.json");
  ModelStat s2 = stat(tmp.url("m"));
  CHECK(s2.version != v1);
  CHECK(s2.version != v0);
  CHECK(s2.model.user_defined_metadata == std::optional<std::string>(R"({"x":2})"));

  save(tmp.url("m"), float_model(ramp(20, 0.0f)), R"({"shard_size": 32})");
  const std::string v3 = stat(tmp.url("m")).version;
  CHECK(v3 != s2.version);
  CHECK(v3 != v0);
}

TEST_CASE("stat: NOT_FOUND names the URL; missing, escaping and traversing weights as load") {
  TempDir tmp;
  const fs::path m = tmp.path() / "m";
  Error missing = error_of([&] { stat(tmp.url("nope")); });
  CHECK(missing.code() == ErrorCode::kNotFound);
  CHECK(std::string(missing.what()) == "No model at " + tmp.url("nope") + ": Path " +
                                           (tmp.path() / "nope").string() + " does not exist");
  fs::create_directory(tmp.path() / "empty");
  CHECK(error_of([&] { stat(tmp.url("empty")); }).code() == ErrorCode::kNotFound);

  save(tmp.url("m"), float_model(ramp(4, 1.0f)));
  fs::rename(m / "weights.bin", tmp.path() / "outside.bin");
  Error shard = error_of([&] { stat(tmp.url("m")); });
  CHECK(shard.code() == ErrorCode::kDataLoss);
  CHECK(std::string(shard.what()) == "Weight file " + (m / "weights.bin").string() +
                                         " does not exist: stat of " + tmp.url("m") + " failed");

  fs::create_symlink("../outside.bin", m / "weights.bin");
  Error escape = error_of([&] { stat(tmp.url("m")); });
  CHECK(escape.code() == ErrorCode::kInvalidArgument);
  CHECK(std::string(escape.what()).find("outside the model folder") != std::string::npos);

  std::string json = read_file(m / "model.json");
  json.replace(json.find("\"weights.bin\""), 13, "\"../outside.bin\"");
  write_file(m / "model.json", json);
  CHECK(error_of([&] { stat(tmp.url("m")); }).code() == ErrorCode::kInvalidArgument);
}

// ---- Streaming copies (ABI 1.1) -------------------------------------------

namespace {

// 16 KiB of float32 weights, saved in 2 KiB shards: eight files to stream.
constexpr uint64_t kStreamShard = 2048;
ModelArtifacts stream_model(float start) { return float_model(ramp(4096, start)); }

std::map<std::string, std::string> files_in(const fs::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    out[e.path().filename().string()] = read_file(e.path());
  }
  return out;
}

TransferOptions streaming_options(TransferStats& stats, uint64_t queue_bytes) {
  TransferOptions options;
  options.destination_options = R"({"shard_size":)" + std::to_string(kStreamShard) + "}";
  options.queue_bytes = queue_bytes;
  options.stats = &stats;
  return options;
}

}  // namespace

TEST_CASE("a copy file:// to file:// streams shard by shard within the queue, byte-identical") {
  TempDir tmp;
  save(tmp.url("src"), stream_model(1.0f),
       R"({"shard_size":)" + std::to_string(kStreamShard) + "}");

  TransferStats stats;
  TransferOptions options = streaming_options(stats, 3 * kStreamShard);
  copy_model(tmp.url("src"), tmp.url("streamed"), options, registry());
  CHECK(stats.streamed);
  CHECK(stats.peak_queued_bytes >= kStreamShard);
  CHECK(stats.peak_queued_bytes <= 3 * kStreamShard);

  TransferStats whole_stats;
  TransferOptions whole = streaming_options(whole_stats, 3 * kStreamShard);
  whole.streaming = false;
  copy_model(tmp.url("src"), tmp.url("whole"), whole, registry());
  CHECK_FALSE(whole_stats.streamed);
  CHECK(whole_stats.peak_queued_bytes == 16384);

  // The same files, byte for byte, as the save that held the whole model.
  const auto streamed = files_in(tmp.path() / "streamed");
  CHECK(streamed.size() == 9);  // model.json and 8 shards
  CHECK(streamed == files_in(tmp.path() / "whole"));
  CHECK(weight_bytes(load(tmp.url("streamed"))) == weight_bytes(stream_model(1.0f)));
  CHECK_FALSE(has_temp_folder(tmp.path()));
}

TEST_CASE("a streaming copy from file:// hands its mapped weight files over within the queue") {
  TempDir tmp;
  save(tmp.url("src"), stream_model(2.0f),
       R"({"shard_size":)" + std::to_string(kStreamShard) + "}");
  const std::string dst = "memory://file-stream-" + std::to_string(::getpid());
  TransferStats stats;
  TransferOptions options;
  options.queue_bytes = 2 * kStreamShard;
  options.stats = &stats;
  copy_model(tmp.url("src"), dst, options, registry());
  CHECK(stats.streamed);
  CHECK(stats.peak_queued_bytes >= kStreamShard);
  CHECK(stats.peak_queued_bytes <= 2 * kStreamShard);
  CHECK(weight_bytes(registry().open(dst)->load()) == weight_bytes(stream_model(2.0f)));
}

TEST_CASE("a streaming copy whose source comes up short leaves the old model and no debris") {
  TempDir tmp;
  // No digests: this is the size check's case (a recorded digest would
  // refuse the short shard first; host_digest_load_test covers that).
  save(tmp.url("src"), stream_model(3.0f),
       R"({"shard_size":)" + std::to_string(kStreamShard) + R"(, "integrity": "none"})");
  // The last shard loses 4 bytes: every other shard reaches the new folder
  // before the load's size check fails the stream.
  const fs::path last = tmp.path() / "src" / "group1-shard8of8.bin";
  write_file(last, read_file(last).substr(0, kStreamShard - 4));
  save(tmp.url("dst"), stream_model(-1.0f));
  const auto before = files_in(tmp.path() / "dst");

  TransferStats stats;
  TransferOptions options = streaming_options(stats, 3 * kStreamShard);
  Error e = error_of([&] { copy_model(tmp.url("src"), tmp.url("dst"), options, registry()); });
  CHECK(stats.streamed);
  CHECK(e.code() == ErrorCode::kDataLoss);
  CHECK_MESSAGE(std::string(e.what()) ==
                    "model.json at " + tmp.url("src") +
                        ": weight group 1 (1 weights) needs 16384 bytes but its 8 shard(s) hold "
                        "16380 bytes",
                e.what());
  CHECK(files_in(tmp.path() / "dst") == before);
  CHECK_FALSE(has_temp_folder(tmp.path()));
}

TEST_CASE("a streaming copy cancelled with shards written leaves the old model and no debris") {
  TempDir tmp;
  save(tmp.url("src"), stream_model(4.0f),
       R"({"shard_size":)" + std::to_string(kStreamShard) + "}");
  save(tmp.url("dst"), stream_model(-2.0f));
  const auto before = files_in(tmp.path() / "dst");

  // Cancels once the new folder holds a written shard: mid-save.
  std::atomic<bool> cancelled{false};
  auto shard_written = [&] {
    for (const auto& name : names_in(tmp.path())) {
      if (name.find(".stowage-tmp-") == std::string::npos) continue;
      if (!names_in(tmp.path() / name).empty()) return true;
    }
    return false;
  };
  TransferStats stats;
  TransferOptions options = streaming_options(stats, kStreamShard);
  options.call.is_cancelled = [&] {
    if (!cancelled && shard_written()) cancelled = true;
    return cancelled.load();
  };
  Error e = error_of([&] { copy_model(tmp.url("src"), tmp.url("dst"), options, registry()); });
  CHECK(cancelled);
  CHECK(stats.streamed);
  CHECK_MESSAGE(e.code() == ErrorCode::kCancelled, e.what());
  CHECK(files_in(tmp.path() / "dst") == before);
  CHECK_FALSE(has_temp_folder(tmp.path()));
}
