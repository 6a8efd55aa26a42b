// MemfdBody and SplicePipe (memfd_body.hpp) on a real loopback TCP
// connection: the bytes arrive exactly, the mapping outlives the receiver and
// goes with the last Buffer, a pipe serves body after body, and misuse is an
// error naming the body.
#include "memfd_body.hpp"

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <random>
#include <string>
#include <thread>

#include "plugin_test_util.hpp"

using namespace stowage;
using namespace stowage::net;
using stowage::testing::error_of;

namespace {

// A connected loopback TCP pair; the receiving end is non-blocking, as the
// client's sockets are.
struct TcpPair {
  int sender = -1;
  int receiver = -1;
  TcpPair() {
    int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    REQUIRE(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(listener, 1) == 0);
    REQUIRE(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    sender = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(::connect(sender, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    receiver = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    REQUIRE(receiver >= 0);
    ::close(listener);
  }
  ~TcpPair() {
    if (sender >= 0) ::close(sender);
    ::close(receiver);
  }
  // False when the connection failed (no doctest assertion: it may run on
  // another thread).
  bool send_all(std::string_view bytes) const {
    while (!bytes.empty()) {
      ssize_t n = ::send(sender, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }
};

std::string random_bytes(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng() & 0xff);
  return s;
}

// Receives into body until it is complete or the stream ends, waiting for
// bytes when the socket has none yet. Returns the last splice_from result.
int64_t receive(MemfdBody& body, const TcpPair& tcp, const SplicePipe& pipe) {
  int64_t got = 1;
  while (body.received() < body.size()) {
    got = body.splice_from(tcp.receiver, pipe);
    if (got == -EAGAIN) {
      ::usleep(1000);
      continue;
    }
    if (got <= 0) break;
  }
  return got;
}

// Whether /proc/self/maps lists a mapping of ours that starts at p.
bool mapped_at(const void* p) {
  std::ifstream maps("/proc/self/maps");
  char start[32];
  std::snprintf(start, sizeof start, "%lx-", reinterpret_cast<unsigned long>(p));
  for (std::string line; std::getline(maps, line);) {
    if (line.rfind(start, 0) == 0 && line.find("memfd:stowage-body") != std::string::npos) {
      return true;
    }
  }
  return false;
}

}  // namespace

TEST_CASE("a memfd body holds exactly the bytes sent, mapped until the last Buffer goes") {
  TcpPair tcp;
  SplicePipe pipe;
  const std::string bytes = random_bytes(3 << 20, 7);
  // Bytes already read with the head come first, the rest from the socket
  // while the sender is still writing.
  MemfdBody body(bytes.size(), "http://h/big.bin");
  body.append(reinterpret_cast<const uint8_t*>(bytes.data()), 1000);
  bool sent = false;
  std::thread sender([&] { sent = tcp.send_all(std::string_view(bytes).substr(1000)); });
  CHECK(receive(body, tcp, pipe) > 0);
  sender.join();
  CHECK(sent);
  CHECK(body.received() == bytes.size());
  // Nothing more of this body is taken from the socket.
  CHECK(tcp.send_all("next"));
  CHECK(body.splice_from(tcp.receiver, pipe) == 0);

  Buffer held;
  const void* where = nullptr;
  {
    Buffer b = body.finish();
    CHECK(b.size() == bytes.size());
    CHECK(b.label() == "http://h/big.bin");
    CHECK(b.view() == bytes);
    where = b.data();
    held = b;
  }
  CHECK(mapped_at(where));  // a copy of the Buffer keeps it
  CHECK(held.view() == bytes);
  held = Buffer();
  CHECK_FALSE(mapped_at(where));

  // The next body on the same connection starts where this one ended, through
  // the same pipe.
  MemfdBody next(4, "http://h/next");
  CHECK(receive(next, tcp, pipe) > 0);
  CHECK(next.finish().view() == "next");
}

TEST_CASE("a memfd body reports an empty socket, the end of the stream, and misuse") {
  TcpPair tcp;
  SplicePipe pipe;
  MemfdBody body(10, "http://h/short.bin");
  CHECK(body.splice_from(tcp.receiver, pipe) == -EAGAIN);
  CHECK(tcp.send_all("abcd"));
  ::close(tcp.sender);
  tcp.sender = -1;
  CHECK(receive(body, tcp, pipe) == 0);  // the peer closed after 4 of 10 bytes
  CHECK(body.received() == 4);

  Error early = error_of([&] { body.finish(); });
  CHECK(early.code() == ErrorCode::kInternal);
  CHECK(std::string(early.what()) ==
        "the body of http://h/short.bin was mapped after 4 of 10 bytes");
  Error over = error_of([&] { body.append(reinterpret_cast<const uint8_t*>("0123456789"), 7); });
  CHECK(over.code() == ErrorCode::kInternal);
  CHECK(std::string(over.what()) ==
        "more bytes than the 10-byte body of http://h/short.bin were appended");
  body.append(reinterpret_cast<const uint8_t*>("012345"), 6);
  CHECK(body.finish().view() == "abcd012345");

  MemfdBody empty(0, "http://h/empty");
  CHECK(empty.finish().size() == 0);
}
