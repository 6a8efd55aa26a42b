// Where an s3:// handler gets its credentials, region, endpoint and
// addressing style, in the order the AWS CLI and SDKs use:
//
//   credentials  1. the handler's options (access_key_id, secret_access_key,
//                   session_token), or "anonymous" for unsigned requests;
//                2. AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
//                   AWS_SESSION_TOKEN (skipped when the options name a profile);
//                3. the profile's keys in the shared credentials file
//                   (AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials);
//                4. the profile's keys in the config file (AWS_CONFIG_FILE,
//                   else ~/.aws/config).
//                The profile is the "profile" option, else AWS_PROFILE, else
//                "default". Nothing else is probed: no instance metadata, no
//                container endpoint (they stall for seconds off-cloud).
//   region       option, AWS_REGION, AWS_DEFAULT_REGION, the profile's
//                "region", else us-east-1.
//   endpoint     option, AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, the profile's
//                "s3.endpoint_url" or "endpoint_url" (env and files skipped
//                with AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true), else AWS.
//   addressing   option path_style, the profile's "s3.addressing_style".
//
// Secrets are read and kept, never printed: messages name the variable, file
// and profile a setting came from, not its value.
//
// Thread-safety: stateless functions. Ownership: plain values.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "sigv4_internal.hpp"

namespace stowage::s3 {

// An environment lookup (getenv in production; a map in tests).
using GetEnv = std::function<std::optional<std::string>(const std::string& name)>;
GetEnv process_env();

// What the handler's options said (empty: not given).
struct SettingOptions {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;
  bool anonymous = false;
  std::string profile;
  std::string region;
  std::string endpoint;
};

struct Settings {
  std::optional<Credentials> credentials;  // nullopt: unsigned (anonymous) or none found
  bool anonymous = false;
  // Where the credentials came from, for messages: "the options",
  // "the environment (AWS_ACCESS_KEY_ID)", "profile \"dev\" in /home/u/.aws/credentials".
  std::string credentials_source;
  // Every place that was looked at, for the "no credentials" message.
  std::string searched;
  std::string region;
  std::string endpoint;          // "" means AWS's own endpoint for the region
  std::string addressing_style;  // "path", "virtual" or "" (decide by endpoint)
};

// Resolves the settings. Throws Error(kInvalidArgument) for half a key pair
// (in the options, the environment or a profile), for a profile that was
// named explicitly and exists nowhere, and for a profile whose credentials
// come from a source this plugin does not run (role_arn, sso_*,
// credential_process, web_identity_token_file), each naming the file and
// profile.
Settings resolve_settings(const SettingOptions& options, const GetEnv& env);

// The sections of an AWS INI file: section name -> key -> value. A key with
// an empty value followed by indented lines holds a sub-section, stored as
// "key.subkey" ("s3.addressing_style"). Comments start with '#' or ';'.
std::map<std::string, std::map<std::string, std::string>> parse_aws_ini(std::string_view text);

}  // namespace stowage::s3
