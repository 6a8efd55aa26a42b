// A streaming multipart/form-data parser (RFC 7578 over RFC 2046): bytes go
// in as they arrive from the socket, in pieces of any size, and part
// headers and part data come out as events, so a part's bytes are never
// buffered by the parser itself.
//
// Thread-safety: a parser is used by one thread at a time. Ownership: the
// parser borrows its handler, which must outlive it.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace stowage::serve {

// The boundary of a "multipart/form-data; boundary=..." Content-Type (token
// or quoted string, 1 to 70 characters of RFC 2046's set). Throws
// Error(kInvalidArgument) for another media type, no boundary or a bad one.
std::string multipart_boundary(std::string_view content_type);

// What a part's headers say about it.
struct PartHeaders {
  std::string name;                     // Content-Disposition name="..."
  std::optional<std::string> filename;  // Content-Disposition filename="..."
  std::string content_type;             // empty when the part has none
};

struct MultipartLimits {
  size_t max_parts = 64;
  size_t max_header_bytes = 16 * 1024;  // one part's header block
};

// Receives a parser's events, in order: for each part, begin, data (zero
// or more times) and end. An exception thrown here leaves the parser in
// its error state and propagates out of feed().
class MultipartHandler {
 public:
  virtual ~MultipartHandler() = default;
  virtual void on_part_begin(const PartHeaders& headers) = 0;
  virtual void on_part_data(std::string_view bytes) = 0;
  virtual void on_part_end() = 0;
};

class MultipartParser {
 public:
  MultipartParser(std::string boundary, MultipartHandler& handler, MultipartLimits limits = {});

  // Consumes the next bytes of the body. Throws Error(kInvalidArgument)
  // for malformed input and Error(kResourceExhausted) when a limit is
  // passed; after a throw every call throws again.
  void feed(std::string_view bytes);
  // The body has ended: throws Error(kInvalidArgument) unless the closing
  // delimiter was seen.
  void finish();

  // True once the closing delimiter has been read (later bytes are the
  // epilogue and are ignored).
  bool done() const noexcept { return state_ == State::kEpilogue; }
  size_t parts() const noexcept { return parts_; }

 private:
  enum class State {
    kPreamble,       // before the first delimiter; bytes are ignored
    kDelimiterTail,  // after "--boundary": "--", padding or CRLF
    kCloseDash,      // after "--boundary-": the second '-'
    kDelimiterLf,    // after "--boundary...\r": the '\n'
    kHeaders,        // a part's header block
    kBody,           // a part's data
    kEpilogue,       // after the closing delimiter
    kFailed,
  };

  void fail_if_failed() const;
  // Runs the delimiter search over data in kPreamble or kBody. Returns the
  // bytes consumed; stops right after a complete delimiter.
  size_t scan(std::string_view data);
  void emit(std::string_view bytes);
  void begin_part();

  std::string delimiter_;  // "\r\n--" + boundary
  MultipartHandler& handler_;
  MultipartLimits limits_;
  State state_ = State::kPreamble;
  size_t matched_ = 0;  // bytes of delimiter_ matched so far
  size_t padding_ = 0;  // transport padding after a delimiter
  std::string header_block_;
  size_t parts_ = 0;
};

}  // namespace stowage::serve
