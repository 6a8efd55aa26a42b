// The client's connection pool: kept-alive connections per origin (scheme,
// host, port; Url::origin()), the per-origin cap on open connections, the
// idle timeout, and the queue of requests waiting for a free slot. It keeps
// the books only: connections are opened, used and closed by client.cpp
// through the PooledConnection interface, and a waiter is woken through
// PoolWaiter, so nothing of Asio or Beast is needed here.
//
//   ConnectionPool pool(6, std::chrono::seconds(30));
//   if (auto c = pool.take_idle(origin, now)) ...          // reuse
//   else if (pool.reserve(origin)) ... connect, or pool.unreserve(origin)
//   else pool.wait(origin, &waiter) ... pool.forget(origin, &waiter)
//   pool.release(std::move(c), reusable, now);             // when done
//
// Thread-safety: one thread (the client's I/O thread) uses a pool; only
// open() may be read from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>

namespace stowage::net {

using PoolClock = std::chrono::steady_clock;

// A connection as the pool sees it; client.cpp's TCP/TLS connection
// derives from it.
class PooledConnection {
 public:
  explicit PooledConnection(std::string origin) : origin_(std::move(origin)) {}
  virtual ~PooledConnection() = default;
  PooledConnection(const PooledConnection&) = delete;
  PooledConnection& operator=(const PooledConnection&) = delete;

  // False once the socket is closed (by close() or an error).
  virtual bool is_open() const = 0;
  virtual void close() = 0;

  const std::string& origin() const noexcept { return origin_; }
  // True once the connection went back to the pool after a request: a
  // failure on it may be the server's idle close, worth one more try.
  bool reused() const noexcept { return reused_; }

 private:
  friend class ConnectionPool;
  std::string origin_;
  PoolClock::time_point idle_since_;
  bool reused_ = false;
};

// A request waiting for a connection slot of its origin.
class PoolWaiter {
 public:
  virtual ~PoolWaiter() = default;
  // Called once when a slot may have become free (a connection came back or
  // closed); the waiter then asks the pool again.
  virtual void wake() = 0;
};

class ConnectionPool {
 public:
  // max_per_origin 0 is taken as 1.
  ConnectionPool(uint32_t max_per_origin, std::chrono::milliseconds idle_timeout);
  // Idle connections are dropped (destroyed, not shut down): call
  // close_idle() first for an orderly close.
  ~ConnectionPool() = default;
  ConnectionPool(const ConnectionPool&) = delete;
  ConnectionPool& operator=(const ConnectionPool&) = delete;

  // The most recently returned idle connection of origin that is still
  // open and idle for less than the idle timeout at `now`; the ones passed
  // over are closed and leave the pool. Null when none is left.
  std::unique_ptr<PooledConnection> take_idle(const std::string& origin, PoolClock::time_point now);

  // Counts a connection about to be opened to origin, when the origin is
  // below its cap (true); false: the caller must wait().
  bool reserve(const std::string& origin);
  // The connection reserve() counted could not be opened: its slot is free
  // again and the first waiter is woken.
  void unreserve(const std::string& origin);

  // A connection comes back from a request: kept idle (as reused) when
  // `reusable` and still open, otherwise closed and its slot freed. Either
  // way the origin's first waiter is woken.
  void release(std::unique_ptr<PooledConnection> conn, bool reusable, PoolClock::time_point now);

  // Queues a waiter for origin (woken by release() or unreserve(), first
  // come first served), and removes it again (whether woken or not).
  void wait(const std::string& origin, PoolWaiter* waiter);
  void forget(const std::string& origin, PoolWaiter* waiter);

  // Closes and drops every idle connection.
  void close_idle();

  // Connections open now, idle and busy, all origins.
  size_t open() const noexcept { return open_count_.load(); }
  // Idle connections of origin.
  size_t idle(const std::string& origin) const;

 private:
  struct Origin {
    std::deque<std::unique_ptr<PooledConnection>> idle;
    uint32_t open = 0;  // idle and busy
    std::deque<PoolWaiter*> waiters;
  };
  void closed(Origin& o);
  void wake_first(Origin& o);

  uint32_t max_per_origin_;
  std::chrono::milliseconds idle_timeout_;
  std::map<std::string, Origin> origins_;
  std::atomic<size_t> open_count_{0};
};

}  // namespace stowage::net
