// Fuzzes URL handling: the http(s) client's parser, resolver and redaction
// (core/net/url.cpp), the registry's scheme splitting (url_scheme) and
// the blob-store kit's model and weight locations (sdk blob_store.hpp). An
// input is a URL, a newline and a reference or path. Checks: a parsed URL
// written back parses to the same parts; resolution gives a parseable URL
// whose path has no dot segments; redaction of a URL is idempotent and
// hides its password; locations never leave their folder.
//
//   build-fuzz/bin/fuzz/url_fuzzer -dict=fuzz/dict/url.dict fuzz/corpus/url

#include <string>

#include "fuzz_util.hpp"
#include "http_client.hpp"
#include "stowage/blob_store.hpp"
#include "stowage/error.hpp"
#include "stowage/registry.hpp"

namespace {

using stowage::net::Url;

bool same(const Url& a, const Url& b) {
  return a.scheme == b.scheme && a.userinfo == b.userinfo && a.host == b.host && a.port == b.port &&
         a.target == b.target;
}

bool has_segment(std::string_view path, std::string_view wanted) {
  for (size_t start = 0; start <= path.size();) {
    const size_t slash = std::min(path.find('/', start), path.size());
    if (path.substr(start, slash - start) == wanted) return true;
    start = slash + 1;
  }
  return false;
}

// "." or ".." in the path of a target (the query may hold anything).
bool has_dot_segment(std::string_view target) {
  target = target.substr(0, target.find('?'));
  return has_segment(target, ".") || has_segment(target, "..");
}

void check_url(const Url& u, const char* what) {
  FUZZ_CHECK(u.scheme == "http" || u.scheme == "https", what);
  FUZZ_CHECK(!u.target.empty() && u.target.front() == '/', what);
  const std::string text = u.str();
  Url again;
  try {
    again = Url::parse(text);
  } catch (const stowage::Error& e) {
    std::fprintf(stderr, "%s: %s\n", text.c_str(), e.what());
    FUZZ_CHECK(false, "a URL written by str() must parse");
  }
  FUZZ_CHECK(same(u, again), "str() then parse gives the same parts");
  FUZZ_CHECK(again.str() == text, "str() is stable");
}

void check_locations(std::string_view path) {
  try {
    const stowage::plugin::BlobLocation at = stowage::plugin::locate_model(path, "fuzz://");
    FUZZ_CHECK(at.folder.empty() || at.folder.back() == '/', "a folder ends with '/'");
    FUZZ_CHECK(at.folder.empty() || at.folder.front() != '/', "a folder is relative");
    FUZZ_CHECK(!has_segment(at.folder, ".") && !has_segment(at.folder, ".."),
               "a folder has no dot segments");
    FUZZ_CHECK(at.model_name.ends_with(".json"), "the model file is a .json");
    FUZZ_CHECK(at.model_name.find('/') == std::string::npos, "the model file is a name");
  } catch (const stowage::Error&) {
  }
  try {
    const std::string key = stowage::plugin::weight_key("models/m/", path, "fuzz");
    FUZZ_CHECK(key.starts_with("models/m/"), "a weight key stays in its folder");
    FUZZ_CHECK(!has_segment(std::string_view(key).substr(9), ".."),
               "a weight key has no '..' segment");
    FUZZ_CHECK(key.size() > 9 && key[9] != '/', "a weight key is relative");
  } catch (const stowage::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view rest = stowage::fuzz::as_text(data, size);
  const std::string_view url = stowage::fuzz::take_until(rest, "\n");
  const std::string_view reference = rest;

  (void)stowage::redact_url(url);  // any text, parsed or not

  const std::string scheme = stowage::url_scheme(url);
  if (!scheme.empty()) {
    FUZZ_CHECK(url.size() > scheme.size() + 2 && url.substr(scheme.size(), 3) == "://",
               "the scheme is what precedes ://");
    for (char c : scheme) FUZZ_CHECK(!(c >= 'A' && c <= 'Z'), "schemes are lowercase");
  }

  check_locations(reference);

  Url base;
  try {
    base = Url::parse(url);
  } catch (const stowage::Error&) {
    return 0;
  }
  check_url(base, "parsed URL");
  const std::string redacted = stowage::redact_url(base.str());
  FUZZ_CHECK(stowage::redact_url(redacted) == redacted, "redaction is idempotent");
  if (const size_t colon = base.userinfo.find(':'); colon != std::string::npos) {
    // The path may repeat the password; the userinfo must not show it.
    const std::string hidden =
        base.scheme + "://" + base.userinfo.substr(0, colon) + ":REDACTED@" + base.authority();
    FUZZ_CHECK(stowage::redact_url(base.str()).starts_with(hidden),
               "redaction hides the password");
  }

  Url resolved;
  try {
    resolved = base.resolve(reference);
  } catch (const stowage::Error&) {
    return 0;
  }
  check_url(resolved, "resolved URL");
  FUZZ_CHECK(!has_dot_segment(resolved.target), "resolution removes dot segments");
  return 0;
}
