// The credentials chain, region, endpoint and addressing settings, with a
// fake environment and shared files written to a temporary folder.
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "credentials_internal.hpp"
#include "stowage/error.hpp"

namespace {

using stowage::s3::SettingOptions;
using stowage::s3::Settings;

namespace fs = std::filesystem;

struct Fixture {
  fs::path dir;
  std::map<std::string, std::string> env;

  Fixture() {
    dir = fs::temp_directory_path() / ("stowage-s3-creds-" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir / ".aws");
    env["HOME"] = dir.string();
  }
  ~Fixture() { fs::remove_all(dir); }

  void write(const std::string& name, const std::string& text) {
    std::ofstream(dir / ".aws" / name) << text;
  }
  Settings resolve(const SettingOptions& options = {}) {
    return stowage::s3::resolve_settings(
        options, [this](const std::string& name) -> std::optional<std::string> {
          auto it = env.find(name);
          if (it == env.end()) return std::nullopt;
          return it->second;
        });
  }
};

std::string error_of(Fixture& f, const SettingOptions& options = {}) {
  try {
    f.resolve(options);
  } catch (const stowage::Error& e) {
    CHECK(e.code() == stowage::ErrorCode::kInvalidArgument);
    CHECK(std::string(e.what()).find("s3cr3t") == std::string::npos);
    return e.what();
  }
  FAIL("no error");
  return {};
}

const char* kCredentials =
    "# a comment\n"
    "[default]\n"
    "aws_access_key_id = AKIDDEFAULT\n"
    "aws_secret_access_key = default-s3cr3t\n"
    "\n"
    "[dev]\n"
    "aws_access_key_id=AKIDDEV\n"
    "aws_secret_access_key=dev-s3cr3t\n"
    "aws_session_token=dev-token\n";

const char* kConfig =
    "[default]\n"
    "region = eu-west-1\n"
    "[profile dev]\n"
    "region = eu-central-1\n"
    "s3 =\n"
    "  addressing_style = path\n"
    "  endpoint_url = http://127.0.0.1:9000\n"
    "[profile cfgkeys]\n"
    "aws_access_key_id = AKIDCFG\n"
    "aws_secret_access_key = cfg-s3cr3t\n"
    "[profile role]\n"
    "role_arn = arn:aws:iam::123456789012:role/x\n"
    "source_profile = default\n"
    "[profile half]\n"
    "aws_access_key_id = AKIDHALF\n";

}  // namespace

TEST_CASE("options win over everything") {
  Fixture f;
  f.write("credentials", kCredentials);
  f.env["AWS_ACCESS_KEY_ID"] = "AKIDENV";
  f.env["AWS_SECRET_ACCESS_KEY"] = "env-s3cr3t";
  SettingOptions o;
  o.access_key_id = "AKIDOPT";
  o.secret_access_key = "opt-s3cr3t";
  o.session_token = "opt-token";
  Settings s = f.resolve(o);
  REQUIRE(s.credentials);
  CHECK(s.credentials->access_key_id == "AKIDOPT");
  CHECK(s.credentials->session_token == "opt-token");
  CHECK(s.credentials_source == "the options");
}

TEST_CASE("the environment comes before the files") {
  Fixture f;
  f.write("credentials", kCredentials);
  f.env["AWS_ACCESS_KEY_ID"] = "AKIDENV";
  f.env["AWS_SECRET_ACCESS_KEY"] = "env-s3cr3t";
  f.env["AWS_SESSION_TOKEN"] = "env-token";
  Settings s = f.resolve();
  REQUIRE(s.credentials);
  CHECK(s.credentials->access_key_id == "AKIDENV");
  CHECK(s.credentials->secret_access_key == "env-s3cr3t");
  CHECK(s.credentials->session_token == "env-token");
  // AWS_PROFILE does not override keys in the environment (as in the AWS CLI) ...
  f.env["AWS_PROFILE"] = "dev";
  CHECK(f.resolve().credentials->access_key_id == "AKIDENV");
  // ... but a profile named in the options does.
  SettingOptions o;
  o.profile = "dev";
  CHECK(f.resolve(o).credentials->access_key_id == "AKIDDEV");
}

TEST_CASE("the default profile, AWS_PROFILE, and the config file") {
  Fixture f;
  f.write("credentials", kCredentials);
  f.write("config", kConfig);
  Settings s = f.resolve();
  CHECK(s.credentials->access_key_id == "AKIDDEFAULT");
  CHECK(s.credentials->session_token.empty());
  CHECK(s.credentials_source.find("profile \"default\"") != std::string::npos);
  CHECK(s.region == "eu-west-1");
  CHECK(s.endpoint.empty());
  CHECK(s.addressing_style.empty());

  f.env["AWS_PROFILE"] = "dev";
  s = f.resolve();
  CHECK(s.credentials->access_key_id == "AKIDDEV");
  CHECK(s.credentials->session_token == "dev-token");
  CHECK(s.region == "eu-central-1");
  CHECK(s.endpoint == "http://127.0.0.1:9000");
  CHECK(s.addressing_style == "path");

  f.env["AWS_PROFILE"] = "cfgkeys";
  s = f.resolve();
  CHECK(s.credentials->access_key_id == "AKIDCFG");
  CHECK(s.credentials_source.find("config") != std::string::npos);
}

TEST_CASE("file locations from AWS_SHARED_CREDENTIALS_FILE and AWS_CONFIG_FILE") {
  Fixture f;
  std::ofstream(f.dir / "creds.ini") << "[default]\naws_access_key_id=AKIDMOVED\n"
                                        "aws_secret_access_key=moved-s3cr3t\n";
  std::ofstream(f.dir / "config.ini") << "[default]\nregion=ap-south-1\n";
  f.env["AWS_SHARED_CREDENTIALS_FILE"] = (f.dir / "creds.ini").string();
  f.env["AWS_CONFIG_FILE"] = (f.dir / "config.ini").string();
  Settings s = f.resolve();
  CHECK(s.credentials->access_key_id == "AKIDMOVED");
  CHECK(s.region == "ap-south-1");
}

TEST_CASE("region and endpoint precedence") {
  Fixture f;
  f.write("config", kConfig);
  f.env["AWS_DEFAULT_REGION"] = "us-west-1";
  CHECK(f.resolve().region == "us-west-1");
  f.env["AWS_REGION"] = "us-west-2";
  CHECK(f.resolve().region == "us-west-2");
  SettingOptions o;
  o.region = "sa-east-1";
  CHECK(f.resolve(o).region == "sa-east-1");

  f.env["AWS_PROFILE"] = "dev";
  CHECK(f.resolve().endpoint == "http://127.0.0.1:9000");
  f.env["AWS_ENDPOINT_URL"] = "http://generic:1";
  CHECK(f.resolve().endpoint == "http://generic:1");
  f.env["AWS_ENDPOINT_URL_S3"] = "http://s3only:2";
  CHECK(f.resolve().endpoint == "http://s3only:2");
  o.endpoint = "http://option:3";
  CHECK(f.resolve(o).endpoint == "http://option:3");
  f.env["AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"] = "true";
  CHECK(f.resolve().endpoint.empty());
  CHECK(f.resolve(o).endpoint == "http://option:3");
}

TEST_CASE("nothing found: no credentials, and the message lists where it looked") {
  Fixture f;
  Settings s = f.resolve();
  CHECK_FALSE(s.credentials);
  CHECK_FALSE(s.anonymous);
  CHECK(s.region == "us-east-1");
  CHECK(s.searched.find("AWS_ACCESS_KEY_ID") != std::string::npos);
  CHECK(s.searched.find(".aws/credentials (no such file)") != std::string::npos);
  CHECK(s.searched.find(".aws/config (no such file)") != std::string::npos);

  SettingOptions o;
  o.anonymous = true;
  f.env["AWS_ACCESS_KEY_ID"] = "AKIDENV";
  f.env["AWS_SECRET_ACCESS_KEY"] = "env-s3cr3t";
  s = f.resolve(o);
  CHECK(s.anonymous);
  CHECK_FALSE(s.credentials);
}

TEST_CASE("errors name the place, never a secret") {
  Fixture f;
  f.write("credentials", kCredentials);
  f.write("config", kConfig);

  SettingOptions o;
  o.secret_access_key = "opt-s3cr3t";
  std::string e = error_of(f, o);
  CHECK(e.find("access_key_id") != std::string::npos);

  f.env["AWS_SECRET_ACCESS_KEY"] = "env-s3cr3t";
  e = error_of(f);
  CHECK(e.find("AWS_ACCESS_KEY_ID") != std::string::npos);
  f.env.erase("AWS_SECRET_ACCESS_KEY");

  f.env["AWS_PROFILE"] = "nosuch";
  e = error_of(f);
  CHECK(e.find("\"nosuch\"") != std::string::npos);
  CHECK(e.find("AWS_PROFILE") != std::string::npos);

  f.env["AWS_PROFILE"] = "role";
  e = error_of(f);
  CHECK(e.find("role_arn") != std::string::npos);
  CHECK(e.find("\"role\"") != std::string::npos);

  f.env["AWS_PROFILE"] = "half";
  e = error_of(f);
  CHECK(e.find("aws_secret_access_key") != std::string::npos);
}

TEST_CASE("parse_aws_ini: sections, comments, sub-sections") {
  auto ini = stowage::s3::parse_aws_ini(
      "ignored = before any section\n"
      "[a]\r\n"
      "k = v = w\r\n"
      "; comment\n"
      "s3 =\n"
      "    addressing_style = virtual\n"
      "other = x\n"
      "  [ b ]\n"
      "empty =\n");
  CHECK(ini.size() == 2);
  CHECK(ini["a"]["k"] == "v = w");
  CHECK(ini["a"]["s3.addressing_style"] == "virtual");
  CHECK(ini["a"]["other"] == "x");
  CHECK(ini.count("b") == 1);
  CHECK(ini["b"].empty());
}
