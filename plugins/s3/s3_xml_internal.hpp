// The XML of S3 responses: a small reader (elements and text only) and the
// decoders of the few documents this plugin reads — Error,
// ListBucketResult (ListObjectsV2), InitiateMultipartUploadResult,
// CompleteMultipartUploadResult, CopyObjectResult, ListMultipartUploadsResult
// — plus the one document it writes, CompleteMultipartUpload.
//
// The reader refuses DOCTYPE declarations (no entity expansion, no external
// entities), nests at most 64 deep and knows only the five predefined
// entities and numeric character references. Attributes and namespace
// prefixes are dropped: S3 documents carry their data in element text.
//
// Thread-safety: stateless functions. Ownership: plain values.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace stowage::s3 {

struct XmlElement {
  std::string name;  // local name, without a namespace prefix
  std::string text;  // the concatenated character data directly inside
  std::vector<XmlElement> children;

  // The first child called name, or nullptr.
  const XmlElement* child(std::string_view name) const;
  // The text of the first child called name; "" when there is none.
  std::string child_text(std::string_view name) const;
};

// Parses one document. Throws Error(kInternal) naming `what` (e.g. "the
// ListObjectsV2 response for s3://bucket/models/") when the text is not
// well-formed or uses a DOCTYPE.
XmlElement parse_xml(std::string_view text, std::string_view what);

// The <Error> document S3 sends with a failed request.
struct S3Error {
  std::string code;  // "NoSuchBucket", "SignatureDoesNotMatch", ...
  std::string message;
  std::string request_id;
  std::string region;  // <Region>, sent with some redirects and region errors
};
// nullopt unless text is a well-formed <Error> document; never throws.
std::optional<S3Error> parse_error(std::string_view text);

struct ListedObject {
  std::string key;
  uint64_t size = 0;
  std::optional<std::chrono::system_clock::time_point> last_modified;
  std::string etag;
};

struct ListPage {
  std::vector<ListedObject> objects;
  bool truncated = false;
  std::string next_token;  // NextContinuationToken
};
// A ListBucketResult of ListObjectsV2. With url_encoded (the request said
// encoding-type=url), keys are percent-decoded, '+' read as a space.
// Throws Error(kInternal) naming `what` for a document of another kind.
ListPage parse_list_objects_v2(std::string_view text, bool url_encoded, std::string_view what);

// UploadId of an InitiateMultipartUploadResult.
std::string parse_upload_id(std::string_view text, std::string_view what);

struct PendingUpload {
  std::string key;
  std::string upload_id;
};
// Uploads of a ListMultipartUploadsResult (one page).
std::vector<PendingUpload> parse_multipart_uploads(std::string_view text, std::string_view what);

// The ETag of a CompleteMultipartUploadResult or CopyObjectResult. These two
// may fail after a 200 status with an <Error> body; that comes back as the
// error instead.
struct ResultOrError {
  std::string etag;
  std::optional<S3Error> error;
};
ResultOrError parse_etag_result(std::string_view text, std::string_view what);

// <CompleteMultipartUpload> with one <Part> per (part number, ETag), in order.
std::string complete_multipart_xml(const std::vector<std::pair<int, std::string>>& parts);

// "2009-10-12T17:50:30.000Z" (ISO 8601, UTC); nullopt when malformed.
std::optional<std::chrono::system_clock::time_point> parse_iso8601(std::string_view text);
// "Wed, 12 Oct 2009 17:50:00 GMT" (the Last-Modified header); nullopt when malformed.
std::optional<std::chrono::system_clock::time_point> parse_http_date(std::string_view text);

// Percent-decoding; with plus_is_space, '+' is a space (S3's encoding-type=url).
std::string percent_decode(std::string_view text, bool plus_is_space);

// Text escaped for element content.
std::string xml_escape(std::string_view text);

}  // namespace stowage::s3
