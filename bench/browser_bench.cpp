// indexeddb:// against file:// in the same run (bench/README.md):
//
//   browser_bench [MIB [REPS [DIR]]]     defaults: 256 MiB, 5 repetitions,
//                                        DIR = a new folder under /tmp
//
// A model of MIB MiB (float32 tensors of 4 MiB, pseudo-random values) is
// made in memory once. Each repetition then times, in an order that
// alternates between repetitions:
//   - save_model to file://DIR/file/model (tfjs-node's single weights.bin)
//     and to indexeddb://model in the profile DIR/profile, both with their
//     default durability (fsync before the save returns), replacing the
//     model of the previous repetition as an application saving again would;
//   - load_model of each, then a touch of every byte (touch_internal.h); both sums
//     must equal the model's.
// It prints the median seconds and the ratios indexeddb / file (target:
// at most 2 for save and for load), plus peak RSS. Not part of the test run.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "peak_rss_internal.h"
#include "stowage/management.hpp"
#include "stowage/model_json.hpp"
#include "touch_internal.h"

namespace fs = std::filesystem;

namespace {

constexpr uint64_t kMiB = 1024 * 1024;

double seconds_of(const std::function<void()>& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

stowage::ModelArtifacts make_artifacts(uint64_t mib) {
  stowage::ModelArtifacts a;
  a.model_topology = R"({"class_name":"Synthetic","config":{"note":"stowage browser benchmark"}})";
  a.format = "graph-model";
  a.weight_specs.emplace();
  a.weight_data.emplace();
  uint64_t state = 0x9e3779b97f4a7c15ull;
  for (uint64_t t = 0; t < mib / 4; ++t) {
    std::vector<uint8_t> bytes(4 * kMiB);
    for (uint64_t i = 0; i < bytes.size(); i += 8) {
      state ^= state << 13;
      state ^= state >> 7;
      state ^= state << 17;
      // Finite float32 values: clear the top exponent bit of each word.
      const uint64_t v = state & 0xBFFFFFFFBFFFFFFFull;
      std::memcpy(bytes.data() + i, &v, 8);
    }
    char name[48];
    std::snprintf(name, sizeof name, "layer_%03" PRIu64 "/kernel", t);
    a.weight_specs->push_back({name, {static_cast<int64_t>(kMiB)}, "float32", {}, {}});
    a.weight_data->push_back(stowage::Buffer::from_vector(std::move(bytes)));
  }
  return a;
}

uint64_t touch(const stowage::ModelArtifacts& a) {
  uint64_t sum = 0;
  for (const stowage::Buffer& b : *a.weight_data) {
    sum += stowage_touch_sum(b.data(), static_cast<size_t>(b.size()));
  }
  return sum;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const uint64_t mib = argc > 1 ? std::strtoull(argv[1], nullptr, 10) / 4 * 4 : 256;
    const int reps = argc > 2 ? std::atoi(argv[2]) : 5;
    fs::path dir;
    if (argc > 3) {
      dir = fs::absolute(argv[3]);
      fs::create_directories(dir);
    } else {
      std::string tmpl = (fs::temp_directory_path() / "stowage-browser-bench-XXXXXX").string();
      if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
      dir = tmpl;
    }
    if (mib == 0 || reps < 1) throw std::runtime_error("usage: browser_bench [MIB [REPS [DIR]]]");

    const stowage::ModelArtifacts model = make_artifacts(mib);
    const uint64_t expected = touch(model);
    const std::string file_url = "file://" + (dir / "file" / "model").string();
    const std::string idb_url = "indexeddb://model";
    const std::string idb_options =
        "{\"profile\":" + stowage::json::quote((dir / "profile").string()) + "}";
    std::printf("model: %" PRIu64 " MiB in %zu tensors; folder %s\n", mib,
                model.weight_data->size(), dir.c_str());

    std::vector<double> file_save, file_load, idb_save, idb_load;
    auto run_file = [&] {
      file_save.push_back(seconds_of([&] { stowage::save_model(file_url, model); }));
      uint64_t sum = 0;
      file_load.push_back(seconds_of([&] { sum = touch(stowage::load_model(file_url)); }));
      if (sum != expected) throw std::runtime_error("file:// gave other bytes");
    };
    auto run_idb = [&] {
      idb_save.push_back(seconds_of([&] { stowage::save_model(idb_url, model, idb_options); }));
      uint64_t sum = 0;
      idb_load.push_back(
          seconds_of([&] { sum = touch(stowage::load_model(idb_url, idb_options)); }));
      if (sum != expected) throw std::runtime_error("indexeddb:// gave other bytes");
    };
    // One untimed round warms caches and creates both stores.
    run_file();
    run_idb();
    file_save.clear(), file_load.clear(), idb_save.clear(), idb_load.clear();
    for (int r = 0; r < reps; ++r) {
      ::sync();
      if (r % 2 == 0) {
        run_file();
        ::sync();
        run_idb();
      } else {
        run_idb();
        ::sync();
        run_file();
      }
    }
    const double fs_ = median(file_save), fl = median(file_load);
    const double is = median(idb_save), il = median(idb_load);
    const double gib = static_cast<double>(mib) / 1024.0;
    std::printf("median of %d: file:// save %.3f s (%.0f MiB/s), load %.3f s (%.0f MiB/s)\n", reps,
                fs_, mib / fs_, fl, mib / fl);
    std::printf("              indexeddb:// save %.3f s (%.0f MiB/s), load %.3f s (%.0f MiB/s)\n",
                is, mib / is, il, mib / il);
    std::printf("ratio indexeddb/file: save %.2f (target <= 2), load %.2f (target <= 2)\n",
                is / fs_, il / fl);
    std::printf("peak RSS %ld MiB for a %.2f GiB model\n", stowage_peak_rss_kib() / 1024, gib);
    std::error_code ec;
    if (argc <= 3) fs::remove_all(dir, ec);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "browser_bench: %s\n", e.what());
    return 1;
  }
}
