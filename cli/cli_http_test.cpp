// The stowage command against real HTTP receivers: copy and move to
// stowage serve (which names the model's URL), to the Flask receiver of the
// TF.js documentation and to a receiver that answers 200 with no body (which
// name nothing), --from-tfhub against a server laid out like tfhub.dev, and
// what a copy shows on stderr: its phases and the host's retries.
#include <doctest/doctest.h>
#include <rapidjson/document.h>

#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "cli_test_util.hpp"
#include "run_program.hpp"
#include "serve_process.hpp"
#include "test_server.hpp"

namespace fs = std::filesystem;

namespace {

using Result = stowage::testing::ProgramResult;
using stowage::cli_test::contains;
using stowage::cli_test::parse_json;
using stowage::cli_test::run;
using stowage::testing::PythonServer;
using stowage::testing::ServeProcess;
using stowage::testing::TempDir;

const fs::path kSource = fs::path(STOWAGE_SOURCE_DIR);
const std::string kDense = (kSource / "samples/models/dense/model.json").string();
const std::string kTestServer = (kSource / "core/net/test_server.py").string();
const std::string kFlask = (kSource / "tests/interop/flask_receiver.py").string();

std::string text_of(const rapidjson::Value& v) {
  return v.IsString() ? std::string(v.GetString(), v.GetStringLength()) : std::string("null");
}

// A copy of the sample model at dir/src (for moves, which remove it).
std::string source_in(const TempDir& dir) {
  fs::create_directories(dir.path() / "src");
  for (const char* f : {"model.json", "weights.bin"}) {
    fs::copy_file(fs::path(kDense).parent_path() / f, dir.path() / "src" / f);
  }
  return dir.url("src/model.json");
}

constexpr const char* kCannotReadBack = "the model cannot be read back from ";

// The command with STOWAGE_PROGRESS set (the bar and retry notices on a
// stderr that is no terminal, as on one) and no other STOWAGE_ variable.
Result run_showing_progress(const TempDir& dir, const std::vector<std::string>& args) {
  return stowage::testing::run_program(
      STOWAGE_CLI_EXE, args,
      {.cwd = dir.path(), .drop_env = {"STOWAGE_"}, .add_env = {"STOWAGE_PROGRESS=always"}});
}

// The totals each bar label was drawn with ("loading" -> {"104 B"}), in the
// order the labels first appeared. A bar is "\r\033[K<label> [###] 40% 41 B /
// 104 B ..."; lines between bars are kept out.
struct Bars {
  std::vector<std::string> labels;
  std::map<std::string, std::set<std::string>> totals;
};
Bars bars_in(const std::string& err) {
  static const std::regex kBar(R"(^([a-z]+) .*\d+% +[0-9.]+ [KMGT]?i?B / ([0-9.]+ [KMGT]?i?B) )");
  Bars bars;
  size_t at = 0;
  while ((at = err.find("\r\033[K", at)) != std::string::npos) {
    at += 4;
    const size_t end = err.find_first_of("\r\n", at);
    const std::string bar = err.substr(at, end == std::string::npos ? end : end - at);
    std::smatch m;
    if (!std::regex_search(bar, m, kBar)) continue;
    if (!bars.totals.count(m[1])) bars.labels.push_back(m[1]);
    bars.totals[m[1]].insert(m[2]);
  }
  return bars;
}

}  // namespace

TEST_CASE("copy and move to stowage serve read the model back from the URL it names") {
  TempDir dir;
  ServeProcess serve(STOWAGE_CLI_EXE, dir.path() / "serve",
                     {"--store", dir.url("store"), "-q", "--create"});
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

TEST_CASE("copy shows its phases, loading, saving and verifying, each with a fixed total") {
  TempDir dir;
  PythonServer site({kTestServer, "--root", fs::path(kDense).parent_path().parent_path().string()});
  ServeProcess serve(STOWAGE_CLI_EXE, dir.path() / "serve",
                     {"--store", dir.url("store"), "-q", "--create"});
  Result r = run_showing_progress(
      dir, {"copy", site.base() + "/files/dense/model.json", serve.url("/models/p")});
  INFO(r.out, r.err);
  REQUIRE(r.code == 0);
  Bars bars = bars_in(r.err);
  // The load and the read-back each count the 104 weight bytes model.json
  // names; the save counts its upload (the multipart body) from its start.
  CHECK(bars.labels == std::vector<std::string>{"loading", "saving", "verifying"});
  CHECK(bars.totals["loading"] == std::set<std::string>{"104 B"});
  CHECK(bars.totals["saving"].size() == 1);
  CHECK(bars.totals["verifying"] == std::set<std::string>{"104 B"});
  // Erased at the end: the summary starts on a clean line.
  CHECK(r.err.ends_with("\r\033[K"));
}

TEST_CASE("a retried request is one line on stderr: method, redacted URL, attempt, reason") {
  TempDir dir;
  PythonServer site({kTestServer, "--root", fs::path(kDense).parent_path().parent_path().string()});
  // model.json answers 503 once; the weights come from a path that never fails.
  auto copy = [&](const std::string& signature, std::vector<std::string> extra) {
    std::vector<std::string> args = {
        "copy", site.base() + "/flaky/1/503/dense/model.json?X-Amz-Signature=" + signature,
        dir.url("out-" + signature), "--src-option",
        "weight_path_prefix=" + site.base() + "/files/dense/"};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  };
  Result r = run_showing_progress(dir, copy("s1", {"--json"}));
  INFO(r.out, r.err);
  REQUIRE(r.code == 0);
  CHECK(r.err == "retrying GET " + site.base() +
                     "/flaky/1/503/dense/model.json?X-Amz-Signature=REDACTED (2/4) after "
                     "HTTP 503\n");
  CHECK_FALSE(contains(r.err, "s1"));

  // Under a progress bar: the line replaces the bar, which comes back below.
  Result bar = run_showing_progress(dir, copy("s2", {}));
  INFO(bar.err);
  REQUIRE(bar.code == 0);
  const std::string line = "retrying GET " + site.base() +
                           "/flaky/1/503/dense/model.json?X-Amz-Signature=REDACTED (2/4) after "
                           "HTTP 503\n";
  CHECK(contains(bar.err, line));
  CHECK(bar.err.find("retrying") == bar.err.rfind("retrying"));

  // Not on a stderr that is no terminal, and never with -q.
  Result plain = run(dir.path(), copy("s3", {}));
  CHECK(plain.code == 0);
  CHECK(plain.err.empty());
  Result quiet = run_showing_progress(dir, copy("s4", {"-q"}));
  CHECK(quiet.code == 0);
  CHECK(quiet.err.empty());
}

TEST_CASE("s3's retries are announced alike, one line per retried request") {
  TempDir dir;
  fs::create_directories(dir.path() / "root/bucket/m");
  for (const char* f : {"model.json", "weights.bin"}) {
    fs::copy_file(fs::path(kDense).parent_path() / f, dir.path() / "root/bucket/m" / f);
  }
  // A path-style endpoint under /flaky/1/503/: each object answers 503 once.
  PythonServer site({kTestServer, "--root", (dir.path() / "root").string()});
  const std::string endpoint = site.base() + "/flaky/1/503";
  Result r = run_showing_progress(
      dir, {"copy", "s3://bucket/m/model.json?endpoint=" + endpoint + "&anonymous=true",
            dir.url("out"), "--json"});
  INFO(r.out, r.err);
  REQUIRE(r.code == 0);
  // The load is tried again from the start after each: model.json fails on
  // the first attempt, the weights on the second.
  CHECK(r.err == "retrying GET " + endpoint + "/bucket/m/model.json (2/4) after HTTP 503\n" +
                     "retrying GET " + endpoint + "/bucket/m/weights.bin (3/4) after HTTP 503\n");
}
