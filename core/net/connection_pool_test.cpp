// The connection pool's books (connection_pool.hpp): reuse of the newest
// idle connection, eviction of stale and closed ones, the per-origin cap and
// the waiters it wakes. The connections here only record what the pool does
// to them; the client's use of the pool over real sockets is in net_test.cpp.
#include "connection_pool.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace stowage::net;
using namespace std::chrono_literals;

namespace {

// Records its close() calls in a log shared by the test.
class LoggedConnection final : public PooledConnection {
 public:
  LoggedConnection(std::string origin, std::string name, std::vector<std::string>& log)
      : PooledConnection(std::move(origin)), name_(std::move(name)), log_(log) {}
  bool is_open() const override { return open_; }
  void close() override {
    open_ = false;
    log_.push_back("close " + name_);
  }
  void drop() { open_ = false; }  // the peer went away
  const std::string& name() const { return name_; }

 private:
  std::string name_;
  std::vector<std::string>& log_;
  bool open_ = true;
};

class LoggedWaiter final : public PoolWaiter {
 public:
  LoggedWaiter(std::string name, std::vector<std::string>& log)
      : name_(std::move(name)), log_(log) {}
  void wake() override { log_.push_back("wake " + name_); }

 private:
  std::string name_;
  std::vector<std::string>& log_;
};

const std::string kA = "http://a:80";
const std::string kB = "https://b:443";

std::string name_of(const std::unique_ptr<PooledConnection>& c) {
  return c ? static_cast<const LoggedConnection&>(*c).name() : "(none)";
}

}  // namespace

TEST_CASE("the pool caps open connections per origin, idle and busy") {
  ConnectionPool pool(2, 30s);
  CHECK(pool.reserve(kA));
  CHECK(pool.reserve(kA));
  CHECK(!pool.reserve(kA));
  CHECK(pool.reserve(kB));  // another origin has its own cap
  CHECK(pool.open() == 3);
  pool.unreserve(kA);  // a connect that failed frees its slot
  CHECK(pool.open() == 2);
  CHECK(pool.reserve(kA));
  CHECK(!pool.reserve(kA));
}

TEST_CASE("a cap of 0 is taken as 1") {
  ConnectionPool pool(0, 30s);
  CHECK(pool.reserve(kA));
  CHECK(!pool.reserve(kA));
}

TEST_CASE("released connections are reused newest first, marked reused") {
  std::vector<std::string> log;
  ConnectionPool pool(6, 30s);
  const auto t0 = PoolClock::now();
  CHECK(pool.take_idle(kA, t0) == nullptr);
  REQUIRE(pool.reserve(kA));
  REQUIRE(pool.reserve(kA));
  auto one = std::make_unique<LoggedConnection>(kA, "one", log);
  auto two = std::make_unique<LoggedConnection>(kA, "two", log);
  CHECK(!one->reused());
  pool.release(std::move(one), true, t0);
  pool.release(std::move(two), true, t0 + 1s);
  CHECK(pool.idle(kA) == 2);
  CHECK(pool.open() == 2);
  CHECK(pool.take_idle(kB, t0 + 2s) == nullptr);  // never another origin's
  auto got = pool.take_idle(kA, t0 + 2s);
  CHECK(name_of(got) == "two");
  CHECK(got->reused());
  CHECK(pool.idle(kA) == 1);
  CHECK(pool.open() == 2);  // a busy connection is still open
  CHECK(log.empty());
}

TEST_CASE("a connection not reusable, or closed, is closed on release and frees its slot") {
  std::vector<std::string> log;
  ConnectionPool pool(1, 30s);
  const auto t0 = PoolClock::now();
  REQUIRE(pool.reserve(kA));
  pool.release(std::make_unique<LoggedConnection>(kA, "one", log), false, t0);
  CHECK(log == std::vector<std::string>{"close one"});
  CHECK(pool.open() == 0);
  CHECK(pool.idle(kA) == 0);

  REQUIRE(pool.reserve(kA));
  auto two = std::make_unique<LoggedConnection>(kA, "two", log);
  two->drop();
  pool.release(std::move(two), true, t0);
  CHECK(log == std::vector<std::string>{"close one", "close two"});
  CHECK(pool.open() == 0);
  CHECK(pool.reserve(kA));
}

TEST_CASE("idle connections past the idle timeout, or closed by the peer, are evicted") {
  std::vector<std::string> log;
  ConnectionPool pool(6, 30s);
  const auto t0 = PoolClock::now();
  for (int i = 0; i < 3; ++i) REQUIRE(pool.reserve(kA));
  auto old = std::make_unique<LoggedConnection>(kA, "old", log);
  auto fresh = std::make_unique<LoggedConnection>(kA, "fresh", log);
  auto dead = std::make_unique<LoggedConnection>(kA, "dead", log);
  LoggedConnection* dead_view = dead.get();
  pool.release(std::move(old), true, t0);
  pool.release(std::move(fresh), true, t0 + 10s);
  pool.release(std::move(dead), true, t0 + 10s);
  dead_view->drop();
  // At t0 + 30s: "dead" is closed, "fresh" has idled 20 s and is taken.
  auto got = pool.take_idle(kA, t0 + 30s);
  CHECK(name_of(got) == "fresh");
  CHECK(log == std::vector<std::string>{"close dead"});
  CHECK(pool.open() == 2);
  // "old" has idled exactly the timeout: too long.
  CHECK(pool.take_idle(kA, t0 + 30s) == nullptr);
  CHECK(log == std::vector<std::string>{"close dead", "close old"});
  CHECK(pool.open() == 1);
  CHECK(pool.idle(kA) == 0);
}

TEST_CASE("waiters are woken first come first served, one per freed slot or returned connection") {
  std::vector<std::string> log;
  ConnectionPool pool(1, 30s);
  const auto t0 = PoolClock::now();
  REQUIRE(pool.reserve(kA));
  LoggedWaiter w1("w1", log), w2("w2", log), w3("w3", log), wb("wb", log);
  pool.wait(kA, &w1);
  pool.wait(kA, &w2);
  pool.wait(kA, &w3);
  pool.wait(kB, &wb);
  pool.release(std::make_unique<LoggedConnection>(kA, "c", log), true, t0);
  CHECK(log == std::vector<std::string>{"wake w1"});
  pool.forget(kA, &w1);  // woken waiters were already taken off the queue
  pool.forget(kA, &w2);  // an aborted waiter leaves the queue unwoken
  auto c = pool.take_idle(kA, t0);
  REQUIRE(c);
  pool.release(std::move(c), false, t0);
  CHECK(log == std::vector<std::string>{"wake w1", "close c", "wake w3"});
  REQUIRE(pool.reserve(kA));
  pool.wait(kA, &w2);
  pool.unreserve(kA);
  CHECK(log == std::vector<std::string>{"wake w1", "close c", "wake w3", "wake w2"});
  REQUIRE(pool.reserve(kB));
  pool.unreserve(kB);  // no waiter of kA is woken by another origin
  CHECK(log.back() == "wake wb");
}

TEST_CASE("close_idle closes every idle connection of every origin") {
  std::vector<std::string> log;
  ConnectionPool pool(2, 30s);
  const auto t0 = PoolClock::now();
  REQUIRE(pool.reserve(kA));
  REQUIRE(pool.reserve(kB));
  pool.release(std::make_unique<LoggedConnection>(kA, "a", log), true, t0);
  pool.release(std::make_unique<LoggedConnection>(kB, "b", log), true, t0);
  pool.close_idle();
  CHECK(log == std::vector<std::string>{"close a", "close b"});
  CHECK(pool.idle(kA) == 0);
  CHECK(pool.idle(kB) == 0);
}
