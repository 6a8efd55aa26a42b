// Crash consistency of every writable scheme: crash_saver saves models A and
// B over each other in a loop and is killed with SIGKILL at a random moment,
// again and again (for serve, the `stowage serve` process receiving the
// uploads is killed instead, then restarted; for "file streamed" the saver
// makes streaming copies from file:// sources instead). After every kill:
//   - the model loads, validates and is exactly A or exactly B (every field
//     of model.json and every weight byte; for file-backed stores the stored
//     model.json byte for byte against a clean save);
//   - listing the store shows that model alone (no temporary debris);
//   - for the browser stores, the database passes SQLite's integrity check;
//   - the next save succeeds and is read back.
// Each scheme prints its trials, outcomes and where the kills landed.
//
//   crash_test                               200 trials per scheme
//   STOWAGE_CRASH_TRIALS=10000 crash_test    a long run
//   crash_test --test-case='crash s3*'       one scheme (doctest filters)
//
// Kill moments: in even trials uniform over 1.4 times a save's duration
// after the saver is ready (measured for each scheme and kept up to date),
// so each phase is hit in proportion to its length; in odd trials as soon as
// the saver reports a random fraction of its bytes done, so kills also
// spread over the shards, however quickly they are written.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "crash_models.hpp"
#include "plugin_test_util.hpp"
#include "s3_client_internal.hpp"
#include "s3_test_server.hpp"
#include "stowage/model_json.hpp"
#include "stowage/registry.hpp"
#include "test_files.hpp"

namespace fs = std::filesystem;
using namespace stowage;
using testing::registry;
using Clock = std::chrono::steady_clock;

namespace {

int trial_count() {
  const char* env = std::getenv("STOWAGE_CRASH_TRIALS");
  return env != nullptr && std::atoi(env) > 0 ? std::atoi(env) : 200;
}

// A child process with its stdout on a pipe; killed when destroyed.
class Process {
 public:
  // quiet: stderr goes to /dev/null (the server's banner), else it is the test's.
  explicit Process(std::vector<std::string> args, bool quiet = false) {
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      ::dup2(fds[1], STDOUT_FILENO);
      if (quiet) {
        const int null = ::open("/dev/null", O_WRONLY);
        ::dup2(null, STDERR_FILENO);
      }
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(fds[1]);
    out_ = fds[0];
  }
  ~Process() {
    if (pid_ > 0) kill();
    ::close(out_);
  }
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  // Reads until `text` is in the output; false at the end of the output or
  // after `wait`.
  bool wait_for(std::string_view text, std::chrono::milliseconds wait) {
    const auto end = Clock::now() + wait;
    while (text_.find(text) == std::string::npos) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now());
      if (left.count() <= 0 || !read_some(static_cast<int>(left.count()))) return false;
    }
    return true;
  }
  // Reads until `done(output)`; false at the end of the output or after `wait`.
  template <typename F>
  bool wait_until(F done, std::chrono::milliseconds wait) {
    const auto end = Clock::now() + wait;
    while (!done(text_)) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now());
      if (left.count() <= 0 || !read_some(static_cast<int>(left.count()))) return false;
    }
    return true;
  }
  void signal(int sig) { ::kill(pid_, sig); }
  // SIGKILL, reap, then read the rest of the output.
  void kill() {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status_, 0);
    pid_ = -1;
    while (read_some(1000)) {
    }
  }
  const std::string& output() const { return text_; }
  // What ended the process, once kill() has reaped it.
  std::string how_it_ended() const {
    if (WIFEXITED(status_)) return "exit status " + std::to_string(WEXITSTATUS(status_));
    return "signal " + std::to_string(WTERMSIG(status_));
  }

 private:
  bool read_some(int timeout_ms) {
    pollfd p{out_, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) <= 0) return false;
    char buf[4096];
    const ssize_t n = ::read(out_, buf, sizeof buf);
    if (n <= 0) return false;
    text_.append(buf, static_cast<size_t>(n));
    return true;
  }

  pid_t pid_ = -1;
  int out_ = -1;
  int status_ = 0;
  std::string text_;
};

// Where in the saver's loop a kill landed, from what it printed.
enum Phase {
  kBeforeFirstByte,
  kDuringWeights,
  kWritingModelJson,
  kAfterModelJson,
  kBetweenSaves,
  kPhases
};
// Named after the saver's progress reports: the stores report weight bytes
// as they hand them on, then model.json's, then once more after the commit.
constexpr std::array<const char*, kPhases> kPhaseNames = {
    "before the first byte", "during the weights (shard after shard)",
    "weights written, syncing them or writing model.json", "every byte written, commit running",
    "between saves (commit done)"};
// An upload's client sends model.json first and sees only the body leave
// (socket buffers take it at once); the server's save is told apart by its
// temporary folder, present while the file:// store writes and commits.
constexpr std::array<const char*, kPhases> kUploadPhaseNames = {
    "before the first byte", "during the upload body",
    "body sent, the server's file:// save in progress",
    "body sent, no save folder (receiving, parsing or answering)", "between saves"};

Phase phase_of(const std::string& out, bool upload) {
  const size_t saving = out.rfind("saving ");
  if (saving == std::string::npos) return kBeforeFirstByte;  // "ready": the save starts next
  if (out.find("saved ", saving) != std::string::npos) return kBetweenSaves;
  uint64_t done = 0;
  int finished = 0;  // progress reports of done == total, the last after the commit
  std::istringstream lines(out.substr(saving));
  for (std::string line; std::getline(lines, line);) {
    unsigned long long d = 0, t = 0;
    if (std::sscanf(line.c_str(), "progress %llu %llu", &d, &t) == 2) {
      done = d;
      finished += t > 0 && d == t;
    }
  }
  if (done == 0) return kBeforeFirstByte;
  if (finished >= 2) return kBetweenSaves;
  if (finished == 1) return kAfterModelJson;
  if (upload || done < crash::kWeightBytes) return kDuringWeights;
  return kWritingModelJson;
}

std::string sqlite_integrity(const fs::path& db) {
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

// One writable scheme under test. The defaults fit a scheme whose saver
// is the process killed.
class Target {
 public:
  virtual ~Target() = default;
  virtual std::string name() const = 0;
  // The model's URL, for the saver, the loads and the next save.
  virtual std::string url() const = 0;
  virtual std::string options() const = 0;
  // Kills the process whose save is interrupted; `saver` has been running.
  virtual void kill(Process& saver) { saver.kill(); }
  // Further (url, options) the model must load from, equal to url()'s.
  virtual std::vector<std::pair<std::string, std::string>> more_loads() const { return {}; }
  // What a listing of the store holds: (list URL, options), and the one URL
  // it must list.
  virtual std::pair<std::string, std::string> list_at() const = 0;
  virtual std::string listed_url() const { return url(); }
  // The stored model.json, compared byte for byte with a clean save's.
  virtual std::optional<fs::path> model_json_file() const { return std::nullopt; }
  // A clean save's model.json for model `which`, if model_json_file() is set.
  virtual std::string reference_model_json(char) const { return {}; }
  // Store-specific checks after every kill.
  virtual void check_store() {}
  // After the last trial, once a clean save has run.
  virtual void finish() {}
  // Kills land in the server; the saver only uploads.
  virtual bool upload() const { return false; }
  // What the target saw of the kill, which the saver's output cannot say.
  virtual Phase refine(Phase p) const { return p; }
  // Source URLs of models A and B: the saver then copies from them
  // (streaming) instead of saving from memory.
  virtual std::vector<std::string> copy_sources() const { return {}; }
  // Names for the phases, when the saver's progress does not tell them.
  virtual const std::array<const char*, kPhases>* phase_names() const { return nullptr; }
  // The share of the first save's reported progress that is not the save
  // itself (a copy reports its load first, then its save): kills are aimed
  // after it, so they land in the save on slow builds too.
  virtual double progress_before_save() const { return 0.0; }
};

// Checks the stored model after a kill; returns which it is.
char check_model(Target& t) {
  ModelArtifacts got = registry().open(t.url(), t.options())->load();
  const std::optional<char> which = crash::which(got);
  REQUIRE_MESSAGE(which.has_value(), t.url() << " holds neither A nor B after a kill");
  for (const auto& [url, options] : t.more_loads()) {
    const std::optional<char> also = crash::which(registry().open(url, options)->load());
    REQUIRE_MESSAGE(also == which, url << " does not hold the model " << t.url() << " holds");
  }
  if (const auto file = t.model_json_file()) {
    REQUIRE_MESSAGE(testing::read_file(*file) == t.reference_model_json(*which),
                    *file << " differs from a clean save's model.json");
  }
  const auto [list_url, list_options] = t.list_at();
  const auto listed = registry().open(list_url, list_options)->list();
  REQUIRE_MESSAGE(listed.size() == 1, list_url << " lists " << listed.size() << " models");
  CHECK(listed[0].url == t.listed_url());
  t.check_store();
  return *which;
}

// How long one save takes here: the median of a few.
std::chrono::microseconds time_saves(Target& t) {
  auto handler = registry().open(t.url(), t.options());
  std::vector<std::chrono::microseconds> times;
  for (int i = 0; i < 5; ++i) {
    const auto start = Clock::now();
    handler->save(crash::model(i % 2 == 0 ? 'A' : 'B'));
    times.push_back(std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start));
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

// The last progress report of the save in progress: (done, total).
std::pair<uint64_t, uint64_t> last_progress(const std::string& out) {
  const size_t saving = out.rfind("saving ");
  const size_t at = out.rfind("progress ");
  unsigned long long d = 0, t = 0;
  if (saving == std::string::npos || at == std::string::npos || at < saving ||
      std::sscanf(out.c_str() + at, "progress %llu %llu", &d, &t) != 2) {
    return {0, 0};
  }
  return {d, t};
}

void run_trials(Target& t) {
  const int trials = trial_count();
  auto save_time = time_saves(t);  // leaves B stored
  char stored = 'B';
  const unsigned seed = std::random_device{}();
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::array<int, kPhases> phases{};
  int saw_old = 0, saw_new = 0, saves_completed = 0;
  const auto started = Clock::now();
  for (int trial = 0; trial < trials; ++trial) {
    CAPTURE(seed);
    CAPTURE(trial);
    const char first = stored == 'A' ? 'B' : 'A';
    std::vector<std::string> args{STOWAGE_CRASH_SAVER, STOWAGE_PLUGIN_BUILD_DIR, t.url(),
                                  t.options(), std::string(1, first)};
    for (const std::string& src : t.copy_sources()) args.push_back(src);
    Process saver(std::move(args));
    if (!saver.wait_for("ready\n", std::chrono::seconds(30))) {
      saver.kill();
      FAIL("the saver did not start (" << saver.how_it_ended() << "): " << saver.output());
    }
    const double skip = t.progress_before_save();
    auto reached = [&saver](double fraction) {
      saver.wait_until(
          [&](const std::string& out) {
            const auto [done, total] = last_progress(out);
            return out.find("saved ") != std::string::npos ||
                   out.find("failed ") != std::string::npos ||
                   (total > 0 &&
                    static_cast<double>(done) >= fraction * static_cast<double>(total));
          },
          std::chrono::seconds(30));
    };
    if (trial % 2 == 0) {
      // At a random moment of 1.4 saves: the phases in proportion to
      // their duration (syncs and commits take most of a save).
      if (skip > 0) reached(skip);
      const auto span = save_time * 14 / 10;
      std::this_thread::sleep_for(std::chrono::microseconds(
          static_cast<int64_t>(unit(rng) * static_cast<double>(span.count()))));
    } else {
      // As soon as the first save reports a random fraction of its bytes
      // done: spreads kills over the bytes, shard after shard.
      reached(skip + (1.0 - skip) * unit(rng));
    }
    t.kill(saver);
    const std::string& out = saver.output();
    // A saver fails only when a server it uploads to was killed.
    if (!t.upload()) REQUIRE_MESSAGE(out.find("failed ") == std::string::npos, out);
    ++phases[t.refine(phase_of(out, t.upload()))];
    int saved = 0;
    for (size_t at = 0; (at = out.find("saved ", at)) != std::string::npos; ++at) ++saved;
    saves_completed += saved;

    // The saver alternates from `first`: the save the kill interrupted was
    // writing `next`, and the model before it is the other one.
    const char next = saved % 2 == 0 ? first : (first == 'A' ? 'B' : 'A');
    stored = check_model(t);
    (stored == next ? saw_new : saw_old) += 1;

    // The next save succeeds and is what loads; timed to follow the
    // scheme's speed (another test may be loading the machine).
    stored = stored == 'A' ? 'B' : 'A';
    const auto start = Clock::now();
    auto handler = registry().open(t.url(), t.options());
    handler->save(crash::model(stored));
    const auto took = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start);
    save_time = (save_time * 7 + took) / 8;
    REQUIRE(crash::which(handler->load()) == stored);
  }
  REQUIRE(check_model(t) == stored);
  t.finish();
  const auto seconds =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count() /
      1000.0;
  const auto& names = t.phase_names() != nullptr ? *t.phase_names()
                      : t.upload()               ? kUploadPhaseNames
                                                 : kPhaseNames;
  std::ostringstream where;
  for (int p = 0; p < kPhases; ++p) {
    where << "\n    " << names[static_cast<size_t>(p)] << ": " << phases[static_cast<size_t>(p)];
  }
  MESSAGE(t.name() << ": " << trials << " trials (seed " << seed << ", " << seconds
                   << " s, a save takes ~" << save_time.count() / 1000 << " ms); after the kill "
                   << "the old model " << saw_old << ", the new one " << saw_new
                   << ", anything else 0; " << saves_completed
                   << " saves completed by the killed savers; kills landed:" << where.str());
  // Kills must hit saves in progress, or the run proves little.
  const int mid_save = phases[kDuringWeights] + phases[kWritingModelJson] + phases[kAfterModelJson];
  CHECK(mid_save >= trials / 2);
}

// file:// with or without fsync, one weights.bin or converter shards.
class FileTarget : public Target {
 public:
  FileTarget(std::string label, std::string options)
      : label_(std::move(label)), options_(std::move(options)), root_(dir_.path()) {
    const testing::TempDir refs("stowage-crash-reference");
    for (char c : {'A', 'B'}) {
      registry().open(refs.url(std::string(1, c)), options_)->save(crash::model(c));
      reference_[c == 'A' ? 0 : 1] =
          testing::read_file(refs.path() / std::string(1, c) / "model.json");
    }
  }
  std::string name() const override { return label_; }
  std::string url() const override { return "file://" + (root_ / "victim").string(); }
  std::string options() const override { return options_; }
  std::pair<std::string, std::string> list_at() const override {
    return {"file://" + root_.string(), options_};
  }
  std::string listed_url() const override { return url() + "/model.json"; }
  std::optional<fs::path> model_json_file() const override { return root_ / "victim/model.json"; }
  std::string reference_model_json(char which) const override {
    return reference_[which == 'A' ? 0 : 1];
  }
  void finish() override {
    // The clean saves after each kill removed what killed saves left.
    std::vector<std::string> entries;
    for (const auto& e : fs::directory_iterator(root_)) entries.push_back(e.path().filename());
    CHECK(entries == std::vector<std::string>{"victim"});
  }

 private:
  std::string label_;
  std::string options_;
  testing::TempDir dir_{"stowage-crash-file"};
  fs::path root_;
  std::array<std::string, 2> reference_;
};

// file:// receiving streaming copies (ABI 1.1) from file:// sources in
// 64 KiB shards, through a queue of one shard: the copy's progress mixes
// the load's and the save's, so where a kill landed is told by the save's
// temporary folder at that moment.
class FileStreamTarget : public FileTarget {
 public:
  FileStreamTarget() : FileTarget("file:// (streaming copies from file://)", "{}") {
    for (char c : {'A', 'B'}) {
      registry()
          .open(sources_.url(std::string(1, c)), R"({"shard_size":65536})")
          ->save(crash::model(c));
    }
  }
  std::vector<std::string> copy_sources() const override {
    return {sources_.url("A"), sources_.url("B")};
  }
  void kill(Process& saver) override {
    saver.signal(SIGSTOP);  // the copy stays where it is while the folder is looked at
    saving_ = false;
    for (const auto& e : fs::directory_iterator(fs::path(url().substr(7)).parent_path())) {
      saving_ = saving_ || e.path().filename().string().starts_with(".victim.stowage-tmp-");
    }
    saver.kill();
  }
  Phase refine(Phase p) const override {
    const bool mid = p == kDuringWeights || p == kWritingModelJson || p == kAfterModelJson;
    if (saving_) return mid ? p : kDuringWeights;
    return mid ? kBeforeFirstByte : p;
  }
  const std::array<const char*, kPhases>* phase_names() const override { return &kNames; }
  // The copy reports the load's bytes as the first half of its progress.
  double progress_before_save() const override { return 0.5; }

 private:
  static constexpr std::array<const char*, kPhases> kNames = {
      "no save folder yet (the copy's load running, or just started)",
      "during the copy's weights (save folder present)",
      "weights written, syncing them or writing model.json (save folder present)",
      "every byte written, commit running (save folder present)", "between copies"};
  testing::TempDir sources_{"stowage-crash-sources"};
  bool saving_ = false;  // the save's temporary folder was there at the kill
};

// localstorage:// and indexeddb:// over their SQLite profile.
class BrowserTarget : public Target {
 public:
  BrowserTarget(std::string scheme, std::string extra_options)
      : scheme_(std::move(scheme)), dir_("stowage-crash-" + scheme_), profile_(dir_.path()) {
    options_ = "{\"profile\":" + json::quote(profile_.string()) + extra_options + "}";
  }
  std::string name() const override { return scheme_ + "://"; }
  std::string url() const override { return scheme_ + "://victim"; }
  std::string options() const override { return options_; }
  std::pair<std::string, std::string> list_at() const override {
    return {scheme_ + "://", options_};
  }
  void check_store() override {
    REQUIRE(sqlite_integrity(profile_ / "http_localhost_0.sqlite") == "ok");
  }
  void finish() override {
    if (scheme_ != "indexeddb") return;
    // Killed saves leave blob files no record names; a clean save deletes
    // them, and the one file left is the model's.
    int files = 0;
    for (const auto& e : fs::directory_iterator(profile_ / "http_localhost_0.blobs")) {
      files += e.path().filename() != ".lock";
    }
    CHECK(files == 1);
  }

 private:
  std::string scheme_;
  testing::TempDir dir_;
  fs::path profile_;
  std::string options_;
};

// s3:// against moto, started for this test; the saver gets the keys
// through the environment, as a user's shell would give them.
class S3Target : public Target {
 public:
  static constexpr const char* kBucket = "stowage-crash";
  S3Target() : server_({"--bucket", kBucket}) {
    ::setenv("AWS_ACCESS_KEY_ID", server_.access_key_id.c_str(), 1);
    ::setenv("AWS_SECRET_ACCESS_KEY", server_.secret_access_key.c_str(), 1);
  }
  std::string name() const override { return "s3:// (moto)"; }
  std::string url() const override {
    return std::string("s3://") + kBucket + "/victim?endpoint=" + server_.endpoint;
  }
  std::string options() const override { return R"({"shard_size":65536})"; }
  std::pair<std::string, std::string> list_at() const override {
    return {std::string("s3://") + kBucket + "?endpoint=" + server_.endpoint, "{}"};
  }
  std::string listed_url() const override {
    return std::string("s3://") + kBucket + "/victim/model.json?endpoint=" + server_.endpoint;
  }
  void finish() override {
    // Weight objects of killed saves are invisible to loads and lists
    // (their names are fresh); count them for the report.
    s3::ClientConfig config;
    config.endpoint = server_.moto;
    config.addressing = s3::Addressing::kPath;
    config.credentials = s3::Credentials{server_.access_key_id, server_.secret_access_key, ""};
    s3::S3Client client(config);
    const auto objects = client.list(kBucket, "victim/", {});
    MESSAGE("s3://: " << objects.size() << " objects under victim/ after the last save (the model "
                      << "has " << crash::kWeightBytes / crash::kShardSize + 1 << ")");
  }

 private:
  s3::testing::S3TestServer server_;
};

// `stowage serve` over a file:// store, receiving TF.js uploads from the
// saver (http://); the server is killed and restarted.
class ServeTarget : public Target {
 public:
  ServeTarget() : root_(dir_.path()) {
    const testing::TempDir refs("stowage-crash-reference");
    for (char c : {'A', 'B'}) {
      registry().open(refs.url(std::string(1, c)), kStoreOptions)->save(crash::model(c));
      reference_[c == 'A' ? 0 : 1] =
          testing::read_file(refs.path() / std::string(1, c) / "model.json");
    }
    start();
  }
  ~ServeTarget() override { server_.reset(); }
  std::string name() const override { return "serve (stowage serve over file://)"; }
  std::string url() const override {
    return "http://127.0.0.1:" + port_ + "/models/victim/model.json";
  }
  std::string options() const override { return "{}"; }
  bool upload() const override { return true; }
  void kill(Process& saver) override {
    // The saver stops where it is, so what it printed says where the
    // upload was when the server died.
    saver.signal(SIGSTOP);
    saving_ = false;
    for (const auto& e : fs::directory_iterator(root_)) {
      saving_ = saving_ || e.path().filename().string().starts_with(".victim.stowage-tmp-");
    }
    server_->kill();
    saver.kill();
    start();
  }
  Phase refine(Phase p) const override {
    return p == kAfterModelJson && saving_ ? kWritingModelJson : p;
  }
  std::vector<std::pair<std::string, std::string>> more_loads() const override {
    return {{store() + "/victim", kStoreOptions}};
  }
  std::pair<std::string, std::string> list_at() const override { return {store(), kStoreOptions}; }
  std::string listed_url() const override { return store() + "/victim/model.json"; }
  std::optional<fs::path> model_json_file() const override { return root_ / "victim/model.json"; }
  std::string reference_model_json(char which) const override {
    return reference_[which == 'A' ? 0 : 1];
  }

 private:
  static constexpr const char* kStoreOptions = R"({"shard_size":65536})";
  std::string store() const { return "file://" + root_.string(); }
  void start() {
    server_.reset();
    server_ = std::make_unique<Process>(
        std::vector<std::string>{STOWAGE_CLI_EXE, "serve", "--store", store(), "--port", "0",
                                 "--quiet", "--options", kStoreOptions},
        true);
    REQUIRE_MESSAGE(server_->wait_for("\n", std::chrono::seconds(30)),
                    "stowage serve did not start");
    port_ = server_->output().substr(0, server_->output().find('\n'));
  }

  testing::TempDir dir_{"stowage-crash-serve"};
  fs::path root_;
  std::unique_ptr<Process> server_;
  std::string port_;
  bool saving_ = false;  // a save's temporary folder was there at the kill
  std::array<std::string, 2> reference_;
};

}  // namespace

TEST_CASE("crash file durable: a saver killed with SIGKILL leaves the old or the new model") {
  FileTarget t("file:// (durable, one weights.bin)", "{}");
  run_trials(t);
}

TEST_CASE("crash file scratch: a saver killed with SIGKILL leaves the old or the new model") {
  FileTarget t("file:// (durable false)", R"({"durable":false})");
  run_trials(t);
}

TEST_CASE("crash file sharded: a saver killed with SIGKILL leaves the old or the new model") {
  FileTarget t("file:// (converter shards of 64 KiB)", R"({"shard_size":65536})");
  run_trials(t);
}

TEST_CASE("crash file streamed: a streaming copy killed with SIGKILL leaves the old or new model") {
  FileStreamTarget t;
  run_trials(t);
}

TEST_CASE("crash s3: a saver killed with SIGKILL leaves the old or the new model") {
  S3Target t;
  run_trials(t);
}

TEST_CASE("crash localstorage: a saver killed with SIGKILL leaves the old or the new model") {
  BrowserTarget t("localstorage", ",\"quota\":104857600");
  run_trials(t);
}

TEST_CASE("crash indexeddb: a saver killed with SIGKILL leaves the old or the new model") {
  BrowserTarget t("indexeddb", ",\"chunk_size\":32768");
  run_trials(t);
}

TEST_CASE("crash serve: a server killed with SIGKILL mid-upload keeps the old or the new model") {
  ServeTarget t;
  run_trials(t);
}
