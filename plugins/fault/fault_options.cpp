// Strict parsing of the fault:// options (documented in fault_plugin.cpp and
// docs/plugin-guide.md).
#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cctype>
#include <cmath>

#include "fault_options_internal.hpp"
#include "stowage/abi.h"
#include "stowage/error.hpp"

namespace stowage::fault {
namespace {

constexpr const char* kCodeNames[] = {"OK",
                                      "NOT_FOUND",
                                      "INVALID_ARGUMENT",
                                      "ALREADY_EXISTS",
                                      "PERMISSION_DENIED",
                                      "UNAVAILABLE",
                                      "DATA_LOSS",
                                      "RESOURCE_EXHAUSTED",
                                      "CANCELLED",
                                      "DEADLINE_EXCEEDED",
                                      "UNIMPLEMENTED",
                                      "INTERNAL"};

class Reader {
 public:
  explicit Reader(const std::string& url) : url_(url) {}

  [[noreturn]] void fail(const std::string& path, const std::string& what) const {
    throw Error(ErrorCode::kInvalidArgument, "Options for " + url_ + ": " + path + ": " + what);
  }

  uint64_t uint(const rapidjson::Value& v, const std::string& path, uint64_t min = 0) const {
    if (v.IsUint64() && v.GetUint64() >= min) return v.GetUint64();
    if (v.IsDouble()) {
      double d = v.GetDouble();
      if (std::isfinite(d) && d >= static_cast<double>(min) && d < 1.8e19 && std::floor(d) == d) {
        return static_cast<uint64_t>(d);
      }
    }
    fail(path, "expected an integer >= " + std::to_string(min));
  }

  std::string string(const rapidjson::Value& v, const std::string& path) const {
    if (!v.IsString()) fail(path, "expected a string");
    return std::string(v.GetString(), v.GetStringLength());
  }

  bool boolean(const rapidjson::Value& v, const std::string& path) const {
    if (!v.IsBool()) fail(path, "expected true or false");
    return v.GetBool();
  }

  Op op(const rapidjson::Value& v, const std::string& path) const {
    std::string s = string(v, path);
    if (s == "save") return Op::kSave;
    if (s == "load") return Op::kLoad;
    if (s == "list") return Op::kList;
    if (s == "remove") return Op::kRemove;
    if (s == "stat") return Op::kStat;
    if (s == "any") return Op::kAny;
    fail(path, "'" + s + "' is not one of save, load, list, remove, stat, any");
  }

  int32_t code(const rapidjson::Value& v, const std::string& path) const {
    std::string s = string(v, path);
    for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    for (int32_t i = STOWAGE_NOT_FOUND; i <= STOWAGE_INTERNAL; ++i) {
      if (s == kCodeNames[i]) return i;
    }
    fail(path, "'" + s + "' is not a status code (unavailable, data_loss, internal, ...)");
  }

  FaultRule rule(const rapidjson::Value& v, size_t index) const {
    const std::string base = "faults[" + std::to_string(index) + "]";
    if (!v.IsObject()) fail(base, "expected an object");
    FaultRule r;
    r.index = index;
    std::optional<bool> retryable;
    for (const auto& m : v.GetObject()) {
      std::string key(m.name.GetString(), m.name.GetStringLength());
      std::string path = base + "." + key;
      const rapidjson::Value& x = m.value;
      if (key == "op") {
        r.op = op(x, path);
      } else if (key == "nth") {
        r.nth = uint(x, path, 1);
      } else if (key == "count") {
        r.count = uint(x, path);
      } else if (key == "error") {
        r.error = code(x, path);
      } else if (key == "retryable") {
        retryable = boolean(x, path);
      } else if (key == "message") {
        r.message = string(x, path);
      } else if (key == "when") {
        std::string w = string(x, path);
        if (w != "before" && w != "after") fail(path, "expected \"before\" or \"after\"");
        r.after = w == "after";
      } else if (key == "abort_after_bytes") {
        r.abort_after_bytes = uint(x, path);
      } else if (key == "delay_ms") {
        r.delay_ms = uint(x, path);
      } else if (key == "stall_ms") {
        r.stall_ms = uint(x, path);
      } else if (key == "short_read") {
        r.short_read = uint(x, path, 1);
      } else if (key == "buffer") {
        r.buffer = uint(x, path);
      } else if (key == "truncate_json") {
        r.truncate_json = uint(x, path, 1);
      } else {
        fail(path,
             "unknown key (known keys: op, nth, count, error, retryable, message, when, "
             "abort_after_bytes, delay_ms, stall_ms, short_read, buffer, truncate_json)");
      }
    }
    if (r.abort_after_bytes && !r.error) r.error = STOWAGE_UNAVAILABLE;
    r.retryable = retryable.value_or(r.error && *r.error == STOWAGE_UNAVAILABLE);
    bool any = r.error || r.delay_ms > 0 || r.stall_ms > 0 || r.short_read || r.truncate_json;
    if (!any) {
      fail(base,
           "does nothing: give it one of error, abort_after_bytes, delay_ms, stall_ms, "
           "short_read, truncate_json");
    }
    if (r.after && (!r.error || r.abort_after_bytes)) {
      fail(base + ".when", "\"after\" needs an \"error\" and no \"abort_after_bytes\"");
    }
    if ((r.short_read || r.truncate_json) && r.op != Op::kLoad) {
      fail(base + ".op", "short_read and truncate_json apply to \"load\" only");
    }
    if ((r.retryable || !r.message.empty()) && !r.error) {
      fail(base, "retryable and message need an \"error\"");
    }
    return r;
  }

 private:
  const std::string& url_;
};

}  // namespace

const char* op_name(Op op) noexcept {
  switch (op) {
    case Op::kSave:
      return "save";
    case Op::kLoad:
      return "load";
    case Op::kList:
      return "list";
    case Op::kRemove:
      return "remove";
    case Op::kStat:
      return "stat";
    case Op::kAny:
      break;
  }
  return "any";
}

const char* code_name(int32_t code) noexcept {
  if (code >= STOWAGE_OK && code <= STOWAGE_INTERNAL) return kCodeNames[code];
  return "UNKNOWN_CODE";
}

bool FaultRule::hits(Op call_op, uint64_t op_count, uint64_t any_count) const noexcept {
  if (op != Op::kAny && op != call_op) return false;
  uint64_t n = op == Op::kAny ? any_count : op_count;
  if (n < nth) return false;
  return count == 0 || n - nth < count;
}

FaultOptions parse_fault_options(std::string_view json, const std::string& url) {
  Reader reader(url);
  rapidjson::Document doc;
  std::string text(json.empty() ? std::string_view("{}") : json);
  doc.Parse(text.c_str(), text.size());
  if (doc.HasParseError()) {
    throw Error(ErrorCode::kInvalidArgument, "Options for " + url + " are not valid JSON: " +
                                                 rapidjson::GetParseError_En(doc.GetParseError()));
  }
  if (!doc.IsObject()) {
    throw Error(ErrorCode::kInvalidArgument, "Options for " + url + " must be a JSON object");
  }
  FaultOptions o;
  for (const auto& m : doc.GetObject()) {
    std::string key(m.name.GetString(), m.name.GetStringLength());
    if (key == "inner") {
      // The option that named the wrapped library is gone; say so rather
      // than only "unknown key" to someone with an old config.
      reader.fail(key,
                  "unknown key: the wrapped URL alone picks its plugin, through the host's "
                  "registry (known keys: inner_options, faults, trace)");
    } else if (key == "inner_options") {
      if (!m.value.IsObject()) reader.fail(key, "expected an object");
      rapidjson::StringBuffer out;
      rapidjson::Writer<rapidjson::StringBuffer> writer(out);
      m.value.Accept(writer);
      o.inner_options.assign(out.GetString(), out.GetSize());
    } else if (key == "faults") {
      if (!m.value.IsArray()) reader.fail(key, "expected an array");
      for (rapidjson::SizeType i = 0; i < m.value.Size(); ++i) {
        o.faults.push_back(reader.rule(m.value[i], i));
      }
    } else if (key == "trace") {
      o.trace = reader.string(m.value, key);
    } else {
      reader.fail(key, "unknown key (known keys: inner_options, faults, trace)");
    }
  }
  return o;
}

}  // namespace stowage::fault
