#include <doctest/doctest.h>

#include "routes_internal.hpp"
#include "stowage/error.hpp"

namespace stowage::serve {
namespace {

bool name_ok(std::string_view name) {
  try {
    check_model_name(name);
    return true;
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::kInvalidArgument);
    return false;
  }
}

bool target_ok(std::string_view target, bool whole_model) {
  try {
    route_target(target, whole_model);
    return true;
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::kInvalidArgument);
    return false;
  }
}

}  // namespace

TEST_CASE("routes: untrusted model names") {
  CHECK(name_ok("m"));
  CHECK(name_ok("team/mnist-v2"));
  CHECK(name_ok("a b_c.d~e"));
  CHECK(name_ok("mod\xc3\xa8le"));  // UTF-8
  CHECK(name_ok(std::string(kMaxModelNameBytes, 'a')));

  CHECK_FALSE(name_ok(""));
  CHECK_FALSE(name_ok(std::string(kMaxModelNameBytes + 1, 'a')));
  CHECK_FALSE(name_ok("/etc/passwd"));
  CHECK_FALSE(name_ok(".."));
  CHECK_FALSE(name_ok("a/../b"));
  CHECK_FALSE(name_ok("a/./b"));
  CHECK_FALSE(name_ok("a//b"));
  CHECK_FALSE(name_ok("a/"));
  CHECK_FALSE(name_ok(".hidden"));
  CHECK_FALSE(name_ok("a/.m.stowage-tmp-abcdef"));
  CHECK_FALSE(name_ok("a/model.json"));
  CHECK_FALSE(name_ok("a\\b"));
  CHECK_FALSE(name_ok("a\nb"));
  CHECK_FALSE(name_ok(std::string("a\0b", 3)));
  CHECK_FALSE(name_ok("a\x7f"));
  CHECK_FALSE(name_ok("a?b"));
  CHECK_FALSE(name_ok("a#b"));
  CHECK_FALSE(name_ok("a%2e"));
  CHECK_FALSE(name_ok("\xc3"));                               // cut-off UTF-8
  CHECK_FALSE(name_ok("\xc0\xae"));                           // overlong '.'
  CHECK_FALSE(name_ok("a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q"));  // 17 segments
}

TEST_CASE("routes: the URL layout") {
  Route r = route_target("/models", false);
  CHECK(r.kind == Route::Kind::kList);
  CHECK(route_target("/models/", false).kind == Route::Kind::kList);
  CHECK(route_target("/models?x=1", false).kind == Route::Kind::kList);

  r = route_target("/models/m/model.json?v=3", false);
  CHECK(r.kind == Route::Kind::kModelJson);
  CHECK(r.name == "m");
  r = route_target("/models/team/m/group1-shard1of2.bin", false);
  CHECK(r.kind == Route::Kind::kModelFile);
  CHECK(r.name == "team/m");
  CHECK(r.file == "group1-shard1of2.bin");
  // "./x" from a manifest concatenated without resolving.
  r = route_target("/models/m/./model.weights.bin", false);
  CHECK(r.kind == Route::Kind::kModelFile);
  CHECK(r.file == "model.weights.bin");
  CHECK(route_target("/models/m", false).kind == Route::Kind::kNoFile);

  // Uploads and removals name the model, with or without /model.json.
  r = route_target("/models/m", true);
  CHECK(r.kind == Route::Kind::kModel);
  CHECK(r.name == "m");
  CHECK(route_target("/models/team/m/", true).name == "team/m");
  CHECK(route_target("/models/m/model.json", true).name == "m");
  CHECK(route_target("/models/a%20b", true).name == "a b");
  CHECK(route_target("http://host:8080/models/m", true).name == "m");

  r = route_target("/", false);
  CHECK(r.kind == Route::Kind::kStatic);
  CHECK(r.path.empty());
  r = route_target("/js/tf.min.js", false);
  CHECK(r.kind == Route::Kind::kStatic);
  CHECK(r.path == std::vector<std::string>{"js", "tf.min.js"});
}

TEST_CASE("routes: traversal and bad encodings are refused") {
  CHECK_FALSE(target_ok("/models/../etc/passwd", false));
  CHECK_FALSE(target_ok("/models/%2e%2e/model.json", false));
  CHECK_FALSE(target_ok("/models/a%2f..%2f..%2fx", true));
  CHECK_FALSE(target_ok("/models/a%00b", true));
  CHECK_FALSE(target_ok("/models/a%zz", true));
  CHECK_FALSE(target_ok("/models/a%4", true));
  CHECK_FALSE(target_ok("/models//a", true));
  CHECK_FALSE(target_ok("/models", true));
  CHECK_FALSE(target_ok("/models/", true));
  CHECK_FALSE(target_ok("/models/m/..%5c..%5cx.bin", false));
  CHECK_FALSE(target_ok("/models/m/.hidden", false));
  CHECK_FALSE(target_ok("/../secret", false));
  CHECK_FALSE(target_ok("/.git/config", false));
  CHECK_FALSE(target_ok("models", false));
  CHECK_FALSE(target_ok("/models/" + std::string(300, 'a') + "/model.json", false));
}

TEST_CASE("routes: percent-decoding and paths for logs") {
  CHECK(percent_decode("a%20b%2Fc") == "a b/c");
  CHECK(percent_decode("100%25") == "100%");
  CHECK_THROWS_AS(percent_decode("%"), Error);
  CHECK_THROWS_AS(percent_decode("%0"), Error);
  CHECK_THROWS_AS(percent_decode("%00"), Error);
  CHECK(target_path("/models/m/model.json?token=x#f") == "/models/m/model.json");
}

TEST_CASE("routes: the operators' endpoints are exactly /healthz, /readyz and /metrics") {
  CHECK(route_target("/healthz", false).kind == Route::Kind::kHealth);
  CHECK(route_target("/readyz?verbose=1", false).kind == Route::Kind::kReady);
  CHECK(route_target("/metrics", false).kind == Route::Kind::kMetrics);
  // Any method reaches them (and is refused there with 405).
  CHECK(route_target("/metrics", true).kind == Route::Kind::kMetrics);
  // Deeper paths and models of those names are what they were.
  const Route deeper = route_target("/healthz/index.html", false);
  CHECK(deeper.kind == Route::Kind::kStatic);
  CHECK(deeper.path == std::vector<std::string>{"healthz", "index.html"});
  const Route model = route_target("/models/metrics/model.json", false);
  CHECK(model.kind == Route::Kind::kModelJson);
  CHECK(model.name == "metrics");
  CHECK(route_target("/Metrics", false).kind == Route::Kind::kStatic);
}

}  // namespace stowage::serve
