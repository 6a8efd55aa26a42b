// stowage-browser, run as `stowage browser export|import` (the plugin's
// manifest names it): an origin's localStorage or IndexedDB "tensorflowjs"
// database as the JSON a page produces and consumes with the snippets in
// docs/browser.md, so models move between a real browser and the browser
// plugin's profile.
#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

#include "commands_internal.hpp"
#include "indexed_db_internal.hpp"
#include "local_storage_internal.hpp"
#include "stowage/config.hpp"
#include "stowage/model_json.hpp"

namespace stowage::cli {
namespace {

namespace fs = std::filesystem;
using browser::IndexedDb;
using browser::LocalStorage;
using browser::StoreLocation;

struct BrowserArgs {
  bool do_import = false;
  std::string scheme;
  std::string origin;
  std::string profile;
  std::string file;  // --out for export, FILE for import; "" or "-" is stdout/stdin
  bool clear = false;
  uint64_t quota = 0;
  bool has_quota = false;
};

// What the config's "defaults" give the scheme (the plugin's options), so
// the command and the plugin find the same store.
struct SchemeDefaults {
  std::optional<std::string> profile;
  std::optional<std::string> origin;
  std::optional<uint64_t> quota;
  std::optional<uint64_t> chunk_size;
};

SchemeDefaults config_defaults(const CommonOptions& common, const std::string& scheme) {
  SchemeDefaults out;
  std::string path = common.config;
  if (path.empty()) {
    const char* env = std::getenv("STOWAGE_CONFIG");
    if (env == nullptr || env[0] == '\0') return out;
    path = env;
  }
  const Config config = load_config_file(path);
  auto it = config.defaults.find(scheme);
  if (it == config.defaults.end()) return out;
  rapidjson::Document doc;
  doc.Parse(it->second.c_str(), it->second.size());
  if (doc.HasParseError() || !doc.IsObject()) return out;
  auto text = [&](const char* key) -> std::optional<std::string> {
    auto m = doc.FindMember(key);
    if (m == doc.MemberEnd()) return std::nullopt;
    if (!m->value.IsString()) {
      throw Error(ErrorCode::kInvalidArgument,
                  path + ": defaults." + scheme + "." + key + " must be a string");
    }
    return std::string(m->value.GetString(), m->value.GetStringLength());
  };
  auto number = [&](const char* key) -> std::optional<uint64_t> {
    auto m = doc.FindMember(key);
    if (m == doc.MemberEnd()) return std::nullopt;
    if (!m->value.IsUint64()) {
      throw Error(ErrorCode::kInvalidArgument,
                  path + ": defaults." + scheme + "." + key + " must be a non-negative integer");
    }
    return m->value.GetUint64();
  };
  out.profile = text("profile");
  out.origin = text("origin");
  out.quota = number("quota");
  out.chunk_size = number("chunk_size");
  return out;
}

StoreLocation location(const BrowserArgs& a, const SchemeDefaults& d) {
  StoreLocation where;
  const std::string profile = !a.profile.empty() ? a.profile : d.profile.value_or("");
  where.profile = profile.empty() ? browser::default_profile()
                                  : fs::absolute(fs::path(profile)).lexically_normal();
  const std::string origin =
      !a.origin.empty() ? a.origin : d.origin.value_or(std::string(browser::kDefaultOrigin));
  where.origin = browser::normalize_origin(origin);
  return where;
}

std::string read_input(const std::string& file) {
  std::stringstream s;
  if (file.empty() || file == "-") {
    s << std::cin.rdbuf();
    return s.str();
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error(ErrorCode::kNotFound, "Cannot read " + file + ": no such file");
  s << in.rdbuf();
  if (in.bad()) throw Error(ErrorCode::kDataLoss, "Cannot read " + file);
  return s.str();
}

// Writes to a temporary file beside `file`, renamed into place on commit(),
// or to stdout when file is "" or "-".
class Output {
 public:
  explicit Output(const std::string& file) : file_(file) {
    if (to_stdout()) return;
    tmp_ = file + ".stowage-tmp-" + std::to_string(::getpid());
    out_.open(tmp_, std::ios::binary | std::ios::trunc);
    if (!out_) throw Error(ErrorCode::kPermissionDenied, "Cannot write " + file);
  }
  ~Output() {
    if (!tmp_.empty()) std::remove(tmp_.c_str());
  }
  void write(std::string_view text) {
    if (to_stdout()) {
      std::cout.write(text.data(), static_cast<std::streamsize>(text.size()));
    } else {
      out_.write(text.data(), static_cast<std::streamsize>(text.size()));
    }
  }
  void commit() {
    if (to_stdout()) {
      std::cout.flush();
      return;
    }
    out_.close();
    if (!out_ || std::rename(tmp_.c_str(), file_.c_str()) != 0) {
      throw Error(ErrorCode::kResourceExhausted, "Cannot write " + file_);
    }
    tmp_.clear();
  }
  bool to_stdout() const { return file_.empty() || file_ == "-"; }

 private:
  std::string file_;
  std::string tmp_;
  std::ofstream out_;
};

// The model paths among localStorage keys, as TF.js's listModels finds them.
std::vector<std::string> local_storage_models(
    const std::vector<std::pair<std::string, std::string>>& items) {
  std::vector<std::string> out;
  const std::string_view prefix = browser::kLocalStoragePrefix;
  for (const auto& [key, value] : items) {
    if (key.starts_with(prefix) && key.ends_with("/info") &&
        key.size() > prefix.size() + std::string_view("/info").size()) {
      out.push_back(key.substr(prefix.size(), key.size() - prefix.size() - 5));
    }
  }
  return out;
}

void print_summary(const CommonOptions& common, const BrowserArgs& a, const StoreLocation& where,
                   size_t count, const char* what, const std::vector<std::string>& models,
                   uint64_t used, uint64_t quota) {
  if (common.json) {
    JsonWriter w;
    w.begin_object();
    w.key("operation").string(a.do_import ? "import" : "export");
    w.key("scheme").string(a.scheme);
    w.key("origin").string(where.origin);
    w.key("profile").string(where.profile.string());
    w.key("file").string(a.file.empty() ? "-" : a.file);
    w.key("entries").uint(count);
    w.key("models").begin_array();
    for (const auto& m : models) w.string(a.scheme + "://" + m);
    w.end_array();
    w.key("usedBytes").uint(used);
    w.key("quotaBytes").uint(quota);
    w.end_object();
    std::cout << w.str();
    return;
  }
  if (common.quiet) return;
  std::string list;
  for (const auto& m : models) list += (list.empty() ? "" : ", ") + a.scheme + "://" + m;
  std::cout << (a.do_import ? "imported " : "exported ") << count << " " << what
            << (a.do_import ? " into " : " of ") << a.scheme << " of origin " << where.origin
            << "\n  profile:  " << where.profile.string()
            << "\n  file:     " << (a.file.empty() ? "-" : a.file)
            << "\n  models:   " << (list.empty() ? "(none)" : list) << "\n  usage:    " << used
            << " of " << quota << " quota bytes\n";
}

int run_local_storage(const BrowserArgs& a, const CommonOptions& common, const StoreLocation& where,
                      const SchemeDefaults& d) {
  const uint64_t quota =
      a.has_quota ? a.quota : d.quota.value_or(browser::kDefaultLocalStorageQuota);
  const LocalStorage store(where, quota, {});
  if (!a.do_import) {
    const auto items = store.items();
    Output out(a.file);
    out.write("{");
    bool first = true;
    for (const auto& [key, value] : items) {
      out.write((first ? "" : ",") + json::quote(key) + ":" + json::quote(value));
      first = false;
    }
    out.write(out.to_stdout() ? "}\n" : "}");
    out.commit();
    if (!out.to_stdout()) {
      print_summary(common, a, where, items.size(), items.size() == 1 ? "item" : "items",
                    local_storage_models(items), store.used_bytes(), quota);
    }
    return kExitOk;
  }
  const std::string text = read_input(a.file);
  rapidjson::Document doc;
  doc.Parse(text.data(), text.size());
  if (doc.HasParseError()) {
    throw Error(ErrorCode::kInvalidArgument,
                "The localStorage dump " + (a.file.empty() ? std::string("-") : a.file) +
                    " is not valid JSON: " + rapidjson::GetParseError_En(doc.GetParseError()) +
                    " at offset " + std::to_string(doc.GetErrorOffset()));
  }
  if (!doc.IsObject()) {
    throw Error(ErrorCode::kInvalidArgument,
                "A localStorage dump is a JSON object of key -> string value");
  }
  std::vector<std::pair<std::string, std::string>> items;
  for (const auto& m : doc.GetObject()) {
    std::string key(m.name.GetString(), m.name.GetStringLength());
    if (!m.value.IsString()) {
      throw Error(ErrorCode::kInvalidArgument,
                  "The localStorage dump's value of \"" + key +
                      "\" is not a string (localStorage holds strings only)");
    }
    items.emplace_back(std::move(key), std::string(m.value.GetString(), m.value.GetStringLength()));
  }
  store.put_items(items, a.clear);
  print_summary(common, a, where, items.size(), items.size() == 1 ? "item" : "items",
                local_storage_models(items), store.used_bytes(), quota);
  return kExitOk;
}

int run_indexed_db(const BrowserArgs& a, const CommonOptions& common, const StoreLocation& where,
                   const SchemeDefaults& d) {
  const uint64_t quota =
      a.has_quota ? a.quota : d.quota.value_or(browser::default_indexeddb_quota(where.profile));
  const IndexedDb store(where, quota, d.chunk_size.value_or(browser::kDefaultChunkSize), {});
  std::vector<std::string> models;
  if (!a.do_import) {
    Output out(a.file);
    store.export_json([&out](std::string_view s) { out.write(s); });
    if (out.to_stdout()) out.write("\n");
    out.commit();
    if (!out.to_stdout()) {
      for (const auto& [path, info] : store.list_models("")) models.push_back(path);
      print_summary(common, a, where, models.size(), models.size() == 1 ? "model" : "models",
                    models, store.used_bytes(), quota);
    }
    return kExitOk;
  }
  const std::string text = read_input(a.file);
  Progress progress(common, "importing");
  const CallContext context = progress.context();
  browser::Pace pace;
  pace.check = [&context, &a] {
    if (context.is_cancelled && context.is_cancelled()) {
      throw Error(ErrorCode::kCancelled, "The import of " + a.file + " was cancelled");
    }
  };
  uint64_t done = 0, total = 0;
  pace.set_total = [&](uint64_t t) { total = t; };
  pace.advance = [&](uint64_t n) {
    done += n;
    if (context.on_progress) context.on_progress(done, total);
  };
  const size_t count = store.import_json(text, a.clear, pace);
  progress.finish();
  for (const auto& [path, info] : store.list_models("")) models.push_back(path);
  print_summary(common, a, where, count, count == 1 ? "model" : "models", models,
                store.used_bytes(), quota);
  return kExitOk;
}

int run_browser(const BrowserArgs& a, const CommonOptions& common) {
  const SchemeDefaults defaults = config_defaults(common, a.scheme);
  const StoreLocation where = location(a, defaults);
  if (!a.do_import) {
    // An export reads: a profile folder that is not there is a mistake (a
    // typo, another user's path), not an empty store. An import makes it.
    std::error_code ec;
    const auto type = fs::status(where.profile, ec).type();
    if (type == fs::file_type::not_found) {
      throw Error(ErrorCode::kNotFound,
                  "there is no browser profile at " + where.profile.string() +
                      " (--profile, or the config's defaults, names the folder that "
                      "localstorage:// and indexeddb:// save into)");
    }
    if (!ec && type != fs::file_type::directory) {
      throw Error(ErrorCode::kInvalidArgument,
                  "the browser profile " + where.profile.string() + " is not a folder");
    }
  }
  return a.scheme == "localstorage" ? run_local_storage(a, common, where, defaults)
                                    : run_indexed_db(a, common, where, defaults);
}

void add_direction(CLI::App& app, CommonOptions& common, Runner& run, bool do_import) {
  auto args = std::make_shared<BrowserArgs>();
  args->do_import = do_import;
  CLI::App* sub = app.add_subcommand(
      do_import ? "import" : "export",
      do_import ? "Put the entries of a JSON dump (made in a page with the snippet in "
                  "docs/browser.md, or by `stowage browser export`) into an origin's store"
                : "Write an origin's localStorage or IndexedDB as the JSON a page imports with "
                  "the snippet in docs/browser.md");
  sub->add_option("--scheme", args->scheme, "Which store: localstorage or indexeddb")
      ->required()
      ->check(CLI::IsMember({"localstorage", "indexeddb"}));
  sub->add_option("--origin", args->origin,
                  "The page's origin, scheme://host[:port] (default: the config's defaults, "
                  "else http://localhost)");
  sub->add_option("--profile", args->profile,
                  "The profile folder (default: the config's defaults, else "
                  "$XDG_DATA_HOME/stowage/browser or ~/.local/share/stowage/browser)");
  if (do_import) {
    sub->add_option("FILE", args->file, "The JSON dump; - or nothing reads stdin");
    sub->add_flag("--clear", args->clear,
                  "Empty the origin's store of that scheme first (in the same transaction)");
    sub->add_option("--quota", args->quota,
                    "Quota bytes to enforce (default: the plugin's default for the scheme)")
        ->each([args](const std::string&) { args->has_quota = true; })
        ->option_text("BYTES");
  } else {
    sub->add_option("--out", args->file, "Where to write the JSON (default: stdout)");
  }
  add_common_options(*sub, common);
  sub->callback(
      [&run, &common, args] { run = [&common, args] { return run_browser(*args, common); }; });
}

int run_main(int argc, char** argv) {
  CLI::App app{
      "stowage browser: move models between a real browser and the browser plugin's profile "
      "(localstorage://, indexeddb://): export and import an origin's store as JSON.",
      "stowage browser"};
  configure_program(app, "stowage browser " STOWAGE_PLUGIN_VERSION);
  CommonOptions common;
  Runner run;
  add_direction(app, common, run, /*do_import=*/false);
  add_direction(app, common, run, /*do_import=*/true);
  // The configuration is read by config_defaults: this program opens no
  // handler, so the registry is never consulted.
  return parse_and_run(app, run, argc, argv, {});
}

}  // namespace
}  // namespace stowage::cli

int main(int argc, char** argv) {
  return stowage::cli::guarded_main(stowage::cli::run_main, argc, argv);
}
