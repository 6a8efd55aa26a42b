// The redirect rules (redirect.hpp), one rule at a time, with the exact
// next request or the exact refusal.
#include "redirect.hpp"

#include <doctest/doctest.h>

#include "plugin_test_util.hpp"

using namespace stowage;
using namespace stowage::net;
using stowage::testing::error_of;

namespace {

RedirectState start(std::string method, const std::string& url, Headers headers = {}) {
  RedirectState at;
  at.method = std::move(method);
  at.url = Url::parse(url);
  at.headers = std::move(headers);
  at.seen = {at.url.str()};
  return at;
}

const RedirectRules kRules{10, false};

}  // namespace

TEST_CASE("is_redirect: 301, 302, 303, 307 and 308 only") {
  for (int s : {301, 302, 303, 307, 308}) CHECK_MESSAGE(is_redirect(s), s);
  for (int s : {200, 204, 300, 304, 305, 306, 309, 400, 0}) CHECK_MESSAGE(!is_redirect(s), s);
}

TEST_CASE("a redirect's Location is resolved against the current URL") {
  RedirectState at = start("GET", "http://h:8080/a/b/c?q=1");
  RedirectStep step = follow_redirect(at, 302, "../d?e=2", kRules);
  REQUIRE(step.next);
  CHECK(step.code == ErrorCode::kOk);
  CHECK(step.error.empty());
  CHECK(step.next->url.str() == "http://h:8080/a/d?e=2");
  CHECK(step.next->method == "GET");
  CHECK(step.next->body);
  CHECK(step.next->hops == 1);
  CHECK(step.next->seen ==
        std::vector<std::string>{"http://h:8080/a/b/c?q=1", "http://h:8080/a/d?e=2"});

  CHECK(follow_redirect(at, 301, "https://other/x", kRules).next->url.str() == "https://other/x");
  CHECK(follow_redirect(at, 307, "//other:81/y", kRules).next->url.str() == "http://other:81/y");
  CHECK(follow_redirect(at, 308, "?only", kRules).next->url.str() == "http://h:8080/a/b/c?only");
}

TEST_CASE("a Location that is no http(s) URL is an invalid argument naming it") {
  RedirectState at = start("GET", "http://h/a");
  Error e = error_of([&] { follow_redirect(at, 302, "ftp://user:pw@h/x", kRules); });
  CHECK(e.code() == ErrorCode::kInvalidArgument);
  CHECK(std::string(e.what()) ==
        "Invalid URL \"ftp://user:REDACTED@h/x\": the scheme must be http or https, not \"ftp\"");
}

TEST_CASE("303 continues as GET without the body or its content headers") {
  RedirectState at = start("PUT", "http://h/a",
                           {{"Content-Type", "application/json"},
                            {"content-encoding", "gzip"},
                            {"Content-Language", "en"},
                            {"Content-Location", "/x"},
                            {"Content-Length", "7"},
                            {"X-Keep", "1"}});
  RedirectStep step = follow_redirect(at, 303, "/b", kRules);
  REQUIRE(step.next);
  CHECK(step.next->method == "GET");
  CHECK(!step.next->body);
  CHECK(step.next->headers == Headers{{"Content-Length", "7"}, {"X-Keep", "1"}});
}

TEST_CASE("303 after HEAD stays HEAD, without a body") {
  RedirectStep step = follow_redirect(start("HEAD", "http://h/a"), 303, "/b", kRules);
  REQUIRE(step.next);
  CHECK(step.next->method == "HEAD");
  CHECK(!step.next->body);
}

TEST_CASE("301 and 302 turn a POST into a body-less GET, other methods stay") {
  for (int status : {301, 302}) {
    CAPTURE(status);
    RedirectStep post = follow_redirect(
        start("POST", "http://h/a", {{"Content-Type", "text/plain"}, {"Accept", "*/*"}}), status,
        "/b", kRules);
    REQUIRE(post.next);
    CHECK(post.next->method == "GET");
    CHECK(!post.next->body);
    CHECK(post.next->headers == Headers{{"Accept", "*/*"}});

    RedirectStep put = follow_redirect(start("PUT", "http://h/a", {{"Content-Type", "text/plain"}}),
                                       status, "/b", kRules);
    REQUIRE(put.next);
    CHECK(put.next->method == "PUT");
    CHECK(put.next->body);
    CHECK(put.next->headers == Headers{{"Content-Type", "text/plain"}});

    // The method compares exactly, as sent.
    RedirectStep lower = follow_redirect(start("post", "http://h/a"), status, "/b", kRules);
    CHECK(lower.next->method == "post");
    CHECK(lower.next->body);
  }
}

TEST_CASE("307 and 308 keep the method, the body and its headers") {
  for (int status : {307, 308}) {
    CAPTURE(status);
    RedirectStep step = follow_redirect(
        start("POST", "http://h/a", {{"Content-Type", "text/plain"}}), status, "/b", kRules);
    REQUIRE(step.next);
    CHECK(step.next->method == "POST");
    CHECK(step.next->body);
    CHECK(step.next->headers == Headers{{"Content-Type", "text/plain"}});
  }
}

TEST_CASE("a body dropped once stays dropped") {
  RedirectStep first = follow_redirect(start("POST", "http://h/a"), 303, "/b", kRules);
  REQUIRE(first.next);
  RedirectStep second = follow_redirect(*first.next, 307, "/c", kRules);
  REQUIRE(second.next);
  CHECK(second.next->method == "GET");
  CHECK(!second.next->body);
  CHECK(second.next->hops == 2);
}

TEST_CASE("credentials are dropped when a redirect leaves the origin") {
  const Headers sent{{"Authorization", "Bearer s"},
                     {"COOKIE", "c=1"},
                     {"proxy-authorization", "Basic p"},
                     {"X-Other", "kept"}};
  const Headers without{{"X-Other", "kept"}};
  RedirectState at = start("GET", "http://h/a", sent);
  // Same origin, though written differently (explicit default port).
  CHECK(follow_redirect(at, 302, "http://H:80/b", kRules).next->headers == sent);
  CHECK(follow_redirect(at, 302, "/b", kRules).next->headers == sent);
  // Another host, port or scheme is another origin.
  CHECK(follow_redirect(at, 302, "http://g/b", kRules).next->headers == without);
  CHECK(follow_redirect(at, 302, "http://h:81/b", kRules).next->headers == without);
  CHECK(follow_redirect(at, 302, "https://h/b", kRules).next->headers == without);
  // Unless the request asks to keep them.
  CHECK(follow_redirect(at, 302, "http://g/b", RedirectRules{10, true}).next->headers == sent);
}

TEST_CASE("a redirect from https to plain http is refused; http to https is followed") {
  RedirectStep down =
      follow_redirect(start("GET", "https://h/a?X-Amz-Signature=abc"), 302, "http://h/b", kRules);
  CHECK_FALSE(down.next);
  CHECK(down.code == ErrorCode::kPermissionDenied);
  CHECK(down.error ==
        "refused a redirect from https to plain http (https://h/a?X-Amz-Signature=REDACTED -> "
        "http://h/b); name the http:// URL to load over plain HTTP");
  // The same hop between hosts, and from a later hop of a chain.
  CHECK(follow_redirect(start("GET", "https://h/a"), 301, "http://g/b", kRules).code ==
        ErrorCode::kPermissionDenied);
  RedirectStep up = follow_redirect(start("GET", "http://h/a"), 302, "https://h/b", kRules);
  REQUIRE(up.next);
  CHECK(up.next->url.str() == "https://h/b");
  CHECK(follow_redirect(*up.next, 302, "http://h/c", kRules).code == ErrorCode::kPermissionDenied);
}

TEST_CASE("a URL requested before is a loop, named with the chain, secrets redacted") {
  RedirectState at = start("GET", "http://u:pw@h/a");
  RedirectStep b = follow_redirect(at, 302, "/b", kRules);
  REQUIRE(b.next);
  RedirectStep loop = follow_redirect(*b.next, 302, "/a", kRules);
  CHECK(!loop.next);
  CHECK(loop.code == ErrorCode::kUnavailable);
  CHECK(loop.error ==
        "redirect loop: http://u:REDACTED@h/a -> http://u:REDACTED@h/b -> http://u:REDACTED@h/a");
  // A redirect to itself.
  RedirectStep self = follow_redirect(start("GET", "http://h/a"), 307, "http://h/a", kRules);
  CHECK(!self.next);
  CHECK(self.error == "redirect loop: http://h/a -> http://h/a");
}

TEST_CASE("more than max_redirects hops are refused; the loop check comes first") {
  const RedirectRules two{2, false};
  RedirectState at = start("GET", "http://h/0");
  RedirectStep one = follow_redirect(at, 302, "/1", two);
  REQUIRE(one.next);
  RedirectStep second = follow_redirect(*one.next, 302, "/2", two);
  REQUIRE(second.next);
  CHECK(second.next->hops == 2);
  RedirectStep third = follow_redirect(*second.next, 302, "/3?sig=x", two);
  CHECK(!third.next);
  CHECK(third.code == ErrorCode::kUnavailable);
  CHECK(third.error == "more than 2 redirects (the last to http://h/3?sig=REDACTED)");
  RedirectStep back = follow_redirect(*second.next, 302, "/1", two);
  CHECK(back.error == "redirect loop: http://h/0 -> http://h/1 -> http://h/2 -> http://h/1");
  // max_redirects 0: not even one.
  RedirectStep none = follow_redirect(at, 302, "/1", RedirectRules{0, false});
  CHECK(none.error == "more than 0 redirects (the last to http://h/1)");
}

TEST_CASE("credential_header: Authorization, Cookie, Proxy-Authorization in any case") {
  for (const char* n : {"Authorization", "authorization", "COOKIE", "Proxy-Authorization"}) {
    CHECK_MESSAGE(credential_header(n), n);
  }
  for (const char* n : {"Set-Cookie", "X-Authorization", "Authorizatio", "", "cookie2"}) {
    CHECK_MESSAGE(!credential_header(n), n);
  }
}
