// Fuzzes the multipart/form-data parser of `stowage serve`
// (cli/serve/multipart.cpp). An input is a Content-Type value, a newline,
// one control byte and the body. The body is parsed twice, whole and in
// pieces of a size the control byte picks; both must give the same parts,
// the same bytes and the same outcome, since sockets split bodies anywhere.
// No part's data may contain the delimiter.
//
//   build-fuzz/bin/fuzz/multipart_fuzzer -dict=fuzz/dict/multipart.dict fuzz/corpus/multipart

#include <optional>
#include <string>
#include <vector>

#include "fuzz_util.hpp"
#include "multipart_internal.hpp"
#include "stowage/error.hpp"

namespace {

using stowage::serve::MultipartParser;
using stowage::serve::PartHeaders;

// Records events as text: begin, the part's bytes joined, end.
class Recorder : public stowage::serve::MultipartHandler {
 public:
  void on_part_begin(const PartHeaders& h) override {
    FUZZ_CHECK(!in_part_, "begin inside a part");
    in_part_ = true;
    ++begins_;
    log_ += "<begin name=" + h.name + " filename=" + (h.filename ? "+" + *h.filename : "-") +
            " type=" + h.content_type + ">";
    data_.clear();
  }
  void on_part_data(std::string_view bytes) override {
    FUZZ_CHECK(in_part_, "data outside a part");
    data_ += bytes;
    log_ += bytes;
  }
  void on_part_end() override {
    FUZZ_CHECK(in_part_, "end outside a part");
    in_part_ = false;
    log_ += "<end>";
    parts_.push_back(data_);
  }

  std::string log_;
  std::vector<std::string> parts_;
  size_t begins_ = 0;

 private:
  bool in_part_ = false;
  std::string data_;
};

struct Outcome {
  std::string log;
  std::optional<stowage::ErrorCode> error;
  bool done = false;
};

Outcome run(const std::string& boundary, std::string_view body, size_t piece) {
  Recorder recorder;
  stowage::serve::MultipartLimits limits;
  limits.max_parts = 8;
  limits.max_header_bytes = 512;
  MultipartParser parser(boundary, recorder, limits);
  Outcome out;
  try {
    for (size_t at = 0; at < body.size(); at += piece) parser.feed(body.substr(at, piece));
    parser.finish();
    out.done = parser.done();
    FUZZ_CHECK(out.done, "finish() returned without the closing delimiter");
    FUZZ_CHECK(parser.parts() == recorder.begins_, "parts() counts every part");
  } catch (const stowage::Error& e) {
    out.error = e.code();
    // After a throw every call throws again.
    bool threw = false;
    try {
      parser.feed("x");
    } catch (const stowage::Error&) {
      threw = true;
    }
    FUZZ_CHECK(threw, "a failed parser must keep failing");
  }
  const std::string delimiter = "\r\n--" + boundary;
  for (const std::string& part : recorder.parts_) {
    FUZZ_CHECK(part.find(delimiter) == std::string::npos, "part data holds the delimiter");
  }
  out.log = std::move(recorder.log_);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view body = stowage::fuzz::as_text(data, size);
  const std::string_view content_type = stowage::fuzz::take_until(body, "\n");
  size_t piece = 1;
  if (!body.empty()) {
    piece = static_cast<uint8_t>(body.front()) % 17 + 1;
    body.remove_prefix(1);
  }
  std::string boundary;
  try {
    boundary = stowage::serve::multipart_boundary(content_type);
  } catch (const stowage::Error&) {
    return 0;
  }
  FUZZ_CHECK(!boundary.empty() && boundary.size() <= 70, "boundary length (RFC 2046)");

  const Outcome whole = run(boundary, body, body.size() + 1);
  const Outcome pieces = run(boundary, body, piece);
  FUZZ_CHECK(whole.error == pieces.error, "same outcome whole and in pieces");
  FUZZ_CHECK(whole.log == pieces.log, "same parts whole and in pieces");
  return 0;
}
