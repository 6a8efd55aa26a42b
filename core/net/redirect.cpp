#include "redirect.hpp"

#include <algorithm>

#include "stowage/text.hpp"

namespace stowage::net {
namespace {

bool same_name(std::string_view a, std::string_view b) noexcept {
  auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                            [&](char x, char y) { return lower(x) == lower(y); });
}

// The headers that describe a body, gone with it.
bool content_header(std::string_view name) noexcept {
  return same_name(name, "content-type") || same_name(name, "content-encoding") ||
         same_name(name, "content-language") || same_name(name, "content-location");
}

}  // namespace

bool is_redirect(int status) noexcept {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

bool credential_header(std::string_view name) noexcept {
  return same_name(name, "authorization") || same_name(name, "cookie") ||
         same_name(name, "proxy-authorization");
}

RedirectStep follow_redirect(const RedirectState& at, int status, std::string_view location,
                             const RedirectRules& rules) {
  Url next = at.url.resolve(location);
  const std::string text = next.str();
  RedirectStep step;
  if (std::find(at.seen.begin(), at.seen.end(), text) != at.seen.end()) {
    std::string chain;
    for (const auto& u : at.seen) chain += redact_url(u) + " -> ";
    step.code = ErrorCode::kUnavailable;
    step.error = "redirect loop: " + chain + redact_url(text);
    return step;
  }
  // A fetch() from an https page may not load http content either (mixed
  // content): past this hop, TLS would no longer vouch for the bytes.
  if (at.url.scheme == "https" && next.scheme == "http") {
    step.code = ErrorCode::kPermissionDenied;
    step.error = "refused a redirect from https to plain http (" + redact_url(at.url.str()) +
                 " -> " + redact_url(text) + "); name the http:// URL to load over plain HTTP";
    return step;
  }
  if (at.hops + 1 > rules.max_redirects) {
    step.code = ErrorCode::kUnavailable;
    step.error = "more than " + std::to_string(rules.max_redirects) + " redirects (the last to " +
                 redact_url(text) + ")";
    return step;
  }
  RedirectState& to = step.next.emplace(at);
  if (next.origin() != at.url.origin() && !rules.keep_credentials_across_origins) {
    std::erase_if(to.headers, [](const auto& h) { return credential_header(h.first); });
  }
  if (status == 303 || ((status == 301 || status == 302) && at.method == "POST")) {
    if (to.method != "HEAD") to.method = "GET";
    to.body = false;
    std::erase_if(to.headers, [](const auto& h) { return content_header(h.first); });
  }
  to.seen.push_back(text);
  to.url = std::move(next);
  ++to.hops;
  return step;
}

}  // namespace stowage::net
