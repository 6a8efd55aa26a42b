// Test support: runs a Python test server (test_server.py, or any script
// that prints "PORT <n>" once it listens and exits when its stdin closes) on
// 127.0.0.1 with a free port, for the duration of one object's life.
// Thread-safety: not thread-safe. Ownership: owns the child process.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

extern char** environ;

namespace stowage::testing {

class PythonServer {
 public:
  explicit PythonServer(std::vector<std::string> args) {
    int in[2], out[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) {
      throw std::runtime_error("pipe failed");
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    args.insert(args.begin(), "python3");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (posix_spawnp(&pid_, "python3", &fa, nullptr, argv.data(), environ) != 0) {
      throw std::runtime_error("cannot start python3");
    }
    posix_spawn_file_actions_destroy(&fa);
    ::close(in[0]);
    ::close(out[1]);
    stdin_ = in[1];
    FILE* f = ::fdopen(out[0], "r");
    char line[256] = {};
    while (std::fgets(line, sizeof line, f) != nullptr) {
      if (std::sscanf(line, "PORT %d", &port_) == 1) break;
    }
    std::fclose(f);
    if (port_ <= 0) {
      stop();
      throw std::runtime_error("the test server did not start: " + args[1]);
    }
  }
  ~PythonServer() { stop(); }
  PythonServer(const PythonServer&) = delete;
  PythonServer& operator=(const PythonServer&) = delete;

  int port() const { return port_; }
  std::string base(const std::string& scheme = "http",
                   const std::string& host = "127.0.0.1") const {
    return scheme + "://" + host + ":" + std::to_string(port_);
  }

  void stop() {
    if (stdin_ >= 0) {
      ::close(stdin_);
      stdin_ = -1;
    }
    if (pid_ > 0) {
      // The server exits when its stdin closes; TERM it if it lingers.
      for (int i = 0; i < 50; ++i) {
        if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
          pid_ = 0;
          return;
        }
        ::usleep(20000);
      }
      ::kill(pid_, SIGTERM);
      ::waitpid(pid_, nullptr, 0);
      pid_ = 0;
    }
  }

 private:
  pid_t pid_ = 0;
  int stdin_ = -1;
  int port_ = 0;
};

}  // namespace stowage::testing
