// What every stowage program shares (the stowage command and the commands
// plugins ship): exit codes, the one-line error, parsing and running.
#include <cstdio>
#include <exception>
#include <iostream>
#include <new>

#include "commands_internal.hpp"

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

void configure_program(CLI::App& app, const std::string& version_line) {
  app.footer(exit_codes_footer());
  app.set_version_flag("--version", version_line);
  app.require_subcommand(1);
  app.get_formatter()->column_width(34);
}

int guarded_main(int (*run_main)(int, char**), int argc, char** argv) noexcept {
  try {
    return run_main(argc, argv);
  } catch (...) {
    std::fputs("stowage: error: unexpected failure\n", stderr);
    return kExitError;
  }
}

void print_error(std::string_view message) {
  std::fprintf(stderr, "stowage: error: %s\n", one_line(message).c_str());
}

int run_reporting_errors(const std::function<int()>& body) {
  try {
    return body();
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

int parse_and_run(CLI::App& app, Runner& run, int argc, char** argv,
                  const std::function<void()>& before_run) {
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
  return run_reporting_errors([&] {
    if (before_run) before_run();
    return run();
  });
}

}  // namespace stowage::cli
