// `stowage NAME ARGS...` for a command a plugin's manifest names: the
// program beside the manifest runs with the arguments as given and its exit
// code is the command's; the config's allow-list, --help, typo hints and
// bad programs. The plugins here are manifests and shell scripts in the
// test's folder (STOWAGE_PLUGIN_PATH), never loaded as libraries.
#include <sys/stat.h>

#include <filesystem>
#include <string>
#include <vector>

#include "cli_test_util.hpp"
#include "test_files.hpp"

namespace fs = std::filesystem;

namespace {

using stowage::cli_test::contains;
using stowage::cli_test::parse_json;
using stowage::testing::ProgramResult;
using stowage::testing::write_file;

// A plugin folder with one manifest whose "commands" are `commands` (JSON
// object members), and, unless script is empty, the program stowage-<name>
// printing its argv, one per line, and STOWAGE_CONFIG, then exiting 42.
fs::path make_plugin(const fs::path& folder, const std::string& name, const std::string& commands,
                     bool with_script = true) {
  fs::create_directories(folder);
  write_file(folder / ("stowage-" + name + ".json"), R"({"manifest_version": 1, "name": ")" + name +
                                                         R"(", "version": "1.0",
                 "library": "libstowage_)" + name + R"(.so", "abi": {"major": 1, "minor": 0},
                 "schemes": [")" + name + R"("], "commands": {)" +
                                                         commands + "}}");
  const fs::path program = folder / ("stowage-" + name);
  if (with_script) {
    write_file(program,
               "#!/bin/sh\nprintf '%s\\n' \"$0\" \"$@\"\nprintf 'config=%s\\n' "
               "\"${STOWAGE_CONFIG:-}\"\nexit 42\n");
    fs::permissions(program, fs::perms::owner_all);
  }
  return program;
}

class Fixture {
 public:
  Fixture() : dir_("stowage-plugin-command") {
    folder_ = dir_.path() / "plugins";
    program_ = make_plugin(folder_, "greet", R"("greet": "stowage-greet")");
  }
  const fs::path& path() const { return dir_.path(); }
  const fs::path& folder() const { return folder_; }
  const fs::path& program() const { return program_; }
  fs::path manifest() const { return folder_ / "stowage-greet.json"; }

  // The command with the plugin folders on STOWAGE_PLUGIN_PATH (and no
  // other STOWAGE_ variable but `env`).
  ProgramResult run(const std::vector<std::string>& args, const std::string& plugin_path = "",
                    std::vector<std::string> env = {}) const {
    env.push_back("STOWAGE_PLUGIN_PATH=" + (plugin_path.empty() ? folder_.string() : plugin_path));
    return stowage::testing::run_program(
        STOWAGE_CLI_EXE, args, {.cwd = dir_.path(), .drop_env = {"STOWAGE_"}, .add_env = env});
  }

 private:
  stowage::testing::TempDir dir_;
  fs::path folder_;
  fs::path program_;
};

}  // namespace

TEST_CASE("stowage NAME runs the plugin's program with the arguments as given") {
  Fixture f;
  const ProgramResult r = f.run({"greet", "--json", "a b", "--help", "-q"});
  CHECK(r.code == 42);
  CHECK(r.out == fs::canonical(f.program()).string() + "\n--json\na b\n--help\n-q\nconfig=\n");
  CHECK(r.err.empty());
}

TEST_CASE("stowage --config FILE NAME: the config decides and the program gets it") {
  Fixture f;
  write_file(f.path() / "open.json", "{}");
  ProgramResult r = f.run({"--config", "open.json", "greet", "x"});
  CHECK(r.code == 42);
  CHECK(r.out == fs::canonical(f.program()).string() +
                     "\nx\nconfig=" + (f.path() / "open.json").string() + "\n");

  // A plugin the allow-list leaves out runs no code, its commands included.
  write_file(f.path() / "closed.json", R"({"allow": ["file"]})");
  const std::string refused = "stowage: error: 'stowage greet' is a command of plugin 'greet' (" +
                              f.manifest().string() +
                              "), which is not in the config's \"allow\" list, so it is never "
                              "run\n";
  r = f.run({"--config", "closed.json", "greet", "x"});
  CHECK(r.code == 3);
  CHECK(r.out.empty());
  CHECK(r.err == refused);
  r = f.run({"greet", "x"}, "", {"STOWAGE_CONFIG=" + (f.path() / "closed.json").string()});
  CHECK(r.code == 3);
  CHECK(r.err == refused);
}

TEST_CASE("plugin commands are listed by --help and plugins, and hinted at on a typo") {
  Fixture f;
  ProgramResult r = f.run({"--help"});
  CHECK(r.code == 0);
  CHECK(contains(r.out, "Plugin commands"));
  CHECK(contains(r.out, "Plugin 'greet' (greet://) runs stowage-greet; 'stowage greet --help'"));

  r = f.run({"gret", "x"});
  CHECK(r.code == 2);
  CHECK(r.err ==
        "stowage: error: unknown command 'gret' (did you mean 'greet'?); 'stowage --help' lists "
        "the commands\n");

  r = f.run({"plugins", "--json"});
  REQUIRE(r.code == 0);
  const auto doc = parse_json(r.out);
  bool seen = false;
  for (const auto& p : doc["plugins"].GetArray()) {
    if (std::string(p["name"].GetString()) != "greet") continue;
    seen = true;
    CHECK(p["commands"].MemberCount() == 1);
    CHECK(std::string(p["commands"]["greet"].GetString()) == f.program().string());
  }
  CHECK(seen);
  r = f.run({"plugins"});
  CHECK(contains(r.out, "greet command: stowage greet (runs " + f.program().string() + ")"));
}

TEST_CASE("a built-in command wins over a plugin's command of the same name") {
  Fixture f;
  make_plugin(f.path() / "other", "shadow", R"("plugins": "stowage-shadow")");
  const ProgramResult r =
      f.run({"plugins", "--json"}, f.folder().string() + ":" + (f.path() / "other").string());
  CHECK(r.code == 0);
  CHECK(parse_json(r.out).HasMember("searchedFolders"));
}

TEST_CASE("a program that is missing, not executable or outside the folder does not run") {
  Fixture f;
  const std::string who = "stowage: error: the program " + f.program().string() +
                          " of command 'greet' of plugin 'greet' (" + f.manifest().string() + ")";
  fs::permissions(f.program(), fs::perms::owner_read | fs::perms::owner_write);
  ProgramResult r = f.run({"greet"});
  CHECK(r.code == 5);
  CHECK(r.err == who + " is not executable\n");

  fs::remove(f.program());
  r = f.run({"greet"});
  CHECK(r.code == 3);
  CHECK(r.err == who + " is not there\n");

  // A symbolic link beside the manifest that leads elsewhere.
  const fs::path elsewhere = make_plugin(f.path() / "elsewhere", "greet2", "");
  fs::create_symlink(elsewhere, f.program());
  r = f.run({"greet"});
  CHECK(r.code == 4);
  CHECK(r.err == who + " resolves to " + fs::canonical(elsewhere).string() +
                     ", outside the plugin's folder " + fs::canonical(f.folder()).string() + "\n");
}

TEST_CASE("two allowed plugins naming one command are refused, naming both") {
  Fixture f;
  make_plugin(f.path() / "second", "hello", R"("greet": "stowage-hello")");
  const std::string both = f.folder().string() + ":" + (f.path() / "second").string();
  ProgramResult r = f.run({"greet"}, both);
  CHECK(r.code == 4);
  CHECK(r.err ==
        "stowage: error: command 'greet' is named by more than one plugin: plugin "
        "'greet' (" +
            f.manifest().string() + ") and plugin 'hello' (" +
            (f.path() / "second" / "stowage-hello.json").string() +
            "); allow only one of them in the config's \"allow\" list\n");
  // Allowing one settles it.
  write_file(f.path() / "one.json", R"({"allow": ["hello"]})");
  r = f.run({"--config", "one.json", "greet", "z"}, both);
  CHECK(r.code == 42);
  CHECK(contains(r.out, "stowage-hello\nz\n"));
}

TEST_CASE("a config that cannot be read stops a plugin's command, not a built-in's typo hint") {
  Fixture f;
  ProgramResult r = f.run({"--config", "missing.json", "greet", "x"});
  CHECK(r.code == 3);
  CHECK(r.out.empty());
  CHECK(r.err ==
        "stowage: error: cannot read config file 'missing.json': No such file or directory\n");

  write_file(f.path() / "bad.json", R"({"no_such_key": 1})");
  r = f.run({"--config", "bad.json", "greet"});
  CHECK(r.code == 4);
  CHECK(r.out.empty());
  CHECK(contains(r.err, "no_such_key"));

  // Whether the config would reveal a command does not matter for a typo of
  // a built-in one: the hint comes first, as it does without plugins.
  r = f.run({"--config", "missing.json", "lsit", "x"});
  CHECK(r.code == 2);
  CHECK(r.err ==
        "stowage: error: unknown command 'lsit' (did you mean 'list'?); 'stowage --help' lists "
        "the commands\n");
}
