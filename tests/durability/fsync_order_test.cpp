// The order of a durable file:// save, as the kernel sees it: the stowage
// command runs with sync_trace.c preloaded, which records every fsync,
// fdatasync and rename. A SIGKILL cannot show a missing fsync (the page
// cache survives the process), so the order is checked call by call:
// every data file and the temporary folder are synced before the rename
// that publishes, and the parent folder after it. An injected sync failure
// must fail the save with nothing published.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "run_program.hpp"
#include "test_files.hpp"

namespace fs = std::filesystem;
using stowage::testing::ProgramResult;
using stowage::testing::read_file;
using stowage::testing::TempDir;

namespace {

// renameat2 flags (linux/fs.h), as the trace prints them.
constexpr unsigned kRenameNoReplace = 1;
constexpr unsigned kRenameExchange = 2;

const fs::path kSource = fs::path(STOWAGE_SOURCE_DIR) / "samples/models/conv_sharded/model.json";

struct Line {
  std::string op;    // fsync, fdatasync or rename
  std::string path;  // the synced path, or the rename's source
  std::string to;    // the rename's destination
  unsigned flags = 0;
  bool ok = true;
};

std::vector<Line> read_trace(const fs::path& file) {
  std::vector<Line> lines;
  std::ifstream in(file);
  for (std::string text; std::getline(in, text);) {
    std::istringstream words(text);
    Line l;
    words >> l.op >> l.path;
    std::string rest;
    if (l.op == "rename") {
      words >> l.to >> rest;
      l.flags = static_cast<unsigned>(std::stoul(rest.substr(rest.find('=') + 1)));
      words >> rest;
      l.ok = rest == "ok";
    } else {
      l.ok = !(words >> rest && rest == "failed");
    }
    lines.push_back(l);
  }
  return lines;
}

std::string dump(const std::vector<Line>& lines) {
  std::string out;
  for (const Line& l : lines) {
    out += l.op + " " + l.path + (l.op == "rename" ? " -> " + l.to : "") + (l.ok ? "" : " failed");
    out += "\n";
  }
  return out;
}

// The stowage command with the shim preloaded, tracing into `trace`.
ProgramResult traced(const fs::path& cwd, const fs::path& trace,
                     const std::vector<std::string>& args, const std::string& fail = "") {
  fs::remove(trace);
  std::vector<std::string> env = {"LD_PRELOAD=" STOWAGE_SYNC_TRACE_LIB,
                                  "STOWAGE_SYNC_TRACE=" + trace.string()};
  if (!fail.empty()) env.push_back("STOWAGE_SYNC_FAIL=" + fail);
  return stowage::testing::run_program(
      STOWAGE_CLI_EXE, args, {.cwd = cwd, .drop_env = {"STOWAGE_", "LD_PRELOAD"}, .add_env = env});
}

std::vector<std::string> copy_args(const fs::path& dst, const std::string& dst_options = "") {
  std::vector<std::string> args = {
      "copy", "-q", "file://" + kSource.string(), "file://" + dst.string(), "--shard-size", "512"};
  if (!dst_options.empty()) args.insert(args.end(), {"--dst-options", dst_options});
  return args;
}

std::vector<std::string> files_in(const fs::path& folder) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(folder)) names.push_back(e.path().filename());
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<std::string> temp_folders(const fs::path& parent) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(parent)) {
    const std::string n = e.path().filename();
    if (n.find(".stowage-tmp-") != std::string::npos) names.push_back(n);
  }
  return names;
}

// Index of the first line matching, or nullopt.
template <class Pred>
std::optional<size_t> find(const std::vector<Line>& lines, Pred pred) {
  for (size_t i = 0; i < lines.size(); ++i) {
    if (pred(lines[i])) return i;
  }
  return std::nullopt;
}

// Checks one durable save of `dst` in the trace, published with `flags`.
void check_durable_order(const std::vector<Line>& lines, const fs::path& dst, unsigned flags) {
  INFO("trace:\n", dump(lines));
  const std::string parent = dst.parent_path().string();
  // The one rename that puts a sibling temporary folder in dst's place.
  const auto publish = find(lines, [&](const Line& l) { return l.op == "rename" && l.to == dst; });
  REQUIRE(publish);
  const Line& rename = lines[*publish];
  CHECK(rename.ok);
  CHECK(rename.flags == flags);
  const fs::path temp = rename.path;
  CHECK(temp.parent_path() == parent);
  CHECK(temp.filename().string().rfind("." + dst.filename().string() + ".stowage-tmp-", 0) == 0);

  // Every file the model now has was synced in the temporary folder first.
  const std::vector<std::string> files = files_in(dst);
  CHECK(files.size() == 5);  // model.json and four shards of 512 bytes or less
  size_t last_file_sync = 0;
  for (const std::string& name : files) {
    CAPTURE(name);
    const auto sync = find(lines, [&](const Line& l) {
      return (l.op == "fdatasync" || l.op == "fsync") && l.path == temp / name;
    });
    REQUIRE(sync);
    CHECK(*sync < *publish);
    last_file_sync = std::max(last_file_sync, *sync);
  }
  // Then the temporary folder, so its entries are on disk before it is published.
  const auto folder_sync =
      find(lines, [&](const Line& l) { return l.op == "fsync" && l.path == temp; });
  REQUIRE(folder_sync);
  CHECK(*folder_sync > last_file_sync);
  CHECK(*folder_sync < *publish);
  // And the parent after the rename, so the new name is on disk too.
  bool parent_after = false;
  for (size_t i = *publish + 1; i < lines.size(); ++i) {
    parent_after |= lines[i].op == "fsync" && lines[i].path == parent;
  }
  CHECK_MESSAGE(parent_after, "the parent folder ", parent, " was not synced after the rename");
}

}  // namespace

TEST_CASE("a durable file:// save syncs its files and folder before the rename, the parent after") {
  TempDir tmp("stowage-fsync");
  const fs::path root = fs::canonical(tmp.path());
  const fs::path trace = root / "trace.log";
  const fs::path dst = root / "models" / "m";

  ProgramResult r = traced(root, trace, copy_args(dst));
  INFO(r.err);
  REQUIRE(r.code == 0);
  check_durable_order(read_trace(trace), dst, kRenameNoReplace);

  // Over an existing model: the same order, published by an exchange.
  r = traced(root, trace, copy_args(dst));
  REQUIRE(r.code == 0);
  check_durable_order(read_trace(trace), dst, kRenameExchange);
  CHECK(temp_folders(dst.parent_path()).empty());
}

TEST_CASE("durable: false: the same rename, no sync at all") {
  TempDir tmp("stowage-fsync");
  const fs::path root = fs::canonical(tmp.path());
  const fs::path trace = root / "trace.log";
  const fs::path dst = root / "m";

  ProgramResult r = traced(root, trace, copy_args(dst, R"({"durable": false})"));
  INFO(r.err);
  REQUIRE(r.code == 0);
  const std::vector<Line> lines = read_trace(trace);
  INFO("trace:\n", dump(lines));
  // The shim was there: it saw the publishing rename.
  CHECK(find(lines, [&](const Line& l) { return l.op == "rename" && l.to == dst; }));
  CHECK_FALSE(find(lines, [](const Line& l) { return l.op != "rename"; }));
}

TEST_CASE("a sync that fails: the save fails naming the file, nothing is published") {
  TempDir tmp("stowage-fsync");
  const fs::path root = fs::canonical(tmp.path());
  const fs::path trace = root / "trace.log";
  const fs::path dst = root / "m";
  REQUIRE(traced(root, trace, copy_args(dst, R"({"durable": false})")).code == 0);
  const std::string old_json = read_file(dst / "model.json");
  // The saved model.json is byte-compatible with the source: write a
  // different one, so a published new model would show.
  std::ofstream(dst / "model.json", std::ios::app) << "\n";
  const std::string before = read_file(dst / "model.json");

  SUBCASE("a data file's fdatasync") {
    ProgramResult r = traced(root, trace, copy_args(dst), "fdatasync:2");
    INFO(r.err);
    CHECK(r.code == 4);  // DATA_LOSS (EIO)
    CHECK(r.err.find("Cannot sync " + dst.string() + "/") != std::string::npos);
  }
  SUBCASE("the temporary folder's fsync") {
    ProgramResult r = traced(root, trace, copy_args(dst), "fsync:1");
    INFO(r.err);
    CHECK(r.code == 4);
    CHECK(r.err.find("Cannot sync folder " + root.string() + "/.m.stowage-tmp-") !=
          std::string::npos);
  }
  const std::vector<Line> lines = read_trace(trace);
  INFO("trace:\n", dump(lines));
  CHECK(find(lines, [](const Line& l) { return !l.ok; }));  // the injected failure happened
  CHECK_FALSE(find(lines, [&](const Line& l) { return l.op == "rename" && l.to == dst; }));
  CHECK(read_file(dst / "model.json") == before);
  CHECK(temp_folders(root).empty());
  CHECK(old_json.size() + 1 == before.size());
}
