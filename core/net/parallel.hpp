// Runs blocking tasks (HTTP requests) on a few threads, stopping at the
// first failure: a batch known up front (run_parallel, the format library's
// runner), or tasks submitted one by one as a producer learns them
// (TaskPool).
//
// Being replaced: parallel requests belong on the client's own I/O thread,
// through send_all() or Client::Batch (http_client.hpp), which the http
// plugin and the s3 plugin's ranged GetObject parts use. What still runs
// here is the s3 plugin's other fan-outs, whose steps are whole S3Client
// calls (HEADs and GETs of a model's files, uploads of parts and files,
// deletions) and its streaming save (TaskPool).
//
// Thread-safety: run_parallel may be called from any thread; the tasks run
// on threads of their own and must be safe to run concurrently.
// Ownership: the threads live for one call (one TaskPool).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "http_client.hpp"
#include "stowage/parallel.hpp"

namespace stowage::net {

// A Control that stops when `parent` does or when `stop` turns true (a task
// of run_parallel passes its `stop`); its progress hooks are the parent's.
inline Control child_control(const Control& parent, const std::atomic<bool>& stop) {
  Control c = parent;
  c.cancelled = [outer = parent.cancelled, &stop] { return stop.load() || (outer && outer()); };
  return c;
}

// The batch runner (stowage/parallel.hpp): task(i, stop) for every i, at
// most `width` at a time; after a failure `stop` turns true (tasks pass it to
// their requests as a cancellation) and the first exception is rethrown.
using stowage::run_parallel;

// Tasks submitted one at a time by one producer (a streaming save uploading
// weight files as their bytes arrive), run on up to `width` threads started
// as needed. submit() waits while `width` tasks are queued or running, so the
// producer never holds the data of more than width + 1 tasks. Once a task
// throws (or stop() is called), `stop` turns true (tasks pass it to their
// requests), queued tasks are dropped unrun, submit() refuses new ones, and
// wait() rethrows the first exception. The destructor stops and joins.
// Thread-safety: submit, stop and wait from the producer's thread; stop()
// from any thread. Ownership: the pool owns its threads and queued tasks; a
// task is destroyed (releasing what it captured) once it ran or was dropped.
class TaskPool {
 public:
  using Task = std::function<void(const std::atomic<bool>& stop)>;

  explicit TaskPool(size_t width) : width_(width == 0 ? 1 : width) {}
  ~TaskPool() {
    stop();
    try {
      wait();
    } catch (...) {
      // The owner is already unwinding from its own failure.
    }
  }
  TaskPool(const TaskPool&) = delete;
  TaskPool& operator=(const TaskPool&) = delete;

  // Queues task once fewer than width tasks are pending. False (task
  // dropped) once the pool stopped.
  bool submit(Task task) {
    std::unique_lock<std::mutex> lock(mu_);
    room_.wait(lock, [&] { return stop_.load() || pending_ < width_; });
    if (stop_.load()) return false;
    queue_.push_back(std::move(task));
    ++pending_;
    if (threads_.size() < width_ && pending_ > threads_.size()) {
      try {
        threads_.emplace_back([this] { work(); });
      } catch (...) {
        // No thread to spare: the running ones take the task.
        if (threads_.empty()) throw;
      }
    }
    ready_.notify_one();
    return true;
  }

  void stop() {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true);
    room_.notify_all();
    ready_.notify_all();
  }
  bool stopped() const noexcept { return stop_.load(); }

  // Runs every queued task (unless stopped), joins the threads and rethrows
  // the first exception a task threw.
  void wait() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      closing_ = true;
      ready_.notify_all();
    }
    for (std::thread& t : threads_) t.join();
    threads_.clear();
    if (first_) std::rethrow_exception(first_);
  }

 private:
  void work() {
    for (;;) {
      Task task;
      {
        std::unique_lock<std::mutex> lock(mu_);
        ready_.wait(lock, [&] { return !queue_.empty() || closing_ || stop_.load(); });
        if (queue_.empty()) {
          if (closing_ || stop_.load()) return;
          continue;
        }
        task = std::move(queue_.front());
        queue_.pop_front();
      }
      if (!stop_.load()) {
        try {
          task(stop_);
        } catch (...) {
          std::lock_guard<std::mutex> lock(mu_);
          if (!first_) first_ = std::current_exception();
          stop_.store(true);
        }
      }
      task = nullptr;  // released before the slot frees up
      std::lock_guard<std::mutex> lock(mu_);
      --pending_;
      room_.notify_all();
    }
  }

  const size_t width_;
  std::mutex mu_;
  std::condition_variable room_;
  std::condition_variable ready_;
  std::deque<Task> queue_;
  size_t pending_ = 0;  // queued or running
  bool closing_ = false;
  std::atomic<bool> stop_{false};
  std::exception_ptr first_;
  std::vector<std::thread> threads_;
};

}  // namespace stowage::net
