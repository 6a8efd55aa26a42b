#include "stowage/parallel.hpp"

#include <algorithm>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace stowage {

void run_parallel(size_t n, size_t width,
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

size_t cpu_width(size_t n, uint64_t bytes) noexcept {
  if (bytes < kParallelBytes) return 1;
  return std::max<size_t>(1, std::min<size_t>(n, std::thread::hardware_concurrency()));
}

}  // namespace stowage
