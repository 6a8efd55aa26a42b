// The one retry policy of the host: plugins mark transient failures
// retryable and never retry on their own; the host retries them within a
// budget (attempts, exponential backoff with full jitter, a total deadline).
// Thread-safety: stateless functions; a policy is a plain value.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string_view>

#include "stowage/handler.hpp"
#include "stowage/registry.hpp"

namespace stowage::host {

struct RetryPolicy {
  int max_attempts = 4;  // the first try included
  std::chrono::milliseconds initial_backoff{100};
  std::chrono::milliseconds max_backoff{5000};
  // Across every attempt and wait; the call's own deadline also applies.
  std::chrono::milliseconds total_deadline{60000};
  // Told before each wait for another attempt (Registry::set_retry_observer).
  std::shared_ptr<const RetryObserver> observer;
};

// Full jitter: uniform in [0, min(max_backoff, initial_backoff * 2^(n-1)))
// after the n-th failed attempt.
std::chrono::milliseconds backoff_delay(const RetryPolicy& policy, int failed_attempts,
                                        std::mt19937_64& rng);

// Runs attempt() until it returns, throws an error that is not retryable,
// the attempts or the time run out, or the call is cancelled (never retried;
// a wait is cut short by cancellation). The error thrown last says how many
// attempts were made when there was more than one. op and url (the
// handler's) name the retry to the policy's observer when the error names
// no request of its own.
void run_with_retry(const RetryPolicy& policy, const CallContext& call,
                    const std::function<void()>& attempt, std::string_view op = {},
                    std::string_view url = {});

}  // namespace stowage::host
