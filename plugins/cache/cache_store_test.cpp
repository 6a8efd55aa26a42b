// The cache's store on its own (no plugin, no server): keys without
// secrets, snapshots that round-trip and refuse damage, blobs published
// whole and checked, the layout's version file, LRU eviction of whole
// models that keeps shared blobs.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "cache_key_internal.hpp"
#include "cache_store_internal.hpp"
#include "stowage/artifacts.hpp"
#include "stowage/digest.hpp"
#include "stowage/error.hpp"

namespace fs = std::filesystem;
using namespace stowage;
using namespace stowage::cache;

namespace {

fs::path fresh_dir(const char* name) {
  std::string tmpl = (fs::temp_directory_path() / (std::string(name) + "-XXXXXX")).string();
  REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
  return fs::path(tmpl) / "cache";
}

std::span<const uint8_t> bytes_of(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

std::string sha(const std::string& s) { return sha256_hex(bytes_of(s)); }

Snapshot snapshot_of(const std::string& url, const std::vector<std::string>& contents) {
  Snapshot s;
  s.url = url;
  s.version = "v1";
  s.fetched_at =
      std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
  s.validated_at = s.fetched_at;
  s.artifacts_json = R"({"format":"layers-model"})";
  for (size_t i = 0; i < contents.size(); ++i) {
    s.files.push_back(
        {"group1-shard" + std::to_string(i + 1), contents[i].size(), sha(contents[i])});
  }
  return s;
}

void put_model(const CacheStore& store, const std::string& key, const Snapshot& s,
               const std::vector<std::string>& contents) {
  for (const std::string& c : contents) {
    if (!store.has_blob(sha(c), c.size())) store.put_blob(sha(c), bytes_of(c));
  }
  store.publish_snapshot(key, s);
}

void set_mtime(const fs::path& p, int seconds_ago) {
  fs::last_write_time(p, fs::file_time_type::clock::now() - std::chrono::seconds(seconds_ago));
}

}  // namespace

TEST_CASE("keys leave out credentials and signatures, and keep what names the model") {
  const std::string plain = "https://cdn.example.com/m/model.json";
  CHECK(normalise_url("HTTPS://user:pw@CDN.Example.com/m/model.json#frag") == plain);
  CHECK(normalise_url("https://cdn.example.com/m/model.json?X-Amz-Signature=abc&"
                      "X-Amz-Credential=AKIA%2F&X-Amz-Expires=60&X-Amz-Date=20260101") == plain);
  CHECK(normalise_url("https://h/m/model.json?Expires=1&Signature=x&Key-Pair-Id=K&v=2") ==
        "https://h/m/model.json?v=2");
  CHECK(normalise_url("https://h/m/model.json?sig=x&se=2026&sp=r&sv=2020&token=t&access_token=a") ==
        "https://h/m/model.json");
  // A secret the redaction rules know keeps its name with its value hidden.
  CHECK(normalise_url("https://h/m/model.json?api_key=s3cr3t&rev=7") ==
        "https://h/m/model.json?api_key=REDACTED&rev=7");
  CHECK(normalise_url("s3://bucket/m?region=eu-west-1") == "s3://bucket/m?region=eu-west-1");
  // The path's case names another object.
  CHECK(normalise_url("https://h/M/model.json") != normalise_url("https://h/m/model.json"));
  CHECK(cache_key("https://a:b@h/m/model.json?X-Amz-Signature=1") ==
        cache_key("https://h/m/model.json?X-Amz-Signature=2"));
  CHECK(cache_key("https://h/m/model.json") != cache_key("https://h/n/model.json"));
  CHECK(is_sha256_hex(cache_key(plain)));
}

TEST_CASE("a snapshot round-trips and a damaged one is refused") {
  Snapshot s = snapshot_of("https://h/m/model.json", {"abc", ""});
  s.files[1].path.reset();
  s.has_weight_data = true;
  const Snapshot back = snapshot_from_json(snapshot_to_json(s), "t.json");
  CHECK(back.url == s.url);
  CHECK(back.version == "v1");
  CHECK(back.fetched_at == s.fetched_at);
  CHECK(back.validated_at == s.validated_at);
  CHECK(back.artifacts_json == s.artifacts_json);
  REQUIRE(back.files.size() == 2);
  CHECK(back.files[0].path == s.files[0].path);
  CHECK(!back.files[1].path);
  CHECK(back.files[0].sha256 == sha("abc"));
  CHECK(back.files[0].size == 3);

  std::string text = snapshot_to_json(s);
  try {
    snapshot_from_json(text.substr(0, text.size() - 5), "models/k.json");
    FAIL("a cut snapshot was accepted");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::kDataLoss);
    CHECK(std::string(e.what()) == "Cache snapshot models/k.json is not valid: not a JSON object");
  }
  // A digest is a file name in the store: nothing but 64 hex digits passes.
  const std::string escaping = text.replace(text.find(sha("abc")), 64, "../../../../etc/passwd");
  try {
    snapshot_from_json(escaping, "models/k.json");
    FAIL("a snapshot naming a path outside the blobs was accepted");
  } catch (const Error& e) {
    CHECK(std::string(e.what()) ==
          "Cache snapshot models/k.json is not valid: a file's \"sha256\" is not 64 lowercase "
          "hex digits");
  }
}

TEST_CASE("the layout: version file, CACHEDIR.TAG, and another layout refused") {
  const fs::path dir = fresh_dir("stowage-cache-layout");
  { CacheStore store(dir); }
  std::ifstream tag(dir / "CACHEDIR.TAG");
  std::string first;
  std::getline(tag, first);
  CHECK(first == "Signature: 8a477f597d28d172789f06886806bc55");
  for (const char* sub : {"blobs/sha256", "models", "locks", "tmp"})
    CHECK(fs::is_directory(dir / sub));
  CacheStore again(dir);  // an existing cache of this layout opens

  std::ofstream(dir / "stowage-cache.json", std::ios::trunc) << "{\"layout\":2}\n";
  try {
    CacheStore newer(dir);
    FAIL("a cache of layout 2 was opened");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::kUnimplemented);
    CHECK(std::string(e.what()).find("has another layout") != std::string::npos);
    CHECK(std::string(e.what()).find("this stowage writes layout 1") != std::string::npos);
  }
}

TEST_CASE("blobs are published whole, mapped, and checked against their names") {
  const fs::path dir = fresh_dir("stowage-cache-blobs");
  CacheStore store(dir);
  const std::string bytes(100000, 'x');
  const std::string name = sha(bytes);
  CHECK(!store.has_blob(name, bytes.size()));
  CHECK(!store.map_blob(name, bytes.size()));
  store.put_blob(name, bytes_of(bytes));
  CHECK(store.blob_path(name) == dir / "blobs" / "sha256" / name.substr(0, 2) / name);
  CHECK(fs::is_empty(dir / "tmp"));  // the temporary was renamed, not left
  std::optional<Buffer> mapped = store.map_blob(name, bytes.size());
  REQUIRE(mapped);
  CHECK(mapped->view() == bytes);
  CHECK(mapped->label() == store.blob_path(name).string());
  CHECK(CacheStore::blob_matches(name, *mapped));
  // The wrong size reads as not there: a blob is never served short, and
  // a fill writes it again.
  CHECK(store.has_blob(name, bytes.size()));
  CHECK(!store.map_blob(name, bytes.size() - 1));
  CHECK(!store.has_blob(name, bytes.size() - 1));

  // One byte changed on disk: the mapping no longer matches its name.
  {
    std::fstream f(store.blob_path(name), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(5000);
    f.put('y');
  }
  std::optional<Buffer> edited = store.map_blob(name, bytes.size());
  REQUIRE(edited);
  CHECK(!CacheStore::blob_matches(name, *edited));
  store.remove_blob(name);
  CHECK(!store.has_blob(name, bytes.size()));
}

std::vector<std::string> urls_of(const Eviction& e) {
  std::vector<std::string> out;
  for (const EvictedModel& m : e.models) out.push_back(m.url);
  return out;
}

TEST_CASE("eviction removes least-recently-used whole models and keeps shared blobs") {
  const fs::path dir = fresh_dir("stowage-cache-evict");
  CacheStore store(dir);
  const std::string shared(1000, 's');
  const std::string a_only(1000, 'a');
  const std::string b_only(1000, 'b');
  const std::string c_only(1000, 'c');
  put_model(store, "ka", snapshot_of("u://a", {shared, a_only}), {shared, a_only});
  put_model(store, "kb", snapshot_of("u://b", {shared, b_only}), {shared, b_only});
  put_model(store, "kc", snapshot_of("u://c", {c_only}), {c_only});
  // An orphan blob (a fill that died before publishing) is collected too.
  const std::string orphan(500, 'o');
  store.put_blob(sha(orphan), bytes_of(orphan));
  set_mtime(store.snapshot_path("ka"), 300);  // oldest
  set_mtime(store.snapshot_path("kb"), 200);
  set_mtime(store.snapshot_path("kc"), 100);
  CHECK(store.blob_bytes() == 4500);

  SUBCASE("under the bound: only the orphan goes") {
    FileLock lock = store.lock_cache(FileLock::Mode::kExclusive);
    Eviction e = store.evict(4000, "kc");
    CHECK(e.models.empty());
    CHECK(e.blobs == 1);
    CHECK(store.blob_bytes() == 4000);
  }
  SUBCASE("the oldest model goes; its blob shared with a kept model stays") {
    Eviction e = store.evict(3000, "kc");
    CHECK(urls_of(e) == std::vector<std::string>{"u://a"});
    CHECK(!fs::exists(store.snapshot_path("ka")));
    CHECK(store.has_blob(sha(shared), shared.size()));
    CHECK(!store.has_blob(sha(a_only), a_only.size()));
    CHECK(store.has_blob(sha(b_only), b_only.size()));
    CHECK(store.blob_bytes() == 3000);
    CHECK(e.bytes_after == 3000);
  }
  SUBCASE("the model to keep stays even when it alone is over the bound") {
    store.touch("ka");  // now the most recent: kb goes first, then kc
    Eviction e = store.evict(1000, "ka");
    CHECK(urls_of(e) == std::vector<std::string>{"u://b", "u://c"});
    CHECK(fs::exists(store.snapshot_path("ka")));
    CHECK(store.has_blob(sha(shared), shared.size()));
    CHECK(store.has_blob(sha(a_only), a_only.size()));
    CHECK(store.blob_bytes() == 2000);
  }
}

TEST_CASE("an unreadable snapshot reads as a miss") {
  const fs::path dir = fresh_dir("stowage-cache-bad");
  CacheStore store(dir);
  std::ofstream(store.snapshot_path("k")) << "{\"format\":1,";
  CHECK(!store.read_snapshot("k"));
  Snapshot s = snapshot_of("u://m", {"x"});
  put_model(store, "k", s, {"x"});
  REQUIRE(store.read_snapshot("k"));
  CHECK(store.read_snapshot("k")->files.size() == 1);
}

TEST_CASE("open_existing creates nothing and refuses a folder that is not a cache") {
  const fs::path dir = fresh_dir("stowage-cache-existing");
  CHECK(!CacheStore::open_existing(dir));  // missing
  CHECK(!fs::exists(dir));
  fs::create_directories(dir);
  CHECK(!CacheStore::open_existing(dir));  // empty
  CHECK(fs::is_empty(dir));
  std::ofstream(dir / "notes.txt") << "mine";
  try {
    CacheStore::open_existing(dir);
    FAIL("a folder without stowage-cache.json was opened");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::kInvalidArgument);
    CHECK(std::string(e.what()) == "The folder " + dir.string() +
                                       " is not a stowage cache (it has no stowage-cache.json); "
                                       "nothing in it was touched");
  }
  CHECK(!fs::exists(dir / "models"));
  fs::remove(dir / "notes.txt");
  { CacheStore made(dir); }
  std::optional<CacheStore> store = CacheStore::open_existing(dir);
  REQUIRE(store);
  CHECK(store->root() == dir);
}

TEST_CASE("eviction by last use, and of everything; temporary files by age") {
  const fs::path dir = fresh_dir("stowage-cache-policy");
  CacheStore store(dir);
  const std::string shared(100, 's');
  const std::string a_only(100, 'a');
  const std::string b_only(100, 'b');
  put_model(store, "ka", snapshot_of("u://a", {shared, a_only}), {shared, a_only});
  put_model(store, "kb", snapshot_of("u://b", {shared, b_only}), {shared, b_only});
  set_mtime(store.snapshot_path("ka"), 7200);
  set_mtime(store.snapshot_path("kb"), 60);
  std::ofstream(dir / "tmp" / "old.XXXXXX") << "0123456789";
  set_mtime(dir / "tmp" / "old.XXXXXX", 7200);
  std::ofstream(dir / "tmp" / "new.XXXXXX") << "01234";
  FileLock lock = store.lock_cache(FileLock::Mode::kExclusive);

  SUBCASE("unused for an hour: a goes, its shared blob stays, the old temporary goes") {
    EvictionPolicy policy;
    policy.unused_since = std::chrono::system_clock::now() - std::chrono::hours(1);
    Eviction e = store.evict(policy);
    REQUIRE(e.models.size() == 1);
    CHECK(e.models[0].url == "u://a");
    CHECK(e.models[0].key == "ka");
    CHECK(e.models[0].reason == EvictedModel::Reason::kUnused);
    CHECK(e.blobs == 1);
    CHECK(store.has_blob(sha(shared), shared.size()));
    CHECK(!store.has_blob(sha(a_only), a_only.size()));
    CHECK(e.bytes_before == 300);
    CHECK(e.bytes_after == 200);
    CHECK(e.temp_files == 1);
    CHECK(e.temp_bytes == 10);
    CHECK(!fs::exists(dir / "tmp" / "old.XXXXXX"));
    CHECK(fs::exists(dir / "tmp" / "new.XXXXXX"));
  }
  SUBCASE("all: every model, blob and temporary file; the layout stays") {
    EvictionPolicy policy;
    policy.all = true;
    policy.temp_age = std::chrono::seconds(0);
    std::ofstream(store.snapshot_path("kc")) << "{\"format\":1,";  // unreadable
    Eviction e = store.evict(policy);
    CHECK(e.models.size() == 2);
    CHECK(e.unreadable == 1);
    CHECK(e.blobs == 3);
    CHECK(e.bytes_after == 0);
    CHECK(e.temp_files == 2);
    CHECK(store.models().empty());
    CHECK(store.blob_bytes() == 0);
    CHECK(fs::is_empty(dir / "tmp"));
    CHECK(fs::exists(dir / "stowage-cache.json"));
    CHECK(fs::exists(dir / "CACHEDIR.TAG"));
  }
}

TEST_CASE("verify finds damaged snapshots and blobs, and stray files") {
  const fs::path dir = fresh_dir("stowage-cache-verify");
  CacheStore store(dir);
  // Real keys: verify also names a snapshot file that is not <64 hex>.json.
  const std::string ka = sha("ka");
  const std::string kb = sha("kb");
  const std::string x(100, 'x');
  const std::string y(50, 'y');
  put_model(store, ka, snapshot_of("u://a", {x, y}), {x, y});
  CHECK(store.verify().empty());
  std::ofstream(dir / "tmp" / "partial.XXXXXX") << "half";  // tmp/ may hold anything
  CHECK(store.verify().empty());

  // A blob that lost its tail, as a write without rename would leave it.
  fs::resize_file(store.blob_path(sha(y)), 20);
  std::vector<Problem> p = store.verify();
  REQUIRE(p.size() == 2);
  CHECK(p[0].path == store.snapshot_path(ka).string());
  CHECK(p[0].what ==
        "names the blob " + store.blob_path(sha(y)).string() + " with 50 bytes, but it has 20");
  CHECK(p[1].path == store.blob_path(sha(y)).string());
  CHECK(p[1].what.starts_with("its bytes do not hash to its name"));

  store.remove_blob(sha(y));
  std::ofstream(store.snapshot_path(kb)) << "{\"format\":1,";
  std::ofstream(dir / "models" / "stray.txt") << "?";
  p = store.verify();
  REQUIRE(p.size() == 3);
  CHECK(p[0].path == (dir / "models" / "stray.txt").string());
  CHECK(p[1].what == "names the blob " + store.blob_path(sha(y)).string() +
                         " (group1-shard2), which is missing");
  CHECK(p[2].path == store.snapshot_path(kb).string());
  CHECK(p[2].what.starts_with("Cache snapshot "));
}

TEST_CASE("first_mismatch finds the first buffer that does not hash to its name, on all cores") {
  // 12 MiB in 6 buffers: over the size where the check starts threads.
  std::vector<std::string> contents;
  for (int i = 0; i < 6; ++i) contents.push_back(std::string(2 << 20, static_cast<char>('a' + i)));
  std::vector<std::string> names;
  std::vector<Buffer> buffers;
  for (const std::string& c : contents) {
    names.push_back(sha(c));
    buffers.push_back(Buffer::copy_of(bytes_of(c)));
  }
  CHECK(CacheStore::first_mismatch(names, buffers) == std::nullopt);
  CHECK(CacheStore::first_mismatch({}, {}) == std::nullopt);

  // Two bad ones: the first in order is named, whichever thread saw it.
  std::string damaged = contents[4];
  damaged[12345] ^= 1;
  buffers[4] = Buffer::copy_of(bytes_of(damaged));
  CHECK(CacheStore::first_mismatch(names, buffers) == std::optional<size_t>(4));
  damaged = contents[1];
  damaged.back() ^= 1;
  buffers[1] = Buffer::copy_of(bytes_of(damaged));
  CHECK(CacheStore::first_mismatch(names, buffers) == std::optional<size_t>(1));
  // A small set, checked on this thread alone, the same way.
  CHECK(CacheStore::first_mismatch({names[0], names[1]}, {buffers[0], buffers[1]}) ==
        std::optional<size_t>(1));
}
