#include <doctest/doctest.h>

#include <atomic>
#include <stdexcept>
#include <thread>
#include <vector>

#include "retry_internal.hpp"
#include "testing/host_test_support.hpp"

namespace stowage::host {
namespace {

using namespace std::chrono_literals;
using test::contains;
using test::error_of;

RetryPolicy fast_policy() {
  RetryPolicy p;
  p.initial_backoff = 1ms;
  p.max_backoff = 4ms;
  return p;
}

TEST_CASE("backoff grows exponentially, is capped, and is fully jittered") {
  RetryPolicy p;  // 100 ms doubling, capped at 5 s
  std::mt19937_64 rng(42);
  for (int attempt = 1; attempt <= 12; ++attempt) {
    int64_t ceiling = std::min<int64_t>(100LL << (attempt - 1), 5000);
    int64_t max_seen = 0;
    for (int i = 0; i < 200; ++i) {
      auto d = backoff_delay(p, attempt, rng).count();
      CHECK(d >= 0);
      CHECK(d < ceiling);
      max_seen = std::max<int64_t>(max_seen, d);
    }
    CHECK(max_seen > ceiling / 2);  // jitter spans the whole range
  }
}

TEST_CASE("retryable failures are retried until the call succeeds") {
  int calls = 0;
  run_with_retry(fast_policy(), {}, [&] {
    if (++calls < 3) throw Error(ErrorCode::kUnavailable, "busy", true);
  });
  CHECK(calls == 3);
}

TEST_CASE("an error not marked retryable is thrown at once, unchanged") {
  int calls = 0;
  Error e = error_of([&] {
    run_with_retry(fast_policy(), {}, [&] {
      ++calls;
      throw Error(ErrorCode::kUnavailable, "down for good", false);
    });
  });
  CHECK(calls == 1);
  CHECK(std::string(e.what()) == "down for good");
  CHECK(e.code() == ErrorCode::kUnavailable);
}

TEST_CASE("the final error says how many attempts were made") {
  int calls = 0;
  Error e = error_of([&] {
    run_with_retry(fast_policy(), {}, [&] {
      ++calls;
      throw Error(ErrorCode::kUnavailable, "busy " + std::to_string(calls), true);
    });
  });
  CHECK(calls == 4);
  CHECK(std::string(e.what()) == "busy 4 (failed after 4 attempts)");
  CHECK(e.retryable());
}

TEST_CASE("a cancelled call is never retried") {
  int calls = 0;
  CallContext call;
  call.is_cancelled = [&] { return calls >= 1; };
  Error e = error_of([&] {
    run_with_retry(fast_policy(), call, [&] {
      ++calls;
      throw Error(ErrorCode::kUnavailable, "busy", true);
    });
  });
  CHECK(calls == 1);
  CHECK(e.code() == ErrorCode::kUnavailable);

  calls = 0;
  CallContext plain;
  error_of([&] {
    run_with_retry(fast_policy(), plain, [&] {
      ++calls;
      throw Error(ErrorCode::kCancelled, "stopped", true);
    });
  });
  CHECK(calls == 1);  // kCancelled is final even when marked retryable
}

TEST_CASE("a cancellation during the wait ends it early") {
  RetryPolicy slow;
  slow.initial_backoff = 10s;
  slow.max_backoff = 10s;
  std::atomic<int> polls{0};
  CallContext call;
  call.is_cancelled = [&] { return ++polls > 3; };
  auto start = std::chrono::steady_clock::now();
  int calls = 0;
  Error e = error_of([&] {
    run_with_retry(slow, call, [&] {
      ++calls;
      throw Error(ErrorCode::kUnavailable, "busy", true);
    });
  });
  CHECK(calls == 1);
  CHECK(e.code() == ErrorCode::kUnavailable);
  CHECK(std::chrono::steady_clock::now() - start < 5s);
}

TEST_CASE("no retry is started that would end after the deadline") {
  RetryPolicy p;
  p.initial_backoff = 1s;
  p.max_backoff = 1s;
  p.total_deadline = 1ms;  // the first wait is already past the budget
  int calls = 0;
  Error e = error_of([&] {
    run_with_retry(p, {}, [&] {
      ++calls;
      std::this_thread::sleep_for(2ms);
      throw Error(ErrorCode::kUnavailable, "busy", true);
    });
  });
  CHECK(calls == 1);
  CHECK(contains(e.what(), "busy"));

  CallContext call;
  call.deadline = std::chrono::system_clock::now() - 1s;
  calls = 0;
  error_of([&] {
    run_with_retry(fast_policy(), call, [&] {
      ++calls;
      throw Error(ErrorCode::kUnavailable, "busy", true);
    });
  });
  CHECK(calls == 1);
}

TEST_CASE("the observer hears of each retry, before its wait, and never of the last failure") {
  std::vector<RetryNotice> heard;
  RetryPolicy p = fast_policy();
  p.observer =
      std::make_shared<const RetryObserver>([&](const RetryNotice& n) { heard.push_back(n); });
  int calls = 0;
  Error e = error_of([&] {
    run_with_retry(
        p, {},
        [&] {
          ++calls;
          if (calls == 1) {
            throw Error(ErrorCode::kUnavailable, "GET ...: HTTP 503", true)
                .with_request({"GET", "https://h/m/model.json?X-Amz-Signature=abc", "HTTP 503"});
          }
          throw Error(ErrorCode::kUnavailable, "store busy\nfor now", true);
        },
        "load", "s3://b/m?token=t1");
  });
  CHECK(calls == 4);
  CHECK(e.retryable());
  REQUIRE(heard.size() == 3);
  // The request the failure names, redacted again.
  CHECK(heard[0].method == "GET");
  CHECK(heard[0].url == "https://h/m/model.json?X-Amz-Signature=REDACTED");
  CHECK(heard[0].reason == "HTTP 503");
  CHECK(heard[0].attempt == 2);
  CHECK(heard[0].max_attempts == 4);
  CHECK(heard[0].wait < 4ms);
  // No request named: the operation and the handler's URL, on one line.
  CHECK(heard[1].method == "load");
  CHECK(heard[1].url == "s3://b/m?token=REDACTED");
  CHECK(heard[1].reason == "unavailable: store busy for now");
  CHECK(heard[2].attempt == 4);
}

TEST_CASE("an observer that throws changes nothing; errors not retried are not announced") {
  int told = 0;
  RetryPolicy p = fast_policy();
  p.observer = std::make_shared<const RetryObserver>([&](const RetryNotice&) {
    ++told;
    throw std::runtime_error("observer failed");
  });
  int calls = 0;
  run_with_retry(p, {}, [&] {
    if (++calls < 2) throw Error(ErrorCode::kUnavailable, "busy", true);
  });
  CHECK(calls == 2);
  CHECK(told == 1);
  CHECK(error_of([&] {
          run_with_retry(p, {}, [] { throw Error(ErrorCode::kNotFound, "gone", false); });
        }).code() == ErrorCode::kNotFound);
  CHECK(told == 1);
}

}  // namespace
}  // namespace stowage::host
