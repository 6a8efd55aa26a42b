#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "multipart_internal.hpp"
#include "stowage/error.hpp"

namespace stowage::serve {
namespace {

struct Seen {
  PartHeaders headers;
  std::string data;
  bool ended = false;
};

class Recorder : public MultipartHandler {
 public:
  std::vector<Seen> parts;
  void on_part_begin(const PartHeaders& h) override { parts.push_back({h, {}, false}); }
  void on_part_data(std::string_view bytes) override {
    REQUIRE(!parts.empty());
    CHECK_FALSE(parts.back().ended);
    parts.back().data.append(bytes);
  }
  void on_part_end() override { parts.back().ended = true; }
};

// A body as TF.js (undici) sends it: model.json then model.weights.bin.
std::string tfjs_body(const std::string& boundary, const std::string& json,
                      const std::string& weights) {
  return "--" + boundary +
         "\r\nContent-Disposition: form-data; name=\"model.json\"; filename=\"model.json\"\r\n"
         "Content-Type: application/json\r\n\r\n" +
         json + "\r\n--" + boundary +
         "\r\nContent-Disposition: form-data; name=\"model.weights.bin\"; "
         "filename=\"model.weights.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n" +
         weights + "\r\n--" + boundary + "--\r\n";
}

// Weight bytes that look like the delimiter as much as possible without
// being it: CR, CRLF, CRLF--, and a boundary missing its last character.
std::string tricky_weights(const std::string& boundary) {
  std::string w = "\r\r\n\r\n-\r\n--\r\n--";
  w += boundary.substr(0, boundary.size() - 1);
  w += "x\r\n-";
  w += std::string("\0\x01\xff\r", 4);
  w += "--" + boundary;  // not preceded by CRLF: data
  w += "\r";
  return w;
}

std::vector<Seen> parse_pieces(const std::string& boundary, const std::vector<std::string>& pieces,
                               MultipartLimits limits = {}) {
  Recorder r;
  MultipartParser p(boundary, r, limits);
  for (const std::string& piece : pieces) p.feed(piece);
  p.finish();
  CHECK(p.done());
  return r.parts;
}

void check_tfjs_parts(const std::vector<Seen>& parts, const std::string& json,
                      const std::string& weights) {
  REQUIRE(parts.size() == 2);
  CHECK(parts[0].headers.name == "model.json");
  CHECK(parts[0].headers.filename == std::optional<std::string>("model.json"));
  CHECK(parts[0].headers.content_type == "application/json");
  CHECK(parts[0].data == json);
  CHECK(parts[0].ended);
  CHECK(parts[1].headers.name == "model.weights.bin");
  CHECK(parts[1].headers.content_type == "application/octet-stream");
  CHECK(parts[1].data == weights);
  CHECK(parts[1].ended);
}

ErrorCode code_of(const std::string& boundary, const std::string& body,
                  MultipartLimits limits = {}) {
  Recorder r;
  MultipartParser p(boundary, r, limits);
  try {
    p.feed(body);
    p.finish();
  } catch (const Error& e) {
    return e.code();
  }
  return ErrorCode::kOk;
}

}  // namespace

TEST_CASE("multipart: boundary from the Content-Type") {
  CHECK(multipart_boundary("multipart/form-data; boundary=----formdata-undici-0123456789") ==
        "----formdata-undici-0123456789");
  CHECK(multipart_boundary("Multipart/Form-Data;boundary=\"a b:c\"") == "a b:c");
  CHECK(multipart_boundary("multipart/form-data; charset=utf-8; BOUNDARY=x") == "x");
  CHECK_THROWS_AS(multipart_boundary("application/json"), Error);
  CHECK_THROWS_AS(multipart_boundary(""), Error);
  CHECK_THROWS_AS(multipart_boundary("multipart/form-data"), Error);
  CHECK_THROWS_AS(multipart_boundary("multipart/form-data; boundary="), Error);
  CHECK_THROWS_AS(multipart_boundary("multipart/form-data; boundary=" + std::string(71, 'a')),
                  Error);
  CHECK_THROWS_AS(multipart_boundary("multipart/form-data; boundary=\"a\rb\""), Error);
  CHECK_THROWS_AS(multipart_boundary("multipart/form-data; boundary=a{b"), Error);
  CHECK_THROWS_AS(multipart_boundary("multipart/form-data; boundary=\"ab \""), Error);
  CHECK_THROWS_AS(multipart_boundary("multipart/form-data; boundary=\"unterminated"), Error);
  try {
    multipart_boundary("text/plain");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::kInvalidArgument);
    CHECK(std::string(e.what()).find("multipart/form-data") != std::string::npos);
  }
}

TEST_CASE("multipart: TF.js's two parts, in one piece and split at every byte") {
  const std::string boundary = "----formdata-undici-052119485171";
  const std::string json = R"({"modelTopology":{},"weightsManifest":[]})";
  const std::string weights = tricky_weights(boundary);
  const std::string body = tfjs_body(boundary, json, weights);

  check_tfjs_parts(parse_pieces(boundary, {body}), json, weights);
  for (size_t cut = 0; cut <= body.size(); ++cut) {
    CAPTURE(cut);
    check_tfjs_parts(parse_pieces(boundary, {body.substr(0, cut), body.substr(cut)}), json,
                     weights);
  }
  // Two cuts, the second a few bytes on: every split of the delimiter.
  for (size_t cut = 0; cut + 7 <= body.size(); cut += 3) {
    CAPTURE(cut);
    check_tfjs_parts(
        parse_pieces(boundary, {body.substr(0, cut), body.substr(cut, 7), body.substr(cut + 7)}),
        json, weights);
  }
  std::vector<std::string> bytes;
  for (char c : body) bytes.emplace_back(1, c);
  check_tfjs_parts(parse_pieces(boundary, bytes), json, weights);
}

TEST_CASE("multipart: preamble, epilogue, padding, empty and header-less data") {
  const std::string b = "B";
  const std::string body =
      "preamble\r\n--B  \t\r\nContent-Disposition: form-data; name=a\r\n\r\n\r\n--B\r\n"
      "content-disposition: FORM-DATA; name=\"q\\\"uote\"; filename=\"f.bin\"\r\n\r\n"
      "x\r\n--B--\r\nepilogue --B\r\n";
  const std::vector<Seen> parts = parse_pieces(b, {body});
  REQUIRE(parts.size() == 2);
  CHECK(parts[0].headers.name == "a");
  CHECK(parts[0].data.empty());
  CHECK_FALSE(parts[0].headers.filename.has_value());
  CHECK(parts[1].headers.name == "q\"uote");
  CHECK(parts[1].headers.filename == std::optional<std::string>("f.bin"));
  CHECK(parts[1].data == "x");
}

TEST_CASE("multipart: malformed bodies are refused with invalid argument") {
  const std::string b = "B";
  const auto part = [](const std::string& headers, const std::string& data) {
    return "--B\r\n" + headers + "\r\n\r\n" + data + "\r\n";
  };
  const std::string ok_headers = "Content-Disposition: form-data; name=a";
  CHECK(code_of(b, part(ok_headers, "x") + "--B--") == ErrorCode::kOk);
  // No closing delimiter: a truncated upload.
  CHECK(code_of(b, part(ok_headers, "x")) == ErrorCode::kInvalidArgument);
  CHECK(code_of(b, part(ok_headers, "x").substr(0, 30)) == ErrorCode::kInvalidArgument);
  // A body with another boundary: no delimiter at all.
  CHECK(code_of("C", part(ok_headers, "x") + "--B--") == ErrorCode::kInvalidArgument);
  CHECK(code_of(b, "") == ErrorCode::kInvalidArgument);
  // Headers: none, no name, another disposition, folding, no colon, control bytes.
  CHECK(code_of(b, "--B\r\n\r\nx\r\n--B--") == ErrorCode::kInvalidArgument);
  CHECK(code_of(b, part("Content-Type: text/plain", "x") + "--B--") == ErrorCode::kInvalidArgument);
  CHECK(code_of(b, part("Content-Disposition: form-data", "x") + "--B--") ==
        ErrorCode::kInvalidArgument);
  CHECK(code_of(b, part("Content-Disposition: attachment; name=a", "x") + "--B--") ==
        ErrorCode::kInvalidArgument);
  CHECK(code_of(b, part(ok_headers + "\r\n folded", "x") + "--B--") == ErrorCode::kInvalidArgument);
  CHECK(code_of(b, part(ok_headers + "\r\nnocolon", "x") + "--B--") == ErrorCode::kInvalidArgument);
  CHECK(code_of(b, part(ok_headers + "\r\nX: a\x01", "x") + "--B--") ==
        ErrorCode::kInvalidArgument);
  CHECK(code_of(b, part("Content-Disposition: form-data; name=\"a", "x") + "--B--") ==
        ErrorCode::kInvalidArgument);
  CHECK(code_of(b, part(ok_headers + "\r\nContent-Transfer-Encoding: base64", "eA==") + "--B--") ==
        ErrorCode::kInvalidArgument);
  // After a delimiter only CRLF, padding or "--" may come.
  CHECK(code_of(b, "--Bx\r\n") == ErrorCode::kInvalidArgument);
  CHECK(code_of(b, "--B-x") == ErrorCode::kInvalidArgument);
  CHECK(code_of(b, "--B\rx") == ErrorCode::kInvalidArgument);
  CHECK(code_of(b, "--B" + std::string(100, ' ') + "\r\n") == ErrorCode::kInvalidArgument);

  // Once failed, a parser stays failed.
  Recorder r;
  MultipartParser p(b, r);
  CHECK_THROWS_AS(p.feed("--Bx"), Error);
  CHECK_THROWS_AS(p.feed("\r\n"), Error);
  CHECK_THROWS_AS(p.finish(), Error);
}

TEST_CASE("multipart: limits on parts and header size give resource exhausted") {
  const std::string b = "B";
  std::string three;
  for (int i = 0; i < 3; ++i) three += "--B\r\nContent-Disposition: form-data; name=p\r\n\r\nx\r\n";
  three += "--B--";
  CHECK(code_of(b, three, {3, 1024}) == ErrorCode::kOk);
  CHECK(code_of(b, three, {2, 1024}) == ErrorCode::kResourceExhausted);

  const std::string big_header =
      "--B\r\nContent-Disposition: form-data; name=p\r\nX-Pad: " + std::string(2000, 'a') +
      "\r\n\r\nx\r\n--B--";
  CHECK(code_of(b, big_header, {8, 4096}) == ErrorCode::kOk);
  CHECK(code_of(b, big_header, {8, 1024}) == ErrorCode::kResourceExhausted);
  // Without a blank line the header block would grow forever: it is cut
  // at the limit, even when fed a byte at a time.
  Recorder r;
  MultipartParser p(b, r, {8, 64});
  p.feed("--B\r\n");
  bool threw = false;
  for (int i = 0; i < 100 && !threw; ++i) {
    try {
      p.feed("a");
    } catch (const Error& e) {
      CHECK(e.code() == ErrorCode::kResourceExhausted);
      threw = true;
    }
  }
  CHECK(threw);
}

TEST_CASE("multipart: part data is handed over without being held back") {
  // Everything but a possible delimiter start is passed on at once.
  Recorder r;
  MultipartParser p("B", r);
  p.feed("--B\r\nContent-Disposition: form-data; name=w\r\n\r\n");
  p.feed(std::string(1000, 'z'));
  REQUIRE(r.parts.size() == 1);
  CHECK(r.parts[0].data.size() == 1000);
  p.feed("ab\r\n-");  // "\r\n-" may start the delimiter: held
  CHECK(r.parts[0].data.size() == 1002);
  p.feed("q");  // it was data after all
  CHECK(r.parts[0].data.size() == 1006);
  CHECK(r.parts[0].data.substr(1000) == "ab\r\n-q");
  p.feed("\r\n--B--");
  p.finish();
  CHECK(r.parts[0].ended);
}

}  // namespace stowage::serve
