// `stowage info URL [--stats]`: what a model is made of.
#include <rapidjson/document.h>

#include <cmath>
#include <cstdio>
#include <iostream>

#include "commands_internal.hpp"
#include "stowage/management.hpp"
#include "stowage/registry.hpp"

namespace stowage::cli {
namespace {

struct InfoArgs {
  std::string url;
  UrlOptions options;
  bool stats = false;
  bool no_verify_digests = false;
};

std::string field_text(const NullableString& s) {
  if (s.has_value()) return s.value();
  return s.is_null() ? "null" : "-";
}

void field_json(JsonWriter& w, const NullableString& s) {
  s.has_value() ? w.string(s.value()) : w.null();
}

void raw_or_null(JsonWriter& w, const std::optional<std::string>& json_text) {
  json_text ? w.raw(*json_text) : w.null();
}

std::string count_text(size_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

size_t array_size(const rapidjson::Value& object, const char* key) {
  if (!object.IsObject()) return 0;
  auto m = object.FindMember(key);
  return m != object.MemberEnd() && m->value.IsArray() ? m->value.Size() : 0;
}

// "Sequential, 3 layers", "Model (functional), 6 layers, 2 inputs, 1
// output", "graph, 12 nodes": enough to recognise a model without printing
// its topology. Keras topologies come as TF.js writes them ({class_name,
// config}) or as the Python converter does ({model_config: {...},
// keras_version, backend}); graph models have "node".
std::string topology_summary(const std::optional<std::string>& topology) {
  if (!topology) return "none (a weights-only model)";
  rapidjson::Document doc;
  doc.Parse(topology->data(), topology->size());
  if (doc.HasParseError() || !doc.IsObject()) return "JSON (not a layers or graph topology)";
  if (auto node = doc.FindMember("node"); node != doc.MemberEnd() && node->value.IsArray()) {
    std::string text = "graph, " + count_text(node->value.Size(), "node", "nodes");
    if (auto library = doc.FindMember("library"); library != doc.MemberEnd()) {
      if (const size_t functions = array_size(library->value, "function"); functions > 0) {
        text += ", " + count_text(functions, "function", "functions");
      }
    }
    return text;
  }
  const rapidjson::Value* model = &doc;
  if (auto wrapped = doc.FindMember("model_config");
      wrapped != doc.MemberEnd() && wrapped->value.IsObject()) {
    model = &wrapped->value;
  }
  auto class_name = model->FindMember("class_name");
  if (class_name == model->MemberEnd() || !class_name->value.IsString()) {
    return "JSON (not a layers or graph topology)";
  }
  std::string text = class_name->value.GetString();
  auto config = model->FindMember("config");
  if (config == model->MemberEnd()) return text;
  if (config->value.IsArray()) {
    // Sequential as written by old Keras: the config is the layer list.
    return text + ", " + count_text(config->value.Size(), "layer", "layers");
  }
  if (!config->value.IsObject()) return text;
  const rapidjson::Value& c = config->value;
  const bool functional = c.HasMember("input_layers") || c.HasMember("output_layers");
  if (functional && text != "Functional") text += " (functional)";
  if (c.HasMember("layers")) text += ", " + count_text(array_size(c, "layers"), "layer", "layers");
  if (functional) {
    text += ", " + count_text(array_size(c, "input_layers"), "input", "inputs") + ", " +
            count_text(array_size(c, "output_layers"), "output", "outputs");
  }
  return text;
}

std::string stat_text(double value, bool integral) {
  if (integral || std::isnan(value) || std::isinf(value)) return number_text(value);
  char text[32];
  std::snprintf(text, sizeof text, "%.7g", value);
  return text;
}

struct Report {
  std::string url;
  ModelArtifacts artifacts;
  ModelArtifactsInfo sizes;
  std::vector<WeightSpec> specs;
  std::vector<TensorExtent> extents;
  std::vector<TensorStats> stats;  // empty unless --stats
  uint64_t weight_bytes = 0;
  std::optional<std::string> version;  // set when the store's stat answered
};

// Each tensor's place from its spec alone, when every tensor has a fixed
// size; nullopt when a string tensor's size lies in its bytes.
std::optional<std::vector<TensorExtent>> spec_extents(const std::vector<WeightSpec>& specs) {
  std::vector<TensorExtent> extents;
  uint64_t offset = 0;
  for (const WeightSpec& spec : specs) {
    const std::optional<uint64_t> bytes = fixed_byte_size(spec);
    if (!bytes) return std::nullopt;
    extents.push_back({offset, *bytes});
    offset += *bytes;
  }
  return extents;
}

// What info shows, from a stat: no weight byte is read, so it also answers
// for a model whose weights are large, remote or damaged. false when the
// answer needs the bytes (a string tensor's size lies in them).
bool report_from_stat(IOHandler& handler, const CallContext& call, Report& r) {
  ModelStat stat = handler.stat(call);
  std::vector<WeightSpec> specs = stat.model.weight_specs.value_or(std::vector<WeightSpec>{});
  std::optional<std::vector<TensorExtent>> extents = spec_extents(specs);
  if (!extents) return false;
  r.artifacts = std::move(stat.model);
  r.sizes = stat.info;
  r.specs = std::move(specs);
  r.extents = std::move(*extents);
  r.weight_bytes = stat.info.weight_data_bytes.value_or(0);
  r.version = std::move(stat.version);
  return true;
}

// The shards of each manifest group with their sizes; weight_data holds one
// buffer per path in manifest order.
std::vector<std::vector<std::pair<std::string, std::optional<uint64_t>>>> group_shards(
    const ModelArtifacts& artifacts) {
  std::vector<std::vector<std::pair<std::string, std::optional<uint64_t>>>> groups;
  if (!artifacts.weights_manifest) return groups;
  const WeightData* data = artifacts.weight_data ? &*artifacts.weight_data : nullptr;
  size_t total_paths = 0;
  for (const WeightGroup& group : *artifacts.weights_manifest) total_paths += group.paths.size();
  const bool one_per_path = data && data->size() == total_paths;
  size_t index = 0;
  for (const WeightGroup& group : *artifacts.weights_manifest) {
    auto& shards = groups.emplace_back();
    for (const std::string& path : group.paths) {
      std::optional<uint64_t> bytes;
      if (one_per_path) bytes = (*data)[index].size();
      shards.emplace_back(path, bytes);
      ++index;
    }
  }
  return groups;
}

void print_human(const Report& r, bool with_stats) {
  const ModelArtifacts& a = r.artifacts;
  std::string out;
  auto line = [&out](std::string_view label, const std::string& value) {
    out += std::string(label) + ":" + std::string(label.size() < 20 ? 20 - label.size() : 1, ' ') +
           value + "\n";
  };
  line("model", r.url);
  if (r.version) line("version", *r.version);
  line("format", field_text(a.format));
  line("generatedBy", field_text(a.generated_by));
  line("convertedBy", field_text(a.converted_by));
  line("topology", topology_summary(a.model_topology));
  line("trainingConfig", a.training_config ? "present" : "-");
  line("signature", a.signature ? "present" : "-");
  if (a.user_defined_metadata) {
    std::string meta = *a.user_defined_metadata;
    if (meta.size() > 200) meta = meta.substr(0, 197) + "...";
    line("userDefinedMetadata", meta);
  }
  out += "sizes (ModelArtifactsInfo, as a save reports them):\n";
  out += "  modelTopologyType:   " + r.sizes.model_topology_type + "\n";
  out += "  modelTopologyBytes:  " + std::to_string(r.sizes.model_topology_bytes) + "\n";
  out += "  weightSpecsBytes:    " + std::to_string(r.sizes.weight_specs_bytes) + "\n";
  out += "  weightDataBytes:     " +
         (r.sizes.weight_data_bytes ? std::to_string(*r.sizes.weight_data_bytes) : "(absent)") +
         "\n";
  if (a.weights_manifest) {
    const auto shards = group_shards(a);
    out += "weights manifest: " + std::to_string(shards.size()) + " group" +
           (shards.size() == 1 ? "" : "s") + "\n";
    for (size_t g = 0; g < shards.size(); ++g) {
      const WeightGroup& group = (*a.weights_manifest)[g];
      out += "  group " + std::to_string(g + 1) + ": " + std::to_string(group.weights.size()) +
             " tensor" + (group.weights.size() == 1 ? "" : "s") + ", " +
             std::to_string(shards[g].size()) + " shard" + (shards[g].size() == 1 ? "" : "s") +
             "\n";
      for (const auto& [path, bytes] : shards[g]) {
        out += "    " + path + (bytes ? "  " + std::to_string(*bytes) + " bytes" : "") + "\n";
      }
    }
  } else if (a.weight_specs) {
    out += "weights manifest: not known (the store returned a flat list of specs)\n";
  } else {
    out += "weights manifest: none\n";
  }
  out += "weights: " + std::to_string(r.specs.size()) + " tensor" +
         (r.specs.size() == 1 ? "" : "s") + ", " + bytes_text(r.weight_bytes) + "\n";
  std::cout << out;
  if (r.specs.empty()) return;

  std::vector<std::string> header = {"NAME", "DTYPE", "SHAPE", "QUANTIZATION", "BYTES"};
  std::vector<size_t> numeric = {4};
  if (with_stats) {
    header.insert(header.end(), {"MIN", "MAX", "MEAN", "NAN"});
    numeric.insert(numeric.end(), {5, 6, 7, 8});
  }
  Table table(header, numeric);
  for (size_t i = 0; i < r.specs.size(); ++i) {
    const WeightSpec& spec = r.specs[i];
    std::vector<std::string> row = {spec.name, spec.dtype, shape_text(spec.shape),
                                    quantization_text(spec), std::to_string(r.extents[i].bytes)};
    if (with_stats) {
      const TensorStats& s = r.stats[i];
      if (!s.numeric) {
        row.insert(row.end(), {"n/a", "n/a", "n/a", "n/a"});
      } else {
        const bool integral = (spec.dtype == "int32" || spec.dtype == "bool") && !spec.quantization;
        row.insert(row.end(), {stat_text(s.min, integral), stat_text(s.max, integral),
                               stat_text(s.mean, false), std::to_string(s.nan_count)});
      }
    }
    table.add(std::move(row));
  }
  std::cout << "\n" << table.render();
}

void print_json(const Report& r, bool with_stats) {
  const ModelArtifacts& a = r.artifacts;
  JsonWriter w;
  w.begin_object();
  w.key("url").string(r.url);
  if (r.version) w.key("version").string(*r.version);
  w.key("format");
  field_json(w, a.format);
  w.key("generatedBy");
  field_json(w, a.generated_by);
  w.key("convertedBy");
  field_json(w, a.converted_by);
  w.key("topology").string(topology_summary(a.model_topology));
  w.key("trainingConfig");
  raw_or_null(w, a.training_config);
  w.key("userDefinedMetadata");
  raw_or_null(w, a.user_defined_metadata);
  w.key("signature");
  raw_or_null(w, a.signature);
  w.key("modelInitializer");
  raw_or_null(w, a.model_initializer);
  w.key("initializerSignature");
  raw_or_null(w, a.initializer_signature);

  // The SaveResult sizes a save of these artifacts reports (no dateSaved:
  // nothing is being saved).
  w.key("modelArtifactsInfo").begin_object();
  w.key("modelTopologyType").string(r.sizes.model_topology_type);
  w.key("modelTopologyBytes").uint(r.sizes.model_topology_bytes);
  w.key("weightSpecsBytes").uint(r.sizes.weight_specs_bytes);
  if (r.sizes.weight_data_bytes) w.key("weightDataBytes").uint(*r.sizes.weight_data_bytes);
  w.end_object();

  w.key("weightsManifest");
  if (a.weights_manifest) {
    const auto shards = group_shards(a);
    w.begin_array();
    for (size_t g = 0; g < shards.size(); ++g) {
      w.begin_object();
      w.key("paths").begin_array();
      for (const auto& shard : shards[g]) w.string(shard.first);
      w.end_array();
      w.key("shardBytes").begin_array();
      for (const auto& shard : shards[g]) shard.second ? w.uint(*shard.second) : w.null();
      w.end_array();
      w.key("tensors").uint((*a.weights_manifest)[g].weights.size());
      w.end_object();
    }
    w.end_array();
  } else {
    w.null();
  }

  w.key("tensorCount").uint(r.specs.size());
  w.key("weightBytes").uint(r.weight_bytes);
  w.key("weights").begin_array();
  for (size_t i = 0; i < r.specs.size(); ++i) {
    const WeightSpec& spec = r.specs[i];
    w.begin_object();
    w.key("name").string(spec.name);
    w.key("dtype").string(spec.dtype);
    w.key("shape").begin_array();
    for (int64_t d : spec.shape) w.integer(d);
    w.end_array();
    w.key("group").nullable_string(spec.group);
    w.key("quantization");
    if (spec.quantization) {
      const Quantization& q = *spec.quantization;
      w.begin_object();
      w.key("dtype").string(q.dtype);
      w.key("scale");
      q.scale ? w.number(*q.scale) : w.null();
      w.key("min");
      q.min ? w.number(*q.min) : w.null();
      w.key("originalDtype").nullable_string(q.original_dtype);
      w.end_object();
    } else {
      w.null();
    }
    w.key("offset").uint(r.extents[i].offset);
    w.key("bytes").uint(r.extents[i].bytes);
    if (with_stats) {
      const TensorStats& s = r.stats[i];
      w.key("stats");
      if (!s.numeric) {
        w.null();
      } else {
        w.begin_object();
        w.key("min").number(s.min);
        w.key("max").number(s.max);
        w.key("mean").number(s.mean);
        w.key("count").uint(s.count);
        w.key("nanCount").uint(s.nan_count);
        w.end_object();
      }
    }
    w.end_object();
  }
  w.end_array();
  w.end_object();
  std::cout << w.str();
}

int run_info(const InfoArgs& args, const CommonOptions& common) {
  Report r;
  r.url = normalize_url(args.url);
  const std::string options = options_json(args.options, "--options");
  try {
    announce_retries(common);
    std::unique_ptr<IOHandler> handler = Registry::global().open(r.url, options);
    bool described = false;
    if (!args.stats && handler->can_stat()) {
      Progress progress(common, "reading model.json");
      described = report_from_stat(*handler, progress.context(), r);
    }
    if (!described) {
      {
        Progress progress(common, "loading");
        CallContext call = progress.context();
        call.verify_digests = !args.no_verify_digests;
        r.artifacts = load_model(*handler, call);
      }
      r.sizes = artifacts_info(r.artifacts);
      r.specs = r.artifacts.weight_specs.value_or(std::vector<WeightSpec>{});
      static const WeightData kNoData;
      const WeightData& data = r.artifacts.weight_data ? *r.artifacts.weight_data : kNoData;
      r.weight_bytes = total_size(data);
      r.extents = tensor_extents(data, r.specs, r.url);
      if (args.stats) {
        for (const Tensor& tensor : decode_weights(data, r.specs)) {
          r.stats.push_back(tensor_stats(tensor));
        }
      }
    }
  } catch (const Error& e) {
    rethrow_naming(e, r.url);
  }

  // -q keeps progress and notes away, never a query's answer.
  if (common.json) {
    print_json(r, args.stats);
  } else {
    print_human(r, args.stats);
  }
  return kExitOk;
}

}  // namespace

void add_info_command(CLI::App& app, CommonOptions& common, Runner& run) {
  auto args = std::make_shared<InfoArgs>();
  CLI::App* sub = app.add_subcommand(
      "info",
      "Show a model's metadata, SaveResult sizes, weights manifest and a table of its weights "
      "(name, dtype, shape, quantization, bytes); read from the store's stat, without the weight "
      "bytes, when its scheme has one and no tensor is a string, else from a load");
  sub->add_option("URL", args->url, "The model, e.g. file://models/a/model.json")->required();
  sub->add_flag("--stats", args->stats,
                "Decode every tensor and add min, max and mean of its (dequantised) values; "
                "NaN values are skipped and counted");
  add_url_options(*sub, args->options);
  add_no_verify_digests_flag(*sub, args->no_verify_digests);
  add_common_options(*sub, common);
  sub->callback(
      [&run, &common, args] { run = [&common, args] { return run_info(*args, common); }; });
}

}  // namespace stowage::cli
