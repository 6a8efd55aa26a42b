#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <system_error>

#include "cache_store_internal.hpp"
#include "stowage/digest.hpp"
#include "stowage/plugin.hpp"
#include "stowage/unique_fd.hpp"

namespace fs = std::filesystem;

namespace stowage::cache {
namespace {

constexpr char kLayoutFile[] = "stowage-cache.json";
// https://bford.info/cachedir/: the signature line must come first, as is.
constexpr char kCacheDirTag[] =
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by stowage (cache+ URLs).\n"
    "# For information about cache directory tags, see https://bford.info/cachedir/\n";
// A file in tmp/ this old belongs to a fill that died; nothing live writes
// for that long without renaming.
constexpr auto kStaleTemp = std::chrono::hours(1);

void make_dir(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw plugin::errno_error(ec.value(), "Cannot create the cache folder " + dir.string());
}

std::optional<std::string> read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::span<const uint8_t> bytes_of(std::string_view text) {
  return {reinterpret_cast<const uint8_t*>(text.data()), text.size()};
}

void write_all(int fd, std::span<const uint8_t> bytes, const std::string& path) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      throw plugin::errno_error(errno, "Cannot write " + path);
    }
    bytes = bytes.subspan(static_cast<size_t>(n));
  }
}

std::string layout_text() { return "{\"layout\":" + std::to_string(kLayoutVersion) + "}\n"; }

// Any other text is a layout this code predates (or a damaged file, which a
// user removes with the folder): refuse rather than guess.
void check_layout(const fs::path& root, const std::string& text) {
  if (text == layout_text()) return;
  std::string shown = text.substr(0, 64);
  while (!shown.empty() && std::isspace(static_cast<unsigned char>(shown.back()))) {
    shown.pop_back();
  }
  throw Error(
      ErrorCode::kUnimplemented,
      "The cache folder " + root.string() + " has another layout (" +
          (root / kLayoutFile).string() + " reads " + shown + "); this stowage writes layout " +
          std::to_string(kLayoutVersion) +
          ": use another folder (option \"dir\", STOWAGE_CACHE_DIR, --dir) or remove this one");
}

// When the file was last modified, as the system clock tells time.
std::chrono::system_clock::time_point mtime_of(const struct stat& st) {
  return std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::seconds(st.st_mtim.tv_sec) + std::chrono::nanoseconds(st.st_mtim.tv_nsec)));
}

}  // namespace

std::optional<fs::path> default_cache_dir() {
  if (const char* d = std::getenv("STOWAGE_CACHE_DIR"); d != nullptr && *d != '\0') return d;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x != nullptr && *x != '\0') {
    return fs::path(x) / "stowage";
  }
  if (const char* h = std::getenv("HOME"); h != nullptr && *h != '\0') {
    return fs::path(h) / ".cache" / "stowage";
  }
  return std::nullopt;
}

CacheStore::CacheStore(fs::path root) : root_(std::move(root)) {
  for (const char* sub : {"blobs/sha256", "models", "locks", "tmp"}) make_dir(root_ / sub);
  const fs::path layout = root_ / kLayoutFile;
  if (std::optional<std::string> text = read_file(layout)) {
    check_layout(root_, *text);
  } else {
    write_atomically(layout, bytes_of(layout_text()));
  }
  if (!fs::exists(root_ / "CACHEDIR.TAG")) {
    write_atomically(root_ / "CACHEDIR.TAG", bytes_of(kCacheDirTag));
  }
}

CacheStore::CacheStore(fs::path root, Existing) : root_(std::move(root)) {
  const fs::path layout = root_ / kLayoutFile;
  std::optional<std::string> text = read_file(layout);
  if (!text) {
    throw Error(ErrorCode::kInvalidArgument, "The folder " + root_.string() +
                                                 " is not a stowage cache (it has no " +
                                                 kLayoutFile + "); nothing in it was touched");
  }
  check_layout(root_, *text);
  // Ours: a folder a later stowage expects is made, as a load would.
  for (const char* sub : {"blobs/sha256", "models", "locks", "tmp"}) make_dir(root_ / sub);
}

std::optional<CacheStore> CacheStore::open_existing(const fs::path& root) {
  std::error_code ec;
  const fs::file_status st = fs::status(root, ec);
  if (st.type() == fs::file_type::not_found) return std::nullopt;
  if (ec) throw plugin::errno_error(ec.value(), "Cannot read the cache folder " + root.string());
  if (!fs::is_directory(st)) {
    throw Error(ErrorCode::kInvalidArgument,
                root.string() + " is not a folder, so not a stowage cache; nothing was touched");
  }
  const bool empty = fs::is_empty(root, ec);
  if (ec) throw plugin::errno_error(ec.value(), "Cannot read the cache folder " + root.string());
  if (empty) return std::nullopt;
  return CacheStore(root, Existing{});
}

fs::path CacheStore::blob_path(const std::string& sha256) const {
  return root_ / "blobs" / "sha256" / sha256.substr(0, 2) / sha256;
}

fs::path CacheStore::snapshot_path(const std::string& key) const {
  return root_ / "models" / (key + ".json");
}

void CacheStore::write_atomically(const fs::path& to, std::span<const uint8_t> bytes,
                                  Sync sync) const {
  std::string temp = (root_ / "tmp" / (to.filename().string() + ".XXXXXX")).string();
  UniqueFd fd(::mkostemp(temp.data(), O_CLOEXEC));
  if (!fd) throw plugin::errno_error(errno, "Cannot create a file in " + (root_ / "tmp").string());
  try {
    write_all(fd.get(), bytes, temp);
    // Durable before it is visible: after a crash the name never leads to
    // a file with missing bytes. Blobs skip it (put_blob says why).
    if (sync == Sync::kDurable && ::fsync(fd.get()) != 0) {
      throw plugin::errno_error(errno, "Cannot sync " + temp);
    }
    if (::fchmod(fd.get(), 0644) != 0) throw plugin::errno_error(errno, "Cannot chmod " + temp);
    if (::rename(temp.c_str(), to.c_str()) != 0) {
      throw plugin::errno_error(errno, "Cannot rename " + temp + " to " + to.string());
    }
  } catch (...) {
    ::unlink(temp.c_str());
    throw;
  }
}

std::optional<Snapshot> CacheStore::read_snapshot(const std::string& key) const {
  const fs::path path = snapshot_path(key);
  std::optional<std::string> text = read_file(path);
  if (!text) return std::nullopt;
  try {
    return snapshot_from_json(*text, path.string());
  } catch (const Error& e) {
    plugin::log(2, std::string("cache: ") + e.what() + "; it is fetched again");
    return std::nullopt;
  }
}

void CacheStore::publish_snapshot(const std::string& key, const Snapshot& snapshot) const {
  write_atomically(snapshot_path(key), bytes_of(snapshot_to_json(snapshot)));
}

void CacheStore::touch(const std::string& key) const {
  const std::string path = snapshot_path(key).string();
  if (::utimensat(AT_FDCWD, path.c_str(), nullptr, 0) != 0 && errno != ENOENT) {
    throw plugin::errno_error(errno, "Cannot touch " + path);
  }
}

void CacheStore::remove_snapshot(const std::string& key) const {
  const std::string path = snapshot_path(key).string();
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    throw plugin::errno_error(errno, "Cannot remove " + path);
  }
}

bool CacheStore::has_blob(const std::string& sha256, uint64_t size) const {
  struct stat st;
  return ::stat(blob_path(sha256).c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
         static_cast<uint64_t>(st.st_size) == size;
}

void CacheStore::put_blob(const std::string& sha256, std::span<const uint8_t> bytes) const {
  const fs::path path = blob_path(sha256);
  make_dir(path.parent_path());
  write_atomically(path, bytes, Sync::kVerifiedOnRead);
}

std::optional<Buffer> CacheStore::map_blob(const std::string& sha256, uint64_t size) const {
  const std::string path = blob_path(sha256).string();
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) {
    if (errno == ENOENT) return std::nullopt;
    throw plugin::errno_error(errno, "Cannot open the cached file " + path);
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) throw plugin::errno_error(errno, "Cannot stat " + path);
  if (!S_ISREG(st.st_mode) || static_cast<uint64_t>(st.st_size) != size) return std::nullopt;
  if (size == 0) return Buffer::wrap(nullptr, 0, nullptr, path);
  // Writable but private, as file:// maps: the bytes may end up in a
  // writable JavaScript ArrayBuffer, where a stray write copies the page.
  void* addr = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd.get(), 0);
  if (addr == MAP_FAILED) throw plugin::errno_error(errno, "Cannot map the cached file " + path);
  ::madvise(addr, size, MADV_SEQUENTIAL);
  std::shared_ptr<const void> owner(
      addr, [size](const void* p) { ::munmap(const_cast<void*>(p), size); });
  return Buffer::wrap(static_cast<const uint8_t*>(addr), size, std::move(owner), path);
}

bool CacheStore::blob_matches(const std::string& sha256, const Buffer& bytes) {
  return sha256_hex(bytes.bytes()) == sha256;
}

std::optional<size_t> CacheStore::first_mismatch(const std::vector<std::string>& sha256s,
                                                 const std::vector<Buffer>& buffers) {
  std::vector<std::span<const uint8_t>> bytes;
  bytes.reserve(buffers.size());
  for (const Buffer& b : buffers) bytes.push_back(b.bytes());
  const std::vector<std::string> hex = sha256_hex_each(bytes);
  for (size_t i = 0; i < hex.size(); ++i) {
    if (hex[i] != sha256s[i]) return i;
  }
  return std::nullopt;
}

void CacheStore::remove_blob(const std::string& sha256) const {
  const std::string path = blob_path(sha256).string();
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    throw plugin::errno_error(errno, "Cannot remove the cached file " + path);
  }
}

FileLock CacheStore::lock_model(const std::string& key) const {
  return FileLock((root_ / "locks" / (key + ".lock")).string(), FileLock::Mode::kExclusive);
}

FileLock CacheStore::lock_cache(FileLock::Mode mode) const {
  return FileLock((root_ / "locks" / "cache.lock").string(), mode);
}

uint64_t CacheStore::blob_bytes() const {
  uint64_t total = 0;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(root_ / "blobs", ec), end; !ec && it != end;
       it.increment(ec)) {
    if (it->is_regular_file(ec)) total += it->file_size(ec);
  }
  return total;
}

std::optional<CachedModel> CacheStore::model(const std::string& key) const {
  const fs::path path = snapshot_path(key);
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  std::optional<std::string> text = read_file(path);
  if (!text) return std::nullopt;  // removed meanwhile
  CachedModel m;
  m.key = key;
  m.last_used = mtime_of(st);
  try {
    m.snapshot = snapshot_from_json(*text, path.string());
  } catch (const Error& e) {
    m.error = e.what();
  }
  return m;
}

std::vector<CachedModel> CacheStore::models() const {
  std::vector<CachedModel> out;
  std::error_code ec;
  for (fs::directory_iterator it(root_ / "models", ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path path = it->path();
    if (path.extension() != ".json") continue;
    if (std::optional<CachedModel> m = model(path.stem().string())) out.push_back(std::move(*m));
  }
  std::sort(out.begin(), out.end(), [](const CachedModel& a, const CachedModel& b) {
    return a.last_used != b.last_used ? a.last_used < b.last_used : a.key < b.key;
  });
  return out;
}

Eviction CacheStore::evict(uint64_t max_bytes, const std::string& keep) const {
  EvictionPolicy policy;
  policy.max_bytes = max_bytes;
  policy.keep = keep;
  return evict(policy);
}

Eviction CacheStore::evict(const EvictionPolicy& policy) const {
  Eviction out;
  std::vector<CachedModel> models;
  for (CachedModel& m : this->models()) {
    if (!m.snapshot) {
      // Unreadable: it serves nobody, and its blobs are free to go.
      remove_snapshot(m.key);
      ++out.unreadable;
      continue;
    }
    models.push_back(std::move(m));
  }
  // Every blob on disk with its size, and how many kept models name it.
  std::map<std::string, uint64_t> sizes;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(root_ / "blobs" / "sha256", ec), end; !ec && it != end;
       it.increment(ec)) {
    if (it->is_regular_file(ec)) sizes[it->path().filename().string()] = it->file_size(ec);
  }
  for (const auto& [name, size] : sizes) out.bytes_before += size;
  std::map<std::string, int> refs;
  uint64_t kept_bytes = 0;
  auto name_blobs = [&](const Snapshot& s, int delta) {
    std::set<std::string> distinct;
    for (const CachedFile& f : s.files) distinct.insert(f.sha256);
    for (const std::string& sha : distinct) {
      auto size = sizes.find(sha);
      if (size == sizes.end()) continue;
      int& n = refs[sha];
      if (n == 0 && delta > 0) kept_bytes += size->second;
      n += delta;
      if (n == 0 && delta < 0) kept_bytes -= size->second;
    }
  };
  for (const CachedModel& m : models) name_blobs(*m.snapshot, +1);
  // models() is ordered oldest use first.
  std::vector<bool> gone(models.size(), false);
  auto remove = [&](size_t i, EvictedModel::Reason reason) {
    const CachedModel& m = models[i];
    remove_snapshot(m.key);
    name_blobs(*m.snapshot, -1);
    gone[i] = true;
    out.models.push_back({m.key, m.snapshot->url, m.last_used, reason});
  };
  for (size_t i = 0; i < models.size(); ++i) {
    if (models[i].key == policy.keep) continue;
    if (policy.all) {
      remove(i, EvictedModel::Reason::kAll);
    } else if (policy.unused_since && models[i].last_used < *policy.unused_since) {
      remove(i, EvictedModel::Reason::kUnused);
    }
  }
  if (policy.max_bytes) {
    for (size_t i = 0; i < models.size(); ++i) {
      if (kept_bytes <= *policy.max_bytes) break;
      if (gone[i] || models[i].key == policy.keep) continue;
      remove(i, EvictedModel::Reason::kMaxBytes);
    }
  }
  for (const auto& [name, size] : sizes) {
    auto r = refs.find(name);
    if (r != refs.end() && r->second > 0) continue;
    if (!is_sha256_hex(name)) continue;  // not ours: left alone
    remove_blob(name);
    ++out.blobs;
  }
  out.bytes_after = kept_bytes;
  // Under the exclusive lock nothing writes to tmp/ but a process making
  // the layout files (the constructor, which takes no lock): theirs are
  // left for an hour, whatever temp_age says.
  const auto now = fs::file_time_type::clock::now();
  for (fs::directory_iterator it(root_ / "tmp", ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    const bool layout =
        name.starts_with(std::string(kLayoutFile) + ".") || name.starts_with("CACHEDIR.TAG.");
    const auto age = layout ? std::max<fs::file_time_type::duration>(kStaleTemp, policy.temp_age)
                            : fs::file_time_type::duration(policy.temp_age);
    std::error_code file_ec;
    const auto written = it->last_write_time(file_ec);
    if (file_ec || written > now - age) continue;
    const uint64_t size = it->is_regular_file(file_ec) ? it->file_size(file_ec) : 0;
    if (fs::remove(it->path(), file_ec) && !file_ec) {
      ++out.temp_files;
      out.temp_bytes += size;
    }
  }
  return out;
}

std::vector<Problem> CacheStore::verify() const {
  std::vector<Problem> out;
  std::error_code ec;
  // Missing is allowed (a process killed while making the layout; the next
  // load writes it), partial is not.
  const fs::path tag = root_ / "CACHEDIR.TAG";
  if (std::optional<std::string> text = read_file(tag); text && *text != kCacheDirTag) {
    out.push_back({tag.string(), "not the cache-directory tag stowage writes"});
  }
  for (fs::directory_iterator it(root_ / "models", ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path path = it->path();
    if (path.extension() != ".json" || !is_sha256_hex(path.stem().string())) {
      out.push_back({path.string(), "not a snapshot name (<64 hex digits>.json)"});
    }
  }
  for (const CachedModel& m : models()) {
    const std::string path = snapshot_path(m.key).string();
    if (!m.snapshot) {
      out.push_back({path, m.error});
      continue;
    }
    for (const CachedFile& f : m.snapshot->files) {
      const fs::path blob = blob_path(f.sha256);
      struct stat st;
      if (::stat(blob.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
        out.push_back({path, "names the blob " + blob.string() + " (" + f.path.value_or("-") +
                                 "), which is missing"});
      } else if (static_cast<uint64_t>(st.st_size) != f.size) {
        out.push_back({path, "names the blob " + blob.string() + " with " + std::to_string(f.size) +
                                 " bytes, but it has " + std::to_string(st.st_size)});
      }
    }
  }
  for (fs::recursive_directory_iterator it(root_ / "blobs", ec), end; !ec && it != end;
       it.increment(ec)) {
    const fs::path path = it->path();
    const std::string name = path.filename().string();
    const fs::path rel = path.lexically_relative(root_ / "blobs");
    std::error_code type_ec;
    if (it->is_directory(type_ec)) {
      const bool fan_out = rel == "sha256" || (rel.parent_path() == "sha256" && name.size() == 2);
      if (!fan_out) out.push_back({path.string(), "a folder the layout has no place for"});
      continue;
    }
    if (!is_sha256_hex(name) || rel.parent_path() != fs::path("sha256") / name.substr(0, 2)) {
      out.push_back({path.string(), "a file the layout has no place for"});
      continue;
    }
    const uint64_t size = it->file_size(type_ec);
    std::optional<Buffer> bytes = type_ec ? std::nullopt : map_blob(name, size);
    if (!bytes) {
      out.push_back({path.string(), "cannot be read"});
    } else if (!blob_matches(name, *bytes)) {
      out.push_back({path.string(), "its bytes do not hash to its name (SHA-256 " +
                                        sha256_hex(bytes->bytes()) + ")"});
    }
  }
  return out;
}

}  // namespace stowage::cache
