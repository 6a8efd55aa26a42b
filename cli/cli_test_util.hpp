// What the stowage command's tests share: running the built command (the
// target's STOWAGE_CLI_EXE) and reading its answers.
#pragma once

#include <doctest/doctest.h>
#include <rapidjson/document.h>

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "run_program.hpp"

namespace stowage::cli_test {

// The command with args, run in cwd with stdout and stderr captured (neither
// is a terminal, so no progress bar). Discovery is left to the defaults.
inline stowage::testing::ProgramResult run(const std::filesystem::path& cwd,
                                           const std::vector<std::string>& args) {
  return stowage::testing::run_program(STOWAGE_CLI_EXE, args,
                                       {.cwd = cwd, .drop_env = {"STOWAGE_"}});
}

inline bool contains(const std::string& text, std::string_view part) {
  return text.find(part) != std::string::npos;
}

// A --json answer; the test fails here when it is not JSON.
inline rapidjson::Document parse_json(const std::string& text) {
  rapidjson::Document doc;
  doc.Parse(text.c_str());
  INFO("JSON output: ", text);
  REQUIRE_FALSE(doc.HasParseError());
  return doc;
}

}  // namespace stowage::cli_test
