// Errors raised by stowage: one exception type with a code from the closed set
// of the plugin ABI, a retryable flag and a message that names the URL or file.
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

namespace stowage {

// Same values as stowage_code in abi.h (checked by a static_assert in the host).
enum class ErrorCode : int32_t {
  kOk = 0,
  kNotFound = 1,
  kInvalidArgument = 2,
  kAlreadyExists = 3,
  kPermissionDenied = 4,
  kUnavailable = 5,
  kDataLoss = 6,
  kResourceExhausted = 7,
  kCancelled = 8,
  kDeadlineExceeded = 9,
  kUnimplemented = 10,
  kInternal = 11,
};

// "not found", "invalid argument", ... as printed in messages.
std::string_view error_code_name(ErrorCode code) noexcept;

// The network request a failure is about, so that a retry can be announced
// as "retrying GET https://h/m/model.json (2/4) after HTTP 503". Never holds
// credentials: url is redacted (redact_url) by whoever sets it.
struct FailedRequest {
  std::string method;  // "GET", "PUT", ...
  std::string url;     // redacted
  std::string reason;  // "HTTP 503", "connection refused while connecting", ...
};

// Thread-safety: immutable after construction.
class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message, bool retryable = false)
      : std::runtime_error(message), code_(code), retryable_(retryable) {}

  ErrorCode code() const noexcept { return code_; }
  // True when the same call may succeed if tried again (connection lost, 503, ...).
  bool retryable() const noexcept { return retryable_; }
  // The request that failed, when the error came from one; null otherwise.
  const FailedRequest* request() const noexcept { return request_.get(); }
  // This error, naming the request it is about.
  Error with_request(FailedRequest request) const {
    Error e = *this;
    e.request_ = std::make_shared<const FailedRequest>(std::move(request));
    return e;
  }

 private:
  ErrorCode code_;
  bool retryable_;
  std::shared_ptr<const FailedRequest> request_;  // shared: copies stay cheap and noexcept
};

}  // namespace stowage
