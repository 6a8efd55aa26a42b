// ModelStream: order, bounds and the puts that must never wait. Waits are
// observed through waiting_puts(), never through timing.
#include <doctest/doctest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "model_stream_internal.hpp"
#include "stowage/error.hpp"

using stowage::Buffer;
using stowage::Error;
using stowage::ErrorCode;
using stowage::host::ModelStream;

namespace {

Buffer bytes(size_t n, char fill) { return Buffer::from_string(std::string(n, fill)); }

// Returns once `n` puts are blocked waiting for room.
void until_waiting(const ModelStream& stream, uint64_t n) {
  while (stream.waiting_puts() != n) std::this_thread::yield();
}

ErrorCode code_of_next(ModelStream& stream) {
  try {
    stream.next();
  } catch (const Error& e) {
    return e.code();
  }
  return ErrorCode::kOk;
}

}  // namespace

TEST_CASE("buffers put out of order from several threads come out in index order") {
  ModelStream stream(1 << 20);
  stream.set_artifacts("{}");
  constexpr int kPerThread = 50;
  std::thread evens([&] {
    for (int i = 0; i < kPerThread; ++i) CHECK(stream.put(2 * i, bytes(3, char('a' + i % 26))));
  });
  std::thread odds([&] {
    for (int i = 0; i < kPerThread; ++i) CHECK(stream.put(2 * i + 1, bytes(5, 'z')));
  });
  evens.join();
  odds.join();
  stream.finish("test://order");
  for (int i = 0; i < 2 * kPerThread; ++i) {
    std::optional<Buffer> b = stream.next();
    REQUIRE(b.has_value());
    CHECK(b->size() == (i % 2 == 0 ? 3u : 5u));
    if (i % 2 == 0) CHECK(b->view()[0] == char('a' + (i / 2) % 26));
  }
  CHECK_FALSE(stream.next().has_value());
  CHECK(stream.artifacts() == std::optional<std::string>("{}"));
}

TEST_CASE("a full queue makes a later buffer wait, never the one the consumer needs next") {
  ModelStream stream(10);
  stream.set_artifacts("{}");
  REQUIRE(stream.put(1, bytes(8, '1')));  // nothing held: passes
  std::atomic<bool> later_done{false};
  std::thread later([&] {
    CHECK(stream.put(2, bytes(8, '2')));  // 8 + 8 > 10 and not needed next: waits
    later_done = true;
  });
  until_waiting(stream, 1);
  CHECK_FALSE(later_done.load());
  // Index 0 is what the consumer needs next: it passes over the limit at once
  // (this call would never return otherwise).
  REQUIRE(stream.put(0, bytes(8, '0')));
  CHECK(stream.held_bytes() == 16);
  {
    std::optional<Buffer> b0 = stream.next();
    REQUIRE(b0);
    CHECK(b0->view() == std::string(8, '0'));
  }
  {
    std::optional<Buffer> b1 = stream.next();  // now index 2 is needed next: it passes
    REQUIRE(b1);
    CHECK(b1->view() == std::string(8, '1'));
  }
  later.join();
  CHECK(later_done.load());
  stream.finish("test://full");
  std::optional<Buffer> b2 = stream.next();
  REQUIRE(b2);
  CHECK(b2->view() == std::string(8, '2'));
  CHECK_FALSE(stream.next().has_value());
  CHECK(stream.peak_bytes() == 16);  // 0 and 1 together, never 2 beside them
}

TEST_CASE("a buffer larger than the limit passes alone, once nothing else is held") {
  ModelStream stream(10);
  stream.set_artifacts("{}");
  REQUIRE(stream.put(0, bytes(4, 'a')));
  std::optional<Buffer> b0 = stream.next();  // handed out: still counts
  REQUIRE(b0);
  std::thread big([&] { CHECK(stream.put(2, bytes(100, 'b'))); });
  until_waiting(stream, 1);
  CHECK(stream.held_bytes() == 4);
  b0.reset();  // the last reference goes: nothing is held
  big.join();
  CHECK(stream.held_bytes() == 100);
  CHECK(stream.peak_bytes() == 100);      // never 104
  REQUIRE(stream.put(1, bytes(4, 'c')));  // needed next: passes beside the big one
  stream.finish("test://big");
  CHECK(stream.next()->size() == 4);
  CHECK(stream.next()->size() == 100);
  CHECK_FALSE(stream.next().has_value());
  CHECK(stream.held_bytes() == 0);
}

TEST_CASE("a handed-out buffer may outlive the stream and still release its bytes") {
  Buffer kept;
  {
    ModelStream stream(100);
    stream.set_artifacts("{}");
    REQUIRE(stream.put(0, bytes(7, 'k')));
    stream.finish("test://outlive");
    std::optional<Buffer> b = stream.next();
    REQUIRE(b);
    kept = std::move(*b);
  }
  CHECK(kept.view() == "kkkkkkk");
  kept = Buffer();  // the accounting it points at is still alive
}

TEST_CASE("cancel releases a waiting producer and ends the consumer") {
  ModelStream stream(4);
  stream.set_artifacts("{}");
  REQUIRE(stream.put(1, bytes(4, 'x')));
  std::atomic<bool> accepted{true};
  std::thread producer([&] { accepted = stream.put(2, bytes(4, 'y')); });
  until_waiting(stream, 1);
  stream.cancel();
  producer.join();
  CHECK_FALSE(accepted.load());
  CHECK(stream.stopped());
  CHECK(stream.held_bytes() == 0);  // the queued buffer was dropped
  CHECK_FALSE(stream.put(0, bytes(1, 'z')));
  CHECK(code_of_next(stream) == ErrorCode::kCancelled);
}

TEST_CASE("a failed load reaches the consumer with its own error") {
  ModelStream stream(100);
  std::thread consumer([&] {
    try {
      stream.artifacts();
      FAIL("artifacts() returned for a failed load");
    } catch (const Error& e) {
      CHECK(e.code() == ErrorCode::kNotFound);
      CHECK(std::string(e.what()) == "no model at test://missing");
    }
  });
  stream.fail(std::make_exception_ptr(Error(ErrorCode::kNotFound, "no model at test://missing")));
  consumer.join();
  CHECK(code_of_next(stream) == ErrorCode::kNotFound);
  CHECK_FALSE(stream.put(0, bytes(1, 'a')));
}

TEST_CASE("a load that leaves a gap or puts an index twice breaks the stream") {
  SUBCASE("gap") {
    ModelStream stream(100);
    stream.set_artifacts("{}");
    REQUIRE(stream.put(0, bytes(1, 'a')));
    REQUIRE(stream.put(2, bytes(1, 'c')));
    try {
      stream.finish("test://gap");
      FAIL("finish accepted a gap");
    } catch (const Error& e) {
      CHECK(e.code() == ErrorCode::kInternal);
      CHECK(std::string(e.what()) ==
            "the load of test://gap broke the ABI: it ended without handing over weight buffer 1");
    }
  }
  SUBCASE("twice") {
    ModelStream stream(100);
    stream.set_artifacts("{}");
    REQUIRE(stream.put(0, bytes(1, 'a')));
    CHECK_FALSE(stream.put(0, bytes(1, 'b')));
    CHECK(code_of_next(stream) == ErrorCode::kInternal);
  }
}

TEST_CASE("add() appends in order, as a 1.0 load's sink_add_buffer does") {
  ModelStream stream(100);
  stream.set_artifacts("{\"a\":1}");
  REQUIRE(stream.add(bytes(1, 'a')));
  REQUIRE(stream.add(bytes(2, 'b')));
  stream.finish("test://add");
  CHECK(stream.sizes() == std::vector<uint64_t>{1, 2});
  CHECK(stream.next()->view() == "a");
  CHECK(stream.next()->view() == "bb");
  CHECK_FALSE(stream.next().has_value());
}
