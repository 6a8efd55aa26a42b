// file:// saves with digests (option "integrity") and digest-named weight
// files (option "shard_names"), through the real loader (docs/integrity.md).
#include <doctest/doctest.h>
#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <set>

#include "plugin_test_util.hpp"
#include "stowage/digest.hpp"
#include "stowage/error.hpp"
#include "stowage/management.hpp"
#include "stowage/model_json.hpp"
#include "stowage/registry.hpp"
#include "stowage/sharding.hpp"
#include "test_files.hpp"

namespace fs = std::filesystem;
using namespace stowage;
using testing::error_of;
using testing::float_bytes;
using testing::ramp;
using testing::read_file;
using testing::weight_bytes;
using testing::write_file;

using testing::registry;
namespace {

class TempDir : public testing::TempDir {
 public:
  TempDir() : testing::TempDir("stowage-file-integrity-test") {}
};

void save(const std::string& url, const ModelArtifacts& a, const std::string& options = "{}") {
  registry().open(url, options)->save(a, CallContext{});
}
ModelArtifacts load(const std::string& url) { return registry().open(url)->load(CallContext{}); }

// kTensors float32 tensors of kFloats values each (4000 bytes: not a
// multiple of the 4096-byte shards, so a tensor may span two files); the
// tensor `changed` holds other values.
constexpr int kTensors = 16;
constexpr size_t kFloats = 1000;
constexpr const char* kShards = R"({"shard_size": 4096, "shard_names": "sha256"})";
ModelArtifacts model(int changed = -1) {
  ModelArtifacts a;
  a.model_topology = R"({"class_name":"Sequential","config":{"name":"t","layers":[]}})";
  a.format = "layers-model";
  std::vector<WeightSpec> specs;
  WeightData data;
  for (int i = 0; i < kTensors; ++i) {
    specs.push_back(WeightSpec{"t" + std::to_string(i), {kFloats}, "float32", {}, {}});
    data.push_back(Buffer::copy_of(
        float_bytes(ramp(kFloats, static_cast<float>(i) * 1000.0f + (i == changed ? 0.5f : 0)))));
  }
  a.weight_specs = std::move(specs);
  a.weight_data = std::move(data);
  return a;
}

WeightGroup group_of(const fs::path& model_json) {
  ModelArtifacts a = parse_model_json(read_file(model_json), model_json.string());
  REQUIRE(a.weights_manifest);
  REQUIRE(a.weights_manifest->size() == 1);
  return a.weights_manifest->front();
}

// Every recorded digest is the SHA-256 of its file as it is on disk.
void check_digests(const fs::path& folder) {
  WeightGroup g = group_of(folder / "model.json");
  REQUIRE(g.sha256);
  REQUIRE(g.sha256->size() == g.paths.size());
  CHECK(!g.paths.empty());
  for (size_t i = 0; i < g.paths.size(); ++i) {
    const std::string bytes = read_file(folder / g.paths[i]);
    CHECK((*g.sha256)[i] ==
          sha256_hex({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()}));
  }
}

// Weight file name -> inode: a file a save kept is the same inode, a file
// it wrote is a new one.
std::map<std::string, ino_t> weight_inodes(const fs::path& folder) {
  std::map<std::string, ino_t> out;
  for (const auto& e : fs::directory_iterator(folder)) {
    const std::string name = e.path().filename().string();
    if (!name.ends_with(".bin")) continue;
    struct stat st;
    REQUIRE(::stat(e.path().c_str(), &st) == 0);
    out[name] = st.st_ino;
  }
  return out;
}

size_t files_written(const std::map<std::string, ino_t>& before,
                     const std::map<std::string, ino_t>& after) {
  std::set<ino_t> old;
  for (const auto& [name, ino] : before) old.insert(ino);
  size_t n = 0;
  for (const auto& [name, ino] : after) n += old.count(ino) == 0 ? 1 : 0;
  return n;
}

std::set<std::string> names_of(const WeightGroup& g) {
  return std::set<std::string>(g.paths.begin(), g.paths.end());
}

std::string message(const Error& e) { return e.what(); }

}  // namespace

TEST_CASE("file:// records each weight file's SHA-256 by default, in both save forms") {
  TempDir tmp;
  save(tmp.url("array"), model(), R"({"shard_size": 4096})");
  check_digests(tmp.path() / "array");
  CHECK(group_of(tmp.path() / "array" / "model.json").paths.size() == 16);

  TransferOptions streamed;
  streamed.destination_options = R"({"shard_size": 3000})";
  streamed.queue_bytes = 8192;
  TransferStats stats;
  streamed.stats = &stats;
  copy_model(tmp.url("array"), tmp.url("streamed"), streamed, registry());
  CHECK(stats.streamed);
  check_digests(tmp.path() / "streamed");
  CHECK(group_of(tmp.path() / "streamed" / "model.json").paths.size() == 22);

  // The key comes right after "weights", as the format library writes it.
  const std::string json = read_file(tmp.path() / "array" / "model.json");
  CHECK(json.find(R"("dtype":"float32"}],"sha256":[")") != std::string::npos);
  CHECK(weight_bytes(load(tmp.url("streamed"))) == weight_bytes(model()));
}

TEST_CASE("integrity none records no digests in either save form") {
  TempDir tmp;
  save(tmp.url("a"), model(), R"({"integrity": "none", "shard_size": 4096})");
  CHECK_FALSE(group_of(tmp.path() / "a" / "model.json").sha256);
  CHECK(read_file(tmp.path() / "a" / "model.json").find("sha256") == std::string::npos);

  TransferOptions streamed;
  streamed.destination_options = R"({"integrity": "none"})";
  copy_model(tmp.url("a"), tmp.url("b"), streamed, registry());
  CHECK(read_file(tmp.path() / "b" / "model.json").find("sha256") == std::string::npos);
  CHECK(weight_bytes(load(tmp.url("b"))) == weight_bytes(model()));
}

TEST_CASE("bad integrity and shard_names values are refused at open, naming option and URL") {
  const std::string url = "file:///tmp/x";
  Error integrity = error_of([&] { registry().open(url, R"({"integrity": "md5"})"); });
  CHECK(integrity.code() == ErrorCode::kInvalidArgument);
  CHECK(message(integrity) ==
        "Option \"integrity\" for file:///tmp/x must be one of \"sha256\", "
        "\"none\", not \"md5\"");
  Error names = error_of([&] { registry().open(url, R"({"shard_names": "md5"})"); });
  CHECK(names.code() == ErrorCode::kInvalidArgument);
  CHECK(message(names) ==
        "Option \"shard_names\" for file:///tmp/x must be one of \"tfjs\", "
        "\"sha256\", not \"md5\"");
  Error both =
      error_of([&] { registry().open(url, R"({"integrity": "none", "shard_names": "sha256"})"); });
  CHECK(both.code() == ErrorCode::kInvalidArgument);
  CHECK(message(both) ==
        "Options \"integrity\": \"none\" and \"shard_names\": \"sha256\" for file:///tmp/x "
        "contradict each other: content-addressed names are the files' digests");
}

TEST_CASE("shard_names sha256: a second save with one tensor changed writes only its files") {
  TempDir tmp;
  const fs::path m = tmp.path() / "m";
  save(tmp.url("m"), model(), kShards);
  check_digests(m);
  WeightGroup first = group_of(m / "model.json");
  for (size_t i = 0; i < first.paths.size(); ++i) {
    CHECK(first.paths[i] == (*first.sha256)[i].substr(0, 16) + ".bin");
  }
  const auto before = weight_inodes(m);
  CHECK(before.size() == 16);  // 64000 bytes in 4096-byte files

  SUBCASE("array form") { save(tmp.url("m"), model(5), kShards); }
  SUBCASE("streamed from another folder") {
    save(tmp.url("src"), model(5), R"({"integrity": "none"})");
    TransferOptions options;
    options.destination_options = kShards;
    TransferStats stats;
    options.stats = &stats;
    copy_model(tmp.url("src"), tmp.url("m"), options, registry());
    CHECK(stats.streamed);
  }
  check_digests(m);
  const auto after = weight_inodes(m);
  // Tensor 5 is bytes 20000..23999: files 4 and 5 (16384..24575).
  CHECK(files_written(before, after) == 2);
  CHECK(after.size() == 16);  // the two files it no longer names went with the old model
  CHECK(names_of(group_of(m / "model.json")) == [&] {
    std::set<std::string> names;
    for (const auto& [name, ino] : after) names.insert(name);
    return names;
  }());
  CHECK(weight_bytes(load(tmp.url("m"))) == weight_bytes(model(5)));

  // The same model again writes nothing.
  save(tmp.url("m"), model(5), kShards);
  CHECK(files_written(after, weight_inodes(m)) == 0);
}

TEST_CASE("a digest-named file with other bytes is not reused: the file gets a longer name") {
  TempDir tmp;
  const fs::path m = tmp.path() / "m";
  save(tmp.url("m"), model(), kShards);
  const WeightGroup first = group_of(m / "model.json");
  const std::string victim = first.paths[3];
  std::string bytes = read_file(m / victim);
  bytes[100] ^= 1;  // the same size, one bit off
  write_file(m / victim, bytes);
  const auto before = weight_inodes(m);

  save(tmp.url("m"), model(), kShards);
  check_digests(m);
  const WeightGroup second = group_of(m / "model.json");
  CHECK(second.paths[3] == (*first.sha256)[3].substr(0, 32) + ".bin");
  CHECK_FALSE(fs::exists(m / victim));  // it was the old model's, and went with it
  CHECK(files_written(before, weight_inodes(m)) == 1);
  CHECK(weight_bytes(load(tmp.url("m"))) == weight_bytes(model()));

  // A foreign file under a digest name is not the model's: it stays, unused.
  TempDir other;
  write_file(other.path() / "n" / victim, bytes);
  save(other.url("n"), model(), kShards);
  CHECK(group_of(other.path() / "n" / "model.json").paths[3] ==
        (*first.sha256)[3].substr(0, 32) + ".bin");
  CHECK(read_file(other.path() / "n" / victim) == bytes);
  check_digests(other.path() / "n");
}

TEST_CASE("replace and remove keep the digest-named files another model file names, only those") {
  TempDir tmp;
  const fs::path m = tmp.path() / "m";
  save(tmp.url("m"), model(), kShards);
  fs::copy_file(m / "model.json", m / "other.json");  // a second model sharing every file
  const std::set<std::string> other = names_of(group_of(m / "other.json"));
  save(tmp.url("m"), model(5), kShards);
  save(tmp.url("m"), model(9), kShards);  // model(5)'s own files are nobody's now

  auto on_disk = [&] {
    std::set<std::string> names;
    for (const auto& [name, ino] : weight_inodes(m)) names.insert(name);
    return names;
  };
  std::set<std::string> live = names_of(group_of(m / "model.json"));
  live.insert(other.begin(), other.end());
  CHECK(on_disk() == live);
  CHECK(weight_bytes(load(tmp.url("m/other.json"))) == weight_bytes(model()));

  remove_model(tmp.url("m/model.json"), registry());
  CHECK(on_disk() == other);
  CHECK(weight_bytes(load(tmp.url("m/other.json"))) == weight_bytes(model()));
  remove_model(tmp.url("m/other.json"), registry());
  CHECK_FALSE(fs::exists(m));
}

// A model of 1 MiB or more held in memory is hashed on a second thread while
// its files are written (blob_store.hpp, ShardWriter::put_all): the two
// threads meet somewhere in the middle, and every file must still get its
// own digest, in order.
ModelArtifacts large_model() {
  ModelArtifacts a;
  a.model_topology = R"({"class_name":"Sequential","config":{"name":"large","layers":[]}})";
  a.weight_specs.emplace();
  a.weight_data.emplace();
  for (int i = 0; i < 24; ++i) {  // 24 x 100,000 floats: 9.6e6 bytes
    a.weight_specs->push_back(WeightSpec{"t" + std::to_string(i), {100000}, "float32", {}, {}});
    a.weight_data->push_back(Buffer::copy_of(float_bytes(ramp(100000, i * 1.0e6f))));
  }
  return a;
}

TEST_CASE("a large model's files hashed on a second thread each get their own digest, in order") {
  TempDir tmp;
  const ModelArtifacts a = large_model();
  save(tmp.url("large"), a, R"({"shard_size": 65536})");
  check_digests(tmp.path() / "large");
  const WeightGroup g = group_of(tmp.path() / "large" / "model.json");
  CHECK(g.paths.size() == 147);  // 9,600,000 / 65,536, rounded up
  CHECK(std::set<std::string>(g.sha256->begin(), g.sha256->end()).size() == g.paths.size());
  CHECK(weight_bytes(load(tmp.url("large"))) == weight_bytes(a));
}

TEST_CASE("a large save cancelled while a second thread hashes publishes nothing") {
  TempDir tmp;
  const ModelArtifacts old_model = model();
  save(tmp.url("m"), old_model, R"({"shard_size": 4096})");
  const std::string old_json = read_file(tmp.path() / "m" / "model.json");
  std::atomic<bool> stop{false};
  CallContext call;
  call.on_progress = [&](uint64_t done, uint64_t) {
    if (done >= 3 * 65536) stop = true;
  };
  call.is_cancelled = [&] { return stop.load(); };
  const Error e = error_of([&] {
    registry().open(tmp.url("m"), R"({"shard_size": 65536})")->save(large_model(), call);
  });
  CHECK(e.code() == ErrorCode::kCancelled);
  CHECK(read_file(tmp.path() / "m" / "model.json") == old_json);
  CHECK(weight_bytes(load(tmp.url("m"))) == weight_bytes(old_model));
}
