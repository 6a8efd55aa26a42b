// The error contract of abi.h, one case per sentence that a generic suite
// can provoke. (Those it cannot, such as PERMISSION_DENIED or
// RESOURCE_EXHAUSTED, depend on the store; docs/plugin-guide.md lists them.)
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "conformance_internal.hpp"

namespace stowage::conformance {
namespace {

// The target's options plus one key no plugin knows.
std::string options_with_unknown_key() {
  rapidjson::Document doc;
  doc.Parse(target().options.c_str());
  if (!doc.IsObject()) doc.SetObject();
  doc.AddMember("stowage_conformance_no_such_option", rapidjson::Value(true), doc.GetAllocator());
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  doc.Accept(w);
  return sb.GetString();
}

TEST_SUITE("errors: open") {
  TEST_CASE("open: an unknown option is INVALID_ARGUMENT") {
    const std::string options = options_with_unknown_key();
    must_fail("open fails with INVALID_ARGUMENT when options has an unknown key (abi.h: open)",
              {ErrorCode::kInvalidArgument},
              [&] { target().registry->open(fresh("unknown-option"), options); });
  }

  TEST_CASE("open: nothing is read or written yet") {
    const std::string url = fresh("open-only");
    for (int i = 0; i < 3; ++i) {
      must("open succeeds for a URL with no model (abi.h: open reads and writes nothing)",
           [&] { return open(url); });
    }
    if (target().has("list")) {
      auto listed = list_models_at(url);
      if (!listed.empty()) {
        broken("open writes nothing (abi.h: open)", "after open, list found " + listed[0].url);
      }
    }
    if (target().has("load")) {
      must_fail("open writes nothing (abi.h: open): a load afterwards finds no model",
                {ErrorCode::kNotFound}, [&] { open(url)->load(); });
    }
  }
}

TEST_SUITE("errors: load") {
  TEST_CASE("load: no model at the URL is NOT_FOUND") {
    must_fail("load fails with NOT_FOUND when there is no model at the URL (abi.h: load)",
              {ErrorCode::kNotFound}, [&] { open(fresh("missing"))->load(); });
    must_fail(
        "load fails with NOT_FOUND when there is no model at the URL (abi.h: load), "
        "also below a missing folder",
        {ErrorCode::kNotFound},
        [&] { open(child(fresh("missing-parent"), "deeper/model"))->load(); });
  }
}

TEST_SUITE("errors: save") {
  TEST_CASE("save: artifacts whose weights do not match their specs never load as a model") {
    ModelArtifacts bad = small_model(3);
    bad.weight_data->pop_back();  // the last piece is missing
    const std::string url = fresh("mismatched");
    std::optional<Error> refused =
        may_fail("save refuses artifacts it cannot store with INVALID_ARGUMENT (abi.h: save)",
                 {ErrorCode::kInvalidArgument}, [&] { open(url)->save(bad); });
    if (refused) {
      must_fail("a refused save stores nothing (abi.h: save leaves no model)",
                {ErrorCode::kNotFound}, [&] { open(url)->load(); });
      return;
    }
    // Stored as given: then the host's check on every load reports it.
    must_fail("weight bytes that do not match the specs load as DATA_LOSS (abi.h: load)",
              {ErrorCode::kDataLoss, ErrorCode::kInvalidArgument}, [&] { open(url)->load(); });
  }
}

TEST_SUITE("errors: list") {
  TEST_CASE("list: an empty or missing location lists nothing and succeeds") {
    const std::string url = fresh("empty");
    auto listed = list_models_at(url);
    if (!listed.empty()) {
      broken("an empty or missing location lists nothing (abi.h: list)",
             "it listed " + listed[0].url);
    }
    listed = list_models_at(child(url, "not/even/a/parent"));
    if (!listed.empty()) {
      broken("an empty or missing location lists nothing (abi.h: list)",
             "it listed " + listed[0].url);
    }
  }
}

TEST_SUITE("errors: remove") {
  TEST_CASE("remove: no model at the URL is NOT_FOUND") {
    must_fail("remove fails with NOT_FOUND when there is no model at the URL (abi.h: remove)",
              {ErrorCode::kNotFound}, [&] { open(fresh("missing"))->remove(); });
  }
}

}  // namespace
}  // namespace stowage::conformance
