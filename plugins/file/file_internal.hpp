// POSIX helpers of the file:// plugin: URL paths, file descriptors, folder
// walks and errors that name their path. Linux only (renameat2, /proc).
// Thread-safety: every function is safe to call from several threads.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "stowage/plugin.hpp"
#include "stowage/unique_fd.hpp"

#pragma GCC visibility push(hidden)

namespace stowage::file {

using plugin::errno_error;

// Owns one file descriptor.
using Fd = UniqueFd;

// The path of a file:// URL as tfjs-node computes it: everything after
// "://", resolved with path.resolve against the working directory (no
// percent-decoding). Throws Error(kInvalidArgument) for another scheme or a
// NUL byte.
inline std::string resolve_url_path(std::string_view url) {
  size_t sep = url.find("://");
  std::string scheme(url.substr(0, sep == std::string_view::npos ? 0 : sep));
  for (char& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (sep == std::string_view::npos || scheme != "file") {
    throw Error(ErrorCode::kInvalidArgument, "Not a file:// URL: " + std::string(url));
  }
  std::string_view rest = url.substr(sep + 3);
  if (rest.find('\0') != std::string_view::npos) {
    throw Error(ErrorCode::kInvalidArgument, "The URL " + std::string(url) + " has a NUL byte");
  }
  std::string raw;
  if (!rest.starts_with('/')) {
    std::vector<char> cwd(4096);
    while (::getcwd(cwd.data(), cwd.size()) == nullptr) {
      if (errno != ERANGE) throw errno_error(errno, "Cannot read the working directory");
      cwd.resize(cwd.size() * 2);
    }
    raw = std::string(cwd.data()) + "/";
  }
  raw += rest;
  std::vector<std::string_view> parts;
  std::string_view all = raw;
  for (size_t start = 0; start <= all.size();) {
    size_t end = std::min(all.find('/', start), all.size());
    std::string_view s = all.substr(start, end - start);
    if (s == "..") {
      if (!parts.empty()) parts.pop_back();
    } else if (!s.empty() && s != ".") {
      parts.push_back(s);
    }
    start = end + 1;
  }
  std::string path;
  for (std::string_view s : parts) {
    path += '/';
    path += s;
  }
  return path.empty() ? "/" : path;
}

// "/a/b" -> "/a"; "/a" -> "/".
inline std::string parent_of(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
}
inline std::string name_of(const std::string& path) { return path.substr(path.rfind('/') + 1); }
inline std::string join(const std::string& folder, std::string_view name) {
  return folder == "/" ? "/" + std::string(name) : folder + "/" + std::string(name);
}

inline std::chrono::system_clock::time_point mtime_of(const struct stat& st) {
  return std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::seconds(st.st_mtim.tv_sec) + std::chrono::nanoseconds(st.st_mtim.tv_nsec)));
}

// TF.js's text for a save into a path that is a file.
inline Error exists_as_file(const std::string& path) {
  return Error(
      ErrorCode::kAlreadyExists,
      "Path " + path + " exists as a file. The path must be nonexistent or point to a directory.");
}

// The names in an open folder (without "." and ".."). Throws naming `path`.
inline std::vector<std::string> folder_entries(int dir, const std::string& path) {
  int copy = ::fcntl(dir, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) throw errno_error(errno, "Cannot read folder " + path);
  DIR* d = ::fdopendir(copy);
  if (d == nullptr) {
    int err = errno;
    ::close(copy);
    throw errno_error(err, "Cannot read folder " + path);
  }
  ::rewinddir(d);
  std::vector<std::string> names;
  errno = 0;
  while (const dirent* e = ::readdir(d)) {
    std::string_view n = e->d_name;
    if (n != "." && n != "..") names.emplace_back(n);
  }
  int err = errno;
  ::closedir(d);
  if (err != 0) throw errno_error(err, "Cannot read folder " + path);
  return names;
}

// Deletes `name` inside `dir`, folders recursively. Best effort: returns
// false when something could not be deleted (already gone counts as done).
inline bool remove_tree_at(int dir, const std::string& name, int depth = 0) {
  struct stat st;
  if (::fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return errno == ENOENT;
  if (!S_ISDIR(st.st_mode)) return ::unlinkat(dir, name.c_str(), 0) == 0 || errno == ENOENT;
  bool ok = depth < 256;
  Fd sub(::openat(dir, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (sub && ok) {
    try {
      for (const std::string& n : folder_entries(sub.get(), name)) {
        ok = remove_tree_at(sub.get(), n, depth + 1) && ok;
      }
    } catch (const Error&) {
      ok = false;
    }
  }
  return (::unlinkat(dir, name.c_str(), AT_REMOVEDIR) == 0 || errno == ENOENT) && ok;
}

// mkdir -p. A component that exists as a file gives TF.js's error. With
// durable, the folder holding each new folder is synced.
inline void make_folders(const std::string& path, bool durable) {
  std::string current;
  std::string_view all = path;
  for (size_t start = 1; start <= all.size();) {
    size_t end = std::min(all.find('/', start), all.size());
    current = std::string(all.substr(0, end));
    start = end + 1;
    if (current.empty()) continue;
    if (::mkdir(current.c_str(), 0777) == 0) {
      Fd parent(durable ? ::open(parent_of(current).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)
                        : -1);
      if (parent && ::fsync(parent.get()) != 0) {
        throw errno_error(errno, "Cannot sync folder " + parent_of(current));
      }
      continue;
    }
    int err = errno;
    struct stat st;
    if (::stat(current.c_str(), &st) == 0) {
      if (S_ISDIR(st.st_mode)) continue;
      throw exists_as_file(current);
    }
    throw errno_error(err, "Cannot create folder " + current);
  }
}

// A save's temporary sibling folder: ".<name>.stowage-tmp-XXXXXX".
inline constexpr std::string_view kTempMarker = ".stowage-tmp-";
inline constexpr size_t kTempSuffix = 6;

// ".<name>.stowage-tmp-" (the name cut short so the whole fits NAME_MAX).
inline std::string temp_prefix(const std::string& name) {
  // Appended piece by piece: "." + std::string&& trips GCC 12's -Wrestrict
  // false positive in optimised builds.
  std::string prefix(1, '.');
  prefix.append(name, 0, 200);
  prefix.append(kTempMarker);
  return prefix;
}
inline bool is_temp_name(std::string_view name) {
  size_t at = name.rfind(kTempMarker);
  return name.starts_with('.') && at != std::string_view::npos &&
         name.size() - at - kTempMarker.size() == kTempSuffix;
}

}  // namespace stowage::file

#pragma GCC visibility pop
