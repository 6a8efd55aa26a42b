#include <doctest/doctest.h>

#include <cstring>

#include "stowage/digest.hpp"
#include "stowage/error.hpp"
#include "upload_internal.hpp"

namespace stowage::serve {
namespace {

const std::string kJson =
    R"({"modelTopology":{"class_name":"Sequential"},"format":"layers-model",)"
    R"("generatedBy":"TensorFlow.js tfjs-layers v4.22.0","convertedBy":null,)"
    R"("weightsManifest":[{"paths":["./model.weights.bin"],"weights":[)"
    R"({"name":"k","shape":[2,1],"dtype":"float32"},{"name":"b","shape":[1],"dtype":"float32"}]}]})";

const std::string kWeights("\x00\x00\x80\x3f\x00\x00\x80\x3f\x00\x00\x00\x00", 12);

struct Part {
  std::string name;
  std::string data;
};

std::string body_of(const std::vector<Part>& parts) {
  std::string body;
  for (const Part& p : parts) {
    body += "--X\r\nContent-Disposition: form-data; name=\"" + p.name + "\"; filename=\"" + p.name +
            "\"\r\n\r\n" + p.data + "\r\n";
  }
  return body + "--X--\r\n";
}

// Runs a body through the parser into a collector, in pieces of `step`.
ModelArtifacts collect(const std::vector<Part>& parts, size_t step = 0, uint64_t hint = 0,
                       uint64_t max_json = 1 << 20) {
  UploadCollector collector("upload of model 'm'", max_json, hint);
  MultipartParser parser("X", collector);
  const std::string body = body_of(parts);
  if (step == 0) step = body.size();
  for (size_t i = 0; i < body.size(); i += step)
    parser.feed(std::string_view(body).substr(i, step));
  parser.finish();
  return collector.take_artifacts();
}

ErrorCode failure(const std::vector<Part>& parts, std::string* message = nullptr,
                  uint64_t max_json = 1 << 20) {
  try {
    collect(parts, 0, 0, max_json);
  } catch (const Error& e) {
    if (message) *message = e.what();
    return e.code();
  }
  return ErrorCode::kOk;
}

}  // namespace

TEST_CASE("upload: TF.js's parts become artifacts with the exact weight bytes") {
  for (size_t step : {0, 1, 5, 64}) {
    for (uint64_t hint : {0, 4, 1000}) {
      CAPTURE(step);
      CAPTURE(hint);
      const ModelArtifacts a =
          collect({{"model.json", kJson}, {"model.weights.bin", kWeights}}, step, hint);
      REQUIRE(a.model_topology);
      CHECK(*a.model_topology == R"({"class_name":"Sequential"})");
      CHECK(a.format.value() == "layers-model");
      CHECK(a.converted_by.is_null());
      CHECK_FALSE(a.weights_manifest.has_value());  // the store picks its own layout
      REQUIRE(a.weight_specs);
      CHECK(a.weight_specs->size() == 2);
      REQUIRE(a.weight_data);
      CHECK(join(*a.weight_data).view() == kWeights);
    }
  }
  // The part order does not matter.
  const ModelArtifacts a = collect({{"model.weights.bin", kWeights}, {"model.json", kJson}});
  CHECK(join(*a.weight_data).view() == kWeights);
}

TEST_CASE("upload: a large weights part lands in one block when the size is known") {
  std::string big(3 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7);
  const std::string json =
      R"({"modelTopology":{},"weightsManifest":[{"paths":["./model.weights.bin"],"weights":[)"
      R"({"name":"w","shape":[786432],"dtype":"float32"}]}]})";
  const ModelArtifacts hinted =
      collect({{"model.json", json}, {"model.weights.bin", big}}, 65536, big.size() + 1000);
  CHECK(hinted.weight_data->size() == 1);
  CHECK(join(*hinted.weight_data).view() == big);
  const ModelArtifacts unhinted =
      collect({{"model.json", json}, {"model.weights.bin", big}}, 65536);
  CHECK(unhinted.weight_data->size() > 1);
  CHECK(join(*unhinted.weight_data).view() == big);
}

TEST_CASE("upload: several weight files named by the manifest are joined in its order") {
  const std::string json =
      R"({"modelTopology":{},"weightsManifest":[{"paths":["group1-shard1of2.bin","group1-shard2of2.bin"],)"
      R"("weights":[{"name":"w","shape":[3],"dtype":"float32"}]}]})";
  const ModelArtifacts a = collect({{"group1-shard2of2.bin", std::string(4, 'b')},
                                    {"model.json", json},
                                    {"group1-shard1of2.bin", std::string(8, 'a')}});
  CHECK(join(*a.weight_data).view() == "aaaaaaaabbbb");
}

TEST_CASE("upload: topology only, as TF.js sends a model without weights") {
  const std::string json =
      R"({"modelTopology":{"a":1},"weightsManifest":[{"paths":["./model.weights.bin"],"weights":[]}]})";
  const ModelArtifacts a = collect({{"model.json", json}});
  CHECK(a.model_topology.value() == R"({"a":1})");
  CHECK(total_size(a.weight_data.value_or(WeightData{})) == 0);
}

TEST_CASE("upload: missing, extra, duplicate and wrong-sized parts are refused") {
  std::string message;
  CHECK(failure({{"model.weights.bin", kWeights}}, &message) == ErrorCode::kInvalidArgument);
  CHECK(message.find("no part named model.json") != std::string::npos);
  CHECK(message.find("upload of model 'm'") != std::string::npos);

  CHECK(failure({{"model.json", kJson}}, &message) == ErrorCode::kInvalidArgument);
  CHECK(message.find("model.weights.bin") != std::string::npos);

  CHECK(failure({{"model.json", kJson}, {"model.weights.bin", kWeights}, {"extra", "x"}},
                &message) == ErrorCode::kInvalidArgument);
  CHECK(message.find("'extra'") != std::string::npos);

  CHECK(failure({{"model.json", kJson}, {"model.json", kJson}}) == ErrorCode::kInvalidArgument);
  CHECK(failure({{"model.json", kJson},
                 {"model.weights.bin", kWeights},
                 {"model.weights.bin", kWeights}}) == ErrorCode::kInvalidArgument);
  CHECK(failure({{"", "x"}, {"model.json", kJson}}) == ErrorCode::kInvalidArgument);

  // Four bytes short: the specs need 12.
  CHECK(failure({{"model.json", kJson}, {"model.weights.bin", kWeights.substr(0, 8)}}, &message) ==
        ErrorCode::kDataLoss);
  CHECK(message.find("12") != std::string::npos);

  CHECK(failure({{"model.json", "{not json"}, {"model.weights.bin", kWeights}}) ==
        ErrorCode::kInvalidArgument);
  CHECK(failure({{"model.json", "{}"}}) == ErrorCode::kInvalidArgument);
  // A manifest path that climbs out of the folder.
  const std::string climbing =
      R"({"modelTopology":{},"weightsManifest":[{"paths":["../x.bin"],"weights":[]}]})";
  CHECK(failure({{"model.json", climbing}}) == ErrorCode::kInvalidArgument);

  CHECK(failure({{"model.json", kJson}, {"model.weights.bin", kWeights}}, &message, 16) ==
        ErrorCode::kResourceExhausted);
}

TEST_CASE("upload: weight parts are checked against the digests model.json records") {
  const std::string hex = sha256_hex(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(kWeights.data()), kWeights.size()));
  auto with_digest = [](const std::string& digest) {
    std::string json = kJson;
    const std::string end = R"("dtype":"float32"}]}])";
    json.replace(json.find(end), end.size(),
                 R"("dtype":"float32"}],"sha256":[")" + digest + R"("]}])");
    return json;
  };
  // Received in small pieces: the hash follows the bytes as they arrive.
  const ModelArtifacts a =
      collect({{"model.json", with_digest(hex)}, {"model.weights.bin", kWeights}}, 7);
  CHECK(join(*a.weight_data).view() == kWeights);

  std::string flipped = kWeights;
  flipped[0] = '\x01';
  std::string message;
  CHECK(failure({{"model.json", with_digest(hex)}, {"model.weights.bin", flipped}}, &message) ==
        ErrorCode::kDataLoss);
  CHECK(message ==
        "upload of model 'm': the weights file 'model.weights.bin' (12 bytes) does not "
        "match its digest in model.json: expected sha-256 (hex) " +
            hex + ", got " +
            sha256_hex(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(flipped.data()),
                                                flipped.size())));
}

TEST_CASE("upload: manifest paths as file names") {
  CHECK(manifest_file_name("./model.weights.bin") == "model.weights.bin");
  CHECK(manifest_file_name("weights.bin") == "weights.bin");
  CHECK(manifest_file_name("././a.bin") == "a.bin");
}

}  // namespace stowage::serve
