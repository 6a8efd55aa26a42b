// Saves two models alternately to one URL, forever, for browser_crash_test,
// which kills this process with SIGKILL at random moments.
//
// Usage: browser_crash_helper PLUGIN_DIR URL OPTIONS_JSON FIRST
// FIRST (A or B) is the model saved first: the test passes the one that is
// not stored, so a kill during the first save has two outcomes to tell apart.
// Prints "ready", then "saving N" before and "saved N" after each save.
#include <cstdio>
#include <string>

#include "crash_models_internal.hpp"
#include "stowage/registry.hpp"

int main(int argc, char** argv) {
  if (argc != 5 || (argv[4][0] != 'A' && argv[4][0] != 'B')) {
    std::fprintf(stderr, "usage: browser_crash_helper PLUGIN_DIR URL OPTIONS_JSON A|B\n");
    return 2;
  }
  const unsigned long first = argv[4][0] == 'A' ? 0 : 1;
  stowage::Registry registry;
  registry.add_plugin_folder(argv[1]);
  auto handler = registry.open(argv[2], argv[3]);
  const stowage::ModelArtifacts models[2] = {stowage::crash::model('A'),
                                             stowage::crash::model('B')};
  std::printf("ready\n");
  std::fflush(stdout);
  for (unsigned long n = 0;; ++n) {
    std::printf("saving %lu\n", n);
    std::fflush(stdout);
    handler->save(models[(n + first) % 2]);
    std::printf("saved %lu\n", n);
    std::fflush(stdout);
  }
}
