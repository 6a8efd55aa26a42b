// `stowage list URL` (ls) and `stowage remove URL` (rm): the model-store
// operations of TF.js's model management.
#include <filesystem>
#include <iostream>

#include "commands_internal.hpp"
#include "stowage/management.hpp"
#include "stowage/registry.hpp"

namespace stowage::cli {
namespace {

struct UrlArgs {
  std::string url;
  UrlOptions options;
};

std::string optional_bytes(const std::optional<uint64_t>& bytes) {
  return bytes ? std::to_string(*bytes) : "-";
}

// `stowage list` with no URL: TF.js's listModels() over every default
// location (localstorage://, indexeddb://, memory:// or the config's
// list_locations).
std::vector<ListedModel> list_everywhere(const UrlArgs& a, std::string& where) {
  if (options_json(a.options, "--options") != "{}") {
    throw UsageError("--options and -o need a URL: list URL --options JSON");
  }
  const auto configured = Registry::global().list_locations();
  where = configured ? "the config's list_locations" : "the default locations";
  return list_models();
}

// A store lists nothing for a location that does not exist (abi.h). Where
// the location is a local path the command can tell a typo from an empty
// folder: nothing there is "not found", a file that is no model is a bad
// URL; an existing empty folder lists nothing.
void check_list_location(const std::string& url) {
  const Route route = Registry::global().route(url);
  if (route.scheme != "file") return;
  std::string path = route.url.substr(std::string_view("file://").size());
  if (path.empty()) path = ".";
  const std::filesystem::path absolute = std::filesystem::absolute(path).lexically_normal();
  std::error_code ec;
  const auto type = std::filesystem::status(absolute, ec).type();
  if (type == std::filesystem::file_type::not_found) {
    throw Error(ErrorCode::kNotFound,
                redact_url(url) + ": there is no file or folder " + absolute.string() + " to list");
  }
  if (!ec && type != std::filesystem::file_type::directory) {
    throw Error(ErrorCode::kInvalidArgument,
                redact_url(url) + ": " + absolute.string() +
                    " is a file that is not a model.json (list takes a folder of models or a "
                    "model.json)");
  }
}

int run_list(const UrlArgs& a, const CommonOptions& common) {
  std::string url;
  std::vector<ListedModel> models;
  if (a.url.empty()) {
    models = list_everywhere(a, url);
  } else {
    url = normalize_url(a.url);
    const std::string options = options_json(a.options, "--options");
    try {
      models = options == "{}" ? list_models(url) : Registry::global().open(url, options)->list();
      if (models.empty()) check_list_location(url);
    } catch (const Error& e) {
      rethrow_naming(e, url);
    }
  }

  if (common.json) {
    // Shaped like TF.js's listModels(): {url: ModelArtifactsInfo}.
    JsonWriter w;
    w.begin_object();
    for (const ListedModel& model : models) w.key(model.url).raw(info_to_json(model.info));
    w.end_object();
    std::cout << w.str();
    return kExitOk;
  }
  // -q keeps progress and notes away, never a query's answer.
  if (models.empty()) {
    std::cout << (a.url.empty() ? "no models in " : "no models under ") << url << "\n";
    return kExitOk;
  }
  Table table({"URL", "DATE SAVED", "TOPOLOGY BYTES", "WEIGHT SPECS BYTES", "WEIGHT BYTES"},
              {2, 3, 4});
  for (const ListedModel& model : models) {
    table.add({model.url, iso_date(model.info.date_saved),
               std::to_string(model.info.model_topology_bytes),
               std::to_string(model.info.weight_specs_bytes),
               optional_bytes(model.info.weight_data_bytes)});
  }
  std::cout << table.render();
  return kExitOk;
}

int run_remove(const UrlArgs& a, const CommonOptions& common) {
  const std::string url = normalize_url(a.url);
  const std::string options = options_json(a.options, "--options");
  ModelArtifactsInfo info;
  try {
    info = options == "{}" ? remove_model(url) : Registry::global().open(url, options)->remove();
  } catch (const Error& e) {
    rethrow_naming(e, url);
  }

  if (common.json) {
    JsonWriter w;
    w.begin_object();
    w.key("url").string(url);
    w.key("modelArtifactsInfo").raw(info_to_json(info));
    w.end_object();
    std::cout << w.str();
  } else if (!common.quiet) {
    std::cout << "removed " << url << "\n"
              << "  dateSaved:           " << iso_date(info.date_saved) << "\n"
              << "  modelTopologyBytes:  " << info.model_topology_bytes << "\n"
              << "  weightSpecsBytes:    " << info.weight_specs_bytes << "\n"
              << "  weightDataBytes:     " << optional_bytes(info.weight_data_bytes) << "\n";
  }
  return kExitOk;
}

CLI::App* add_url_command(CLI::App& app, CommonOptions& common, Runner& run, const char* name,
                          const char* alias, const char* description, const char* url_help,
                          int (*body)(const UrlArgs&, const CommonOptions&),
                          bool url_required = true) {
  auto args = std::make_shared<UrlArgs>();
  CLI::App* sub = app.add_subcommand(name, description);
  sub->alias(alias);
  sub->add_option("URL", args->url, url_help)->required(url_required);
  add_url_options(*sub, args->options);
  add_common_options(*sub, common);
  sub->callback(
      [&run, &common, args, body] { run = [&common, args, body] { return body(*args, common); }; });
  return sub;
}

}  // namespace

void add_list_commands(CLI::App& app, CommonOptions& common, Runner& run) {
  add_url_command(app, common, run, "list", "ls",
                  "List the models stored under a URL: URL, date saved, topology and weight "
                  "bytes. Without a URL, every default location (TF.js's listModels()): "
                  "localstorage://, indexeddb:// and memory://, or the config's list_locations",
                  "Where to look, e.g. file://models (a folder) or memory://", run_list,
                  /*url_required=*/false);
  add_url_command(app, common, run, "remove", "rm",
                  "Remove a model and print what it was (its ModelArtifactsInfo)",
                  "The model, e.g. file://models/a/model.json or memory://a", run_remove);
}

}  // namespace stowage::cli
