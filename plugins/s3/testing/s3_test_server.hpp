// Starts s3_test_server.py (moto_server, optionally with signature checking
// and a fault proxy) for one test and stops it when the object goes away.
// The script stops moto as soon as its stdin closes, so nothing outlives a
// crashed test. For tests and benchmarks only.
//
// Thread-safety: not thread-safe. Ownership: owns the child process.
#pragma once

#include <fcntl.h>
#include <rapidjson/document.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>
#include <string>
#include <vector>

extern char** environ;

namespace stowage::s3::testing {

class S3TestServer {
 public:
  // args: "--auth", "--proxy", "--imds", "--bucket", "name", ... Throws
  // std::runtime_error with the script's explanation when it cannot start.
  explicit S3TestServer(const std::vector<std::string>& args) {
    int in[2], out[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) {
      throw std::runtime_error("pipe failed");
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in[0], 0);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    std::vector<std::string> argv_s = {STOWAGE_PYTHON, STOWAGE_S3_TEST_SERVER};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    int rc = posix_spawn(&pid_, STOWAGE_PYTHON, &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(in[0]);
    ::close(out[1]);
    stdin_ = in[1];
    if (rc != 0) {
      ::close(out[0]);
      ::close(stdin_);
      throw std::runtime_error(std::string("cannot run ") + STOWAGE_PYTHON);
    }
    std::string line;
    char c;
    while (::read(out[0], &c, 1) == 1 && c != '\n') line += c;
    ::close(out[0]);
    rapidjson::Document d;
    d.Parse(line.c_str());
    if (d.HasParseError() || !d.IsObject() || !d.HasMember("endpoint")) {
      stop();
      throw std::runtime_error("the S3 test server (moto_server through " STOWAGE_S3_TEST_SERVER
                               ") did not start; is moto installed for " STOWAGE_PYTHON
                               "? tests/setup.sh installs it. Its output: " +
                               line);
    }
    endpoint = d["endpoint"].GetString();
    moto = d["moto"].GetString();
    access_key_id = d["access_key_id"].GetString();
    secret_access_key = d["secret_access_key"].GetString();
    imds = d["imds"].GetString();
  }
  ~S3TestServer() { stop(); }
  S3TestServer(const S3TestServer&) = delete;
  S3TestServer& operator=(const S3TestServer&) = delete;

  std::string endpoint;  // the proxy with --proxy, else moto
  std::string moto;
  std::string access_key_id;
  std::string secret_access_key;
  std::string imds;  // with --imds: the instance metadata stand-in

 private:
  void stop() {
    if (stdin_ >= 0) {
      ::close(stdin_);
      stdin_ = -1;
    }
    if (pid_ > 0) {
      int status = 0;
      while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
      pid_ = -1;
    }
  }

  pid_t pid_ = -1;
  int stdin_ = -1;
};

}  // namespace stowage::s3::testing
