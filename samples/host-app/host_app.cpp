//---------------------------------------------------------------------------
// stowage-host-app: a host application that takes its plugins from a JSON
// config (the core's format, docs/config.md), saves a model to each URL it
// is given, loads it back, and says which plugin served every call.
//
//   stowage-host-app --config app.json [--model URL] URL...
//
//   --config  plugin folders, allow-list, aliases, per-scheme default
//             options and SHA-256 pins. Plugins in the default folders
//             (beside the stowage library) are found too, under the same
//             allow-list; STOWAGE_CONFIG and STOWAGE_PLUGIN_PATH apply as
//             in every host.
//   --model   where to load the model to copy; without it, a small
//             two-tensor layers model made here.
//   URL...    where to save it, e.g. models://demo/mnist with an alias
//             "models" -> "file:///srv/models" or "s3://bucket/prefix".
//
// Exit status: 0 when every model saved loads back byte for byte; 1 with a
// message naming the URL, the file or the config key otherwise.
//---------------------------------------------------------------------------
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "stowage/config.hpp"
#include "stowage/error.hpp"
#include "stowage/management.hpp"
#include "stowage/registry.hpp"

namespace {

// A layers model with a float32 [2, 3] kernel and a float32 [3] bias.
stowage::ModelArtifacts built_in_model() {
  stowage::ModelArtifacts m;
  m.model_topology =
      R"({"class_name":"Sequential","config":{"name":"host_app","layers":[{"class_name":"Dense",)"
      R"("config":{"units":3,"name":"dense","batch_input_shape":[null,2]}}]},)"
      R"("keras_version":"tfjs-layers 4.22.0","backend":"tensor_flow.js"})";
  m.format = "layers-model";
  m.generated_by = "TensorFlow.js tfjs-layers v4.22.0";
  m.converted_by = stowage::NullableString::null();
  m.weight_specs = std::vector<stowage::WeightSpec>{{"dense/kernel", {2, 3}, "float32", {}, {}},
                                                    {"dense/bias", {3}, "float32", {}, {}}};
  const float values[] = {0.5f, -1.0f, 2.0f, 0.25f, 3.5f, -0.75f, 0.1f, 0.2f, 0.3f};
  m.weight_data = stowage::WeightData{stowage::Buffer::copy_of(
      {reinterpret_cast<const uint8_t*>(values), sizeof values}, "built-in")};
  return m;
}

std::string bytes_of(const stowage::ModelArtifacts& m) {
  std::string out;
  for (const stowage::Buffer& b : m.weight_data.value_or(stowage::WeightData{})) out += b.view();
  return out;
}

// "-> <resolved URL> via plugin 'file' 0.1.0 (<manifest>)"
std::string served_by(const stowage::Registry& registry, const std::string& url) {
  stowage::Route route = registry.route(url);
  if (route.in_process) return "-> " + route.url + " via an in-process handler";
  const stowage::PluginInfo& p = route.plugin;
  const auto& file = p.manifest.empty() ? p.library : p.manifest;
  return "-> " + route.url + " via plugin '" + p.name + "' " + p.version + " (" + file.string() +
         ")";
}

int usage() {
  std::cerr << "usage: stowage-host-app --config app.json [--model URL] URL...\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_file, model_url;
  std::vector<std::string> urls;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if ((a == "--config" || a == "--model") && i + 1 < argc) {
      (a == "--config" ? config_file : model_url) = argv[++i];
    } else if (a.rfind("--", 0) == 0) {
      return usage();
    } else {
      urls.push_back(a);
    }
  }
  if (config_file.empty() || urls.empty()) return usage();

  try {
    stowage::Registry registry;
    registry.apply_config(stowage::load_config_file(config_file));
    registry.discover_defaults();
    std::cout << "config: " << config_file << "\n";

    stowage::ModelArtifacts model;
    if (model_url.empty()) {
      model = built_in_model();
      std::cout << "model: built in\n";
    } else {
      std::cout << "load  " << model_url << "\n      " << served_by(registry, model_url) << "\n";
      model = stowage::load_model(model_url, "{}", {}, registry);
    }
    const std::string saved = bytes_of(model);
    std::cout << "      " << saved.size() << " weight bytes\n";

    for (const std::string& url : urls) {
      std::cout << "save  " << url << "\n      " << served_by(registry, url) << "\n";
      stowage::save_model(url, model, "{}", {}, registry);
      std::cout << "load  " << url << "\n      " << served_by(registry, url) << "\n";
      stowage::ModelArtifacts loaded = stowage::load_model(url, "{}", {}, registry);
      if (bytes_of(loaded) != saved || loaded.model_topology != model.model_topology) {
        std::cerr << "error: the model loaded from " << url << " is not the model saved there\n";
        return 1;
      }
      std::cout << "      " << saved.size() << " weight bytes, identical to what was saved\n";
    }
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
