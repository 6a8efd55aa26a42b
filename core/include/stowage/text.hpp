// Small text helpers shared by the host, the plugins and the CLI, so each
// rule exists once.
//
//   if (!stowage::valid_utf8(reason)) reason.clear();
//   stowage::join(names)                  // "a, b, c"
//   stowage::join(segments, "/")          // "a/b/c"
//   stowage::split("a.b.", '.')           // {"a", "b", ""}
//   stowage::redact_url(url)              // for messages and logs
//
// Thread-safety: pure functions. Ownership: results are new strings.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace stowage {

// True when s is well-formed UTF-8 (RFC 3629): no overlong forms, no
// surrogates (U+D800..U+DFFF), nothing past U+10FFFF, no truncated sequence.
bool valid_utf8(std::string_view s) noexcept;

// The items with separator between each two; "" for none.
std::string join(std::span<const std::string> items, std::string_view separator = ", ");

// The pieces of text between separators, empty ones included: n separators
// give n + 1 pieces ("" gives {""}). Views into text.
std::vector<std::string_view> split(std::string_view text, char separator);

// The URL with secrets hidden, for messages and logs: a password in the
// userinfo, and the values of query parameters whose lower-cased name
// contains signature, token, key, credential, password, pass, auth, sig,
// secret or session become "REDACTED". Works on any text, parsed or not.
std::string redact_url(std::string_view url);

}  // namespace stowage
