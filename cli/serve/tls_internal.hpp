// TLS for `stowage serve --tls-cert FILE --tls-key FILE`: the certificate
// and key, loaded into an OpenSSL context with modern defaults only (TLS 1.2
// and 1.3, AEAD ciphers with forward secrecy, no compression, no
// renegotiation, the server's cipher order, ALPN http/1.1), and loaded again
// on reload() (SIGHUP) for the connections that come after.
//
// This header has no Asio, Beast or OpenSSL in it: the command line parses
// into it. The stream over a socket is in tls_stream_internal.hpp.
// Thread-safety: every member may be called from any thread; a reload
// never disturbs the connections using the previous context.
#pragma once

#include <memory>
#include <mutex>
#include <string>

namespace stowage::serve {

// An OpenSSL server context (tls.cpp); shared by the connections made
// while it was current.
struct TlsContext;

class TlsConfig {
 public:
  // Reads and checks both files. Throws Error(kInvalidArgument) naming the
  // file when one cannot be read, holds no certificate or key, or the key
  // does not belong to the certificate. Never puts key material in the
  // message.
  TlsConfig(std::string cert_file, std::string key_file);
  ~TlsConfig();
  TlsConfig(const TlsConfig&) = delete;
  TlsConfig& operator=(const TlsConfig&) = delete;

  // Loads the files again into a new context for new connections. On
  // failure throws as the constructor does and keeps the current context.
  void reload();

  std::shared_ptr<TlsContext> current() const;
  const std::string& cert_file() const { return cert_file_; }
  const std::string& key_file() const { return key_file_; }

 private:
  std::string cert_file_;
  std::string key_file_;
  mutable std::mutex mu_;
  std::shared_ptr<TlsContext> current_;  // guarded by mu_
};

}  // namespace stowage::serve
