// TLS contexts and streams for the server. The only file that compiles
// Asio's SSL stream (see tls_stream_internal.hpp for why).
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "stowage/error.hpp"
#include "tls_internal.hpp"
#include "tls_stream_internal.hpp"

namespace stowage::serve {

namespace ssl = boost::asio::ssl;

struct TlsContext {
  ssl::context ssl{ssl::context::tls_server};
};

namespace {

// TLS 1.2 suites with forward secrecy and an AEAD cipher; TLS 1.3 has only
// such suites and keeps OpenSSL's list.
constexpr const char* kTls12Ciphers = "ECDHE+AESGCM:ECDHE+CHACHA20";

// The reason of OpenSSL's latest error ("no start line", "key values
// mismatch"), clearing its queue. Never the data it was reading.
std::string openssl_reason() {
  unsigned long code = ERR_peek_last_error();
  ERR_clear_error();
  if (code == 0) return "unknown error";
  const char* reason = ERR_reason_error_string(code);
  return reason ? reason : "error " + std::to_string(ERR_GET_REASON(code));
}

std::string read_file(const std::string& path, std::string_view what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw Error(ErrorCode::kInvalidArgument, "cannot read " + std::string(what) + " file '" + path +
                                                 "': " + std::strerror(errno));
  }
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

using Bio = std::unique_ptr<BIO, decltype(&BIO_free)>;

Bio memory_bio(const std::string& bytes) {
  Bio bio(BIO_new_mem_buf(bytes.data(), static_cast<int>(bytes.size())), &BIO_free);
  if (!bio) throw Error(ErrorCode::kResourceExhausted, "out of memory reading a TLS file");
  return bio;
}

// Keys must be stored unencrypted: without this, OpenSSL would ask for a
// pass phrase on the terminal.
int no_pass_phrase(char*, int, int, void*) { return 0; }

int select_alpn(SSL*, const unsigned char** out, unsigned char* out_length,
                const unsigned char* offered, unsigned int offered_length, void*) {
  static const unsigned char kHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  unsigned char* chosen = nullptr;
  if (SSL_select_next_proto(&chosen, out_length, kHttp11, sizeof kHttp11, offered,
                            offered_length) != OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_NOACK;  // no ALPN then; the client may still speak HTTP/1.1
  }
  *out = chosen;
  return SSL_TLSEXT_ERR_OK;
}

std::shared_ptr<TlsContext> load_context(const std::string& cert_file,
                                         const std::string& key_file) {
  const std::string cert_pem = read_file(cert_file, "TLS certificate");
  const std::string key_pem = read_file(key_file, "TLS key");
  auto context = std::make_shared<TlsContext>();
  SSL_CTX* ctx = context->ssl.native_handle();
  ERR_clear_error();
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(
      ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  if (SSL_CTX_set_cipher_list(ctx, kTls12Ciphers) != 1) {
    throw Error(ErrorCode::kInternal,
                "OpenSSL refuses the TLS 1.2 cipher list: " + openssl_reason());
  }
  SSL_CTX_set_alpn_select_cb(ctx, select_alpn, nullptr);

  // The server's certificate, then the chain up to (not including) the CA.
  Bio certs = memory_bio(cert_pem);
  std::unique_ptr<X509, decltype(&X509_free)> leaf(
      PEM_read_bio_X509_AUX(certs.get(), nullptr, no_pass_phrase, nullptr), &X509_free);
  if (!leaf || SSL_CTX_use_certificate(ctx, leaf.get()) != 1) {
    throw Error(ErrorCode::kInvalidArgument, "TLS certificate file '" + cert_file +
                                                 "' holds no PEM certificate: " + openssl_reason());
  }
  while (X509* chain = PEM_read_bio_X509(certs.get(), nullptr, no_pass_phrase, nullptr)) {
    if (SSL_CTX_add0_chain_cert(ctx, chain) != 1) {
      X509_free(chain);
      throw Error(ErrorCode::kInvalidArgument, "TLS certificate file '" + cert_file +
                                                   "': its chain is refused: " + openssl_reason());
    }
  }
  const unsigned long end = ERR_peek_last_error();
  if (end != 0 &&
      !(ERR_GET_LIB(end) == ERR_LIB_PEM && ERR_GET_REASON(end) == PEM_R_NO_START_LINE)) {
    throw Error(ErrorCode::kInvalidArgument,
                "TLS certificate file '" + cert_file +
                    "' has a broken chain certificate: " + openssl_reason());
  }
  ERR_clear_error();  // the end of the file

  Bio key_bio = memory_bio(key_pem);
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
      PEM_read_bio_PrivateKey(key_bio.get(), nullptr, no_pass_phrase, nullptr), &EVP_PKEY_free);
  if (!key) {
    throw Error(ErrorCode::kInvalidArgument,
                "TLS key file '" + key_file +
                    "' holds no unencrypted PEM private key: " + openssl_reason());
  }
  if (SSL_CTX_use_PrivateKey(ctx, key.get()) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
    ERR_clear_error();
    throw Error(
        ErrorCode::kInvalidArgument,
        "TLS key file '" + key_file + "' does not match the certificate in '" + cert_file + "'");
  }
  return context;
}

}  // namespace

TlsConfig::TlsConfig(std::string cert_file, std::string key_file)
    : cert_file_(std::move(cert_file)),
      key_file_(std::move(key_file)),
      current_(load_context(cert_file_, key_file_)) {}

TlsConfig::~TlsConfig() = default;

void TlsConfig::reload() {
  std::shared_ptr<TlsContext> fresh = load_context(cert_file_, key_file_);
  std::lock_guard<std::mutex> lock(mu_);
  current_ = std::move(fresh);
}

std::shared_ptr<TlsContext> TlsConfig::current() const {
  std::lock_guard<std::mutex> lock(mu_);
  return current_;
}

struct TlsStream::Impl {
  Impl(boost::asio::ip::tcp::socket& socket, std::shared_ptr<TlsContext> c)
      : context(std::move(c)), stream(socket, context->ssl) {}
  std::shared_ptr<TlsContext> context;  // kept alive past a reload
  ssl::stream<boost::asio::ip::tcp::socket&> stream;
};

bool tls_peer_left(const boost::system::error_code& ec) {
  return ec == boost::asio::error::eof || ec == ssl::error::stream_truncated ||
         ec == boost::asio::error::connection_reset;
}

TlsStream::TlsStream(boost::asio::ip::tcp::socket& socket, std::shared_ptr<TlsContext> context)
    : impl_(std::make_unique<Impl>(socket, std::move(context))) {}

TlsStream::~TlsStream() = default;

void TlsStream::handshake(DoneHandler handler) {
  impl_->stream.async_handshake(ssl::stream_base::server, std::move(handler));
}

void TlsStream::read_some(boost::asio::mutable_buffer buffer, IoHandler handler) {
  impl_->stream.async_read_some(buffer, std::move(handler));
}

void TlsStream::write_some(boost::asio::const_buffer buffer, IoHandler handler) {
  impl_->stream.async_write_some(buffer, std::move(handler));
}

void TlsStream::shutdown(DoneHandler handler) { impl_->stream.async_shutdown(std::move(handler)); }

}  // namespace stowage::serve
