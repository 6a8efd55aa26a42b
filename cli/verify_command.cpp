// `stowage verify URL`: loads a model (which checks every weight group's
// size and every recorded SHA-256 digest), decodes every tensor and checks
// that weight names are unique.
#include <iostream>
#include <map>

#include "commands_internal.hpp"
#include "stowage/management.hpp"

namespace stowage::cli {
namespace {

struct VerifyArgs {
  std::string url;
  UrlOptions options;
  bool no_verify_digests = false;
};

struct Verified {
  size_t tensors = 0;
  bool has_manifest = false;  // false: a store that keeps a flat weight list
  size_t groups = 0;
  size_t shards = 0;
  uint64_t weight_bytes = 0;
  size_t digests_recorded = 0;
  size_t digests_checked = 0;  // by the load; 0 with --no-verify-digests
};

Verified verify(const std::string& url, const std::string& options, bool verify_digests,
                const CommonOptions& common) {
  ModelArtifacts artifacts;
  announce_retries(common);
  {
    Progress progress(common, "verifying");
    CallContext call = progress.context();
    call.verify_digests = verify_digests;
    // A verification hashes every file itself, also those the plugin says
    // it checked (abi.h sink_mark_verified).
    call.recheck_digests = true;
    artifacts = load_model(url, options, call);
  }
  const std::vector<WeightSpec> specs = artifacts.weight_specs.value_or(std::vector<WeightSpec>{});
  static const WeightData kNoData;
  const WeightData& data = artifacts.weight_data ? *artifacts.weight_data : kNoData;

  std::map<std::string_view, size_t> seen;
  for (size_t i = 0; i < specs.size(); ++i) {
    auto [it, inserted] = seen.emplace(specs[i].name, i);
    if (!inserted) {
      throw Error(ErrorCode::kInvalidArgument, url + ": duplicate weight name '" + specs[i].name +
                                                   "' (weights " + std::to_string(it->second + 1) +
                                                   " and " + std::to_string(i + 1) + ")");
    }
  }

  Verified v;
  v.weight_bytes = total_size(data);
  // The load checked each group's size; this also walks string tensors'
  // length prefixes and catches bytes no spec accounts for.
  const std::vector<TensorExtent> extents = tensor_extents(data, specs, url);
  const uint64_t used = extents.empty() ? 0 : extents.back().offset + extents.back().bytes;
  if (used != v.weight_bytes) {
    throw Error(ErrorCode::kDataLoss, url + ": the weight specs use " + std::to_string(used) +
                                          " bytes but the weight data has " +
                                          std::to_string(v.weight_bytes));
  }
  const std::vector<Tensor> tensors = decode_weights(data, specs);
  if (tensors.size() != specs.size()) {
    throw Error(ErrorCode::kDataLoss, url + ": decoded " + std::to_string(tensors.size()) +
                                          " tensors for " + std::to_string(specs.size()) +
                                          " weight specs");
  }
  v.tensors = tensors.size();
  if (artifacts.weights_manifest) {
    v.has_manifest = true;
    v.groups = artifacts.weights_manifest->size();
    for (const WeightGroup& group : *artifacts.weights_manifest) v.shards += group.paths.size();
    v.digests_recorded = recorded_digest_count(*artifacts.weights_manifest);
    // load_model returned, so it checked every one.
    if (verify_digests) v.digests_checked = v.digests_recorded;
  }
  return v;
}

int run_verify(const VerifyArgs& args, const CommonOptions& common) {
  const std::string url = normalize_url(args.url);
  const std::string options = options_json(args.options, "--options");
  Verified v;
  try {
    v = verify(url, options, !args.no_verify_digests, common);
  } catch (const Error& e) {
    if (common.json) {
      // The verdict is the output; the one-line message still goes to stderr.
      const std::string message =
          message_names(e.what(), url) ? e.what() : redact_url(url) + ": " + e.what();
      JsonWriter w;
      w.begin_object();
      w.key("url").string(url);
      w.key("ok").boolean(false);
      w.key("error").begin_object();
      w.key("code").string(error_code_name(e.code()));
      w.key("message").string(message);
      w.end_object();
      w.end_object();
      std::cout << w.str();
    }
    rethrow_naming(e, url);
  }

  if (common.json) {
    JsonWriter w;
    w.begin_object();
    w.key("url").string(url);
    w.key("ok").boolean(true);
    w.key("tensors").uint(v.tensors);
    w.key("groups");
    v.has_manifest ? w.uint(v.groups) : w.null();
    w.key("shards");
    v.has_manifest ? w.uint(v.shards) : w.null();
    w.key("weightBytes").uint(v.weight_bytes);
    w.key("digests").begin_object();
    w.key("recorded").uint(v.digests_recorded);
    w.key("checked").uint(v.digests_checked);
    w.end_object();
    w.end_object();
    std::cout << w.str();
  } else {  // the verdict is the answer, also with -q
    std::string layout;
    if (v.has_manifest) {
      layout = std::to_string(v.groups) + " group" + (v.groups == 1 ? "" : "s") + ", " +
               std::to_string(v.shards) + " shard" + (v.shards == 1 ? "" : "s");
    } else {
      layout = "one flat weight list (the store keeps no weight files)";
    }
    std::cout << "OK " << url << ": " << v.tensors << " tensor" << (v.tensors == 1 ? "" : "s")
              << " decoded, " << layout << ", " << bytes_text(v.weight_bytes) << " of weights\n";
    std::cout << "digests: ";
    if (v.digests_recorded == 0) {
      std::cout << "none recorded\n";
    } else if (v.digests_checked == v.digests_recorded) {
      std::cout << v.digests_checked << " checked\n";
    } else {
      std::cout << v.digests_recorded << " recorded, not checked (--no-verify-digests)\n";
    }
  }
  return kExitOk;
}

}  // namespace

void add_verify_command(CLI::App& app, CommonOptions& common, Runner& run) {
  auto args = std::make_shared<VerifyArgs>();
  CLI::App* sub = app.add_subcommand(
      "verify",
      "Check a model: load it (every weight group's size is checked, and every weight file "
      "against the SHA-256 digest model.json records), decode every tensor and check that "
      "weight names are unique. Prints OK with counts and how many digests were checked, or "
      "the failure");
  sub->add_option("URL", args->url, "The model, e.g. file://models/a/model.json")->required();
  add_url_options(*sub, args->options);
  add_no_verify_digests_flag(*sub, args->no_verify_digests);
  add_common_options(*sub, common);
  sub->callback(
      [&run, &common, args] { run = [&common, args] { return run_verify(*args, common); }; });
}

}  // namespace stowage::cli
