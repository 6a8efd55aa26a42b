// The index.json that make_models.js writes: one entry per model.json, with
// the expected values and predictions beside it. Header-only, for the interop
// programs. Thread-safety: plain values. Ownership: none.
#pragma once

#include <rapidjson/document.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace stowage::interop {

struct IndexEntry {
  std::string id;      // "dense/node"
  std::string layout;  // "node" or "converter"
  std::filesystem::path model_json;
  std::filesystem::path expected;
  std::filesystem::path predictions;  // empty for weights-only models
};

inline std::string read_text(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + file.string());
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline void write_text(const std::filesystem::path& file, const std::string& text) {
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + file.string());
}

inline rapidjson::Document parse_json_file(const std::filesystem::path& file) {
  rapidjson::Document doc;
  const std::string text = read_text(file);
  // Full precision: expected floats must parse to the exact double JS printed.
  doc.Parse<rapidjson::kParseFullPrecisionFlag>(text.c_str(), text.size());
  if (doc.HasParseError()) throw std::runtime_error("bad JSON in " + file.string());
  return doc;
}

inline std::vector<IndexEntry> read_index(const std::filesystem::path& dir) {
  const auto doc = parse_json_file(dir / "index.json");
  std::vector<IndexEntry> out;
  for (const auto& m : doc["models"].GetArray()) {
    IndexEntry e;
    e.id = m["id"].GetString();
    e.layout = m["layout"].GetString();
    e.model_json = dir / m["model_json"].GetString();
    e.expected = dir / m["expected"].GetString();
    if (m["predictions"].IsString()) e.predictions = dir / m["predictions"].GetString();
    out.push_back(std::move(e));
  }
  if (out.empty()) throw std::runtime_error("no models listed in " + (dir / "index.json").string());
  return out;
}

inline std::string file_url(const std::filesystem::path& p) {
  return "file://" + std::filesystem::absolute(p).lexically_normal().string();
}

}  // namespace stowage::interop
