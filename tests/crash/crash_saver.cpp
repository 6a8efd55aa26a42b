// The process the crash harness kills: saves models A and B alternately to
// one URL, forever, reporting each step on stdout so the harness can tell
// where in a save the kill landed.
//
// Usage: crash_saver PLUGIN_DIR URL OPTIONS_JSON FIRST [SRC_A SRC_B]
//   FIRST (A or B) is the model saved first: the harness passes the one that
//   is not stored, so a kill during the first save has two outcomes to tell
//   apart.
//   With SRC_A and SRC_B (URLs holding models A and B), each save is a
//   streaming copy from the source of that model instead (OPTIONS_JSON for
//   the destination, a queue of one crash shard); a copy that did not
//   stream counts as failed.
// Prints "ready" once the handler is open, then for every save "saving N",
// "progress DONE TOTAL" at each progress report and "saved N". A failed save
// (the server of an http:// URL was killed) prints "failed MESSAGE" and
// exits with 1.
#include <cstdio>
#include <exception>
#include <stdexcept>
#include <string>

#include "crash_models.hpp"
#include "stowage/management.hpp"
#include "stowage/registry.hpp"

int main(int argc, char** argv) {
  if ((argc != 5 && argc != 7) || (argv[4][0] != 'A' && argv[4][0] != 'B')) {
    std::fprintf(stderr, "usage: crash_saver PLUGIN_DIR URL OPTIONS_JSON A|B [SRC_A SRC_B]\n");
    return 2;
  }
  const bool copy = argc == 7;
  const unsigned long first = argv[4][0] == 'A' ? 0 : 1;
  stowage::Registry registry;
  registry.add_plugin_folder(argv[1]);
  auto handler = registry.open(argv[2], argv[3]);
  const stowage::ModelArtifacts models[2] = {stowage::crash::model('A'),
                                             stowage::crash::model('B')};
  stowage::CallContext call;
  call.on_progress = [](uint64_t done, uint64_t total) {
    std::printf("progress %llu %llu\n", static_cast<unsigned long long>(done),
                static_cast<unsigned long long>(total));
    std::fflush(stdout);
  };
  std::printf("ready\n");
  std::fflush(stdout);
  for (unsigned long n = 0;; ++n) {
    std::printf("saving %lu\n", n);
    std::fflush(stdout);
    try {
      const unsigned long which = (n + first) % 2;
      if (copy) {
        stowage::TransferStats stats;
        stowage::TransferOptions options;
        options.destination_options = argv[3];
        options.queue_bytes = stowage::crash::kShardSize;
        options.stats = &stats;
        options.call = call;
        stowage::copy_model(argv[5 + which], argv[2], options, registry);
        if (!stats.streamed) throw std::runtime_error("the copy did not stream");
      } else {
        handler->save(models[which], call);
      }
    } catch (const std::exception& e) {
      std::printf("failed %s\n", e.what());
      std::fflush(stdout);
      return 1;
    }
    std::printf("saved %lu\n", n);
    std::fflush(stdout);
  }
}
