// sqlite:// — TF.js models in one SQLite database file. A third-party plugin,
// built out of tree against the installed stowage SDK (the C++ kit and its
// blob-store adapter), as docs/plugin-guide.md describes.
//
// USAGE
//
//   sqlite:///srv/models.db#mnist        the model "mnist" in /srv/models.db
//   sqlite://models.db#team/mnist-v2     a database relative to the working
//                                        directory; '/' makes folders
//   sqlite:///srv/models.db#team         list: every model under "team/"
//   sqlite:///srv/models.db#             list: every model in the file
//
//   The database path ends at the first '#'. Each model is kept in TF.js's
//   file layout (model.json and weights.bin, or group1-shardNofM.bin files)
//   as rows of one table, stowage_blobs(key, data, modified). A save is one
//   transaction; loads read one snapshot (WAL mode), so they see the old
//   model or the new one, never a mix. Loads and lists never create the file.
//
//   Options: "shard_size" (bytes per weight file; 0, the default, writes one
//   weights.bin) and "busy_timeout_ms" (how long to wait for a writer,
//   default 10000).
#include <sqlite3.h>

#include "stowage/blob_store.hpp"

namespace {

using namespace stowage;
using namespace stowage::plugin;

// A SQLite result code as a stowage error naming the database.
[[noreturn]] void fail(int rc, sqlite3* db, const std::string& path) {
  ErrorCode code = ErrorCode::kInternal;
  if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) code = ErrorCode::kUnavailable;
  if (rc == SQLITE_FULL || rc == SQLITE_NOMEM) code = ErrorCode::kResourceExhausted;
  if (rc == SQLITE_PERM || rc == SQLITE_READONLY || rc == SQLITE_CANTOPEN) {
    code = ErrorCode::kPermissionDenied;
  }
  if (rc == SQLITE_CORRUPT || rc == SQLITE_NOTADB) code = ErrorCode::kDataLoss;
  throw Error(code,
              "SQLite database " + path + ": " + (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc)),
              code == ErrorCode::kUnavailable);
}

// One connection, used by one thread. `writable` creates the file.
class Db {
 public:
  Db(const std::string& path, int timeout_ms, bool writable) : path_(path) {
    int flags = writable ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE : SQLITE_OPEN_READONLY;
    int rc = sqlite3_open_v2(path.c_str(), &db_, flags | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) {
      missing_ = !writable && rc == SQLITE_CANTOPEN;
      if (!missing_) fail(rc, db_, path_);
      return;
    }
    sqlite3_busy_timeout(db_, timeout_ms);
    if (writable) {
      exec("PRAGMA journal_mode=WAL");
      exec(
          "CREATE TABLE IF NOT EXISTS stowage_blobs (key TEXT PRIMARY KEY, data BLOB NOT NULL, "
          "modified INTEGER NOT NULL)");
    }
  }
  ~Db() { sqlite3_close(db_); }
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  bool missing() const { return missing_; }
  void exec(const char* sql) {
    if (int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr); rc != SQLITE_OK) {
      fail(rc, db_, path_);
    }
  }
  // Runs sql with text/blob parameters, calling row(stmt) per result row.
  template <typename Row>
  void query(const char* sql, const std::vector<std::string_view>& texts, Row&& row,
             const std::vector<Buffer>* blob = nullptr) {
    if (missing_) return;
    sqlite3_stmt* st = nullptr;
    int rc = sqlite3_prepare_v2(db_, sql, -1, &st, nullptr);
    if (rc == SQLITE_ERROR && std::string_view(sqlite3_errmsg(db_)).starts_with("no such table")) {
      return;  // a database no model was ever saved in
    }
    if (rc != SQLITE_OK) fail(rc, db_, path_);
    std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> guard(st, sqlite3_finalize);
    int i = 1;
    for (std::string_view t : texts)
      sqlite3_bind_text(st, i++, t.data(), int(t.size()), SQLITE_STATIC);
    std::string joined;
    if (blob) {
      for (const Buffer& b : *blob) joined += b.view();
      sqlite3_bind_blob64(st, i++, joined.data(), joined.size(), SQLITE_STATIC);
      sqlite3_bind_int64(st, i,
                         std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count());
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) row(st);
    if (rc != SQLITE_DONE) fail(rc, db_, path_);
  }

 private:
  std::string path_;
  sqlite3* db_ = nullptr;
  bool missing_ = false;
};

std::optional<Buffer> read_blob(Db& db, const std::string& key) {
  std::optional<Buffer> out;
  db.query("SELECT data FROM stowage_blobs WHERE key = ?", {key}, [&](sqlite3_stmt* st) {
    auto* p = static_cast<const uint8_t*>(sqlite3_column_blob(st, 0));
    out = Buffer::copy_of({p, size_t(sqlite3_column_bytes(st, 0))});
  });
  return out;
}

BlobInfo info_of(sqlite3_stmt* st) {
  return {reinterpret_cast<const char*>(sqlite3_column_text(st, 0)),
          uint64_t(sqlite3_column_int64(st, 1)),
          std::chrono::system_clock::time_point(
              std::chrono::milliseconds(sqlite3_column_int64(st, 2)))};
}

class SqliteStore final : public BlobStore {
 public:
  SqliteStore(std::string path, std::string url_prefix, int timeout_ms)
      : path_(std::move(path)), prefix_(std::move(url_prefix)), timeout_ms_(timeout_ms) {}

  // A write transaction on a connection of its own: BEGIN IMMEDIATE ... COMMIT.
  class Txn final : public Transaction {
   public:
    explicit Txn(const SqliteStore& s) : db_(s.path_, s.timeout_ms_, true) {
      db_.exec("BEGIN IMMEDIATE");
    }
    void put(const std::string& key, const std::vector<Buffer>& pieces, Call&) override {
      db_.query(
          "INSERT OR REPLACE INTO stowage_blobs (key, data, modified) VALUES (?, ?, ?)", {key},
          [](sqlite3_stmt*) {}, &pieces);
    }
    void remove(const std::vector<std::string>& keys, Call&) override {
      for (const auto& k : keys)
        db_.query("DELETE FROM stowage_blobs WHERE key = ?", {k}, [](sqlite3_stmt*) {});
    }
    void commit(Call&) override { db_.exec("COMMIT"); }
    void abort() noexcept override {
      try {
        db_.exec("ROLLBACK");
      } catch (const Error&) {
      }
    }

   private:
    Db db_;
  };

  // One read transaction: every get sees the same snapshot.
  class SnapshotReader final : public Reader {
   public:
    explicit SnapshotReader(const SqliteStore& s) : db_(s.path_, s.timeout_ms_, false) {
      if (!db_.missing()) db_.exec("BEGIN");
    }
    ~SnapshotReader() override {
      try {
        if (!db_.missing()) db_.exec("COMMIT");
      } catch (const Error&) {
      }
    }
    std::optional<Buffer> get(const std::string& key, Call&) override {
      return read_blob(db_, key);
    }

   private:
    Db db_;
  };

  std::optional<Buffer> get(const std::string& key, Call&) override {
    Db db(path_, timeout_ms_, false);
    return read_blob(db, key);
  }
  std::unique_ptr<Transaction> begin(Call&) override { return std::make_unique<Txn>(*this); }
  std::unique_ptr<Reader> reader(Call&) override { return std::make_unique<SnapshotReader>(*this); }
  std::vector<BlobInfo> list(const std::string& prefix, Call&) override {
    Db db(path_, timeout_ms_, false);
    std::vector<BlobInfo> out;
    db.query(
        "SELECT key, length(data), modified FROM stowage_blobs WHERE substr(key, 1, ?) = ? "
        "ORDER BY key",
        {std::to_string(prefix.size()), prefix},
        [&](sqlite3_stmt* st) { out.push_back(info_of(st)); });
    return out;
  }
  std::optional<BlobInfo> stat(const std::string& key, Call&) override {
    Db db(path_, timeout_ms_, false);
    std::optional<BlobInfo> out;
    db.query("SELECT key, length(data), modified FROM stowage_blobs WHERE key = ?", {key},
             [&](sqlite3_stmt* st) { out = info_of(st); });
    return out;
  }
  void remove(const std::vector<std::string>& keys, Call& call) override {
    Txn txn(*this);
    txn.remove(keys, call);
    txn.commit(call);
  }
  std::string url_of(const std::string& key) const override { return prefix_ + key; }

 private:
  std::string path_;
  std::string prefix_;  // "sqlite://<path>#"
  int timeout_ms_;
};

// "sqlite://<path>#<name>" -> {path, name}.
std::pair<std::string, std::string> split_url(std::string_view url) {
  std::string_view rest = url.substr(url.find("://") + 3);
  size_t hash = rest.find('#');
  std::string path(rest.substr(0, hash));
  std::string name(hash == std::string_view::npos ? std::string_view() : rest.substr(hash + 1));
  if (path.empty() || url.find('\0') != std::string_view::npos) {
    throw Error(ErrorCode::kInvalidArgument,
                "Not a sqlite:// URL with a database path and no NUL byte: " + std::string(url));
  }
  return {path, name};
}

class SqliteHandler final : public BlobStoreHandler {
 public:
  SqliteHandler(std::string_view url, Options& options)
      : SqliteHandler(url, options, split_url(url)) {}

 private:
  SqliteHandler(std::string_view url, Options& options, std::pair<std::string, std::string> at)
      : BlobStoreHandler(
            url, options,
            std::make_unique<SqliteStore>(at.first, "sqlite://" + at.first + "#",
                                          int(options.get_uint64("busy_timeout_ms", 10000))),
            locate_model(at.second, url)) {}
};

}  // namespace

STOWAGE_PLUGIN(SqliteHandler, "sqlite", STOWAGE_PLUGIN_VERSION,
               kBlobStoreCaps | STOWAGE_CAP_ATOMIC_SAVE, "sqlite");
