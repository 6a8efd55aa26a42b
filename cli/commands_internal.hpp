// What the subcommands of the stowage command share: the options every
// subcommand takes, exit codes, URL and option handling, output helpers and
// progress reporting. Internal to cli/.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "stowage/error.hpp"
#include "stowage/handler.hpp"
#include "stowage/management.hpp"
#include "stowage/quantize.hpp"
#include "stowage/text.hpp"
#include "stowage/weights.hpp"

namespace stowage::cli {

// Exit codes scripts can rely on; documented in docs/cli.md and in --help.
enum ExitCode : int {
  kExitOk = 0,
  kExitError = 1,        // any other failure
  kExitUsage = 2,        // bad command line
  kExitNotFound = 3,     // no model, file or plugin at that URL
  kExitInvalidData = 4,  // invalid or corrupt model data, or a bad URL/option
  kExitPermission = 5,   // the store refused access
  kExitUnavailable = 6,  // transient: store unavailable or deadline exceeded
  kExitUnsupported = 7,  // the scheme cannot do that operation
  kExitCancelled = 130,  // interrupted (Ctrl-C)
};
int exit_code_for(ErrorCode code) noexcept;
// The exit-code table printed at the end of every --help.
std::string exit_codes_footer();

// A command-line mistake found after parsing (bad JSON in --dst-options, ...).
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Options every subcommand takes. Thread-safety: written while parsing only.
struct CommonOptions {
  bool json = false;
  bool quiet = false;
  std::string config;  // --config FILE, applied to the registry before running
};
void add_common_options(CLI::App& sub, CommonOptions& common);

// Options for the one URL a subcommand works on: --options JSON and
// -o KEY=VALUE (repeatable; VALUE is taken as JSON when it parses as JSON,
// as a string otherwise).
struct UrlOptions {
  std::string json = "{}";
  std::vector<std::string> pairs;
  std::string pair_flag = "-o";  // how messages name the KEY=VALUE flag
};
void add_url_options(CLI::App& sub, UrlOptions& options);
// --no-verify-digests, for commands that load (CallContext::verify_digests).
void add_no_verify_digests_flag(CLI::App& sub, bool& no_verify_digests);
// The merged options object as compact JSON. Throws UsageError.
std::string options_json(const UrlOptions& options, std::string_view what);

// The command being run, chosen by the subcommand's parse callback.
using Runner = std::function<int()>;

// ---- Running a program (program.cpp) ---------------------------------------
// Shared by the stowage command and the commands plugins ship, so both
// report errors and exit alike.

// The settings every stowage program's top-level app shares: the exit-code
// footer (set before subcommands, which copy it when created), --version
// printing version_line, exactly one subcommand, the help's column width.
void configure_program(CLI::App& app, const std::string& version_line);
// main() of a stowage program: run_main's exit code, and nothing escapes,
// not even a failure while printing an error.
int guarded_main(int (*run_main)(int, char**), int argc, char** argv) noexcept;

// "stowage: error: <message>" on stderr, on one line.
void print_error(std::string_view message);
// body(), with a failure printed by print_error and turned into its exit code.
int run_reporting_errors(const std::function<int()>& body);
// Parses argv (a usage error: its one line and kExitUsage; --help and
// --version: printed, kExitOk), installs the Ctrl-C handler, then runs
// before_run (may be empty) and the chosen command through
// run_reporting_errors.
int parse_and_run(CLI::App& app, Runner& run, int argc, char** argv,
                  const std::function<void()>& before_run);

// ---- Commands of plugins (plugin_commands.cpp) -----------------------------

// `stowage NAME ARGS...` where NAME is a command a plugin's manifest names
// ("commands": {"NAME": "program"}): when argv's command word is not one of
// app's own commands but a plugin's, runs that program with ARGS in place
// of this process (its exit code is the command's) and does not return;
// top-level --config FILE is applied to the registry first (its "allow"
// list decides) and handed to the program as STOWAGE_CONFIG. Returns
// nullopt when the word is no plugin's command, and an exit code when the
// command cannot run (printed as an error: not allowed, program missing,
// two plugins claim it).
std::optional<int> run_plugin_command(CLI::App& app, int argc, char** argv);
// Lists the plugins' commands in app's --help (and so in its typo hints).
// Discovery failures are left for the command that is run to report.
void add_plugin_command_entries(CLI::App& app);

void add_copy_commands(CLI::App& app, CommonOptions& common, Runner& run);
void add_list_commands(CLI::App& app, CommonOptions& common, Runner& run);
void add_info_command(CLI::App& app, CommonOptions& common, Runner& run);
void add_verify_command(CLI::App& app, CommonOptions& common, Runner& run);
void add_plugins_command(CLI::App& app, CommonOptions& common, Runner& run);
void add_serve_command(CLI::App& app, CommonOptions& common, Runner& run);
void add_cache_command(CLI::App& app, CommonOptions& common, Runner& run);

// ---- URLs and options JSON (options.cpp) ----------------------------------

// A bare path (no "://") stands for file://path, as a convenience. Throws
// UsageError for an empty argument, and for "s3:/b/x" or "s3:b/x" when s3
// is a scheme the registry serves (saying "did you mean s3://b/x?").
std::string normalize_url(std::string_view arg);
// Parses text as a JSON object (throws UsageError naming `what`) and sets
// key to the JSON value value_json; returns compact JSON.
std::string set_json_member(std::string_view object_json, std::string_view key,
                            std::string_view value_json, std::string_view what);
// object_json without key, compact.
std::string remove_json_member(std::string_view object_json, std::string_view key);
// True when message names url (the URL itself or its path part).
bool message_names(std::string_view message, std::string_view url);
// Rethrows e, with "url: " (redacted) in front when its message does not
// name url, so every failure says what it was about.
[[noreturn]] void rethrow_naming(const Error& e, std::string_view url);

// ---- Usage errors (usage.cpp) ------------------------------------------------

// The candidate nearest to word (by edit distance), or "" when none is
// close enough to be a typo of it.
std::string closest_word(std::string_view word, const std::vector<std::string>& candidates);
// One line for a command-line mistake CLI11 reported: an unknown command
// with the nearest one ("unknown command 'cpy' (did you mean 'copy'?)"),
// an unknown option with the nearest one the command takes, or CLI11's
// message, each saying which --help to read. app's name starts the command
// path: "stowage", or "stowage browser" for a plugin's program (whose top
// level is then a command of stowage's).
std::string usage_error_text(CLI::App& app, const CLI::ParseError& error, int argc, char** argv);

// ---- Output (output.cpp) --------------------------------------------------

// Left-aligned text columns; columns listed in numeric are right-aligned.
class Table {
 public:
  explicit Table(std::vector<std::string> header, std::vector<size_t> numeric = {});
  void add(std::vector<std::string> row);
  std::string render() const;
  bool empty() const { return rows_.empty(); }

 private:
  std::vector<std::string> header_;
  std::vector<size_t> numeric_;
  std::vector<std::vector<std::string>> rows_;
};

// "4194304 bytes (4.0 MiB)"; "12 bytes" under 1 KiB.
std::string bytes_text(uint64_t bytes);
// "[2,3]", "[]" for a scalar.
std::string shape_text(const std::vector<int64_t>& shape);
// "uint8 scale=0.5 min=-1", "float16", "-" when not quantized.
std::string quantization_text(const WeightSpec& spec);
// Shortest text that reads back as the same double ("nan", "inf" spelled out).
std::string number_text(double value);
// One line: newlines in a message become "; ".
std::string one_line(std::string_view message);

// A JSON document built with RapidJSON (pretty, two-space indent).
class JsonWriter {
 public:
  JsonWriter();
  ~JsonWriter();
  JsonWriter& begin_object();
  JsonWriter& end_object();
  JsonWriter& begin_array();
  JsonWriter& end_array();
  JsonWriter& key(std::string_view k);
  JsonWriter& string(std::string_view v);
  JsonWriter& nullable_string(const std::optional<std::string>& v);
  JsonWriter& uint(uint64_t v);
  JsonWriter& integer(int64_t v);
  // Non-finite values become null (JSON has no NaN).
  JsonWriter& number(double v);
  JsonWriter& boolean(bool v);
  JsonWriter& null();
  // Embeds JSON text as it is (artifact fields, info_to_json).
  JsonWriter& raw(std::string_view json_text);
  // The document with a trailing newline.
  std::string str() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// ---- Progress (progress.cpp) ------------------------------------------------

// Installs the SIGINT/SIGTERM handler that asks running calls to cancel; a
// second signal ends the process at once.
void install_interrupt_handler();
bool interrupted() noexcept;

// Has the host print one line on stderr for each retry it makes
// ("retrying GET https://h/m/model.json (2/4) after HTTP 503"), so a
// struggling store is not silence: when stderr is a terminal (or
// STOWAGE_PROGRESS=always) and -q was not given. Call before opening handlers.
void announce_retries(const CommonOptions& common);

// A byte-level progress bar on stderr, drawn only when stderr is a terminal
// (or STOWAGE_PROGRESS=always; never with STOWAGE_PROGRESS=never) and
// neither --json nor --quiet was given. Thread-safety: the callbacks it
// hands out may be called from any thread.
class Progress {
 public:
  Progress(const CommonOptions& common, std::string label);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // A context whose on_progress draws this bar and whose is_cancelled
  // reports Ctrl-C.
  CallContext context();
  // For TransferOptions::on_phase_progress: the bar is labelled with the
  // phase ("loading", then "saving"), each with its own total.
  std::function<void(TransferPhase, uint64_t, uint64_t)> phases();
  // Erases the bar.
  void finish();

 private:
  struct State;
  std::shared_ptr<State> state_;
};

// ---- Weights (weights_layout.cpp) ------------------------------------------

// Where one tensor's bytes sit in the concatenated weight data.
struct TensorExtent {
  uint64_t offset = 0;
  uint64_t bytes = 0;
};
// Sizes every spec in order (string tensors by walking their length
// prefixes). Throws Error(kDataLoss) when the data runs out.
std::vector<TensorExtent> tensor_extents(const WeightData& data,
                                         const std::vector<WeightSpec>& specs,
                                         std::string_view source);

// min, max and mean of a decoded tensor's values (dequantised; complex64 over
// its real and imaginary parts; bool as 0/1). NaN values are skipped and
// counted.
struct TensorStats {
  bool numeric = false;  // false for string tensors
  uint64_t count = 0;    // values that are not NaN
  uint64_t nan_count = 0;
  double min = 0;
  double max = 0;
  double mean = 0;  // NaN when count == 0
};
TensorStats tensor_stats(const Tensor& tensor);

// ---- Quantization on save (quantize_option.cpp) ------------------------------

struct QuantizeArgs {
  std::string dtype;              // --quantize; empty: no quantization
  std::vector<std::string> only;  // --quantize-only, each a comma-separated list
  std::string numpy = "2";        // --quantize-numpy
};
void add_quantize_options(CLI::App& sub, QuantizeArgs& args);
// The library options, or nullopt without --quantize. Throws UsageError.
std::optional<QuantizeOptions> quantize_options(const QuantizeArgs& args);
// Lines for the human summary of a copy or move.
std::string quantize_summary(const QuantizeOptions& options, const QuantizeReport& report);
// Unmatched patterns, float16 overflow and skipped empty weights, on stderr.
void quantize_warnings(const QuantizeReport& report);
// The "quantization" member of --json output: null when not quantizing.
void quantize_json(JsonWriter& w, const QuantizeOptions* options, const QuantizeReport* report);

}  // namespace stowage::cli
