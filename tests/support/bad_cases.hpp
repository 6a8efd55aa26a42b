// Reading the bad-input corpus (tests/data/bad/<kind>/cases.json and the
// files it names) for the runners beside the code each kind tests.
// For tests only. Thread-safety: plain functions.
#pragma once

#include <doctest/doctest.h>
#include <rapidjson/document.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace stowage::testing {

// The whole file; a corpus file that cannot be read fails the test.
inline std::string read_required_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE_MESSAGE(in.good(), "cannot open " << path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// A cases.json: a JSON array of case objects.
inline rapidjson::Document read_cases(const std::filesystem::path& file) {
  const std::string text = read_required_file(file);
  rapidjson::Document cases;
  cases.Parse(text.data(), text.size());
  REQUIRE_MESSAGE(!cases.HasParseError(), file << " is not valid JSON");
  REQUIRE_MESSAGE(cases.IsArray(), file << " is not a JSON array");
  return cases;
}

}  // namespace stowage::testing
