// The file:// plugin's byte writer (weight_writer_internal.hpp) in a real
// temporary folder: what lands in the file, progress, cancellation, and the
// file-to-file copy of mapped bytes.
#include <doctest/doctest.h>
#include <sys/mman.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "weight_writer_internal.hpp"

namespace stowage::file {
namespace {

namespace fs = std::filesystem;

struct Folder {
  Folder() {
    std::string tmpl = (fs::temp_directory_path() / "stowage-writer-XXXXXX").string();
    path = ::mkdtemp(tmpl.data());
    fd = Fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    REQUIRE(fd);
  }
  ~Folder() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string read(const std::string& name) const {
    std::ifstream in(join(path, name), std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }
  void write(const std::string& name, const std::string& bytes) const {
    std::ofstream(join(path, name), std::ios::binary) << bytes;
  }
  std::string path;
  Fd fd;
};

Buffer bytes(const std::string& s) {
  return Buffer::from_vector(std::vector<uint8_t>(s.begin(), s.end()), "test");
}

// A call that records every progress report and can be cancelled.
struct RecordingCall {
  static void progress(void* self, uint64_t done, uint64_t) {
    static_cast<RecordingCall*>(self)->reports.push_back(done);
  }
  static int32_t is_cancelled(void* self) { return static_cast<RecordingCall*>(self)->cancel; }
  RecordingCall() {
    raw.struct_size = sizeof raw;
    raw.host_context = this;
    raw.progress = &progress;
    raw.is_cancelled = &is_cancelled;
  }
  stowage_call raw{};
  std::vector<uint64_t> reports;
  int32_t cancel = 0;
};

std::string pattern(size_t size) {
  std::string s(size, '\0');
  for (size_t i = 0; i < size; ++i) s[i] = static_cast<char>((i * 131) % 251);
  return s;
}

TEST_CASE("the writer writes its pieces in order and reports every byte") {
  Folder dir;
  plugin::Call call(nullptr, "file:///m", "save");
  WeightFileWriter out(dir.fd.get(), "weights.bin", join(dir.path, "weights.bin"), true);
  out.write_all({bytes("ab"), bytes(""), bytes("cde")}, call);
  out.write(bytes("f"), call);
  out.close(call);
  CHECK(dir.read("weights.bin") == "abcdef");
  CHECK(call.done() == 6);
}

TEST_CASE("the writer reports progress once per kWriteChunk bytes") {
  Folder dir;
  RecordingCall recording;
  plugin::Call call(&recording.raw, "file:///m", "save");
  const std::string big = pattern(kWriteChunk + 3);
  WeightFileWriter out(dir.fd.get(), "w", join(dir.path, "w"), false);
  out.write_all({bytes(big.substr(0, 5)), bytes(big.substr(5))}, call);
  out.close(call);
  CHECK(dir.read("w") == big);
  CHECK(recording.reports == std::vector<uint64_t>{kWriteChunk, kWriteChunk + 3});
}

TEST_CASE("a cancelled save stops after the batch under way") {
  Folder dir;
  RecordingCall recording;
  recording.cancel = 1;
  plugin::Call call(&recording.raw, "file:///m", "save");
  WeightFileWriter out(dir.fd.get(), "w", join(dir.path, "w"), true);
  try {
    out.write_all({bytes("0123456789"), bytes("never")}, call);
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::kCancelled);
    CHECK(std::string(e.what()) == "save of file:///m was cancelled");
  }
  CHECK(dir.read("w") == "0123456789never");  // one batch: both pieces went in one writev
  CHECK(call.done() == 15);
}

TEST_CASE("the writer refuses subfolders and a file that exists") {
  Folder dir;
  const std::string sub = join(dir.path, "a/b");
  try {
    WeightFileWriter out(dir.fd.get(), "a/b", sub, true);
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::kInternal);
    CHECK(std::string(e.what()) == "file:// writes no subfolders: " + sub);
  }
  dir.write("taken", "old");
  const std::string taken = join(dir.path, "taken");
  try {
    WeightFileWriter out(dir.fd.get(), "taken", taken, true);
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::kAlreadyExists);
    CHECK(std::string(e.what()) == "Cannot create " + taken + ": File exists");
  }
  CHECK(dir.read("taken") == "old");
}

// A file mapped as the plugin's reader maps it, and remembered.
struct Mapping {
  Mapping(const std::string& file, size_t size) : size(size) {
    Fd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
    REQUIRE(fd);
    struct stat st;
    REQUIRE(::fstat(fd.get(), &st) == 0);
    addr = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd.get(), 0);
    REQUIRE(addr != MAP_FAILED);
    info = {file, st.st_dev, st.st_ino, size};
    MappedFiles::instance().add(addr, info);
  }
  ~Mapping() {
    MappedFiles::instance().remove(addr);
    ::munmap(addr, size);
  }
  const uint8_t* at(size_t offset) const { return static_cast<const uint8_t*>(addr) + offset; }
  size_t size;
  void* addr;
  MappedFile info;
};

TEST_CASE("copy_from_file copies a mapped file's range, and nothing from a replaced file") {
  Folder dir;
  const std::string content = pattern(10000);
  dir.write("source.bin", content);
  Mapping map(join(dir.path, "source.bin"), content.size());
  plugin::Call call(nullptr, "file:///m", "save");
  {
    Fd out(::openat(dir.fd.get(), "copy", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666));
    CHECK(copy_from_file({map.info, 100}, 5000, out.get(), "copy", call) == 5000);
  }
  CHECK(dir.read("copy") == content.substr(100, 5000));
  CHECK(call.done() == 5000);

  // Past the end of the file: nothing copied, the caller writes it all.
  Fd past(::openat(dir.fd.get(), "past", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666));
  CHECK(copy_from_file({map.info, 9000}, 2000, past.get(), "past", call) == 0);

  // Replaced since it was mapped (another inode under the path).
  fs::rename(join(dir.path, "source.bin"), join(dir.path, "old.bin"));
  dir.write("source.bin", content);
  Fd replaced(::openat(dir.fd.get(), "replaced", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666));
  CHECK(copy_from_file({map.info, 0}, 10, replaced.get(), "replaced", call) == 0);
  CHECK(dir.read("past").empty());
  CHECK(dir.read("replaced").empty());
  CHECK(call.done() == 5000);
}

TEST_CASE("the writer copies mapped bytes file to file, and the rest from memory") {
  Folder dir;
  const std::string content = pattern(4096 * 3);
  dir.write("source.bin", content);
  Mapping map(join(dir.path, "source.bin"), content.size());
  plugin::Call call(nullptr, "file:///m", "save");
  // A slice of the mapping (found in MappedFiles), then bytes of no file.
  Buffer slice = Buffer::wrap(map.at(4096), 5000, nullptr, "slice");
  WeightFileWriter out(dir.fd.get(), "w", join(dir.path, "w"), true);
  out.write_all({bytes("head"), slice, bytes("tail")}, call);
  out.close(call);
  CHECK(dir.read("w") == "head" + content.substr(4096, 5000) + "tail");
  CHECK(call.done() == 5008);
}

}  // namespace
}  // namespace stowage::file
