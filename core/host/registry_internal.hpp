// Registry internals shared with model management and the tests.
// Thread-safety: stateless functions; NoHandlerError is immutable.
#pragma once

#include <string>
#include <string_view>

#include "stowage/error.hpp"

namespace stowage::host {

// Thrown by Registry::open when no handler serves a URL's scheme (as opposed
// to a handler that failed), so model management can word TF.js's errors.
class NoHandlerError : public Error {
 public:
  NoHandlerError(const std::string& message, std::string scheme)
      : Error(ErrorCode::kNotFound, message), scheme_(std::move(scheme)) {}
  const std::string& scheme() const noexcept { return scheme_; }

 private:
  std::string scheme_;
};

// RFC 3986 scheme syntax, lowercase only: [a-z][a-z0-9+.-]*.
bool is_valid_scheme(std::string_view scheme) noexcept;

// Applies one alias: target is a scheme ("s3") or a URL prefix
// ("s3://bucket/prefix"); rest is what followed "<alias>://".
std::string apply_alias(std::string_view target, std::string_view rest);

}  // namespace stowage::host
