// downloads://: two files per save in the downloads folder, never overwriting.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "downloads_internal.hpp"
#include "stowage/digest.hpp"
#include "stowage/error.hpp"
#include "stowage/model_json.hpp"

namespace stowage::browser {
namespace {

namespace fs = std::filesystem;

constexpr uint64_t kWriteStep = 8ull << 20;

Error sys_error(int err, const std::string& what) {
  ErrorCode code = ErrorCode::kInternal;
  if (err == EACCES || err == EPERM || err == EROFS) code = ErrorCode::kPermissionDenied;
  if (err == ENOSPC || err == EDQUOT || err == EFBIG) code = ErrorCode::kResourceExhausted;
  if (err == ENOENT || err == ENOTDIR) code = ErrorCode::kNotFound;
  return Error(code, what + ": " + std::strerror(err));
}

fs::path home_folder() {
  const char* home = std::getenv("HOME");
  if (home == nullptr || home[0] != '/') {
    throw Error(ErrorCode::kInvalidArgument,
                "No home folder for the default downloads folder: set HOME or give the option "
                "\"folder\"");
  }
  return home;
}

// A temporary file in the downloads folder, deleted unless released.
class TempFile {
 public:
  explicit TempFile(const fs::path& folder) {
    std::string tmpl = (folder / ".stowage-download-XXXXXX").string();
    fd_ = ::mkstemp(tmpl.data());
    if (fd_ < 0) throw sys_error(errno, "Cannot create a file in " + folder.string());
    path_ = tmpl;
    ::fchmod(fd_, 0644);  // what a browser's download gets under a usual umask
  }
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    ::unlink(path_.c_str());
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  void write(const uint8_t* data, uint64_t size) {
    while (size > 0) {
      const ssize_t n = ::write(fd_, data, std::min<uint64_t>(size, kWriteStep));
      if (n < 0) {
        if (errno == EINTR) continue;
        throw sys_error(errno, "Cannot write " + path_.string());
      }
      data += n;
      size -= static_cast<uint64_t>(n);
    }
  }
  void finish(bool durable) {
    if (durable && ::fsync(fd_) != 0) throw sys_error(errno, "Cannot sync " + path_.string());
    if (::close(fd_) != 0) {
      fd_ = -1;
      throw sys_error(errno, "Cannot write " + path_.string());
    }
    fd_ = -1;
  }
  const fs::path& path() const { return path_; }

 private:
  int fd_ = -1;
  fs::path path_;
};

// Publishes `from` as `to` unless `to` exists (link never replaces).
bool claim(const fs::path& from, const fs::path& to) {
  if (::link(from.c_str(), to.c_str()) == 0) return true;
  if (errno == EEXIST) return false;
  throw sys_error(errno, "Cannot create " + to.string());
}

}  // namespace

fs::path default_downloads_folder() {
  const fs::path home = home_folder();
  fs::path config = home / ".config";
  if (const char* c = std::getenv("XDG_CONFIG_HOME"); c != nullptr && c[0] == '/') config = c;
  // user-dirs.dirs lines look like XDG_DOWNLOAD_DIR="$HOME/Downloads".
  std::ifstream dirs(config / "user-dirs.dirs");
  std::string line;
  constexpr std::string_view kKey = "XDG_DOWNLOAD_DIR=\"";
  while (std::getline(dirs, line)) {
    if (!line.starts_with(kKey) || !line.ends_with('"')) continue;
    std::string value = line.substr(kKey.size(), line.size() - kKey.size() - 1);
    if (value.starts_with("$HOME")) return home.string() + value.substr(5);
    if (value.starts_with('/')) return value;
  }
  return home / "Downloads";
}

std::string download_prefix(std::string_view path) {
  std::string out(path);
  if (out.empty()) return "model";
  for (char& c : out) {
    if (c == '/' || c == '\0' || static_cast<unsigned char>(c) < 0x20) c = '_';
  }
  return out;
}

DownloadedFiles save_download(const fs::path& folder, const std::string& prefix,
                              const ModelArtifacts& artifacts, bool durable, bool sha256,
                              const Pace& pace) {
  std::error_code ec;
  fs::create_directories(folder, ec);
  if (ec) {
    throw sys_error(ec.value(), "Cannot create the downloads folder " + folder.string());
  }
  const uint64_t total = artifacts.weight_data ? total_size(*artifacts.weight_data) : 0;
  if (pace.set_total) pace.set_total(total);

  std::optional<TempFile> weights;
  std::optional<std::string> digest;
  if (artifacts.weight_data) {
    weights.emplace(folder);
    Sha256 hash;
    for (const Buffer& b : *artifacts.weight_data) {
      for (uint64_t at = 0; at < b.size(); at += kWriteStep) {
        const uint64_t n = std::min(kWriteStep, b.size() - at);
        if (sha256) hash.update(std::span<const uint8_t>(b.data() + at, n));
        weights->write(b.data() + at, n);
        if (pace.advance) pace.advance(n);
        if (pace.check) pace.check();
      }
    }
    weights->finish(durable);
    if (sha256) digest = hash.finish_hex();
  }

  static const std::vector<WeightSpec> kNoSpecs;
  for (uint64_t n = 0;; ++n) {
    if (pace.check) pace.check();
    const std::string name = n == 0 ? prefix : prefix + " (" + std::to_string(n) + ")";
    const fs::path json_path = folder / (name + ".json");
    const fs::path weights_path = folder / (name + ".weights.bin");
    // Both names must be free: one save never mixes two suffixes.
    if (fs::exists(json_path, ec) || fs::exists(weights_path, ec)) continue;
    WeightsManifest manifest{WeightGroup{
        {"./" + name + ".weights.bin"},
        artifacts.weight_specs ? *artifacts.weight_specs : kNoSpecs,
    }};
    if (digest) manifest.front().sha256 = std::vector<std::string>{*digest};
    const std::string text = write_model_json(artifacts, manifest, ModelJsonLayout::kTfjsHttp);
    TempFile json(folder);
    json.write(reinterpret_cast<const uint8_t*>(text.data()), text.size());
    json.finish(durable);
    if (weights && !claim(weights->path(), weights_path)) continue;
    if (!claim(json.path(), json_path)) {
      if (weights) ::unlink(weights_path.c_str());
      continue;
    }
    if (durable) {
      const int dir = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (dir >= 0) {
        ::fsync(dir);
        ::close(dir);
      }
    }
    DownloadedFiles out;
    out.json = json_path;
    if (weights) out.weights = weights_path;
    return out;
  }
}

}  // namespace stowage::browser
