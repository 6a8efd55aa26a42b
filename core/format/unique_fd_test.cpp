#include "stowage/unique_fd.hpp"

#include <doctest/doctest.h>
#include <fcntl.h>

#include <cerrno>
#include <utility>

namespace stowage {
namespace {

bool is_open(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

int open_null() {
  int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  REQUIRE(fd >= 0);
  return fd;
}

TEST_CASE("UniqueFd closes its descriptor when destroyed") {
  int raw = open_null();
  {
    UniqueFd fd(raw);
    CHECK(fd);
    CHECK(fd.get() == raw);
  }
  CHECK_FALSE(is_open(raw));
}

TEST_CASE("UniqueFd holds nothing by default or after a failed open") {
  UniqueFd none;
  CHECK_FALSE(none);
  CHECK(none.get() == -1);
  UniqueFd failed(::open("/nonexistent-stowage-dir/x", O_RDONLY | O_CLOEXEC));
  CHECK_FALSE(failed);
}

TEST_CASE("UniqueFd::release hands the descriptor over unclosed") {
  int raw = open_null();
  int released = -1;
  {
    UniqueFd fd(raw);
    released = fd.release();
    CHECK_FALSE(fd);
  }
  CHECK(released == raw);
  CHECK(is_open(raw));
  ::close(raw);
}

TEST_CASE("UniqueFd moves ownership, closing what the target held") {
  int a = open_null();
  int b = open_null();
  UniqueFd first(a);
  UniqueFd second(std::move(first));
  CHECK_FALSE(first);  // NOLINT(bugprone-use-after-move): moved-from is empty
  CHECK(second.get() == a);
  UniqueFd third(b);
  third = std::move(second);
  CHECK(third.get() == a);
  CHECK_FALSE(is_open(b));
  CHECK(is_open(a));
  CHECK(third.close() == 0);
  CHECK_FALSE(third);
  CHECK_FALSE(is_open(a));
}

}  // namespace
}  // namespace stowage
