// The runner: reads the target from the command line or the environment,
// loads the plugin through the production registry, then runs doctest with
// the groups the plugin's capabilities do not cover excluded.
#define DOCTEST_CONFIG_IMPLEMENT
#include <dlfcn.h>
#include <rapidjson/document.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "conformance_internal.hpp"
#include "probe_internal.hpp"
#include "stowage/conformance.hpp"
#include "stowage/text.hpp"
#include "summary_internal.hpp"

#ifndef STOWAGE_CONFORMANCE_FIXTURES_FROM_LIBDIR
#error "STOWAGE_CONFORMANCE_FIXTURES_FROM_LIBDIR must give the fixtures' path relative to libdir"
#endif

namespace stowage::conformance {
namespace {

namespace fs = std::filesystem;

// A group is a doctest suite; it runs when the plugin declares every
// capability it needs.
struct Group {
  const char* suite;
  std::vector<std::string> needs;
  const char* what;
};

const std::vector<Group>& groups() {
  static const std::vector<Group> all = {
      {"registration", {}, "entry symbol, struct sizes, ABI versions, capability honesty, schemes"},
      {"errors: open", {}, "open's error contract"},
      {"errors: load", {"load"}, "load's error contract"},
      {"errors: save", {"save", "load"}, "save's error contract"},
      {"errors: list", {"list"}, "list's error contract"},
      {"errors: remove", {"remove"}, "remove's error contract"},
      {"round trips", {"save", "load"}, "golden TF.js models saved and loaded byte for byte"},
      {"overwrite", {"save", "load"}, "a save replaces the model at its URL"},
      {"list", {"save", "list"}, "list finds every model at or under a URL"},
      {"remove", {"save", "remove"}, "remove deletes exactly one model"},
      {"move", {"save", "load", "remove"}, "move through stowage::move_model"},
      {"atomicity", {"save", "load"}, "a failed or cancelled save leaves the previous model"},
      {"concurrency", {"save", "load"}, "8 threads on different and identical URLs"},
      {"cancellation: save", {"save"}, "cancelled and late saves"},
      {"cancellation: load", {"save", "load"}, "cancelled and late loads"},
      {"cancellation: list", {"list"}, "cancelled and late lists"},
      {"cancellation: remove", {"save", "remove"}, "cancelled and late removes"},
      {"progress", {"save"}, "progress reports of saves (and loads) end at the total byte count"},
      {"hostile names", {"save", "load"}, "'..', absolute, empty, very long, non-ASCII names"},
      {"stat",
       {"save", "load", "stat"},
       "stat is load without weight bytes, its version follows saves"},
  };
  return all;
}

constexpr const char* kUsage =
    R"(usage: stowage-conformance --plugin <manifest.json|library.so> --scheme <scheme>
                           --root <url> [--options <json>] [--deviation <name>]...
                           [--fixtures <folder>] [--require <group>]...
                           [--require-all [--allow-skip <group>]...]
                           [--json <file>] [doctest options]

Checks one stowage plugin against the promises of stowage/abi.h, loading it
through the production stowage::Registry. Environment variables stand in for
absent arguments: STOWAGE_TEST_PLUGIN, STOWAGE_TEST_SCHEME,
STOWAGE_TEST_ROOT_URL, STOWAGE_TEST_OPTIONS, STOWAGE_TEST_DEVIATIONS
(comma-separated) and STOWAGE_TEST_FIXTURES.

--root is where the suite may write: every case works under a new folder
<root>/run-<pid>-<time>/..., and names are appended with '/' (no '/' is added
after a root ending in '/' or '#'). --options is the options JSON object given
to every handler (e.g. {"durable": false}).

A group whose capabilities the plugin does not declare is skipped, and the
summary on stderr says so with the capability that gated it, ending with a
grade such as "grade: 20/20 groups, 0 skipped". A skip is not a failure
unless asked:
  --require <group>     the group must run (repeatable)
  --require-all         every group must run, except those given with
  --allow-skip <group>  (repeatable; only with --require-all). A group allowed
                        to skip that runs after all is a failure too: the
                        exception is stale.
Either failure prints "stowage-conformance: required group '<group>' was
skipped: needs capability <capability>, which the plugin does not declare"
or "stowage-conformance: --allow-skip '<group>' is stale: the group ran".
--json <file> also writes the summary as one JSON object: plugin, scheme,
groups (how many the suite has), passed, failed, not_run (arrays of group
names), skipped and required_skipped (arrays of {"group", "needs": [caps]}),
stale_allowances, grade and exit_code.

Deviations:
  dotdot_resolves       URLs are paths whose ".." segments resolve like a file
                        system's (file://): the root is no boundary for them.
  refuses_weights_only  a model without modelTopology cannot be stored (TF.js's
                        localstorage, indexeddb): save refuses it with
                        INVALID_ARGUMENT, which the round trips then require.

Exit status: 0 when every check passed, 1 when one failed (or the plugin did
not load), 2 for bad usage, 3 when every check that ran passed but a required
group was skipped or an --allow-skip is stale.
)";

std::string env_or(const char* name, const std::string& value) {
  if (!value.empty()) return value;
  const char* v = std::getenv(name);
  return v != nullptr ? std::string(v) : std::string();
}

void add_deviations(Target& t, const std::string& list) {
  size_t start = 0;
  while (start <= list.size()) {
    size_t end = std::min(list.find(',', start), list.size());
    std::string d = list.substr(start, end - start);
    if (!d.empty()) t.deviations.insert(d);
    start = end + 1;
  }
}

// Where this library is installed (or built): its folder.
fs::path library_folder() {
  Dl_info info{};
  if (::dladdr(reinterpret_cast<void*>(&run), &info) == 0 || info.dli_fname == nullptr) return {};
  std::error_code ec;
  fs::path self = fs::canonical(info.dli_fname, ec);
  return ec ? fs::path(info.dli_fname).parent_path() : self.parent_path();
}

fs::path find_fixtures(const std::string& given) {
  if (!given.empty()) return given;
  const fs::path lib = library_folder();
  for (const fs::path& p : {lib / STOWAGE_CONFORMANCE_FIXTURES_FROM_LIBDIR,
                            lib / ".." / "share" / "stowage" / "conformance" / "fixtures"}) {
    std::error_code ec;
    if (fs::exists(p / "index.json", ec)) return p.lexically_normal();
  }
  return {};
}

// Loads the plugin the way a host does: add_plugin, then open the root,
// which loads the library on first use.
void load_target(Target& t) {
  t.registry = std::make_unique<Registry>();
  try {
    t.registry->add_plugin(t.plugin);
    Route route = t.registry->route(t.root);
    t.registry->open(t.root, t.options);
    for (const PluginInfo& p : t.registry->plugins()) {
      if (p.name == route.plugin.name) t.info = p;
    }
    if (!t.info.loaded) {
      t.load_error = "the registry did not load plugin '" + route.plugin.name + "'";
    }
  } catch (const std::exception& e) {
    t.load_error = describe(e);
  }
}

void print_target(const Target& t, const std::vector<std::string>& skipped) {
  std::cout << "stowage-conformance: plugin " << t.plugin << "\n";
  if (t.load_error) {
    std::cout << "  did not load: " << *t.load_error << "\n  only the registration group runs\n";
    return;
  }
  std::cout << "  name '" << t.info.name << "' version '" << t.info.version << "', ABI "
            << t.info.abi_major << "." << t.info.abi_minor << ", library "
            << t.info.library.string() << "\n  schemes: " << join(t.info.schemes)
            << "\n  capabilities: " << join(t.info.capabilities) << "\n  capabilities of "
            << t.scheme << "://: " << join(t.capabilities()) << "\n  root: " << t.root
            << " (this run: " << t.run_root << ")\n  options: " << t.options << "\n";
  if (!t.deviations.empty()) {
    std::vector<std::string> d(t.deviations.begin(), t.deviations.end());
    std::cout << "  deviations: " << join(d) << "\n";
  }
  for (const std::string& s : skipped) std::cout << "  SKIPPED " << s << "\n";
  std::cout.flush();
}

bool known_group(const std::string& name) {
  for (const Group& g : groups()) {
    if (name == g.suite) return true;
  }
  return false;
}

// Why --require/--require-all/--allow-skip do not make sense together, or "".
std::string check_requirements(const std::vector<std::string>& required,
                               const std::vector<std::string>& allowed, bool require_all) {
  for (const auto* list : {&required, &allowed}) {
    for (const std::string& g : *list) {
      if (!known_group(g)) {
        return "no group '" + g + "' (" + (list == &required ? "--require" : "--allow-skip") +
               "; --help lists the groups)";
      }
    }
  }
  if (!allowed.empty() && !require_all) return "--allow-skip only makes sense with --require-all";
  for (const std::string& g : allowed) {
    if (std::find(required.begin(), required.end(), g) != required.end()) {
      return "group '" + g + "' is given with both --require and --allow-skip";
    }
  }
  return "";
}

// Sorts every group into passed, failed or not run from what the cases did,
// then checks the skips against what was required.
void fill_summary(Summary& s, const std::vector<std::string>& required,
                  const std::vector<std::string>& allowed, bool require_all) {
  auto in = [](const std::vector<std::string>& list, const std::string& g) {
    return std::find(list.begin(), list.end(), g) != list.end();
  };
  for (const Group& g : groups()) {
    const bool skipped = std::any_of(s.skipped.begin(), s.skipped.end(),
                                     [&](const SkippedGroup& k) { return k.group == g.suite; });
    if (skipped) continue;
    auto it = suite_results().find(g.suite);
    if (it == suite_results().end() || it->second.cases_run == 0) {
      s.unselected.push_back(g.suite);
      continue;
    }
    (it->second.cases_failed > 0 ? s.failed : s.passed).push_back(g.suite);
    if (in(allowed, g.suite)) s.stale_allowances.push_back(g.suite);
  }
  for (const SkippedGroup& k : s.skipped) {
    if (in(required, k.group) || (require_all && !in(allowed, k.group))) {
      s.required_skipped.push_back(k);
    }
  }
}

// Best effort: the models this run left under its folder.
void clean_up(const Target& t) {
  if (t.load_error || !t.has("list") || !t.has("remove")) return;
  try {
    for (const ListedModel& m : t.registry->open(t.run_root, t.options)->list()) {
      try {
        t.registry->open(m.url, t.options)->remove();
      } catch (const std::exception&) {
      }
    }
  } catch (const std::exception&) {
  }
}

}  // namespace

int run(int argc, char** argv) {
  Target& t = target();
  t.options.clear();  // "{}" unless --options or STOWAGE_TEST_OPTIONS says otherwise
  std::string probe, fixtures, deviations, json;
  std::vector<std::string> required, allowed;
  bool require_all = false;
  std::vector<char*> rest = {argv[0]};
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](const std::string& flag, std::string& out) {
      if (a == flag && i + 1 < argc) {
        out = argv[++i];
        return true;
      }
      if (a.rfind(flag + "=", 0) == 0) {
        out = a.substr(flag.size() + 1);
        return true;
      }
      return false;
    };
    std::string deviation, group;
    if (a == "--help" || a == "-h") {
      std::cout << kUsage << "\nGroups (doctest suites), with the capabilities each needs:\n";
      for (const Group& g : groups()) {
        std::cout << "  " << g.suite << " [" << (g.needs.empty() ? "-" : join(g.needs))
                  << "]: " << g.what << "\n";
      }
      return 0;
    }
    if (value("--plugin", t.plugin) || value("--scheme", t.scheme) || value("--root", t.root) ||
        value("--options", t.options) || value("--fixtures", fixtures) ||
        value(kProbeFlag, probe) || value("--json", json)) {
      continue;
    }
    if (value("--require", group)) {
      required.push_back(group);
      continue;
    }
    if (value("--allow-skip", group)) {
      allowed.push_back(group);
      continue;
    }
    if (a == "--require-all") {
      require_all = true;
      continue;
    }
    if (value("--deviation", deviation)) {
      add_deviations(t, deviation);
      continue;
    }
    rest.push_back(argv[i]);
  }
  t.plugin = env_or("STOWAGE_TEST_PLUGIN", t.plugin);
  t.scheme = env_or("STOWAGE_TEST_SCHEME", t.scheme);
  t.root = env_or("STOWAGE_TEST_ROOT_URL", t.root);
  if (t.options.empty()) t.options = env_or("STOWAGE_TEST_OPTIONS", "");
  if (t.options.empty()) t.options = "{}";
  add_deviations(t, env_or("STOWAGE_TEST_DEVIATIONS", deviations));
  if (t.plugin.empty() || t.scheme.empty() || t.root.empty()) {
    std::cerr << "stowage-conformance: --plugin, --scheme and --root are required (or "
                 "STOWAGE_TEST_PLUGIN, STOWAGE_TEST_SCHEME, STOWAGE_TEST_ROOT_URL)\n\n"
              << kUsage;
    return 2;
  }
  {
    rapidjson::Document doc;
    doc.Parse(t.options.c_str(), t.options.size());
    if (doc.HasParseError() || !doc.IsObject()) {
      std::cerr << "stowage-conformance: --options must be a JSON object, not '" << t.options
                << "'\n";
      return 2;
    }
  }
  if (std::string bad = check_requirements(required, allowed, require_all); !bad.empty()) {
    std::cerr << "stowage-conformance: " << bad << "\n";
    return 2;
  }
  if (url_scheme(t.root) != t.scheme) {
    std::cerr << "stowage-conformance: the root URL '" << t.root << "' does not have the scheme '"
              << t.scheme << "'\n";
    return 2;
  }
  t.shim = library_folder() / "stowage" / "conformance" / "libstowage_conformance_shim.so";
  if (!probe.empty()) return run_probe(t, probe);

  t.fixtures = find_fixtures(env_or("STOWAGE_TEST_FIXTURES", fixtures));
  if (t.fixtures.empty()) {
    std::cerr << "stowage-conformance: cannot find the golden models (fixtures/index.json); "
                 "give --fixtures <folder>\n";
    return 2;
  }
  const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  t.run_root =
      child(t.root, "run-" + std::to_string(::getpid()) + "-" + std::to_string(now % 100000000));
  load_target(t);

  std::vector<std::string> excluded, skipped;
  Summary summary;
  summary.groups = groups().size();
  for (const Group& g : groups()) {
    std::vector<std::string> missing;
    for (const std::string& cap : g.needs) {
      if (t.load_error || !t.has(cap)) missing.push_back(cap);
    }
    if (t.load_error && std::string(g.suite) != "registration") {
      excluded.push_back(g.suite);
      continue;
    }
    if (missing.empty()) continue;
    excluded.push_back(g.suite);
    skipped.push_back("'" + std::string(g.suite) + "': needs capability " + join(missing, " and ") +
                      ", which the plugin does not declare");
    summary.skipped.push_back({g.suite, missing});
  }
  print_target(t, skipped);

  doctest::Context context;
  context.applyCommandLine(static_cast<int>(rest.size()), rest.data());
  if (!excluded.empty()) context.addFilter("test-suite-exclude", join(excluded, ",").c_str());
  suite_results().clear();
  int rc = context.run();
  if (context.shouldExit()) return rc;
  clean_up(t);
  if (rc == 0 && t.load_error) rc = 1;
  rc = rc == 0 ? 0 : 1;

  fill_summary(summary, required, allowed, require_all);
  if (rc == 0 && (!summary.required_skipped.empty() || !summary.stale_allowances.empty())) rc = 3;
  print_summary(std::cerr, summary);
  for (const SkippedGroup& g : summary.required_skipped) {
    std::cerr << "stowage-conformance: required group '" << g.group
              << "' was skipped: needs capability " << join(g.missing, " and ")
              << ", which the plugin does not declare\n";
  }
  for (const std::string& g : summary.stale_allowances) {
    std::cerr << "stowage-conformance: --allow-skip '" << g << "' is stale: the group ran\n";
  }
  if (!json.empty()) {
    std::string error;
    if (!write_summary_json(json, summary, t.plugin, t.scheme, rc, error)) {
      std::cerr << "stowage-conformance: " << error << "\n";
      return rc == 0 ? 1 : rc;
    }
  }
  return rc;
}

}  // namespace stowage::conformance
