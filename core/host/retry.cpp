#include <algorithm>
#include <thread>

#include "retry_internal.hpp"
#include "stowage/error.hpp"
#include "stowage/text.hpp"

namespace stowage::host {
namespace {

using Clock = std::chrono::steady_clock;

bool cancelled(const CallContext& call) { return call.is_cancelled && call.is_cancelled(); }

[[noreturn]] void give_up(const Error& last, int attempts, const char* why) {
  std::string msg = last.what();
  if (attempts > 1) {
    msg += " (failed after " + std::to_string(attempts) + " attempts";
    if (why != nullptr) msg += std::string("; ") + why;
    msg += ")";
  }
  throw Error(last.code(), msg, last.retryable());
}

void tell(const RetryPolicy& policy, const Error& e, int next_attempt,
          std::chrono::milliseconds wait, std::string_view op, std::string_view url) noexcept {
  if (!policy.observer || !*policy.observer) return;
  try {
    RetryNotice notice;
    if (const FailedRequest* r = e.request(); r != nullptr) {
      notice.method = r->method;
      notice.url = redact_url(r->url);
      notice.reason = r->reason;
    } else {
      notice.method = op.empty() ? std::string("call") : std::string(op);
      notice.url = redact_url(url);
      notice.reason = std::string(error_code_name(e.code())) + ": " + e.what();
    }
    // One line, whatever the message holds.
    for (char& c : notice.reason) {
      if (c == '\n' || c == '\r') c = ' ';
    }
    notice.attempt = next_attempt;
    notice.max_attempts = std::max(policy.max_attempts, 1);
    notice.wait = wait;
    (*policy.observer)(notice);
  } catch (...) {
    // A notice is a courtesy: it never changes how the call ends.
  }
}

}  // namespace

std::chrono::milliseconds backoff_delay(const RetryPolicy& policy, int failed_attempts,
                                        std::mt19937_64& rng) {
  using std::chrono::milliseconds;
  int64_t cap = policy.max_backoff.count();
  int64_t base = std::max<int64_t>(policy.initial_backoff.count(), 0);
  int shift = std::clamp(failed_attempts - 1, 0, 40);
  int64_t ceiling = base;
  for (int i = 0; i < shift && ceiling < cap; ++i) ceiling *= 2;
  ceiling = std::min(ceiling, cap);
  if (ceiling <= 0) return milliseconds(0);
  std::uniform_int_distribution<int64_t> pick(0, ceiling - 1);
  return milliseconds(pick(rng));
}

void run_with_retry(const RetryPolicy& policy, const CallContext& call,
                    const std::function<void()>& attempt, std::string_view op,
                    std::string_view url) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  const auto start = Clock::now();
  const auto budget_end = start + policy.total_deadline;
  for (int n = 1;; ++n) {
    try {
      attempt();
      return;
    } catch (const Error& e) {
      if (!e.retryable() || e.code() == ErrorCode::kCancelled) give_up(e, n, nullptr);
      if (cancelled(call)) give_up(e, n, "the call was cancelled");
      if (n >= std::max(policy.max_attempts, 1)) give_up(e, n, nullptr);
      auto wait = backoff_delay(policy, n, rng);
      auto resume = Clock::now() + wait;
      bool past_deadline = resume >= budget_end;
      if (call.deadline && std::chrono::system_clock::now() + wait >= *call.deadline) {
        past_deadline = true;
      }
      if (past_deadline) give_up(e, n, "no time left before the deadline to try again");
      tell(policy, e, n + 1, wait, op, url);
      // Sleep in slices so a cancellation is noticed while waiting.
      while (Clock::now() < resume) {
        if (cancelled(call)) give_up(e, n, "the call was cancelled");
        auto left = resume - Clock::now();
        std::this_thread::sleep_for(std::min<Clock::duration>(left, std::chrono::milliseconds(10)));
      }
      if (cancelled(call)) give_up(e, n, "the call was cancelled");
    }
  }
}

}  // namespace stowage::host
