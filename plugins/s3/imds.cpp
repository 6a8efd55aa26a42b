#include <rapidjson/document.h>

#include <cstdlib>

#include "imds_internal.hpp"
#include "s3_xml_internal.hpp"
#include "stowage/error.hpp"

namespace stowage::s3 {
namespace {

constexpr auto kRefreshBefore = std::chrono::minutes(5);

net::ClientOptions imds_client_options() {
  net::ClientOptions o;
  o.connect_timeout = std::chrono::milliseconds(1000);
  o.read_timeout = std::chrono::milliseconds(2000);
  o.max_connections_per_host = 1;
  o.max_redirects = 0;
  o.user_agent = "stowage-s3";
  return o;
}

}  // namespace

InstanceMetadataCredentials::InstanceMetadataCredentials(std::string endpoint)
    : endpoint_(std::move(endpoint)) {
  if (endpoint_.empty()) {
    const char* env = std::getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT");
    endpoint_ = env != nullptr && *env != '\0' ? env : "http://169.254.169.254";
  }
  while (!endpoint_.empty() && endpoint_.back() == '/') endpoint_.pop_back();
  http_ = std::make_unique<net::Client>(imds_client_options());
}

std::string InstanceMetadataCredentials::source() const {
  std::lock_guard<std::mutex> lock(mu_);
  return "EC2 instance metadata at " + endpoint_ + (role_.empty() ? "" : " (role " + role_ + ")");
}

Credentials InstanceMetadataCredentials::current(const net::Control& control) {
  std::lock_guard<std::mutex> lock(mu_);
  if (credentials_ && std::chrono::system_clock::now() + kRefreshBefore < expires_) {
    return *credentials_;
  }
  auto fail = [&](const std::string& why) -> Error {
    return Error(
        ErrorCode::kUnavailable,
        "No credentials from the EC2 instance metadata service at " + endpoint_ + ": " + why);
  };
  net::Control c;
  c.cancelled = control.cancelled;
  c.deadline = control.deadline;
  try {
    net::Request token{"PUT", endpoint_ + "/latest/api/token"};
    token.headers.emplace_back("X-aws-ec2-metadata-token-ttl-seconds", "21600");
    token.follow_redirects = false;
    token.max_body_bytes = 4096;
    net::Response t = http_->send(token, c);
    if (!t.ok()) throw fail("the token request answered HTTP " + std::to_string(t.status));
    const std::string session(t.body.view());

    const std::string base = endpoint_ + "/latest/meta-data/iam/security-credentials/";
    net::Request role{"GET", base};
    role.headers.emplace_back("X-aws-ec2-metadata-token", session);
    role.follow_redirects = false;
    role.max_body_bytes = 4096;
    net::Response r = http_->send(role, c);
    if (!r.ok()) {
      throw fail("no IAM role is attached (HTTP " + std::to_string(r.status) + ")");
    }
    std::string name(r.body.view().substr(0, r.body.view().find('\n')));
    while (!name.empty() && (name.back() == '\r' || name.back() == ' ')) name.pop_back();
    if (name.empty() || name.find('/') != std::string::npos) throw fail("no IAM role is attached");

    net::Request keys{"GET", base + name};
    keys.headers.emplace_back("X-aws-ec2-metadata-token", session);
    keys.follow_redirects = false;
    keys.max_body_bytes = 65536;
    net::Response k = http_->send(keys, c);
    if (!k.ok()) throw fail("the role's keys answered HTTP " + std::to_string(k.status));
    rapidjson::Document d;
    std::string text(k.body.view());
    d.Parse(text.c_str(), text.size());
    auto str = [&](const char* field) -> std::string {
      if (d.HasParseError() || !d.IsObject() || !d.HasMember(field) || !d[field].IsString()) {
        return {};
      }
      return d[field].GetString();
    };
    Credentials creds{str("AccessKeyId"), str("SecretAccessKey"), str("Token")};
    if (creds.access_key_id.empty() || creds.secret_access_key.empty()) {
      throw fail("the answer for role " + name + " holds no AccessKeyId/SecretAccessKey");
    }
    std::optional<std::chrono::system_clock::time_point> expires = parse_iso8601(str("Expiration"));
    role_ = name;
    credentials_ = std::move(creds);
    expires_ = expires.value_or(std::chrono::system_clock::now() + std::chrono::hours(1));
    return *credentials_;
  } catch (const Error& e) {
    if (e.code() == ErrorCode::kCancelled || e.code() == ErrorCode::kDeadlineExceeded) throw;
    if (std::string_view(e.what()).starts_with("No credentials from")) throw;
    throw fail(e.what());
  }
}

}  // namespace stowage::s3
