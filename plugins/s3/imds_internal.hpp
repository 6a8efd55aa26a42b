// Credentials from the EC2 instance metadata service (IMDSv2), used only
// when a handler's options say "ec2_metadata": true: probing it by default
// stalls every process that runs off-cloud (the AWS SDK for C++ users' most
// common complaint). The endpoint is AWS_EC2_METADATA_SERVICE_ENDPOINT, else
// http://169.254.169.254; short timeouts (1 s connect, 2 s read) make a
// machine without the service fail fast.
//
//   PUT /latest/api/token                     (X-aws-ec2-metadata-token-ttl-seconds)
//   GET /latest/meta-data/iam/security-credentials/          the role
//   GET /latest/meta-data/iam/security-credentials/<role>    the keys (JSON)
//
// The keys are fetched on first use and again 5 minutes before they expire.
//
// Thread-safety: current() may be called from many threads. Ownership: owns
// its HTTP client.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "http_client.hpp"
#include "sigv4_internal.hpp"

namespace stowage::s3 {

// Credentials that may change while a handler lives.
class CredentialProvider {
 public:
  virtual ~CredentialProvider() = default;
  // The credentials to sign with now. Throws stowage::Error when there are none.
  virtual Credentials current(const net::Control& control) = 0;
  // Where they come from, for messages ("EC2 instance metadata (role r)").
  virtual std::string source() const = 0;
};

class InstanceMetadataCredentials final : public CredentialProvider {
 public:
  // endpoint "" means AWS_EC2_METADATA_SERVICE_ENDPOINT, else http://169.254.169.254.
  explicit InstanceMetadataCredentials(std::string endpoint);

  // Error(kUnavailable, not retryable) when the service does not answer or
  // answers something other than keys, naming the endpoint.
  Credentials current(const net::Control& control) override;
  std::string source() const override;

 private:
  std::string endpoint_;
  std::unique_ptr<net::Client> http_;
  mutable std::mutex mu_;
  std::optional<Credentials> credentials_;
  std::chrono::system_clock::time_point expires_;
  std::string role_;
};

}  // namespace stowage::s3
