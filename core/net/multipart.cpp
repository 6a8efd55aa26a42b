// multipart/form-data bodies as the WHATWG FormData encoder writes them, with
// the part contents referenced, never joined.
#include <algorithm>
#include <cstring>
#include <random>

#include "http_client.hpp"

namespace stowage::net {
namespace {

std::string random_boundary() {
  static constexpr char kAlnum[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  std::random_device rd;
  std::uniform_int_distribution<int> pick(0, static_cast<int>(sizeof(kAlnum)) - 2);
  std::string b = "----stowageFormBoundary";
  for (int i = 0; i < 24; ++i) b += kAlnum[pick(rd)];
  return b;
}

// FormData escapes '"', CR and LF in names and filenames (HTML spec,
// "multipart/form-data encoding algorithm").
std::string escape_name(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '"') {
      out += "%22";
    } else if (c == '\r') {
      out += "%0D";
    } else if (c == '\n') {
      out += "%0A";
    } else {
      out += c;
    }
  }
  return out;
}

bool contains(const std::vector<Buffer>& pieces, std::string_view needle) {
  // Pieces are searched one by one and across each seam.
  for (size_t i = 0; i < pieces.size(); ++i) {
    std::string_view v = pieces[i].view();
    if (v.find(needle) != std::string_view::npos) return true;
    if (i + 1 < pieces.size()) {
      std::string seam(v.substr(v.size() - std::min(v.size(), needle.size())));
      std::string_view next = pieces[i + 1].view();
      seam += next.substr(0, std::min(next.size(), needle.size()));
      if (seam.find(needle) != std::string::npos) return true;
    }
  }
  return false;
}

}  // namespace

Multipart build_multipart(const std::vector<FormPart>& parts, std::string boundary) {
  bool chosen = boundary.empty();
  for (int attempt = 0;; ++attempt) {
    if (chosen) boundary = random_boundary();
    bool clash = false;
    for (const FormPart& p : parts) clash = clash || contains(p.content, boundary);
    if (!clash) break;
    if (!chosen) {
      throw Error(ErrorCode::kInvalidArgument,
                  "the multipart boundary occurs in the content of a part");
    }
    if (attempt > 8) throw Error(ErrorCode::kInternal, "no multipart boundary could be chosen");
  }
  Multipart out;
  out.content_type = "multipart/form-data; boundary=" + boundary;
  std::string pending;  // delimiter text waiting to become one buffer
  auto flush = [&] {
    if (pending.empty()) return;
    out.size += pending.size();
    out.body.push_back(Buffer::from_string(std::move(pending)));
    pending.clear();
  };
  for (const FormPart& p : parts) {
    pending += "--" + boundary + "\r\nContent-Disposition: form-data; name=\"" +
               escape_name(p.name) + "\"";
    if (!p.filename.empty()) pending += "; filename=\"" + escape_name(p.filename) + "\"";
    pending += "\r\n";
    if (!p.content_type.empty()) pending += "Content-Type: " + p.content_type + "\r\n";
    pending += "\r\n";
    for (const Buffer& b : p.content) {
      if (b.empty()) continue;
      flush();
      out.size += b.size();
      out.body.push_back(b);
    }
    pending += "\r\n";
  }
  pending += "--" + boundary + "--\r\n";
  flush();
  return out;
}

}  // namespace stowage::net
