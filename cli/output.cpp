// Text tables, number formatting and the JSON writer used by --json.
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "commands_internal.hpp"

namespace stowage::cli {

Table::Table(std::vector<std::string> header, std::vector<size_t> numeric)
    : header_(std::move(header)), numeric_(std::move(numeric)) {}

void Table::add(std::vector<std::string> row) {
  row.resize(header_.size());
  rows_.push_back(std::move(row));
}

std::string Table::render() const {
  std::vector<size_t> width(header_.size(), 0);
  auto measure = [&](const std::vector<std::string>& row) {
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  };
  measure(header_);
  for (const auto& row : rows_) measure(row);

  std::string out;
  auto emit = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      const bool right = std::find(numeric_.begin(), numeric_.end(), i) != numeric_.end();
      const std::string pad(width[i] - row[i].size(), ' ');
      if (i > 0) line += "  ";
      if (right) {
        line += pad + row[i];
      } else if (i + 1 < row.size()) {
        line += row[i] + pad;
      } else {
        line += row[i];  // no trailing blanks on the last column
      }
    }
    out += line + "\n";
  };
  emit(header_);
  for (const auto& row : rows_) emit(row);
  return out;
}

std::string bytes_text(uint64_t bytes) {
  if (bytes < 1024) return std::to_string(bytes) + " bytes";
  static const char* const kUnits[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
  double value = static_cast<double>(bytes);
  int unit = -1;
  while (value >= 1024 && unit < 4) {
    value /= 1024;
    ++unit;
  }
  char text[64];
  std::snprintf(text, sizeof text, "%llu bytes (%.1f %s)", static_cast<unsigned long long>(bytes),
                value, kUnits[unit]);
  return text;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) out += ",";
    out += std::to_string(shape[i]);
  }
  return out + "]";
}

std::string number_text(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value < 0 ? "-inf" : "inf";
  char text[64];
  // Shortest of %.{6..17}g that reads back exactly.
  for (int precision = 6; precision <= 17; ++precision) {
    std::snprintf(text, sizeof text, "%.*g", precision, value);
    if (std::strtod(text, nullptr) == value) break;
  }
  return text;
}

std::string quantization_text(const WeightSpec& spec) {
  if (!spec.quantization) return "-";
  const Quantization& q = *spec.quantization;
  std::string out = q.dtype;
  if (q.scale) out += " scale=" + number_text(*q.scale);
  if (q.min) out += " min=" + number_text(*q.min);
  return out;
}

std::string one_line(std::string_view message) {
  std::string out;
  bool pending_break = false;
  for (char c : message) {
    if (c == '\n' || c == '\r') {
      pending_break = !out.empty();
      continue;
    }
    if (pending_break) {
      while (!out.empty() && out.back() == ' ') out.pop_back();
      out += "; ";
      pending_break = false;
      if (c == ' ' || c == '\t') continue;
    }
    out += c;
  }
  return out;
}

struct JsonWriter::Impl {
  rapidjson::StringBuffer buffer;
  rapidjson::PrettyWriter<rapidjson::StringBuffer> writer{buffer};
  Impl() { writer.SetIndent(' ', 2); }
};

JsonWriter::JsonWriter() : impl_(std::make_unique<Impl>()) {}
JsonWriter::~JsonWriter() = default;

JsonWriter& JsonWriter::begin_object() {
  impl_->writer.StartObject();
  return *this;
}
JsonWriter& JsonWriter::end_object() {
  impl_->writer.EndObject();
  return *this;
}
JsonWriter& JsonWriter::begin_array() {
  impl_->writer.StartArray();
  return *this;
}
JsonWriter& JsonWriter::end_array() {
  impl_->writer.EndArray();
  return *this;
}
JsonWriter& JsonWriter::key(std::string_view k) {
  impl_->writer.Key(k.data(), static_cast<rapidjson::SizeType>(k.size()), true);
  return *this;
}
JsonWriter& JsonWriter::string(std::string_view v) {
  impl_->writer.String(v.data(), static_cast<rapidjson::SizeType>(v.size()), true);
  return *this;
}
JsonWriter& JsonWriter::nullable_string(const std::optional<std::string>& v) {
  return v ? string(*v) : null();
}
JsonWriter& JsonWriter::uint(uint64_t v) {
  impl_->writer.Uint64(v);
  return *this;
}
JsonWriter& JsonWriter::integer(int64_t v) {
  impl_->writer.Int64(v);
  return *this;
}
JsonWriter& JsonWriter::number(double v) {
  if (!std::isfinite(v)) return null();
  // Integral values print without ".0", as JSON.stringify does.
  if (v == std::floor(v) && std::fabs(v) < 9007199254740992.0) {
    impl_->writer.Int64(static_cast<int64_t>(v));
  } else {
    impl_->writer.Double(v);
  }
  return *this;
}
JsonWriter& JsonWriter::boolean(bool v) {
  impl_->writer.Bool(v);
  return *this;
}
JsonWriter& JsonWriter::null() {
  impl_->writer.Null();
  return *this;
}
JsonWriter& JsonWriter::raw(std::string_view json_text) {
  impl_->writer.RawValue(json_text.data(), json_text.size(), rapidjson::kObjectType);
  return *this;
}
std::string JsonWriter::str() const {
  return std::string(impl_->buffer.GetString(), impl_->buffer.GetSize()) + "\n";
}

}  // namespace stowage::cli
