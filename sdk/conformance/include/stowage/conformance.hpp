// The plugin conformance suite: doctest cases that check one plugin against
// the promises of stowage/abi.h, loading it through the production
// stowage::Registry.
//
// The runner `stowage-conformance` is a one-line main around run(); a
// project that wants its own executable links stowage::conformance and
// calls run() the same way:
//
//   #include "stowage/conformance.hpp"
//   int main(int argc, char** argv) { return stowage::conformance::run(argc, argv); }
//
// Arguments (each also read from the environment when absent):
//   --plugin <manifest.json | library.so>   STOWAGE_TEST_PLUGIN
//   --scheme <scheme>                       STOWAGE_TEST_SCHEME
//   --root <url>                            STOWAGE_TEST_ROOT_URL
//   --options <json object>                 STOWAGE_TEST_OPTIONS
//   --deviation <name> (repeatable)         STOWAGE_TEST_DEVIATIONS (comma-separated)
//   --fixtures <folder>                     STOWAGE_TEST_FIXTURES
//   --require <group> (repeatable)          the group must not be skipped
//   --require-all                           no group may be skipped, except
//   --allow-skip <group> (repeatable)       those named (with --require-all)
//   --json <file>                           the summary, as JSON, to a file
// Every other argument goes to doctest (-tc=, -ts=, -s, --reporters=, ...).
// `--help` prints the groups, the deviations and the JSON summary's fields.
//
// Thread-safety: run() is called once per process, from main.
#pragma once

namespace stowage::conformance {

// Loads the plugin, runs the groups its capability bits declare, prints a
// summary on stderr (groups passed, failed, skipped with the capability that
// gated each, and a grade such as "19/19 groups, 0 skipped") and returns the
// process exit code: 0 when every check passed, 1 when one failed, 2 for bad
// usage, 3 when a required group was skipped (or an --allow-skip is stale).
int run(int argc, char** argv);

}  // namespace stowage::conformance
