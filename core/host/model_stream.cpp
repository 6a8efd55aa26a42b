#include <algorithm>

#include "model_stream_internal.hpp"
#include "stowage/error.hpp"

namespace stowage::host {

struct ModelStream::Shared {
  mutable std::mutex mu;
  std::condition_variable changed;
  uint64_t held = 0;
  uint64_t peak = 0;
  std::map<uint64_t, Buffer> queue;
  std::map<uint64_t, uint64_t> sizes;  // every index put, with its size
  uint64_t next_index = 0;             // what the consumer needs next
  uint64_t added = 0;                  // add()'s next index
  uint64_t count = 0;                  // buffers of a finished load
  uint64_t waiting = 0;                // puts waiting for room
  std::optional<std::string> json;
  bool finished = false;
  bool cancelled = false;
  std::exception_ptr error;

  void release(uint64_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mu);
      held -= bytes;
    }
    changed.notify_all();
  }
  // Drops what is queued: nobody will take it.
  void drop_queue() {
    for (auto& [index, buffer] : queue) held -= buffer.size();
    queue.clear();
  }
};

namespace {

// The owner of a handed-out buffer: its bytes stop counting when the last
// reference goes, whenever that is.
struct Lent {
  Lent(Buffer b, std::shared_ptr<void> s, void (*r)(void*, uint64_t))
      : buffer(std::move(b)), shared(std::move(s)), release(r) {}
  Lent(const Lent&) = delete;
  Lent& operator=(const Lent&) = delete;
  ~Lent() { release(shared.get(), buffer.size()); }
  Buffer buffer;
  std::shared_ptr<void> shared;
  void (*release)(void*, uint64_t);
};

}  // namespace

ModelStream::ModelStream(uint64_t limit_bytes)
    : limit_(limit_bytes), shared_(std::make_shared<Shared>()) {}

void ModelStream::set_artifacts(std::string json) {
  {
    std::lock_guard<std::mutex> lock(shared_->mu);
    if (shared_->json) return;
    shared_->json = std::move(json);
  }
  shared_->changed.notify_all();
}

bool ModelStream::put(uint64_t index, Buffer buffer) {
  Shared& s = *shared_;
  const uint64_t size = buffer.size();
  {
    std::unique_lock<std::mutex> lock(s.mu);
    if (s.cancelled || s.error) return false;
    if (s.sizes.count(index) != 0 || s.finished) {
      s.error = std::make_exception_ptr(
          Error(ErrorCode::kInternal, "the load handed over weight buffer " +
                                          std::to_string(index) + " twice (or after it ended)"));
      s.drop_queue();
      lock.unlock();
      s.changed.notify_all();
      return false;
    }
    // Each condition that lets a put through is one a wait could deadlock on.
    auto may_pass = [&] {
      return s.cancelled || s.error || !s.json || index == s.next_index || s.held == 0 ||
             s.held + size <= limit_;
    };
    if (!may_pass()) {
      ++s.waiting;
      s.changed.wait(lock, may_pass);
      --s.waiting;
    }
    if (s.cancelled || s.error) return false;
    s.sizes[index] = size;
    s.queue.emplace(index, std::move(buffer));
    s.held += size;
    s.peak = std::max(s.peak, s.held);
  }
  s.changed.notify_all();
  return true;
}

bool ModelStream::add(Buffer buffer) {
  uint64_t index;
  {
    std::lock_guard<std::mutex> lock(shared_->mu);
    index = shared_->added++;
  }
  return put(index, std::move(buffer));
}

void ModelStream::finish(const std::string& source) {
  {
    std::lock_guard<std::mutex> lock(shared_->mu);
    uint64_t expected = 0;
    for (const auto& [index, size] : shared_->sizes) {
      if (index != expected) {
        throw Error(ErrorCode::kInternal, "the load of " + source +
                                              " broke the ABI: it ended without handing over "
                                              "weight buffer " +
                                              std::to_string(expected));
      }
      ++expected;
    }
    shared_->count = expected;
    shared_->finished = true;
  }
  shared_->changed.notify_all();
}

void ModelStream::fail(std::exception_ptr error) {
  {
    std::lock_guard<std::mutex> lock(shared_->mu);
    if (shared_->error) return;
    shared_->error = std::move(error);
    shared_->drop_queue();
  }
  shared_->changed.notify_all();
}

std::optional<std::string> ModelStream::artifacts() {
  Shared& s = *shared_;
  std::unique_lock<std::mutex> lock(s.mu);
  s.changed.wait(lock, [&] { return s.json || s.error || s.finished || s.cancelled; });
  if (s.json) return s.json;
  if (s.error) std::rethrow_exception(s.error);
  return std::nullopt;
}

std::optional<Buffer> ModelStream::next() {
  Shared& s = *shared_;
  Buffer taken;
  {
    std::unique_lock<std::mutex> lock(s.mu);
    s.changed.wait(lock, [&] {
      return s.cancelled || s.error || s.queue.count(s.next_index) != 0 ||
             (s.finished && s.next_index >= s.count);
    });
    if (s.error) std::rethrow_exception(s.error);
    if (s.cancelled) throw Error(ErrorCode::kCancelled, "the copy was cancelled");
    auto it = s.queue.find(s.next_index);
    if (it == s.queue.end()) return std::nullopt;
    taken = std::move(it->second);
    s.queue.erase(it);
    ++s.next_index;
  }
  s.changed.notify_all();  // the next-needed index moved on
  const uint8_t* data = taken.data();
  const uint64_t size = taken.size();
  std::string label = taken.label();
  auto owner = std::make_shared<Lent>(std::move(taken), shared_, [](void* shared, uint64_t n) {
    static_cast<Shared*>(shared)->release(n);
  });
  return Buffer::wrap(data, size, std::move(owner), std::move(label));
}

void ModelStream::cancel() {
  {
    std::lock_guard<std::mutex> lock(shared_->mu);
    shared_->cancelled = true;
    shared_->drop_queue();
  }
  shared_->changed.notify_all();
}

bool ModelStream::touched() const {
  std::lock_guard<std::mutex> lock(shared_->mu);
  return shared_->json.has_value() || !shared_->sizes.empty();
}

bool ModelStream::stopped() const {
  std::lock_guard<std::mutex> lock(shared_->mu);
  return shared_->cancelled || shared_->error != nullptr;
}

std::vector<uint64_t> ModelStream::sizes() const {
  std::lock_guard<std::mutex> lock(shared_->mu);
  std::vector<uint64_t> out;
  out.reserve(shared_->sizes.size());
  for (const auto& [index, size] : shared_->sizes) out.push_back(size);
  return out;
}

uint64_t ModelStream::peak_bytes() const {
  std::lock_guard<std::mutex> lock(shared_->mu);
  return shared_->peak;
}

uint64_t ModelStream::waiting_puts() const {
  std::lock_guard<std::mutex> lock(shared_->mu);
  return shared_->waiting;
}

uint64_t ModelStream::held_bytes() const {
  std::lock_guard<std::mutex> lock(shared_->mu);
  return shared_->held;
}

}  // namespace stowage::host
