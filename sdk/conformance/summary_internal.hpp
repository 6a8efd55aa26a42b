// The runner's summary: which groups ran, passed, failed or were skipped
// (and the capability that gated each skip), which required groups were
// skipped, and the grade line, printed on stderr and written as JSON.
// Thread-safety: main thread only; the doctest listener behind
// suite_results() records from the thread that runs the cases.
#pragma once

#include <filesystem>
#include <map>
#include <ostream>
#include <string>
#include <vector>

namespace stowage::conformance {

// What the cases of one doctest suite did in this run.
struct SuiteResult {
  int cases_run = 0;
  int cases_failed = 0;
};

// Filled by a doctest listener as the cases run, keyed by suite name.
std::map<std::string, SuiteResult>& suite_results();

struct SkippedGroup {
  std::string group;
  std::vector<std::string> missing;  // the capabilities the plugin does not declare
};

struct Summary {
  size_t groups = 0;                    // every group the suite has
  std::vector<std::string> passed;      // ran, every case passed
  std::vector<std::string> failed;      // ran, some case failed
  std::vector<SkippedGroup> skipped;    // gated by a capability
  std::vector<std::string> unselected;  // not run: doctest filters or a plugin that did not load
  std::vector<SkippedGroup> required_skipped;  // skipped although --require/--require-all
  std::vector<std::string> stale_allowances;   // --allow-skip, but the group ran

  // "19/19 groups, 0 skipped" (passed/all, then skipped, then the failed
  // and unselected counts when there are any).
  std::string grade() const;
};

// The human summary, ending with "grade: <grade()>".
void print_summary(std::ostream& out, const Summary& s);

// The summary as one JSON object (format in --help); false with `error`
// set when the file cannot be written.
bool write_summary_json(const std::filesystem::path& file, const Summary& s,
                        const std::string& plugin, const std::string& scheme, int exit_code,
                        std::string& error);

}  // namespace stowage::conformance
