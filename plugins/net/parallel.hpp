// Runs a batch of blocking tasks (HTTP requests) on a few threads, stopping
// the batch at the first failure; shared by the network plugins.
//
// Thread-safety: run_parallel may be called from any thread; the tasks run
// on threads of their own and must be safe to run concurrently.
// Ownership: the threads live for one call.
#pragma once

#include <atomic>
#include <cstddef>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "http_client.hpp"

namespace stowage::net {

// A Control that stops when `parent` does or when `stop` turns true (a task
// of run_parallel passes its `stop`); its progress hooks are the parent's.
inline Control child_control(const Control& parent, const std::atomic<bool>& stop) {
  Control c = parent;
  c.cancelled = [outer = parent.cancelled, &stop] { return stop.load() || (outer && outer()); };
  return c;
}

// Runs task(i, stop) for every i in [0, n), at most `width` at a time (the
// calling thread takes part). Once a task throws, `stop` becomes true (tasks
// pass it to their requests as a cancellation), no new task starts, and the
// first exception is rethrown after every running task has returned; the
// others' exceptions (usually the cancellations that stop caused) are
// dropped.
inline void run_parallel(size_t n, size_t width,
                         const std::function<void(size_t, const std::atomic<bool>& stop)>& task) {
  if (n == 0) return;
  std::atomic<size_t> next{0};
  std::atomic<bool> stop{false};
  std::exception_ptr first;
  std::mutex mu;
  auto worker = [&] {
    for (;;) {
      if (stop.load()) return;
      size_t i = next.fetch_add(1);
      if (i >= n) return;
      try {
        task(i, stop);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu);
        if (!first) first = std::current_exception();
        stop.store(true);
        return;
      }
    }
  };
  size_t threads = std::min(n, width == 0 ? size_t{1} : width);
  std::vector<std::thread> pool;
  pool.reserve(threads - 1);
  try {
    for (size_t t = 1; t < threads; ++t) pool.emplace_back(worker);
  } catch (...) {
    // Could not start a thread: the ones running and this one finish the batch.
  }
  worker();
  for (std::thread& t : pool) t.join();
  if (first) std::rethrow_exception(first);
}

}  // namespace stowage::net
