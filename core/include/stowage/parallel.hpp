// Runs a batch of independent tasks on a few threads, stopping at the first
// failure: the one thread fan-out of the format library (weight digests) and
// of the plugins (cache checks and fills, s3 part hashing).
// Thread-safety: run_parallel may be called from any thread; the tasks run
// on threads of their own and must be safe to run concurrently.
// Ownership: the threads live for one call.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>

namespace stowage {

// Below this many bytes, starting threads to work through them (hashing)
// costs more than it saves.
inline constexpr uint64_t kParallelBytes = 4ull << 20;

// Runs task(i, stop) for every i in [0, n), at most `width` at a time (the
// calling thread takes part; 0 means 1), taking the i in increasing order.
// Once a task throws, `stop` becomes true (a task may pass it on as a
// cancellation), no new task starts, and the first exception is rethrown
// after every running task has returned; the others' exceptions (usually the
// cancellations that stop caused) are dropped. When a thread cannot be
// started, the ones running finish the batch.
void run_parallel(size_t n, size_t width,
                  const std::function<void(size_t, const std::atomic<bool>& stop)>& task);

// The width for n CPU-bound tasks over `bytes` bytes in all: every core, at
// most n, and 1 below kParallelBytes.
size_t cpu_width(size_t n, uint64_t bytes) noexcept;

}  // namespace stowage
