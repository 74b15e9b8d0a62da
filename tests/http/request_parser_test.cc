// The request parser without sockets: what it accepts, and for everything it
// refuses the status and the reason (the guest listeners of `serve` and the
// proxy answer with exactly these).
#include "http/request_parser.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

namespace openimds::http {
namespace {

// Small limits, so that the cases stay readable.
constexpr RequestLimits kLimits{/*max_header_bytes=*/256, /*max_body_bytes=*/16};

struct Parsed {
  ParseOutcome outcome;
  ParsedRequest request;
};

Parsed Parse(std::string_view bytes, const RequestLimits& limits = kLimits) {
  Parsed p;
  p.outcome = ParseRequest(bytes, limits, p.request);
  return p;
}

std::string HeaderValue(const ParsedRequest& r, std::string_view name) {
  std::string_view v;
  return r.Find(name, v) ? std::string(v) : std::string("<none>");
}

TEST(RequestParser, ParsesARequestAndStopsAtItsEnd) {
  const std::string first =
      "GET /latest/meta-data/?x=1 HTTP/1.1\r\nHost: 169.254.169.254\r\n"
      "X-aws-ec2-metadata-token: abc\r\nExpect: 100-continue\r\n\r\n";
  const Parsed p = Parse(first + "GET /next HTTP/1.1\r\n\r\n");
  ASSERT_EQ(p.outcome.kind, ParseOutcome::Kind::kRequest) << p.outcome.message;
  EXPECT_EQ(p.outcome.consumed, first.size());  // the pipelined next request is left
  EXPECT_TRUE(p.outcome.keep_alive);
  EXPECT_EQ(p.request.View(p.request.method), "GET");
  EXPECT_EQ(p.request.View(p.request.target), "/latest/meta-data/?x=1");
  EXPECT_EQ(p.request.version, 11);
  ASSERT_EQ(p.request.fields.size(), 3u);
  EXPECT_EQ(p.request.View(p.request.fields[1].first), "X-aws-ec2-metadata-token");
  EXPECT_EQ(HeaderValue(p.request, "x-AWS-ec2-metadata-token"), "abc");
  EXPECT_EQ(p.request.Count("host"), 1);
  EXPECT_TRUE(p.request.expect_continue);
  EXPECT_TRUE(p.request.body.empty());
}

TEST(RequestParser, ReadsBodiesByLengthAndByChunks) {
  const Parsed sized = Parse("PUT /t HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello");
  ASSERT_EQ(sized.outcome.kind, ParseOutcome::Kind::kRequest) << sized.outcome.message;
  EXPECT_EQ(sized.request.body, "hello");
  const Parsed chunked = Parse(
      "POST /t HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3;ext=1\r\nhel\r\n2\r\nlo\r\n0\r\nX-Trailer: t\r\n\r\n");
  ASSERT_EQ(chunked.outcome.kind, ParseOutcome::Kind::kRequest) << chunked.outcome.message;
  EXPECT_EQ(chunked.request.body, "hello");
}

TEST(RequestParser, HttpTenClosesUnlessItAsksForKeepAlive) {
  EXPECT_FALSE(Parse("GET / HTTP/1.0\r\n\r\n").outcome.keep_alive);
  EXPECT_TRUE(Parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").outcome.keep_alive);
  EXPECT_FALSE(Parse("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").outcome.keep_alive);
}

// Fed one byte at a time, as a slow client sends it, the result is the same.
TEST(RequestParser, AByteAtATimeGivesTheSameRequest) {
  const std::string bytes =
      "POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
      "4\r\nbody\r\n0\r\n\r\n";
  ParsedRequest out;
  RequestParser parser(out, kLimits);
  std::string held;  // what a session's buffer holds unparsed
  for (char c : bytes) {
    held += c;
    const size_t n = parser.Feed(held);
    held.erase(0, n);
    ASSERT_FALSE(parser.refused()) << parser.message();
    if (parser.done()) break;
  }
  ASSERT_TRUE(parser.done());
  EXPECT_TRUE(held.empty());
  EXPECT_EQ(out.View(out.target), "/a");
  EXPECT_EQ(out.body, "body");
}

TEST(RequestParser, TheBytesEndingInsideARequestAreIncomplete) {
  EXPECT_EQ(Parse("GET / HTTP/1.1\r\nHost: h\r\n").outcome.kind,
            ParseOutcome::Kind::kIncomplete);
  EXPECT_EQ(Parse("PUT / HTTP/1.1\r\nContent-Length: 4\r\n\r\nab").outcome.kind,
            ParseOutcome::Kind::kIncomplete);
  EXPECT_EQ(Parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n")
                .outcome.kind,
            ParseOutcome::Kind::kIncomplete);
}

// Every refusal: status, reason and the sentence the answer and the log
// line carry.
struct RefusalCase {
  const char* name;
  std::string bytes;
  RequestLimits limits;
  RequestError error;
  int status;
  const char* message;
};

std::string Repeat(char c, size_t n) { return std::string(n, c); }

const std::string kChunkedHead = "POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";

class RefusalTest : public ::testing::TestWithParam<RefusalCase> {};

TEST_P(RefusalTest, StatusAndReason) {
  const RefusalCase& c = GetParam();
  const Parsed p = Parse(c.bytes, c.limits);
  ASSERT_EQ(p.outcome.kind, ParseOutcome::Kind::kRefused)
      << "accepted or incomplete: " << static_cast<int>(p.outcome.kind);
  EXPECT_EQ(p.outcome.error, c.error) << p.outcome.message;
  EXPECT_EQ(p.outcome.status, c.status);
  EXPECT_EQ(p.outcome.status, StatusFor(c.error));
  EXPECT_EQ(p.outcome.message, c.message);
}

INSTANTIATE_TEST_SUITE_P(
    Limits, RefusalTest,
    ::testing::Values(
        // Request line and headers past the header limit: 431, whether the
        // end of the header is in sight or not.
        RefusalCase{"header_over_limit",
                    "GET / HTTP/1.1\r\nX-Pad: " + Repeat('a', 300) + "\r\n\r\n", kLimits,
                    RequestError::kHeaderTooLarge, 431, "request header larger than 256 bytes"},
        RefusalCase{"endless_header", "GET / HTTP/1.1\r\nX-Pad: " + Repeat('a', 1000), kLimits,
                    RequestError::kHeaderTooLarge, 431, "request header larger than 256 bytes"},
        RefusalCase{"endless_request_line", "GET /" + Repeat('a', 1000), kLimits,
                    RequestError::kHeaderTooLarge, 431, "request header larger than 256 bytes"},
        // Chunk extensions and trailers, which Beast does not bound, are held
        // to the header limit: one extension that never ends, many that add
        // up, and a trailer that never ends.
        RefusalCase{"endless_chunk_extension", kChunkedHead + "1;name=" + Repeat('b', 1000),
                    kLimits, RequestError::kFramingTooLarge, 431,
                    "chunk extensions or trailers larger than 256 bytes"},
        RefusalCase{"chunk_extensions_adding_up",
                    kChunkedHead + "1;" + Repeat('e', 100) + "\r\nx\r\n1;" + Repeat('e', 100) +
                        "\r\nx\r\n1;" + Repeat('e', 100) + "\r\nx\r\n",
                    RequestLimits{256, 1024}, RequestError::kFramingTooLarge, 431,
                    "chunk extensions or trailers larger than 256 bytes"},
        RefusalCase{"endless_trailer", kChunkedHead + "0\r\nX-Trailer: " + Repeat('a', 1000),
                    kLimits, RequestError::kFramingTooLarge, 431,
                    "chunk extensions or trailers larger than 256 bytes"},
        // Body over the limit: announced (refused on the header, before a
        // byte of it arrives) or chunked.
        RefusalCase{"announced_body_over_limit",
                    "PUT /p HTTP/1.1\r\nContent-Length: 17\r\n\r\n", kLimits,
                    RequestError::kBodyTooLarge, 413, "request body larger than 16 bytes"},
        RefusalCase{"huge_announced_body",
                    "PUT /p HTTP/1.1\r\nContent-Length: 99999999999999\r\n\r\n", kLimits,
                    RequestError::kBodyTooLarge, 413, "request body larger than 16 bytes"},
        RefusalCase{"chunked_body_over_limit",
                    kChunkedHead + "a\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n", kLimits,
                    RequestError::kBodyTooLarge, 413, "request body larger than 16 bytes"},
        // A listener or route that takes no body (body limit 0) refuses any.
        RefusalCase{"body_where_none_is_taken",
                    "GET /latest/meta-data/ HTTP/1.1\r\nContent-Length: 1\r\n\r\nx",
                    RequestLimits{256, 0}, RequestError::kBodyTooLarge, 413,
                    "request body larger than 0 bytes"},
        RefusalCase{"chunk_where_none_is_taken", kChunkedHead + "1\r\nx\r\n0\r\n\r\n",
                    RequestLimits{256, 0}, RequestError::kBodyTooLarge, 413,
                    "request body larger than 0 bytes"}),
    [](const auto& info) { return std::string(info.param.name); });

INSTANTIATE_TEST_SUITE_P(
    Smuggling, RefusalTest,
    ::testing::Values(
        // Content-Length and Transfer-Encoding together, either order: a
        // server and a proxy that picked different ones would frame one
        // body two ways.
        RefusalCase{"length_then_chunked",
                    "POST /p HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "0\r\n\r\n",
                    kLimits, RequestError::kBadTransferEncoding, 400,
                    "unsupported Transfer-Encoding (only \"chunked\" is accepted)"},
        RefusalCase{"chunked_then_length",
                    "POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n"
                    "0\r\n\r\n",
                    kLimits, RequestError::kMalformed, 400, "bad request: bad Content-Length"},
        // Two Content-Lengths that disagree; a list that disagrees.
        RefusalCase{"duplicate_content_length",
                    "POST /p HTTP/1.1\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
                    kLimits, RequestError::kMalformed, 400, "bad request: multiple Content-Length"},
        RefusalCase{"content_length_list",
                    "POST /p HTTP/1.1\r\nContent-Length: 4, 5\r\n\r\nabcde", kLimits,
                    RequestError::kMalformed, 400, "bad request: multiple Content-Length"},
        RefusalCase{"content_length_not_a_number",
                    "POST /p HTTP/1.1\r\nContent-Length: +4\r\n\r\nabcd", kLimits,
                    RequestError::kMalformed, 400, "bad request: bad Content-Length"},
        // Only one plain "chunked": no second header, no other coding, no
        // look-alike.
        RefusalCase{"two_transfer_encodings",
                    "POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
                    "chunked\r\n\r\n0\r\n\r\n",
                    kLimits, RequestError::kBadTransferEncoding, 400,
                    "unsupported Transfer-Encoding (only \"chunked\" is accepted)"},
        RefusalCase{"identity_then_chunked_headers",
                    "POST /p HTTP/1.1\r\nTransfer-Encoding: identity\r\nTransfer-Encoding: "
                    "chunked\r\n\r\n0\r\n\r\n",
                    kLimits, RequestError::kBadTransferEncoding, 400,
                    "unsupported Transfer-Encoding (only \"chunked\" is accepted)"},
        RefusalCase{"gzip_chunked", "POST /p HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                    kLimits, RequestError::kBadTransferEncoding, 400,
                    "unsupported Transfer-Encoding (only \"chunked\" is accepted)"},
        RefusalCase{"chunked_identity",
                    "POST /p HTTP/1.1\r\nTransfer-Encoding: chunked, identity\r\n\r\n", kLimits,
                    RequestError::kBadTransferEncoding, 400,
                    "unsupported Transfer-Encoding (only \"chunked\" is accepted)"},
        RefusalCase{"xchunked", "POST /p HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n",
                    kLimits, RequestError::kBadTransferEncoding, 400,
                    "unsupported Transfer-Encoding (only \"chunked\" is accepted)"},
        // Line endings and chunk framing a lenient parser would guess at.
        RefusalCase{"bare_lf_line_ending", "GET / HTTP/1.1\nHost: h\n\n", kLimits,
                    RequestError::kMalformed, 400, "bad request: bad version"},
        RefusalCase{"space_before_colon", "GET / HTTP/1.1\r\nHost : h\r\n\r\n", kLimits,
                    RequestError::kMalformed, 400, "bad request: bad field"},
        // obs-fold where there is no field to continue: the first header line
        // starts with a space.
        RefusalCase{"fold_before_any_field", "GET / HTTP/1.1\r\n X-A: one\r\n\r\n", kLimits,
                    RequestError::kMalformed, 400, "bad request: bad field"},
        RefusalCase{"bad_chunk_size", kChunkedHead + "zz\r\nab\r\n0\r\n\r\n", kLimits,
                    RequestError::kMalformed, 400, "bad request: bad chunk"},
        RefusalCase{"chunk_longer_than_its_size", kChunkedHead + "1\r\nab\r\n0\r\n\r\n",
                    kLimits, RequestError::kMalformed, 400, "bad request: bad chunk"}),
    [](const auto& info) { return std::string(info.param.name); });

// The same Content-Length twice is one length (RFC 9110 8.6), not a conflict.
TEST(RequestParser, RepeatedEqualContentLengthIsOneLength) {
  const Parsed p = Parse("PUT /p HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc");
  ASSERT_EQ(p.outcome.kind, ParseOutcome::Kind::kRequest) << p.outcome.message;
  EXPECT_EQ(p.request.body, "abc");
}

// "chunked" in any case and with spaces around it is the one coding taken.
TEST(RequestParser, ChunkedInAnyCaseIsAccepted) {
  const Parsed p =
      Parse("POST /p HTTP/1.1\r\nTransfer-Encoding:  ChUnKeD \r\n\r\n1\r\nx\r\n0\r\n\r\n");
  ASSERT_EQ(p.outcome.kind, ParseOutcome::Kind::kRequest) << p.outcome.message;
  EXPECT_EQ(p.request.body, "x");
}

// A body limit of 0 still takes requests that carry none.
TEST(RequestParser, NoBodyLimitTakesEmptyBodies) {
  const RequestLimits none{256, 0};
  for (const std::string& bytes :
       {std::string("GET / HTTP/1.1\r\n\r\n"),
        std::string("PUT / HTTP/1.1\r\nContent-Length: 0\r\n\r\n"), kChunkedHead + "0\r\n\r\n"}) {
    const Parsed p = Parse(bytes, none);
    EXPECT_EQ(p.outcome.kind, ParseOutcome::Kind::kRequest) << bytes << ": " << p.outcome.message;
  }
}

// obs-fold (a header line continued on the next, RFC 9112 5.2): the fold
// becomes a space, the value is one, and every user of the parser (server
// and proxy) sees the same value; nothing of the next line becomes a header.
TEST(RequestParser, ObsFoldIsJoinedIntoOneValue) {
  const Parsed p = Parse("GET / HTTP/1.1\r\nX-A: one\r\n two\r\nX-B: b\r\n\r\n");
  ASSERT_EQ(p.outcome.kind, ParseOutcome::Kind::kRequest) << p.outcome.message;
  ASSERT_EQ(p.request.fields.size(), 2u);
  EXPECT_EQ(HeaderValue(p.request, "X-A"), "one two");
  EXPECT_EQ(HeaderValue(p.request, "X-B"), "b");
}

// A folded Transfer-Encoding is framed as chunked by both, never as a body
// of unknown length.
TEST(RequestParser, ObsFoldedTransferEncodingIsStillOneChunkedCoding) {
  const Parsed p =
      Parse("POST /p HTTP/1.1\r\nTransfer-Encoding:\r\n chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n");
  ASSERT_EQ(p.outcome.kind, ParseOutcome::Kind::kRequest) << p.outcome.message;
  EXPECT_EQ(p.request.body, "x");
}

// A refused HEAD is answered without a body: the method is known from the
// parsed request line, or, for a request line that never completed, from
// the bytes.
TEST(RequestParser, IsHeadRequestReadsTheMethodEvenWhenTheRequestLineNeverParsed) {
  for (const std::string& bytes : {"HEAD / HTTP/1.1\r\nX-Pad: " + Repeat('a', 1000),
                                   "HEAD /" + Repeat('a', 1000)}) {
    ParsedRequest out;
    RequestParser parser(out, kLimits);
    const size_t n = parser.Feed(bytes);
    ASSERT_TRUE(parser.refused());
    EXPECT_EQ(parser.status(), 431);
    EXPECT_TRUE(IsHeadRequest(out, std::string_view(bytes).substr(n))) << bytes.substr(0, 30);
  }

  const Parsed body = Parse("HEAD / HTTP/1.1\r\nContent-Length: 99\r\n\r\n");
  ASSERT_EQ(body.outcome.kind, ParseOutcome::Kind::kRefused);
  EXPECT_TRUE(IsHeadRequest(body.request, ""));
  const Parsed get = Parse("GET / HTTP/1.1\r\nContent-Length: 99\r\n\r\n");
  EXPECT_FALSE(IsHeadRequest(get.request, ""));
}

// A connection's ParsedRequest is reused: a new parser starts it afresh.
TEST(RequestParser, ANewParserClearsTheLastRequest) {
  ParsedRequest out;
  ASSERT_EQ(ParseRequest("PUT /a HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nab",
                         kLimits, out)
                .kind,
            ParseOutcome::Kind::kRequest);
  ASSERT_EQ(ParseRequest("GET /b HTTP/1.1\r\n\r\n", kLimits, out).kind,
            ParseOutcome::Kind::kRequest);
  EXPECT_EQ(out.View(out.target), "/b");
  EXPECT_EQ(out.fields.size(), 0u);
  EXPECT_TRUE(out.body.empty());
  EXPECT_FALSE(out.expect_continue);

  // Nothing of the last request is left to be mistaken for this one's: a
  // HEAD refused on its request line is still seen as a HEAD.
  const std::string head = "HEAD /" + Repeat('a', 1000);
  RequestParser parser(out, kLimits);
  const size_t n = parser.Feed(head);
  ASSERT_TRUE(parser.refused());
  EXPECT_EQ(out.method.length, 0u);
  EXPECT_EQ(out.target.length, 0u);
  EXPECT_TRUE(IsHeadRequest(out, std::string_view(head).substr(n)));
}

}  // namespace
}  // namespace openimds::http
