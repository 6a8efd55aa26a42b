// run_parallel: every task runs once, at most `width` at a time, and the
// first failure stops the batch and is the one rethrown.
#include "parallel.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <stdexcept>
#include <string>

using stowage::net::run_parallel;

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
