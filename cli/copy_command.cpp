// `stowage copy SRC DST` and `stowage move SRC DST`.
#include <iostream>

#include "commands_internal.hpp"
#include "stowage/management.hpp"
#include "stowage/registry.hpp"
#include "stowage/sharding.hpp"

namespace stowage::cli {
namespace {

struct TransferArgs {
  bool move = false;
  std::string src;
  std::string dst;
  uint64_t shard_size = 0;
  bool single_file = false;
  bool converter_shards = false;
  std::string integrity;    // empty: the destination's default
  std::string shard_names;  // empty: the destination's default
  bool no_verify = false;
  bool from_tfhub = false;
  bool no_streaming = false;
  bool no_verify_digests = false;
  std::string verify_url;
  UrlOptions src_options;
  UrlOptions dst_options;
  QuantizeArgs quantize;
  std::vector<std::string> one_url_options;  // -o: refused, there are two URLs
};

// What the destination holds after the transfer, learnt by loading it back.
struct Written {
  bool known = false;
  bool save_only = false;   // the destination's scheme cannot load (downloads://)
  bool unreadable = false;  // an upload URL whose receiver did not name the model's URL
  std::string from;         // the URL the model was read back from
  size_t tensors = 0;
  bool has_manifest = false;
  std::vector<std::pair<std::string, uint64_t>> shards;  // path, bytes
};

Written reload(const std::string& dst, const ReadBack& back, bool verify_digests,
               const CommonOptions& common) {
  // These shape a save; a load has no use for them.
  std::string options = back.options_json;
  for (const char* key : {"shard_size", "integrity", "shard_names"}) {
    options = remove_json_member(options, key);
  }
  Written written;
  auto handler = Registry::global().open(back.url, options);
  if (!handler->can_load()) {
    written.save_only = true;  // nothing to read back; the save itself succeeded
    return written;
  }
  Progress progress(common, "verifying");
  ModelArtifacts artifacts;
  try {
    CallContext call = progress.context();
    call.verify_digests = verify_digests;
    // Reading back what was written verifies it: every file is hashed
    // here, also those the plugin says it checked (abi.h sink_mark_verified).
    call.recheck_digests = true;
    artifacts = load_model(*handler, call);
  } catch (const Error& e) {
    // A plugin serving several schemes declares load for all of them; a
    // save-only one among them (downloads://) refuses here.
    if (e.code() == ErrorCode::kUnimplemented) {
      written.save_only = true;
      return written;
    }
    const std::string from = back.url == dst ? "" : " from " + redact_url(back.url);
    throw Error(
        e.code(),
        "the model was written to " + dst + " but loading it back" + from + " failed: " + e.what(),
        e.retryable());
  }
  progress.finish();

  written.known = true;
  written.from = back.url;
  written.tensors = artifacts.weight_specs ? artifacts.weight_specs->size() : 0;
  if (artifacts.weights_manifest) {
    written.has_manifest = true;
    size_t index = 0;
    for (const WeightGroup& group : *artifacts.weights_manifest) {
      for (const std::string& path : group.paths) {
        uint64_t bytes = 0;
        if (artifacts.weight_data && index < artifacts.weight_data->size()) {
          bytes = (*artifacts.weight_data)[index].size();
        }
        written.shards.emplace_back(path, bytes);
        ++index;
      }
    }
  }
  return written;
}

std::string source_options(const TransferArgs& a, const std::string& src) {
  std::string options = options_json(a.src_options, "--src-options");
  if (!a.from_tfhub) return options;
  std::string scheme;
  try {
    scheme = Registry::global().route(src).scheme;
  } catch (const Error&) {
    return options;  // the transfer reports an unknown scheme itself
  }
  if (scheme != "http" && scheme != "https") {
    throw UsageError(
        "--from-tfhub needs an http(s) source (a TF Hub model URL such as "
        "https://tfhub.dev/google/tfjs-model/...), not " +
        redact_url(src));
  }
  return set_json_member(options, "from_tfhub", "true", "--src-options");
}

std::string destination_options(const TransferArgs& a) {
  std::string options = options_json(a.dst_options, "--dst-options");
  std::optional<uint64_t> shard_size;
  if (a.single_file) shard_size = 0;
  if (a.converter_shards) shard_size = kConverterShardSize;
  if (a.shard_size > 0) shard_size = a.shard_size;
  if (shard_size) {
    options = set_json_member(options, "shard_size", std::to_string(*shard_size), "--dst-options");
  }
  if (!a.integrity.empty()) {
    options = set_json_member(options, "integrity", "\"" + a.integrity + "\"", "--dst-options");
  }
  if (!a.shard_names.empty()) {
    options = set_json_member(options, "shard_names", "\"" + a.shard_names + "\"", "--dst-options");
  }
  return options;
}

void print_human(const TransferArgs& a, const std::string& src, const std::string& dst,
                 const SaveResult& result, const TransferStats& stats, const Written& written) {
  const ModelArtifactsInfo& info = result.model_artifacts_info;
  std::string out = std::string(a.move ? "moved " : "copied ") + src + " -> " + dst + "\n";
  std::string weights = bytes_text(info.weight_data_bytes.value_or(0));
  if (written.known) {
    weights +=
        ", " + std::to_string(written.tensors) + " tensor" + (written.tensors == 1 ? "" : "s");
    if (written.has_manifest) {
      weights += ", " + std::to_string(written.shards.size()) + " shard" +
                 (written.shards.size() == 1 ? "" : "s");
    }
  }
  out += "  weights:             " + weights + "\n";
  out += "  streamed:            " +
         (stats.streamed ? "yes, at most " + bytes_text(stats.peak_queued_bytes) + " held at once"
                         : "no, the whole model was held in memory") +
         "\n";
  if (written.save_only) out += "  not read back: " + dst + " is save-only\n";
  if (written.unreadable) {
    out += "  not read back: the model cannot be read back from " + redact_url(dst) +
           ": it is the upload URL and the receiver did not say where it stored the model "
           "(--verify-url URL names it)\n";
  } else if (written.known && written.from != dst) {
    out += "  read back from:      " + redact_url(written.from) + "\n";
  }
  if (written.has_manifest && !written.shards.empty()) {
    constexpr size_t kListed = 8;
    for (size_t i = 0; i < written.shards.size() && i < kListed; ++i) {
      out += "    " + written.shards[i].first + "  " + std::to_string(written.shards[i].second) +
             " bytes\n";
    }
    if (written.shards.size() > kListed) {
      out += "    ... and " + std::to_string(written.shards.size() - kListed) + " more\n";
    }
  }
  out += "  modelTopologyBytes:  " + std::to_string(info.model_topology_bytes) + "\n";
  out += "  weightSpecsBytes:    " + std::to_string(info.weight_specs_bytes) + "\n";
  out += "  weightDataBytes:     " +
         (info.weight_data_bytes ? std::to_string(*info.weight_data_bytes) : "(absent)") + "\n";
  out += "  dateSaved:           " + iso_date(info.date_saved) + "\n";
  if (a.move) out += "  source removed after the copy was verified\n";
  std::cout << out;
}

void print_json(const TransferArgs& a, const std::string& src, const std::string& dst,
                const SaveResult& result, const TransferStats& stats, const Written& written,
                const std::optional<QuantizeOptions>& quantize,
                const std::optional<QuantizeReport>& quantized) {
  const ModelArtifactsInfo& info = result.model_artifacts_info;
  JsonWriter w;
  w.begin_object();
  w.key("operation").string(a.move ? "move" : "copy");
  w.key("source").string(src);
  w.key("destination").string(dst);
  w.key("weightBytes").uint(info.weight_data_bytes.value_or(0));
  w.key("streamed").boolean(stats.streamed);
  w.key("peakQueuedBytes").uint(stats.peak_queued_bytes);
  w.key("verified").boolean(written.known);
  w.key("verifiedFrom");
  written.known ? w.string(redact_url(written.from)) : w.null();
  w.key("notVerified");
  if (written.unreadable) {
    w.string(
        "the model cannot be read back from the upload URL: the receiver did not say "
        "where it stored the model");
  } else if (written.save_only) {
    w.string("the destination's scheme is save-only");
  } else if (!written.known) {
    w.string("--no-verify");
  } else {
    w.null();
  }
  w.key("tensors");
  written.known ? w.uint(written.tensors) : w.null();
  w.key("shards");
  written.has_manifest ? w.uint(written.shards.size()) : w.null();
  w.key("shardFiles");
  if (written.has_manifest) {
    w.begin_array();
    for (const auto& [path, bytes] : written.shards) {
      w.begin_object().key("path").string(path).key("bytes").uint(bytes).end_object();
    }
    w.end_array();
  } else {
    w.null();
  }
  w.key("modelArtifactsInfo").raw(info_to_json(info));
  w.key("quantization");
  quantize_json(w, quantize ? &*quantize : nullptr, quantized ? &*quantized : nullptr);
  w.key("responses");
  result.responses ? w.raw(*result.responses) : w.null();
  w.end_object();
  std::cout << w.str();
}

int run_transfer(const TransferArgs& a, const CommonOptions& common) {
  if (!a.one_url_options.empty()) {
    throw UsageError("-o " + a.one_url_options.front() + ": " + (a.move ? "move" : "copy") +
                     " has two URLs; give the source's options with --src-option KEY=VALUE and "
                     "the destination's with --dst-option KEY=VALUE");
  }
  const std::string src = normalize_url(a.src);
  const std::string dst = normalize_url(a.dst);
  announce_retries(common);
  TransferOptions options;
  options.source_options = source_options(a, src);
  options.destination_options = destination_options(a);
  options.verify_url = a.verify_url.empty() ? "" : normalize_url(a.verify_url);
  options.streaming = !a.no_streaming;
  TransferStats stats;
  options.stats = &stats;
  const std::optional<QuantizeOptions> quantize = quantize_options(a.quantize);
  std::optional<QuantizeReport> quantized;
  if (quantize) {
    options.transform = [&](ModelArtifacts& m) { quantized = quantize_artifacts(m, *quantize); };
  }

  SaveResult result;
  {
    Progress progress(common, "loading");
    options.call = progress.context();
    options.on_phase_progress = progress.phases();
    options.call.verify_digests = !a.no_verify_digests;
    try {
      result = a.move ? move_model(src, dst, options) : copy_model(src, dst, options);
    } catch (const Error& e) {
      if (message_names(e.what(), src) || message_names(e.what(), dst)) throw;
      throw Error(e.code(), redact_url(src) + " -> " + redact_url(dst) + ": " + e.what(),
                  e.retryable());
    }
  }

  Written written;
  if (!a.no_verify) {
    const std::optional<ReadBack> back =
        read_back_target(dst, options.destination_options, result, options.verify_url);
    if (back) {
      written = reload(dst, *back, !a.no_verify_digests, common);
    } else {
      written.unreadable = true;
    }
  }

  if (quantized && !common.quiet) quantize_warnings(*quantized);
  if (common.json) {
    print_json(a, src, dst, result, stats, written, quantize, quantized);
  } else if (!common.quiet) {
    print_human(a, src, dst, result, stats, written);
    if (quantized) std::cout << quantize_summary(*quantize, *quantized);
  }
  return kExitOk;
}

void add_transfer(CLI::App& app, CommonOptions& common, Runner& run, bool move) {
  auto args = std::make_shared<TransferArgs>();
  args->move = move;
  CLI::App* sub = app.add_subcommand(
      move ? "move" : "copy",
      move ? "Move a model: copy it, load the copy back and compare, then remove the source"
           : "Copy a model from one URL to another (any schemes), then load the copy back");
  sub->add_option("SRC", args->src, "Source URL, e.g. file://models/a/model.json")->required();
  sub->add_option("DST", args->dst, "Destination URL, e.g. file://models/b or memory://b")
      ->required();
  CLI::Option* shard =
      sub->add_option("--shard-size", args->shard_size,
                      "Cut the weights into files of at most BYTES (e.g. 1048576, 4MiB, 500kb); "
                      "sets the destination option shard_size")
          ->check(CLI::Validator(
              [](std::string& value) -> std::string {
                return value.starts_with("-") ? "the shard size cannot be negative" : "";
              },
              ""))
          ->transform(CLI::AsSizeValue(true))
          ->check(CLI::Validator(
              [](std::string& value) -> std::string {
                return value == "0" ? "the shard size must be at least 1 byte (--single-file "
                                      "writes one file)"
                                    : "";
              },
              ""))
          ->option_text("BYTES");
  CLI::Option* single = sub->add_flag("--single-file", args->single_file,
                                      "All weights in one file (tfjs-node's weights.bin)");
  CLI::Option* converter =
      sub->add_flag("--converter-shards", args->converter_shards,
                    "The Python converter's layout: 4 MiB group1-shardNofM.bin files");
  shard->excludes(single)->excludes(converter);
  single->excludes(converter);
  sub->add_option("--integrity", args->integrity,
                  "sha256: record each weight file's SHA-256 in model.json (loads check it); "
                  "none: record none. Sets the destination option integrity (default: the "
                  "scheme's, see docs/integrity.md)")
      ->check(CLI::IsMember({"sha256", "none"}))
      ->option_text("sha256|none");
  sub->add_option("--shard-names", args->shard_names,
                  "sha256: name each weight file after its digest, so a later save into the same "
                  "folder writes only the files that changed (file://, s3://); tfjs: TF.js's "
                  "names. Sets the destination option shard_names")
      ->check(CLI::IsMember({"sha256", "tfjs"}))
      ->option_text("sha256|tfjs");
  sub->add_option("--src-options", args->src_options.json,
                  "Options for the source handler, as a JSON object");
  sub->add_option("--dst-options", args->dst_options.json,
                  "Options for the destination handler, as a JSON object");
  args->src_options.pair_flag = "--src-option";
  args->dst_options.pair_flag = "--dst-option";
  sub->add_option("--src-option", args->src_options.pairs,
                  "One source handler option KEY=VALUE (repeatable; VALUE is JSON or a string; "
                  "applied over --src-options)");
  sub->add_option("--dst-option", args->dst_options.pairs,
                  "One destination handler option KEY=VALUE (repeatable; applied over "
                  "--dst-options)");
  sub->add_option("-o,--option", args->one_url_options,
                  "Not for copy and move, which have two URLs: use --src-option or --dst-option");
  CLI::Option* no_verify =
      sub->add_flag("--no-verify", args->no_verify,
                    "Do not load the destination back after the transfer (no shard count then)");
  sub->add_option("--verify-url", args->verify_url,
                  "Load the copy back from URL (the model.json an upload receiver stored), "
                  "when DST is an upload URL whose receiver does not say where the model went")
      ->option_text("URL")
      ->excludes(no_verify);
  sub->add_flag("--from-tfhub", args->from_tfhub,
                "SRC is a TF Hub model URL: load SRC/model.json?tfjs-format=file, as "
                "tf.loadGraphModel(url, {fromTFHub: true}) does (sets the source option "
                "from_tfhub)");
  sub->add_flag("--no-streaming", args->no_streaming,
                "Hold the whole model in memory between the load and the save, even when the "
                "destination can save from a stream (ABI 1.0's copy)");
  add_no_verify_digests_flag(*sub, args->no_verify_digests);
  add_quantize_options(*sub, args->quantize);
  add_common_options(*sub, common);
  sub->callback(
      [&run, &common, args] { run = [&common, args] { return run_transfer(*args, common); }; });
}

}  // namespace

void add_copy_commands(CLI::App& app, CommonOptions& common, Runner& run) {
  add_transfer(app, common, run, /*move=*/false);
  add_transfer(app, common, run, /*move=*/true);
}

}  // namespace stowage::cli
