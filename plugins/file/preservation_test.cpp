// Keeping a user's other files through a save (preservation_internal.hpp),
// in real temporary folders.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "preservation_internal.hpp"

namespace stowage::file {
namespace {

namespace fs = std::filesystem;

struct Folder {
  Folder() {
    std::string tmpl = (fs::temp_directory_path() / "stowage-keep-XXXXXX").string();
    path = ::mkdtemp(tmpl.data());
  }
  ~Folder() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  void write(const std::string& name, const std::string& text) const {
    fs::create_directories(fs::path(join(path, name)).parent_path());
    std::ofstream(join(path, name), std::ios::binary) << text;
  }
  std::string read(const std::string& name) const {
    std::ifstream in(join(path, name), std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }
  Fd open() const {
    Fd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    REQUIRE(fd);
    return fd;
  }
  std::string path;
};

// A model file naming `paths` as its one weight group.
std::string model_json(const std::vector<std::string>& paths) {
  std::string list;
  for (const auto& p : paths) list += (list.empty() ? "\"" : ",\"") + p + "\"";
  return R"({"format":"layers-model","modelTopology":{},"weightsManifest":[{"paths":[)" + list +
         R"(],"weights":[]}]})";
}

std::vector<std::string> foreign(const Folder& dir, const std::string& model_name,
                                 std::optional<std::string> text) {
  Fd fd = dir.open();
  auto names = foreign_files_of(fd.get(), dir.path, model_name,
                                text ? std::optional<std::string_view>(*text) : std::nullopt);
  std::sort(names.begin(), names.end());
  return names;
}

using Names = std::vector<std::string>;

TEST_CASE("the files a model does not own are foreign; its own and temporary folders are not") {
  Folder dir;
  const std::string text = model_json({"weights.bin", "./shards/a.bin", "shards/deep/b.bin"});
  dir.write("model.json", text);
  dir.write("weights.bin", "w");
  dir.write("shards/a.bin", "a");
  dir.write("shards/deep/b.bin", "b");
  dir.write("notes.txt", "mine");
  dir.write("README", "mine too");
  fs::create_directory(join(dir.path, ".m.stowage-tmp-AbC123"));  // a save under way
  CHECK(foreign(dir, "model.json", text) == Names{"README", "notes.txt"});
}

TEST_CASE("a model file that cannot be read or parsed owns nothing but itself") {
  Folder dir;
  dir.write("model.json", "{not json");
  dir.write("weights.bin", "w");
  dir.write("notes.txt", "mine");
  CHECK(foreign(dir, "model.json", std::nullopt) == Names{"notes.txt", "weights.bin"});
  CHECK(foreign(dir, "model.json", std::string("{not json")) == Names{"notes.txt", "weights.bin"});
}

TEST_CASE("a folder the model does not own refuses the save, naming it") {
  Folder dir;
  const std::string text = model_json({"weights.bin", "shards/a.bin"});
  dir.write("model.json", text);
  dir.write("weights.bin", "w");
  const std::string expected_start =
      "Cannot save a model into " + dir.path + ": it holds the folder ";
  const std::string expected_end =
      ", which is not part of the model there. A save replaces the whole folder at once and "
      "does not move other folders; save into a folder of its own.";

  SUBCASE("a folder of its own") {
    dir.write("photos/cat.jpg", "meow");
    try {
      foreign(dir, "model.json", text);
      FAIL("no error");
    } catch (const Error& e) {
      CHECK(e.code() == ErrorCode::kAlreadyExists);
      CHECK(std::string(e.what()) == expected_start + join(dir.path, "photos") + expected_end);
    }
  }
  SUBCASE("the model's weight folder with a file of the user's in it") {
    dir.write("shards/a.bin", "a");
    dir.write("shards/mine.txt", "mine");
    try {
      foreign(dir, "model.json", text);
      FAIL("no error");
    } catch (const Error& e) {
      CHECK(e.code() == ErrorCode::kAlreadyExists);
      CHECK(std::string(e.what()) == expected_start + join(dir.path, "shards") + expected_end);
    }
  }
}

TEST_CASE("content-addressed weights another model file names stay as foreign files") {
  Folder dir;
  const std::string shared = "0123456789abcdef.bin";
  const std::string own = "fedcba9876543210.bin";
  const std::string text = model_json({shared, own});
  dir.write("model.json", text);
  dir.write("other.json", model_json({shared}));
  dir.write(shared, "s");
  dir.write(own, "o");
  CHECK(foreign(dir, "model.json", text) == Names{shared, "other.json"});
}

TEST_CASE("adopt_foreign_file links the user's file into the new folder") {
  Folder old_dir, new_dir;
  old_dir.write("notes.txt", "mine");
  old_dir.write("weights.bin", "old weights");
  new_dir.write("weights.bin", "new weights");
  Fd old_fd = old_dir.open();
  Fd new_fd = new_dir.open();

  adopt_foreign_file(old_fd.get(), new_fd.get(), "notes.txt", old_dir.path);
  struct stat a, b;
  REQUIRE(::stat(join(old_dir.path, "notes.txt").c_str(), &a) == 0);
  REQUIRE(::stat(join(new_dir.path, "notes.txt").c_str(), &b) == 0);
  CHECK(a.st_ino == b.st_ino);  // the same file, not a copy
  CHECK(new_dir.read("notes.txt") == "mine");

  // A name the new model uses stays the model's.
  adopt_foreign_file(old_fd.get(), new_fd.get(), "weights.bin", old_dir.path);
  CHECK(new_dir.read("weights.bin") == "new weights");
  // The same file linked already (a kept content-addressed file): nothing to do.
  adopt_foreign_file(old_fd.get(), new_fd.get(), "notes.txt", old_dir.path);
  CHECK(new_dir.read("notes.txt") == "mine");
  // Deleted meanwhile: skipped.
  adopt_foreign_file(old_fd.get(), new_fd.get(), "gone.txt", old_dir.path);
  CHECK_FALSE(fs::exists(join(new_dir.path, "gone.txt")));
  CHECK(old_dir.read("notes.txt") == "mine");
}

TEST_CASE("adopt_foreign_file throws naming the file when the link is refused") {
  Folder old_dir;
  old_dir.write("notes.txt", "mine");
  Fd old_fd = old_dir.open();
  Fd not_a_folder(::open(join(old_dir.path, "notes.txt").c_str(), O_RDONLY | O_CLOEXEC));
  try {
    adopt_foreign_file(old_fd.get(), not_a_folder.get(), "notes.txt", old_dir.path);
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(std::string(e.what()) == "Cannot keep " + join(old_dir.path, "notes.txt") +
                                       " in the new folder (hard link refused): Not a directory");
    CHECK(e.code() == ErrorCode::kNotFound);  // ENOTDIR, as plugin::errno_error maps it
  }
}

}  // namespace
}  // namespace stowage::file
