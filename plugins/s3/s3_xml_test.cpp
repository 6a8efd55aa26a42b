// The XML reader and the S3 response decoders, on documents shaped like
// those AWS S3 and moto send (the examples of the S3 API reference).
#include <doctest/doctest.h>

#include "s3_xml_internal.hpp"
#include "stowage/error.hpp"

using namespace stowage::s3;

TEST_CASE("an S3 error document") {
  auto e = parse_error(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message>"
      "<BucketName>models</BucketName><RequestId>4442587FB7D0A2F9</RequestId></Error>");
  REQUIRE(e);
  CHECK(e->code == "NoSuchBucket");
  CHECK(e->message == "The specified bucket does not exist");
  CHECK(e->request_id == "4442587FB7D0A2F9");
  CHECK_FALSE(parse_error("<html><body>Bad gateway</body></html>"));
  CHECK_FALSE(parse_error("not xml at all"));
  CHECK_FALSE(parse_error(""));
}

TEST_CASE("ListObjectsV2 with url-encoded keys, sizes, times and a continuation token") {
  const char* doc =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
      "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
      "<Name>bucket</Name><Prefix>models%2F</Prefix><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys>"
      "<EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>"
      "<Contents><Key>models/a%20b/model.json</Key><LastModified>2024-03-01T12:30:45.250Z"
      "</LastModified><ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag>"
      "<Size>1234</Size><StorageClass>STANDARD</StorageClass></Contents>"
      "<Contents><Key>models/a+b%2Bc/weights.bin</Key><LastModified>2024-03-01T12:30:45Z"
      "</LastModified><ETag>\"x\"</ETag><Size>5000000000</Size></Contents>"
      "<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>"
      "</ListBucketResult>";
  ListPage page = parse_list_objects_v2(doc, true, "test");
  REQUIRE(page.objects.size() == 2);
  CHECK(page.objects[0].key == "models/a b/model.json");
  CHECK(page.objects[0].size == 1234);
  CHECK(page.objects[0].etag == "\"9b2cf535f27731c974343645a3985328\"");
  REQUIRE(page.objects[0].last_modified);
  CHECK(std::chrono::duration_cast<std::chrono::milliseconds>(
            page.objects[0].last_modified->time_since_epoch())
            .count() == 1709296245250);
  CHECK(page.objects[1].key == "models/a b+c/weights.bin");
  CHECK(page.objects[1].size == 5000000000ull);
  CHECK(page.truncated);
  CHECK(page.next_token == "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=");

  ListPage raw = parse_list_objects_v2(doc, false, "test");
  CHECK(raw.objects[0].key == "models/a%20b/model.json");
}

TEST_CASE("an empty listing, and listings that are wrong") {
  ListPage page = parse_list_objects_v2(
      "<ListBucketResult><Name>b</Name><KeyCount>0</KeyCount><IsTruncated>false</IsTruncated>"
      "</ListBucketResult>",
      true, "test");
  CHECK(page.objects.empty());
  CHECK_FALSE(page.truncated);
  CHECK_THROWS_AS(parse_list_objects_v2("<Error><Code>X</Code></Error>", true, "test"),
                  stowage::Error);
  CHECK_THROWS_AS(
      parse_list_objects_v2("<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>",
                            true, "test"),
      stowage::Error);
  CHECK_THROWS_AS(
      parse_list_objects_v2("<ListBucketResult><Contents><Key>k</Key><Size>-1</Size></Contents>"
                            "</ListBucketResult>",
                            true, "test"),
      stowage::Error);
}

TEST_CASE("multipart documents") {
  CHECK(parse_upload_id("<?xml version=\"1.0\"?><InitiateMultipartUploadResult "
                        "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Bucket>b</Bucket>"
                        "<Key>k</Key><UploadId>VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRz"
                        "</UploadId></InitiateMultipartUploadResult>",
                        "test") == "VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRz");
  CHECK_THROWS_AS(parse_upload_id("<InitiateMultipartUploadResult/>", "test"), stowage::Error);

  auto ok = parse_etag_result(
      "<CompleteMultipartUploadResult><Location>x</"
      "Location><ETag>\"3858f62230ac3c915f300c664312c11f"
      "-9\"</ETag></CompleteMultipartUploadResult>",
      "test");
  CHECK(ok.etag == "\"3858f62230ac3c915f300c664312c11f-9\"");
  CHECK_FALSE(ok.error);
  // CompleteMultipartUpload and CopyObject can fail after sending 200.
  auto failed = parse_etag_result(
      "<Error><Code>InternalError</Code><Message>We encountered an internal error.</Message>"
      "</Error>",
      "test");
  REQUIRE(failed.error);
  CHECK(failed.error->code == "InternalError");

  auto uploads = parse_multipart_uploads(
      "<ListMultipartUploadsResult><Bucket>b</Bucket><Upload><Key>m/weights.bin</Key>"
      "<UploadId>abc</UploadId></Upload><Upload><Key>n</Key><UploadId>def</UploadId></Upload>"
      "</ListMultipartUploadsResult>",
      "test");
  REQUIRE(uploads.size() == 2);
  CHECK(uploads[1].key == "n");
  CHECK(uploads[1].upload_id == "def");

  CHECK(complete_multipart_xml({{1, "\"a\""}, {2, "\"b\""}}) ==
        "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        "<Part><PartNumber>1</PartNumber><ETag>&quot;a&quot;</ETag></Part>"
        "<Part><PartNumber>2</PartNumber><ETag>&quot;b&quot;</ETag></Part>"
        "</CompleteMultipartUpload>");
}

TEST_CASE("the reader: entities, CDATA, comments, prefixes, self-closing elements") {
  XmlElement root = parse_xml(
      "\xEF\xBB\xBF<?xml version=\"1.0\"?><!-- c --><s3:R a='1' b=\"x>y\"><A>&lt;&amp;&gt;&#65;"
      "&#x263A;</A><!-- inside --><B><![CDATA[<raw>&amp;]]></B><C/></s3:R>",
      "test");
  CHECK(root.name == "R");
  CHECK(root.child_text("A") == "<&>A\xE2\x98\xBA");
  CHECK(root.child_text("B") == "<raw>&amp;");
  REQUIRE(root.child("C") != nullptr);
  CHECK(root.child("C")->children.empty());
  CHECK(root.child("D") == nullptr);
  CHECK(root.child_text("D") == "");
}

TEST_CASE("the reader refuses what is not well-formed, and every DOCTYPE") {
  const char* bad[] = {
      "",
      "text",
      "<a>",
      "<a></b>",
      "<a><b></a></b>",
      "<a>&unknown;</a>",
      "<a>&#0;</a>",
      "<a>&#xD800;</a>",
      "<a>&amp</a>",
      "<a></a><b></b>",
      "<a x=\"1></a>",
      "<!DOCTYPE a [<!ENTITY e \"boom\">]><a>&e;</a>",
      "<a><!DOCTYPE b></a>",
      "<a><![CDATA[x</a>",
      "<a><!-- x</a>",
      "</a>",
      "<>",
  };
  for (const char* doc : bad) {
    CAPTURE(doc);
    CHECK_THROWS_AS(parse_xml(doc, "test"), stowage::Error);
  }
  std::string deep;
  for (int i = 0; i < 100; ++i) deep += "<a>";
  for (int i = 0; i < 100; ++i) deep += "</a>";
  CHECK_THROWS_AS(parse_xml(deep, "test"), stowage::Error);
  try {
    parse_xml("<a></b>", "the ListObjectsV2 response for s3://b/m/");
  } catch (const stowage::Error& e) {
    CHECK(std::string(e.what()).find("s3://b/m/") != std::string::npos);
  }
}

TEST_CASE("dates") {
  auto secs = [](auto tp) {
    return std::chrono::duration_cast<std::chrono::seconds>(tp->time_since_epoch()).count();
  };
  CHECK(secs(parse_iso8601("2015-08-30T12:36:00.000Z")) == 1440938160);
  CHECK(secs(parse_iso8601("2015-08-30T12:36:00Z")) == 1440938160);
  CHECK(secs(parse_iso8601("2015-08-30T12:36:00+00:00")) == 1440938160);
  CHECK_FALSE(parse_iso8601("yesterday"));
  CHECK_FALSE(parse_iso8601("2015-13-30T12:36:00Z"));
  // Found by fuzz/s3_xml_fuzzer: years the clock cannot hold overflowed.
  CHECK_FALSE(parse_iso8601("8465-10-12T17:50:30.123Z"));
  CHECK_FALSE(parse_iso8601("-999-10-12T17:50:30Z"));
  CHECK_FALSE(parse_http_date("Sun, 30 Aug 9999 12:36:00 GMT"));
  CHECK(secs(parse_http_date("Sun, 30 Aug 2015 12:36:00 GMT")) == 1440938160);
  CHECK_FALSE(parse_http_date("30/08/2015"));
}

TEST_CASE("percent_decode and xml_escape") {
  CHECK(percent_decode("a%20b+c%2Bd%2f", true) == "a b c+d/");
  CHECK(percent_decode("a+b", false) == "a+b");
  CHECK(percent_decode("100%", true) == "100%");
  CHECK(percent_decode("%zz%4", true) == "%zz%4");
  CHECK(xml_escape("<a & \"b\" 'c'>") == "&lt;a &amp; &quot;b&quot; &apos;c&apos;&gt;");
}
