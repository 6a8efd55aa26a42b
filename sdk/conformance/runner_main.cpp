// stowage-conformance: the conformance suite's runner (usage in
// stowage/conformance.hpp, or run it with --help).
#include "stowage/conformance.hpp"

int main(int argc, char** argv) { return stowage::conformance::run(argc, argv); }
