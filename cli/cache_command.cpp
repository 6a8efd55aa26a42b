// `stowage cache list|info|prune|clear|verify`: the pull-through cache's
// folder (docs/cache.md) from the command line, read and pruned with the
// cache plugin's own store code, under the same locks its loads take.
#include <rapidjson/document.h>
#include <sys/auxv.h>
#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <set>

#include "cache_key_internal.hpp"
#include "cache_store_internal.hpp"
#include "commands_internal.hpp"
#include "stowage/config.hpp"

namespace stowage::cli {
namespace {

namespace fs = std::filesystem;
using cache::CacheStore;
using cache::FileLock;
using Clock = std::chrono::system_clock;

constexpr std::string_view kPrefix = "cache+";

struct CacheArgs {
  std::string dir;  // --dir; empty: the plugin's default folder
  std::string url;  // info
  std::optional<uint64_t> max_bytes;
  std::string older_than;
};

// The "dir" of a configuration's defaults for the cache scheme, as a cache+
// URL opened through the registry would get it; "" when it sets none.
std::string configured_dir(const fs::path& file) {
  const Config config = load_config_file(file);
  auto it = config.defaults.find("cache");
  if (it == config.defaults.end()) return "";
  rapidjson::Document doc;
  doc.Parse(it->second.c_str(), it->second.size());
  if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("dir")) return "";
  if (!doc["dir"].IsString()) {
    throw Error(ErrorCode::kInvalidArgument,
                file.string() + ": defaults.cache.dir: expected a string (the cache folder)");
  }
  return doc["dir"].GetString();
}

// As the plugin picks its folder: --dir (its option "dir"), else the "dir"
// of the cache defaults of the configuration in force (--config, which
// replaces STOWAGE_CONFIG's defaults for a scheme it sets), else the
// environment.
fs::path cache_dir(const CacheArgs& a, const CommonOptions& common) {
  if (!a.dir.empty()) return a.dir;
  std::vector<fs::path> configs;
  if (!common.config.empty()) configs.emplace_back(common.config);
  // The registry ignores STOWAGE_CONFIG under setuid/setgid; so does this.
  const char* env = std::getenv("STOWAGE_CONFIG");
  if (::getauxval(AT_SECURE) == 0 && env != nullptr && *env != '\0') configs.emplace_back(env);
  for (const fs::path& file : configs) {
    if (std::string dir = configured_dir(file); !dir.empty()) return dir;
  }
  if (std::optional<fs::path> dir = cache::default_cache_dir()) return *dir;
  throw UsageError("no cache folder: give --dir, or set STOWAGE_CACHE_DIR, XDG_CACHE_HOME or HOME");
}

// "30d", "12h", "90m", "3600s".
std::chrono::seconds parse_duration(const std::string& text) {
  const std::string usage = "--older-than " + text +
                            ": expected a whole number and a unit, d, h, m or s (30d, 12h, "
                            "90m, 3600s)";
  if (text.size() < 2) throw UsageError(usage);
  const std::string digits = text.substr(0, text.size() - 1);
  if (digits.find_first_not_of("0123456789") != std::string::npos) throw UsageError(usage);
  uint64_t n = 0;
  try {
    n = std::stoull(digits);
  } catch (const std::exception&) {
    throw UsageError(usage);
  }
  uint64_t unit = 0;
  switch (text.back()) {
    case 'd':
      unit = 86400;
      break;
    case 'h':
      unit = 3600;
      break;
    case 'm':
      unit = 60;
      break;
    case 's':
      unit = 1;
      break;
    default:
      throw UsageError(usage);
  }
  // A century is plenty, and the clock (nanoseconds) overflows not far beyond.
  constexpr uint64_t kMaxSeconds = 36500ull * 86400;
  if (n > kMaxSeconds / unit) throw UsageError("--older-than " + text + ": at most 36500d");
  return std::chrono::seconds(n * unit);
}

uint64_t bytes_of(const cache::Snapshot& s) {
  uint64_t total = 0;
  for (const cache::CachedFile& f : s.files) total += f.size;
  return total;
}

// The file's blob is there with its size (not hashed: a load does that,
// and `cache verify`).
bool blob_present(const CacheStore& store, const cache::CachedFile& f) {
  struct stat st;
  const fs::path path = store.blob_path(f.sha256);
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
         static_cast<uint64_t>(st.st_size) == f.size;
}

bool complete(const CacheStore& store, const cache::Snapshot& s) {
  for (const cache::CachedFile& f : s.files) {
    if (!blob_present(store, f)) return false;
  }
  return true;
}

// For a folder open_existing finds no cache in: missing, or empty.
std::string missing_note(const fs::path& dir) {
  std::error_code ec;
  return "no models in the cache " + dir.string() +
         (fs::exists(dir, ec) ? " (nothing was cached there yet)"
                              : " (the folder does not exist yet)");
}

// ---- list ------------------------------------------------------------------

int run_list(const CacheArgs& a, const CommonOptions& common) {
  const fs::path dir = cache_dir(a, common);
  std::optional<CacheStore> store = CacheStore::open_existing(dir);
  std::vector<cache::CachedModel> models;
  uint64_t blob_bytes = 0;
  std::vector<bool> whole;
  if (store) {
    FileLock shared = store->lock_cache(FileLock::Mode::kShared);
    models = store->models();
    blob_bytes = store->blob_bytes();
    for (const cache::CachedModel& m : models) {
      whole.push_back(m.snapshot && complete(*store, *m.snapshot));
    }
  }
  // Most recently used first: what a user looks for.
  std::vector<size_t> order;
  for (size_t i = models.size(); i-- > 0;) order.push_back(i);

  if (common.json) {
    JsonWriter w;
    w.begin_object();
    w.key("dir").string(dir.string());
    std::error_code ec;
    w.key("exists").boolean(fs::is_directory(dir, ec));
    w.key("models").begin_array();
    for (size_t i : order) {
      const cache::CachedModel& m = models[i];
      if (!m.snapshot) continue;
      const cache::Snapshot& s = *m.snapshot;
      w.begin_object();
      w.key("url").string(s.url);
      w.key("key").string(m.key);
      w.key("version").string(s.version);
      w.key("files").uint(s.files.size());
      w.key("bytes").uint(bytes_of(s));
      w.key("fetchedAt").string(iso_date(s.fetched_at));
      w.key("validatedAt").string(iso_date(s.validated_at));
      w.key("lastUsed").string(iso_date(m.last_used));
      w.key("complete").boolean(whole[i]);
      w.end_object();
    }
    w.end_array();
    w.key("unreadable").begin_array();
    for (size_t i : order) {
      if (models[i].snapshot) continue;
      w.begin_object();
      w.key("key").string(models[i].key);
      w.key("error").string(models[i].error);
      w.end_object();
    }
    w.end_array();
    w.key("blobBytes").uint(blob_bytes);
    w.end_object();
    std::cout << w.str();
    return kExitOk;
  }
  if (!store) {
    std::cout << missing_note(dir) << "\n";
    return kExitOk;
  }
  Table table({"URL", "VERSION", "FILES", "BYTES", "FETCHED", "VALIDATED", "LAST USED"}, {2, 3});
  size_t listed = 0;
  for (size_t i : order) {
    const cache::CachedModel& m = models[i];
    if (!m.snapshot) continue;
    const cache::Snapshot& s = *m.snapshot;
    ++listed;
    table.add({s.url + (whole[i] ? "" : " (incomplete)"), s.version.empty() ? "-" : s.version,
               std::to_string(s.files.size()), std::to_string(bytes_of(s)), iso_date(s.fetched_at),
               iso_date(s.validated_at), iso_date(m.last_used)});
  }
  if (listed == 0) {
    std::cout << "no models in the cache " << dir.string() << "\n";
  } else {
    std::cout << table.render();
  }
  for (size_t i : order) {
    if (!models[i].snapshot) std::cout << "unreadable: " << one_line(models[i].error) << "\n";
  }
  std::cout << listed << (listed == 1 ? " model, " : " models, ") << "blobs "
            << bytes_text(blob_bytes) << " in " << dir.string() << "\n";
  return kExitOk;
}

// ---- info ------------------------------------------------------------------

int run_info(const CacheArgs& a, const CommonOptions& common) {
  std::string inner = a.url;
  if (inner.starts_with(kPrefix)) inner = inner.substr(kPrefix.size());
  if (inner.find("://") == std::string::npos) {
    throw UsageError("cache info " + redact_url(a.url) +
                     ": expected the URL a cache+ URL wraps (with or without cache+), e.g. "
                     "https://host/m/model.json");
  }
  const std::string url = cache::normalise_url(inner);
  const std::string key = cache::cache_key(inner);
  const fs::path dir = cache_dir(a, common);
  std::optional<CacheStore> store = CacheStore::open_existing(dir);
  auto not_cached = [&] {
    return Error(ErrorCode::kNotFound, "cache+" + url + " is not in the cache " + dir.string());
  };
  if (!store) throw not_cached();
  FileLock shared = store->lock_cache(FileLock::Mode::kShared);
  const fs::path path = store->snapshot_path(key);
  std::optional<cache::CachedModel> found = store->model(key);
  if (!found) throw not_cached();
  if (!found->snapshot) {
    throw Error(ErrorCode::kDataLoss,
                "cache+" + url + ": " + found->error + " (the next load fetches it again)");
  }
  const cache::Snapshot& s = *found->snapshot;

  if (common.json) {
    JsonWriter w;
    w.begin_object();
    w.key("url").string(s.url);
    w.key("key").string(key);
    w.key("dir").string(dir.string());
    w.key("snapshot").string(path.string());
    w.key("version").string(s.version);
    w.key("fetchedAt").string(iso_date(s.fetched_at));
    w.key("validatedAt").string(iso_date(s.validated_at));
    w.key("lastUsed").string(iso_date(found->last_used));
    w.key("weightData").boolean(s.has_weight_data);
    w.key("bytes").uint(bytes_of(s));
    w.key("complete").boolean(complete(*store, s));
    w.key("files").begin_array();
    for (const cache::CachedFile& f : s.files) {
      w.begin_object();
      w.key("path").nullable_string(f.path);
      w.key("size").uint(f.size);
      w.key("sha256").string(f.sha256);
      w.key("blob").string(store->blob_path(f.sha256).string());
      w.key("present").boolean(blob_present(*store, f));
      w.end_object();
    }
    w.end_array();
    w.end_object();
    std::cout << w.str();
    return kExitOk;
  }
  std::cout << "url:          " << s.url << "\n"
            << "key:          " << key << "\n"
            << "snapshot:     " << path.string() << "\n"
            << "version:      " << (s.version.empty() ? "-" : s.version) << "\n"
            << "fetched at:   " << iso_date(s.fetched_at) << "\n"
            << "validated at: " << iso_date(s.validated_at) << "\n"
            << "last used:    " << iso_date(found->last_used) << "\n"
            << "weight data:  " << (s.has_weight_data ? "yes" : "no (a topology-only model)")
            << "\n"
            << "files:        " << s.files.size() << ", " << bytes_text(bytes_of(s)) << "\n";
  if (!s.files.empty()) {
    Table table({"PATH", "SIZE", "SHA-256", "BLOB"}, {1});
    for (const cache::CachedFile& f : s.files) {
      table.add({f.path.value_or("-"), std::to_string(f.size), f.sha256,
                 blob_present(*store, f) ? "present" : "missing"});
    }
    std::cout << table.render();
  }
  return kExitOk;
}

// ---- prune and clear ---------------------------------------------------------

const char* reason_text(cache::EvictedModel::Reason r) {
  switch (r) {
    case cache::EvictedModel::Reason::kUnused:
      return "older-than";
    case cache::EvictedModel::Reason::kMaxBytes:
      return "max-bytes";
    case cache::EvictedModel::Reason::kAll:
      return "clear";
  }
  return "";
}

void print_eviction(const std::string& operation, const fs::path& dir, const cache::Eviction& e,
                    const CommonOptions& common) {
  const uint64_t freed = e.bytes_before - e.bytes_after + e.temp_bytes;
  if (common.json) {
    JsonWriter w;
    w.begin_object();
    w.key("operation").string(operation);
    w.key("dir").string(dir.string());
    w.key("removed").begin_array();
    for (const cache::EvictedModel& m : e.models) {
      w.begin_object();
      w.key("url").string(m.url);
      w.key("key").string(m.key);
      w.key("lastUsed").string(iso_date(m.last_used));
      w.key("reason").string(reason_text(m.reason));
      w.end_object();
    }
    w.end_array();
    w.key("blobs").uint(e.blobs);
    w.key("tempFiles").uint(e.temp_files);
    w.key("unreadableSnapshots").uint(e.unreadable);
    w.key("bytesFreed").uint(freed);
    w.key("blobBytes").uint(e.bytes_after);
    w.end_object();
    std::cout << w.str();
    return;
  }
  if (common.quiet) return;
  for (const cache::EvictedModel& m : e.models) {
    std::cout << "removed " << m.url << " (last used " << iso_date(m.last_used);
    switch (m.reason) {
      case cache::EvictedModel::Reason::kUnused:
        std::cout << ", unused for longer than --older-than)\n";
        break;
      case cache::EvictedModel::Reason::kMaxBytes:
        std::cout << ", least recently used over --max-bytes)\n";
        break;
      case cache::EvictedModel::Reason::kAll:
        std::cout << ")\n";
        break;
    }
  }
  std::cout << operation << " " << dir.string() << ": " << e.models.size()
            << (e.models.size() == 1 ? " model, " : " models, ") << e.blobs
            << (e.blobs == 1 ? " blob file, " : " blob files, ") << e.temp_files
            << (e.temp_files == 1 ? " temporary file" : " temporary files");
  if (e.unreadable > 0) std::cout << ", " << e.unreadable << " unreadable snapshots";
  std::cout << " removed; " << bytes_text(freed) << " freed; blobs now "
            << bytes_text(e.bytes_after) << "\n";
}

int run_prune(const CacheArgs& a, const CommonOptions& common) {
  cache::EvictionPolicy policy;
  policy.max_bytes = a.max_bytes;
  if (!a.older_than.empty()) policy.unused_since = Clock::now() - parse_duration(a.older_than);
  const fs::path dir = cache_dir(a, common);
  std::optional<CacheStore> store = CacheStore::open_existing(dir);
  if (!store) {
    if (common.json) {
      print_eviction("pruned", dir, {}, common);
    } else if (!common.quiet) {
      std::cout << missing_note(dir) << ": nothing to prune\n";
    }
    return kExitOk;
  }
  // As the plugin's eviction: exclusive, so no load is between reading a
  // snapshot and opening its blobs, and no fill between writing its blobs
  // and publishing the snapshot naming them.
  FileLock exclusive = store->lock_cache(FileLock::Mode::kExclusive);
  print_eviction("pruned", dir, store->evict(policy), common);
  return kExitOk;
}

int run_clear(const CacheArgs& a, const CommonOptions& common) {
  const fs::path dir = cache_dir(a, common);
  std::optional<CacheStore> store = CacheStore::open_existing(dir);
  if (!store) {
    if (common.json) {
      print_eviction("cleared", dir, {}, common);
    } else if (!common.quiet) {
      std::cout << missing_note(dir) << ": nothing to clear\n";
    }
    return kExitOk;
  }
  cache::EvictionPolicy policy;
  policy.all = true;
  // Under the exclusive lock no live fill has a file in tmp/.
  policy.temp_age = std::chrono::seconds(0);
  FileLock exclusive = store->lock_cache(FileLock::Mode::kExclusive);
  print_eviction("cleared", dir, store->evict(policy), common);
  return kExitOk;
}

// ---- verify ----------------------------------------------------------------

int run_verify(const CacheArgs& a, const CommonOptions& common) {
  const fs::path dir = cache_dir(a, common);
  std::optional<CacheStore> store = CacheStore::open_existing(dir);
  std::vector<cache::Problem> problems;
  size_t models = 0;
  if (store) {
    FileLock shared = store->lock_cache(FileLock::Mode::kShared);
    problems = store->verify();
    models = store->models().size();
  }
  if (common.json) {
    JsonWriter w;
    w.begin_object();
    w.key("dir").string(dir.string());
    w.key("ok").boolean(problems.empty());
    w.key("models").uint(models);
    w.key("problems").begin_array();
    for (const cache::Problem& p : problems) {
      w.begin_object();
      w.key("path").string(p.path);
      w.key("problem").string(p.what);
      w.end_object();
    }
    w.end_array();
    w.end_object();
    std::cout << w.str();
  } else {
    for (const cache::Problem& p : problems) {
      std::cout << "problem: " << p.path << ": " << one_line(p.what) << "\n";
    }
    if (!store) {
      std::cout << missing_note(dir) << "\n";
    } else if (problems.empty()) {
      std::cout << "OK " << dir.string() << ": " << models << (models == 1 ? " model" : " models")
                << ", every snapshot and blob whole and matching its SHA-256\n";
    }
  }
  if (!problems.empty()) {
    throw Error(ErrorCode::kDataLoss, "the cache " + dir.string() + " has " +
                                          std::to_string(problems.size()) +
                                          (problems.size() == 1 ? " problem" : " problems") +
                                          "; 'stowage cache clear' empties it");
  }
  return kExitOk;
}

CLI::App* add_cache_subcommand(CLI::App& cache, CommonOptions& common, Runner& run,
                               std::shared_ptr<CacheArgs> args, const char* name,
                               const char* description,
                               int (*body)(const CacheArgs&, const CommonOptions&)) {
  CLI::App* sub = cache.add_subcommand(name, description);
  sub->add_option("--dir", args->dir,
                  "The cache folder (default: the config's defaults.cache.dir, else "
                  "$STOWAGE_CACHE_DIR, else $XDG_CACHE_HOME/stowage, else ~/.cache/stowage)");
  add_common_options(*sub, common);
  sub->callback(
      [&run, &common, args, body] { run = [&common, args, body] { return body(*args, common); }; });
  return sub;
}

}  // namespace

void add_cache_command(CLI::App& app, CommonOptions& common, Runner& run) {
  CLI::App* cache = app.add_subcommand(
      "cache",
      "Look into and tidy the folder of the pull-through cache (cache+ URLs): list, info, "
      "prune, clear, verify");
  cache->require_subcommand(1);
  auto args = std::make_shared<CacheArgs>();
  add_cache_subcommand(*cache, common, run, args, "list",
                       "The cached models, most recently used first: URL (without secrets), "
                       "version, files, bytes, when fetched, validated and last used",
                       run_list)
      ->alias("ls");
  CLI::App* info = add_cache_subcommand(
      *cache, common, run, args, "info",
      "One cached model's snapshot: version, dates and each file with its blob", run_info);
  info->add_option("URL", args->url,
                   "The model's URL, with or without cache+ (e.g. "
                   "cache+https://host/m/model.json)")
      ->required();
  CLI::App* prune = add_cache_subcommand(
      *cache, common, run, args, "prune",
      "Remove whole models, least recently used first, until the blobs fit --max-bytes, and "
      "models unused for longer than --older-than; then the blobs no model names and stale "
      "temporary files",
      run_prune);
  prune->add_option("--max-bytes", args->max_bytes,
                    "Remove least-recently-used models until the blobs take at most N bytes");
  prune->add_option("--older-than", args->older_than,
                    "Remove models not used for longer than D: 30d, 12h, 90m, 3600s");
  add_cache_subcommand(*cache, common, run, args, "clear",
                       "Remove every model, blob and temporary file (the folder stays a cache)",
                       run_clear);
  add_cache_subcommand(*cache, common, run, args, "verify",
                       "Check every snapshot and blob: whole, present, and matching its SHA-256",
                       run_verify);
}

}  // namespace stowage::cli
