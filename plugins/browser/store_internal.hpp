// The browser profile: one SQLite database per origin, holding that origin's
// localStorage and its IndexedDB database "tensorflowjs". This file has the
// parts both stores share: origins and where their files are, and a thin
// SQLite connection whose failures become stowage::Error.
//
// Thread-safety: free functions are thread-safe; a Database (and its
// Statements) is used by one thread at a time. Ownership: a Database owns its
// connection; Statements must not outlive it.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct sqlite3;
struct sqlite3_stmt;

namespace stowage::browser {

inline constexpr std::string_view kDefaultOrigin = "http://localhost";

// Which origin of which profile.
struct StoreLocation {
  std::filesystem::path profile;  // absolute
  std::string origin;             // normalized, e.g. "http://127.0.0.1:8000"
};

// An origin as a browser serializes it ("scheme://host[:port]"): lowercase
// scheme and host, the scheme's default port left out, no path, query,
// fragment or user name (a single trailing "/" is accepted and dropped).
// Throws Error(kInvalidArgument) saying what is wrong.
std::string normalize_origin(std::string_view origin);

// The database file of an origin inside a profile, named as Chromium names
// origin folders: "<scheme>_<host>_<port>" with port 0 for the default,
// e.g. "http_localhost_0.sqlite". Characters other than [a-z0-9.-] in the
// host are percent-encoded.
std::string origin_file_name(std::string_view normalized_origin);
std::filesystem::path database_path(const StoreLocation& where);
// Beside it, the folder of the origin's IndexedDB blob files, as Chromium
// keeps large IndexedDB values in files beside its database:
// "http_localhost_0.blobs".
std::filesystem::path blob_folder(const StoreLocation& where);

// $XDG_DATA_HOME/stowage/browser, or ~/.local/share/stowage/browser.
// Throws Error(kInvalidArgument) when no home folder can be found.
std::filesystem::path default_profile();

// Hooks of one long operation: cancellation (check throws to stop) and
// byte progress. Each may be empty.
struct Pace {
  std::function<void()> check;
  std::function<void(uint64_t bytes)> set_total;
  std::function<void(uint64_t bytes)> advance;
};

class Database;

// A prepared statement. Columns and parameters count from 0.
class Statement {
 public:
  Statement(Database& db, std::string_view sql);
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& bind_text(int index, std::string_view text);
  Statement& bind_int(int index, int64_t value);
  Statement& bind_null(int index);
  // The bytes must stay valid until the statement is stepped or reset.
  Statement& bind_blob(int index, const void* data, uint64_t size);
  // True while there is a row; false when done.
  bool step();
  void reset();

  bool is_null(int column) const;
  int64_t column_int(int column) const;
  std::string_view column_text(int column) const;

 private:
  Database& db_;
  sqlite3_stmt* stmt_ = nullptr;
};

// One connection to an origin's database.
class Database {
 public:
  struct Settings {
    bool durable = true;  // synchronous=FULL; false is synchronous=OFF
    std::chrono::milliseconds busy_timeout{60000};
  };

  // Opens the origin's database; with create, makes the profile folder and
  // the database when missing. Without create, returns nullptr when the
  // origin has no database yet (it has stored nothing). Throws
  // Error(kInvalidArgument) when the file belongs to another origin.
  static std::unique_ptr<Database> open(const StoreLocation& where, bool create,
                                        const Settings& settings);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  sqlite3* handle() const noexcept { return db_; }
  const std::filesystem::path& path() const noexcept { return path_; }
  const StoreLocation& location() const noexcept { return where_; }

  void exec(const char* sql);
  // Throws the Error for the connection's last failure, doing `what`.
  [[noreturn]] void fail(int rc, std::string_view what) const;

 private:
  Database(StoreLocation where, std::filesystem::path path) noexcept;
  void initialize(const Settings& settings);

  StoreLocation where_;
  std::filesystem::path path_;
  sqlite3* db_ = nullptr;
};

// BEGIN (IMMEDIATE for writes, so quotas are checked under the write lock)
// ... COMMIT; rolled back when destroyed before commit().
class Transaction {
 public:
  Transaction(Database& db, bool write);
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  void commit();

 private:
  Database& db_;
  bool open_ = false;
};

// Save generations, which stat's version tokens come from. The meta table
// holds an origin-wide counter ("generation") and, per model, the value it
// had when the model was last written ("generation/<store>/<path>", store
// "localstorage" or "indexeddb"). Each runs inside the caller's write
// transaction, so a generation is published exactly with the write it
// describes. Rows, not a new table: the schema version stays 1, so an older
// stowage still opens the store (it writes no generations; see stat).

// Raises the counter once and gives each of `paths` its new value.
void bump_generations(Database& db, std::string_view store, const std::vector<std::string>& paths);
// Drops the generation of `path` (its model was removed).
void forget_generation(Database& db, std::string_view store, const std::string& path);
// Drops every generation of `store` (an import that clears the store).
void forget_generations(Database& db, std::string_view store);
// The generation of `path`; 0 for a model no generation was written for (a
// store written by a stowage before stat).
int64_t generation(Database& db, std::string_view store, const std::string& path);

// UTF-16 code units of UTF-8 text (a JS string's length): 2 for code points
// above U+FFFF, 1 otherwise; a byte that is not valid UTF-8 counts as one
// U+FFFD, as a JS text decoder reads it.
uint64_t utf16_units(std::string_view utf8) noexcept;

}  // namespace stowage::browser
