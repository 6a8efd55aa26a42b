// Must not compile: the registry is the host's, and a plugin built against
// stowage::sdk cannot see it (sdk/testing/CMakeLists.txt, test sdk_boundary).
#include "stowage/registry.hpp"
