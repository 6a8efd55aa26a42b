// TaskPool: every submitted task runs once, at most `width` at a time, the
// first failure stops the rest and is the one rethrown, and submit() waits
// for a free slot. (run_parallel, the format library's, is tested there.)
#include "parallel.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>

using stowage::net::TaskPool;

TEST_CASE("a task pool runs every submitted task once, never more than width at a time") {
  std::vector<std::atomic<int>> runs(40);
  std::atomic<int> running{0}, peak{0};
  std::atomic<int> alive{0};  // tasks submitted and not yet destroyed
  int alive_peak = 0;
  {
    TaskPool pool(3);
    for (size_t i = 0; i < runs.size(); ++i) {
      auto token = std::shared_ptr<int>(new int(0), [&](int* p) {
        --alive;
        delete p;
      });
      ++alive;
      CHECK(pool.submit([&, i, token](const std::atomic<bool>&) {
        int now = ++running;
        int p = peak.load();
        while (now > p && !peak.compare_exchange_weak(p, now)) {
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        ++runs[i];
        --running;
      }));
      token.reset();
      // What the producer holds is bounded by the pool's width.
      alive_peak = std::max(alive_peak, alive.load());
    }
    pool.wait();
  }
  for (auto& r : runs) CHECK(r.load() == 1);
  CHECK(peak.load() <= 3);
  CHECK(peak.load() >= 2);
  CHECK(alive_peak <= 3);
  CHECK(alive.load() == 0);
}

TEST_CASE("a task pool stops at the first failure and refuses what comes after") {
  // Width 1: the second submit waits for the first task, which fails.
  TaskPool pool(1);
  std::atomic<int> destroyed{0};
  auto token = std::shared_ptr<int>(new int(0), [&](int* p) {
    ++destroyed;
    delete p;
  });
  CHECK(pool.submit([](const std::atomic<bool>&) { throw std::runtime_error("task 0 failed"); }));
  CHECK_FALSE(pool.submit([token](const std::atomic<bool>&) { FAIL("ran after the failure"); }));
  token.reset();
  CHECK(destroyed.load() == 1);  // the refused task was released
  CHECK(pool.stopped());
  try {
    pool.wait();
    FAIL("no exception");
  } catch (const std::runtime_error& e) {
    CHECK(std::string(e.what()) == "task 0 failed");
  }
}

TEST_CASE("a running task sees stop(); wait() then returns without an error") {
  TaskPool pool(2);
  std::atomic<bool> started{false};
  std::atomic<bool> saw_stop{false};
  CHECK(pool.submit([&](const std::atomic<bool>& stop) {
    started = true;
    while (!stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    saw_stop = true;
  }));
  while (!started.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  pool.stop();
  CHECK_FALSE(pool.submit([](const std::atomic<bool>&) { FAIL("ran after stop"); }));
  pool.wait();
  CHECK(saw_stop.load());
}
