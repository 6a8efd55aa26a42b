// The options of a fault:// handler: the options the wrapped URL gets, the
// faults to inject and where to write the trace. Parsed
// strictly (an unknown key or a wrong type is INVALID_ARGUMENT naming the
// key's path), like every plugin's options.
//
//   FaultOptions o = parse_fault_options(options_json, url);
//
// Thread-safety: plain values. Ownership: owns its strings.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace stowage::fault {

enum class Op { kSave, kLoad, kList, kRemove, kStat, kAny };

const char* op_name(Op op) noexcept;
// "UNAVAILABLE" for STOWAGE_UNAVAILABLE; "CODE_<n>" for others.
const char* code_name(int32_t code) noexcept;

// One entry of "faults": the calls it hits and what it does to them.
struct FaultRule {
  size_t index = 0;  // its place in "faults", for messages and the trace
  Op op = Op::kAny;
  uint64_t nth = 1;    // the first call it hits, counted per op (or over all for "any")
  uint64_t count = 1;  // how many calls from nth on; 0 is every one
  // Fail the call with this code (a STOWAGE_* value).
  std::optional<int32_t> error;
  bool retryable = false;
  std::string message;  // empty: a default naming the call and the URL
  bool after = false;   // fail after the wrapped plugin ran (it succeeded)
  // Let the wrapped plugin start, and make its call stop once it reported
  // this many bytes of progress; the call then fails with `error`.
  std::optional<uint64_t> abort_after_bytes;
  uint64_t delay_ms = 0;                  // sleep before forwarding (cut short by the deadline)
  uint64_t stall_ms = 0;                  // sleep inside the plugin's first progress report
  std::optional<uint64_t> short_read;     // bytes cut off a loaded weight buffer
  uint64_t buffer = 0;                    // which buffer of the load (0-based)
  std::optional<uint64_t> truncate_json;  // bytes cut off the loaded model JSON

  bool hits(Op call_op, uint64_t op_count, uint64_t any_count) const noexcept;
};

struct FaultOptions {
  std::string inner_options = "{}";  // the wrapped URL's options: JSON object text
  std::vector<FaultRule> faults;
  std::string trace;  // file that gets one line per call; empty: none
};

// Throws stowage::Error(kInvalidArgument) naming the URL and the key.
FaultOptions parse_fault_options(std::string_view json, const std::string& url);

}  // namespace stowage::fault
