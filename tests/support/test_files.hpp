// Files and folders for tests: a temporary folder deleted with everything in
// it, and whole-file reads and writes. For tests only.
// Thread-safety: TempDir is not shared between threads; the functions are
// safe to call from several threads on different files.
#pragma once

#include <doctest/doctest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>

namespace stowage::testing {

// A new folder "<prefix>-XXXXXX" under the system's temporary folder, named
// after `prefix` so a leftover one says which test made it.
inline std::filesystem::path new_temp_folder(std::string_view prefix) {
  std::string pattern =
      (std::filesystem::temp_directory_path() / (std::string(prefix) + "-XXXXXX")).string();
  REQUIRE(::mkdtemp(pattern.data()) != nullptr);
  return pattern;
}

// A fresh folder from new_temp_folder, deleted with everything in it.
class TempDir {
 public:
  explicit TempDir(std::string_view prefix = "stowage-test") : path_(new_temp_folder(prefix)) {}
  ~TempDir() {
    std::error_code ec;
    // A test may have taken permissions away to provoke an error.
    std::filesystem::permissions(path_, std::filesystem::perms::owner_all,
                                 std::filesystem::perm_options::add, ec);
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  // "file://<folder>" or "file://<folder>/<relative>".
  std::string url(const std::string& relative = "") const {
    return "file://" + (relative.empty() ? path_ : path_ / relative).string();
  }

 private:
  std::filesystem::path path_;
};

// The whole file, or "" when it cannot be read.
inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Writes bytes as the whole file, creating its folder.
inline void write_file(const std::filesystem::path& path, std::string_view bytes) {
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE_MESSAGE(out.good(), "cannot write ", path.string());
}

}  // namespace stowage::testing
