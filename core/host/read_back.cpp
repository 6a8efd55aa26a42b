// Where a saved model can be loaded back from (management.hpp,
// read_back_target): the save's own answer may name it (an upload receiver
// such as stowage serve), the caller may name it, or it is the destination.
#include <algorithm>
#include <cctype>

#include "json_util_internal.hpp"
#include "stowage/error.hpp"
#include "stowage/management.hpp"

namespace stowage {
namespace {

// What the save's responses say about the model's URL.
struct Named {
  bool said = false;  // some response has a "modelUrl" member
  std::optional<std::string> url;
};

Named named_by_responses(const SaveResult& saved) {
  Named out;
  if (!saved.responses) return out;
  rapidjson::Document doc;
  doc.Parse(saved.responses->data(), saved.responses->size());
  if (doc.HasParseError()) return out;
  auto look = [&](const rapidjson::Value& v) {
    if (!v.IsObject()) return;
    auto m = v.FindMember("modelUrl");
    if (m == v.MemberEnd()) return;
    out.said = true;
    if (m->value.IsString() && m->value.GetStringLength() > 0 && !out.url) {
      out.url = std::string(host::view_of(m->value));
    }
  };
  if (doc.IsArray()) {
    for (const auto& v : doc.GetArray()) look(v);
  } else {
    look(doc);
  }
  return out;
}

// "scheme://host:port" in lower case, the default port of http(s) written
// out and userinfo left out; "" for a URL without "//" authority.
std::string origin_of(std::string_view url) {
  const size_t sep = url.find("://");
  if (sep == std::string_view::npos) return {};
  std::string scheme(url.substr(0, sep));
  std::string_view rest = url.substr(sep + 3);
  std::string_view authority = rest.substr(0, rest.find_first_of("/?#"));
  if (size_t at = authority.rfind('@'); at != std::string_view::npos) {
    authority.remove_prefix(at + 1);
  }
  std::string a(authority);
  for (char& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (char& c : a) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const size_t bracket = a.rfind(']');  // an IPv6 literal's colons are not a port
  if (a.find(':', bracket == std::string::npos ? 0 : bracket) == std::string::npos) {
    if (scheme == "http") a += ":80";
    if (scheme == "https") a += ":443";
  }
  return scheme + "://" + a;
}

bool same_plugin(const Route& a, const Route& b) {
  if (a.in_process || b.in_process) return a.in_process && b.in_process && a.scheme == b.scheme;
  return a.plugin.name == b.plugin.name && a.plugin.library == b.plugin.library;
}

// The destination's options for loading from another URL of the same
// plugin: "headers" (credentials, typically) stay with the destination's
// origin unless "send_headers_to_other_hosts" is true, as the http plugin
// does for weight files and its client for redirects.
std::string options_for(std::string_view url, std::string_view dst, std::string_view dst_options) {
  if (origin_of(url) == origin_of(dst)) return std::string(dst_options);
  rapidjson::Document doc = host::parse_json(dst_options, "destination options");
  if (!doc.IsObject()) return std::string(dst_options);
  auto keep = doc.FindMember("send_headers_to_other_hosts");
  if (keep != doc.MemberEnd() && keep->value.IsBool() && keep->value.GetBool()) {
    return std::string(dst_options);
  }
  doc.RemoveMember("headers");
  return host::write_json(doc);
}

}  // namespace

std::optional<ReadBack> read_back_target(std::string_view dst, std::string_view dst_options,
                                         const SaveResult& saved, std::string_view verify_url,
                                         Registry& registry) {
  const Named named = named_by_responses(saved);
  std::string url;
  if (!verify_url.empty()) {
    url = std::string(verify_url);
  } else if (named.url) {
    url = *named.url;
  } else if (named.said) {
    return std::nullopt;  // an upload URL whose receiver did not say where the model went
  } else {
    return ReadBack{std::string(dst), std::string(dst_options)};
  }
  const Route to = registry.route(url);
  const Route from = registry.route(dst);
  if (same_plugin(to, from)) return ReadBack{url, options_for(url, dst, dst_options)};
  if (!verify_url.empty()) return ReadBack{url, "{}"};  // the caller chose another store
  // A receiver may not make the host load through another plugin.
  throw Error(ErrorCode::kInvalidArgument,
              "the answer to the save to '" + std::string(dst) + "' names a model URL of scheme '" +
                  to.scheme + "', which another plugin than the destination's serves; a receiver " +
                  "cannot choose the plugin that reads the model back");
}

}  // namespace stowage
