// The runner's summary (summary_internal.hpp). A doctest listener records
// per suite what ran and what failed, so the summary reports what happened,
// not what the capability bits predicted.
#include <doctest/doctest.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <fstream>

#include "stowage/text.hpp"
#include "summary_internal.hpp"

namespace stowage::conformance {
namespace {

struct SuiteListener : doctest::IReporter {
  explicit SuiteListener(const doctest::ContextOptions&) {}

  void test_case_start(const doctest::TestCaseData& tc) override { suite_ = tc.m_test_suite; }
  void test_case_end(const doctest::CurrentTestCaseStats& stats) override {
    SuiteResult& r = suite_results()[suite_];
    ++r.cases_run;
    if (!stats.testCaseSuccess) ++r.cases_failed;
  }

  void report_query(const doctest::QueryData&) override {}
  void test_run_start() override {}
  void test_run_end(const doctest::TestRunStats&) override {}
  void test_case_reenter(const doctest::TestCaseData&) override {}
  void test_case_exception(const doctest::TestCaseException&) override {}
  void subcase_start(const doctest::SubcaseSignature&) override {}
  void subcase_end() override {}
  void log_assert(const doctest::AssertData&) override {}
  void log_message(const doctest::MessageData&) override {}
  void test_case_skipped(const doctest::TestCaseData&) override {}

 private:
  std::string suite_;
};

DOCTEST_REGISTER_LISTENER("stowage_conformance_suites", 1, SuiteListener);

std::string needs(const SkippedGroup& g) {
  std::string caps;
  for (const auto& c : g.missing) caps += (caps.empty() ? "" : " and ") + c;
  return "'" + g.group + "': needs capability " + caps;
}

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

void strings(JsonWriter& w, const char* key, const std::vector<std::string>& items) {
  w.Key(key);
  w.StartArray();
  for (const auto& s : items) w.String(s.c_str(), static_cast<rapidjson::SizeType>(s.size()));
  w.EndArray();
}

void skips(JsonWriter& w, const char* key, const std::vector<SkippedGroup>& items) {
  w.Key(key);
  w.StartArray();
  for (const auto& g : items) {
    w.StartObject();
    w.Key("group");
    w.String(g.group.c_str());
    strings(w, "needs", g.missing);
    w.EndObject();
  }
  w.EndArray();
}

}  // namespace

std::map<std::string, SuiteResult>& suite_results() {
  static std::map<std::string, SuiteResult> results;
  return results;
}

std::string Summary::grade() const {
  std::string g = std::to_string(passed.size()) + "/" + std::to_string(groups) + " groups, " +
                  std::to_string(skipped.size()) + " skipped";
  if (!failed.empty()) g += ", " + std::to_string(failed.size()) + " failed";
  if (!unselected.empty()) g += ", " + std::to_string(unselected.size()) + " not run";
  return g;
}

void print_summary(std::ostream& out, const Summary& s) {
  out << "stowage-conformance summary:\n";
  out << "  passed (" << s.passed.size() << "): " << join(s.passed) << "\n";
  if (!s.failed.empty()) out << "  FAILED (" << s.failed.size() << "): " << join(s.failed) << "\n";
  for (const SkippedGroup& g : s.skipped) out << "  skipped " << needs(g) << "\n";
  if (!s.unselected.empty()) {
    out << "  not run (" << s.unselected.size() << "): " << join(s.unselected) << "\n";
  }
  for (const SkippedGroup& g : s.required_skipped) {
    out << "  REQUIRED GROUP SKIPPED " << needs(g) << ", which the plugin does not declare\n";
  }
  for (const std::string& g : s.stale_allowances) {
    out << "  STALE --allow-skip '" << g << "': the plugin declares what it needs and it ran\n";
  }
  out << "grade: " << s.grade() << "\n";
  out.flush();
}

bool write_summary_json(const std::filesystem::path& file, const Summary& s,
                        const std::string& plugin, const std::string& scheme, int exit_code,
                        std::string& error) {
  rapidjson::StringBuffer sb;
  JsonWriter w(sb);
  w.StartObject();
  w.Key("plugin");
  w.String(plugin.c_str());
  w.Key("scheme");
  w.String(scheme.c_str());
  w.Key("groups");
  w.Uint64(s.groups);
  strings(w, "passed", s.passed);
  strings(w, "failed", s.failed);
  skips(w, "skipped", s.skipped);
  strings(w, "not_run", s.unselected);
  skips(w, "required_skipped", s.required_skipped);
  strings(w, "stale_allowances", s.stale_allowances);
  w.Key("grade");
  w.String(s.grade().c_str());
  w.Key("exit_code");
  w.Int(exit_code);
  w.EndObject();
  std::ofstream f(file, std::ios::binary | std::ios::trunc);
  f << sb.GetString() << "\n";
  f.close();
  if (!f) {
    error = "cannot write the JSON summary to '" + file.string() + "'";
    return false;
  }
  return true;
}

}  // namespace stowage::conformance
