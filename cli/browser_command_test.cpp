// `stowage browser export|import`, run as a program: round trips between
// profiles and origins, the file forms, bad input, quotas, --clear,
// configuration defaults and stdin. HOME and XDG_DATA_HOME point into the
// test's folder, so nothing reaches the real per-user profile.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <rapidjson/document.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

extern char** environ;

namespace fs = std::filesystem;

namespace {

struct Result {
  int code = -1;
  std::string out;
  std::string err;
};

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_file(const fs::path& path, std::string_view bytes) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "stowage-browser-cli-XXXXXX").string();
    REQUIRE(mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// The command in folder `cwd` with stdin from `input` (or /dev/null).
Result run(const fs::path& cwd, const std::vector<std::string>& args,
           const std::string& input = "/dev/null") {
  const fs::path out_file = cwd / ".stdout";
  const fs::path err_file = cwd / ".stderr";
  std::vector<std::string> argv_strings = {STOWAGE_CLI_EXE};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_strings) argv.push_back(a.data());
  argv.push_back(nullptr);

  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) {
    if (std::strncmp(*e, "STOWAGE_", 8) == 0 || std::strncmp(*e, "HOME=", 5) == 0 ||
        std::strncmp(*e, "XDG_", 4) == 0) {
      continue;
    }
    env_strings.emplace_back(*e);
  }
  env_strings.push_back("HOME=" + (cwd / "home").string());
  env_strings.push_back("XDG_DATA_HOME=" + (cwd / "xdg").string());
  std::vector<char*> envp;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, input.c_str(), O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  posix_spawn_file_actions_addopen(&actions, 2, err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  posix_spawn_file_actions_addchdir_np(&actions, cwd.c_str());
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  REQUIRE(rc == 0);
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  REQUIRE_MESSAGE(WIFEXITED(status), "stowage died from a signal");
  Result r;
  r.code = WEXITSTATUS(status);
  r.out = read_file(out_file);
  r.err = read_file(err_file);
  return r;
}

bool contains(const std::string& text, std::string_view part) {
  return text.find(part) != std::string::npos;
}

rapidjson::Document parse_json(const std::string& text) {
  rapidjson::Document doc;
  doc.Parse(text.c_str());
  INFO("JSON: ", text);
  REQUIRE_FALSE(doc.HasParseError());
  return doc;
}

// A small model in tfjs-node's layout: 3 float32 values.
fs::path write_model(const fs::path& dir) {
  write_file(
      dir / "model.json",
      R"({"modelTopology":{"a":1},"weightsManifest":[{"paths":["weights.bin"],)"
      R"("weights":[{"name":"w","shape":[3],"dtype":"float32"}]}],"format":"layers-model"})");
  const float values[3] = {1.0f, -2.5f, 3.25f};
  write_file(dir / "weights.bin",
             std::string_view(reinterpret_cast<const char*>(values), sizeof values));
  return dir / "model.json";
}

std::string options(const fs::path& profile, const std::string& origin = "http://localhost") {
  return "{\"profile\":\"" + profile.string() + "\",\"origin\":\"" + origin + "\"}";
}

}  // namespace

TEST_CASE("stowage browser: export of an origin with nothing stored") {
  TempDir t;
  const std::string profile = (t.path() / "p").string();
  Result r = run(t.path(), {"browser", "export", "--scheme", "localstorage", "--profile", profile});
  CHECK(r.code == 0);
  CHECK(r.out == "{}\n");
  r = run(t.path(), {"browser", "export", "--scheme", "indexeddb", "--profile", profile});
  CHECK(r.code == 0);
  CHECK(r.out ==
        "{\"database\":\"tensorflowjs\",\"version\":1,\"models_store\":[],\"model_info_store\":[]}"
        "\n");
  CHECK_FALSE(fs::exists(profile));  // reading creates nothing
}

TEST_CASE("stowage browser: export and import move models between profiles and origins") {
  TempDir t;
  const fs::path model = write_model(t.path() / "src");
  const fs::path a = t.path() / "a";
  const fs::path b = t.path() / "b";
  for (const std::string scheme : {"localstorage", "indexeddb"}) {
    CAPTURE(scheme);
    REQUIRE(run(t.path(), {"copy", "file://" + model.string(), scheme + "://m/1", "--dst-options",
                           options(a), "-q"})
                .code == 0);
    const fs::path dump = t.path() / (scheme + ".json");
    Result r = run(t.path(), {"browser", "export", "--scheme", scheme, "--profile", a.string(),
                              "--out", dump.string(), "--json"});
    REQUIRE(r.code == 0);
    rapidjson::Document summary = parse_json(r.out);
    CHECK(std::string(summary["origin"].GetString()) == "http://localhost");
    CHECK(summary["models"].Size() == 1);
    CHECK(std::string(summary["models"][0].GetString()) == scheme + "://m/1");

    r = run(t.path(), {"browser", "import", "--scheme", scheme, "--profile", b.string(), "--origin",
                       "https://Example.com:443", dump.string()});
    REQUIRE(r.code == 0);
    CHECK(contains(r.out, "of origin https://example.com"));
    CHECK(contains(r.out, scheme + "://m/1"));
    // The imported model loads with the same bytes.
    const fs::path back = t.path() / ("back-" + scheme);
    r = run(t.path(), {"copy", scheme + "://m/1", "file://" + back.string(), "--src-options",
                       options(b, "https://example.com"), "-q"});
    REQUIRE(r.code == 0);
    CHECK(read_file(back / "weights.bin") == read_file(model.parent_path() / "weights.bin"));
    // Exporting again gives the same file.
    r = run(t.path(), {"browser", "export", "--scheme", scheme, "--profile", b.string(), "--origin",
                       "https://example.com"});
    CHECK(r.out == read_file(dump) + "\n");
  }
}

TEST_CASE("stowage browser import: bad input is refused and nothing is written") {
  TempDir t;
  const std::string profile = (t.path() / "p").string();
  auto import = [&](const std::string& scheme, const std::string& text) {
    write_file(t.path() / "in.json", text);
    return run(t.path(), {"browser", "import", "--scheme", scheme, "--profile", profile,
                          (t.path() / "in.json").string()});
  };
  Result r = import("localstorage", "{not json");
  CHECK(r.code == 4);
  CHECK(contains(r.err, "not valid JSON"));
  r = import("localstorage", R"({"a":1})");
  CHECK(r.code == 4);
  CHECK(contains(r.err, "value of \"a\" is not a string"));
  r = import("indexeddb", R"({"models_store":[{"modelArtifacts":{}}],"model_info_store":[]})");
  CHECK(r.code == 4);
  CHECK(contains(r.err, "models_store[0].modelPath"));
  r = import("indexeddb",
             R"({"models_store":[{"modelPath":"m","modelArtifacts":{"weightData":"@@"},)"
             R"("modelArtifactsInfo":{"dateSaved":"2024-01-01T00:00:00.000Z"}}],)"
             R"("model_info_store":[]})");
  CHECK(r.code == 4);
  CHECK(contains(r.err, "not valid base64"));
  r = import("indexeddb", R"({"database":"other","models_store":[],"model_info_store":[]})");
  CHECK(r.code == 4);
  r = run(t.path(), {"browser", "import", "--scheme", "sessionstorage", "--profile", profile});
  CHECK(r.code == 2);
  r = run(t.path(), {"browser", "import", "--scheme", "localstorage", "--profile", profile,
                     "--origin", "localhost", (t.path() / "in.json").string()});
  CHECK(r.code == 4);
  CHECK(contains(r.err, "is not a valid origin"));
  r = run(t.path(), {"browser", "export", "--scheme", "localstorage", "--profile", profile});
  CHECK(r.out == "{}\n");
}

TEST_CASE("stowage browser import: the quota, --clear, stdin and config defaults") {
  TempDir t;
  const std::string profile = (t.path() / "p").string();
  write_file(t.path() / "big.json", "{\"k\":\"" + std::string(6u << 20, 'x') + "\"}");
  Result r = run(t.path(), {"browser", "import", "--scheme", "localstorage", "--profile", profile,
                            (t.path() / "big.json").string()});
  CHECK(r.code == 1);
  CHECK(contains(r.err, "quota"));
  // Piped in, with a quota that fits.
  r = run(t.path(),
          {"browser", "import", "--scheme", "localstorage", "--profile", profile, "--quota",
           "20000000", "-q"},
          (t.path() / "big.json").string());
  CHECK(r.code == 0);
  CHECK(r.out.empty());
  // --clear replaces everything of the origin's localStorage.
  write_file(t.path() / "small.json", R"({"other":"v"})");
  r = run(t.path(), {"browser", "import", "--scheme", "localstorage", "--profile", profile,
                     "--clear", (t.path() / "small.json").string(), "--json"});
  CHECK(r.code == 0);
  CHECK(parse_json(r.out)["usedBytes"].GetUint64() == 12);  // 6 UTF-16 code units
  // The configuration's defaults choose the profile and the origin.
  write_file(t.path() / "stowage.json", R"({"defaults":{"localstorage":{"profile":")" + profile +
                                            R"(","origin":"http://127.0.0.1:8000"}}})");
  r = run(t.path(),
          {"browser", "import", "--scheme", "localstorage", "--config",
           (t.path() / "stowage.json").string(), (t.path() / "small.json").string(), "-q"});
  CHECK(r.code == 0);
  CHECK(fs::exists(fs::path(profile) / "http_127.0.0.1_8000.sqlite"));
  r = run(t.path(), {"browser", "export", "--scheme", "localstorage", "--config",
                     (t.path() / "stowage.json").string()});
  CHECK(r.out == "{\"other\":\"v\"}\n");
  // Without a profile anywhere: the per-user default under XDG_DATA_HOME.
  r = run(t.path(), {"browser", "import", "--scheme", "localstorage",
                     (t.path() / "small.json").string(), "-q"});
  CHECK(r.code == 0);
  CHECK(fs::exists(t.path() / "xdg/stowage/browser/http_localhost_0.sqlite"));
}
