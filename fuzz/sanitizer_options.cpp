// Sanitizer defaults compiled into every fuzz target, so a bare run of a
// target (CI or by hand) stops at the first report and skips the known
// third-party reports listed in ubsan.supp.

extern "C" const char* __ubsan_default_options() {
  return "halt_on_error=1:print_stacktrace=1:suppressions=" STOWAGE_FUZZ_UBSAN_SUPPRESSIONS;
}
