// Origins, profile paths and the SQLite connection of the browser stores.
#include <pwd.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "store_internal.hpp"
#include "stowage/error.hpp"

namespace stowage::browser {
namespace {

namespace fs = std::filesystem;

constexpr int kSchemaVersion = 1;

// The tables of an origin (docs/browser.md describes them).
constexpr const char* kSchema = R"sql(
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE local_storage(key TEXT PRIMARY KEY, value TEXT NOT NULL, units INTEGER NOT NULL);
CREATE TABLE idb_model_info_store(model_path TEXT PRIMARY KEY, info TEXT NOT NULL);
CREATE TABLE idb_models_store(model_path TEXT PRIMARY KEY, artifacts TEXT NOT NULL,
                              info TEXT NOT NULL, weight_blob TEXT,
                              weight_bytes INTEGER NOT NULL);
)sql";

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

[[noreturn]] void bad_origin(std::string_view origin, const std::string& why) {
  throw Error(ErrorCode::kInvalidArgument,
              "\"" + std::string(origin) + "\" is not a valid origin: " + why +
                  " (an origin is scheme://host[:port], e.g. http://localhost:8080)");
}

std::string default_port(std::string_view scheme) {
  if (scheme == "http" || scheme == "ws") return "80";
  if (scheme == "https" || scheme == "wss") return "443";
  return "";
}

ErrorCode code_for(int rc) {
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return ErrorCode::kUnavailable;
    case SQLITE_FULL:
    case SQLITE_NOMEM:
    case SQLITE_TOOBIG:
      return ErrorCode::kResourceExhausted;
    case SQLITE_PERM:
    case SQLITE_READONLY:
    case SQLITE_AUTH:
    case SQLITE_CANTOPEN:
      return ErrorCode::kPermissionDenied;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
    case SQLITE_IOERR:
      return ErrorCode::kDataLoss;
    case SQLITE_INTERRUPT:
      return ErrorCode::kCancelled;
    default:
      return ErrorCode::kInternal;
  }
}

}  // namespace

std::string normalize_origin(std::string_view origin) {
  const size_t sep = origin.find("://");
  if (sep == std::string_view::npos || sep == 0) bad_origin(origin, "it has no scheme");
  const std::string scheme = lower(origin.substr(0, sep));
  if (!std::isalpha(static_cast<unsigned char>(scheme[0]))) {
    bad_origin(origin, "the scheme must start with a letter");
  }
  for (char c : scheme) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '-' && c != '.') {
      bad_origin(origin, "the scheme has a character that is not allowed");
    }
  }
  std::string_view rest = origin.substr(sep + 3);
  if (rest.ends_with('/')) rest.remove_suffix(1);
  if (rest.find_first_of("/?#") != std::string_view::npos) {
    bad_origin(origin, "an origin has no path, query or fragment");
  }
  if (rest.find('@') != std::string_view::npos) bad_origin(origin, "an origin has no user name");
  std::string host;
  std::string_view port;
  if (rest.starts_with('[')) {
    const size_t close = rest.find(']');
    if (close == std::string_view::npos) bad_origin(origin, "the IPv6 address has no ']'");
    host = lower(rest.substr(0, close + 1));
    for (char c : host.substr(1, host.size() - 2)) {
      if (!std::isxdigit(static_cast<unsigned char>(c)) && c != ':' && c != '.') {
        bad_origin(origin, "the IPv6 address has a character that is not allowed");
      }
    }
    rest.remove_prefix(close + 1);
    if (!rest.empty() && !rest.starts_with(':')) bad_origin(origin, "text follows the address");
    if (!rest.empty()) port = rest.substr(1);
  } else {
    const size_t colon = rest.find(':');
    host = lower(rest.substr(0, colon));
    if (colon != std::string_view::npos) port = rest.substr(colon + 1);
    for (char c : host) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_') {
        bad_origin(origin,
                   "the host has a character that is not allowed (write "
                   "internationalized names in their xn-- form)");
      }
    }
  }
  if (host.empty()) bad_origin(origin, "it has no host");
  std::string out = scheme + "://" + host;
  if (!port.empty() || rest.ends_with(':')) {
    if (port.empty() || port.size() > 5 ||
        port.find_first_not_of("0123456789") != std::string_view::npos ||
        std::stoul(std::string(port)) > 65535) {
      bad_origin(origin, "the port must be a number from 0 to 65535");
    }
    const std::string number = std::to_string(std::stoul(std::string(port)));
    if (number != default_port(scheme)) out += ":" + number;
  }
  return out;
}

std::string origin_file_name(std::string_view normalized) {
  const size_t sep = normalized.find("://");
  const std::string_view scheme = normalized.substr(0, sep);
  std::string_view rest = normalized.substr(sep + 3);
  std::string_view host = rest;
  std::string port = "0";
  const size_t colon = rest.rfind(':');
  if (colon != std::string_view::npos && rest.find(']', colon) == std::string_view::npos) {
    host = rest.substr(0, colon);
    port = std::string(rest.substr(colon + 1));
  }
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out(scheme);
  out += '_';
  for (char c : host) {
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-') {
      out += c;
    } else {
      const auto u = static_cast<unsigned char>(c);
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 15];
    }
  }
  return out + "_" + port + ".sqlite";
}

fs::path database_path(const StoreLocation& where) {
  return where.profile / origin_file_name(where.origin);
}

fs::path blob_folder(const StoreLocation& where) {
  fs::path p = database_path(where);
  p.replace_extension(".blobs");
  return p;
}

fs::path default_profile() {
  const char* xdg = std::getenv("XDG_DATA_HOME");
  // The XDG base-directory rules ignore a relative value.
  if (xdg != nullptr && xdg[0] == '/') return fs::path(xdg) / "stowage" / "browser";
  std::string home;
  if (const char* h = std::getenv("HOME"); h != nullptr && h[0] != '\0') {
    home = h;
  } else {
    std::vector<char> buf(16384);
    passwd pw{};
    passwd* found = nullptr;
    if (::getpwuid_r(::getuid(), &pw, buf.data(), buf.size(), &found) == 0 && found != nullptr &&
        found->pw_dir != nullptr) {
      home = found->pw_dir;
    }
  }
  if (home.empty()) {
    throw Error(ErrorCode::kInvalidArgument,
                "No home folder for the default browser profile: set HOME or XDG_DATA_HOME, "
                "or give the option \"profile\"");
  }
  return fs::path(home) / ".local" / "share" / "stowage" / "browser";
}

uint64_t utf16_units(std::string_view s) noexcept {
  uint64_t units = 0;
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t len = 1;
    uint32_t min = 0;
    if (c >= 0xF0 && c <= 0xF4) {
      len = 4, min = 0x10000;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3, min = 0x800;
    } else if (c >= 0xC2 && c <= 0xDF) {
      len = 2, min = 0x80;
    }
    bool ok = len == 1 ? c < 0x80 : i + len <= s.size();
    uint32_t cp = len == 1 ? c : c & (0x7F >> len);
    for (size_t k = 1; ok && k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      ok = (cc & 0xC0) == 0x80;
      cp = (cp << 6) | (cc & 0x3F);
    }
    ok = ok && cp >= min && cp <= 0x10FFFF;
    if (!ok) {
      units += 1;  // U+FFFD
      i += 1;
      continue;
    }
    units += cp >= 0x10000 ? 2 : 1;
    i += len;
  }
  return units;
}

// ---- Generations ------------------------------------------------------------

namespace {

constexpr std::string_view kCounterKey = "generation";

std::string generation_key(std::string_view store, std::string_view path) {
  return std::string(kCounterKey) + "/" + std::string(store) + "/" + std::string(path);
}

}  // namespace

void bump_generations(Database& db, std::string_view store, const std::vector<std::string>& paths) {
  if (paths.empty()) return;
  // The counter only grows, so a model saved again after a remove (which
  // drops its row) never gets back a value it had.
  Statement(db,
            "INSERT INTO meta(key, value) VALUES(?1, '1') ON CONFLICT(key) DO UPDATE SET value = "
            "CAST(CAST(value AS INTEGER) + 1 AS TEXT)")
      .bind_text(0, kCounterKey)
      .step();
  Statement get(db, "SELECT CAST(value AS INTEGER) FROM meta WHERE key = ?");
  get.bind_text(0, kCounterKey);
  get.step();
  const int64_t counter = get.column_int(0);
  Statement put(db, "INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)");
  const std::string value = std::to_string(counter);
  for (const std::string& path : paths) {
    const std::string key = generation_key(store, path);
    put.bind_text(0, key).bind_text(1, value).step();
    put.reset();
  }
}

void forget_generation(Database& db, std::string_view store, const std::string& path) {
  const std::string key = generation_key(store, path);
  Statement(db, "DELETE FROM meta WHERE key = ?").bind_text(0, key).step();
}

void forget_generations(Database& db, std::string_view store) {
  // Keys from "generation/<store>/" up to "generation/<store>0" ('0' follows '/').
  const std::string low = generation_key(store, "");
  const std::string high = low.substr(0, low.size() - 1) + "0";
  Statement(db, "DELETE FROM meta WHERE key >= ? AND key < ?")
      .bind_text(0, low)
      .bind_text(1, high)
      .step();
}

int64_t generation(Database& db, std::string_view store, const std::string& path) {
  const std::string key = generation_key(store, path);
  Statement get(db, "SELECT CAST(value AS INTEGER) FROM meta WHERE key = ?");
  get.bind_text(0, key);
  return get.step() ? get.column_int(0) : 0;
}

// ---- Statement --------------------------------------------------------------

Statement::Statement(Database& db, std::string_view sql) : db_(db) {
  const int rc =
      sqlite3_prepare_v2(db.handle(), sql.data(), static_cast<int>(sql.size()), &stmt_, nullptr);
  if (rc != SQLITE_OK) db.fail(rc, "preparing a query");
}

Statement::~Statement() { sqlite3_finalize(stmt_); }

Statement& Statement::bind_text(int index, std::string_view text) {
  const int rc =
      sqlite3_bind_text64(stmt_, index + 1, text.data(), text.size(), SQLITE_STATIC, SQLITE_UTF8);
  if (rc != SQLITE_OK) db_.fail(rc, "binding a text value");
  return *this;
}

Statement& Statement::bind_int(int index, int64_t value) {
  const int rc = sqlite3_bind_int64(stmt_, index + 1, value);
  if (rc != SQLITE_OK) db_.fail(rc, "binding a number");
  return *this;
}

Statement& Statement::bind_null(int index) {
  const int rc = sqlite3_bind_null(stmt_, index + 1);
  if (rc != SQLITE_OK) db_.fail(rc, "binding null");
  return *this;
}

Statement& Statement::bind_blob(int index, const void* data, uint64_t size) {
  static const uint8_t kEmpty = 0;
  const int rc =
      sqlite3_bind_blob64(stmt_, index + 1, size == 0 ? &kEmpty : data, size, SQLITE_STATIC);
  if (rc != SQLITE_OK) db_.fail(rc, "binding " + std::to_string(size) + " bytes");
  return *this;
}

bool Statement::step() {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  db_.fail(rc, "running a query");
}

void Statement::reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

bool Statement::is_null(int column) const {
  return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
}

int64_t Statement::column_int(int column) const { return sqlite3_column_int64(stmt_, column); }

std::string_view Statement::column_text(int column) const {
  const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, column));
  const int size = sqlite3_column_bytes(stmt_, column);
  if (text == nullptr) {
    if (sqlite3_errcode(db_.handle()) == SQLITE_NOMEM) db_.fail(SQLITE_NOMEM, "reading a value");
    return {};
  }
  return {text, static_cast<size_t>(size)};
}

// ---- Database ---------------------------------------------------------------

Database::Database(StoreLocation where, fs::path path) noexcept
    : where_(std::move(where)), path_(std::move(path)) {}

Database::~Database() { sqlite3_close_v2(db_); }

std::unique_ptr<Database> Database::open(const StoreLocation& where, bool create,
                                         const Settings& settings) {
  fs::path path = database_path(where);
  std::error_code ec;
  if (!create) {
    if (!fs::exists(path, ec)) {
      if (ec && ec != std::errc::no_such_file_or_directory && ec != std::errc::not_a_directory) {
        throw Error(ErrorCode::kPermissionDenied, "Cannot read the browser profile " +
                                                      where.profile.string() + ": " + ec.message());
      }
      return nullptr;
    }
  } else if (!fs::is_directory(where.profile, ec)) {
    fs::create_directories(where.profile.parent_path(), ec);
    // A profile holds people's data: only its owner may read it.
    if (::mkdir(where.profile.c_str(), 0700) != 0 && errno != EEXIST) {
      const int err = errno;
      throw Error(err == EACCES || err == EPERM || err == EROFS ? ErrorCode::kPermissionDenied
                                                                : ErrorCode::kInternal,
                  "Cannot create the browser profile " + where.profile.string() + ": " +
                      std::strerror(err));
    }
  }
  std::unique_ptr<Database> db(new Database(where, path));
  const int flags = SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0) |
                    SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
  const int rc = sqlite3_open_v2(path.c_str(), &db->db_, flags, nullptr);
  if (rc != SQLITE_OK) {
    if (db->db_ == nullptr) throw std::bad_alloc();
    db->fail(rc, "opening the store");
  }
  db->initialize(settings);
  return db;
}

void Database::initialize(const Settings& settings) {
  sqlite3_extended_result_codes(db_, 1);
  sqlite3_busy_timeout(db_, static_cast<int>(settings.busy_timeout.count()));
  // Large pages keep multi-megabyte localStorage values (the base64 weight
  // data) in few pages and few writes; it only takes effect while the file
  // is still empty.
  exec("PRAGMA page_size=65536");
  exec(settings.durable ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=OFF");
  // Debian's SQLite zeroes every freed page (SECURE_DELETE), which doubles
  // the writes of replacing a large value; FAST still clears freed b-tree
  // cells but leaves freed overflow pages alone until they are reused, as a
  // browser leaves deleted values on disk.
  exec("PRAGMA secure_delete=FAST");
  // Reads through a memory map copy a large value once (page cache to the
  // caller) instead of twice (pread into SQLite's cache, then out of it).
  exec("PRAGMA mmap_size=2147418112");

  auto user_version = [this] {
    Statement s(*this, "PRAGMA user_version");
    s.step();
    return s.column_int(0);
  };
  int64_t version = user_version();
  if (version == 0) {
    Transaction t(*this, /*write=*/true);
    if (user_version() == 0) {  // nobody created it meanwhile
      exec(kSchema);
      Statement(*this, "INSERT INTO meta(key, value) VALUES('origin', ?)")
          .bind_text(0, where_.origin)
          .step();
      exec(("PRAGMA user_version=" + std::to_string(kSchemaVersion)).c_str());
    }
    t.commit();
    version = user_version();
  }
  if (version != kSchemaVersion) {
    throw Error(ErrorCode::kInvalidArgument, "The browser store " + path_.string() +
                                                 " has schema version " + std::to_string(version) +
                                                 "; this stowage reads version " +
                                                 std::to_string(kSchemaVersion));
  }
  Statement s(*this, "SELECT value FROM meta WHERE key = 'origin'");
  const std::string stored = s.step() ? std::string(s.column_text(0)) : std::string();
  if (stored != where_.origin) {
    throw Error(ErrorCode::kInvalidArgument, "The browser store " + path_.string() +
                                                 " belongs to origin \"" + stored + "\", not \"" +
                                                 where_.origin + "\"");
  }
}

void Database::exec(const char* sql) {
  const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) fail(rc, "running a statement");
}

void Database::fail(int rc, std::string_view what) const {
  const int ext = db_ != nullptr ? sqlite3_extended_errcode(db_) : rc;
  if ((ext & 0xff) == (rc & 0xff)) rc = ext;
  std::string detail = db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
  const ErrorCode code = code_for(rc);
  std::string message = "Browser store " + path_.string() + " (origin " + where_.origin +
                        "): " + detail + " while " + std::string(what);
  if (code == ErrorCode::kUnavailable) message += "; another process holds the store locked";
  throw Error(code, message, /*retryable=*/code == ErrorCode::kUnavailable);
}

// ---- Transaction ------------------------------------------------------------

Transaction::Transaction(Database& db, bool write) : db_(db) {
  db_.exec(write ? "BEGIN IMMEDIATE" : "BEGIN");
  open_ = true;
}

Transaction::~Transaction() {
  if (open_) sqlite3_exec(db_.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
}

void Transaction::commit() {
  db_.exec("COMMIT");
  open_ = false;
}

}  // namespace stowage::browser
