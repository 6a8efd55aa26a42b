// Model management through the registry and real plugins: TF.js's messages,
// copies that share buffers, and moves that never lose the source.
#include "stowage/management.hpp"

#include <doctest/doctest.h>

#include "testing/host_test_support.hpp"

namespace stowage {
namespace {

using test::contains;
using test::error_of;
using test::manifest;
using test::unique;

// A registry with the test store, the load-only "simple" plugin, and an
// alias "same" that is another spelling of "testmem".
struct Fixture {
  Fixture() {
    registry.add_plugin(manifest("testmem"));
    registry.add_plugin(manifest("simple"));
    Config c;
    c.aliases["same"] = "testmem";
    registry.apply_config(c);
  }
  bool exists(const std::string& url) {
    try {
      load_model(url, "{}", {}, registry);
      return true;
    } catch (const Error& e) {
      REQUIRE(e.code() == ErrorCode::kNotFound);
      return false;
    }
  }
  Registry registry;
};

// Weight bytes that do not match their specs, from a host handler.
class ShortHandler : public IOHandler {
 public:
  explicit ShortHandler(std::string url) : url_(std::move(url)) {}
  const std::string& url() const override { return url_; }
  bool can_load() const override { return true; }
  ModelArtifacts load(const CallContext&) override {
    ModelArtifacts a = test::sample_model();
    a.weight_data->pop_back();
    return a;
  }

 private:
  std::string url_;
};

TEST_CASE("copy streams the loaded buffers into the save") {
  Fixture f;
  const std::string src = "testmem://" + unique("copy-src");
  const std::string dst = "testmem://" + unique("copy-dst");
  ModelArtifacts model = test::sample_model();
  save_model(src, model, "{}", {}, f.registry);
  SaveResult r = copy_model(src, dst, {}, f.registry);
  CHECK(r.model_artifacts_info.weight_data_bytes == 12u);
  CHECK(f.exists(src));
  ModelArtifacts copy = load_model(dst, "{}", {}, f.registry);
  CHECK(test::bytes_of(*copy.weight_data) == test::bytes_of(*model.weight_data));
  // No copy of the weights anywhere on the way: the destination holds the
  // caller's original bytes.
  CHECK((*copy.weight_data)[0].data() == (*model.weight_data)[0].data());
  CHECK(copy.model_topology == model.model_topology);
  remove_model(src, f.registry);
  remove_model(dst, f.registry);
}

TEST_CASE("copy and move refuse with TF.js's messages") {
  Fixture f;
  Error same = error_of([&] { copy_model("testmem://a/1", "testmem://a/1", {}, f.registry); });
  CHECK(same.code() == ErrorCode::kInvalidArgument);
  CHECK(std::string(same.what()) == "Old path and new path are the same: 'testmem://a/1'");
  CHECK(std::string(error_of([&] { move_model("a/1", "a/1", {}, f.registry); }).what()) ==
        "Old path and new path are the same: 'a/1'");

  Error no_src = error_of([&] { copy_model("invalidurl", "testmem://x", {}, f.registry); });
  CHECK(no_src.code() == ErrorCode::kNotFound);
  CHECK(contains(no_src.what(),
                 "Copying failed because no load handler is found for source URL invalidurl."));
  Error no_scheme = error_of([&] { copy_model("nope://x", "testmem://x", {}, f.registry); });
  CHECK(contains(no_scheme.what(),
                 "Copying failed because no load handler is found for source URL nope://x. No "
                 "handler for scheme 'nope'"));
  Error no_dst = error_of([&] { copy_model("testmem://x", "invalidurl", {}, f.registry); });
  CHECK(
      contains(no_dst.what(),
               "Copying failed because no save handler is found for destination URL invalidurl."));
  Error load_only = error_of([&] { copy_model("testmem://x", "simple://y", {}, f.registry); });
  CHECK(
      contains(load_only.what(),
               "Copying failed because no save handler is found for destination URL simple://y."));

  const std::string src = "testmem://" + unique("keep");
  save_model(src, test::sample_model(), "{}", {}, f.registry);
  Error move_bad_dst = error_of([&] { move_model(src, "invalidurl", {}, f.registry); });
  CHECK(contains(move_bad_dst.what(), "no save handler is found for destination URL invalidurl"));
  CHECK(f.exists(src));

  Error missing =
      error_of([&] { copy_model("testmem://nonexistent", "testmem://y", {}, f.registry); });
  CHECK(missing.code() == ErrorCode::kNotFound);
  CHECK(std::string(missing.what()) == "testmem: no model at 'testmem://nonexistent'");
  remove_model(src, f.registry);
}

TEST_CASE("move removes the source only after the destination reads back the same") {
  Fixture f;
  const std::string src = "testmem://" + unique("move-src");
  const std::string dst = "testmem://" + unique("move-dst");
  save_model(src, test::sample_model(), "{}", {}, f.registry);
  SaveResult r = move_model(src, dst, {}, f.registry);
  CHECK(r.model_artifacts_info.weight_data_bytes == 12u);
  CHECK_FALSE(f.exists(src));
  ModelArtifacts moved = load_model(dst, "{}", {}, f.registry);
  CHECK(test::bytes_of(*moved.weight_data) == test::bytes_of(*test::sample_model().weight_data));
  remove_model(dst, f.registry);
}

TEST_CASE("a move whose save fails keeps the source") {
  Fixture f;
  const std::string src = "testmem://" + unique("move-fail");
  const std::string dst = "testmem://" + unique("move-fail-dst");
  save_model(src, test::sample_model(), "{}", {}, f.registry);
  TransferOptions o;
  o.destination_options =
      R"({"fail_times": 1, "fail_op": "save", "fail_code": 7, "fail_retryable": false})";
  Error e = error_of([&] { move_model(src, dst, o, f.registry); });
  CHECK(e.code() == ErrorCode::kResourceExhausted);
  CHECK(f.exists(src));
  CHECK_FALSE(f.exists(dst));
  remove_model(src, f.registry);
}

TEST_CASE("a move whose destination reads back different keeps the source") {
  Fixture f;
  const std::string src = "testmem://" + unique("move-flip");
  const std::string dst = "testmem://" + unique("move-flip-dst");
  save_model(src, test::sample_model(), "{}", {}, f.registry);
  TransferOptions o;
  o.destination_options = R"({"flip_byte_on_save": true})";
  Error e = error_of([&] { move_model(src, dst, o, f.registry); });
  CHECK(e.code() == ErrorCode::kDataLoss);
  CHECK(contains(e.what(), "the weight data differs at byte 0"));
  CHECK(contains(e.what(), "The source was not removed."));
  CHECK(f.exists(src));

  // A destination that cannot even be read back: same outcome.
  TransferOptions truncated;
  truncated.destination_options = R"({"truncate_weights": 2})";
  Error t = error_of([&] { move_model(src, dst, truncated, f.registry); });
  CHECK(t.code() == ErrorCode::kDataLoss);
  CHECK(f.exists(src));
  remove_model(src, f.registry);
  remove_model(dst, f.registry);
}

TEST_CASE("moving a model onto itself under another spelling does not lose it") {
  Fixture f;
  const std::string key = unique("self");
  save_model("testmem://" + key, test::sample_model(), "{}", {}, f.registry);
  Error e = error_of([&] { move_model("testmem://" + key, "same://" + key, {}, f.registry); });
  CHECK(contains(e.what(), "name the same model"));
  CHECK(f.exists("testmem://" + key));
  CHECK(test::bytes_of(*load_model("testmem://" + key, "{}", {}, f.registry).weight_data) ==
        test::bytes_of(*test::sample_model().weight_data));
  remove_model("testmem://" + key, f.registry);
}

TEST_CASE("move needs a source that can be removed, and checks before copying") {
  Fixture f;
  const std::string dst = "testmem://" + unique("from-simple");
  Error e = error_of([&] { move_model("simple://m", dst, {}, f.registry); });
  CHECK(e.code() == ErrorCode::kUnimplemented);
  CHECK(contains(e.what(), "Cannot find model manager for scheme 'simple'"));
  CHECK_FALSE(f.exists(dst));
  // Copying from it is fine.
  copy_model("simple://m", dst, {}, f.registry);
  CHECK(load_model(dst, "{}", {}, f.registry).model_topology ==
        R"({"plugin":"simple","url":"simple://m"})");
  remove_model(dst, f.registry);
}

TEST_CASE("progress over a copy covers the load and then the save") {
  Fixture f;
  const std::string src = "testmem://" + unique("progress");
  const std::string dst = "testmem://" + unique("progress-dst");
  save_model(src, test::sample_model(), "{}", {}, f.registry);
  std::vector<std::pair<uint64_t, uint64_t>> seen;
  TransferOptions o;
  o.call.on_progress = [&](uint64_t done, uint64_t total) { seen.emplace_back(done, total); };
  copy_model(src, dst, o, f.registry);
  REQUIRE(seen.size() >= 4);
  for (size_t i = 1; i < seen.size(); ++i) CHECK(seen[i].first >= seen[i - 1].first);
  for (const auto& [done, total] : seen) CHECK(done <= total);
  CHECK(seen.back() == std::make_pair<uint64_t, uint64_t>(24, 24));
  // Halfway: the load is done and the save has not started.
  CHECK(std::find(seen.begin(), seen.end(), std::make_pair<uint64_t, uint64_t>(12, 24)) !=
        seen.end());
  remove_model(src, f.registry);
  remove_model(dst, f.registry);
}

TEST_CASE("a cancelled copy writes nothing") {
  Fixture f;
  const std::string src = "testmem://" + unique("cancel");
  const std::string dst = "testmem://" + unique("cancel-dst");
  save_model(src, test::sample_model(), "{}", {}, f.registry);
  TransferOptions o;
  o.call.is_cancelled = [] { return true; };
  CHECK(error_of([&] { copy_model(src, dst, o, f.registry); }).code() == ErrorCode::kCancelled);
  CHECK_FALSE(f.exists(dst));
  remove_model(src, f.registry);
}

TEST_CASE("list and remove use TF.js's model-manager messages") {
  Fixture f;
  const std::string prefix = unique("ls");
  save_model("testmem://" + prefix + "/a", test::sample_model(), "{}", {}, f.registry);
  save_model("testmem://" + prefix + "/b", test::sample_model(), "{}", {}, f.registry);
  auto listed = list_models("testmem://" + prefix, f.registry);
  REQUIRE(listed.size() == 2);
  CHECK(listed[0].url == "testmem://" + prefix + "/a");
  CHECK(listed[1].url == "testmem://" + prefix + "/b");

  Error no_scheme = error_of([&] { list_models("nowhere", f.registry); });
  CHECK(std::string(no_scheme.what()) ==
        "The url string provided does not contain a scheme. Supported schemes are: "
        "same,simple,testmem");
  Error unknown = error_of([&] { remove_model("invalidscheme://x", f.registry); });
  CHECK(contains(unknown.what(), "Cannot find model manager for scheme 'invalidscheme'"));
  Error cannot = error_of([&] { remove_model("simple://x", f.registry); });
  CHECK(contains(cannot.what(), "Cannot find model manager for scheme 'simple'"));
  Error missing = error_of([&] { remove_model("testmem://" + prefix + "/zzz", f.registry); });
  CHECK(missing.code() == ErrorCode::kNotFound);

  CHECK(remove_model("testmem://" + prefix + "/a", f.registry).weight_data_bytes == 12u);
  remove_model("testmem://" + prefix + "/b", f.registry);
  CHECK(list_models("testmem://" + prefix, f.registry).empty());
}

TEST_CASE("load_model validates what a host's own handler returns") {
  Registry r;
  r.register_scheme("short", [](std::string_view url, std::string_view) {
    return std::make_unique<ShortHandler>(std::string(url));
  });
  Error e = error_of([&] { load_model("short://m", "{}", {}, r); });
  CHECK(e.code() == ErrorCode::kDataLoss);
  CHECK(contains(e.what(), "short://m"));
  CHECK(error_of([&] { copy_model("short://m", "short://n", {}, r); }).code() ==
        ErrorCode::kUnimplemented);  // a load-only handler
}

}  // namespace
}  // namespace stowage

namespace stowage {
namespace {

// TF.js's custom IOHandler: a host object handed straight to load/save.
class HostHandler : public IOHandler {
 public:
  const std::string& url() const override { return url_; }
  bool can_load() const override { return true; }
  bool can_save() const override { return true; }
  ModelArtifacts load(const CallContext&) override { return saved_; }
  SaveResult save(const ModelArtifacts& a, const CallContext&) override {
    saved_ = a;
    return SaveResult{artifacts_info(a), std::string(R"({"stored":true})")};
  }

 private:
  std::string url_ = "host-object";
  ModelArtifacts saved_;
};

class LoadOnlyHandler : public IOHandler {
 public:
  const std::string& url() const override { return url_; }
  bool can_load() const override { return true; }

 private:
  std::string url_ = "load-only";
};

TEST_CASE("a host's own handler saves and loads through the top-level calls") {
  HostHandler handler;
  const ModelArtifacts model = test::sample_model();
  const SaveResult result = save_model(handler, model);
  CHECK(result.responses == std::optional<std::string>(R"({"stored":true})"));
  CHECK(result.model_artifacts_info.weight_data_bytes == total_size(*model.weight_data));
  const ModelArtifacts loaded = load_model(handler);
  CHECK(loaded.weight_specs == model.weight_specs);
  CHECK(join(*loaded.weight_data).view() == join(*model.weight_data).view());
}

TEST_CASE("a host's own handler is validated like a plugin's") {
  ShortHandler handler("host://short");
  const Error e = error_of([&] { load_model(handler); });
  CHECK(e.code() == ErrorCode::kDataLoss);
  CHECK(contains(e.what(), "host://short"));
}

TEST_CASE("a host's handler without save is refused with TF.js's wording") {
  LoadOnlyHandler handler;
  const Error e = error_of([&] { save_model(handler, test::sample_model()); });
  CHECK(e.code() == ErrorCode::kUnimplemented);
  CHECK(contains(e.what(), "does not have the `save` attribute defined"));
  CHECK(contains(e.what(), "load-only"));
}

TEST_CASE("list_models() with no URL lists the default or configured locations, keyed by URL") {
  Fixture f;
  // None of localstorage://, indexeddb://, memory:// is served: nothing, no error.
  CHECK(list_models(f.registry).empty());

  const std::string a = unique("all-a"), b = unique("all-b");
  save_model("testmem://" + a + "/m", test::sample_model(), "{}", {}, f.registry);
  save_model("testmem://" + b + "/m", test::sample_model(), "{}", {}, f.registry);
  // memory:// served (here by an alias onto the test store) is a default location.
  Config alias;
  alias.aliases["memory"] = "testmem://" + a;
  f.registry.apply_config(alias);
  std::vector<ListedModel> defaults = list_models(f.registry);
  REQUIRE(defaults.size() == 1);
  CHECK(defaults[0].url == "testmem://" + a + "/m");
  CHECK(defaults[0].info.weight_data_bytes == std::optional<uint64_t>(12));

  // list_locations replaces the defaults; a model listed twice appears once.
  Config c;
  c.list_locations = {"testmem://" + b, "testmem://" + a, "testmem://" + b + "/m"};
  f.registry.apply_config(c);
  std::vector<ListedModel> all = list_models(f.registry);
  REQUIRE(all.size() == 2);
  CHECK(all[0].url == "testmem://" + b + "/m");
  CHECK(all[1].url == "testmem://" + a + "/m");

  // A configured location must be served and able to list; errors name it.
  f.registry.register_scheme("short", [](std::string_view url, std::string_view) {
    return std::make_unique<ShortHandler>(std::string(url));  // load only
  });
  Config load_only;
  load_only.list_locations = {"testmem://" + a, "short://x"};
  f.registry.apply_config(load_only);
  Error cannot = error_of([&] { list_models(f.registry); });
  CHECK(cannot.code() == ErrorCode::kUnimplemented);
  CHECK(std::string(cannot.what()) ==
        "Cannot list 'short://x' (named in the config's list_locations): the handler of scheme "
        "'short' cannot list models.");
  Config nowhere;
  nowhere.list_locations = {"nowhere://x"};
  f.registry.apply_config(nowhere);
  Error unknown = error_of([&] { list_models(f.registry); });
  CHECK(unknown.code() == ErrorCode::kNotFound);
  CHECK(contains(unknown.what(), "nowhere://x"));
  // A listing that fails says where.
  Config failing;
  failing.list_locations = {"testmem://" + a};
  failing.defaults["testmem"] = R"({"fail_times":9,"fail_op":"list","fail_retryable":false})";
  f.registry.apply_config(failing);
  Error failed = error_of([&] { list_models(f.registry); });
  CHECK(contains(failed.what(), "testmem://" + a));
  CHECK(contains(failed.what(), "injected failure"));
}

TEST_CASE("read_back_target: the caller's URL, the one the save's answer names, or dst") {
  Fixture f;
  const std::string dst = "testmem://h/a";
  auto target = [&](const std::optional<std::string>& responses, const std::string& options,
                    const std::string& verify_url = "") {
    SaveResult saved;
    saved.responses = responses;
    return read_back_target(dst, options, saved, verify_url, f.registry);
  };
  // No answer, or one that names nothing: the destination itself.
  for (const auto& responses : std::vector<std::optional<std::string>>{
           std::nullopt, R"([{"status":200}])", "not json", R"({"files":2})"}) {
    auto back = target(responses, R"({"x":1})");
    REQUIRE(back);
    CHECK(back->url == dst);
    CHECK(back->options_json == R"({"x":1})");
  }
  // A named URL of the same plugin and origin gets the destination's options.
  const std::string headers = R"({"headers":{"Authorization":"Bearer t"},"x":1})";
  auto same = target(R"([{"status":201,"modelUrl":"testmem://h/b"}])", headers);
  REQUIRE(same);
  CHECK(same->url == "testmem://h/b");
  CHECK(same->options_json == headers);
  // On another origin, without the destination's headers unless asked.
  auto other = target(R"([{"modelUrl":"testmem://elsewhere/b"}])", headers);
  REQUIRE(other);
  CHECK(other->url == "testmem://elsewhere/b");
  CHECK(other->options_json == R"({"x":1})");
  const std::string keep = R"({"headers":{"A":"b"},"send_headers_to_other_hosts":true})";
  CHECK(target(R"([{"modelUrl":"testmem://elsewhere/b"}])", keep)->options_json == keep);
  // "modelUrl": null: the destination is an upload URL that names no model.
  CHECK_FALSE(target(R"([{"status":200,"modelUrl":null}])", "{}"));
  // The caller's URL wins; on another plugin it gets no options.
  auto chosen = target(R"([{"modelUrl":null}])", R"({"x":1})", "testmem://h/c");
  REQUIRE(chosen);
  CHECK(chosen->url == "testmem://h/c");
  CHECK(chosen->options_json == R"({"x":1})");
  auto elsewhere = target(R"([{"modelUrl":"testmem://h/b"}])", R"({"x":1})", "simple://c");
  REQUIRE(elsewhere);
  CHECK(elsewhere->url == "simple://c");
  CHECK(elsewhere->options_json == "{}");
  // A receiver cannot make another plugin load.
  Error e = error_of([&] { target(R"([{"modelUrl":"simple://c"}])", "{}"); });
  CHECK(e.code() == ErrorCode::kInvalidArgument);
  CHECK(contains(e.what(), "names a model URL of scheme 'simple'"));
  CHECK(contains(e.what(), "a receiver cannot choose the plugin that reads the model back"));
}

}  // namespace
}  // namespace stowage
