// TF.js's BrowserIndexedDB (spec §4.3) over an origin's SQLite store, with
// each model's weight data in an immutable blob file that the SQLite
// transaction publishes (indexed_db_internal.hpp).
#include <fcntl.h>
#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <random>
#include <set>
#include <utility>

#include "base64_internal.hpp"
#include "indexed_db_internal.hpp"
#include "stowage/base64.hpp"
#include "stowage/digest.hpp"
#include "stowage/error.hpp"
#include "stowage/model_json.hpp"
#include "stowage/unique_fd.hpp"

namespace stowage::browser {
namespace {

namespace fs = std::filesystem;

std::string quoted_path(const std::string& path) { return "'" + path + "'"; }

// The store's name in the generation keys.
constexpr std::string_view kGenerationStore = "indexeddb";

Error not_found(const std::string& path) {
  return Error(ErrorCode::kNotFound,
               "Cannot find model with path " + quoted_path(path) + " in IndexedDB.");
}

// The models_store record's key for the weight data's SHA-256 (beside
// modelPath, modelArtifacts and modelArtifactsInfo: TF.js's load returns the
// record's modelArtifacts alone, so it never sees the key). The SQLite store
// keeps it as the meta row "weight_sha256/<blob id>": a digest belongs to one
// immutable blob file, so a record a stowage without digests rewrites (a new
// file) can never be checked against its predecessor's digest.
constexpr std::string_view kDigestKey = "weightDataSha256";
constexpr std::string_view kDigestPrefix = "weight_sha256/";
// What the key adds to the record's JSON: ,"weightDataSha256":"<64 hex>".
constexpr uint64_t kDigestRecordBytes = 1 + (kDigestKey.size() + 2) + 1 + (kSha256HexSize + 2);

// Bytes the records of one model count against the quota.
uint64_t record_bytes(const std::string& path, const std::string& artifacts,
                      const std::string& info, uint64_t weight_bytes, bool digest) {
  return 2 * (path.size() + info.size()) + artifacts.size() + weight_bytes +
         (digest ? kDigestRecordBytes : 0);
}

// ?2 is kDigestRecordBytes, ?3 kDigestPrefix.
constexpr const char* kUsageSql =
    "SELECT (SELECT COALESCE(SUM(length(CAST(model_path AS BLOB)) + length(CAST(artifacts AS "
    "BLOB)) + length(CAST(info AS BLOB)) + weight_bytes + (CASE WHEN EXISTS(SELECT 1 FROM meta "
    "WHERE key = ?3 || weight_blob) THEN ?2 ELSE 0 END)), 0) FROM idb_models_store WHERE "
    "model_path IS NOT ?1) + (SELECT COALESCE(SUM(length(CAST(model_path AS BLOB)) + "
    "length(CAST(info AS BLOB))), 0) FROM idb_model_info_store WHERE model_path IS NOT ?1)";

std::string digest_meta_key(std::string_view blob) {
  return std::string(kDigestPrefix) + std::string(blob);
}

// The digest recorded for a blob file; none for a record saved without one.
std::optional<std::string> blob_digest(Database& db, std::string_view blob) {
  const std::string key = digest_meta_key(blob);  // bound, not copied: lives past step()
  Statement s(db, "SELECT value FROM meta WHERE key = ?");
  s.bind_text(0, key);
  if (!s.step()) return std::nullopt;
  return std::string(s.column_text(0));
}

// Drops the digests of blob files no record names any more (replaced or
// removed models). Runs inside the caller's write transaction.
void forget_unnamed_digests(Database& db) {
  Statement s(db,
              "DELETE FROM meta WHERE substr(key, 1, ?1) = ?2 AND substr(key, ?1 + 1) NOT IN "
              "(SELECT weight_blob FROM idb_models_store WHERE weight_blob IS NOT NULL)");
  s.bind_int(0, static_cast<int64_t>(kDigestPrefix.size())).bind_text(1, kDigestPrefix);
  s.step();
}

// The weight data of a record with a digest, as one buffer described by a
// manifest of one group, one path and that digest: the host checks it as it
// checks any weight file (docs/integrity.md).
void describe_by_digest(ModelArtifacts& a, std::string digest, const std::string& url) {
  if (!is_sha256_hex(digest)) {
    throw Error(ErrorCode::kDataLoss, url + ": the recorded " + std::string(kDigestKey) +
                                          " of its weight data is not 64 lowercase hex digits");
  }
  WeightGroup group;
  group.paths = {"weightData"};
  group.weights = a.weight_specs.value_or(std::vector<WeightSpec>{});
  group.sha256 = std::vector<std::string>{std::move(digest)};
  a.weights_manifest = WeightsManifest{std::move(group)};
}

// The origin's usage, leaving out the records of `path` (none for "").
uint64_t usage(Database& db, const std::string& path) {
  Statement s(db, kUsageSql);
  if (path.empty()) {
    s.bind_null(0);
  } else {
    s.bind_text(0, path);
  }
  s.bind_int(1, static_cast<int64_t>(kDigestRecordBytes)).bind_text(2, kDigestPrefix);
  s.step();
  return static_cast<uint64_t>(s.column_int(0));
}

Error sys_error(int err, const std::string& what) {
  ErrorCode code = ErrorCode::kInternal;
  if (err == EACCES || err == EPERM || err == EROFS) code = ErrorCode::kPermissionDenied;
  if (err == ENOSPC || err == EDQUOT || err == EFBIG || err == ENOMEM) {
    code = ErrorCode::kResourceExhausted;
  }
  if (err == EIO) code = ErrorCode::kDataLoss;
  return Error(code, what + ": " + std::strerror(err));
}

// A new blob id: 32 random hex digits.
std::string new_blob_id() {
  static thread_local std::mt19937_64 rng(std::random_device{}() ^
                                          (static_cast<uint64_t>(::getpid()) << 32));
  char id[33];
  std::snprintf(id, sizeof id, "%016llx%016llx", static_cast<unsigned long long>(rng()),
                static_cast<unsigned long long>(rng()));
  return id;
}

// The lock of the blob folder: held shared by every save from before it
// creates its file until its transaction ended, and exclusively by the
// garbage collector, which so never deletes a file a save may still publish.
class FolderLock {
 public:
  FolderLock(const fs::path& folder, bool exclusive) {
    fd_ = ::open((folder / ".lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ < 0) {
      if (exclusive) return;
      throw sys_error(errno, "Cannot open " + (folder / ".lock").string());
    }
    int rc;
    do {
      rc = ::flock(fd_, exclusive ? LOCK_EX | LOCK_NB : LOCK_SH);
    } while (rc != 0 && errno == EINTR);
    if (rc != 0) {
      const int err = errno;
      ::close(fd_);
      fd_ = -1;
      if (!exclusive) throw sys_error(err, "Cannot lock " + (folder / ".lock").string());
    }
  }
  ~FolderLock() {
    if (fd_ >= 0) ::close(fd_);  // releases the lock
  }
  FolderLock(const FolderLock&) = delete;
  FolderLock& operator=(const FolderLock&) = delete;
  bool held() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

void make_folder(const fs::path& folder) {
  if (::mkdir(folder.c_str(), 0700) != 0 && errno != EEXIST) {
    throw sys_error(errno, "Cannot create " + folder.string());
  }
}

void sync_folder(const fs::path& folder) {
  const int fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) throw sys_error(err, "Cannot sync " + folder.string());
}

// One blob file being written; deleted when destroyed unless published.
class BlobWriter {
 public:
  explicit BlobWriter(const fs::path& folder) : folder_(folder), lock_(folder, false) {
    for (int attempt = 0; fd_ < 0; ++attempt) {
      id_ = new_blob_id();
      fd_ = ::open(path().c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
      if (fd_ < 0 && (errno != EEXIST || attempt > 8)) {
        throw sys_error(errno, "Cannot create " + path().string());
      }
    }
  }
  ~BlobWriter() {
    if (fd_ >= 0) ::close(fd_);
    if (!published_) ::unlink(path().c_str());
  }
  BlobWriter(const BlobWriter&) = delete;
  BlobWriter& operator=(const BlobWriter&) = delete;

  const std::string& id() const { return id_; }
  fs::path path() const { return folder_ / id_; }

  // Writes the buffers in order; with `digest`, each piece is hashed just
  // before it is written (one pass over the bytes).
  void write(const WeightData& data, const Pace& pace, Sha256* digest = nullptr) {
    constexpr uint64_t kStep = 8ull << 20;
    for (const Buffer& b : data) {
      for (uint64_t at = 0; at < b.size();) {
        const uint64_t n = std::min(kStep, b.size() - at);
        if (digest != nullptr) digest->update(b.bytes().subspan(at, n));
        uint64_t put = 0;
        while (put < n) {
          const ssize_t w = ::write(fd_, b.data() + at + put, n - put);
          if (w < 0) {
            if (errno == EINTR) continue;
            throw sys_error(errno, "Cannot write " + path().string());
          }
          put += static_cast<uint64_t>(w);
        }
        at += n;
        if (pace.advance) pace.advance(n);
        if (pace.check) pace.check();
      }
    }
  }
  void finish(bool durable) {
    if (durable && ::fdatasync(fd_) != 0) throw sys_error(errno, "Cannot sync " + path().string());
    const int rc = ::close(fd_);
    fd_ = -1;
    if (rc != 0) throw sys_error(errno, "Cannot write " + path().string());
  }
  // The transaction naming the file committed: keep it.
  void published() { published_ = true; }

 private:
  fs::path folder_;
  FolderLock lock_;
  std::string id_;
  int fd_ = -1;
  bool published_ = false;
};

// Puts a models_store record, replacing one at `path`; blob is the weight
// file's id, or none for no weightData, and digest its SHA-256 when one is
// recorded. Returns the id of the file of the
// record it replaced, which the caller deletes after the commit. Runs inside
// the caller's transaction.
std::optional<std::string> put_model_record(Database& db, const std::string& path,
                                            const std::string& artifacts, const std::string& info,
                                            const std::optional<std::string>& blob,
                                            uint64_t weight_bytes,
                                            const std::optional<std::string>& digest) {
  std::optional<std::string> old_blob;
  {
    Statement old(db, "SELECT weight_blob FROM idb_models_store WHERE model_path = ?");
    old.bind_text(0, path);
    if (old.step() && !old.is_null(0)) old_blob = std::string(old.column_text(0));
  }
  Statement put(db,
                "INSERT OR REPLACE INTO idb_models_store(model_path, artifacts, info, weight_blob, "
                "weight_bytes) VALUES(?, ?, ?, ?, ?)");
  put.bind_text(0, path).bind_text(1, artifacts).bind_text(2, info);
  if (blob) {
    put.bind_text(3, *blob);
  } else {
    put.bind_null(3);
  }
  put.bind_int(4, static_cast<int64_t>(weight_bytes));
  put.step();
  if (blob && digest) {
    Statement(db, "INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)")
        .bind_text(0, digest_meta_key(*blob))
        .bind_text(1, *digest)
        .step();
  }
  return old_blob;
}

void put_info_record(Database& db, const std::string& path, const std::string& info) {
  Statement(db, "INSERT OR REPLACE INTO idb_model_info_store(model_path, info) VALUES(?, ?)")
      .bind_text(0, path)
      .bind_text(1, info)
      .step();
}

// Deletes blob files no record names, unless a save is running (it may be
// about to publish its file).
void collect_garbage(Database& db, const fs::path& folder) {
  std::error_code ec;
  if (!fs::is_directory(folder, ec)) return;
  FolderLock lock(folder, /*exclusive=*/true);
  if (!lock.held()) return;
  std::set<std::string, std::less<>> named;
  {
    Transaction t(db, /*write=*/false);
    Statement s(db, "SELECT weight_blob FROM idb_models_store WHERE weight_blob IS NOT NULL");
    while (s.step()) named.emplace(s.column_text(0));
  }
  for (const auto& entry : fs::directory_iterator(folder, ec)) {
    const std::string name = entry.path().filename().string();
    if (name != ".lock" && named.count(name) == 0) ::unlink(entry.path().c_str());
  }
}

// Opens a record's blob file and checks its size. Called inside a read
// transaction, so no save or remove can have deleted it yet (files are
// deleted after commits).
UniqueFd open_blob(const fs::path& folder, const std::string& id, uint64_t expected,
                   const std::string& url) {
  const fs::path file = folder / id;
  UniqueFd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ENOENT) {
      throw Error(ErrorCode::kDataLoss,
                  url + ": the weight data file " + file.string() + " is missing");
    }
    throw sys_error(errno, "Cannot open " + file.string());
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw sys_error(errno, "Cannot stat " + file.string());
  if (static_cast<uint64_t>(st.st_size) != expected) {
    throw Error(ErrorCode::kDataLoss, url + ": the weight data file " + file.string() + " has " +
                                          std::to_string(st.st_size) + " bytes, the record says " +
                                          std::to_string(expected));
  }
  return fd;
}

// Compact JSON of a parsed value, then in JSON.stringify form.
std::string stringify(const rapidjson::Value& v, const std::string& source) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  v.Accept(w);
  return json::normalize(std::string_view(buf.GetString(), buf.GetSize()), source);
}

}  // namespace

uint64_t default_indexeddb_quota(const fs::path& profile) {
  fs::path at = profile;
  struct statvfs st {};
  while (::statvfs(at.c_str(), &st) != 0) {
    if (!at.has_parent_path() || at.parent_path() == at) return 0;
    at = at.parent_path();
  }
  const long double total = static_cast<long double>(st.f_blocks) * st.f_frsize;
  return static_cast<uint64_t>(total * 0.6L);
}

// The quota check of a save: throws when `needed` more bytes at `path` do
// not fit. Runs inside a transaction.
void IndexedDb::check_quota(Database& db, const std::string& path, uint64_t needed) const {
  const uint64_t others = usage(db, path);
  const uint64_t before = usage(db, "");
  if (others + needed <= quota_ || others + needed <= before) return;
  const uint64_t free = quota_ > others ? quota_ - others : 0;
  throw Error(ErrorCode::kResourceExhausted,
              "Failed to save model " + quoted_path(path) +
                  " to IndexedDB: the IndexedDB quota of origin " + where_.origin +
                  " would be exceeded: the model needs " + std::to_string(needed) + " bytes and " +
                  std::to_string(free) + " bytes are free (quota " + std::to_string(quota_) +
                  " bytes, counting the weight bytes and the UTF-8 bytes of the records' JSON). "
                  "Nothing was written; the model previously saved there, if any, is unchanged.");
}

ModelArtifactsInfo IndexedDb::save_model(const std::string& path, const ModelArtifacts& artifacts,
                                         bool record_digest, const Pace& pace) const {
  const ModelArtifactsInfo info = artifacts_info(artifacts);
  const std::string info_json = info_to_json(info);
  ModelArtifacts record = artifacts;
  record.weight_data.reset();
  record.weights_manifest.reset();
  const std::string artifacts_json = artifacts_to_json(record);
  const uint64_t weight_bytes = artifacts.weight_data ? total_size(*artifacts.weight_data) : 0;
  const bool digest = record_digest && artifacts.weight_data.has_value();
  const uint64_t needed = record_bytes(path, artifacts_json, info_json, weight_bytes, digest);
  if (pace.set_total) pace.set_total(weight_bytes);
  if (pace.check) pace.check();

  auto db = Database::open(where_, /*create=*/true, settings_);
  {
    // Refused before any byte is written; checked again when publishing.
    Transaction t(*db, /*write=*/false);
    check_quota(*db, path, needed);
  }
  const fs::path folder = blob_folder(where_);
  std::optional<BlobWriter> blob;
  std::optional<std::string> digest_hex;
  if (artifacts.weight_data) {
    make_folder(folder);
    blob.emplace(folder);
    Sha256 hash;
    blob->write(*artifacts.weight_data, pace, digest ? &hash : nullptr);
    if (digest) digest_hex = hash.finish_hex();
    blob->finish(settings_.durable);
    if (settings_.durable) sync_folder(folder);
  }
  if (pace.check) pace.check();
  std::optional<std::string> replaced;
  {
    Transaction t(*db, /*write=*/true);
    check_quota(*db, path, needed);
    replaced = put_model_record(*db, path, artifacts_json, info_json,
                                blob ? std::optional<std::string>(blob->id()) : std::nullopt,
                                weight_bytes, digest_hex);
    put_info_record(*db, path, info_json);
    forget_unnamed_digests(*db);
    bump_generations(*db, kGenerationStore, {path});
    t.commit();
  }
  if (blob) blob->published();
  if (replaced) ::unlink((folder / *replaced).c_str());
  blob.reset();  // releases the folder lock before collecting
  collect_garbage(*db, folder);
  return info;
}

ModelArtifacts IndexedDb::load_model(const std::string& path, const Pace& pace) const {
  const std::string url = "indexeddb://" + path;
  auto db = Database::open(where_, /*create=*/false, settings_);
  if (!db) throw not_found(path);
  ModelArtifacts a;
  std::optional<UniqueFd> file;
  uint64_t size = 0;
  std::optional<std::string> digest;
  {
    Transaction t(*db, /*write=*/false);
    Statement s(*db,
                "SELECT artifacts, weight_blob, weight_bytes FROM idb_models_store WHERE "
                "model_path = ?");
    s.bind_text(0, path);
    if (!s.step()) throw not_found(path);
    a = parse_model_json(s.column_text(0), url);
    a.weights_manifest.reset();
    if (!s.is_null(1)) {
      size = static_cast<uint64_t>(s.column_int(2));
      const std::string blob(s.column_text(1));
      file.emplace(open_blob(blob_folder(where_), blob, size, url));
      digest = blob_digest(*db, blob);
    }
  }
  if (!file) return a;
  if (pace.set_total) pace.set_total(size);
  WeightData data;
  if (size == 0) {
    data.push_back(Buffer::wrap(nullptr, 0, nullptr, url));
  } else {
    // The file is never written again and a later save or remove only
    // deletes its name, so the mapping stays valid while any slice lives.
    // Private and writable, as in the file plugin: a stray write through a
    // JavaScript ArrayBuffer copies the page instead of crashing.
    void* addr = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, file->get(), 0);
    if (addr == MAP_FAILED) throw sys_error(errno, url + ": cannot map the weight data file");
    ::madvise(addr, size, MADV_SEQUENTIAL);
    std::shared_ptr<const void> owner(
        addr, [size](const void* p) { ::munmap(const_cast<void*>(p), size); });
    const auto* bytes = static_cast<const uint8_t*>(addr);
    // With a digest, one slice: the host checks one buffer per manifest path.
    const uint64_t chunk = digest ? size : chunk_size_;
    data.reserve(static_cast<size_t>((size + chunk - 1) / chunk));
    for (uint64_t at = 0; at < size; at += chunk) {
      data.push_back(Buffer::wrap(bytes + at, std::min(chunk, size - at), owner, url));
    }
  }
  if (pace.advance) pace.advance(size);
  a.weight_data = std::move(data);
  if (digest) describe_by_digest(a, std::move(*digest), url);
  return a;
}

ModelStat IndexedDb::stat_model(const std::string& path) const {
  const std::string url = "indexeddb://" + path;
  auto missing = [&] {
    return Error(ErrorCode::kNotFound, "No model at " + url + ": cannot find model with path " +
                                           quoted_path(path) + " in IndexedDB.");
  };
  auto db = Database::open(where_, /*create=*/false, settings_);
  if (!db) throw missing();
  Transaction t(*db, /*write=*/false);
  Statement s(*db,
              "SELECT artifacts, info, weight_blob, weight_bytes FROM idb_models_store WHERE "
              "model_path = ?");
  s.bind_text(0, path);
  if (!s.step()) throw missing();
  ModelStat out;
  out.model = parse_model_json(s.column_text(0), url);
  out.model.weights_manifest.reset();
  const ModelArtifactsInfo stored = info_from_json(s.column_text(1), url);
  out.info = artifacts_info(out.model, stored.date_saved);
  std::string blob;
  if (!s.is_null(2)) {
    // Opened (and its size checked) as load opens it, so a stat fails where
    // a load would; its bytes are not read.
    blob = std::string(s.column_text(2));
    const auto size = static_cast<uint64_t>(s.column_int(3));
    open_blob(blob_folder(where_), blob, size, url);
    out.info.weight_data_bytes = size;  // load gives the file's bytes, in one buffer or more
    if (std::optional<std::string> digest = blob_digest(*db, blob)) {
      describe_by_digest(out.model, std::move(*digest), url);
    }
  }
  // The blob file's name is new with every save of weights, also by a
  // stowage that writes no generations.
  out.version = "indexeddb/" + std::to_string(generation(*db, kGenerationStore, path)) + "/" + blob;
  return out;
}

std::vector<std::pair<std::string, ModelArtifactsInfo>> IndexedDb::list_models(
    std::string_view prefix) const {
  std::vector<std::pair<std::string, ModelArtifactsInfo>> out;
  auto db = Database::open(where_, /*create=*/false, settings_);
  if (!db) return out;
  const std::string under =
      prefix.empty() || prefix.ends_with('/') ? std::string(prefix) : std::string(prefix) + "/";
  Statement s(*db, "SELECT model_path, info FROM idb_model_info_store ORDER BY model_path");
  while (s.step()) {
    std::string path(s.column_text(0));
    if (!prefix.empty() && path != prefix && !path.starts_with(under)) continue;
    out.emplace_back(path, info_from_json(s.column_text(1), "indexeddb://" + path));
  }
  return out;
}

ModelArtifactsInfo IndexedDb::remove_model(const std::string& path) const {
  auto db = Database::open(where_, /*create=*/false, settings_);
  if (!db) throw not_found(path);
  std::optional<std::string> blob;
  ModelArtifactsInfo info;
  {
    Transaction t(*db, /*write=*/true);
    Statement get(*db, "SELECT info FROM idb_model_info_store WHERE model_path = ?");
    get.bind_text(0, path);
    if (!get.step()) throw not_found(path);
    info = info_from_json(get.column_text(0), "indexeddb://" + path);
    Statement old(*db, "SELECT weight_blob FROM idb_models_store WHERE model_path = ?");
    old.bind_text(0, path);
    if (old.step() && !old.is_null(0)) blob = std::string(old.column_text(0));
    Statement(*db, "DELETE FROM idb_models_store WHERE model_path = ?").bind_text(0, path).step();
    Statement(*db, "DELETE FROM idb_model_info_store WHERE model_path = ?")
        .bind_text(0, path)
        .step();
    forget_generation(*db, kGenerationStore, path);
    forget_unnamed_digests(*db);
    t.commit();
  }
  const fs::path folder = blob_folder(where_);
  if (blob) ::unlink((folder / *blob).c_str());
  collect_garbage(*db, folder);
  return info;
}

uint64_t IndexedDb::used_bytes() const {
  auto db = Database::open(where_, /*create=*/false, settings_);
  return db ? usage(*db, "") : 0;
}

void IndexedDb::export_json(const std::function<void(std::string_view)>& write) const {
  write(R"({"database":"tensorflowjs","version":1,"models_store":[)");
  auto db = Database::open(where_, /*create=*/false, settings_);
  std::string text;
  if (db) {
    const fs::path folder = blob_folder(where_);
    Transaction t(*db, /*write=*/false);
    Statement s(*db,
                "SELECT model_path, artifacts, info, weight_blob, weight_bytes FROM "
                "idb_models_store ORDER BY model_path");
    constexpr uint64_t kStep = 3ull << 20;  // a multiple of 3: no padding inside
    std::unique_ptr<uint8_t[]> scratch;
    for (bool first = true; s.step(); first = false) {
      const std::string_view artifacts = s.column_text(1);
      text.assign(first ? 0 : 1, ',');
      text += "{\"modelPath\":";
      text += json::quote(s.column_text(0));
      text += ",\"modelArtifacts\":";
      if (s.is_null(3)) {
        text += artifacts;
      } else {
        text += artifacts.substr(0, artifacts.size() - 1);
        text += artifacts.size() > 2 ? ",\"weightData\":\"" : "\"weightData\":\"";
        write(text);
        const std::string url = "indexeddb://" + std::string(s.column_text(0));
        const auto size = static_cast<uint64_t>(s.column_int(4));
        UniqueFd file = open_blob(folder, std::string(s.column_text(3)), size, url);
        if (!scratch) scratch.reset(new uint8_t[kStep]);
        Base64Encoder encoder;
        for (uint64_t at = 0; at < size;) {
          const ssize_t n = ::pread(file.get(), scratch.get(), std::min(kStep, size - at),
                                    static_cast<off_t>(at));
          if (n <= 0) {
            if (n < 0 && errno == EINTR) continue;
            throw sys_error(n < 0 ? errno : EIO, url + ": cannot read the weight data file");
          }
          text.clear();
          encoder.add({scratch.get(), static_cast<size_t>(n)}, text);
          write(text);
          at += static_cast<uint64_t>(n);
        }
        text.clear();
        encoder.finish(text);
        text += "\"}";
      }
      text += ",\"modelArtifactsInfo\":";
      text += s.column_text(2);
      if (!s.is_null(3)) {
        if (std::optional<std::string> digest = blob_digest(*db, s.column_text(3))) {
          text += ",\"" + std::string(kDigestKey) + "\":" + json::quote(*digest);
        }
      }
      text += "}";
      write(text);
    }
    write(R"(],"model_info_store":[)");
    Statement info(*db, "SELECT model_path, info FROM idb_model_info_store ORDER BY model_path");
    for (bool first = true; info.step(); first = false) {
      text.assign(first ? 0 : 1, ',');
      text += "{\"modelPath\":";
      text += json::quote(info.column_text(0));
      text += ",\"modelArtifactsInfo\":";
      text += info.column_text(1);
      text += "}";
      write(text);
    }
  } else {
    write(R"(],"model_info_store":[)");
  }
  write("]}");
}

size_t IndexedDb::import_json(std::string_view dump, bool clear, const Pace& pace) const {
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseFullPrecisionFlag>(dump.data(), dump.size());
  if (doc.HasParseError()) {
    throw Error(ErrorCode::kInvalidArgument, std::string("The IndexedDB dump is not valid JSON: ") +
                                                 rapidjson::GetParseError_En(doc.GetParseError()) +
                                                 " at offset " +
                                                 std::to_string(doc.GetErrorOffset()));
  }
  auto bad = [](const std::string& where, const std::string& what) {
    return Error(ErrorCode::kInvalidArgument, "The IndexedDB dump's " + where + " " + what);
  };
  if (!doc.IsObject()) throw bad("top level", "must be an object");
  if (auto it = doc.FindMember("database");
      it != doc.MemberEnd() && !(it->value.IsString() && it->value == "tensorflowjs")) {
    throw bad("\"database\"", "must be \"tensorflowjs\"");
  }
  if (auto it = doc.FindMember("version");
      it != doc.MemberEnd() && !(it->value.IsNumber() && it->value.GetDouble() == 1)) {
    throw bad("\"version\"", "must be 1");
  }
  auto array = [&](const char* name) -> const rapidjson::Value& {
    auto it = doc.FindMember(name);
    if (it == doc.MemberEnd() || !it->value.IsArray()) {
      throw bad(std::string("\"") + name + "\"", "must be an array of records");
    }
    return it->value;
  };
  const rapidjson::Value& models = array("models_store");
  const rapidjson::Value& infos = array("model_info_store");

  struct ModelRecord {
    std::string path, artifacts, info;
    std::optional<WeightData> data;
    std::optional<std::string> digest;  // weightDataSha256, checked against data
  };
  struct InfoRecord {
    std::string path, info;
  };
  auto path_of = [&](const rapidjson::Value& r, const std::string& where) {
    if (!r.IsObject()) throw bad(where, "must be an object");
    auto p = r.FindMember("modelPath");
    if (p == r.MemberEnd() || !p->value.IsString() || p->value.GetStringLength() == 0) {
      throw bad(where + ".modelPath", "must be a non-empty string");
    }
    return std::string(p->value.GetString(), p->value.GetStringLength());
  };
  auto info_of = [&](const rapidjson::Value& r, const std::string& where) {
    auto i = r.FindMember("modelArtifactsInfo");
    if (i == r.MemberEnd() || !i->value.IsObject()) {
      throw bad(where + ".modelArtifactsInfo", "must be an object");
    }
    std::string info = stringify(i->value, where + ".modelArtifactsInfo");
    info_from_json(info, "The IndexedDB dump's " + where + ".modelArtifactsInfo");
    return info;
  };

  std::vector<ModelRecord> model_records;
  for (rapidjson::SizeType k = 0; k < models.Size(); ++k) {
    const std::string where = "models_store[" + std::to_string(k) + "]";
    const rapidjson::Value& r = models[k];
    ModelRecord rec;
    rec.path = path_of(r, where);
    auto a = r.FindMember("modelArtifacts");
    if (a == r.MemberEnd() || !a->value.IsObject()) {
      throw bad(where + ".modelArtifacts", "must be an object");
    }
    rapidjson::Document copy;
    copy.SetObject();
    for (const auto& m : a->value.GetObject()) {
      if (m.name == "weightData") {
        if (m.value.IsNull()) continue;
        if (!m.value.IsString()) {
          throw bad(where + ".modelArtifacts.weightData", "must be a base64 string");
        }
        const std::string_view text(m.value.GetString(), m.value.GetStringLength());
        uint64_t at = 0;
        const std::optional<uint64_t> size = base64_decoded_size(text, &at);
        if (!size) {
          throw bad(where + ".modelArtifacts.weightData",
                    "is not valid base64 (at character " + std::to_string(at) + ")");
        }
        std::shared_ptr<uint8_t[]> bytes(new uint8_t[std::max<uint64_t>(*size, 1)]);
        base64_decode(text, bytes.get());
        const uint8_t* p = bytes.get();
        rec.data = WeightData{Buffer::wrap(p, *size, std::move(bytes))};
        continue;
      }
      copy.AddMember(rapidjson::Value(m.name, copy.GetAllocator()),
                     rapidjson::Value(m.value, copy.GetAllocator()), copy.GetAllocator());
    }
    rec.artifacts = stringify(copy, where + ".modelArtifacts");
    parse_model_json(rec.artifacts, "The IndexedDB dump's " + where + ".modelArtifacts");
    rec.info = info_of(r, where);
    if (auto d = r.FindMember(kDigestKey.data()); d != r.MemberEnd()) {
      const std::string key = where + "." + std::string(kDigestKey);
      if (!d->value.IsString() ||
          !is_sha256_hex({d->value.GetString(), d->value.GetStringLength()})) {
        throw bad(key, "must be 64 lowercase hex digits (the SHA-256 of the weight data)");
      }
      if (!rec.data) throw bad(key, "is recorded for a record without weightData");
      rec.digest.emplace(d->value.GetString(), d->value.GetStringLength());
    }
    model_records.push_back(std::move(rec));
  }
  std::vector<InfoRecord> info_records;
  for (rapidjson::SizeType k = 0; k < infos.Size(); ++k) {
    const std::string where = "model_info_store[" + std::to_string(k) + "]";
    InfoRecord rec;
    rec.path = path_of(infos[k], where);
    rec.info = info_of(infos[k], where);
    info_records.push_back(std::move(rec));
  }

  uint64_t total = 0;
  for (const auto& r : model_records) total += r.data ? total_size(*r.data) : 0;
  if (pace.set_total) pace.set_total(total);
  auto db = Database::open(where_, /*create=*/true, settings_);
  const fs::path folder = blob_folder(where_);
  std::vector<std::unique_ptr<BlobWriter>> blobs(model_records.size());
  for (size_t i = 0; i < model_records.size(); ++i) {
    const ModelRecord& r = model_records[i];
    if (!r.data) continue;
    make_folder(folder);
    blobs[i] = std::make_unique<BlobWriter>(folder);
    Sha256 hash;
    blobs[i]->write(*r.data, pace, r.digest ? &hash : nullptr);
    if (r.digest) {
      const std::string actual = hash.finish_hex();
      if (actual != *r.digest) {
        throw Error(ErrorCode::kDataLoss, "The IndexedDB dump's models_store[" + std::to_string(i) +
                                              "] (modelPath " + quoted_path(r.path) +
                                              ") has weight data with SHA-256 " + actual +
                                              ", but its " + std::string(kDigestKey) + " records " +
                                              *r.digest + "; nothing was written");
      }
    }
    blobs[i]->finish(settings_.durable);
  }
  if (settings_.durable && std::any_of(blobs.begin(), blobs.end(), [](auto& b) { return !!b; })) {
    sync_folder(folder);
  }
  {
    Transaction t(*db, /*write=*/true);
    const uint64_t before = usage(*db, "");
    if (clear) {
      db->exec("DELETE FROM idb_models_store; DELETE FROM idb_model_info_store;");
      forget_generations(*db, kGenerationStore);
    }
    std::vector<std::string> paths;
    for (const auto& r : model_records) paths.push_back(r.path);
    for (const auto& r : info_records) paths.push_back(r.path);
    std::sort(paths.begin(), paths.end());
    paths.erase(std::unique(paths.begin(), paths.end()), paths.end());
    bump_generations(*db, kGenerationStore, paths);
    for (size_t i = 0; i < model_records.size(); ++i) {
      const ModelRecord& r = model_records[i];
      put_model_record(*db, r.path, r.artifacts, r.info,
                       blobs[i] ? std::optional<std::string>(blobs[i]->id()) : std::nullopt,
                       r.data ? total_size(*r.data) : 0, r.digest);
    }
    for (const auto& r : info_records) put_info_record(*db, r.path, r.info);
    forget_unnamed_digests(*db);
    const uint64_t after = usage(*db, "");
    if (after > quota_ && after > before) {
      throw Error(ErrorCode::kResourceExhausted,
                  "The IndexedDB records would take " + std::to_string(after) +
                      " bytes, more than the quota of origin " + where_.origin + " (" +
                      std::to_string(quota_) + " bytes); nothing was written");
    }
    t.commit();
  }
  for (auto& b : blobs) {
    if (b) b->published();
  }
  blobs.clear();
  // The files of replaced and cleared records are named by no record now.
  collect_garbage(*db, folder);
  return model_records.size();
}

}  // namespace stowage::browser
