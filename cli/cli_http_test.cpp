// The stowage command against real HTTP receivers: copy and move to
// stowage serve (which names the model's URL), to the Flask receiver of the
// TF.js documentation and to a receiver that answers 200 with no body (which
// name nothing), and --from-tfhub against a server laid out like tfhub.dev.
#include <doctest/doctest.h>
#include <rapidjson/document.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "cli_test_util.hpp"
#include "run_program.hpp"
#include "test_server.hpp"

namespace fs = std::filesystem;

namespace {

using Result = stowage::testing::ProgramResult;
using stowage::cli_test::contains;
using stowage::cli_test::parse_json;
using stowage::cli_test::run;
using stowage::testing::PythonServer;
using stowage::testing::TempDir;

const fs::path kSource = fs::path(STOWAGE_SOURCE_DIR);
const std::string kDense = (kSource / "samples/models/dense/model.json").string();
const std::string kTestServer = (kSource / "plugins/net/test_server.py").string();
const std::string kFlask = (kSource / "tests/interop/flask_receiver.py").string();

std::string text_of(const rapidjson::Value& v) {
  return v.IsString() ? std::string(v.GetString(), v.GetStringLength()) : std::string("null");
}

// `stowage serve --store STORE --port 0 -q`, stopped with SIGTERM.
class Serve {
 public:
  explicit Serve(const std::string& store) {
    int out[2];
    REQUIRE(::pipe(out) == 0);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    posix_spawn_file_actions_addclose(&actions, out[0]);
    std::vector<std::string> args = {STOWAGE_CLI_EXE, "serve", "--store", store,
                                     "--port",        "0",     "-q",      "--create"};
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    REQUIRE(::posix_spawn(&pid_, STOWAGE_CLI_EXE, &actions, nullptr, argv.data(), environ) == 0);
    posix_spawn_file_actions_destroy(&actions);
    ::close(out[1]);
    std::string line;
    char c;
    while (::read(out[0], &c, 1) == 1 && c != '\n') line += c;
    ::close(out[0]);  // -q: nothing more is written
    REQUIRE_MESSAGE(!line.empty(), "stowage serve did not print its port");
    port_ = std::stoi(line);
  }
  ~Serve() {
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  Serve(const Serve&) = delete;
  Serve& operator=(const Serve&) = delete;

  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }

 private:
  pid_t pid_ = 0;
  int port_ = 0;
};

// A copy of the sample model at dir/src (for moves, which remove it).
std::string source_in(const TempDir& dir) {
  fs::create_directories(dir.path() / "src");
  for (const char* f : {"model.json", "weights.bin"}) {
    fs::copy_file(fs::path(kDense).parent_path() / f, dir.path() / "src" / f);
  }
  return dir.url("src/model.json");
}

constexpr const char* kCannotReadBack = "the model cannot be read back from ";

}  // namespace

TEST_CASE("copy and move to stowage serve read the model back from the URL it names") {
  TempDir dir;
  Serve serve(dir.url("store"));
  const std::string model_url = serve.url("/models/m/model.json");

  Result r = run(dir.path(), {"copy", kDense, serve.url("/models/m"), "--json"});
  INFO(r.out, r.err);
  REQUIRE(r.code == 0);
  rapidjson::Document doc = parse_json(r.out);
  CHECK(doc["verified"].GetBool());
  CHECK(text_of(doc["verifiedFrom"]) == model_url);
  CHECK(doc["notVerified"].IsNull());
  CHECK(doc["tensors"].GetUint() == 4);
  CHECK(doc["shards"].GetUint() == 1);
  CHECK(doc["responses"][0]["status"].GetInt() == 201);
  CHECK(text_of(doc["responses"][0]["modelUrl"]) == model_url);
  CHECK(fs::exists(dir.path() / "store/m/model.json"));

  Result human = run(dir.path(), {"copy", kDense, serve.url("/models/h")});
  INFO(human.out, human.err);
  CHECK(human.code == 0);
  CHECK(contains(human.out, "read back from:      " + serve.url("/models/h/model.json")));
  CHECK(contains(human.out, "4 tensors, 1 shard"));

  // move verifies through the named URL, then removes its source.
  const std::string src = source_in(dir);
  Result moved = run(dir.path(), {"move", src, serve.url("/models/moved"), "--json"});
  INFO(moved.out, moved.err);
  REQUIRE(moved.code == 0);
  CHECK(parse_json(moved.out)["verified"].GetBool());
  CHECK_FALSE(fs::exists(dir.path() / "src/model.json"));
  CHECK(fs::exists(dir.path() / "store/moved/model.json"));
}

TEST_CASE(
    "copy and move to the Flask receiver of the TF.js docs: verified only with --verify-url") {
  TempDir dir;
  PythonServer flask({kFlask, "--dir", (dir.path() / "flask").string()});
  // Serves what Flask stored, as a static web server would.
  PythonServer files({kTestServer, "--root", (dir.path() / "flask").string()});
  const std::string upload = flask.base() + "/upload/a";

  Result r = run(dir.path(), {"copy", kDense, upload, "--json"});
  INFO(r.out, r.err);
  REQUIRE(r.code == 0);
  rapidjson::Document doc = parse_json(r.out);
  CHECK_FALSE(doc["verified"].GetBool());
  CHECK(doc["verifiedFrom"].IsNull());
  CHECK(text_of(doc["notVerified"]) ==
        "the model cannot be read back from the upload URL: the receiver did not say where it "
        "stored the model");
  CHECK(doc["tensors"].IsNull());
  CHECK(doc["responses"][0]["modelUrl"].IsNull());
  CHECK(fs::exists(dir.path() / "flask/a/model.weights.bin"));

  Result human = run(dir.path(), {"copy", kDense, upload});
  INFO(human.out, human.err);
  CHECK(human.code == 0);
  CHECK(contains(human.out, std::string("not read back: ") + kCannotReadBack + upload +
                                ": it is the upload URL and the receiver did not say where it "
                                "stored the model (--verify-url URL names it)"));

  const std::string stored = files.base() + "/files/a/model.json";
  Result verified = run(dir.path(), {"copy", kDense, upload, "--verify-url", stored, "--json"});
  INFO(verified.out, verified.err);
  REQUIRE(verified.code == 0);
  rapidjson::Document v = parse_json(verified.out);
  CHECK(v["verified"].GetBool());
  CHECK(text_of(v["verifiedFrom"]) == stored);
  CHECK(v["tensors"].GetUint() == 4);
  CHECK(run(dir.path(), {"copy", kDense, upload, "--verify-url", stored, "--no-verify"}).code == 2);

  // A move cannot verify without knowing where the model went: it keeps the
  // source and says so.
  const std::string src = source_in(dir);
  Result refused = run(dir.path(), {"move", src, flask.base() + "/upload/b"});
  INFO(refused.out, refused.err);
  CHECK(refused.code == 7);
  CHECK(contains(refused.err,
                 "the model was saved, but the receiver did not say where it can be "
                 "loaded from"));
  CHECK(contains(refused.err, "the source was not removed"));
  CHECK(contains(refused.err, "--verify-url URL"));
  CHECK(fs::exists(dir.path() / "src/model.json"));
  Result moved = run(dir.path(), {"move", src, flask.base() + "/upload/b", "--verify-url",
                                  files.base() + "/files/b/model.json"});
  INFO(moved.out, moved.err);
  CHECK(moved.code == 0);
  CHECK_FALSE(fs::exists(dir.path() / "src/model.json"));
}

TEST_CASE("copy to a receiver that answers 200 with no body is not read back") {
  TempDir dir;
  PythonServer site({kTestServer, "--root", dir.path().string()});
  const std::string upload = site.base() + "/answer";
  Result r = run(dir.path(), {"copy", kDense, upload, "--json"});
  INFO(r.out, r.err);
  REQUIRE(r.code == 0);
  rapidjson::Document doc = parse_json(r.out);
  CHECK_FALSE(doc["verified"].GetBool());
  CHECK(doc["responses"][0]["status"].GetInt() == 200);
  CHECK(text_of(doc["responses"][0]["body"]).empty());
  CHECK(doc["responses"][0]["modelUrl"].IsNull());
  Result human = run(dir.path(), {"copy", kDense, upload});
  CHECK(human.code == 0);
  CHECK(contains(human.out, kCannotReadBack + upload));

  // --verify-url naming nothing is an error naming both URLs.
  const std::string wrong = site.base() + "/files/nothing/model.json";
  Result missing = run(dir.path(), {"copy", kDense, upload, "--verify-url", wrong});
  INFO(missing.out, missing.err);
  CHECK(missing.code == 3);
  CHECK(contains(missing.err, "the model was written to " + upload + " but loading it back from " +
                                  wrong + " failed"));
}

TEST_CASE("copy --from-tfhub loads a TF Hub model URL as loadGraphModel({fromTFHub}) does") {
  TempDir dir;
  // The hub serves <root>/m through /hub/m (302 to /files/ with the query).
  REQUIRE(run(dir.path(), {"copy", kDense, dir.url("m"), "-q"}).code == 0);
  PythonServer hub({kTestServer, "--root", dir.path().string()});

  Result r = run(dir.path(),
                 {"copy", hub.base() + "/hub/m?lang=en", dir.url("out"), "--from-tfhub", "--json"});
  INFO(r.out, r.err);
  REQUIRE(r.code == 0);
  CHECK(parse_json(r.out)["tensors"].GetUint() == 4);
  CHECK(stowage::testing::read_file(dir.path() / "out/weights.bin") ==
        stowage::testing::read_file(fs::path(kDense).parent_path() / "weights.bin"));

  // Without it the hub answers its web page.
  Result page = run(dir.path(), {"copy", hub.base() + "/hub/m", dir.url("out2")});
  CHECK(page.code == 4);
  CHECK(contains(page.err, "Failed to parse model JSON of response from " + hub.base() + "/hub/m"));
  // A missing hub model names the rewritten URL.
  Result missing =
      run(dir.path(), {"copy", hub.base() + "/hub/none", dir.url("out3"), "--from-tfhub"});
  CHECK(missing.code == 3);
  CHECK(contains(missing.err, hub.base() + "/hub/none/model.json?tfjs-format=file"));
  // Only http(s) sources are TF Hub URLs.
  Result usage = run(dir.path(), {"copy", kDense, dir.url("out4"), "--from-tfhub"});
  CHECK(usage.code == 2);
  CHECK(contains(usage.err, "--from-tfhub needs an http(s) source"));
}
