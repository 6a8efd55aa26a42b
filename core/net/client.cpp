// The HTTP/1.1 client engine: Asio C++20 coroutines on one I/O thread,
// Beast's parser for response heads and chunked bodies, OpenSSL for TLS.
// Everything that includes Asio or Beast lives in this one file; the pool's
// books (connection_pool.hpp) and the redirect rules (redirect.hpp) are
// units of their own, free of both.
//
// Threading: every coroutine, the connection pools and the call state that
// coroutines touch run on the I/O thread only; a calling thread talks to it
// through asio::post and waits on a condition variable, polling the caller's
// cancellation flag and deadline while it waits.
#include <sys/mman.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "connection_pool.hpp"
#include "http_client.hpp"
#include "memfd_body.hpp"
#include "redirect.hpp"
#include "stowage/digest.hpp"

namespace stowage::net {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = asio::ip::tcp;
using boost::system::error_code;
template <typename T>
using awaitable = asio::awaitable<T>;

constexpr auto kUseAwaitable = asio::use_awaitable;
constexpr size_t kWriteChunk = 1u << 20;         // progress/timeout granularity of writes
constexpr uint64_t kDrainLimit = 64u << 10;      // redirect bodies read and dropped up to this
constexpr uint64_t kMmapThreshold = 256u << 10;  // bodies this large get their own mapping
constexpr size_t kCopyChunk = 256u << 10;        // TLS bytes decrypted per copy into a memfd
constexpr uint32_t kHeaderLimit = 64u << 10;

using Parser = http::response_parser<http::buffer_body>;

// One TCP or TLS connection to an origin, with its read buffer (bytes that
// arrived after a response head).
struct Connection final : PooledConnection {
  using PooledConnection::PooledConnection;
  std::optional<beast::tcp_stream> plain;
  std::optional<beast::ssl_stream<beast::tcp_stream>> secure;
  beast::flat_buffer buffer;
  std::unique_ptr<SplicePipe> pipe;  // made on the first large plain-TCP body

  beast::tcp_stream& lowest() { return secure ? beast::get_lowest_layer(*secure) : *plain; }
  const beast::tcp_stream& lowest() const {
    return secure ? beast::get_lowest_layer(*secure) : *plain;
  }
  bool is_open() const override { return lowest().socket().is_open(); }
  void close() override {
    error_code ignored;
    lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
    lowest().socket().close(ignored);
  }
};

// A request waiting for a connection slot: a timer that never fires by
// itself, cancelled by the pool (or by an abort) to wake the request.
struct TimerWaiter final : PoolWaiter {
  explicit TimerWaiter(asio::io_context& io) : timer(io, asio::steady_timer::time_point::max()) {}
  void wake() override { timer.cancel(); }
  asio::steady_timer timer;
};

struct CallState;

struct Op;

// Counts a request as committed (its body sent, its answer awaited) for as
// long as it lives.
class CommitGuard {
 public:
  CommitGuard(Op& op, bool active);
  ~CommitGuard();
  CommitGuard(const CommitGuard&) = delete;
  CommitGuard& operator=(const CommitGuard&) = delete;

 private:
  Op* op_;
};

// Hashes a final 200 body as it arrives when its headers claim a sha-256,
// and refuses it at the end when the bytes differ (see http_client.hpp).
class DigestCheck {
 public:
  DigestCheck(const Op& op, const Response& head, bool final);
  void update(const uint8_t* data, uint64_t n) {
    if (hash_ && n > 0) hash_->update(std::span<const uint8_t>(data, static_cast<size_t>(n)));
  }
  // n: the body's size.
  void finish(uint64_t n);

 private:
  const Op& op_;
  DigestHeader claim_;
  std::optional<Sha256> hash_;  // only while a claim is to be checked
};

// Thrown inside a coroutine whose call was stopped by another request's
// failure, a cancellation or a deadline; the call's recorded error wins.
struct Stopped {};

// One request in flight: what an abort must cancel.
struct Op {
  CallState* call = nullptr;
  const Request* request = nullptr;
  Connection* conn = nullptr;
  tcp::resolver* resolver = nullptr;
  asio::steady_timer* timer = nullptr;
  std::string method;      // the current method (redirects may change it)
  std::string url;         // the current URL, redacted, for messages
  bool committed = false;  // see CommitGuard

  std::string where() const {
    std::string s = method + " " + url;
    if (!request->label.empty()) s += " (" + request->label + ")";
    return s + ": ";
  }
  void cancel() {
    if (resolver != nullptr) resolver->cancel();
    if (timer != nullptr) timer->cancel();
    if (conn != nullptr) conn->lowest().cancel();
  }
};

DigestCheck::DigestCheck(const Op& op, const Response& head, bool final) : op_(op) {
  // A HEAD answer's digest headers describe the body a GET would send, not
  // its own empty one: nothing to check.
  if (!final || head.status != 200 || !op.request->check_digest_headers || op.method == "HEAD") {
    return;
  }
  claim_ = sha256_from_digest_headers(head.headers);
  if (!claim_.malformed.empty()) {
    // A server that claims a digest it cannot spell (or two that disagree)
    // has given no trustworthy claim; the body is refused rather than used
    // unchecked.
    throw Error(ErrorCode::kDataLoss, op.where() + "the " + claim_.malformed +
                                          " header's sha-256 is malformed (not 32 bytes of "
                                          "padded base64) or contradicts another digest header");
  }
  if (!claim_.hex.empty()) hash_.emplace();
}

void DigestCheck::finish(uint64_t n) {
  if (!hash_) return;
  const std::string actual = hash_->finish_hex();
  if (actual != claim_.hex) {
    throw Error(ErrorCode::kDataLoss, op_.where() + "the body's SHA-256 does not match its " +
                                          claim_.header + " header: " + std::to_string(n) +
                                          " bytes, expected sha-256 (hex) " + claim_.hex +
                                          ", got " + actual);
  }
}

struct CallState {
  const std::vector<Request>* requests = nullptr;
  const Control* control = nullptr;
  std::vector<Response> results;
  size_t next = 0;
  bool stopped = false;
  std::exception_ptr error;
  std::vector<Op*> active;

  // Shared with the waiting thread.
  std::mutex mutex;
  std::condition_variable done_cv;
  size_t workers = 0;
  bool finished = false;
  // Requests whose whole body is sent and whose answer is awaited: the server
  // may already have acted on them (published an upload), so a cancellation
  // or a deadline waits for their answer instead of cutting them off and
  // reporting a failure for something that happened.
  std::atomic<int> committed{0};

  // A Client::Batch's: its Control, requests started and not yet answered,
  // answered ones whose step is yet to run on the submitting thread, and
  // stops posted to the I/O thread and not yet run (all under mutex but
  // own_control). `failed` tells the submitting thread the call stopped.
  Control own_control;
  size_t in_flight = 0;
  std::map<uint64_t, std::shared_ptr<struct BatchSlot>> answered;  // by sequence number
  size_t stops_posted = 0;
  bool failed = false;

  // On the I/O thread. Committed requests are not cut off: the server may
  // already be acting on them (publishing an upload), and what the caller
  // does after a failure (deleting what was written, aborting a multipart
  // upload) must come after that, so their answers are awaited. One may
  // commit between the waiting thread's look at `committed` and this stop.
  void stop(std::exception_ptr e) {
    if (!error) error = std::move(e);
    stopped = true;
    for (Op* op : active) {
      if (!op->committed) op->cancel();
    }
  }
};

// One request of a Client::Batch, with its answer and the step to run on it.
struct BatchSlot {
  uint64_t sequence = 0;  // its place in the order of submit()
  Request request;
  Response response;
  Client::Batch::Step step;
};

CommitGuard::CommitGuard(Op& op, bool active) : op_(active ? &op : nullptr) {
  if (op_ == nullptr) return;
  op_->committed = true;
  ++op_->call->committed;
}
CommitGuard::~CommitGuard() {
  if (op_ == nullptr) return;
  op_->committed = false;
  --op_->call->committed;
}

bool is_ip_literal(const std::string& host) {
  error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

bool token_char(char c) {
  auto u = static_cast<unsigned char>(c);
  if (u <= 32 || u >= 127) return false;
  return std::string_view("()<>@,;:\\\"/[]?={}").find(c) == std::string_view::npos;
}

void check_header(const std::string& name, const std::string& value) {
  if (name.empty() || !std::all_of(name.begin(), name.end(), token_char)) {
    throw Error(ErrorCode::kInvalidArgument, "invalid HTTP header name \"" + name + "\"");
  }
  for (char c : value) {
    if (c == '\r' || c == '\n' || c == '\0') {
      // The value is not printed: it may be a secret.
      throw Error(ErrorCode::kInvalidArgument,
                  "the value of HTTP header \"" + name + "\" contains CR, LF or NUL");
    }
  }
}

// A buffer of `size` bytes that are never zeroed; large ones get their own
// mapping so that dropping the model returns the memory to the system. The
// mapping is populated up front: one batch of page allocations costs less
// than a fault per page taken inside the receive (bench/README.md).
std::pair<uint8_t*, std::shared_ptr<const void>> allocate(uint64_t size) {
  if (size >= kMmapThreshold) {
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    std::shared_ptr<const void> owner(
        p, [size](const void* q) { ::munmap(const_cast<void*>(q), size); });
    return {static_cast<uint8_t*>(p), std::move(owner)};
  }
  std::shared_ptr<uint8_t[]> block(new uint8_t[size == 0 ? 1 : size]);
  uint8_t* data = block.get();
  return {data, std::shared_ptr<const void>(std::move(block), data)};
}

}  // namespace

struct Client::Impl {
  // A connection taken from the pool; given back as reusable with
  // end(true), otherwise closed when the lease ends.
  struct Lease {
    ConnectionPool* pool = nullptr;
    std::unique_ptr<Connection> conn;
    Lease() = default;
    Lease(ConnectionPool* p, std::unique_ptr<Connection> c) : pool(p), conn(std::move(c)) {}
    Lease(Lease&& o) noexcept : pool(o.pool), conn(std::move(o.conn)) {}
    Lease& operator=(Lease&& o) noexcept {
      end(false);
      pool = o.pool;
      conn = std::move(o.conn);
      return *this;
    }
    ~Lease() { end(false); }
    void end(bool reusable) {
      if (conn) pool->release(std::move(conn), reusable, PoolClock::now());
    }
  };

  // The response head of one exchange, with the connection it came on.
  struct Exchange {
    Lease lease;
    std::unique_ptr<Parser> parser;
    Response head;
  };

  ClientOptions options;
  asio::io_context io{1};
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  // Made on first use: loading the system's CA store costs more than a
  // whole plain-http load of a small model.
  std::optional<ssl::context> tls;
  ConnectionPool pool;  // I/O thread only (but its open())
  std::thread thread;

  explicit Impl(ClientOptions o)
      : options(std::move(o)), pool(options.max_connections_per_host, options.idle_timeout) {
    if (options.max_connections_per_host == 0) options.max_connections_per_host = 1;
    // Trust anchors the caller named are checked now, so a wrong path fails
    // at once rather than at the first https request.
    if (!options.ca_file.empty() || !options.ca_path.empty()) tls_context();
    thread = std::thread([this] { io.run(); });
  }

  // REQUIRES: called before the I/O thread starts or on it.
  ssl::context& tls_context() {
    if (tls) return *tls;
    ssl::context& ctx = tls.emplace(ssl::context::tls_client);
    SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION);
    ctx.set_options(ssl::context::default_workarounds | ssl::context::no_compression);
    error_code ec;
    ctx.set_default_verify_paths(ec);  // a host without a system store still works with ca_file
    if (!options.ca_file.empty()) {
      ctx.load_verify_file(options.ca_file, ec);
      if (ec) {
        tls.reset();
        throw Error(ErrorCode::kInvalidArgument, "Cannot load CA certificates from \"" +
                                                     options.ca_file + "\": " + ec.message());
      }
    }
    if (!options.ca_path.empty()) {
      ctx.add_verify_path(options.ca_path, ec);
      if (ec) {
        tls.reset();
        throw Error(ErrorCode::kInvalidArgument,
                    "Cannot use CA folder \"" + options.ca_path + "\": " + ec.message());
      }
    }
    ctx.set_verify_mode(options.insecure_skip_tls_verify ? ssl::verify_none : ssl::verify_peer);
    return ctx;
  }

  ~Impl() {
    asio::post(io, [this] { pool.close_idle(); });
    work.reset();
    io.stop();
    if (thread.joinable()) thread.join();
  }

  static void check(const Op& op) {
    if (op.call->stopped) throw Stopped{};
  }

  [[noreturn]] void fail(Op& op, const error_code& ec, std::string_view phase) {
    check(op);
    const std::string at = op.where();
    if (ec == beast::error::timeout) {
      bool connecting = phase == "connect" || phase == "handshake";
      auto ms = (connecting ? options.connect_timeout : options.read_timeout).count();
      throw Error(
          ErrorCode::kUnavailable,
          at + (connecting
                    ? "no connection within " + std::to_string(ms) + " ms (connect timeout)"
                    : "the server sent nothing for " + std::to_string(ms) + " ms (read timeout)"),
          /*retryable=*/true);
    }
    if (ec == asio::error::host_not_found) {
      throw Error(ErrorCode::kUnavailable, at + "cannot resolve the host name", false);
    }
    std::string what = ec.message();
    if (ec == asio::error::eof || ec == http::error::partial_message ||
        ec == asio::ssl::error::stream_truncated) {
      what = "the server closed the connection";
    }
    throw Error(ErrorCode::kUnavailable, at + what + " while " + std::string(phase),
                /*retryable=*/true);
  }

  awaitable<std::unique_ptr<Connection>> connect(Op& op, const Url& url) {
    auto conn = std::make_unique<Connection>(url.origin());
    if (url.scheme == "https") {
      conn->secure.emplace(io, tls_context());
    } else {
      conn->plain.emplace(io);
    }
    tcp::resolver resolver(io);
    op.resolver = &resolver;
    error_code ec;
    auto endpoints = co_await resolver.async_resolve(url.host, std::to_string(url.port),
                                                     asio::redirect_error(kUseAwaitable, ec));
    op.resolver = nullptr;
    if (ec) fail(op, ec, "resolving the host name");
    check(op);
    op.conn = conn.get();
    conn->lowest().expires_after(options.connect_timeout);
    co_await conn->lowest().async_connect(endpoints, asio::redirect_error(kUseAwaitable, ec));
    if (ec) fail(op, ec, "connect");
    conn->lowest().socket().set_option(tcp::no_delay(true), ec);
    if (conn->secure) {
      SSL* ssl = conn->secure->native_handle();
      const bool ip = is_ip_literal(url.host);
      if (!ip) SSL_set_tlsext_host_name(ssl, url.host.c_str());
      if (!options.insecure_skip_tls_verify) {
        X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, url.host.c_str())
                    : X509_VERIFY_PARAM_set1_host(param, url.host.c_str(), url.host.size());
        if (ok != 1) {
          throw Error(ErrorCode::kInternal, op.where() + "cannot set up host name verification");
        }
      }
      conn->lowest().expires_after(options.connect_timeout);
      co_await conn->secure->async_handshake(ssl::stream_base::client,
                                             asio::redirect_error(kUseAwaitable, ec));
      if (ec) {
        check(op);
        if (ec == beast::error::timeout) fail(op, ec, "handshake");
        long verify = SSL_get_verify_result(ssl);
        if (verify != X509_V_OK) {
          throw Error(ErrorCode::kUnavailable,
                      op.where() + "TLS certificate verification failed for " + url.host + ": " +
                          X509_verify_cert_error_string(verify) +
                          " (trust its CA with a CA file, or use the system store)",
                      /*retryable=*/false);
        }
        throw Error(ErrorCode::kUnavailable, op.where() + "TLS handshake failed: " + ec.message(),
                    /*retryable=*/false);
      }
    }
    op.conn = nullptr;
    conn->lowest().expires_never();
    co_return conn;
  }

  awaitable<Lease> acquire(Op& op, const Url& url) {
    const std::string origin = url.origin();
    for (;;) {
      check(op);
      if (std::unique_ptr<PooledConnection> idle = pool.take_idle(origin, PoolClock::now())) {
        // Only this client's connections are ever given to its pool.
        co_return Lease(&pool,
                        std::unique_ptr<Connection>(static_cast<Connection*>(idle.release())));
      }
      if (pool.reserve(origin)) {
        std::unique_ptr<Connection> c;
        try {
          c = co_await connect(op, url);
        } catch (...) {
          op.conn = nullptr;
          pool.unreserve(origin);
          throw;
        }
        co_return Lease(&pool, std::move(c));
      }
      TimerWaiter waiter(io);
      pool.wait(origin, &waiter);
      op.timer = &waiter.timer;
      error_code ec;
      co_await waiter.timer.async_wait(asio::redirect_error(kUseAwaitable, ec));
      op.timer = nullptr;
      pool.forget(origin, &waiter);
    }
  }

  // ---- One exchange --------------------------------------------------------

  static std::string request_head(const Url& url, const std::string& method, const Headers& headers,
                                  uint64_t body_size, bool send_length,
                                  const std::string& user_agent) {
    std::string head = method + " " + url.target + " HTTP/1.1\r\n";
    if (!find_header(headers, "host")) head += "Host: " + url.authority() + "\r\n";
    if (!find_header(headers, "user-agent") && !user_agent.empty()) {
      head += "User-Agent: " + user_agent + "\r\n";
    }
    if (send_length) head += "Content-Length: " + std::to_string(body_size) + "\r\n";
    for (const auto& [name, value] : headers) {
      if (beast::iequals(name, "content-length") || beast::iequals(name, "transfer-encoding") ||
          beast::iequals(name, "connection")) {
        continue;  // the client frames the message itself
      }
      check_header(name, value);
      head += name + ": " + value + "\r\n";
    }
    head += "\r\n";
    return head;
  }

  template <typename F>
  static auto on_stream(Connection& c, F&& f) {
    return c.secure ? f(*c.secure) : f(*c.plain);
  }

  // Writes pieces; the first `unreported` bytes (the request head) are not
  // counted as body progress.
  awaitable<void> write_all(Op& op, Connection& c, std::vector<asio::const_buffer> pieces,
                            size_t unreported) {
    // Pieces are sent in runs of about kWriteChunk so that progress and the
    // read timeout (here: no write progress) see every run.
    size_t i = 0;
    size_t offset = 0;
    while (i < pieces.size()) {
      // Between runs, not only while the caller waits: a cancellation that
      // came with a progress report must stop the body short, or the server
      // receives the whole upload and publishes what the caller gave up on.
      if (op.call->control->cancelled && op.call->control->cancelled()) {
        throw Error(ErrorCode::kCancelled, op.where() + "cancelled while sending the body");
      }
      // Likewise the deadline: the last byte must not go out late.
      if (op.call->control->deadline &&
          std::chrono::system_clock::now() >= *op.call->control->deadline) {
        throw Error(ErrorCode::kDeadlineExceeded,
                    op.where() + "passed its deadline while sending the body");
      }
      std::vector<asio::const_buffer> run;
      size_t bytes = 0;
      while (i < pieces.size() && bytes < kWriteChunk) {
        size_t n = std::min(pieces[i].size() - offset, kWriteChunk - bytes);
        run.emplace_back(static_cast<const uint8_t*>(pieces[i].data()) + offset, n);
        bytes += n;
        offset += n;
        if (offset == pieces[i].size()) {
          ++i;
          offset = 0;
        }
      }
      c.lowest().expires_after(options.read_timeout);
      error_code ec;
      co_await on_stream(c, [&](auto& s) {
        return asio::async_write(s, run, asio::redirect_error(kUseAwaitable, ec));
      });
      if (ec) fail(op, ec, "sending the request");
      check(op);
      const size_t head = std::min(bytes, unreported);
      unreported -= head;
      if (bytes > head && op.call->control->on_sent) op.call->control->on_sent(bytes - head);
    }
  }

  // Sends the request and reads the response head. A kept-alive connection
  // that the server had closed is replaced and the request sent again.
  awaitable<Exchange> exchange(Op& op, const Url& url, const std::string& method,
                               const Headers& headers, const std::vector<Buffer>* body) {
    uint64_t body_size = 0;
    if (body != nullptr) {
      for (const Buffer& b : *body) body_size += b.size();
    }
    const bool send_length =
        body_size > 0 || method == "POST" || method == "PUT" || method == "PATCH";
    const std::string head =
        request_head(url, method, headers, body_size, send_length, options.user_agent);
    for (uint32_t attempt = 0;; ++attempt) {
      Exchange ex;
      ex.lease = co_await acquire(op, url);
      Connection& c = *ex.lease.conn;
      const bool reused = c.reused();
      op.conn = &c;
      std::vector<asio::const_buffer> pieces{asio::buffer(head)};
      if (body != nullptr) {
        for (const Buffer& b : *body) {
          if (!b.empty()) pieces.emplace_back(b.data(), static_cast<size_t>(b.size()));
        }
      }
      bool stale = false;
      error_code ec;
      try {
        co_await write_all(op, c, std::move(pieces), head.size());
      } catch (const Error& e) {
        const bool stop =
            e.code() == ErrorCode::kCancelled || e.code() == ErrorCode::kDeadlineExceeded;
        if (stop || !reused || attempt > options.max_connections_per_host) throw;
        stale = true;
      }
      CommitGuard commit(op, !stale && body_size > 0);
      if (!stale) {
        for (;;) {
          ex.parser = std::make_unique<Parser>();
          ex.parser->header_limit(kHeaderLimit);
          ex.parser->body_limit(boost::none);
          if (method == "HEAD") ex.parser->skip(true);
          c.lowest().expires_after(options.read_timeout);
          co_await on_stream(c, [&](auto& s) {
            return http::async_read_header(s, c.buffer, *ex.parser,
                                           asio::redirect_error(kUseAwaitable, ec));
          });
          if (ec) break;
          int status = static_cast<int>(ex.parser->get().result_int());
          if (status >= 100 && status < 200 && status != 101) continue;  // interim answer
          break;
        }
        if (ec && reused && !ex.parser->got_some() && attempt <= options.max_connections_per_host &&
            (ec == asio::error::eof || ec == asio::error::connection_reset ||
             ec == asio::error::broken_pipe || ec == http::error::end_of_stream)) {
          stale = true;
        } else if (ec) {
          op.conn = nullptr;
          fail(op, ec, "reading the response head");
        }
      }
      op.conn = nullptr;
      check(op);
      if (stale) continue;  // the lease closes the dead connection
      const auto& msg = ex.parser->get();
      ex.head.status = static_cast<int>(msg.result_int());
      ex.head.reason = std::string(msg.reason());
      for (const auto& field : msg) {
        ex.head.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
      }
      if (auto n = ex.parser->content_length()) ex.head.content_length = *n;
      ex.head.url = url.str();
      co_return ex;
    }
  }

  // Receives the n-byte body of a plain-TCP response into a memfd
  // (memfd_body.hpp): the bytes that came with the head, then spliced from
  // the socket as they arrive, waiting for readability in between.
  awaitable<void> splice_body(Op& op, Connection& c, MemfdBody& body,
                              const std::function<void(uint64_t)>& received) {
    using namespace asio::experimental::awaitable_operators;
    const uint64_t n = body.size();
    const uint64_t early = std::min<uint64_t>(c.buffer.size(), n);
    body.append(static_cast<const uint8_t*>(c.buffer.data().data()), early);
    c.buffer.consume(static_cast<size_t>(early));
    received(early);
    if (!c.pipe) c.pipe = std::make_unique<SplicePipe>();
    tcp::socket& socket = c.lowest().socket();
    error_code ec;
    socket.native_non_blocking(true, ec);
    if (ec) fail(op, ec, "reading the response body");
    asio::steady_timer timer(socket.get_executor());
    while (body.received() < n) {
      const int64_t got = body.splice_from(socket.native_handle(), *c.pipe);
      if (got > 0) {
        check(op);
        received(static_cast<uint64_t>(got));
        continue;
      }
      if (got == 0) {
        op.conn = nullptr;
        check(op);
        throw Error(ErrorCode::kUnavailable,
                    op.where() + "the connection closed after " + std::to_string(body.received()) +
                        " of " + std::to_string(n) + " body bytes (truncated response)",
                    /*retryable=*/true);
      }
      if (got != -EAGAIN && got != -EWOULDBLOCK) {
        op.conn = nullptr;
        fail(op, error_code(static_cast<int>(-got), boost::system::system_category()),
             "reading the response body");
      }
      timer.expires_after(options.read_timeout);
      auto woke = co_await (
          socket.async_wait(tcp::socket::wait_read, asio::redirect_error(kUseAwaitable, ec)) ||
          timer.async_wait(asio::as_tuple(kUseAwaitable)));
      if (woke.index() == 1) ec = beast::error::timeout;
      if (ec) {
        op.conn = nullptr;
        fail(op, ec, "reading the response body");
      }
      check(op);
    }
  }

  // Receives the n-byte body of a TLS response into `body` through a small
  // buffer: TLS decrypts in user space, so there is nothing to splice.
  awaitable<void> copy_body(Op& op, Connection& c, MemfdBody& body,
                            const std::function<void(uint64_t)>& received) {
    const uint64_t n = body.size();
    const uint64_t early = std::min<uint64_t>(c.buffer.size(), n);
    body.append(static_cast<const uint8_t*>(c.buffer.data().data()), early);
    c.buffer.consume(static_cast<size_t>(early));
    received(early);
    std::vector<uint8_t> chunk(kCopyChunk);
    while (body.received() < n) {
      c.lowest().expires_after(options.read_timeout);
      error_code ec;
      const size_t want =
          static_cast<size_t>(std::min<uint64_t>(chunk.size(), n - body.received()));
      size_t got = co_await on_stream(c, [&](auto& s) {
        return s.async_read_some(asio::buffer(chunk.data(), want),
                                 asio::redirect_error(kUseAwaitable, ec));
      });
      body.append(chunk.data(), got);
      if (ec) {
        op.conn = nullptr;
        check(op);
        if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated) {
          throw Error(ErrorCode::kUnavailable,
                      op.where() + "the connection closed after " +
                          std::to_string(body.received()) + " of " + std::to_string(n) +
                          " body bytes (truncated response)",
                      /*retryable=*/true);
        }
        fail(op, ec, "reading the response body");
      }
      check(op);
      received(got);
    }
  }

  // Reads the body of ex into one buffer and gives the connection back.
  awaitable<void> read_body(Op& op, Exchange& ex, uint64_t limit, bool final) {
    Connection& c = *ex.lease.conn;
    Parser& parser = *ex.parser;
    const Control& control = *op.call->control;
    auto received = [&](uint64_t n) {
      if (final && n > 0 && control.on_received) control.on_received(n);
    };
    const std::string label = op.url;
    DigestCheck digest(op, ex.head, final);
    if (parser.is_done()) {
      digest.finish(0);
      ex.head.body = Buffer::wrap(nullptr, 0, nullptr, label);
      ex.lease.end(parser.keep_alive());
      co_return;
    }
    op.conn = &c;
    if (auto length = parser.content_length(); length && !parser.chunked()) {
      const uint64_t n = *length;
      if (n > limit) {
        throw Error(ErrorCode::kDataLoss, op.where() + "the response announces " +
                                              std::to_string(n) + " bytes, more than the " +
                                              std::to_string(limit) + " allowed");
      }
      const Request& req = *op.request;
      if (final && ex.head.status == 206 && req.into) {
        if (n != req.into_length) {
          throw Error(ErrorCode::kDataLoss, op.where() + "the ranged answer announces " +
                                                std::to_string(n) + " bytes, the range asked for " +
                                                std::to_string(req.into_length));
        }
        const bool extra = c.buffer.size() > n;
        MemfdBody part(*req.into, req.into_offset, n, label);
        if (c.secure) {
          co_await copy_body(op, c, part, received);
        } else {
          co_await splice_body(op, c, part, received);
        }
        op.conn = nullptr;
        ex.head.body = part.finish();
        ex.lease.end(parser.keep_alive() && !extra);
        co_return;
      }
      if (!c.secure && n >= kMmapThreshold) {
        // Bytes past the body before it is read: the connection is not reused.
        const bool extra = c.buffer.size() > n;
        MemfdBody memfd(n, label);
        co_await splice_body(op, c, memfd, received);
        Buffer body = memfd.finish();
        op.conn = nullptr;
        digest.update(body.data(), n);
        digest.finish(n);
        ex.head.body = std::move(body);
        ex.lease.end(parser.keep_alive() && !extra);
        co_return;
      }
      auto [data, owner] = allocate(n);
      // Bytes that came with the head, then straight from the socket into
      // the buffer: no intermediate copy.
      uint64_t have = std::min<uint64_t>(c.buffer.size(), n);
      asio::buffer_copy(asio::buffer(data, static_cast<size_t>(have)), c.buffer.data());
      const bool extra = c.buffer.size() > n;
      c.buffer.consume(static_cast<size_t>(have));
      digest.update(data, have);
      received(have);
      while (have < n) {
        c.lowest().expires_after(options.read_timeout);
        error_code ec;
        size_t got = co_await on_stream(c, [&](auto& s) {
          return s.async_read_some(asio::buffer(data + have, static_cast<size_t>(n - have)),
                                   asio::redirect_error(kUseAwaitable, ec));
        });
        have += got;
        if (ec) {
          op.conn = nullptr;
          check(op);
          if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated) {
            throw Error(ErrorCode::kUnavailable,
                        op.where() + "the connection closed after " + std::to_string(have) +
                            " of " + std::to_string(n) + " body bytes (truncated response)",
                        /*retryable=*/true);
          }
          fail(op, ec, "reading the response body");
        }
        check(op);
        digest.update(data + have - got, got);
        received(got);
      }
      op.conn = nullptr;
      digest.finish(n);
      ex.head.body = Buffer::wrap(data, n, std::move(owner), label);
      ex.lease.end(parser.keep_alive() && !extra);
      co_return;
    }
    if (final && ex.head.status == 206 && op.request->into) {
      throw Error(ErrorCode::kDataLoss, op.where() +
                                            "the ranged answer has no Content-Length (chunked or "
                                            "delimited by the connection's end)");
    }
    // Chunked, or delimited by the end of the connection.
    std::vector<uint8_t> data;
    size_t used = 0;
    while (!parser.is_done()) {
      if (data.size() - used < (64u << 10))
        data.resize(std::max(data.size() * 2, used + (256u << 10)));
      parser.get().body().data = data.data() + used;
      parser.get().body().size = data.size() - used;
      parser.get().body().more = true;
      c.lowest().expires_after(options.read_timeout);
      error_code ec;
      co_await on_stream(c, [&](auto& s) {
        return http::async_read_some(s, c.buffer, parser, asio::redirect_error(kUseAwaitable, ec));
      });
      size_t got = (data.size() - used) - parser.get().body().size;
      used += got;
      if (ec == http::error::need_buffer) ec = {};
      if (ec) {
        op.conn = nullptr;
        fail(op, ec, "reading the response body");
      }
      check(op);
      digest.update(data.data() + used - got, got);
      received(got);
      if (used > limit) {
        throw Error(ErrorCode::kDataLoss, op.where() + "the response body is longer than the " +
                                              std::to_string(limit) + " bytes allowed");
      }
    }
    op.conn = nullptr;
    digest.finish(used);
    data.resize(used);
    data.shrink_to_fit();
    ex.head.body = Buffer::from_vector(std::move(data), label);
    ex.lease.end(parser.keep_alive());
  }

  awaitable<Response> perform(Op& op) {
    const Request& req = *op.request;
    RedirectState at;
    at.url = Url::parse(req.url);
    at.method = req.method.empty() ? "GET" : req.method;
    at.headers = req.headers;
    at.seen = {at.url.str()};
    op.method = at.method;
    op.url = redact_url(at.url.str());
    const RedirectRules rules{options.max_redirects, req.keep_credentials_across_origins};
    for (;;) {
      Exchange ex =
          co_await exchange(op, at.url, at.method, at.headers, at.body ? &req.body : nullptr);
      auto location = ex.head.header("location");
      if (req.follow_redirects && is_redirect(ex.head.status) && location) {
        if (!ex.parser->is_done() && ex.parser->content_length() &&
            *ex.parser->content_length() <= kDrainLimit) {
          co_await read_body(op, ex, kDrainLimit, false);
        }
        ex.lease.end(false);  // still held when the body was not drained
        RedirectStep step = follow_redirect(at, ex.head.status, *location, rules);
        if (!step.next) throw Error(step.code, op.where() + step.error, false);
        at = std::move(*step.next);
        op.method = at.method;
        op.url = redact_url(at.url.str());
        continue;
      }
      if (req.on_head) req.on_head(ex.head);
      co_await read_body(op, ex, req.max_body_bytes, true);
      co_return std::move(ex.head);
    }
  }

  // Sends `request` of `call` into `out`; a failure stops the call. True
  // when it was answered.
  awaitable<bool> perform_one(std::shared_ptr<CallState> call, const Request& request,
                              Response& out) {
    if (call->stopped) co_return false;
    Op op;
    op.call = call.get();
    op.request = &request;
    op.method = op.request->method;
    op.url = redact_url(op.request->url);
    call->active.push_back(&op);
    std::exception_ptr failure;
    bool answered = false;
    try {
      out = co_await perform(op);
      answered = true;
    } catch (const Stopped&) {
    } catch (const Error& e) {
      // Named for the host's retry notice: this request, as it stood when
      // it failed (after redirects), and the message without that prefix.
      if (e.request() != nullptr) {
        failure = std::current_exception();
      } else {
        std::string_view reason = e.what();
        const std::string where = op.where();
        if (reason.starts_with(where)) reason.remove_prefix(where.size());
        failure = std::make_exception_ptr(e.with_request({op.method, op.url, std::string(reason)}));
      }
    } catch (...) {
      failure = std::current_exception();
    }
    std::erase(call->active, &op);
    if (failure) call->stop(failure);
    co_return answered;
  }

  awaitable<void> worker(std::shared_ptr<CallState> call) {
    while (!call->stopped && call->next < call->requests->size()) {
      const size_t index = call->next++;
      co_await perform_one(call, (*call->requests)[index], call->results[index]);
    }
  }

  // A batch's request: started on the I/O thread; when it ends, its slot
  // waits for its step (if answered) and the room it took frees up.
  void start(const std::shared_ptr<CallState>& call, std::shared_ptr<BatchSlot> slot) {
    asio::post(io, [this, call, slot] {
      asio::co_spawn(io, perform_one(call, slot->request, slot->response),
                     [call, slot](std::exception_ptr e, bool answered) mutable {
                       if (e) call->stop(e);
                       // This handler gives its reference away before the
                       // room frees up: a request body (a streaming save's
                       // weights) must be gone by the time the submitter
                       // may take more, or it briefly holds one batch more.
                       std::shared_ptr<BatchSlot> done = std::move(slot);
                       if (e || !answered) done.reset();
                       std::lock_guard<std::mutex> lock(call->mutex);
                       --call->in_flight;
                       if (!done) {
                         call->failed = true;
                       } else {
                         const uint64_t sequence = done->sequence;
                         call->answered.emplace(sequence, std::move(done));
                       }
                       call->done_cv.notify_all();
                     });
    });
  }

  // Stops a batch with `reason` on the I/O thread; the batch waits for it
  // to have run before it reads the call's error.
  // REQUIRES: call->mutex held.
  void post_stop(const std::shared_ptr<CallState>& call, std::exception_ptr reason) {
    call->failed = true;
    ++call->stops_posted;
    asio::post(io, [call, reason] {
      call->stop(reason);
      std::lock_guard<std::mutex> lock(call->mutex);
      --call->stops_posted;
      call->done_cv.notify_all();
    });
  }

  std::vector<Response> run(const std::vector<Request>& requests, const Control& control,
                            size_t max_parallel) {
    auto call = std::make_shared<CallState>();
    call->requests = &requests;
    call->control = &control;
    call->results.resize(requests.size());
    if (requests.empty()) return {};
    const size_t workers = std::min(std::max<size_t>(max_parallel, 1), requests.size());
    call->workers = workers;
    asio::post(io, [this, call, workers] {
      for (size_t i = 0; i < workers; ++i) {
        asio::co_spawn(io, worker(call), [call](std::exception_ptr e) {
          if (e) call->stop(e);
          std::lock_guard<std::mutex> lock(call->mutex);
          if (--call->workers == 0) {
            call->finished = true;
            call->done_cv.notify_all();
          }
        });
      }
    });
    const std::string what = requests.size() == 1
                                 ? requests[0].method + " " + redact_url(requests[0].url)
                                 : std::to_string(requests.size()) + " HTTP requests";
    bool aborted = false;
    std::unique_lock<std::mutex> lock(call->mutex);
    // A stop posted to the I/O thread writes call->error there: the error
    // is read only once it ran (as a batch counts its posted stops).
    while (!call->finished || call->stops_posted > 0) {
      call->done_cv.wait_for(lock, control.poll_interval);
      if (call->finished || aborted) continue;
      std::exception_ptr reason;
      if (control.cancelled && control.cancelled()) {
        reason = std::make_exception_ptr(Error(ErrorCode::kCancelled, what + " was cancelled"));
      } else if (control.deadline && std::chrono::system_clock::now() >= *control.deadline) {
        reason = std::make_exception_ptr(
            Error(ErrorCode::kDeadlineExceeded, what + " passed its deadline"));
      }
      // A committed request is answered within the read timeout; its
      // outcome is then known and reported (the deadline fails the rest).
      if (reason && call->committed.load() == 0) {
        aborted = true;
        ++call->stops_posted;
        asio::post(io, [call, reason] {
          // Requests that all ended before the stop ran keep their outcome.
          if (call->workers > 0) call->stop(reason);
          std::lock_guard<std::mutex> guard(call->mutex);
          --call->stops_posted;
          call->done_cv.notify_all();
        });
      }
    }
    lock.unlock();
    if (call->error) std::rethrow_exception(call->error);
    return std::move(call->results);
  }
};

Client::Client(ClientOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
Client::~Client() = default;

const ClientOptions& Client::options() const noexcept { return impl_->options; }

Response Client::send(const Request& request, const Control& control) {
  std::vector<Request> one{request};
  return std::move(impl_->run(one, control, 1).front());
}

std::vector<Response> Client::send_all(const std::vector<Request>& requests, const Control& control,
                                       size_t max_parallel) {
  return impl_->run(requests, control, max_parallel);
}

size_t Client::open_connections() const { return impl_->pool.open(); }

struct Client::Batch::State {
  std::shared_ptr<CallState> call = std::make_shared<CallState>();
  size_t width = 1;
  Order order = Order::kAnswered;
  size_t submitted = 0;
  uint64_t next_step = 0;  // Order::kSubmitted: the sequence number whose step runs next
  std::string first;       // the first request, for messages: "GET <url>"
  bool aborted = false;
  bool step_failed = false;
  bool waited = false;

  std::string what() const {
    return submitted == 1 ? first : std::to_string(submitted) + " HTTP requests";
  }

  // One turn of waiting on the submitting thread: runs the step of an
  // answered request, or waits a poll interval and checks the Control.
  void turn(Client::Impl& impl, std::unique_lock<std::mutex>& lock) {
    CallState& c = *call;
    if (!c.answered.empty() && !step_failed &&
        (order == Order::kAnswered || c.answered.begin()->first == next_step)) {
      std::shared_ptr<BatchSlot> slot = std::move(c.answered.begin()->second);
      c.answered.erase(c.answered.begin());
      ++next_step;
      lock.unlock();
      std::exception_ptr failure;
      try {
        if (slot->step) slot->step(slot->response);
      } catch (...) {
        failure = std::current_exception();
      }
      slot.reset();  // the response is released before the room frees up
      lock.lock();
      if (failure) {
        step_failed = true;
        if (!c.failed) impl.post_stop(call, failure);
      }
      return;
    }
    // What can no longer get its step: all after a step failed, and after a
    // request failed, once nothing is in flight to fill a gap in the order.
    if (c.failed && !c.answered.empty() && (step_failed || c.in_flight == 0)) {
      c.answered.clear();
      return;
    }
    c.done_cv.wait_for(lock, c.own_control.poll_interval);
    if (aborted || c.failed || c.in_flight == 0) return;
    const Control& control = c.own_control;
    std::exception_ptr reason;
    if (control.cancelled && control.cancelled()) {
      reason = std::make_exception_ptr(Error(ErrorCode::kCancelled, what() + " was cancelled"));
    } else if (control.deadline && std::chrono::system_clock::now() >= *control.deadline) {
      reason = std::make_exception_ptr(
          Error(ErrorCode::kDeadlineExceeded, what() + " passed its deadline"));
    }
    // As in send_all: a committed request's outcome is awaited.
    if (reason && c.committed.load() == 0) {
      aborted = true;
      impl.post_stop(call, reason);
    }
  }

  // Waits until nothing of the batch is left on the I/O thread.
  void drain(Client::Impl& impl, std::unique_lock<std::mutex>& lock) {
    while (call->in_flight > 0 || !call->answered.empty() || call->stops_posted > 0) {
      turn(impl, lock);
    }
  }
};

Client::Batch::Batch(Client& client, const Control& control, size_t max_parallel, Order order)
    : client_(client), state_(std::make_shared<State>()) {
  state_->width = std::max<size_t>(max_parallel, 1);
  state_->order = order;
  state_->call->own_control = control;
  state_->call->control = &state_->call->own_control;
}

Client::Batch::~Batch() {
  if (state_->waited) return;
  state_->step_failed = true;  // the submitter is unwinding: no more steps
  std::unique_lock<std::mutex> lock(state_->call->mutex);
  if (!state_->call->failed) {
    client_.impl_->post_stop(
        state_->call,
        std::make_exception_ptr(Error(ErrorCode::kCancelled, state_->what() + " was abandoned")));
  }
  state_->drain(*client_.impl_, lock);
}

bool Client::Batch::submit(Request request, Step step) {
  State& s = *state_;
  std::unique_lock<std::mutex> lock(s.call->mutex);
  while (!s.call->failed && s.call->in_flight + s.call->answered.size() >= s.width) {
    s.turn(*client_.impl_, lock);
  }
  if (s.call->failed) return false;
  const uint64_t sequence = s.submitted;
  if (s.submitted++ == 0) s.first = request.method + " " + redact_url(request.url);
  ++s.call->in_flight;
  lock.unlock();
  client_.impl_->start(s.call, std::make_shared<BatchSlot>(sequence, std::move(request), Response{},
                                                           std::move(step)));
  return true;
}

void Client::Batch::wait() {
  State& s = *state_;
  std::unique_lock<std::mutex> lock(s.call->mutex);
  s.drain(*client_.impl_, lock);
  s.waited = true;
  if (s.call->error) std::rethrow_exception(s.call->error);
}

}  // namespace stowage::net
