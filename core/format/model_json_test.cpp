// model.json reading and writing (spec §1.4, §1.7, §1.8, §4.8, §9).
#include "stowage/model_json.hpp"

#include <doctest/doctest.h>

#include <cmath>

#include "stowage/error.hpp"

using namespace stowage;

namespace {

// Spec §9: what TF.js 4.22 posts as model.json for a one-Dense model.
const std::string kGolden9 =
    R"json({"modelTopology":{"class_name":"Sequential","config":{"name":"sequential_1","layers":[{"class_name":"Dense","config":{"units":1,"activation":"linear","use_bias":true,"kernel_initializer":{"class_name":"Ones","config":{}},"bias_initializer":{"class_name":"Zeros","config":{}},"kernel_regularizer":null,"bias_regularizer":null,"activity_regularizer":null,"kernel_constraint":null,"bias_constraint":null,"name":"dense_Dense1","trainable":true,"batch_input_shape":[null,2],"dtype":"float32"}}]},"keras_version":"tfjs-layers 4.22.0","backend":"tensor_flow.js"},"format":"layers-model","generatedBy":"TensorFlow.js tfjs-layers v4.22.0","convertedBy":null,"weightsManifest":[{"paths":["./model.weights.bin"],"weights":[{"name":"dense_Dense1/kernel","shape":[2,1],"dtype":"float32"},{"name":"dense_Dense1/bias","shape":[1],"dtype":"float32"}]}],"userDefinedMetadata":{"labels":["a"]}})json";

// A layers model with an optimizer and metadata, written by TF.js 4.22
// (JSON.stringify in tfjs-node's key order, spec §4.8).
const std::string kTfjsNode =
    R"json({"modelTopology":{"class_name":"Sequential","config":{"name":"sequential_1","layers":[{"class_name":"Dense","config":{"units":3,"activation":"relu","use_bias":true,"kernel_initializer":{"class_name":"Ones","config":{}},"bias_initializer":{"class_name":"Zeros","config":{}},"kernel_regularizer":null,"bias_regularizer":null,"activity_regularizer":null,"kernel_constraint":null,"bias_constraint":null,"name":"dense_Dense1","trainable":true,"batch_input_shape":[null,2],"dtype":"float32"}},{"class_name":"Dropout","config":{"rate":0.25,"noise_shape":null,"seed":null,"name":"dropout_Dropout1","trainable":true}},{"class_name":"Dense","config":{"units":1,"activation":"linear","use_bias":true,"kernel_initializer":{"class_name":"Ones","config":{}},"bias_initializer":{"class_name":"Zeros","config":{}},"kernel_regularizer":{"class_name":"L1L2","config":{"l1":0,"l2":1e-7}},"bias_regularizer":null,"activity_regularizer":null,"kernel_constraint":null,"bias_constraint":null,"name":"dense_Dense2","trainable":true}}]},"keras_version":"tfjs-layers 4.22.0","backend":"tensor_flow.js"},"weightsManifest":[{"paths":["weights.bin"],"weights":[{"name":"dense_Dense1/kernel","shape":[2,3],"dtype":"float32"},{"name":"dense_Dense1/bias","shape":[3],"dtype":"float32"},{"name":"dense_Dense2/kernel","shape":[3,1],"dtype":"float32"},{"name":"dense_Dense2/bias","shape":[1],"dtype":"float32"},{"name":"iter","shape":[],"dtype":"int32","group":"optimizer"}]}],"format":"layers-model","generatedBy":"TensorFlow.js tfjs-layers v4.22.0","convertedBy":null,"trainingConfig":{"loss":"mean_squared_error","metrics":["accuracy"],"optimizer_config":{"class_name":"Adam","config":{"learningRate":0.01,"beta1":0.9,"beta2":0.999,"epsilon":1e-7}}},"userDefinedMetadata":{"labels":["é","正","a b","x\"\\/\n\u0001"],"n":1e+21,"small":1.5e-7,"neg":0}})json";

// The Python converter's json.dump formatting (spec §1.8, §1.9).
const std::string kConverter =
    R"json({"format": "graph-model", "generatedBy": "2.11.0-dev20220822", )json"
    R"json("convertedBy": "TensorFlow.js Converter v1.7.0", "signature": {"inputs": )json"
    R"json({"x:0": {"name": "x:0", "dtype": "DT_FLOAT", "tensorShape": {"dim": [{"size": "-1"}]}}}}, )json"
    R"json("modelTopology": {"node": [{"name": "c", "op": "Const", "attr": {"v": {"f": 1.0}, )json"
    R"json("eps": {"f": 1e-07}, "nan": {"f": NaN}, "s": {"s": "caf\u00e9 \u6b63"}}}], )json"
    R"json("versions": {"producer": 1286}}, "userDefinedMetadata": {"big": 1e+21}, )json"
    R"json("weightsManifest": [{"paths": ["group1-shard1of2.bin", "group1-shard2of2.bin"], )json"
    R"json("weights": [{"name": "w", "shape": [2, 3], "dtype": "float32", "quantization": )json"
    R"json({"dtype": "uint8", "min": -1.0, "scale": 0.00784313725490196, "original_dtype": "float32"}}, )json"
    R"json({"name": "h", "shape": [4], "dtype": "float32", "quantization": {"dtype": "float16", )json"
    R"json("original_dtype": "float32"}}, {"name": "t", "shape": [], "dtype": "string"}]}, )json"
    R"json({"paths": [], "weights": []}]})json";

WeightSpec spec(std::string name, std::vector<int64_t> shape, std::string dtype) {
  WeightSpec s;
  s.name = std::move(name);
  s.shape = std::move(shape);
  s.dtype = std::move(dtype);
  return s;
}

std::string error_of(std::string_view text, ErrorCode expected = ErrorCode::kInvalidArgument) {
  try {
    parse_model_json(text, "/models/m/model.json");
  } catch (const Error& e) {
    CHECK(e.code() == expected);
    const std::string m = e.what();
    CHECK(m.find("/models/m/model.json") != std::string::npos);
    return m;
  }
  FAIL("no error for " << text);
  return {};
}

std::string with_weights(const std::string& weights_json,
                         const std::string& paths = R"(["w.bin"])") {
  return R"({"modelTopology":{},"weightsManifest":[{"paths":)" + paths + R"(,"weights":)" +
         weights_json + "}]}";
}

}  // namespace

TEST_CASE("the golden model.json of spec §9") {
  const ModelArtifacts a = parse_model_json(kGolden9, "golden");
  REQUIRE(a.model_topology.has_value());
  CHECK(a.format == NullableString("layers-model"));
  CHECK(a.generated_by == NullableString("TensorFlow.js tfjs-layers v4.22.0"));
  CHECK(a.converted_by.is_null());
  CHECK(a.user_defined_metadata == R"({"labels":["a"]})");
  CHECK_FALSE(a.training_config.has_value());
  CHECK_FALSE(a.signature.has_value());
  REQUIRE(a.weights_manifest.has_value());
  REQUIRE(a.weights_manifest->size() == 1);
  CHECK((*a.weights_manifest)[0].paths == std::vector<std::string>{"./model.weights.bin"});
  REQUIRE(a.weight_specs.has_value());
  CHECK(*a.weight_specs == std::vector<WeightSpec>{spec("dense_Dense1/kernel", {2, 1}, "float32"),
                                                   spec("dense_Dense1/bias", {1}, "float32")});
  CHECK_FALSE(a.weight_data.has_value());

  CHECK(write_model_json(a, *a.weights_manifest, ModelJsonLayout::kTfjsHttp) == kGolden9);

  SUBCASE("built from parts, as a save handler would") {
    ModelArtifacts b;
    b.model_topology = a.model_topology;
    b.format = "layers-model";
    b.generated_by = "TensorFlow.js tfjs-layers v4.22.0";
    b.converted_by = NullableString::null();
    b.user_defined_metadata = R"({"labels":["a"]})";
    b.weight_specs = a.weight_specs;
    const WeightsManifest m = {{{"./model.weights.bin"}, *b.weight_specs}};
    CHECK(write_model_json(b, m, ModelJsonLayout::kTfjsHttp) == kGolden9);
  }
  SUBCASE("info of the same model without metadata: 538, 123, 12") {
    ModelArtifacts b = a;
    b.user_defined_metadata.reset();
    b.weights_manifest.reset();
    b.weight_data =
        WeightData{Buffer::from_vector({0, 0, 0x80, 0x3f, 0, 0, 0x80, 0x3f, 0, 0, 0, 0})};
    const ModelArtifactsInfo info = artifacts_info(b);
    CHECK(info.model_topology_bytes == 538);
    CHECK(info.weight_specs_bytes == 123);
    CHECK(info.weight_data_bytes == 12);
  }
}

TEST_CASE("a model.json written by TF.js in tfjs-node's layout is rewritten byte for byte") {
  const ModelArtifacts a = parse_model_json(kTfjsNode, "node");
  REQUIRE(a.weights_manifest.has_value());
  CHECK(write_model_json(a, *a.weights_manifest, ModelJsonLayout::kTfjsNode) == kTfjsNode);
  CHECK(a.training_config.has_value());
  CHECK(a.weight_specs->back().group == "optimizer");
  // The counts TF.js computed for these artifacts.
  const ModelArtifactsInfo info = artifacts_info(a);
  CHECK(info.model_topology_bytes == 1059);
  CHECK(info.weight_specs_bytes == 308);
  // The same artifacts in the http layout: a different key order only.
  const std::string http = write_model_json(a, *a.weights_manifest, ModelJsonLayout::kTfjsHttp);
  CHECK(http.size() == kTfjsNode.size());
  CHECK(http.find(R"("convertedBy":null,"weightsManifest":)") != std::string::npos);
  CHECK(parse_model_json(http, "http").weight_specs == a.weight_specs);
}

TEST_CASE("tfjs-node layout: weights.bin, and fields in tfjs-node's order") {
  ModelArtifacts a;
  a.model_topology = R"({"a":1})";
  a.format = "graph-model";
  a.generated_by = "g";
  a.signature = R"({"s":1})";
  a.user_defined_metadata = R"({"u":1})";
  a.training_config = R"({"loss":"x"})";
  a.model_initializer = R"({"i":1})";
  a.initializer_signature = R"({"j":1})";
  a.weight_specs = std::vector<WeightSpec>{spec("w", {2}, "float32")};
  const WeightsManifest m = {{{"weights.bin"}, *a.weight_specs}};
  CHECK(
      write_model_json(a, m, ModelJsonLayout::kTfjsNode) ==
      R"({"modelTopology":{"a":1},"weightsManifest":[{"paths":["weights.bin"],"weights":)"
      R"([{"name":"w","shape":[2],"dtype":"float32"}]}],"format":"graph-model",)"
      R"("generatedBy":"g","trainingConfig":{"loss":"x"},"signature":{"s":1},)"
      R"("userDefinedMetadata":{"u":1},"modelInitializer":{"i":1},"initializerSignature":{"j":1}})");
  CHECK(write_model_json(a, m, ModelJsonLayout::kTfjsHttp) ==
        R"({"modelTopology":{"a":1},"format":"graph-model","generatedBy":"g","weightsManifest":)"
        R"([{"paths":["weights.bin"],"weights":[{"name":"w","shape":[2],"dtype":"float32"}]}],)"
        R"("signature":{"s":1},"userDefinedMetadata":{"u":1},"modelInitializer":{"i":1},)"
        R"("initializerSignature":{"j":1},"trainingConfig":{"loss":"x"}})");
  // Nothing but a manifest.
  CHECK(write_model_json(ModelArtifacts{}, {}, ModelJsonLayout::kTfjsNode) ==
        R"({"weightsManifest":[]})");
}

TEST_CASE("the Python converter's model.json") {
  const ModelArtifacts a = parse_model_json(kConverter, "converter");
  CHECK(a.format == NullableString("graph-model"));
  CHECK(a.converted_by == NullableString("TensorFlow.js Converter v1.7.0"));
  CHECK(*a.model_topology ==
        R"({"node":[{"name":"c","op":"Const","attr":{"v":{"f":1},"eps":{"f":1e-7},)"
        R"("nan":{"f":null},"s":{"s":"café 正"}}}],"versions":{"producer":1286}})");
  CHECK(
      *a.signature ==
      R"({"inputs":{"x:0":{"name":"x:0","dtype":"DT_FLOAT","tensorShape":{"dim":[{"size":"-1"}]}}}})");
  CHECK(*a.user_defined_metadata == R"({"big":1e+21})");
  REQUIRE(a.weights_manifest->size() == 2);
  CHECK((*a.weights_manifest)[1].paths.empty());
  REQUIRE(a.weight_specs->size() == 3);
  const WeightSpec& w = (*a.weight_specs)[0];
  CHECK(w.shape == std::vector<int64_t>{2, 3});
  REQUIRE(w.quantization.has_value());
  CHECK(w.quantization->dtype == "uint8");
  CHECK(w.quantization->min == -1.0);
  CHECK(w.quantization->scale == 0.00784313725490196);
  CHECK(w.quantization->original_dtype == "float32");
  CHECK((*a.weight_specs)[1].quantization->dtype == "float16");
  CHECK_FALSE((*a.weight_specs)[1].quantization->scale.has_value());
  // Written back in TF.js form; quantization keys in the converter's order.
  CHECK(manifest_to_json(*a.weights_manifest) ==
        R"([{"paths":["group1-shard1of2.bin","group1-shard2of2.bin"],"weights":[{"name":"w",)"
        R"("shape":[2,3],"dtype":"float32","quantization":{"dtype":"uint8","min":-1,)"
        R"("scale":0.00784313725490196,"original_dtype":"float32"}},{"name":"h","shape":[4],)"
        R"("dtype":"float32","quantization":{"dtype":"float16","original_dtype":"float32"}},)"
        R"({"name":"t","shape":[],"dtype":"string"}]},{"paths":[],"weights":[]}])");
}

TEST_CASE("artifacts JSON of the plugin ABI round-trips") {
  ModelArtifacts a = parse_model_json(kTfjsNode, "node");
  const std::string full = artifacts_to_json(a);
  CHECK(full.find(R"("convertedBy":null,"trainingConfig":)") != std::string::npos);
  CHECK(full.find(R"("weightSpecs":[)") < full.find(R"("weightsManifest":[)"));
  const ModelArtifacts b = parse_model_json(full, "abi");
  CHECK(b.model_topology == a.model_topology);
  CHECK(b.training_config == a.training_config);
  CHECK(b.user_defined_metadata == a.user_defined_metadata);
  CHECK(b.weight_specs == a.weight_specs);
  CHECK(b.weights_manifest == a.weights_manifest);
  CHECK(artifacts_to_json(b) == full);

  a.weights_manifest.reset();
  const std::string flat = artifacts_to_json(a);
  CHECK(flat.find("weightsManifest") == std::string::npos);
  const ModelArtifacts c = parse_model_json(flat, "abi");
  CHECK_FALSE(c.weights_manifest.has_value());
  CHECK(c.weight_specs == a.weight_specs);

  ModelArtifacts every;
  every.model_topology = "{}";
  every.format = "f";
  every.generated_by = NullableString::null();
  every.training_config = R"({"t":1})";
  every.user_defined_metadata = R"({"u":1})";
  every.signature = R"({"s":1})";
  every.model_initializer = R"({"m":1})";
  every.initializer_signature = R"({"i":1})";
  every.weight_specs = std::vector<WeightSpec>{};
  CHECK(artifacts_to_json(every) ==
        R"({"modelTopology":{},"format":"f","generatedBy":null,"trainingConfig":{"t":1},)"
        R"("userDefinedMetadata":{"u":1},"signature":{"s":1},"modelInitializer":{"m":1},)"
        R"("initializerSignature":{"i":1},"weightSpecs":[]})");
  CHECK(artifacts_to_json(ModelArtifacts{}) == "{}");

  // weightSpecs that disagree with the manifest are refused.
  CHECK(error_of(R"({"weightsManifest":[{"paths":["a"],"weights":[]}],)"
                 R"("weightSpecs":[{"name":"w","shape":[],"dtype":"int32"}]})")
            .find("weightSpecs") != std::string::npos);
}

TEST_CASE("optional and nullable fields") {
  ModelArtifacts a = parse_model_json("{}", "empty");
  CHECK_FALSE(a.model_topology.has_value());
  CHECK_FALSE(a.format.present());
  CHECK_FALSE(a.weight_specs.has_value());
  CHECK_FALSE(a.weights_manifest.has_value());

  a = parse_model_json(
      R"({"modelTopology":null,"format":null,"generatedBy":"g","trainingConfig":null,)"
      R"("signature":null,"userDefinedMetadata":null,"modelInitializer":null,)"
      R"("initializerSignature":null,"weightsManifest":null,"unknownKey":[1,2]})",
      "nulls");
  CHECK_FALSE(a.model_topology.has_value());
  CHECK(a.format.is_null());
  CHECK(a.generated_by.value() == "g");
  CHECK_FALSE(a.converted_by.present());
  CHECK_FALSE(a.training_config.has_value());
  CHECK_FALSE(a.weights_manifest.has_value());

  // JSON fields come out in JSON.stringify form; a repeated key keeps the last value.
  a = parse_model_json(
      "{ \"modelTopology\" : { \"b\" : [ 1.50 , 2E2 ] , \"a\" : \"\\u00e9\" },"
      " \"format\": \"x\", \"format\": \"y\" }",
      "spaced");
  CHECK(*a.model_topology == R"({"b":[1.5,200],"a":"é"})");
  CHECK(a.format.value() == "y");

  CHECK(error_of(R"({"format":1})").find("format must be a string, not a number") !=
        std::string::npos);
  CHECK(error_of(R"({"convertedBy":{}})").find("convertedBy must be a string") !=
        std::string::npos);
  CHECK(error_of(R"({"signature":[]})").find("signature must be a JSON object, not an array") !=
        std::string::npos);
  CHECK(error_of(R"({"trainingConfig":"adam"})").find("trainingConfig") != std::string::npos);
  CHECK(error_of("null").find("must be a JSON object, not null") != std::string::npos);
}

TEST_CASE("weight entries: strict types with key paths") {
  const ModelArtifacts ok = parse_model_json(
      with_weights(R"([{"name":"a","shape":[2.0,0],"dtype":"float32","group":"model","extra":1},)"
                   R"({"dtype":"bool","shape":[],"name":"b","group":null}])"),
      "ok");
  CHECK((*ok.weight_specs)[0].shape == std::vector<int64_t>{2, 0});
  CHECK((*ok.weight_specs)[0].group == "model");
  CHECK_FALSE((*ok.weight_specs)[1].group.has_value());

  // Unknown dtypes are kept; decoding refuses them later.
  CHECK((*parse_model_json(with_weights(R"([{"name":"a","shape":[1],"dtype":"uint8"}])"), "u")
              .weight_specs)[0]
            .dtype == "uint8");

  struct Case {
    const char* weights;
    const char* message;
  };
  for (
      const Case& c : std::initializer_list<Case>{
          {R"({})", "weightsManifest[0].weights must be an array, not an object"},
          {R"([[]])", "weightsManifest[0].weights[0] must be an object, not an array"},
          {R"([{"shape":[],"dtype":"float32"}])", "weightsManifest[0].weights[0].name is missing"},
          {R"([{"name":7,"shape":[],"dtype":"float32"}])",
           "weightsManifest[0].weights[0].name must be a string, not a number"},
          {R"([{"name":"a","dtype":"float32"}])", "weightsManifest[0].weights[0].shape is missing"},
          {R"([{"name":"a","shape":3,"dtype":"float32"}])",
           "weightsManifest[0].weights[0].shape must be an array"},
          {R"([{"name":"a","shape":[1],"dtype":"float32"},{"name":"b","shape":[1,2,-3],"dtype":"float32"}])",
           "weightsManifest[0].weights[1].shape[2] must not be negative, but is -3"},
          {R"([{"name":"a","shape":[0.5],"dtype":"float32"}])",
           "weightsManifest[0].weights[0].shape[0] must be a whole number, not 0.5"},
          {R"([{"name":"a","shape":["2"],"dtype":"float32"}])",
           "weightsManifest[0].weights[0].shape[0] must be a number, not a string"},
          {R"([{"name":"a","shape":[1e19],"dtype":"float32"}])",
           "weightsManifest[0].weights[0].shape[0] is too large"},
          {R"([{"name":"a","shape":[NaN],"dtype":"float32"}])", "must be a whole number"},
          {R"([{"name":"a","shape":[],"dtype":null}])",
           "weightsManifest[0].weights[0].dtype must be a string, not null"},
          {R"([{"name":"a","shape":[],"dtype":"float32","group":1}])",
           "weightsManifest[0].weights[0].group must be a string"},
          {R"([{"name":"a","shape":[],"dtype":"float32","quantization":null}])",
           "weightsManifest[0].weights[0].quantization is null"},
          {R"([{"name":"a","shape":[],"dtype":"float32","quantization":"uint8"}])",
           "weightsManifest[0].weights[0].quantization must be an object"},
          {R"([{"name":"a","shape":[],"dtype":"float32","quantization":{"scale":1}}])",
           "weightsManifest[0].weights[0].quantization.dtype is missing"},
          {R"([{"name":"a","shape":[],"dtype":"float32","quantization":{"dtype":"uint8","scale":"1"}}])",
           "weightsManifest[0].weights[0].quantization.scale must be a number"},
      }) {
    CAPTURE(c.weights);
    const std::string m = error_of(with_weights(c.weights));
    CHECK_MESSAGE(m.find(c.message) != std::string::npos, m);
  }
  CHECK(error_of(R"({"weightsManifest":[{"weights":[]}]})")
            .find("weightsManifest[0].paths is missing") != std::string::npos);
  CHECK(error_of(R"({"weightsManifest":[{"paths":"a.bin","weights":[]}]})")
            .find("weightsManifest[0].paths must be an array of strings") != std::string::npos);
  CHECK(error_of(R"({"weightsManifest":[{"paths":[],"weights":[]},3]})")
            .find("weightsManifest[1] must be an object, not a number") != std::string::npos);
  CHECK(error_of(R"({"weightSpecs":{}})").find("weightSpecs must be an array") !=
        std::string::npos);
}

TEST_CASE("weight paths are untrusted") {
  for (const char* good : {"group1-shard1of1.bin", "./model.weights.bin", "sub/dir/w.bin",
                           "a..b.bin", "..x/w.bin", "./a/./b.bin", "w.bin?v=1", "caf\u00e9.bin"}) {
    CAPTURE(good);
    const ModelArtifacts a =
        parse_model_json(with_weights("[]", std::string("[") + json::quote(good) + "]"), "ok");
    CHECK((*a.weights_manifest)[0].paths[0] == good);
  }
  struct Case {
    std::string path;
    const char* why;
  };
  for (const Case& c : std::initializer_list<Case>{{"", "is empty"},
                                                   {"/etc/passwd", "is absolute"},
                                                   {"../x.bin", "'..' segment"},
                                                   {"a/../../b", "'..' segment"},
                                                   {"a/..", "'..' segment"},
                                                   {"./../x", "'..' segment"},
                                                   {"%2E%2e/x", "'..' segment"},
                                                   {"a\\b.bin", "backslash"},
                                                   {std::string("a\0b", 3), "NUL"},
                                                   {"https://evil.example/w.bin", "URL"},
                                                   {"file:///etc/passwd", "URL"}}) {
    CAPTURE(c.path);
    const std::string m = error_of(with_weights("[]", "[\"ok.bin\"," + json::quote(c.path) + "]"));
    CHECK(m.find(json::quote(c.path)) != std::string::npos);
    CHECK(m.find("weightsManifest[0].paths[1]") != std::string::npos);
    CHECK(m.find(c.why) != std::string::npos);
  }
}

TEST_CASE("specs_to_json is JSON.stringify of the flat list") {
  WeightSpec q = spec("q", {3}, "int32");
  q.group = "optimizer";
  q.quantization = Quantization{"uint16", 0.5, -1.25, std::nullopt};
  CHECK(specs_to_json({spec("w", {2}, "float32"), q, spec("s", {}, "string")}) ==
        R"([{"name":"w","shape":[2],"dtype":"float32"},{"name":"q","shape":[3],"dtype":"int32",)"
        R"("group":"optimizer","quantization":{"dtype":"uint16","min":-1.25,"scale":0.5}},)"
        R"({"name":"s","shape":[],"dtype":"string"}])");
  CHECK(specs_to_json({}) == "[]");
  CHECK(specs_to_json({spec("a\"\n", {}, "float32")}) ==
        R"([{"name":"a\"\n","shape":[],"dtype":"float32"}])");
}

TEST_CASE("a NaN quantization parameter survives JSON.stringify's null") {
  const std::string converter =
      R"({"weightsManifest": [{"paths": ["a.bin"], "weights": [{"name": "w", "shape": [1], )"
      R"("dtype": "float32", "quantization": {"dtype": "uint8", "min": NaN, "scale": 1.0}}]}]})";
  const ModelArtifacts a = parse_model_json(converter, "converter");
  REQUIRE((*a.weight_specs)[0].quantization->min.has_value());
  CHECK(std::isnan(*(*a.weight_specs)[0].quantization->min));
  const std::string saved = artifacts_to_json(a);
  CHECK(saved.find(R"("min":null)") != std::string::npos);
  const ModelArtifacts b = parse_model_json(saved, "abi");
  CHECK(std::isnan(*(*b.weight_specs)[0].quantization->min));
  CHECK(artifacts_to_json(b) == saved);
}
