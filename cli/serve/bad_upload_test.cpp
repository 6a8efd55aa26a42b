// The multipart cases of the bad-input corpus (tests/data/bad/multipart, see
// tests/data/bad/README.md): each body is POSTed to /models/m through the
// server's request handling (App: routing, begin_upload, the streaming
// parser, the upload collector, finish_upload) into a file:// store, whole
// and in 7-byte pieces. Each must get its status and an error JSON with its
// code and message parts, and leave no model behind.
//
//   cases.json  {"name", "target" (default /models/m), "content_type"
//               (default multipart/form-data; boundary=X), "content_length"
//               (default the body's size), "status", "code", "contains": [...]}
#include <doctest/doctest.h>
#include <rapidjson/document.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "app_internal.hpp"
#include "bad_cases.hpp"
#include "stowage/error.hpp"
#include "test_files.hpp"

namespace stowage::serve {
namespace {

using stowage::testing::read_cases;
using stowage::testing::read_required_file;

namespace fs = std::filesystem;

const fs::path kCorpus = fs::path(STOWAGE_SOURCE_DIR) / "tests" / "data" / "bad" / "multipart";
constexpr const char* kName = "m";

// One POST through App, as server.cpp drives it, minus the socket.
Reply post(App& app, const Request& request, const std::string& body, size_t step) {
  App::Plan plan = app.plan(request);
  if (plan.work != App::Work::kUpload) return plan.reply;
  Reply reply;
  std::unique_ptr<Upload> upload = app.begin_upload(request, plan.route, reply);
  if (!upload) return reply;
  try {
    for (size_t i = 0; i < body.size(); i += step)
      upload->feed(std::string_view(body).substr(i, step));
    upload->finish();
  } catch (const Error& e) {
    return app.upload_failed(e);
  }
  return app.finish_upload(request, *upload, CallContext{});
}

}  // namespace

TEST_CASE("bad multipart uploads are refused with their status and cause") {
  const rapidjson::Document cases = read_cases(kCorpus / "cases.json");
  REQUIRE(cases.Size() >= 20);

  const stowage::testing::TempDir temp("stowage-bad-upload");
  const fs::path& dir = temp.path();
  ServerOptions options;
  options.store = "file://" + (dir / "store").string();
  options.create_store = true;
  // Small limits, so the limit cases stay small files.
  options.limits.max_upload_bytes = 1 << 20;
  options.limits.max_model_json_bytes = 64 << 10;
  App app(options);

  std::set<std::string> listed;
  for (const auto& c : cases.GetArray()) {
    const std::string name = c["name"].GetString();
    CAPTURE(name);
    CHECK(listed.insert(name).second);
    const std::string body = read_required_file(kCorpus / (name + ".body"));
    Request request;
    request.method = "POST";
    request.target =
        c.HasMember("target") ? c["target"].GetString() : std::string("/models/") + kName;
    request.headers = {{"content-type", c.HasMember("content_type")
                                            ? c["content_type"].GetString()
                                            : "multipart/form-data; boundary=X"}};
    request.has_body = true;
    request.content_length =
        c.HasMember("content_length") ? c["content_length"].GetUint64() : body.size();
    for (size_t step : {body.size(), size_t{7}}) {
      CAPTURE(step);
      const Reply reply = post(app, request, body, step == 0 ? 1 : step);
      std::string message;
      for (const Buffer& b : reply.body) message.append(b.view());
      CAPTURE(message);
      CHECK(reply.status == c["status"].GetInt());
      CHECK(message.find(std::string("\"code\":\"") + c["code"].GetString() + "\"") !=
            std::string::npos);
      REQUIRE(c["contains"].Size() > 0);
      for (const auto& part : c["contains"].GetArray()) {
        CHECK_MESSAGE(message.find(part.GetString()) != std::string::npos,
                      "missing \"" << part.GetString() << "\"");
      }
      CHECK_FALSE(fs::exists(dir / "store" / kName / "model.json"));
    }
  }

  std::set<std::string> files;
  for (const auto& entry : fs::directory_iterator(kCorpus)) {
    if (entry.path().extension() == ".body") files.insert(entry.path().stem().string());
  }
  CHECK(files == listed);
}

}  // namespace stowage::serve
