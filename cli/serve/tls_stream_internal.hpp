// A connection's byte stream for the server: the TCP socket itself, or TLS
// over it. One stream type for both, so the HTTP session is compiled once;
// the TLS half goes through type-erased handlers to tls.cpp, the one file
// that compiles Asio's SSL stream. Included by server.cpp and tls.cpp only.
// Thread-safety: as an Asio stream, one operation of each kind at a time.
#pragma once

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/system/error_code.hpp>
#include <memory>
#include <vector>

#include "tls_internal.hpp"

namespace stowage::serve {

using IoHandler = boost::asio::any_completion_handler<void(boost::system::error_code, std::size_t)>;
using DoneHandler = boost::asio::any_completion_handler<void(boost::system::error_code)>;

// True for a handshake or read that failed because the peer closed the
// connection (with or without close_notify), not because of what it sent.
bool tls_peer_left(const boost::system::error_code& ec);

// TLS over a socket that outlives it, with the context that was current
// when it was made.
class TlsStream {
 public:
  TlsStream(boost::asio::ip::tcp::socket& socket, std::shared_ptr<TlsContext> context);
  ~TlsStream();
  TlsStream(const TlsStream&) = delete;
  TlsStream& operator=(const TlsStream&) = delete;

  void handshake(DoneHandler handler);
  void read_some(boost::asio::mutable_buffer buffer, IoHandler handler);
  void write_some(boost::asio::const_buffer buffer, IoHandler handler);
  // Sends close_notify and waits for the peer's.
  void shutdown(DoneHandler handler);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class Stream {
 public:
  using executor_type = boost::asio::any_io_executor;

  // context: nullptr for plain HTTP.
  Stream(boost::asio::ip::tcp::socket socket, std::shared_ptr<TlsContext> context)
      : socket_(std::move(socket)) {
    if (context) tls_ = std::make_unique<TlsStream>(socket_, std::move(context));
  }

  executor_type get_executor() { return socket_.get_executor(); }
  boost::asio::ip::tcp::socket& socket() { return socket_; }
  bool tls() const { return tls_ != nullptr; }

  template <class MutableBuffers, class Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    if (!tls_) return socket_.async_read_some(buffers, std::forward<Token>(token));
    // An SSL stream reads into one buffer at a time anyway.
    boost::asio::mutable_buffer first;
    for (auto it = boost::asio::buffer_sequence_begin(buffers);
         it != boost::asio::buffer_sequence_end(buffers); ++it) {
      first = *it;
      if (first.size() > 0) break;
    }
    return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [this, first](auto handler) { tls_->read_some(first, IoHandler(std::move(handler))); },
        token);
  }

  template <class ConstBuffers, class Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    if (!tls_) return socket_.async_write_some(buffers, std::forward<Token>(token));
    // A response's header and the start of its body are gathered into one
    // TLS record rather than sent as several small ones; a big buffer goes
    // as it is.
    boost::asio::const_buffer first;
    for (auto it = boost::asio::buffer_sequence_begin(buffers);
         it != boost::asio::buffer_sequence_end(buffers); ++it) {
      first = *it;
      if (first.size() > 0) break;
    }
    if (first.size() < kRecordBytes) {
      flat_.resize(kRecordBytes);
      const std::size_t n = boost::asio::buffer_copy(boost::asio::buffer(flat_), buffers);
      first = boost::asio::const_buffer(flat_.data(), n);
    }
    return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [this, first](auto handler) { tls_->write_some(first, IoHandler(std::move(handler))); },
        token);
  }

  template <class Token>
  auto async_handshake(Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::system::error_code)>(
        [this](auto handler) { tls_->handshake(DoneHandler(std::move(handler))); }, token);
  }

  template <class Token>
  auto async_tls_shutdown(Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::system::error_code)>(
        [this](auto handler) { tls_->shutdown(DoneHandler(std::move(handler))); }, token);
  }

 private:
  static constexpr std::size_t kRecordBytes = 16 * 1024;  // TLS's largest record

  boost::asio::ip::tcp::socket socket_;
  std::unique_ptr<TlsStream> tls_;  // declared after socket_, so it goes first
  std::vector<char> flat_;
};

}  // namespace stowage::serve
