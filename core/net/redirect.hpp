// The redirect rules of the HTTP client as a pure function: which statuses
// redirect, where the next request goes, how its method, headers and body
// change, and when the chain is refused (a loop, too many hops). No I/O and
// nothing of Asio or Beast, so that the rules can be tested case by case and
// fuzzed; client.cpp drains the redirect's body and sends what it returns.
//
//   RedirectState at{"POST", Url::parse(u), headers, /*body=*/true, {u}, 0};
//   RedirectStep step = follow_redirect(at, 303, "/done", {10, false});
//   if (!step.next) throw Error(step.code, where + step.error, false);
//
// Thread-safety: plain functions over values.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http_client.hpp"
#include "stowage/error.hpp"

namespace stowage::net {

// 301, 302, 303, 307 and 308: the statuses whose Location is followed.
bool is_redirect(int status) noexcept;

// The request as it stands at one hop of a redirect chain.
struct RedirectState {
  std::string method;  // as sent ("GET" when the caller gave none)
  Url url;
  Headers headers;
  bool body = true;  // false once a redirect turned the request into a body-less GET
  // Every URL requested so far (Url::str(), not redacted), the first included:
  // a Location resolving to one of them is a loop.
  std::vector<std::string> seen;
  uint32_t hops = 0;  // redirects followed so far
};

struct RedirectRules {
  uint32_t max_redirects = 10;                   // ClientOptions::max_redirects
  bool keep_credentials_across_origins = false;  // Request::keep_credentials_across_origins
};

// The outcome of one redirect: the next request, or why there is none.
struct RedirectStep {
  std::optional<RedirectState> next;
  // When next is empty: kUnavailable (not retryable; kPermissionDenied for
  // an https to http hop) and the reason, without
  // the request's "METHOD URL: " prefix, URLs redacted: "redirect loop: a ->
  // b -> a" or "more than 3 redirects (the last to https://h/x)".
  ErrorCode code = ErrorCode::kOk;
  std::string error;
};

// The step from `at`, answered with a redirect `status` (is_redirect) whose
// Location header is `location`:
//   - the Location is resolved against at.url (RFC 3986); a URL already in
//     at.seen is a loop, checked before the hop limit;
//   - more than rules.max_redirects hops is refused;
//   - a hop from https to http is refused (kPermissionDenied): TLS would
//     no longer protect the rest of the chain;
//   - Authorization, Cookie and Proxy-Authorization are dropped when the
//     next URL has another origin, unless rules say to keep them;
//   - 303, and 301/302 after a POST, continue as GET (HEAD stays HEAD)
//     without a body and without the Content-Type, -Encoding, -Language and
//     -Location headers; 307 and 308 keep the method and the body.
// Throws Error(kInvalidArgument) naming the URL when the Location is no
// http(s) reference (as Url::resolve does).
RedirectStep follow_redirect(const RedirectState& at, int status, std::string_view location,
                             const RedirectRules& rules);

// Authorization, Cookie, Proxy-Authorization (any case): the headers that
// stay on their origin.
bool credential_header(std::string_view name) noexcept;

}  // namespace stowage::net
