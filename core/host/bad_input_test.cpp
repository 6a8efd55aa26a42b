// The URL and config cases of the bad-input corpus (tests/data/bad/url and
// tests/data/bad/config, see tests/data/bad/README.md), run through the real
// registry with the build tree's plugins and through the real config loader.
//
//   url/cases.json     {"name", "url", "op": "load" | "save" | "list" | "remove",
//                       "code", "contains": [...], "names": "..."}
//   config/cases.json  {"file", "url", "code", "contains": [...], "names": "..."}
//
// Each case must throw stowage::Error with its code, every "contains" part,
// and "names" (default: the URL, or the config file's name). No message may
// hold the corpus's secret "hunter2". In config files, ${PLUGIN_DIR},
// ${TEST_PLUGIN_DIR} and ${CASE_DIR} stand for the build tree's plugin
// folders and the corpus folder.
#include <doctest/doctest.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "bad_cases.hpp"
#include "stowage/config.hpp"
#include "stowage/management.hpp"
#include "stowage/registry.hpp"
#include "testing/host_test_support.hpp"

namespace fs = std::filesystem;

namespace stowage {
namespace {

using stowage::testing::read_cases;
using stowage::testing::read_required_file;

const fs::path kCorpus = fs::path(STOWAGE_SOURCE_DIR) / "tests" / "data" / "bad";
constexpr const char* kSecret = "hunter2";

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
    text.replace(at, from.size(), to);
  return text;
}

std::string options_of(const rapidjson::Value& c) {
  if (!c.HasMember("options")) return "{}";
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  c["options"].Accept(w);
  return buf.GetString();
}

// The error's code, parts and named subject, as the case says.
void check_error(const Error& e, const rapidjson::Value& c, const std::string& names) {
  const std::string message = e.what();
  CAPTURE(message);
  CHECK(std::string(error_code_name(e.code())) == c["code"].GetString());
  REQUIRE(c["contains"].IsArray());
  REQUIRE(c["contains"].Size() > 0);
  for (const auto& part : c["contains"].GetArray()) {
    CHECK_MESSAGE(message.find(part.GetString()) != std::string::npos,
                  "missing \"" << part.GetString() << "\"");
  }
  if (!names.empty()) {
    CHECK_MESSAGE(message.find(names) != std::string::npos, "does not name \"" << names << "\"");
  }
  CHECK_MESSAGE(message.find(kSecret) == std::string::npos, "a secret leaked");
}

Registry& plugins() {
  static Registry* r = [] {
    auto* registry = new Registry;
    registry->add_plugin_folder(STOWAGE_PLUGIN_BUILD_DIR);
    return registry;
  }();
  return *r;
}

}  // namespace

TEST_CASE("bad URLs fail through the registry with a named cause and no secret") {
  const rapidjson::Document cases = read_cases(kCorpus / "url" / "cases.json");
  REQUIRE(cases.Size() >= 20);
  std::set<std::string> names;
  for (const auto& c : cases.GetArray()) {
    const std::string name = c["name"].GetString();
    const std::string url = c["url"].GetString();
    const std::string op = c.HasMember("op") ? c["op"].GetString() : "load";
    CAPTURE(name);
    CAPTURE(url);
    CHECK(names.insert(name).second);
    const std::string options = options_of(c);
    const Error e = test::error_of([&] {
      if (op == "load") {
        load_model(url, options, {}, plugins());
      } else if (op == "save") {
        save_model(url, test::sample_model(), options, {}, plugins());
      } else if (op == "list") {
        list_models(url, plugins());
      } else if (op == "remove") {
        remove_model(url, plugins());
      } else {
        FAIL("unknown op " << op);
      }
    });
    check_error(e, c, c.HasMember("names") ? c["names"].GetString() : url);
  }
}

TEST_CASE("bad configs fail in the config loader or the registry, naming the file or plugin") {
  const fs::path dir = kCorpus / "config";
  const rapidjson::Document cases = read_cases(dir / "cases.json");
  REQUIRE(cases.Size() >= 20);
  test::TempDir tmp;
  std::set<std::string> listed;
  for (const auto& c : cases.GetArray()) {
    const std::string file = c["file"].GetString();
    CAPTURE(file);
    CHECK(listed.insert(file).second);
    // The placeholders name folders of this build, so the loader reads a
    // copy with them filled in, under the same file name.
    std::string text = read_required_file(dir / file);
    text = replace_all(text, "${PLUGIN_DIR}", STOWAGE_PLUGIN_BUILD_DIR);
    text = replace_all(text, "${TEST_PLUGIN_DIR}", STOWAGE_TEST_PLUGIN_DIR);
    text = replace_all(text, "${CASE_DIR}", dir.string());
    tmp.write(file, text);
    const Error e = test::error_of([&] {
      const Config config = load_config_file(tmp.path / file);
      Registry registry;
      registry.apply_config(config);
      if (c.HasMember("url")) registry.open(c["url"].GetString());
    });
    check_error(e, c, c.HasMember("names") ? c["names"].GetString() : file);
  }
  // Every file is a listed case.
  std::set<std::string> files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().filename() != "cases.json") files.insert(entry.path().filename().string());
  }
  CHECK(files == listed);
}

}  // namespace stowage
