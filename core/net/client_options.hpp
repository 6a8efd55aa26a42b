// The connection options every network plugin accepts, read with the same
// names from a plugin's options JSON (http, https, s3, ...):
//
//   "connect_timeout_ms"        TCP connect and TLS handshake (default 10000)
//   "read_timeout_ms"           longest stall while sending or receiving (30000)
//   "max_connections_per_host"  connections open at once to one origin (6)
//   "max_redirects"             redirects followed (20, as fetch does)
//   "ca_file"                   extra trusted CA certificates, a PEM file
//   "ca_path"                   extra trusted CAs, an OpenSSL hashed folder
//   "insecure_skip_tls_verify"  true turns certificate checks OFF (tests only)
//
// Thread-safety: a plain function over an Options object being read.
#pragma once

#include "http_client.hpp"
#include "stowage/plugin.hpp"

namespace stowage::net {

inline ClientOptions read_client_options(plugin::Options& options) {
  ClientOptions c;
  auto millis = [&](const char* key, std::chrono::milliseconds fallback) {
    uint64_t v = options.get_uint64(key, static_cast<uint64_t>(fallback.count()));
    if (v == 0 || v > 24ull * 3600 * 1000) {
      throw Error(ErrorCode::kInvalidArgument, std::string("Option \"") + key + "\" for " +
                                                   options.url() +
                                                   " must be from 1 to 86400000 milliseconds");
    }
    return std::chrono::milliseconds(v);
  };
  c.connect_timeout = millis("connect_timeout_ms", c.connect_timeout);
  c.read_timeout = millis("read_timeout_ms", c.read_timeout);
  uint64_t per_host = options.get_uint64("max_connections_per_host", c.max_connections_per_host);
  if (per_host == 0 || per_host > 256) {
    throw Error(ErrorCode::kInvalidArgument, "Option \"max_connections_per_host\" for " +
                                                 options.url() + " must be from 1 to 256");
  }
  c.max_connections_per_host = static_cast<uint32_t>(per_host);
  uint64_t redirects = options.get_uint64("max_redirects", 20);
  if (redirects > 100) {
    throw Error(ErrorCode::kInvalidArgument,
                "Option \"max_redirects\" for " + options.url() + " must be at most 100");
  }
  c.max_redirects = static_cast<uint32_t>(redirects);
  c.ca_file = options.get_string("ca_file");
  c.ca_path = options.get_string("ca_path");
  c.insecure_skip_tls_verify = options.get_bool("insecure_skip_tls_verify", false);
  if (c.insecure_skip_tls_verify) {
    plugin::log(2, "TLS certificate verification is OFF for " + redact_url(options.url()) +
                       " (insecure_skip_tls_verify): anyone on the path can read and change "
                       "the data");
  }
#ifdef STOWAGE_PLUGIN_VERSION
  c.user_agent = "stowage/" STOWAGE_PLUGIN_VERSION;
#endif
  return c;
}

}  // namespace stowage::net
