// Command-line options shared by subcommands, and the options JSON handed to
// handlers.
#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cctype>

#include "commands_internal.hpp"
#include "stowage/registry.hpp"
#include "stowage/text.hpp"

namespace stowage::cli {
namespace {

constexpr unsigned kParseFlags = rapidjson::kParseFullPrecisionFlag;

rapidjson::Document parse_object(std::string_view text, std::string_view what) {
  rapidjson::Document doc;
  doc.Parse<kParseFlags>(text.data(), text.size());
  if (doc.HasParseError()) {
    throw UsageError(std::string(what) + ": not valid JSON (" +
                     rapidjson::GetParseError_En(doc.GetParseError()) + " at offset " +
                     std::to_string(doc.GetErrorOffset()) + ")");
  }
  if (!doc.IsObject()) throw UsageError(std::string(what) + ": must be a JSON object");
  return doc;
}

std::string compact(const rapidjson::Value& value) {
  rapidjson::StringBuffer out;
  rapidjson::Writer<rapidjson::StringBuffer> writer(out);
  value.Accept(writer);
  return {out.GetString(), out.GetSize()};
}

// VALUE of -o KEY=VALUE: JSON when it parses (numbers, true, {"a":1}),
// otherwise the text as a string.
std::string value_as_json(std::string_view value) {
  rapidjson::Document doc;
  doc.Parse<kParseFlags>(value.data(), value.size());
  if (!doc.HasParseError()) return compact(doc);
  rapidjson::Value s(value.data(), static_cast<rapidjson::SizeType>(value.size()),
                     doc.GetAllocator());
  return compact(s);
}

}  // namespace

void add_common_options(CLI::App& sub, CommonOptions& common) {
  sub.add_flag("--json", common.json, "Print machine-readable JSON on stdout");
  sub.add_flag("-q,--quiet", common.quiet,
               "No progress bar and no notes; list, info, verify and plugins still print their "
               "answer, other commands print nothing on success");
  sub.add_option("--config", common.config,
                 "Host configuration file (plugin folders, allow-list, aliases, defaults)")
      ->check(CLI::ExistingFile);
}

void add_url_options(CLI::App& sub, UrlOptions& options) {
  sub.add_option("--options", options.json, "Options for the URL's handler, as a JSON object");
  sub.add_option("-o,--option", options.pairs,
                 "One handler option KEY=VALUE (repeatable; VALUE is JSON or a string)");
}

void add_no_verify_digests_flag(CLI::App& sub, bool& no_verify_digests) {
  sub.add_flag("--no-verify-digests", no_verify_digests,
               "Do not check weight files against the SHA-256 digests model.json records (for a "
               "store you trust); their sizes are still checked");
}

std::string options_json(const UrlOptions& options, std::string_view what) {
  std::string json = compact(parse_object(options.json, what));
  for (const std::string& pair : options.pairs) {
    const size_t eq = pair.find('=');
    if (eq == std::string::npos || eq == 0) {
      throw UsageError(options.pair_flag + " " + pair + ": expected KEY=VALUE");
    }
    json = set_json_member(json, pair.substr(0, eq), value_as_json(pair.substr(eq + 1)), what);
  }
  return json;
}

std::string normalize_url(std::string_view arg) {
  if (arg.empty()) throw UsageError("the URL is empty");
  if (arg.find("://") != std::string_view::npos) return std::string(arg);
  // "s3:/bucket/x" or "memory:m" is a URL with a slash too few, not a file
  // path, when what comes before the colon is a scheme that is served.
  const size_t colon = arg.find(':');
  if (colon != std::string_view::npos && colon > 0) {
    std::string scheme(arg.substr(0, colon));
    for (char& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const std::vector<std::string> known = Registry::global().schemes();
    if (std::find(known.begin(), known.end(), scheme) != known.end()) {
      std::string_view rest = arg.substr(colon + 1);
      // file:/srv/m is the absolute path /srv/m; elsewhere the slashes are
      // the separator that was mistyped.
      if (scheme != "file") {
        while (rest.starts_with('/')) rest.remove_prefix(1);
      }
      throw UsageError(std::string(arg) + ": did you mean " + scheme + "://" + std::string(rest) +
                       "? (a URL is scheme://...; for a file of that name write ./" +
                       std::string(arg) + ")");
    }
  }
  return "file://" + std::string(arg);
}

std::string set_json_member(std::string_view object_json, std::string_view key,
                            std::string_view value_json, std::string_view what) {
  rapidjson::Document doc = parse_object(object_json, what);
  rapidjson::Document value(&doc.GetAllocator());
  value.Parse<kParseFlags>(value_json.data(), value_json.size());
  if (value.HasParseError())
    throw UsageError(std::string(what) + ": bad value for " + std::string(key));
  rapidjson::Value name(key.data(), static_cast<rapidjson::SizeType>(key.size()),
                        doc.GetAllocator());
  doc.EraseMember(name);
  doc.AddMember(name, rapidjson::Value(value, doc.GetAllocator()), doc.GetAllocator());
  return compact(doc);
}

std::string remove_json_member(std::string_view object_json, std::string_view key) {
  rapidjson::Document doc = parse_object(object_json, "options");
  rapidjson::Value name(key.data(), static_cast<rapidjson::SizeType>(key.size()),
                        doc.GetAllocator());
  doc.EraseMember(name);
  return compact(doc);
}

bool message_names(std::string_view message, std::string_view url) {
  std::string_view path = url;
  if (const size_t sep = url.find("://"); sep != std::string_view::npos) {
    path = url.substr(sep + 3);
  }
  while (path.starts_with("./")) path.remove_prefix(2);
  while (path.size() > 1 && path.ends_with('/')) path.remove_suffix(1);
  if (message.find(url) != std::string_view::npos) return true;
  // A short path ("m" of memory://m) would match by chance.
  return path.size() >= 4 && message.find(path) != std::string_view::npos;
}

void rethrow_naming(const Error& e, std::string_view url) {
  if (message_names(e.what(), url)) throw e;
  throw Error(e.code(), redact_url(url) + ": " + e.what(), e.retryable());
}

}  // namespace stowage::cli
