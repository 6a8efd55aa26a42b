// Fuzzes the HTTP client's redirect rules (core/net/redirect.cpp) along a
// chain of redirects. An input is a flag byte (method, whether credentials
// may cross origins, max_redirects), the first URL, then one line per
// redirect: a status selector byte and the Location. Checks: only a
// kInvalidArgument "Invalid URL" error leaves follow_redirect; a step gives
// the next request or a refusal, never both (a loop or the hop limit,
// kUnavailable; an https->http hop, kPermissionDenied); the
// next URL is the resolved Location; the seen list grows by it and never
// holds a URL twice; hops never pass max_redirects; the method and body
// change exactly on 303 and on 301/302 after a POST; credentials go exactly
// when the origin changes (unless kept); other headers keep their order.
//
//   build-fuzz/bin/fuzz/redirect_fuzzer fuzz/corpus/redirect

#include <algorithm>
#include <string>

#include "fuzz_util.hpp"
#include "redirect.hpp"
#include "stowage/error.hpp"

namespace {

using namespace stowage::net;
using stowage::fuzz::take_until;

constexpr const char* kMethods[] = {"GET", "POST", "PUT", "HEAD"};
constexpr int kStatuses[] = {301, 302, 303, 307, 308};

bool content_header(std::string_view name) {
  return name == "Content-Type" || name == "content-encoding";
}

// `after` is `before` with some headers removed, the rest in order; returns
// which names were removed.
std::vector<std::string> removed(const Headers& before, const Headers& after) {
  std::vector<std::string> gone;
  size_t j = 0;
  for (const auto& h : before) {
    if (j < after.size() && after[j] == h) {
      ++j;
    } else {
      gone.push_back(h.first);
    }
  }
  FUZZ_CHECK(j == after.size(), "the next headers are the current ones, some removed");
  return gone;
}

void check_step(const RedirectState& at, int status, std::string_view location,
                const RedirectRules& rules, const RedirectStep& step) {
  const Url resolved = at.url.resolve(location);
  const bool downgrade = at.url.scheme == "https" && resolved.scheme == "http";
  if (!step.next) {
    const bool loop = step.error.starts_with("redirect loop: ");
    const bool refused_downgrade = step.error.starts_with("refused a redirect from https");
    const bool limit =
        step.error.starts_with("more than " + std::to_string(rules.max_redirects) + " redirects");
    FUZZ_CHECK(loop || refused_downgrade || limit, "a refusal is a loop, a downgrade or the limit");
    FUZZ_CHECK(step.code == (refused_downgrade ? stowage::ErrorCode::kPermissionDenied
                                               : stowage::ErrorCode::kUnavailable),
               "a downgrade is kPermissionDenied, other refusals kUnavailable");
    const std::string next = resolved.str();
    FUZZ_CHECK(loop == (std::find(at.seen.begin(), at.seen.end(), next) != at.seen.end()),
               "a loop exactly when the next URL was seen");
    FUZZ_CHECK(loop || refused_downgrade == downgrade,
               "a downgrade refused exactly when https->http");
    FUZZ_CHECK(loop || refused_downgrade || at.hops + 1 > rules.max_redirects,
               "the limit only past max_redirects");
    return;
  }
  FUZZ_CHECK(!downgrade, "no https->http hop is followed");
  FUZZ_CHECK(step.code == stowage::ErrorCode::kOk && step.error.empty(), "no error with a next");
  const RedirectState& to = *step.next;
  FUZZ_CHECK(to.url.str() == at.url.resolve(location).str(), "the next URL is the Location");
  FUZZ_CHECK(to.hops == at.hops + 1 && to.hops <= rules.max_redirects, "hops counted, bounded");
  FUZZ_CHECK(to.seen.size() == at.seen.size() + 1 && to.seen.back() == to.url.str() &&
                 std::equal(at.seen.begin(), at.seen.end(), to.seen.begin()),
             "seen grows by the next URL");
  FUZZ_CHECK(std::count(to.seen.begin(), to.seen.end(), to.url.str()) == 1, "no URL twice");
  const bool rewrite = status == 303 || ((status == 301 || status == 302) && at.method == "POST");
  if (rewrite) {
    FUZZ_CHECK(to.method == (at.method == "HEAD" ? "HEAD" : "GET"), "rewritten to GET");
    FUZZ_CHECK(!to.body, "the body goes with the rewrite");
  } else {
    FUZZ_CHECK(to.method == at.method && to.body == at.body, "307/308 keep method and body");
  }
  const bool cross = to.url.origin() != at.url.origin() && !rules.keep_credentials_across_origins;
  for (const std::string& name : removed(at.headers, to.headers)) {
    FUZZ_CHECK((cross && credential_header(name)) || (rewrite && content_header(name)),
               "only credentials across origins and content headers on a rewrite are removed");
  }
  for (const auto& h : to.headers) {
    FUZZ_CHECK(!(cross && credential_header(h.first)), "no credential crosses origins");
    FUZZ_CHECK(!(rewrite && content_header(h.first)), "no content header after a rewrite");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t flags = data[0];
  std::string_view text = stowage::fuzz::as_text(data + 1, size - 1);
  const RedirectRules rules{static_cast<uint32_t>(flags >> 3), (flags & 4) != 0};
  RedirectState at;
  try {
    at.url = Url::parse(take_until(text, "\n"));
  } catch (const stowage::Error&) {
    return 0;  // the URL parser has its own fuzzer
  }
  at.method = kMethods[flags & 3];
  at.headers = {{"Authorization", "Bearer s"},
                {"Content-Type", "text/plain"},
                {"COOKIE", "c=1"},
                {"X-Other", "kept"},
                {"proxy-authorization", "Basic p"},
                {"content-encoding", "gzip"}};
  at.seen = {at.url.str()};
  while (!text.empty()) {
    std::string_view line = take_until(text, "\n");
    if (line.empty()) continue;
    const int status = kStatuses[static_cast<unsigned char>(line[0]) % 5];
    const std::string_view location = line.substr(1);
    FUZZ_CHECK(is_redirect(status), "the statuses followed are redirects");
    RedirectStep step;
    try {
      step = follow_redirect(at, status, location, rules);
    } catch (const stowage::Error& e) {
      FUZZ_CHECK(e.code() == stowage::ErrorCode::kInvalidArgument, "a bad Location is invalid");
      FUZZ_CHECK(std::string_view(e.what()).starts_with("Invalid URL \""), "named as a URL");
      continue;
    }
    check_step(at, status, location, rules, step);
    if (!step.next) return 0;
    at = std::move(*step.next);
  }
  return 0;
}
