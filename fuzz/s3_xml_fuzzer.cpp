// Fuzzes the XML of S3 responses (plugins/s3/s3_xml.cpp): the reader, every
// response decoder, the date parsers and percent-decoding run on the input.
// Checks: decoders fail only with stowage::Error, parse_error never throws,
// listed keys are what the XML says, and the text this plugin writes
// (xml_escape, complete_multipart_xml) reads back to what it escaped.
//
//   build-fuzz/bin/fuzz/s3_xml_fuzzer -dict=fuzz/dict/s3_xml.dict fuzz/corpus/s3_xml

#include <string>

#include "fuzz_util.hpp"
#include "s3_xml_internal.hpp"
#include "stowage/error.hpp"

namespace s3 = stowage::s3;

namespace {

template <typename F>
void quietly(F&& f) {
  try {
    f();
  } catch (const stowage::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text = stowage::fuzz::as_text(data, size);

  (void)s3::parse_error(text);  // documented never to throw
  quietly([&] {
    const s3::XmlElement root = s3::parse_xml(text, "fuzz");
    FUZZ_CHECK(!root.name.empty(), "the root element has a name");
  });
  for (bool url_encoded : {false, true}) {
    quietly([&] {
      const s3::ListPage page = s3::parse_list_objects_v2(text, url_encoded, "fuzz");
      if (!url_encoded) {
        const s3::XmlElement root = s3::parse_xml(text, "fuzz");
        size_t contents = 0;
        for (const auto& c : root.children) contents += c.name == "Contents";
        FUZZ_CHECK(page.objects.size() == contents, "one object per <Contents>");
      }
    });
  }
  quietly([&] { (void)s3::parse_upload_id(text, "fuzz"); });
  quietly([&] { (void)s3::parse_multipart_uploads(text, "fuzz"); });
  quietly([&] {
    const s3::ResultOrError r = s3::parse_etag_result(text, "fuzz");
    FUZZ_CHECK(r.error.has_value() == s3::parse_error(text).has_value(),
               "an <Error> after 200 comes back as the error");
  });
  (void)s3::parse_iso8601(text);
  (void)s3::parse_http_date(text);
  const std::string decoded = s3::percent_decode(text, true);
  FUZZ_CHECK(decoded.size() <= text.size(), "percent-decoding never grows");

  // What the plugin writes must read back: escaped text, and the
  // CompleteMultipartUpload document with the input as ETags.
  const std::string doc = "<Key>" + s3::xml_escape(text) + "</Key>";
  s3::XmlElement key;
  try {
    key = s3::parse_xml(doc, "escaped");
  } catch (const stowage::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    FUZZ_CHECK(false, "escaped text must parse");
  }
  FUZZ_CHECK(key.text == text && key.children.empty(), "xml_escape round-trips");

  std::vector<std::pair<int, std::string>> parts;
  std::string_view rest = text;
  for (int n = 1; !rest.empty() && n <= 8; ++n) {
    parts.emplace_back(n, std::string(stowage::fuzz::take_until(rest, "\n")));
  }
  const s3::XmlElement complete = s3::parse_xml(s3::complete_multipart_xml(parts), "complete");
  FUZZ_CHECK(complete.children.size() == parts.size(), "one <Part> per part");
  for (size_t i = 0; i < parts.size(); ++i) {
    FUZZ_CHECK(complete.children[i].child_text("PartNumber") == std::to_string(parts[i].first),
               "part numbers round-trip");
    FUZZ_CHECK(complete.children[i].child_text("ETag") == parts[i].second, "ETags round-trip");
  }
  return 0;
}
