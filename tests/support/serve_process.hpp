// Starts: `<program> serve --port 0 ARGS...` (our own stowage command) in the background.
// Thread-safety: none; one object per server, used from one thread.
// Ownership: the object owns the child; its destructor sends SIGTERM, SIGKILL after 10 s, reaps.
// Output: stdout (the port line, then the access log) to <files>.out, stderr to <files>.err.
#pragma once

#include <doctest/doctest.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "run_program.hpp"
#include "test_files.hpp"

namespace stowage::testing {

struct ServeOptions {
  std::vector<std::string> drop_env{};  // variables starting with any of these are not passed
  std::vector<std::string> add_env{};   // "NAME=value" entries added
};

class ServeProcess {
 public:
  // Returns once the server has printed its port (the first line of its
  // stdout); fails the test, with its stderr, if it exits or takes 60 s.
  ServeProcess(const std::string& program, const std::filesystem::path& files,
               std::vector<std::string> args, const ServeOptions& options = {})
      : out_file_(files.string() + ".out"),
        err_file_(files.string() + ".err"),
        https_(std::find(args.begin(), args.end(), "--tls-cert") != args.end()) {
    args.insert(args.begin(), {program, "serve", "--port", "0"});
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<std::string> env = child_environment(options.drop_env, options.add_env);
    std::vector<char*> envp;
    for (std::string& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, out_file_.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0644);
    posix_spawn_file_actions_addopen(&actions, 2, err_file_.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0644);
    const int rc =
        ::posix_spawn(&pid_, program.c_str(), &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    REQUIRE_MESSAGE(rc == 0, "cannot start ", program);

    // A file, not a pipe: a server running for a whole test program logs
    // more than a pipe holds while nobody reads it.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    std::string out;
    while ((out = read_file(out_file_)).find('\n') == std::string::npos && !exited() &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    const long port =
        out.find('\n') == std::string::npos ? 0 : std::strtol(out.c_str(), nullptr, 10);
    if (port <= 0 || port > 65535) {
      finish(SIGKILL);
      FAIL("stowage serve did not print its port (stdout: '", out, "'); its stderr: ", err());
    }
    port_ = static_cast<uint16_t>(port);
  }
  ~ServeProcess() { finish(SIGTERM); }
  ServeProcess(const ServeProcess&) = delete;
  ServeProcess& operator=(const ServeProcess&) = delete;

  uint16_t port() const { return port_; }
  // https when started with --tls-cert, as the server itself does.
  std::string url(const std::string& path) const {
    return (https_ ? "https://127.0.0.1:" : "http://127.0.0.1:") + std::to_string(port_) + path;
  }
  std::string err() const { return read_file(err_file_); }
  // stdout after the port line: one access-log line per request.
  std::string log() const {
    const std::string out = read_file(out_file_);
    return out.substr(std::min(out.find('\n') + 1, out.size()));
  }

  void signal(int sig) const { REQUIRE(::kill(pid_, sig) == 0); }
  // Waits for the exit: the exit code, or 128 + the signal that ended it.
  int wait() {
    if (pid_ > 0) {
      REQUIRE(::waitpid(pid_, &status_, 0) == pid_);
      pid_ = -1;
    }
    return WIFEXITED(status_) ? WEXITSTATUS(status_) : 128 + WTERMSIG(status_);
  }
  // SIGTERM (a graceful stop), then wait().
  int stop() {
    if (pid_ > 0) signal(SIGTERM);
    return wait();
  }

 private:
  bool exited() {
    if (pid_ > 0 && ::waitpid(pid_, &status_, WNOHANG) == pid_) pid_ = -1;
    return pid_ <= 0;
  }
  // `sig`, then SIGKILL if the server is still running 10 s later; reaps it.
  void finish(int sig) {
    if (pid_ <= 0) return;
    ::kill(pid_, sig);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!exited() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status_, 0);
      pid_ = -1;
    }
  }

  std::filesystem::path out_file_;
  std::filesystem::path err_file_;
  bool https_ = false;
  pid_t pid_ = -1;
  int status_ = 0;
  uint16_t port_ = 0;
};

}  // namespace stowage::testing
