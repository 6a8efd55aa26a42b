// Crash safety: browser_crash_helper saves models A and B over each other in
// a loop and is killed with SIGKILL at a random moment, again and again.
// After every kill the model loads and is exactly A or exactly B, never a
// mix; the model list holds it alone and the database passes SQLite's
// integrity check.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <thread>

#include "crash_models_internal.hpp"
#include "plugin_test_util.hpp"
#include "stowage/model_json.hpp"
#include "stowage/registry.hpp"

namespace fs = std::filesystem;
using namespace stowage;

namespace {

constexpr int kTrials = 50;  // per scheme

Registry& registry() {
  static Registry* r = testing::new_registry(STOWAGE_PLUGIN_BUILD_DIR);
  return *r;
}

// The helper with its stdout on a pipe.
class Helper {
 public:
  Helper(const std::string& url, const std::string& options, char first) {
    const char first_arg[2] = {first, '\0'};
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      ::dup2(fds[1], STDOUT_FILENO);
      ::close(fds[0]);
      ::close(fds[1]);
      ::execl(STOWAGE_CRASH_HELPER, STOWAGE_CRASH_HELPER, STOWAGE_PLUGIN_BUILD_DIR, url.c_str(),
              options.c_str(), first_arg, static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::close(fds[1]);
    out_ = fds[0];
  }
  ~Helper() {
    if (pid_ > 0) kill();
    ::close(out_);
  }

  // Reads what the helper printed, waiting up to `wait` for more.
  void read_for(std::chrono::milliseconds wait) {
    const auto end = std::chrono::steady_clock::now() + wait;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          end - std::chrono::steady_clock::now());
      pollfd p{out_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(std::max<int64_t>(left.count(), 0))) <= 0) return;
      char buf[4096];
      const ssize_t n = ::read(out_, buf, sizeof buf);
      if (n <= 0) return;
      text_.append(buf, static_cast<size_t>(n));
    }
  }
  bool ready() const { return text_.find("ready\n") != std::string::npos; }
  // The last complete line.
  std::string last_line() const {
    if (text_.size() < 2) return {};
    const size_t start = text_.rfind('\n', text_.size() - 2);
    return text_.substr(start == std::string::npos ? 0 : start + 1,
                        text_.size() - (start == std::string::npos ? 0 : start + 1) - 1);
  }
  int saves_done() const {
    int n = 0;
    for (size_t at = 0; (at = text_.find("saved ", at)) != std::string::npos; ++at) ++n;
    return n;
  }
  void kill() {
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    CHECK(WIFSIGNALED(status));
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
  int out_ = -1;
  std::string text_;
};

std::string integrity(const fs::path& db) {
  sqlite3* h = nullptr;
  std::string out = "cannot open";
  if (sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(h, "PRAGMA integrity_check", -1, &s, nullptr) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW) {
      out = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
    }
    sqlite3_finalize(s);
  }
  sqlite3_close(h);
  return out;
}

void run_trials(const std::string& scheme, const std::string& extra_options) {
  std::string tmpl = (fs::temp_directory_path() / "stowage-browser-crash-XXXXXX").string();
  REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
  const fs::path profile = tmpl;
  const std::string options = "{\"profile\":" + json::quote(profile.string()) + extra_options + "}";
  const std::string url = scheme + "://victim";
  registry().open(url, options)->save(crash::model('A'));

  const unsigned seed = std::random_device{}();
  std::mt19937 rng(seed);
  // Up to a few saves of a debug build.
  std::uniform_int_distribution<int> delay_ms(0, 700);
  int mid_save = 0, saw_a = 0, saw_b = 0, saves = 0;
  char stored = 'A';
  for (int trial = 0; trial < kTrials; ++trial) {
    CAPTURE(seed);
    CAPTURE(trial);
    {
      Helper helper(url, options, stored == 'A' ? 'B' : 'A');
      for (int i = 0; i < 100 && !helper.ready(); ++i)
        helper.read_for(std::chrono::milliseconds(100));
      REQUIRE(helper.ready());
      std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(rng)));
      helper.kill();
      helper.read_for(std::chrono::milliseconds(0));
      if (helper.last_line().starts_with("saving")) ++mid_save;
      saves += helper.saves_done();
    }
    ModelArtifacts got = registry().open(url, options)->load();
    const std::optional<char> which = crash::which(got);
    REQUIRE_MESSAGE(which.has_value(), "after a kill the model is neither A nor B");
    (*which == 'A' ? saw_a : saw_b) += 1;
    stored = *which;
    const auto listed = registry().open(scheme + "://", options)->list();
    REQUIRE(listed.size() == 1);
    CHECK(listed[0].url == url);
  }
  CHECK(integrity(profile / "http_localhost_0.sqlite") == "ok");
  if (scheme == "indexeddb") {
    // Killed saves leave blob files no record names; the next save deletes
    // them, and the one file left is the model's.
    registry().open(url, options)->save(crash::model('B'));
    int files = 0;
    for (const auto& e : fs::directory_iterator(profile / "http_localhost_0.blobs")) {
      files += e.path().filename() != ".lock";
    }
    CHECK(files == 1);
  }
  MESSAGE(scheme << ": " << kTrials << " kills (seed " << seed << "), " << mid_save
                 << " in the middle of a save, " << saves << " saves completed; afterwards A "
                 << saw_a << " times, B " << saw_b << " times, never a mix");
  // The kills must hit saves, or the test proves nothing.
  CHECK(mid_save >= kTrials / 2);
  std::error_code ec;
  fs::remove_all(profile, ec);
}

}  // namespace

TEST_CASE("indexeddb: a save killed with SIGKILL leaves the old or the new model, never a mix") {
  run_trials("indexeddb", ",\"chunk_size\":262144");
}

TEST_CASE("localstorage: a save killed with SIGKILL leaves the old or the new model, never a mix") {
  run_trials("localstorage", ",\"quota\":104857600");
}
