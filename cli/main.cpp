// The stowage command: copy, move, list, remove, inspect and verify
// TensorFlow.js models through any URL scheme a plugin serves.
#include <cstdio>
#include <exception>
#include <iostream>

#include "commands_internal.hpp"
#include "stowage/config.hpp"
#include "stowage/registry.hpp"

namespace stowage::cli {

int exit_code_for(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::kOk:
      return kExitOk;
    case ErrorCode::kNotFound:
      return kExitNotFound;
    case ErrorCode::kInvalidArgument:
    case ErrorCode::kDataLoss:
      return kExitInvalidData;
    case ErrorCode::kPermissionDenied:
      return kExitPermission;
    case ErrorCode::kUnavailable:
    case ErrorCode::kDeadlineExceeded:
      return kExitUnavailable;
    case ErrorCode::kUnimplemented:
      return kExitUnsupported;
    case ErrorCode::kCancelled:
      return kExitCancelled;
    case ErrorCode::kAlreadyExists:
    case ErrorCode::kResourceExhausted:
    case ErrorCode::kInternal:
      break;
  }
  return kExitError;
}

std::string exit_codes_footer() {
  return "URLs: scheme://path, e.g. file://models/a/model.json or memory://a; a bare path means "
         "file://path.\n"
         "Exit codes:\n"
         "  0    success\n"
         "  1    other error (internal, already exists, resource exhausted)\n"
         "  2    usage error (bad command line)\n"
         "  3    not found: no model, file or plugin for that URL\n"
         "  4    invalid or corrupt model data, or a bad URL or option\n"
         "  5    permission denied\n"
         "  6    store unavailable or deadline exceeded (retrying may help)\n"
         "  7    the scheme does not support that operation\n"
         "  130  interrupted\n"
         "Errors are printed on stderr as one line: stowage: error: <message>";
}

namespace {

void print_error(std::string_view message) {
  std::fprintf(stderr, "stowage: error: %s\n", one_line(message).c_str());
}

int run_main(int argc, char** argv) {
  CLI::App app{
      "stowage: copy, move, list, remove, inspect and verify TensorFlow.js models "
      "(model.json + weight shards) through URL schemes served by plugins.",
      "stowage"};
  // Subcommands copy the footer when they are created, so it comes first.
  app.footer(exit_codes_footer());
  app.set_version_flag("--version", "stowage " STOWAGE_VERSION);
  app.require_subcommand(1);
  app.get_formatter()->column_width(34);

  CommonOptions common;
  app.add_option("--config", common.config,
                 "Host configuration file (plugin folders, allow-list, aliases, defaults)")
      ->check(CLI::ExistingFile);

  Runner run;
  add_copy_commands(app, common, run);
  add_list_commands(app, common, run);
  add_info_command(app, common, run);
  add_verify_command(app, common, run);
  add_plugins_command(app, common, run);
  add_browser_command(app, common, run);
  add_serve_command(app, common, run);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) {
      app.exit(e);  // --help, --version
      return kExitOk;
    }
    print_error(usage_error_text(app, e, argc, argv));
    return kExitUsage;
  }
  if (!run) {
    std::cerr << app.help();
    return kExitUsage;
  }

  install_interrupt_handler();
  try {
    if (!common.config.empty()) {
      Registry::global().apply_config(load_config_file(common.config));
    }
    return run();
  } catch (const UsageError& e) {
    print_error(e.what());
    return kExitUsage;
  } catch (const Error& e) {
    print_error(e.what());
    return exit_code_for(e.code());
  } catch (const std::bad_alloc&) {
    print_error("out of memory");
    return kExitError;
  } catch (const std::exception& e) {
    print_error(e.what());
    return kExitError;
  }
}

}  // namespace
}  // namespace stowage::cli

int main(int argc, char** argv) {
  try {
    return stowage::cli::run_main(argc, argv);
  } catch (...) {
    // Nothing may escape main: not even a failure while printing an error.
    std::fputs("stowage: error: unexpected failure\n", stderr);
    return stowage::cli::kExitError;
  }
}
