// The http:// load benchmark program (bench/http_load_bench.sh drives it):
//   http_load_bench load URL [OPTIONS_JSON] [--no-verify-digests]
//       stowage::load_model over http(s), checking the weight digests model.json
//       records unless --no-verify-digests (CallContext::verify_digests)
//   http_load_bench check URL [OPTIONS_JSON] [--no-verify-digests]
//       the same, then touches every byte (touch_internal.h) and prints the sum
// Prints bytes, seconds of the load (and of the touch) and peak RSS. The
// timed runs use "load": a load ends with the bytes in memory, as curl's
// files in /dev/shm do; "check" proves they are the served bytes.
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <exception>
#include <string>

#include "peak_rss_internal.h"
#include "stowage/management.hpp"
#include "touch_internal.h"

int main(int argc, char** argv) {
  const std::string cmd = argc > 1 ? argv[1] : "";
  stowage::CallContext call;
  if (argc > 3 && std::string(argv[argc - 1]) == "--no-verify-digests") {
    call.verify_digests = false;
    --argc;
  }
  if (argc < 3 || argc > 4 || (cmd != "load" && cmd != "check")) {
    std::fprintf(stderr,
                 "usage: http_load_bench load|check URL [OPTIONS_JSON] [--no-verify-digests]\n");
    return 2;
  }
  try {
    const auto t0 = std::chrono::steady_clock::now();
    const auto a = stowage::load_model(argv[2], argc == 4 ? argv[3] : "{}", call);
    const auto t1 = std::chrono::steady_clock::now();
    uint64_t bytes = 0;
    for (const auto& b : *a.weight_data) bytes += b.size();
    std::printf("bytes=%" PRIu64 " buffers=%zu load_seconds=%.6f", bytes, a.weight_data->size(),
                std::chrono::duration<double>(t1 - t0).count());
    if (cmd == "check") {
      uint64_t sum = 0;
      for (const auto& b : *a.weight_data) sum += stowage_touch_sum(b.data(), b.size());
      std::printf(" sum=%016" PRIx64 " touch_seconds=%.6f", sum,
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count());
    }
    std::printf(" peak_rss_kib=%ld\n", stowage_peak_rss_kib());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "http_load_bench: %s\n", e.what());
    return 1;
  }
}
