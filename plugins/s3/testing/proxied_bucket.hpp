// A bucket on moto behind the logging proxy (s3_test_server.py --proxy),
// shared by one doctest program: URLs for the plugin, a client past the
// proxy for checks, and the proxy's request log. For tests only.
//
// Thread-safety: not thread-safe. Ownership: owns the server and the client.
#pragma once

#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "http_client.hpp"
#include "s3_client_internal.hpp"
#include "testing/s3_test_server.hpp"

namespace stowage::s3::testing {

class ProxiedBucket {
 public:
  explicit ProxiedBucket(std::string bucket)
      : bucket_(std::move(bucket)), server_({"--proxy", "--bucket", bucket_}) {
    // moto refuses unsigned requests to a private bucket; its keys are not
    // checked.
    ::setenv("AWS_ACCESS_KEY_ID", server_.access_key_id.c_str(), 1);
    ::setenv("AWS_SECRET_ACCESS_KEY", server_.secret_access_key.c_str(), 1);
    ClientConfig config;
    config.endpoint = server_.moto;
    config.addressing = Addressing::kPath;
    config.credentials = Credentials{server_.access_key_id, server_.secret_access_key, ""};
    direct_ = std::make_unique<S3Client>(config);
  }

  const S3TestServer& server() const noexcept { return server_; }
  const std::string& name() const noexcept { return bucket_; }

  // s3://<bucket>/<path> through the proxy.
  std::string url(const std::string& path) const {
    return "s3://" + bucket_ + "/" + path + "?endpoint=" + server_.endpoint;
  }

  // Direct S3 access for checks, past the plugin and the proxy.
  S3Client& direct() { return *direct_; }

  std::set<std::string> keys_under(const std::string& prefix) {
    std::set<std::string> out;
    for (const auto& o : direct_->list(bucket_, prefix, {})) out.insert(o.key);
    return out;
  }

  // Fault rules for the proxy (s3_test_server.py's /__faults: a JSON array
  // of {"method", "contains", "status", "code", "times"}); "[]" clears them.
  void set_faults(const std::string& rules) {
    net::Request r{"POST", server_.endpoint + "/__faults"};
    r.body = {Buffer::from_string(std::string(rules))};
    REQUIRE(control_.send(r).ok());
  }

  // The proxy's request log, as "METHOD target" lines; with_status adds
  // " <status>", the HTTP status of the answer (0 while none was sent).
  void clear_log() { REQUIRE(control_.send({"POST", server_.endpoint + "/__log/clear"}).ok()); }
  std::vector<std::string> requests(bool with_status = false) {
    net::Response r = control_.send({"GET", server_.endpoint + "/__log"});
    REQUIRE(r.ok());
    static const std::regex kEntry(
        R"re("method": "([A-Z]+)", "target": "([^"]*)".*?"status": ([0-9]+))re");
    std::vector<std::string> out;
    const std::string log(r.body.view());
    for (auto it = std::sregex_iterator(log.begin(), log.end(), kEntry);
         it != std::sregex_iterator(); ++it) {
      out.push_back((*it)[1].str() + " " + (*it)[2].str() +
                    (with_status ? " " + (*it)[3].str() : std::string()));
    }
    return out;
  }

 private:
  std::string bucket_;
  S3TestServer server_;
  std::unique_ptr<S3Client> direct_;
  net::Client control_;
};

// A key name no other run or test of this program uses.
inline std::string unique_name(const std::string& name) {
  static int n = 0;
  return name + "-" + std::to_string(::getpid()) + "-" + std::to_string(n++);
}

}  // namespace stowage::s3::testing
