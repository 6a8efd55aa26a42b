#include <boost/beast/core/string.hpp>
#include <cstring>
#include <functional>

#include "multipart_internal.hpp"
#include "stowage/error.hpp"

namespace stowage::serve {
namespace {

// Linear whitespace RFC 2046 allows between a delimiter and its CRLF.
constexpr size_t kMaxPadding = 64;

[[noreturn]] void malformed(const std::string& what) {
  throw Error(ErrorCode::kInvalidArgument, "malformed multipart/form-data body: " + what);
}

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool is_control(char c) {
  const auto u = static_cast<unsigned char>(c);
  return (u < 0x20 && c != '\t') || u == 0x7f;
}

// Splits "value; key=token; key="quoted \" string"" into the leading value
// and its parameters, calling on_param(lowercase key, unquoted value).
// Throws Error(kInvalidArgument) naming `what`.
std::string_view parse_params(std::string_view header, std::string_view what,
                              const std::function<void(std::string, std::string)>& on_param) {
  const size_t semi = header.find(';');
  const std::string_view value = trim(header.substr(0, semi));
  std::string_view rest = semi == std::string_view::npos ? std::string_view{} : header.substr(semi);
  while (!rest.empty()) {
    rest = trim(rest);
    if (rest.empty()) break;
    if (rest.front() != ';') malformed(std::string(what) + " has text after a parameter");
    rest = trim(rest.substr(1));
    if (rest.empty()) break;  // a trailing ';' is harmless
    const size_t eq = rest.find('=');
    if (eq == std::string_view::npos) malformed(std::string(what) + " has a parameter without '='");
    std::string key(trim(rest.substr(0, eq)));
    if (key.empty()) malformed(std::string(what) + " has a parameter without a name");
    for (char& c : key) c = lower(c);
    rest = trim(rest.substr(eq + 1));
    std::string param;
    if (!rest.empty() && rest.front() == '"') {
      size_t i = 1;
      bool closed = false;
      while (i < rest.size()) {
        const char c = rest[i++];
        if (c == '"') {
          closed = true;
          break;
        }
        if (c == '\\' && i < rest.size()) {
          param.push_back(rest[i++]);
        } else {
          param.push_back(c);
        }
      }
      if (!closed) malformed(std::string(what) + " has an unterminated quoted string");
      rest.remove_prefix(i);
    } else {
      const size_t end = rest.find(';');
      param = std::string(trim(rest.substr(0, end)));
      rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end);
    }
    on_param(std::move(key), std::move(param));
  }
  return value;
}

// RFC 2046 bcharsnospace, plus the space allowed anywhere but at the end.
bool is_boundary_char(char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  return std::strchr("'()+_,-./:=? ", c) != nullptr && c != '\0';
}

}  // namespace

std::string multipart_boundary(std::string_view content_type) {
  std::optional<std::string> boundary;
  const std::string_view media = parse_params(
      content_type, "the Content-Type header", [&](const std::string& key, std::string value) {
        if (key != "boundary") return;
        if (boundary) malformed("the Content-Type header has two boundary parameters");
        boundary = std::move(value);
      });
  if (!boost::beast::iequals(media, "multipart/form-data")) {
    throw Error(ErrorCode::kInvalidArgument,
                "the upload must be multipart/form-data (as TF.js's model.save('http://...') "
                "sends it), not '" +
                    std::string(media.empty() ? "(none)" : media) + "'");
  }
  if (!boundary) malformed("the Content-Type header has no boundary parameter");
  if (boundary->empty() || boundary->size() > 70) {
    malformed("the boundary must have 1 to 70 characters, not " + std::to_string(boundary->size()));
  }
  for (char c : *boundary) {
    if (!is_boundary_char(c)) malformed("the boundary has a character RFC 2046 does not allow");
  }
  if (boundary->back() == ' ') malformed("the boundary ends with a space");
  return *boundary;
}

MultipartParser::MultipartParser(std::string boundary, MultipartHandler& handler,
                                 MultipartLimits limits)
    : delimiter_("\r\n--" + boundary), handler_(handler), limits_(limits) {
  // The first delimiter may open the body without the CRLF in front of it:
  // start as if that CRLF had just been read.
  matched_ = 2;
}

void MultipartParser::fail_if_failed() const {
  if (state_ == State::kFailed) malformed("the body already failed to parse");
}

void MultipartParser::emit(std::string_view bytes) {
  if (state_ == State::kBody && !bytes.empty()) handler_.on_part_data(bytes);
}

size_t MultipartParser::scan(std::string_view data) {
  const char* p = data.data();
  const char* const end = p + data.size();
  const char* run = p;  // start of the bytes not yet emitted
  while (p < end) {
    if (matched_ == 0) {
      const void* cr = std::memchr(p, '\r', static_cast<size_t>(end - p));
      if (cr == nullptr) {
        p = end;
        break;
      }
      p = static_cast<const char*>(cr);
      emit({run, static_cast<size_t>(p - run)});
      ++p;
      matched_ = 1;
      run = p;
      continue;
    }
    if (*p == delimiter_[matched_]) {
      ++p;
      run = p;
      if (++matched_ == delimiter_.size()) {
        matched_ = 0;
        if (state_ == State::kBody) handler_.on_part_end();
        state_ = State::kDelimiterTail;
        padding_ = 0;
        return static_cast<size_t>(p - data.data());
      }
    } else {
      // What matched so far was data after all. The delimiter holds '\r'
      // only at its start, so the match restarts at this very byte.
      emit({delimiter_.data(), matched_});
      matched_ = 0;
      run = p;
    }
  }
  emit({run, static_cast<size_t>(p - run)});
  return data.size();
}

void MultipartParser::begin_part() {
  std::string_view block(header_block_);
  block.remove_suffix(block.size() >= 4 ? 4 : 2);  // the blank line
  PartHeaders headers;
  bool has_disposition = false;
  bool has_name = false;
  const std::string where = "part " + std::to_string(parts_);
  while (!block.empty()) {
    const size_t eol = block.find("\r\n");
    const std::string_view line = block.substr(0, eol);
    block = eol == std::string_view::npos ? std::string_view{} : block.substr(eol + 2);
    if (line.empty()) continue;
    if (line.front() == ' ' || line.front() == '\t') {
      malformed(where + " has a folded header line");
    }
    for (char c : line) {
      if (is_control(c)) malformed(where + " has a control character in its headers");
    }
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      malformed(where + " has a header line without a name and ':'");
    }
    const std::string_view name = trim(line.substr(0, colon));
    const std::string_view value = trim(line.substr(colon + 1));
    if (boost::beast::iequals(name, "content-disposition")) {
      if (has_disposition) malformed(where + " has two Content-Disposition headers");
      has_disposition = true;
      const std::string_view type = parse_params(
          value, where + "'s Content-Disposition", [&](std::string key, std::string param) {
            if (key == "name") {
              if (has_name) malformed(where + "'s Content-Disposition has two names");
              has_name = true;
              headers.name = std::move(param);
            } else if (key == "filename") {
              headers.filename = std::move(param);
            }
          });
      if (!boost::beast::iequals(type, "form-data")) {
        malformed(where + "'s Content-Disposition is '" + std::string(type) + "', not form-data");
      }
    } else if (boost::beast::iequals(name, "content-type")) {
      headers.content_type = std::string(value);
    } else if (boost::beast::iequals(name, "content-transfer-encoding")) {
      if (!boost::beast::iequals(value, "binary") && !boost::beast::iequals(value, "8bit") &&
          !boost::beast::iequals(value, "7bit")) {
        malformed(where + " uses Content-Transfer-Encoding " + std::string(value) +
                  "; only binary data is accepted");
      }
    }
  }
  if (!has_disposition) malformed(where + " has no Content-Disposition header");
  if (!has_name) malformed(where + "'s Content-Disposition has no name");
  header_block_.clear();
  state_ = State::kBody;
  matched_ = 0;
  handler_.on_part_begin(headers);
}

void MultipartParser::feed(std::string_view data) {
  fail_if_failed();
  try {
    while (!data.empty()) {
      switch (state_) {
        case State::kPreamble:
        case State::kBody:
          data.remove_prefix(scan(data));
          break;
        case State::kDelimiterTail: {
          const char c = data.front();
          data.remove_prefix(1);
          if (c == '-') {
            state_ = State::kCloseDash;
          } else if (c == '\r') {
            state_ = State::kDelimiterLf;
          } else if (c == ' ' || c == '\t') {
            if (++padding_ > kMaxPadding) malformed("too much padding after a delimiter");
          } else {
            malformed("a delimiter is followed by neither CRLF nor \"--\"");
          }
          break;
        }
        case State::kCloseDash:
          if (data.front() != '-') malformed("a delimiter is followed by a single '-'");
          data.remove_prefix(1);
          state_ = State::kEpilogue;
          break;
        case State::kDelimiterLf:
          if (data.front() != '\n') malformed("a delimiter line ends in CR without LF");
          data.remove_prefix(1);
          if (++parts_ > limits_.max_parts) {
            throw Error(ErrorCode::kResourceExhausted,
                        "the upload has more than " + std::to_string(limits_.max_parts) + " parts");
          }
          header_block_.clear();
          state_ = State::kHeaders;
          break;
        case State::kHeaders: {
          const size_t old = header_block_.size();
          const size_t room =
              limits_.max_header_bytes + 4 - std::min(old, limits_.max_header_bytes);
          const size_t take = std::min(data.size(), room);
          header_block_.append(data.substr(0, take));
          size_t end = std::string::npos;
          if (header_block_.size() >= 2 && header_block_.compare(0, 2, "\r\n") == 0) {
            end = 2;  // no headers at all
          } else {
            const size_t pos = header_block_.find("\r\n\r\n", old >= 3 ? old - 3 : 0);
            if (pos != std::string::npos) end = pos + 4;
          }
          if (end == std::string::npos || end > limits_.max_header_bytes) {
            if (header_block_.size() > limits_.max_header_bytes) {
              throw Error(ErrorCode::kResourceExhausted,
                          "part " + std::to_string(parts_) + "'s headers exceed " +
                              std::to_string(limits_.max_header_bytes) + " bytes");
            }
            data.remove_prefix(take);
            break;
          }
          data.remove_prefix(end - old);
          header_block_.resize(end);
          begin_part();
          break;
        }
        case State::kEpilogue:
          data = {};
          break;
        case State::kFailed:
          fail_if_failed();
          break;
      }
    }
  } catch (...) {
    state_ = State::kFailed;
    throw;
  }
}

void MultipartParser::finish() {
  fail_if_failed();
  if (state_ == State::kEpilogue) return;
  const State was = state_;
  state_ = State::kFailed;
  if (was == State::kPreamble && parts_ == 0) {
    malformed("no delimiter line \"--<boundary>\" was found; is the boundary right?");
  }
  malformed("the body ends before the closing delimiter \"--<boundary>--\" (truncated upload?)");
}

}  // namespace stowage::serve
