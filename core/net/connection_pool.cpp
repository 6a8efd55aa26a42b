#include "connection_pool.hpp"

#include <algorithm>

namespace stowage::net {

ConnectionPool::ConnectionPool(uint32_t max_per_origin, std::chrono::milliseconds idle_timeout)
    : max_per_origin_(max_per_origin == 0 ? 1 : max_per_origin), idle_timeout_(idle_timeout) {}

void ConnectionPool::closed(Origin& o) {
  --o.open;
  --open_count_;
}

void ConnectionPool::wake_first(Origin& o) {
  if (o.waiters.empty()) return;
  PoolWaiter* first = o.waiters.front();
  o.waiters.pop_front();
  first->wake();
}

std::unique_ptr<PooledConnection> ConnectionPool::take_idle(const std::string& origin,
                                                            PoolClock::time_point now) {
  Origin& o = origins_[origin];
  while (!o.idle.empty()) {
    std::unique_ptr<PooledConnection> c = std::move(o.idle.back());
    o.idle.pop_back();
    if (now - c->idle_since_ < idle_timeout_ && c->is_open()) return c;
    c->close();
    closed(o);
  }
  return nullptr;
}

bool ConnectionPool::reserve(const std::string& origin) {
  Origin& o = origins_[origin];
  if (o.open >= max_per_origin_) return false;
  ++o.open;
  ++open_count_;
  return true;
}

void ConnectionPool::unreserve(const std::string& origin) {
  Origin& o = origins_[origin];
  closed(o);
  wake_first(o);
}

void ConnectionPool::release(std::unique_ptr<PooledConnection> conn, bool reusable,
                             PoolClock::time_point now) {
  Origin& o = origins_[conn->origin()];
  if (reusable && conn->is_open()) {
    conn->idle_since_ = now;
    conn->reused_ = true;
    o.idle.push_back(std::move(conn));
  } else {
    conn->close();
    conn.reset();
    closed(o);
  }
  wake_first(o);
}

void ConnectionPool::wait(const std::string& origin, PoolWaiter* waiter) {
  origins_[origin].waiters.push_back(waiter);
}

void ConnectionPool::forget(const std::string& origin, PoolWaiter* waiter) {
  auto& w = origins_[origin].waiters;
  w.erase(std::remove(w.begin(), w.end(), waiter), w.end());
}

void ConnectionPool::close_idle() {
  for (auto& [origin, o] : origins_) {
    for (auto& c : o.idle) c->close();
    o.idle.clear();
  }
}

size_t ConnectionPool::idle(const std::string& origin) const {
  auto it = origins_.find(origin);
  return it == origins_.end() ? 0 : it->second.idle.size();
}

}  // namespace stowage::net
