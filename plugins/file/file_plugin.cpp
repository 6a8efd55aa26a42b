// file:// — TF.js models in local folders, laid out as tfjs-node writes them.
//
// USAGE
//
//   URLs are "file://" followed by a path, resolved as tfjs-node does
//   (path.resolve against the working directory, no percent-decoding):
//     file:///srv/models/mnist        absolute
//     file://models/mnist             relative to the working directory
//     file://./models/mnist           the same
//   Spaces and non-ASCII characters are used as they are.
//
//   save    The path is the model's folder (created with its parents). It
//           receives model.json and weights.bin, or group1-shardNofM.bin
//           files with "shard_size". A path ending in /model.json that is
//           not a folder saves into the folder around it. A path that is an
//           existing file gives TF.js's error "Path <abs> exists as a file.
//           The path must be nonexistent or point to a directory."
//           From a stream (a copy from another store, ABI 1.1) each weight
//           file is written as its bytes arrive, and each buffer released
//           once written; the model is published, as any save, only after
//           the last byte came and was synced.
//   load    The path is the model.json file (any name), or a folder holding
//           model.json. Weight files are mapped with mmap and handed out
//           without copies, each labelled with its absolute path. In a
//           streaming copy they are handed over one by one; every file is
//           opened and mapped (not read) before the first goes, so a save
//           swapping the folder meanwhile cannot mix two versions.
//   list    Every model.json under the path's folder, at any depth, each
//           listed by its file:// URL; dateSaved is model.json's mtime.
//   remove  model.json and exactly the files its manifest names, then the
//           folder if that left it empty.
//   stat    model.json, and the status (no bytes) of each weight file it
//           names; the version is a digest of mtime, ctime, size and inode
//           of each. Timestamps tick with the kernel's clock (a few ms), so
//           a same-size rewrite in place within one tick is not seen.
//
//   Options (a JSON object; any other key is refused):
//     "shard_size"  bytes per weight file; 0 (default) writes one weights.bin.
//     "durable"     false skips every fsync (scratch data); default true.
//     "integrity"   "sha256" (default) records each weight file's SHA-256 in
//                   model.json, computed as the file is written; "none"
//                   writes model.json byte for byte as tfjs-node does.
//     "shard_names" "tfjs" (default) or "sha256": weight files named after
//                   their digests; a save links a file the folder already
//                   holds under its name with those bytes (hashed to check)
//                   into the new folder instead of writing it again.
//   (docs/integrity.md)
//
// HOW A SAVE IS ATOMIC
//
//   The new model is written into a sibling folder ".<name>.stowage-tmp-XXXXXX",
//   whose files and the folder itself are fsynced, and then swapped with the
//   model's folder in one renameat2(RENAME_EXCHANGE) (a rename when there
//   was no folder); the parent is fsynced and the old contents, now under
//   the temporary name, are deleted. Readers open the folder once and read
//   everything relative to it, so they see the old model or the new one,
//   never a mix, also when a saver is killed. Files in the folder that are
//   not part of the model there are hard-linked into the new folder, so
//   nothing of the user's is lost; a foreign subfolder makes the save refuse.
//   A temporary folder is locked (flock) while its save runs; the next save
//   of that folder deletes temporary folders whose saver died.
//
// PARTS
//
//   weight_writer_internal.hpp   the byte writer: writev batches,
//                                copy_file_range from mapped files, fdatasync
//   preservation_internal.hpp    which files of the folder are the user's,
//                                and their hard links into the new folder
//   file_internal.hpp            paths, descriptors, folder walks
//   This file: the reader, the save transaction, the store, the handler, and
//   the plugin's entry point last.
//
// ERRORS
//
//   ENOENT not found, EACCES permission denied, ENOSPC/EDQUOT resource
//   exhausted, EIO data loss, others internal; each message names the path.
//   A missing model.json: NOT_FOUND "Path <abs> does not exist: loading
//   failed"; a missing weight file: DATA_LOSS "Weight file <abs> does not
//   exist: loading failed"; a weight file that is a symlink leading out of
//   the model's folder: INVALID_ARGUMENT.
#include <limits.h>
#include <sys/file.h>
#include <sys/mman.h>

#include <filesystem>
#include <random>
#include <set>

#include "file_internal.hpp"
#include "mapped_files_internal.hpp"
#include "preservation_internal.hpp"
#include "stowage/blob_store.hpp"
#include "weight_writer_internal.hpp"

namespace stowage::file {
namespace {

using plugin::BlobInfo;
using plugin::BlobLayout;
using plugin::BlobLocation;
using plugin::BlobStore;
using plugin::Call;
using plugin::Options;

// ---- Reading ------------------------------------------------------------

// Reads relative to the model's folder, opened once: a save that swaps the
// folder cannot hand this reader a mix of two versions.
class FileReader final : public BlobStore::Reader {
 public:
  FileReader(std::string folder, std::string model_name)
      : folder_(std::move(folder)), model_name_(std::move(model_name)) {
    dir_ = Fd(::open(folder_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dir_) {
      if (errno != ENOENT && errno != ENOTDIR) {
        throw errno_error(errno, "Cannot open folder " + folder_);
      }
      return;
    }
    struct stat st;
    if (::fstat(dir_.get(), &st) != 0) throw errno_error(errno, "Cannot stat " + folder_);
    dev_ = st.st_dev;
    ino_ = st.st_ino;
  }

  std::optional<Buffer> get(const std::string& key, Call&) override {
    if (!dir_) return std::nullopt;
    const std::string path = join(folder_, key);
    // The model file is what the URL named; weight files must stay inside.
    const bool confine = key != model_name_;
    Fd fd(::openat(dir_.get(), key.c_str(), O_RDONLY | O_CLOEXEC | (confine ? O_NOFOLLOW : 0)));
    if (confine && (!fd ? errno == ELOOP : key.find('/') != std::string::npos)) {
      struct stat target;
      if (!inside(key, path, &target)) return std::nullopt;
      fd = Fd(::openat(dir_.get(), key.c_str(), O_RDONLY | O_CLOEXEC));
      struct stat opened;
      if (fd && (::fstat(fd.get(), &opened) != 0 || opened.st_ino != target.st_ino ||
                 opened.st_dev != target.st_dev)) {
        throw Error(ErrorCode::kUnavailable, "Weight file " + path + " changed while it was opened",
                    /*retryable=*/true);
      }
    }
    if (!fd) {
      if (errno == ENOENT || errno == ENOTDIR) return std::nullopt;
      throw errno_error(errno, "Cannot open " + path);
    }
    if (!confine) model_read_ = true;
    struct stat st;
    if (::fstat(fd.get(), &st) != 0) throw errno_error(errno, "Cannot stat " + path);
    if (!S_ISREG(st.st_mode)) {
      throw Error(confine ? ErrorCode::kDataLoss : ErrorCode::kInvalidArgument,
                  path + " is not a regular file");
    }
    const uint64_t size = static_cast<uint64_t>(st.st_size);
    if (size == 0) return Buffer::wrap(nullptr, 0, nullptr, path);
    // Writable but private: the bytes may end up in a writable JavaScript
    // ArrayBuffer (bindings/node), where a stray write must copy the page,
    // not crash the process. Nothing ever reaches the file through it.
    void* addr = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd.get(), 0);
    if (addr == MAP_FAILED) throw errno_error(errno, "Cannot map " + path);
    ::madvise(addr, size, MADV_SEQUENTIAL);
    const bool remembered = remember_mapping(addr, fd.get(), st, size);
    std::shared_ptr<const void> owner(addr, [size, remembered](const void* p) {
      if (remembered) MappedFiles::instance().remove(p);
      ::munmap(const_cast<void*>(p), size);
    });
    return Buffer::wrap(static_cast<const uint8_t*>(addr), size, std::move(owner), path);
  }

  // The file's own status, confined as get() confines weight files
  // (`confine`), without opening it. nullopt when it does not exist.
  std::optional<struct stat> status_of(const std::string& key, bool confine) const {
    if (!dir_) return std::nullopt;
    const std::string path = join(folder_, key);
    struct stat st;
    if (::fstatat(dir_.get(), key.c_str(), &st, confine ? AT_SYMLINK_NOFOLLOW : 0) != 0) {
      if (errno == ENOENT || errno == ENOTDIR) return std::nullopt;
      throw errno_error(errno, "Cannot stat " + path);
    }
    if (confine && (S_ISLNK(st.st_mode) || key.find('/') != std::string::npos) &&
        !inside(key, path, &st)) {
      return std::nullopt;
    }
    if (!S_ISREG(st.st_mode)) {
      throw Error(confine ? ErrorCode::kDataLoss : ErrorCode::kInvalidArgument,
                  path + " is not a regular file");
    }
    return st;
  }

  // The folder's path now leads to another folder (a save swapped it in),
  // or a remove is under way in this one: it deletes model.json first, so a
  // weight file missing after that is the remove's doing, not data loss.
  bool stale() override {
    struct stat st;
    if (::stat(folder_.c_str(), &st) != 0) return static_cast<bool>(dir_);
    if (!dir_ || st.st_ino != ino_ || st.st_dev != dev_) return true;
    return model_read_ && ::fstatat(dir_.get(), model_name_.c_str(), &st, 0) != 0 &&
           errno == ENOENT;
  }

 private:
  // Follows every symlink in key (relative to the open folder) and checks
  // that the target lies inside the folder. false when the target is gone.
  bool inside(const std::string& key, const std::string& path, struct stat* target) const {
    const std::string self = "/proc/self/fd/" + std::to_string(dir_.get());
    char root[PATH_MAX];
    char resolved[PATH_MAX];
    if (::realpath(self.c_str(), root) == nullptr && ::realpath(folder_.c_str(), root) == nullptr) {
      throw errno_error(errno, "Cannot resolve folder " + folder_);
    }
    if (::realpath((self + "/" + key).c_str(), resolved) == nullptr) {
      if (errno == ENOENT || errno == ENOTDIR) return false;
      throw errno_error(errno, "Cannot resolve " + path);
    }
    std::string_view base = root;
    std::string_view real = resolved;
    bool ok = base == "/" ||
              (real.starts_with(base) && real.size() > base.size() && real[base.size()] == '/');
    if (!ok) {
      throw Error(ErrorCode::kInvalidArgument,
                  "Weight file " + path + " is a symlink leading outside the model folder " +
                      folder_ + " (to " + std::string(real) + "); refused");
    }
    if (::stat(resolved, target) != 0) {
      if (errno == ENOENT) return false;
      throw errno_error(errno, "Cannot stat " + path);
    }
    return true;
  }

  // Lets a later save copy these bytes file to file (mapped_files_internal.hpp).
  static bool remember_mapping(const void* addr, int fd, const struct stat& st, uint64_t size) {
    char path[PATH_MAX];
    const std::string self = "/proc/self/fd/" + std::to_string(fd);
    const ssize_t n = ::readlink(self.c_str(), path, sizeof path);
    if (n <= 0 || static_cast<size_t>(n) >= sizeof path || path[0] != '/') return false;
    MappedFiles::instance().add(
        addr, {std::string(path, static_cast<size_t>(n)), st.st_dev, st.st_ino, size});
    return true;
  }

  std::string folder_;
  std::string model_name_;
  Fd dir_;
  bool model_read_ = false;  // model.json was there when this reader read it
  dev_t dev_ = 0;
  ino_t ino_ = 0;
};

// ---- Writing ------------------------------------------------------------

// One save: a temporary sibling folder, published by exchanging it with the
// model's folder.
class FileTransaction final : public BlobStore::Transaction {
 public:
  FileTransaction(std::string folder, std::string model_name, bool durable)
      : folder_(std::move(folder)),
        model_name_(std::move(model_name)),
        durable_(durable),
        parent_path_(parent_of(folder_)),
        base_(name_of(folder_)) {
    if (folder_ == "/") {
      throw Error(ErrorCode::kInvalidArgument, "Cannot save a model as the root folder /");
    }
    make_folders(parent_path_, durable_);
    parent_ = Fd(::open(parent_path_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!parent_) throw errno_error(errno, "Cannot open folder " + parent_path_);
    struct stat st;
    std::optional<mode_t> mode;
    if (::fstatat(parent_.get(), base_.c_str(), &st, 0) == 0) {
      if (!S_ISDIR(st.st_mode)) throw exists_as_file(folder_);
      mode = st.st_mode & 07777;
      Fd old(::openat(parent_.get(), base_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      if (old) foreign_files(old.get());  // refuses foreign folders before any byte is written
    }
    remove_dead_temps();
    make_temp(mode);
  }

  ~FileTransaction() override { abort(); }

  void put(const std::string& key, const std::vector<Buffer>& pieces, Call& call) override {
    WeightFileWriter out(temp_.get(), key, join(folder_, key), durable_);
    out.write_all(pieces, call);
    out.close(call);
  }

  // Each piece goes to the file before write() returns, so a streaming save
  // releases it at once; the file is synced at close() as put's is.
  std::unique_ptr<Writer> open(const std::string& key, uint64_t, Call&) override {
    return std::make_unique<WeightFileWriter>(temp_.get(), key, join(folder_, key), durable_);
  }

  // The old model's files go with the old folder; nothing to do.
  void remove(const std::vector<std::string>&, Call&) override {}

  // A hard link of the file in the model's folder into the new one: the
  // same bytes (the adapter hashed them) at no cost of a write.
  bool keep(const std::string& key, Call&) override {
    if (key.find('/') != std::string::npos) return false;
    Fd old(::openat(parent_.get(), base_.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!old) return false;
    struct stat st;
    if (::fstatat(old.get(), key.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) {
      return false;  // gone meanwhile, or a symlink whose target may change: write it
    }
    if (::linkat(old.get(), key.c_str(), temp_.get(), key.c_str(), 0) == 0) return true;
    if (errno == ENOENT || errno == EXDEV || errno == EPERM || errno == EMLINK ||
        errno == EOPNOTSUPP) {
      return false;
    }
    throw errno_error(errno, "Cannot link " + join(folder_, key) + " into the new folder");
  }

  void commit(Call& call) override {
    call.check();
    if (durable_ && ::fsync(temp_.get()) != 0) {
      throw errno_error(errno, "Cannot sync folder " + join(parent_path_, temp_name_));
    }
    for (int attempt = 0; !published_; ++attempt) {
      if (attempt == 8) {
        throw Error(ErrorCode::kUnavailable,
                    "The folder " + folder_ + " kept changing during the save", true);
      }
      publish();
    }
    if (durable_ && ::fsync(parent_.get()) != 0) {
      plugin::log(2, "saved " + folder_ + " but could not sync " + parent_path_ + ": " +
                         std::strerror(errno));
    }
    if (old_) {
      ::flock(old_.get(), LOCK_EX);  // waits for a saver still cleaning up there
      if (!remove_tree_at(parent_.get(), old_name_)) {
        plugin::log(2, "saved " + folder_ + " but could not delete the previous model in " +
                           join(parent_path_, old_name_));
      }
      old_.reset();
    }
    temp_.reset();
  }

  void abort() noexcept override {
    if (published_ || !temp_) return;
    remove_tree_at(parent_.get(), temp_name_);
    temp_.reset();
  }

 private:
  // One try at putting the temporary folder in the model folder's place.
  // Sets published_, or leaves it false when the folder changed meanwhile.
  void publish() {
    Fd old(::openat(parent_.get(), base_.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!old) {
      if (errno == ENOTDIR || errno == ELOOP) throw exists_as_file(folder_);
      if (errno != ENOENT) throw errno_error(errno, "Cannot open folder " + folder_);
      if (::renameat2(parent_.get(), temp_name_.c_str(), parent_.get(), base_.c_str(),
                      RENAME_NOREPLACE) == 0) {
        published_ = true;
      } else if (errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP) {
        // No RENAME_NOREPLACE here; a plain rename may replace an empty folder.
        published_ =
            ::renameat(parent_.get(), temp_name_.c_str(), parent_.get(), base_.c_str()) == 0;
        if (!published_ && errno != EEXIST && errno != ENOTEMPTY) {
          throw errno_error(errno, "Cannot publish " + folder_);
        }
      } else if (errno != EEXIST) {
        throw errno_error(errno, "Cannot publish " + folder_);
      }
      return;
    }
    for (const std::string& name : foreign_files(old.get())) {
      adopt_foreign_file(old.get(), temp_.get(), name, folder_);
    }
    if (::renameat2(parent_.get(), temp_name_.c_str(), parent_.get(), base_.c_str(),
                    RENAME_EXCHANGE) == 0) {
      old_name_ = temp_name_;
    } else if (errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP) {
      // No exchange on this filesystem: two renames. Readers may find no
      // folder for an instant (they start again), never a mix.
      std::string aside = unique_name();
      if (::renameat(parent_.get(), base_.c_str(), parent_.get(), aside.c_str()) != 0) {
        if (errno == ENOENT) return;
        throw errno_error(errno, "Cannot move " + folder_ + " aside");
      }
      if (::renameat(parent_.get(), temp_name_.c_str(), parent_.get(), base_.c_str()) != 0) {
        int err = errno;
        ::renameat(parent_.get(), aside.c_str(), parent_.get(), base_.c_str());
        throw errno_error(err, "Cannot publish " + folder_);
      }
      old_name_ = aside;
    } else if (errno == ENOENT) {
      return;
    } else {
      throw errno_error(errno, "Cannot publish " + folder_);
    }
    old_ = std::move(old);
    published_ = true;
  }

  // The entries of the existing folder that are not part of its model
  // (preservation_internal.hpp), by the model file this save replaces.
  std::vector<std::string> foreign_files(int old) const {
    std::optional<Buffer> text;
    {
      Call quiet(nullptr, folder_, "save");
      FileReader reader(folder_, model_name_);
      try {
        text = reader.get(model_name_, quiet);
      } catch (const Error&) {
      }
    }
    return foreign_files_of(old, folder_, model_name_,
                            text ? std::optional<std::string_view>(text->view()) : std::nullopt);
  }

  // Deletes temporary folders of this model whose saver died (their lock
  // is free); a running save holds the lock on its folder.
  void remove_dead_temps() {
    const std::string prefix = temp_prefix(base_);
    for (const std::string& name : folder_entries(parent_.get(), parent_path_)) {
      if (!name.starts_with(prefix) || !is_temp_name(name)) continue;
      Fd dir(
          ::openat(parent_.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (dir && ::flock(dir.get(), LOCK_EX | LOCK_NB) == 0) {
        remove_tree_at(parent_.get(), name);
      }
    }
  }

  std::string unique_name() {
    static constexpr char kChars[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    std::uniform_int_distribution<size_t> pick(0, sizeof kChars - 2);
    std::string name = temp_prefix(base_);
    for (size_t i = 0; i < kTempSuffix; ++i) name += kChars[pick(random_)];
    return name;
  }

  // The new folder gets the permissions of the one it replaces.
  void make_temp(std::optional<mode_t> mode) {
    for (int attempt = 0;; ++attempt) {
      temp_name_ = unique_name();
      if (::mkdirat(parent_.get(), temp_name_.c_str(), 0777) != 0) {
        if (errno != EEXIST || attempt == 100) {
          throw errno_error(errno, "Cannot create a folder in " + parent_path_);
        }
        continue;
      }
      // Until it is locked, a concurrent save's remove_dead_temps may take
      // the new folder for a dead one and delete it: then try another name.
      temp_ = Fd(::openat(parent_.get(), temp_name_.c_str(),
                          O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      int err = errno;
      if (temp_ && ::flock(temp_.get(), LOCK_EX | LOCK_NB) == 0) {
        struct stat named, held;
        if (::fstatat(parent_.get(), temp_name_.c_str(), &named, AT_SYMLINK_NOFOLLOW) == 0 &&
            ::fstat(temp_.get(), &held) == 0 && named.st_ino == held.st_ino &&
            named.st_dev == held.st_dev) {
          break;
        }
        err = ENOENT;
      } else if (temp_) {
        err = errno;
      }
      temp_.reset();
      if ((err != ENOENT && err != EWOULDBLOCK) || attempt == 100) {
        remove_tree_at(parent_.get(), temp_name_);
        throw errno_error(err, "Cannot prepare a folder in " + parent_path_);
      }
    }
    if (mode && ::fchmod(temp_.get(), *mode) != 0) {
      int err = errno;
      remove_tree_at(parent_.get(), temp_name_);
      temp_.reset();
      throw errno_error(err, "Cannot prepare a folder in " + parent_path_);
    }
  }

  const std::string folder_;
  const std::string model_name_;
  const bool durable_;
  const std::string parent_path_;
  const std::string base_;
  std::mt19937_64 random_{std::random_device{}()};
  Fd parent_;
  Fd temp_;  // locked while this save runs
  std::string temp_name_;
  Fd old_;  // the replaced folder, deleted once the new one is published
  std::string old_name_;
  bool published_ = false;
};

// ---- The store ----------------------------------------------------------

// Keys are paths relative to one folder.
class FileStore final : public BlobStore {
 public:
  FileStore(std::string folder, std::string model_name, bool durable)
      : folder_(std::move(folder)), model_name_(std::move(model_name)), durable_(durable) {}

  std::optional<Buffer> get(const std::string& key, Call& call) override {
    return reader(call)->get(key, call);
  }
  std::unique_ptr<Reader> reader(Call&) override {
    return std::make_unique<FileReader>(folder_, model_name_);
  }
  std::unique_ptr<Transaction> begin(Call&) override {
    return std::make_unique<FileTransaction>(folder_, model_name_, durable_);
  }

  // Regular files (and symlinks to them) at any depth; temporary folders
  // and symlinked folders are not entered.
  std::vector<BlobInfo> list(const std::string& prefix, Call& call) override {
    std::string keys = prefix;
    if (!keys.empty() && keys.back() != '/') keys += '/';
    const std::string top = keys.empty() ? folder_ : join(folder_, keys.substr(0, keys.size() - 1));
    Fd dir(::open(top.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dir) {
      if (errno == ENOENT || errno == ENOTDIR) return {};
      throw errno_error(errno, "Cannot list " + top);
    }
    std::vector<BlobInfo> out;
    walk(dir.get(), top, keys, 0, out, call);
    return out;
  }

  void remove(const std::vector<std::string>& keys, Call&) override {
    Fd dir(::open(folder_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dir) {
      if (errno == ENOENT) return;
      throw errno_error(errno, "Cannot open folder " + folder_);
    }
    std::set<std::string> subfolders;
    for (const std::string& key : keys) {
      if (::unlinkat(dir.get(), key.c_str(), 0) != 0 && errno != ENOENT) {
        throw errno_error(errno, "Cannot remove " + join(folder_, key));
      }
      for (size_t slash = key.rfind('/'); slash != std::string::npos && slash > 0;
           slash = key.rfind('/', slash - 1)) {
        subfolders.insert(key.substr(0, slash));
      }
    }
    for (auto it = subfolders.rbegin(); it != subfolders.rend(); ++it) {
      ::unlinkat(dir.get(), it->c_str(), AT_REMOVEDIR);  // only when empty
    }
    if (durable_) ::fsync(dir.get());
    dir.reset();
    if (::rmdir(folder_.c_str()) == 0 && durable_) {
      Fd parent(::open(parent_of(folder_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      if (parent) ::fsync(parent.get());
    }
  }

  std::optional<BlobInfo> stat(const std::string& key, Call&) override {
    struct stat st;
    const std::string path = join(folder_, key);
    if (::stat(path.c_str(), &st) != 0) {
      if (errno == ENOENT || errno == ENOTDIR) return std::nullopt;
      throw errno_error(errno, "Cannot stat " + path);
    }
    if (!S_ISREG(st.st_mode)) return std::nullopt;
    return BlobInfo{key, static_cast<uint64_t>(st.st_size), mtime_of(st)};
  }

  std::string url_of(const std::string& key) const override { return "file://" + name_of(key); }
  std::string name_of(const std::string& key) const override { return join(folder_, key); }

 private:
  // keys: the key prefix of the folder `path` ("" or ending in '/').
  static void walk(int dir, const std::string& path, const std::string& keys, int depth,
                   std::vector<BlobInfo>& out, Call& call) {
    call.check();
    for (const std::string& name : folder_entries(dir, path)) {
      if (is_temp_name(name)) continue;
      const std::string key = keys + name;
      struct stat st;
      if (::fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
      if (S_ISDIR(st.st_mode)) {
        if (depth >= 64) continue;
        Fd sub(::openat(dir, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (!sub) {
          plugin::log(2, "list: skipping " + join(path, name) + ": " + std::strerror(errno));
          continue;
        }
        walk(sub.get(), join(path, name), key + "/", depth + 1, out, call);
        continue;
      }
      if (S_ISLNK(st.st_mode) && ::fstatat(dir, name.c_str(), &st, 0) != 0) continue;
      if (S_ISREG(st.st_mode))
        out.push_back({key, static_cast<uint64_t>(st.st_size), mtime_of(st)});
    }
  }

  const std::string folder_;
  const std::string model_name_;
  const bool durable_;
};

// ---- The handler --------------------------------------------------------

class FileHandler final : public plugin::Handler {
  // A model's folder and the model file in it.
  struct Where {
    std::string folder;
    BlobLocation location;
  };

  // Runs one operation of the TF.js layout over the folder of `at`; the
  // store lives for the call only, so calls on several threads share nothing.
  template <typename F>
  auto with_layout(const Where& at, F&& f) const {
    FileStore store(at.folder, at.location.model_name, durable_);
    return f(BlobLayout(store, at.location, shard_size_, url(), save_options_));
  }

 public:
  FileHandler(std::string_view url, Options& options)
      : Handler(url),
        path_(resolve_url_path(url)),
        shard_size_(options.get_uint64("shard_size", 0)),
        durable_(options.get_bool("durable", true)),
        save_options_(plugin::read_blob_save_options(options, plugin::Integrity::kSha256)) {}

  ModelArtifacts load(Call& call) override {
    std::optional<Where> at = existing();
    if (!at) {
      throw Error(ErrorCode::kNotFound, "Path " + path_ + " does not exist: loading failed");
    }
    return with_layout(*at, [&](const BlobLayout& layout) { return layout.load(call); });
  }

  std::optional<std::string> save(const ModelArtifacts& artifacts, Call& call) override {
    with_layout(Where{target_folder(), BlobLocation{}},
                [&](const BlobLayout& layout) { layout.save(artifacts, call); });
    return std::nullopt;
  }

  std::optional<std::string> save_from(const ModelArtifacts& meta, plugin::WeightSource& weights,
                                       Call& call) override {
    if (!weights.streaming()) return Handler::save_from(meta, weights, call);
    with_layout(Where{target_folder(), BlobLocation{}},
                [&](const BlobLayout& layout) { layout.save_from(meta, weights, call); });
    return std::nullopt;
  }

  std::vector<ListedModel> list(Call& call) override {
    std::optional<Where> at = existing();
    if (!at) return {};
    return with_layout(*at, [&](const BlobLayout& layout) { return layout.list(call); });
  }

  // model.json is read and every weight file only stat'ed, all relative to
  // the folder opened once (as a load reads), so a save that swaps the
  // folder meanwhile makes the stat start again instead of mixing versions.
  ModelStat stat(Call& call) override {
    for (int attempt = 1;; ++attempt) {
      call.check();
      const bool last = attempt == BlobLayout::kLoadAttempts;
      std::optional<Where> at = existing();
      if (!at) throw no_model();
      const std::string& name = at->location.model_name;
      FileReader reader(at->folder, name);
      std::optional<struct stat> before = reader.status_of(name, false);
      std::optional<Buffer> text = before ? reader.get(name, call) : std::nullopt;
      std::optional<struct stat> after = text ? reader.status_of(name, false) : std::nullopt;
      if (!after) {
        if (reader.stale() && !last) continue;
        throw no_model();
      }
      const std::string model_path = join(at->folder, name);
      if (identity(*before) != identity(*after)) {
        if (!last) continue;  // rewritten in place while it was read
        throw Error(ErrorCode::kUnavailable, model_path + " kept changing while it was read",
                    /*retryable=*/true);
      }
      ModelStat out;
      out.model = parse_model_json(text->view(), model_path);
      std::vector<std::string> parts = {identity(*after)};
      uint64_t weight_bytes = 0;
      size_t files = 0;
      bool restart = false;
      for (const WeightGroup& group : out.model.weights_manifest.value_or(WeightsManifest{})) {
        for (const std::string& path : group.paths) {
          const std::string key = plugin::weight_key("", path, model_path);
          std::optional<struct stat> st = reader.status_of(key, true);
          if (!st) {
            restart = reader.stale() && !last;
            if (restart) break;
            throw Error(ErrorCode::kDataLoss, "Weight file " + join(at->folder, key) +
                                                  " does not exist: stat of " + url() + " failed");
          }
          parts.push_back(identity(*st));
          weight_bytes += static_cast<uint64_t>(st->st_size);
          ++files;
        }
        if (restart) break;
      }
      if (restart || (reader.stale() && !last)) continue;
      out.version = plugin::version_token(parts);
      out.info = plugin::stat_info(out.model, weight_bytes, files);
      out.info.date_saved = mtime_of(*after);
      return out;
    }
  }

  ModelArtifactsInfo remove(Call& call) override {
    std::optional<Where> at = existing();
    if (!at) {
      throw Error(ErrorCode::kNotFound,
                  "No model at " + url() + ": Path " + path_ + " does not exist");
    }
    return with_layout(*at, [&](const BlobLayout& layout) { return layout.remove(call); });
  }

 private:
  // A folder (its model.json) or a model file; nullopt when nothing exists.
  std::optional<Where> existing() const {
    struct stat st;
    if (::stat(path_.c_str(), &st) != 0) {
      if (errno == ENOENT || errno == ENOTDIR) return std::nullopt;
      throw errno_error(errno, "Cannot stat " + path_);
    }
    if (S_ISDIR(st.st_mode)) return Where{path_, BlobLocation{}};
    return Where{parent_of(path_), BlobLocation{"", name_of(path_), true}};
  }

  Error no_model() const {
    return Error(ErrorCode::kNotFound,
                 "No model at " + url() + ": Path " + path_ + " does not exist");
  }

  // What tells one stored file from another: a save writes new files
  // (another inode), an edit in place moves mtime or ctime or the size.
  // Timestamps tick with the kernel's clock (a few ms): two writes of the
  // same size within one tick, to the same inode, look alike.
  static std::string identity(const struct stat& st) {
    return std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec) + ":" +
           std::to_string(st.st_ctim.tv_sec) + "." + std::to_string(st.st_ctim.tv_nsec) + ":" +
           std::to_string(st.st_size) + ":" + std::to_string(st.st_ino) + ":" +
           std::to_string(st.st_dev);
  }

  // The folder a save replaces: the path itself, or the folder around a
  // model.json path. Symlinks are resolved so the real folder is replaced.
  std::string target_folder() const {
    std::string folder = path_;
    struct stat st;
    if (::stat(path_.c_str(), &st) == 0) {
      if (!S_ISDIR(st.st_mode)) {
        if (name_of(path_) != "model.json") throw exists_as_file(path_);
        folder = parent_of(path_);
      }
    } else if (errno == ENOENT && name_of(path_) == "model.json") {
      folder = parent_of(path_);
    }
    std::error_code ec;
    std::filesystem::path real = std::filesystem::weakly_canonical(folder, ec);
    return ec || real.empty() ? folder : real.string();
  }

  const std::string path_;
  const uint64_t shard_size_;
  const bool durable_;
  const plugin::BlobSaveOptions save_options_;
};

}  // namespace
}  // namespace stowage::file

STOWAGE_PLUGIN(stowage::file::FileHandler, "file", STOWAGE_PLUGIN_VERSION,
               STOWAGE_CAP_LOAD | STOWAGE_CAP_SAVE | STOWAGE_CAP_LIST | STOWAGE_CAP_REMOVE |
                   STOWAGE_CAP_ZERO_COPY | STOWAGE_CAP_ATOMIC_SAVE | STOWAGE_CAP_STAT |
                   STOWAGE_CAP_STREAMING_SAVE | STOWAGE_CAP_STREAMING_LOAD,
               "file");
