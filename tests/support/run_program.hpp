// Runs a built program the way a user would, capturing its exit code,
// stdout and stderr (neither is a terminal). For tests only.
// Thread-safety: safe to call from several threads with different folders.
#pragma once

#include <doctest/doctest.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>

#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "test_files.hpp"

extern char** environ;

namespace stowage::testing {

struct ProgramResult {
  int code = -1;
  std::string out;
  std::string err;
};

struct RunOptions {
  std::filesystem::path cwd;  // where it runs; .stdout and .stderr are made here
  std::string stdin_path = "/dev/null";
  std::vector<std::string> drop_env{};  // variables starting with any of these are not passed
  std::vector<std::string> add_env{};   // "NAME=value" entries added
  // When above zero: a program still running after this long is killed and
  // the test fails (for commands that would otherwise run on, like serve).
  std::chrono::seconds timeout{0};
};

// This process's environment without the variables starting with any of
// `drop`, followed by the "NAME=value" entries of `add`.
inline std::vector<std::string> child_environment(const std::vector<std::string>& drop,
                                                  const std::vector<std::string>& add) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    bool dropped = false;
    for (const auto& prefix : drop) dropped |= std::strncmp(*e, prefix.c_str(), prefix.size()) == 0;
    if (!dropped) env.emplace_back(*e);
  }
  env.insert(env.end(), add.begin(), add.end());
  return env;
}

// Runs exe with args and waits. A death by signal (a crash) fails the test.
inline ProgramResult run_program(const std::string& exe, const std::vector<std::string>& args,
                                 const RunOptions& options) {
  const std::filesystem::path out_file = options.cwd / ".stdout";
  const std::filesystem::path err_file = options.cwd / ".stderr";
  std::vector<std::string> argv_strings = {exe};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_strings) argv.push_back(a.data());
  argv.push_back(nullptr);

  std::vector<std::string> env_strings = child_environment(options.drop_env, options.add_env);
  std::vector<char*> envp;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, options.stdin_path.c_str(), O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  posix_spawn_file_actions_addopen(&actions, 2, err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  posix_spawn_file_actions_addchdir_np(&actions, options.cwd.c_str());
  pid_t pid = 0;
  const int rc = ::posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  REQUIRE_MESSAGE(rc == 0, "cannot start ", exe);
  int status = 0;
  if (options.timeout.count() > 0) {
    const auto deadline = std::chrono::steady_clock::now() + options.timeout;
    pid_t done = 0;
    while ((done = ::waitpid(pid, &status, WNOHANG)) == 0 &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (done == 0) {
      ::kill(pid, SIGKILL);
      REQUIRE(::waitpid(pid, &status, 0) == pid);
      FAIL(exe, " was still running ", args.empty() ? std::string() : args.front(), " after ",
           options.timeout.count(), " s");
    }
    REQUIRE(done == pid);
  } else {
    REQUIRE(::waitpid(pid, &status, 0) == pid);
  }
  REQUIRE_MESSAGE(WIFEXITED(status), exe, " died from a signal running ",
                  args.empty() ? std::string() : args.front());
  ProgramResult result;
  result.code = WEXITSTATUS(status);
  result.out = read_file(out_file);
  result.err = read_file(err_file);
  std::error_code ec;
  std::filesystem::remove(out_file, ec);
  std::filesystem::remove(err_file, ec);
  return result;
}

}  // namespace stowage::testing
