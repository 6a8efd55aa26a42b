// run_parallel: every task runs once, at most `width` at a time, and the
// first failure stops the batch and is the one rethrown. cpu_width: one
// thread for little work, never more threads than tasks.
#include "stowage/parallel.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using stowage::cpu_width;
using stowage::kParallelBytes;
using stowage::run_parallel;

TEST_CASE("every task runs once, never more than width at a time") {
  std::vector<std::atomic<int>> runs(50);
  std::atomic<int> running{0}, peak{0};
  run_parallel(runs.size(), 4, [&](size_t i, const std::atomic<bool>&) {
    int now = ++running;
    int p = peak.load();
    while (now > p && !peak.compare_exchange_weak(p, now)) {
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    ++runs[i];
    --running;
  });
  for (auto& r : runs) CHECK(r.load() == 1);
  CHECK(peak.load() <= 4);
  CHECK(peak.load() >= 2);
  run_parallel(0, 4, [](size_t, const std::atomic<bool>&) { FAIL("no task"); });
}

TEST_CASE("the first failure stops the rest and is rethrown") {
  std::atomic<int> started{0};
  try {
    run_parallel(100, 3, [&](size_t i, const std::atomic<bool>& stop) {
      ++started;
      if (i == 5) throw std::runtime_error("task 5 failed");
      // The others notice the stop flag, as requests notice cancellation.
      for (int k = 0; k < 200 && !stop.load(); ++k) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      if (stop.load()) throw std::runtime_error("cancelled because another failed");
    });
    FAIL("no exception");
  } catch (const std::runtime_error& e) {
    CHECK(std::string(e.what()) == "task 5 failed");
  }
  CHECK(started.load() < 100);
}

TEST_CASE("cpu_width: one thread below kParallelBytes, never more than the tasks") {
  CHECK(cpu_width(8, kParallelBytes - 1) == 1);
  CHECK(cpu_width(1, 100 * kParallelBytes) == 1);
  const size_t cores = std::max<size_t>(1, std::thread::hardware_concurrency());
  CHECK(cpu_width(1000, kParallelBytes) == std::min<size_t>(1000, cores));
  CHECK(cpu_width(2, kParallelBytes) == std::min<size_t>(2, cores));
}
