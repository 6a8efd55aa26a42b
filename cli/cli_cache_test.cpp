// `stowage cache list|info|prune|clear|verify` against caches filled for
// real: each model is loaded through cache+file:// by the command itself
// (`stowage verify cache+file://...`), so the folder is exactly what the
// cache plugin writes. Shard bytes and their SHA-256 come from the test.
//
//   stowage_cli_cache_test                 every case
//   stowage_cli_cache_test -tc='*prune*'   one case
#include <doctest/doctest.h>
#include <fcntl.h>
#include <rapidjson/document.h>
#include <spawn.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "cli_test_util.hpp"
#include "run_program.hpp"
#include "stowage/artifacts.hpp"
#include "stowage/digest.hpp"
#include "stowage/model_json.hpp"

extern char** environ;

namespace fs = std::filesystem;
using Clock = std::chrono::system_clock;
using stowage::cli_test::contains;
using stowage::cli_test::parse_json;
using stowage::testing::ProgramResult;
using stowage::testing::read_file;
using stowage::testing::write_file;

namespace {

class TempDir : public stowage::testing::TempDir {
 public:
  TempDir() : stowage::testing::TempDir("stowage-cli-cache-test") {}
};

// The command with the caller's environment minus everything that picks a
// cache folder or makes loads offline, plus `env`.
ProgramResult run(const fs::path& cwd, const std::vector<std::string>& args,
                  std::vector<std::string> env = {}) {
  return stowage::testing::run_program(
      STOWAGE_CLI_EXE, args,
      {.cwd = cwd, .drop_env = {"STOWAGE_", "XDG_CACHE_HOME=", "HOME="}, .add_env = env});
}

std::string sha(const std::string& bytes) {
  return stowage::sha256_hex(
      std::span(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
}

// A shard of n bytes, all `fill`.
std::string shard(char fill, size_t n = 64) { return std::string(n, fill); }

// dir/model.json: one float32 weight over the given shards (each a multiple
// of 4 bytes), digests recorded as stowage's savers record them.
std::string make_model(const fs::path& dir, const std::vector<std::string>& shards) {
  stowage::ModelArtifacts a;
  a.model_topology = R"({"class_name":"Sequential","config":{"name":"t","layers":[]}})";
  a.format = "layers-model";
  a.generated_by = "TensorFlow.js tfjs-layers v4.22.0";
  a.converted_by = stowage::NullableString::null();
  stowage::WeightGroup group;
  size_t bytes = 0;
  std::vector<std::string> digests;
  for (size_t i = 0; i < shards.size(); ++i) {
    const std::string path =
        "group1-shard" + std::to_string(i + 1) + "of" + std::to_string(shards.size()) + ".bin";
    write_file(dir / path, shards[i]);
    group.paths.push_back(path);
    digests.push_back(sha(shards[i]));
    bytes += shards[i].size();
  }
  group.weights.push_back(
      stowage::WeightSpec{"w", {static_cast<int64_t>(bytes / 4)}, "float32", {}, {}});
  group.sha256 = digests;
  write_file(dir / "model.json", stowage::write_model_json(a, stowage::WeightsManifest{group},
                                                           stowage::ModelJsonLayout::kTfjsNode));
  return "file://" + (dir / "model.json").string();
}

// Loads url through the cache in `cache`, as a user would.
ProgramResult load(const fs::path& cwd, const fs::path& cache, const std::string& url,
                   std::vector<std::string> env = {}) {
  return run(cwd, {"verify", "cache+" + url, "-o", "dir=" + cache.string()}, std::move(env));
}

void fill(const fs::path& cwd, const fs::path& cache, const std::string& url) {
  const ProgramResult r = load(cwd, cache, url);
  INFO(r.err);
  REQUIRE(r.code == 0);
}

// The file:// plugin's version token of url (its stat, through `info`).
std::string version_of(const fs::path& cwd, const std::string& url) {
  const ProgramResult r = run(cwd, {"info", url, "--json"});
  REQUIRE(r.code == 0);
  const rapidjson::Document doc = parse_json(r.out);
  REQUIRE(doc.HasMember("version"));
  return doc["version"].GetString();
}

fs::path blob(const fs::path& cache, const std::string& bytes) {
  const std::string s = sha(bytes);
  return cache / "blobs" / "sha256" / s.substr(0, 2) / s;
}

std::string key_of(const fs::path& cache, const std::string& url) {
  const ProgramResult r =
      run(cache.parent_path(), {"cache", "info", url, "--dir", cache.string(), "--json"});
  REQUIRE(r.code == 0);
  return parse_json(r.out)["key"].GetString();
}

// Sets a model's last use (its snapshot's mtime) to t, at millisecond
// precision, as the listing prints it.
Clock::time_point set_last_used(const fs::path& cache, const std::string& url,
                                Clock::time_point t) {
  t = std::chrono::time_point_cast<std::chrono::milliseconds>(t);
  const auto since = t.time_since_epoch();
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(since);
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(since - secs);
  const struct timespec times[2] = {{secs.count(), ns.count()}, {secs.count(), ns.count()}};
  const fs::path snapshot = cache / "models" / (key_of(cache, url) + ".json");
  REQUIRE(::utimensat(AT_FDCWD, snapshot.c_str(), times, 0) == 0);
  return t;
}

size_t files_in(const fs::path& dir) {
  size_t n = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir)) n += e.is_regular_file() ? 1 : 0;
  return n;
}

std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST_CASE("cache list shows each filled model, most recently used first; --json") {
  TempDir tmp;
  const fs::path cache = tmp.path() / "cache";
  const std::string a = make_model(tmp.path() / "a", {shard('1'), shard('2')});
  const std::string b = make_model(tmp.path() / "b", {shard('1'), shard('3', 128)});
  const Clock::time_point before = Clock::now() - std::chrono::seconds(1);
  fill(tmp.path(), cache, a);
  fill(tmp.path(), cache, b);
  const Clock::time_point after = Clock::now() + std::chrono::seconds(1);
  const Clock::time_point used_a = set_last_used(cache, a, Clock::now() - std::chrono::hours(2));
  const Clock::time_point used_b = set_last_used(cache, b, Clock::now() - std::chrono::hours(1));

  const ProgramResult j = run(tmp.path(), {"cache", "list", "--dir", cache.string(), "--json"});
  REQUIRE(j.code == 0);
  const rapidjson::Document doc = parse_json(j.out);
  CHECK(doc["dir"].GetString() == cache.string());
  CHECK(doc["exists"].GetBool());
  // Three distinct shards: '1' is shared by both models and stored once.
  CHECK(doc["blobBytes"].GetUint64() == 64 + 64 + 128);
  CHECK(doc["unreadable"].GetArray().Size() == 0);
  const auto& models = doc["models"];
  REQUIRE(models.Size() == 2);
  struct Expected {
    std::string url;
    uint64_t files, bytes;
    Clock::time_point used;
  };
  const Expected expected[] = {{b, 2, 192, used_b}, {a, 2, 128, used_a}};
  std::string text_rows;
  for (size_t i = 0; i < 2; ++i) {
    const auto& m = models[static_cast<rapidjson::SizeType>(i)];
    CAPTURE(i);
    CHECK(m["url"].GetString() == expected[i].url);
    CHECK(m["key"].GetString() == key_of(cache, expected[i].url));
    CHECK(m["version"].GetString() == version_of(tmp.path(), expected[i].url));
    CHECK(m["files"].GetUint64() == expected[i].files);
    CHECK(m["bytes"].GetUint64() == expected[i].bytes);
    CHECK(m["lastUsed"].GetString() == stowage::iso_date(expected[i].used));
    CHECK(m["complete"].GetBool());
    const Clock::time_point fetched = stowage::parse_iso_date(m["fetchedAt"].GetString());
    CHECK(fetched >= before);
    CHECK(fetched <= after);
    // Filled, never revalidated since.
    CHECK(std::string(m["validatedAt"].GetString()) == m["fetchedAt"].GetString());
    CHECK(m.MemberCount() == 9);
  }

  // The table: the same facts, newest use first, then a summary line.
  const ProgramResult t = run(tmp.path(), {"cache", "list", "--dir", cache.string()});
  REQUIRE(t.code == 0);
  CHECK(t.err.empty());
  std::vector<std::string> lines;
  for (size_t start = 0, nl; (nl = t.out.find('\n', start)) != std::string::npos; start = nl + 1) {
    lines.push_back(t.out.substr(start, nl - start));
  }
  REQUIRE(lines.size() == 4);
  CHECK(lines[0].starts_with("URL"));
  CHECK(lines[1].starts_with(b + " "));
  CHECK(contains(lines[1], " " + version_of(tmp.path(), b) + " "));
  CHECK(contains(lines[1], "  192  "));
  CHECK(lines[1].ends_with(stowage::iso_date(used_b)));
  CHECK(lines[2].starts_with(a + " "));
  CHECK(lines[2].ends_with(stowage::iso_date(used_a)));
  CHECK(lines[3] == "2 models, blobs 256 bytes in " + cache.string());

  // A blob gone from under a snapshot: the model is listed as incomplete.
  fs::remove(blob(cache, shard('2')));
  const ProgramResult gone = run(tmp.path(), {"cache", "ls", "--dir", cache.string()});
  CHECK(contains(gone.out, a + " (incomplete) "));
}

TEST_CASE("cache list: a missing or empty folder lists nothing; the default folder") {
  TempDir tmp;
  const fs::path missing = tmp.path() / "no-such-cache";
  const ProgramResult r = run(tmp.path(), {"cache", "list", "--dir", missing.string()});
  CHECK(r.code == 0);
  CHECK(r.out ==
        "no models in the cache " + missing.string() + " (the folder does not exist yet)\n");
  CHECK_FALSE(fs::exists(missing));  // nothing created
  fs::create_directories(tmp.path() / "empty");
  const ProgramResult empty =
      run(tmp.path(), {"cache", "list", "--dir", (tmp.path() / "empty").string()});
  CHECK(empty.code == 0);
  CHECK(empty.out == "no models in the cache " + (tmp.path() / "empty").string() +
                         " (nothing was cached there yet)\n");
  CHECK(fs::is_empty(tmp.path() / "empty"));
  const ProgramResult j = run(tmp.path(), {"cache", "list", "--dir", missing.string(), "--json"});
  CHECK(j.code == 0);
  const rapidjson::Document doc = parse_json(j.out);
  CHECK_FALSE(doc["exists"].GetBool());
  CHECK(doc["models"].GetArray().Size() == 0);
  CHECK(doc["blobBytes"].GetUint64() == 0);

  // The folder as the plugin picks it: STOWAGE_CACHE_DIR, then
  // XDG_CACHE_HOME/stowage, then HOME/.cache/stowage.
  const std::string m = make_model(tmp.path() / "m", {shard('x')});
  const fs::path home = tmp.path() / "home";
  const fs::path xdg = tmp.path() / "xdg";
  const fs::path env_dir = tmp.path() / "env-cache";
  struct Case {
    std::vector<std::string> env;
    fs::path dir;
  };
  const Case cases[] = {
      {{"HOME=" + home.string()}, home / ".cache" / "stowage"},
      {{"HOME=" + home.string(), "XDG_CACHE_HOME=" + xdg.string()}, xdg / "stowage"},
      {{"HOME=" + home.string(), "XDG_CACHE_HOME=" + xdg.string(),
        "STOWAGE_CACHE_DIR=" + env_dir.string()},
       env_dir},
  };
  for (const Case& c : cases) {
    CAPTURE(c.dir);
    // Filled by the plugin with no "dir": it picks the folder itself.
    REQUIRE(run(tmp.path(), {"verify", "cache+" + m}, c.env).code == 0);
    const ProgramResult l = run(tmp.path(), {"cache", "list", "--json"}, c.env);
    REQUIRE(l.code == 0);
    const rapidjson::Document d = parse_json(l.out);
    CHECK(d["dir"].GetString() == c.dir.string());
    REQUIRE(d["models"].GetArray().Size() == 1);
    CHECK(d["models"][0]["url"].GetString() == m);
  }
  // The "dir" of the configuration's cache defaults, which the plugin gets
  // through the registry: --config FILE, or STOWAGE_CONFIG; --dir wins.
  const fs::path configured = tmp.path() / "configured-cache";
  write_file(tmp.path() / "cache-config.json",
             R"({"defaults":{"cache":{"dir":")" + configured.string() + R"("}}})");
  const std::string config = (tmp.path() / "cache-config.json").string();
  const std::vector<std::string> with_env_dir = {"STOWAGE_CACHE_DIR=" + env_dir.string()};
  REQUIRE(run(tmp.path(), {"--config", config, "verify", "cache+" + m}, with_env_dir).code == 0);
  for (const auto& [args, env] :
       std::vector<std::pair<std::vector<std::string>, std::vector<std::string>>>{
           {{"cache", "list", "--config", config, "--json"}, with_env_dir},
           {{"--config", config, "cache", "list", "--json"}, with_env_dir},
           {{"cache", "list", "--json"}, {"STOWAGE_CONFIG=" + config}}}) {
    CAPTURE(args.size());
    const ProgramResult l = run(tmp.path(), args, env);
    REQUIRE(l.code == 0);
    const rapidjson::Document d = parse_json(l.out);
    CHECK(d["dir"].GetString() == configured.string());
    CHECK(d["models"].GetArray().Size() == 1);
  }
  const ProgramResult given =
      run(tmp.path(), {"cache", "list", "--config", config, "--dir", env_dir.string(), "--json"});
  CHECK(parse_json(given.out)["dir"].GetString() == env_dir.string());

  const ProgramResult none = run(tmp.path(), {"cache", "list"});
  CHECK(none.code == 2);
  CHECK(none.err ==
        "stowage: error: no cache folder: give --dir, or set STOWAGE_CACHE_DIR, XDG_CACHE_HOME "
        "or HOME\n");
}

TEST_CASE("cache info shows one model's snapshot, with or without cache+; not cached is exit 3") {
  TempDir tmp;
  const fs::path cache = tmp.path() / "cache";
  const std::vector<std::string> shards = {shard('p'), shard('q', 32)};
  const std::string m = make_model(tmp.path() / "m", shards);
  fill(tmp.path(), cache, m);
  const std::string version = version_of(tmp.path(), m);

  for (const std::string& arg : {m, "cache+" + m}) {
    CAPTURE(arg);
    const ProgramResult j =
        run(tmp.path(), {"cache", "info", arg, "--dir", cache.string(), "--json"});
    REQUIRE(j.code == 0);
    const rapidjson::Document doc = parse_json(j.out);
    CHECK(doc["url"].GetString() == m);
    CHECK(std::string(doc["key"].GetString()).size() == 64);
    CHECK(doc["dir"].GetString() == cache.string());
    CHECK(doc["snapshot"].GetString() ==
          (cache / "models" / (std::string(doc["key"].GetString()) + ".json")).string());
    CHECK(fs::exists(doc["snapshot"].GetString()));
    CHECK(doc["version"].GetString() == version);
    CHECK(doc["weightData"].GetBool());
    CHECK(doc["bytes"].GetUint64() == 96);
    CHECK(doc["complete"].GetBool());
    CHECK(doc.HasMember("fetchedAt"));
    CHECK(doc.HasMember("validatedAt"));
    CHECK(doc.HasMember("lastUsed"));
    CHECK(doc.MemberCount() == 12);
    const auto& files = doc["files"];
    REQUIRE(files.Size() == 2);
    for (rapidjson::SizeType i = 0; i < 2; ++i) {
      CHECK(files[i]["path"].GetString() == "group1-shard" + std::to_string(i + 1) + "of2.bin");
      CHECK(files[i]["size"].GetUint64() == shards[i].size());
      CHECK(files[i]["sha256"].GetString() == sha(shards[i]));
      CHECK(files[i]["blob"].GetString() == blob(cache, shards[i]).string());
      CHECK(files[i]["present"].GetBool());
    }
  }

  const ProgramResult t = run(tmp.path(), {"cache", "info", m, "--dir", cache.string()});
  REQUIRE(t.code == 0);
  CHECK(t.out.starts_with("url:          " + m + "\nkey:          "));
  CHECK(contains(t.out, "\nversion:      " + version + "\n"));
  CHECK(contains(t.out, "\nweight data:  yes\nfiles:        2, 96 bytes\n"));
  CHECK(contains(t.out, "group1-shard1of2.bin    64  " + sha(shards[0]) + "  present\n"));
  CHECK(contains(t.out, "group1-shard2of2.bin    32  " + sha(shards[1]) + "  present\n"));

  // Not cached: exit 3, naming the URL (as a cache+ URL) and the folder.
  const std::string other = "file://" + (tmp.path() / "other" / "model.json").string();
  const ProgramResult miss = run(tmp.path(), {"cache", "info", other, "--dir", cache.string()});
  CHECK(miss.code == 3);
  CHECK(miss.out.empty());
  CHECK(miss.err ==
        "stowage: error: cache+" + other + " is not in the cache " + cache.string() + "\n");
  const fs::path missing = tmp.path() / "nowhere";
  const ProgramResult no_dir = run(tmp.path(), {"cache", "info", m, "--dir", missing.string()});
  CHECK(no_dir.code == 3);
  CHECK(no_dir.err ==
        "stowage: error: cache+" + m + " is not in the cache " + missing.string() + "\n");
  // Credentials never reach a key or the output.
  const ProgramResult secret =
      run(tmp.path(), {"cache", "info", "https://user:pw@h.example/m/model.json?X-Amz-Signature=s",
                       "--dir", cache.string()});
  CHECK(secret.code == 3);
  CHECK(secret.err == "stowage: error: cache+https://h.example/m/model.json is not in the cache " +
                          cache.string() + "\n");
  const ProgramResult bare =
      run(tmp.path(), {"cache", "info", "m/model.json", "--dir", cache.string()});
  CHECK(bare.code == 2);
  CHECK(contains(bare.err, "expected the URL a cache+ URL wraps"));
}

// `stowage cache prune --older-than <duration>` refused as a usage error
// (exit 2) that names the duration and says `why`.
void check_older_than_refused(const fs::path& cwd, const fs::path& cache,
                              const std::string& duration, const std::string& why) {
  CAPTURE(duration);
  const ProgramResult u =
      run(cwd, {"cache", "prune", "--older-than", duration, "--dir", cache.string()});
  CHECK(u.code == 2);
  CHECK(u.err == "stowage: error: --older-than " + duration + ": " + why + "\n");
}

TEST_CASE("cache prune: --older-than, then --max-bytes least recently used; shared blobs stay") {
  TempDir tmp;
  const fs::path cache = tmp.path() / "cache";
  const std::string a = make_model(tmp.path() / "a", {shard('s'), shard('a')});
  const std::string b = make_model(tmp.path() / "b", {shard('s'), shard('b')});
  const std::string c = make_model(tmp.path() / "c", {shard('c', 96)});
  for (const std::string& m : {a, b, c}) fill(tmp.path(), cache, m);
  const Clock::time_point used_a = set_last_used(cache, a, Clock::now() - std::chrono::hours(72));
  const Clock::time_point used_b = set_last_used(cache, b, Clock::now() - std::chrono::hours(2));
  set_last_used(cache, c, Clock::now() - std::chrono::minutes(1));
  // A file a killed fill left in tmp/ two hours ago, and one being written now.
  write_file(cache / "tmp" / "dead.XXXXXX", std::string(10, 'd'));
  fs::last_write_time(cache / "tmp" / "dead.XXXXXX",
                      fs::file_time_type::clock::now() - std::chrono::hours(2));
  write_file(cache / "tmp" / "live.XXXXXX", std::string(10, 'l'));

  // Not used for a day: only a goes; its blob shared with b stays.
  const ProgramResult p1 =
      run(tmp.path(), {"cache", "prune", "--older-than", "1d", "--dir", cache.string()});
  REQUIRE(p1.code == 0);
  CHECK(p1.out == "removed " + a + " (last used " + stowage::iso_date(used_a) +
                      ", unused for longer than --older-than)\n"
                      "pruned " +
                      cache.string() +
                      ": 1 model, 1 blob file, 1 temporary file removed; 74 bytes freed; blobs "
                      "now 224 bytes\n");
  CHECK(fs::exists(blob(cache, shard('s'))));
  CHECK_FALSE(fs::exists(blob(cache, shard('a'))));
  CHECK(fs::exists(blob(cache, shard('b'))));
  CHECK_FALSE(fs::exists(cache / "tmp" / "dead.XXXXXX"));
  CHECK(fs::exists(cache / "tmp" / "live.XXXXXX"));
  // Gone from the cache: offline, its load fails as not cached (exit 6).
  const ProgramResult offline_a = load(tmp.path(), cache, a, {"STOWAGE_OFFLINE=1"});
  CHECK(offline_a.code == 6);
  CHECK(contains(offline_a.err, "it is not in the cache (" + cache.string() + ")"));

  // Durations in every unit; none matches now (b: 2 h, c: 1 min).
  for (const char* d : {"3h", "180m", "10800s"}) {
    CAPTURE(d);
    const ProgramResult keep =
        run(tmp.path(), {"cache", "prune", "--older-than", d, "--dir", cache.string(), "--json"});
    REQUIRE(keep.code == 0);
    const rapidjson::Document doc = parse_json(keep.out);
    CHECK(doc["removed"].GetArray().Size() == 0);
    CHECK(doc["bytesFreed"].GetUint64() == 0);
  }

  // Bound to c's 96 bytes: b, the least recently used, goes whole.
  const std::string key_b = key_of(cache, b);
  const ProgramResult p2 =
      run(tmp.path(), {"cache", "prune", "--max-bytes", "96", "--dir", cache.string(), "--json"});
  REQUIRE(p2.code == 0);
  const rapidjson::Document doc = parse_json(p2.out);
  CHECK(doc["operation"].GetString() == std::string("pruned"));
  CHECK(doc["dir"].GetString() == cache.string());
  REQUIRE(doc["removed"].Size() == 1);
  CHECK(doc["removed"][0]["url"].GetString() == b);
  CHECK(doc["removed"][0]["key"].GetString() == key_b);
  CHECK(doc["removed"][0]["lastUsed"].GetString() == stowage::iso_date(used_b));
  CHECK(doc["removed"][0]["reason"].GetString() == std::string("max-bytes"));
  CHECK(doc["blobs"].GetUint64() == 2);
  CHECK(doc["tempFiles"].GetUint64() == 0);
  CHECK(doc["unreadableSnapshots"].GetUint64() == 0);
  CHECK(doc["bytesFreed"].GetUint64() == 128);
  CHECK(doc["blobBytes"].GetUint64() == 96);
  CHECK(doc.MemberCount() == 8);
  CHECK(names_in(cache / "models") == std::vector<std::string>{key_of(cache, c) + ".json"});
  // c is still served from the cache with no store: offline.
  CHECK(load(tmp.path(), cache, c, {"STOWAGE_OFFLINE=1"}).code == 0);

  // Usage: a duration needs a unit.
  for (const char* bad : {"30", "30x", "d", "-1d", "1.5h"}) {
    check_older_than_refused(tmp.path(), cache, bad,
                             "expected a whole number and a unit, d, h, m or s (30d, 12h, 90m, "
                             "3600s)");
  }
  check_older_than_refused(tmp.path(), cache, "99999999999d", "at most 36500d");
}

TEST_CASE("cache prune keeps a model in use's shared blobs under --max-bytes 0") {
  TempDir tmp;
  const fs::path cache = tmp.path() / "cache";
  const std::string a = make_model(tmp.path() / "a", {shard('s'), shard('a')});
  const std::string b = make_model(tmp.path() / "b", {shard('s'), shard('b')});
  fill(tmp.path(), cache, a);
  fill(tmp.path(), cache, b);
  // Every model goes: nothing is named, every blob is collected.
  const ProgramResult p =
      run(tmp.path(), {"cache", "prune", "--max-bytes", "0", "--dir", cache.string(), "-q"});
  CHECK(p.code == 0);
  CHECK(p.out.empty());
  CHECK(files_in(cache / "blobs") == 0);
  CHECK(files_in(cache / "models") == 0);
}

TEST_CASE("cache clear empties the folder, keeps it a cache, and the next load refills it") {
  TempDir tmp;
  const fs::path cache = tmp.path() / "cache";
  const std::string a = make_model(tmp.path() / "a", {shard('s'), shard('a')});
  const std::string b = make_model(tmp.path() / "b", {shard('s'), shard('b')});
  fill(tmp.path(), cache, a);
  fill(tmp.path(), cache, b);
  write_file(cache / "tmp" / "live.XXXXXX", std::string(10, 'l'));
  const std::string key_a = key_of(cache, a);
  const std::string layout = read_file(cache / "stowage-cache.json");
  const std::string tag = read_file(cache / "CACHEDIR.TAG");

  const ProgramResult r = run(tmp.path(), {"cache", "clear", "--dir", cache.string(), "--json"});
  REQUIRE(r.code == 0);
  const rapidjson::Document doc = parse_json(r.out);
  CHECK(doc["operation"].GetString() == std::string("cleared"));
  REQUIRE(doc["removed"].Size() == 2);
  CHECK(doc["removed"][0]["reason"].GetString() == std::string("clear"));
  CHECK(doc["blobs"].GetUint64() == 3);
  CHECK(doc["tempFiles"].GetUint64() == 1);
  CHECK(doc["bytesFreed"].GetUint64() == 3 * 64 + 10);
  CHECK(doc["blobBytes"].GetUint64() == 0);
  CHECK(files_in(cache / "blobs") == 0);
  CHECK(files_in(cache / "models") == 0);
  CHECK(files_in(cache / "tmp") == 0);
  CHECK(read_file(cache / "stowage-cache.json") == layout);
  CHECK(read_file(cache / "CACHEDIR.TAG") == tag);
  CHECK(fs::exists(cache / "locks" / "cache.lock"));
  CHECK(fs::exists(cache / "locks" / (key_a + ".lock")));
  const ProgramResult l = run(tmp.path(), {"cache", "list", "--dir", cache.string()});
  CHECK(l.out == "no models in the cache " + cache.string() + "\n0 models, blobs 0 bytes in " +
                     cache.string() + "\n");

  // Offline there is nothing to serve; online the next load fills again.
  CHECK(load(tmp.path(), cache, a, {"STOWAGE_OFFLINE=1"}).code == 6);
  fill(tmp.path(), cache, a);
  CHECK(load(tmp.path(), cache, a, {"STOWAGE_OFFLINE=1"}).code == 0);
  CHECK(fs::exists(blob(cache, shard('s'))));
  CHECK(fs::exists(blob(cache, shard('a'))));

  const Clock::time_point used = set_last_used(cache, a, Clock::now() - std::chrono::hours(1));
  const ProgramResult text = run(tmp.path(), {"cache", "clear", "--dir", cache.string()});
  CHECK(text.code == 0);
  CHECK(text.out == "removed " + a + " (last used " + stowage::iso_date(used) + ")\ncleared " +
                        cache.string() +
                        ": 1 model, 2 blob files, 0 temporary files removed; 128 bytes freed; "
                        "blobs now 0 bytes\n");
}

TEST_CASE("cache commands refuse a folder that is not a stowage cache, or of another layout") {
  TempDir tmp;
  const fs::path notes = tmp.path() / "notes";
  write_file(notes / "todo.txt", "keep me");
  for (const char* sub : {"list", "prune", "clear", "verify"}) {
    CAPTURE(sub);
    const ProgramResult r = run(tmp.path(), {"cache", sub, "--dir", notes.string()});
    CHECK(r.code == 4);
    CHECK(r.err == "stowage: error: The folder " + notes.string() +
                       " is not a stowage cache (it has no stowage-cache.json); nothing in it "
                       "was touched\n");
  }
  CHECK(read_file(notes / "todo.txt") == "keep me");
  CHECK(names_in(notes) == std::vector<std::string>{"todo.txt"});

  const fs::path later = tmp.path() / "later";
  write_file(later / "stowage-cache.json", "{\"layout\":2}\n");
  const ProgramResult r = run(tmp.path(), {"cache", "clear", "--dir", later.string()});
  CHECK(r.code == 7);
  CHECK(r.err == "stowage: error: The cache folder " + later.string() + " has another layout (" +
                     (later / "stowage-cache.json").string() +
                     " reads {\"layout\":2}); this stowage writes layout 1: use another "
                     "folder (option \"dir\", STOWAGE_CACHE_DIR, --dir) or remove this one\n");

  // Missing folders: prune and clear have nothing to do.
  const fs::path missing = tmp.path() / "missing";
  const ProgramResult p = run(tmp.path(), {"cache", "prune", "--dir", missing.string()});
  CHECK(p.code == 0);
  CHECK(p.out == "no models in the cache " + missing.string() +
                     " (the folder does not exist yet): nothing to prune\n");
  const ProgramResult c = run(tmp.path(), {"cache", "clear", "--dir", missing.string()});
  CHECK(c.code == 0);
  CHECK(c.out == "no models in the cache " + missing.string() +
                     " (the folder does not exist yet): nothing to clear\n");
  CHECK_FALSE(fs::exists(missing));

  const ProgramResult bare = run(tmp.path(), {"cache"});
  CHECK(bare.code == 2);
  CHECK(bare.err ==
        "stowage: error: 'stowage cache' needs a command; 'stowage cache --help' lists them\n");
}

TEST_CASE("cache verify passes a filled cache and names a damaged blob") {
  TempDir tmp;
  const fs::path cache = tmp.path() / "cache";
  const std::string m = make_model(tmp.path() / "m", {shard('v'), shard('w')});
  fill(tmp.path(), cache, m);
  const ProgramResult ok = run(tmp.path(), {"cache", "verify", "--dir", cache.string()});
  CHECK(ok.code == 0);
  CHECK(ok.out == "OK " + cache.string() +
                      ": 1 model, every snapshot and blob whole and matching its SHA-256\n");

  // Same size, other bytes: the blob no longer hashes to its name.
  const fs::path damaged = blob(cache, shard('w'));
  fs::permissions(damaged, fs::perms::owner_write, fs::perm_options::add);
  write_file(damaged, shard('W'));
  const ProgramResult bad = run(tmp.path(), {"cache", "verify", "--dir", cache.string()});
  CHECK(bad.code == 4);
  CHECK(bad.out == "problem: " + damaged.string() +
                       ": its bytes do not hash to its name (SHA-256 " + sha(shard('W')) + ")\n");
  CHECK(bad.err == "stowage: error: the cache " + cache.string() +
                       " has 1 problem; 'stowage cache clear' empties it\n");
  const ProgramResult j = run(tmp.path(), {"cache", "verify", "--dir", cache.string(), "--json"});
  CHECK(j.code == 4);
  const rapidjson::Document doc = parse_json(j.out);
  CHECK_FALSE(doc["ok"].GetBool());
  CHECK(doc["models"].GetUint64() == 1);
  REQUIRE(doc["problems"].Size() == 1);
  CHECK(doc["problems"][0]["path"].GetString() == damaged.string());

  // A blob gone from under its snapshot.
  fs::remove(damaged);
  const ProgramResult gone = run(tmp.path(), {"cache", "verify", "--dir", cache.string()});
  CHECK(gone.code == 4);
  CHECK(contains(gone.out, "names the blob " + damaged.string() +
                               " (group1-shard2of2.bin), which is missing\n"));
}

TEST_CASE("prune and clear wait for the cache lock a load holds; list does not") {
  TempDir tmp;
  const fs::path cache = tmp.path() / "cache";
  const std::string m = make_model(tmp.path() / "m", {shard('l')});
  fill(tmp.path(), cache, m);
  // What a load holds while it reads a snapshot and opens its blobs.
  const int lock = ::open((cache / "locks" / "cache.lock").c_str(), O_RDWR | O_CLOEXEC);
  REQUIRE(lock >= 0);
  REQUIRE(::flock(lock, LOCK_SH) == 0);
  CHECK(run(tmp.path(), {"cache", "list", "--dir", cache.string()}).code == 0);
  for (const std::string sub : {"prune", "clear"}) {
    CAPTURE(sub);
    REQUIRE(::flock(lock, LOCK_SH) == 0);
    const std::string exe = STOWAGE_CLI_EXE;
    std::vector<std::string> args{exe, "cache", sub, "--dir", cache.string(), "-q"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = -1;
    REQUIRE(::posix_spawn(&pid, exe.c_str(), nullptr, nullptr, argv.data(), environ) == 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    int status = 0;
    CHECK(::waitpid(pid, &status, WNOHANG) == 0);  // still waiting for the lock
    REQUIRE(::flock(lock, LOCK_UN) == 0);
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  }
  ::close(lock);
  CHECK(files_in(cache / "models") == 0);  // clear ran once the lock was free
}
