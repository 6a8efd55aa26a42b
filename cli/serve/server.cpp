// The network half of the server, on Boost.Beast and Asio: one I/O thread
// runs every connection as a coroutine (so a slow client costs a few
// kilobytes, not a thread), and store operations, which block, run on a
// worker pool. Everything that decides what to answer lives in App. A
// connection reads and writes through a Stream, plain or TLS
// (tls_stream_internal.hpp), so this code is compiled once for both.
#include <time.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <csignal>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>

#include "app_internal.hpp"
#include "server_internal.hpp"
#include "stowage/error.hpp"
#include "tls_internal.hpp"
#include "tls_stream_internal.hpp"

namespace stowage::serve {
namespace {

namespace asio = boost::asio;  // not `net`: stowage::net is the http client library
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using asio::awaitable;
using asio::use_awaitable;
constexpr auto kTuple = asio::as_tuple(use_awaitable);

constexpr size_t kBodyChunk = 256 * 1024;
constexpr uint64_t kMaxWritePiece = 4ull << 20;
constexpr std::chrono::milliseconds kLingerTime{2000};
constexpr uint64_t kMaxLingerBytes = 64ull << 20;
constexpr size_t kMaxLingering = 64;
// How often a readiness check looks whether the store's probe has answered.
constexpr std::chrono::milliseconds kReadyPoll{5};
constexpr std::string_view kUploadLimitNote = "upload bytes in flight";
constexpr std::chrono::milliseconds kTlsCloseTime{1000};

// A response body made of Buffers (mmapped files, weight blocks), sent
// from [offset, offset + length) of their concatenation without copying.
struct BuffersBody {
  struct value_type {
    WeightData parts;
    uint64_t offset = 0;
    uint64_t length = 0;
  };

  static uint64_t size(const value_type& body) { return body.length; }

  class writer {
   public:
    using const_buffers_type = asio::const_buffer;

    template <bool isRequest, class Fields>
    writer(const http::header<isRequest, Fields>&, const value_type& body) : body_(body) {}

    void init(beast::error_code& ec) {
      ec = {};
      index_ = 0;
      skip_ = body_.offset;
      remaining_ = body_.length;
    }

    boost::optional<std::pair<const_buffers_type, bool>> get(beast::error_code& ec) {
      ec = {};
      while (remaining_ > 0 && index_ < body_.parts.size()) {
        const Buffer& b = body_.parts[index_];
        if (skip_ >= b.size()) {
          skip_ -= b.size();
          ++index_;
          continue;
        }
        const uint64_t n = std::min({b.size() - skip_, remaining_, kMaxWritePiece});
        const const_buffers_type out(b.data() + skip_, static_cast<size_t>(n));
        skip_ += n;
        remaining_ -= n;
        if (skip_ == b.size()) {
          skip_ = 0;
          ++index_;
        }
        return std::make_pair(out, remaining_ > 0);
      }
      return boost::none;
    }

   private:
    const value_type& body_;
    size_t index_ = 0;
    uint64_t skip_ = 0;
    uint64_t remaining_ = 0;
  };
};

UploadOutcome upload_outcome(const AccessRecord& record) {
  if (record.status == 0) return UploadOutcome::kAborted;
  if (record.note == kUploadLimitNote) return UploadOutcome::kLimited;
  if (record.status < 400) return UploadOutcome::kSaved;
  return record.status < 500 ? UploadOutcome::kRejected : UploadOutcome::kFailed;
}

std::string http_date(std::chrono::system_clock::time_point t) {
  const time_t secs = std::chrono::system_clock::to_time_t(t);
  tm parts{};
  gmtime_r(&secs, &parts);
  char text[64];
  std::strftime(text, sizeof text, "%a, %d %b %Y %H:%M:%S GMT", &parts);
  return text;
}

std::string endpoint_text(const tcp::endpoint& e) {
  const std::string address = e.address().to_string();
  return (e.address().is_v6() ? "[" + address + "]" : address) + ":" + std::to_string(e.port());
}

const beast::error_category& http_category() {
  return http::make_error_code(http::error::end_of_stream).category();
}

class Connection;

// The server's state, used by its connections (all on the I/O thread but
// for `cancelled` and `port`).
struct Core {
  explicit Core(ServerOptions o)
      : options(std::move(o)), app(options), workers(std::max<size_t>(1, options.worker_threads)) {}
  ~Core() {
    // Coroutine frames die with io (declared first among the network
    // members, so last to go) and end their connections: nothing else may
    // be touched then.
    destroying = true;
    slot_waits.clear();  // their timers go before io
  }

  void listen();
  awaitable<void> accept_loop();
  awaitable<void> signal_loop();
  void begin_shutdown();
  void hard_stop();
  void maybe_finish();
  awaitable<void> reject(tcp::socket socket, RejectReason reason);
  // A connection over its client's cap waits here for one of that client's
  // connections to end (grant_slot), up to --client-wait, then is served,
  // or answered 503.
  awaitable<void> wait_for_slot(tcp::socket socket, asio::ip::address address);
  void grant_slot(const asio::ip::address& address);
  void start_connection(tcp::socket socket);
  awaitable<void> reject_tls(tcp::socket socket, const std::string& answer);
  void reload_tls();
  void log(const AccessRecord& record) const {
    if (options.access_log) options.access_log(record);
  }
  ServeMetrics& metrics() { return app.metrics(); }
  void count_connections() { metrics().set_connections(connections.size()); }

  ServerOptions options;
  App app;
  std::set<Connection*> connections;               // used on the I/O thread only
  std::map<asio::ip::address, size_t> per_client;  // open connections by address; I/O thread
  // Connections waiting for a slot of their client, oldest first; I/O thread.
  struct SlotWait {
    explicit SlotWait(asio::io_context& io) : timer(io) {}
    asio::steady_timer timer;
    bool granted = false;
  };
  std::map<asio::ip::address, std::deque<std::shared_ptr<SlotWait>>> slot_waits;
  size_t waiting = 0;                   // sockets in slot_waits; I/O thread
  uint64_t upload_bytes_in_flight = 0;  // I/O thread only
  bool stopping = false;                // I/O thread only
  bool destroying = false;
  bool finished = false;               // stopping, and the last connection has ended
  size_t lingering = 0;                // rejected connections being drained
  std::atomic<bool> cancelled{false};  // store calls in flight should stop
  std::atomic<uint16_t> port{0};
  asio::io_context io{1};
  tcp::acceptor acceptor{io};
  asio::thread_pool workers;
  asio::steady_timer shutdown_timer{io};
  std::unique_ptr<asio::signal_set> signals;
};

// Upload bytes one request holds against --max-upload-bytes-in-flight,
// given back when its upload is over, saved or not. I/O thread only.
class UploadReservation {
 public:
  explicit UploadReservation(Core& server) : server_(server) {}
  ~UploadReservation() {
    server_.upload_bytes_in_flight -= bytes_;
    server_.metrics().set_upload_bytes_in_flight(server_.upload_bytes_in_flight);
  }
  UploadReservation(const UploadReservation&) = delete;
  UploadReservation& operator=(const UploadReservation&) = delete;

  // False when `more` bytes would pass the cap while other uploads are in
  // flight (alone, an upload may have up to --max-upload-bytes).
  bool take(uint64_t more) {
    uint64_t& in_flight = server_.upload_bytes_in_flight;
    const bool others = in_flight > bytes_;
    if (others && in_flight + more > server_.options.limits.max_upload_bytes_in_flight) {
      return false;
    }
    in_flight += more;
    bytes_ += more;
    server_.metrics().set_upload_bytes_in_flight(in_flight);
    return true;
  }

 private:
  Core& server_;
  uint64_t bytes_ = 0;
};

// One client connection: reads requests one after the other (keep-alive),
// hands each to App, writes the reply. A watchdog timer cancels the socket
// when a deadline passes, which makes the pending read or write fail.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(Core& server, tcp::socket socket)
      : server_(server),
        stream_(std::move(socket), server.options.tls ? server.options.tls->current() : nullptr),
        socket_(stream_.socket()),
        timer_(socket_.get_executor()) {
    timer_.expires_at(std::chrono::steady_clock::time_point::max());
    beast::error_code ec;
    const tcp::endpoint remote = socket_.remote_endpoint(ec);
    remote_ = ec ? std::string("?") : endpoint_text(remote);
    if (!ec) address_ = remote.address();
    ++server_.per_client[address_];
    server_.connections.insert(this);
    server_.count_connections();
  }
  ~Connection() {
    if (auto it = server_.per_client.find(address_); it != server_.per_client.end()) {
      if (--it->second == 0) server_.per_client.erase(it);
    }
    if (!server_.destroying) server_.grant_slot(address_);
    server_.connections.erase(this);
    server_.count_connections();
    server_.maybe_finish();
  }

  awaitable<void> run();

  // Shutdown: a connection waiting for its next request is closed now;
  // one in a request finishes it and then closes.
  void on_shutdown() {
    if (idle_) close();
  }
  void close() {
    closed_ = true;
    beast::error_code ec;
    socket_.shutdown(tcp::socket::shutdown_both, ec);
    socket_.close(ec);
    timer_.cancel();
  }

 private:
  void set_deadline(std::chrono::milliseconds d) {
    timed_out_ = false;
    timer_.expires_after(d);
  }
  awaitable<void> watchdog();
  awaitable<bool> write_reply(Reply& reply, unsigned version, bool keep_alive,
                              AccessRecord& record);
  awaitable<bool> handle(http::request_parser<http::buffer_body>& parser, AccessRecord& record);
  awaitable<Reply> read_upload(http::request_parser<http::buffer_body>& parser,
                               const Request& request, const Route& route, bool& body_read,
                               AccessRecord& record);
  awaitable<Reply> ready_check();
  awaitable<bool> handshake();

  template <class F>
  awaitable<Reply> on_workers(F f) {
    co_return co_await asio::co_spawn(
        server_.workers.get_executor(), [&]() -> awaitable<Reply> { co_return f(); },
        use_awaitable);
  }

  CallContext call_context() {
    CallContext call;
    call.is_cancelled = [&server = server_] { return server.cancelled.load(); };
    return call;
  }

  Core& server_;
  Stream stream_;
  tcp::socket& socket_;  // stream_'s
  asio::steady_timer timer_;
  beast::flat_buffer buffer_;
  std::vector<char> chunk_;
  std::string remote_;
  asio::ip::address address_;  // the client's, for --max-connections-per-client
  bool idle_ = true;
  bool closed_ = false;
  bool timed_out_ = false;
  bool linger_ = false;                    // the client may still send bytes we will not read
  RouteLabel label_ = RouteLabel::kOther;  // of the request being handled
};

awaitable<void> Connection::watchdog() {
  auto self = shared_from_this();
  while (!closed_) {
    co_await timer_.async_wait(kTuple);
    if (closed_) break;
    if (timer_.expiry() <= std::chrono::steady_clock::now()) {
      timed_out_ = true;
      beast::error_code ec;
      socket_.cancel(ec);
      timer_.expires_at(std::chrono::steady_clock::time_point::max());
    }
  }
}

awaitable<bool> Connection::write_reply(Reply& reply, unsigned version, bool keep_alive,
                                        AccessRecord& record) {
  http::response<BuffersBody> res;
  res.version(version);
  res.result(static_cast<unsigned>(reply.status));
  res.set(http::field::server, "stowage");
  res.set(http::field::date, http_date(std::chrono::system_clock::now()));
  for (const auto& [name, value] : reply.headers) res.insert(name, value);
  const bool no_body = reply.status == 204 || reply.status == 304 || reply.status < 200;
  if (!no_body) res.content_length(reply.length);
  const uint64_t send = (reply.head || no_body) ? 0 : reply.length;
  res.body() = BuffersBody::value_type{std::move(reply.body), reply.offset, send};
  // While connections of this client wait for a slot (its cap reached),
  // this one ends after its response, so that one of them is served: a
  // client that opens a connection per request (TF.js in Node, a weight
  // file each) would otherwise keep its served ones open and idle.
  const bool keep =
      keep_alive && !reply.close && !server_.stopping && !server_.slot_waits.contains(address_);
  res.keep_alive(keep);
  record.status = reply.status;
  if (record.note.empty()) record.note = reply.note;

  http::response_serializer<BuffersBody> serializer(res);
  while (!serializer.is_done()) {
    set_deadline(server_.options.timeouts.body);
    auto [ec, n] = co_await http::async_write_some(stream_, serializer, kTuple);
    if (ec) {
      record.note = timed_out_ ? "timeout while sending" : "client went away: " + ec.message();
      co_return false;
    }
  }
  record.bytes_sent = send;
  co_return keep;
}

awaitable<Reply> Connection::read_upload(http::request_parser<http::buffer_body>& parser,
                                         const Request& request, const Route& route,
                                         bool& body_read, AccessRecord& record) {
  App& app = server_.app;
  Reply refusal;
  std::unique_ptr<Upload> upload = app.begin_upload(request, route, refusal);
  if (!upload) co_return refusal;

  // Checked before 100 Continue, so a refused client need not send its body.
  UploadReservation reserved(server_);
  auto over_limit = [&] {
    Reply reply = app.busy_reply("the server is receiving too many uploads at once (more than " +
                                 std::to_string(server_.options.limits.max_upload_bytes_in_flight) +
                                 " bytes in flight); try again");
    reply.note = std::string(kUploadLimitNote);
    reply.close = true;
    return reply;
  };
  if (request.content_length && !reserved.take(*request.content_length)) co_return over_limit();

  if (beast::iequals(request.header("expect"), "100-continue")) {
    static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
    set_deadline(server_.options.timeouts.body);
    auto [ec, n] = co_await asio::async_write(stream_, asio::buffer(kContinue), kTuple);
    if (ec) {
      Reply gone;
      gone.status = 0;
      co_return gone;
    }
  }

  parser.body_limit(server_.options.limits.max_upload_bytes);
  if (chunk_.empty()) chunk_.resize(kBodyChunk);
  while (!parser.is_done()) {
    parser.get().body().data = chunk_.data();
    parser.get().body().size = chunk_.size();
    set_deadline(server_.options.timeouts.body);
    auto [ec, n] = co_await http::async_read_some(stream_, buffer_, parser, kTuple);
    if (ec == http::error::need_buffer) ec = {};
    const size_t got = chunk_.size() - parser.get().body().size;
    record.bytes_received += got;
    // A chunked body is counted against the cap as it arrives.
    if (got > 0 && !request.content_length && !reserved.take(got)) co_return over_limit();
    if (got > 0) {
      try {
        upload->feed({chunk_.data(), got});
      } catch (const Error& e) {
        Reply reply = app.upload_failed(e);
        reply.close = true;  // the rest of the body is not read
        co_return reply;
      }
    }
    if (!ec) continue;
    Reply reply;
    if (timed_out_) {
      reply = app.status_reply(
          408, Error(ErrorCode::kDeadlineExceeded,
                     "no upload bytes arrived for " +
                         std::to_string(server_.options.timeouts.body.count()) + " ms"));
      reply.note = "body timeout";
    } else if (ec == http::error::body_limit) {
      reply = app.upload_failed(Error(ErrorCode::kResourceExhausted,
                                      "the upload is larger than " +
                                          std::to_string(server_.options.limits.max_upload_bytes) +
                                          " bytes"));
    } else if (ec == http::error::partial_message || ec == http::error::end_of_stream ||
               ec.category() != http_category()) {
      reply.status = 0;  // the client went away mid-body
      record.note = "client went away: " + ec.message();
    } else {
      reply = app.upload_failed(
          Error(ErrorCode::kInvalidArgument, "the request body is malformed: " + ec.message()));
    }
    reply.close = true;
    co_return reply;
  }
  body_read = true;
  try {
    upload->finish();
  } catch (const Error& e) {
    co_return app.upload_failed(e);
  }
  const CallContext call = call_context();
  co_return co_await on_workers([&] { return app.finish_upload(request, *upload, call); });
}

awaitable<Reply> Connection::ready_check() {
  // The probe runs on a worker: a store that hangs holds that worker, not
  // this answer. After the deadline the check says so, and the probe's
  // result, when it comes, is dropped.
  struct Probe {
    std::mutex mu;
    std::optional<Reply> reply;
  };
  auto probe = std::make_shared<Probe>();
  const std::chrono::milliseconds wait = server_.options.timeouts.ready;
  CallContext call = call_context();
  call.deadline = std::chrono::system_clock::now() + wait;
  asio::post(server_.workers, [probe, &app = server_.app, call] {
    Reply reply = app.ready(call);
    std::lock_guard<std::mutex> lock(probe->mu);
    probe->reply = std::move(reply);
  });
  const auto until = std::chrono::steady_clock::now() + wait;
  asio::steady_timer timer(socket_.get_executor());
  for (;;) {
    std::optional<Reply> done;
    {
      std::lock_guard<std::mutex> lock(probe->mu);
      done.swap(probe->reply);
    }
    if (done) co_return std::move(*done);
    const auto now = std::chrono::steady_clock::now();
    if (now >= until || closed_) break;
    timer.expires_after(std::min<std::chrono::steady_clock::duration>(kReadyPoll, until - now));
    co_await timer.async_wait(kTuple);
  }
  co_return server_.app.not_ready_in_time(wait);
}

awaitable<bool> Connection::handle(http::request_parser<http::buffer_body>& parser,
                                   AccessRecord& record) {
  App& app = server_.app;
  const auto& msg = parser.get();
  Request request;
  request.method = std::string(msg.method_string());
  request.target = std::string(msg.target());
  for (const auto& field : msg) {
    std::string name(field.name_string());
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    request.headers.emplace_back(std::move(name), std::string(field.value()));
  }
  if (parser.content_length()) request.content_length = *parser.content_length();
  request.has_body = !parser.is_done();
  record.method = request.method;
  record.path = std::string(target_path(request.target));

  App::Plan plan = app.plan(request);
  label_ = plan.label;
  record.route = route_label_name(plan.label);
  Reply reply;
  bool body_read = !request.has_body;
  switch (plan.work) {
    case App::Work::kNow:
      reply = std::move(plan.reply);
      break;
    case App::Work::kStore: {
      const CallContext call = call_context();
      reply = co_await on_workers([&] { return app.serve(request, plan.route, call); });
      break;
    }
    case App::Work::kUpload:
      reply = co_await read_upload(parser, request, plan.route, body_read, record);
      break;
    case App::Work::kReady:
      reply = co_await ready_check();
      break;
  }
  if (reply.status == 0) {
    if (record.note.empty()) record.note = "client went away";
    co_return false;
  }
  if (!body_read) {
    reply.close = true;  // unread body bytes would be taken as the next request
    linger_ = true;
  }
  app.decorate(request, reply);
  co_return co_await write_reply(reply, msg.version(), msg.keep_alive(), record);
}

awaitable<bool> Connection::handshake() {
  set_deadline(server_.options.timeouts.header);
  auto [ec] = co_await stream_.async_handshake(kTuple);
  if (!ec) co_return true;
  server_.metrics().tls_handshake_failed();
  // A client that connects and leaves (a port probe) or stays silent has
  // nothing worth logging; plain http on the https port and the like do.
  if (!timed_out_ && !closed_ && !tls_peer_left(ec) && server_.options.error_log) {
    server_.options.error_log("TLS handshake with " + remote_ + " failed: " + ec.message());
  }
  co_return false;
}

awaitable<void> Connection::run() {
  auto self = shared_from_this();
  asio::co_spawn(socket_.get_executor(), watchdog(), asio::detached);
  const ServerOptions& options = server_.options;
  if (stream_.tls() && !co_await handshake()) {
    close();
    co_return;
  }
  while (!closed_ && !server_.stopping) {
    idle_ = true;
    http::request_parser<http::buffer_body> parser;
    parser.header_limit(static_cast<uint32_t>(options.limits.max_header_bytes));
    parser.body_limit(boost::none);  // uploads set theirs once routed
    set_deadline(options.timeouts.header);
    auto [ec, n] = co_await http::async_read_header(stream_, buffer_, parser, kTuple);
    idle_ = false;

    AccessRecord record;
    record.time = std::chrono::system_clock::now();
    record.remote = remote_;
    const auto start = std::chrono::steady_clock::now();
    label_ = RouteLabel::kOther;
    bool keep = false;
    if (!ec) {
      keep = co_await handle(parser, record);
    } else {
      const bool partial = buffer_.size() > 0 || parser.got_some();
      // Closed, an idle keep-alive connection timing out, the client
      // leaving or a network error: nothing to answer.
      if (closed_ || ec == http::error::end_of_stream) break;
      if (timed_out_ ? !partial : ec.category() != http_category()) break;
      Reply reply;
      if (timed_out_) {
        reply = server_.app.status_reply(
            408, Error(ErrorCode::kDeadlineExceeded,
                       "the request headers did not arrive within " +
                           std::to_string(options.timeouts.header.count()) + " ms"));
        reply.note = "header timeout";
      } else if (ec == http::error::header_limit) {
        reply = server_.app.status_reply(
            431, Error(ErrorCode::kResourceExhausted,
                       "the request headers are larger than " +
                           std::to_string(options.limits.max_header_bytes) + " bytes"));
      } else {
        reply = server_.app.status_reply(
            400, Error(ErrorCode::kInvalidArgument, "malformed HTTP request: " + ec.message()));
      }
      reply.close = true;
      linger_ = true;
      record.method = "-";
      record.path = "-";
      co_await write_reply(reply, 11, false, record);
    }
    const auto took = std::chrono::steady_clock::now() - start;
    record.duration = std::chrono::duration_cast<std::chrono::microseconds>(took);
    server_.metrics().request(label_, record.status, took, record.bytes_sent,
                              record.bytes_received);
    if (label_ == RouteLabel::kUpload) server_.metrics().upload(upload_outcome(record));
    server_.log(record);
    if (!keep) break;
  }
  if (!closed_ && stream_.tls()) {
    // close_notify, so the client knows the response was not cut short;
    // then its close_notify or its leaving, for a little while.
    set_deadline(kTlsCloseTime);
    co_await stream_.async_tls_shutdown(kTuple);
  }
  if (!closed_) {
    // Let the client read the last response before the connection goes.
    beast::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_send, ignored);
    if (linger_) {
      // The client may still be sending a body we did not read; closing
      // now would reset the connection and could destroy the response
      // before it is read. Drop what comes for a little while.
      if (chunk_.empty()) chunk_.resize(kBodyChunk);
      const auto until = std::chrono::steady_clock::now() + kLingerTime;
      uint64_t dropped = 0;
      while (!closed_ && dropped < kMaxLingerBytes && std::chrono::steady_clock::now() < until) {
        set_deadline(std::chrono::duration_cast<std::chrono::milliseconds>(
            until - std::chrono::steady_clock::now()));
        auto [ec, n] = co_await socket_.async_read_some(asio::buffer(chunk_), kTuple);
        if (ec) break;
        dropped += n;
      }
    }
  }
  close();
}

void Core::listen() {
  beast::error_code ec;
  tcp::resolver resolver(io);
  const std::string where = options.host + ":" + std::to_string(options.port);
  auto results = resolver.resolve(options.host, std::to_string(options.port),
                                  tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || results.empty()) {
    throw Error(ErrorCode::kInvalidArgument,
                "cannot resolve host '" + options.host + "': " + ec.message());
  }
  const tcp::endpoint endpoint = results.begin()->endpoint();
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) throw Error(ErrorCode::kUnavailable, "cannot listen on " + where + ": " + ec.message());
  port = acceptor.local_endpoint().port();
}

std::string busy_response(std::string_view message) {
  const std::string body =
      "{\"error\":{\"code\":\"unavailable\",\"message\":\"" + std::string(message) + "\"}}";
  return "HTTP/1.1 503 Service Unavailable\r\nServer: stowage\r\nContent-Type: "
         "application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\nRetry-After: 1\r\n" + std::string(kIdempotentHeader) +
         ": true\r\nConnection: close\r\n\r\n" + body;
}

awaitable<void> Core::reject(tcp::socket socket, RejectReason reason) {
  // Over a connection limit: a fresh socket's send buffer is empty, so
  // one non-blocking write of a short 503 goes out without waiting. Then
  // the request is read and dropped for a moment (closing with it unread
  // would reset the connection and could destroy the 503 in flight), unless
  // too many rejected connections linger already.
  static const std::string kBusy = busy_response("too many connections; try again");
  static const std::string kClientBusy =
      busy_response("too many connections from this client; try again");
  const std::string& answer = reason == RejectReason::kPerClient ? kClientBusy : kBusy;
  metrics().connection_rejected(reason);
  metrics().request(RouteLabel::kOther, 503, std::chrono::nanoseconds(0), 0, 0);
  beast::error_code ec;
  AccessRecord record;
  record.time = std::chrono::system_clock::now();
  const tcp::endpoint remote = socket.remote_endpoint(ec);
  record.remote = ec ? std::string("?") : endpoint_text(remote);
  record.method = "-";
  record.path = "-";
  record.status = 503;
  record.note =
      reason == RejectReason::kPerClient ? "per-client connection limit" : "connection limit";
  if (options.tls) {
    log(record);
    co_await reject_tls(std::move(socket), answer);
    co_return;
  }
  socket.non_blocking(true, ec);
  socket.write_some(asio::buffer(answer), ec);
  socket.shutdown(tcp::socket::shutdown_send, ec);
  log(record);
  if (ec || lingering >= kMaxLingering) co_return;
  ++lingering;
  auto shared = std::make_shared<tcp::socket>(std::move(socket));
  asio::steady_timer timer(io, std::chrono::milliseconds(500));
  timer.async_wait([shared](beast::error_code) {
    beast::error_code ignored;
    shared->close(ignored);
  });
  char buf[4096];
  for (size_t total = 0; total < 65536;) {
    auto [read_ec, n] = co_await shared->async_read_some(asio::buffer(buf), kTuple);
    if (read_ec) break;
    total += n;
  }
  timer.cancel();
  shared->close(ec);
  --lingering;
}

awaitable<void> Core::reject_tls(tcp::socket socket, const std::string& answer) {
  // The 503 goes through TLS like any answer, so the handshake comes
  // first; all of it within the linger time.
  if (lingering >= kMaxLingering) co_return;
  ++lingering;
  auto stream = std::make_shared<Stream>(std::move(socket), options.tls->current());
  asio::steady_timer timer(io, kLingerTime);
  timer.async_wait([stream](beast::error_code wait_ec) {
    beast::error_code ignored;
    if (!wait_ec) stream->socket().close(ignored);
  });
  auto [ec] = co_await stream->async_handshake(kTuple);
  if (!ec) {
    auto [write_ec, n] = co_await asio::async_write(*stream, asio::buffer(answer), kTuple);
    if (!write_ec) co_await stream->async_tls_shutdown(kTuple);
  } else {
    metrics().tls_handshake_failed();
  }
  timer.cancel();
  beast::error_code ignored;
  stream->socket().close(ignored);
  --lingering;
}

void Core::reload_tls() {
  // On the I/O thread: connections made from here on take the new
  // context, those open keep theirs.
  std::string message;
  try {
    options.tls->reload();
    message = "SIGHUP: reloaded the TLS certificate " + options.tls->cert_file() + " and key " +
              options.tls->key_file() + " for new connections";
  } catch (const Error& e) {
    metrics().tls_reload_failed();
    message = "SIGHUP: " + std::string(e.what()) + "; still serving the previous certificate";
  }
  if (options.error_log) options.error_log(message);
}

awaitable<void> Core::accept_loop() {
  while (!stopping) {
    auto [ec, socket] = co_await acceptor.async_accept(kTuple);
    if (stopping) break;
    if (ec) {
      if (ec == asio::error::operation_aborted) break;
      // Out of descriptors and the like: wait a little rather than spin.
      asio::steady_timer pause(io, std::chrono::milliseconds(50));
      co_await pause.async_wait(kTuple);
      continue;
    }
    if (connections.size() >= options.limits.max_connections) {
      asio::co_spawn(io, reject(std::move(socket), RejectReason::kMaxConnections), asio::detached);
      continue;
    }
    if (const size_t cap = options.limits.max_connections_per_client; cap > 0) {
      beast::error_code remote_ec;
      const tcp::endpoint remote = socket.remote_endpoint(remote_ec);
      if (!remote_ec) {
        const auto it = per_client.find(remote.address());
        if ((it != per_client.end() && it->second >= cap) ||
            slot_waits.contains(remote.address())) {
          // Over its cap, the client waits for one of its connections to
          // end (TF.js in Node opens a connection per weight file at once),
          // as long as the waiting sockets stay under --max-connections.
          if (waiting >= options.limits.max_connections) {
            asio::co_spawn(io, reject(std::move(socket), RejectReason::kPerClient), asio::detached);
          } else {
            asio::co_spawn(io, wait_for_slot(std::move(socket), remote.address()), asio::detached);
          }
          continue;
        }
      }
    }
    start_connection(std::move(socket));
  }
}

void Core::start_connection(tcp::socket socket) {
  beast::error_code ignored;
  socket.set_option(tcp::no_delay(true), ignored);
  auto connection = std::make_shared<Connection>(*this, std::move(socket));
  asio::co_spawn(
      io, [connection]() -> awaitable<void> { co_await connection->run(); }, asio::detached);
}

awaitable<void> Core::wait_for_slot(tcp::socket socket, asio::ip::address address) {
  auto wait = std::make_shared<SlotWait>(io);
  wait->timer.expires_after(options.timeouts.client_wait);
  slot_waits[address].push_back(wait);
  ++waiting;
  co_await wait->timer.async_wait(kTuple);
  --waiting;
  if (!wait->granted) {
    // The wait ran out, or the server is stopping: leave the queue.
    if (auto it = slot_waits.find(address); it != slot_waits.end()) {
      std::erase(it->second, wait);
      if (it->second.empty()) slot_waits.erase(it);
    }
    if (stopping || destroying) co_return;
    co_await reject(std::move(socket), RejectReason::kPerClient);
    co_return;
  }
  // grant_slot counted this connection in per_client already, so that no
  // newcomer took the slot meanwhile; the Connection counts it again.
  if (auto it = per_client.find(address); it != per_client.end() && --it->second == 0) {
    per_client.erase(it);
  }
  if (stopping) {
    grant_slot(address);  // pass it on: each waiter ends now
    co_return;
  }
  start_connection(std::move(socket));
}

void Core::grant_slot(const asio::ip::address& address) {
  const auto it = slot_waits.find(address);
  if (it == slot_waits.end()) return;
  std::shared_ptr<SlotWait> next = std::move(it->second.front());
  it->second.pop_front();
  if (it->second.empty()) slot_waits.erase(it);
  ++per_client[address];
  next->granted = true;
  next->timer.cancel();
}

awaitable<void> Core::signal_loop() {
  for (;;) {
    auto [ec, number] = co_await signals->async_wait(kTuple);
    if (ec) co_return;
    if (number == SIGHUP) {
      reload_tls();
      continue;
    }
    if (options.error_log) {
      options.error_log(
          std::string(stopping ? "second signal: stopping now" : "signal ") +
          (stopping ? ""
                    : std::to_string(number) + ": finishing the requests in flight, then exiting"));
    }
    begin_shutdown();
    if (finished) co_return;
  }
}

void Core::begin_shutdown() {
  if (stopping) {
    hard_stop();
    return;
  }
  stopping = true;
  beast::error_code ec;
  acceptor.close(ec);
  // Waiting connections end now, unserved (each leaves its queue).
  for (auto& [address, queue] : slot_waits) {
    for (const std::shared_ptr<SlotWait>& w : queue) w->timer.cancel();
  }
  // Copy: closing may end connections, which erase themselves.
  const std::vector<Connection*> open(connections.begin(), connections.end());
  for (Connection* c : open) c->on_shutdown();
  shutdown_timer.expires_after(options.timeouts.shutdown);
  shutdown_timer.async_wait([this](beast::error_code wait_ec) {
    if (!wait_ec) hard_stop();
  });
  maybe_finish();
}

void Core::hard_stop() {
  cancelled = true;
  const std::vector<Connection*> open(connections.begin(), connections.end());
  for (Connection* c : open) c->close();
  maybe_finish();
}

void Core::maybe_finish() {
  if (destroying || !stopping || !connections.empty()) return;
  finished = true;
  shutdown_timer.cancel();
  if (signals) {
    beast::error_code ec;
    signals->cancel(ec);
  }
}

}  // namespace

struct Server::Impl : Core {
  using Core::Core;
};

Server::Server(ServerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {
  impl_->listen();
  if (impl_->options.handle_signals) {
    impl_->signals = std::make_unique<asio::signal_set>(impl_->io, SIGINT, SIGTERM);
    if (impl_->options.tls) impl_->signals->add(SIGHUP);
  }
}

Server::~Server() {
  if (!impl_) return;
  impl_->io.stop();
  impl_->workers.join();
}

uint16_t Server::port() const { return impl_->port.load(); }

bool Server::created_store() const { return impl_->app.store().created(); }

void Server::run() {
  Impl& s = *impl_;
  asio::co_spawn(s.io, s.accept_loop(), asio::detached);
  if (s.signals) asio::co_spawn(s.io, s.signal_loop(), asio::detached);
  s.io.run();
  s.workers.join();
}

void Server::shutdown() {
  Impl* s = impl_.get();
  asio::post(s->io, [s] { s->begin_shutdown(); });
}

}  // namespace stowage::serve
