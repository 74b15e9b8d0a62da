#include <gtest/gtest.h>

#include "common/encoding.h"
#include "common/http_message.h"
#include "common/ip_address.h"
#include "common/metrics.h"
#include "common/result.h"
#include "common/status.h"
#include "common/time_format.h"

namespace openimds::common {
namespace {

TEST(IpAddressTest, ParsesAndCanonicalises) {
  struct Case {
    std::string in;
    bool ok;
    std::string canonical;
    bool v4;
  } cases[] = {
      {"10.0.0.5", true, "10.0.0.5", true},
      {"::1", true, "::1", false},
      {"FD00:EC2::254", true, "fd00:ec2::254", false},
      {"::ffff:10.0.0.5", true, "10.0.0.5", true},  // v4-mapped is IPv4
      {"10.0.0.256", false, "", false},
      {"10.0.0", false, "", false},
      {"", false, "", false},
      {"fe80::1%eth0", false, "", false},
      {"1.2.3.4 ", false, "", false},
  };
  for (const auto& c : cases) {
    auto ip = IpAddress::Parse(c.in);
    ASSERT_EQ(ip.has_value(), c.ok) << c.in;
    if (!c.ok) continue;
    EXPECT_EQ(ip->ToString(), c.canonical);
    EXPECT_EQ(ip->is_v4(), c.v4);
  }
  EXPECT_EQ(*IpAddress::Parse("10.0.0.5"), IpAddress::FromV4(0x0a000005));
  EXPECT_EQ(IpAddress::Parse("10.0.0.5")->Hash(), IpAddress::FromV4(0x0a000005).Hash());
}

TEST(CidrTest, ParseAndContains) {
  auto c = Cidr::Parse("10.0.0.0/24");
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->Contains(*IpAddress::Parse("10.0.0.77")));
  EXPECT_FALSE(c->Contains(*IpAddress::Parse("10.0.1.1")));
  EXPECT_FALSE(c->Contains(*IpAddress::Parse("::1")));
  EXPECT_FALSE(Cidr::Parse("10.0.0.1/24"));  // host bits set
  EXPECT_TRUE(Cidr::Parse("10.0.0.1/24", true));
  EXPECT_FALSE(Cidr::Parse("10.0.0.0/33"));
  EXPECT_FALSE(Cidr::Parse("10.0.0.0"));
  EXPECT_FALSE(Cidr::Parse("10.0.0.0/x"));
  auto v6 = Cidr::Parse("fd00::/64");
  ASSERT_TRUE(v6);
  EXPECT_TRUE(v6->Contains(*IpAddress::Parse("fd00::5")));
  EXPECT_EQ(v6->ToString(), "fd00::/64");
}

TEST(EncodingTest, Base64RoundTripsAndIsStrict) {
  for (const std::string& s : std::vector<std::string>{"", "f", "fo", "foo", "foob", "fooba", "foobar", std::string("\0\xff\x10", 3)}) {
    EXPECT_EQ(Base64Decode(Base64Encode(s)).value(), s);
    EXPECT_EQ(Base64UrlDecode(Base64UrlEncode(s)).value(), s);
  }
  EXPECT_EQ(Base64Encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(Base64Encode("fo"), "Zm8=");
  EXPECT_FALSE(Base64Decode("Zm8"));    // missing padding
  EXPECT_FALSE(Base64Decode("Zm9=v"));  // data after padding
  EXPECT_FALSE(Base64Decode("Zm!v"));
  EXPECT_FALSE(Base64Decode("Zm9="));   // non-canonical trailing bits
  EXPECT_EQ(Base64Decode("Zm9v\nYmFy").value(), "foobar");  // wrapped input
  EXPECT_EQ(Base64EncodeWrapped(std::string(100, 'a'), 76).find('\n'), 76u);
  EXPECT_EQ(HexEncode("\x01\xab"), "01ab");
}

TEST(TimeFormatTest, Rfc3339) {
  auto t = ParseRfc3339("2026-11-25T13:31:53Z");
  ASSERT_TRUE(t);
  EXPECT_EQ(FormatRfc3339(*t), "2026-11-25T13:31:53Z");
  EXPECT_EQ(FormatRfc3339(*ParseRfc3339("2026-11-25T14:31:53+01:00")), "2026-11-25T13:31:53Z");
  EXPECT_EQ(FormatRfc3339(*ParseRfc3339("2026-11-25T13:31:53.123Z")), "2026-11-25T13:31:53Z");
  for (const char* bad : {"2026-11-25 13:31:53Z", "2026-13-25T13:31:53Z", "2026-02-31T00:00:00Z",
                          "2026-11-25T13:31:53", "yesterday", "2026-11-25T13:31:53Zjunk"}) {
    EXPECT_FALSE(ParseRfc3339(bad)) << bad;
  }
  EXPECT_EQ(FormatEc2EventTime(*ParseRfc3339("2019-01-21T09:00:43Z")), "21 Jan 2019 09:00:43 GMT");
  EXPECT_EQ(FormatEc2EventTime(*ParseRfc3339("2019-01-01T09:00:43Z")), "1 Jan 2019 09:00:43 GMT");
}

// A TimePoint holds 1677-09-21T00:12:44Z .. 2262-04-11T23:47:16Z (nanoseconds
// in 64 bits). A well-formed time outside is refused, not converted with an
// overflow into some other date.
TEST(TimeFormatTest, Rfc3339OutsideTheClockIsRefused) {
  for (const char* edge : {"2262-04-11T23:47:16Z", "1677-09-21T00:12:44Z"}) {
    auto t = ParseRfc3339(edge);
    ASSERT_TRUE(t) << edge;
    EXPECT_EQ(FormatRfc3339(*t), edge);
  }
  for (const char* far : {"2262-04-11T23:47:17Z", "1677-09-21T00:12:43Z", "4052-11-30T09:00:00Z",
                          "9999-12-31T23:59:59Z", "0000-01-01T00:00:00Z",
                          "2262-04-11T23:47:16-00:01", "1677-09-21T00:12:44+00:01"}) {
    EXPECT_FALSE(ParseRfc3339(far)) << far;
  }
}

TEST(StatusTest, HttpMapping) {
  EXPECT_EQ(HttpStatusFor(Code::kOk), 200);
  EXPECT_EQ(HttpStatusFor(Code::kNotFound), 404);
  EXPECT_EQ(HttpStatusFor(Code::kConflict), 409);
  EXPECT_EQ(HttpStatusFor(Code::kFailedPrecondition), 412);
  EXPECT_EQ(HttpStatusFor(Code::kInsufficientStorage), 507);
  EXPECT_EQ(NotFound("x").ToString(), "not_found: x");
  Result<int> r = NotFound("gone");
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kNotFound);
  Result<int> bad = Status::Ok();  // a bug, but never UB
  EXPECT_EQ(bad.status().code(), Code::kInternal);
  Result<int> good = 5;
  EXPECT_EQ(*good, 5);
}

TEST(MetricsTest, CountersAndPrometheusText) {
  MetricsRegistry m;
  Counter& a = m.GetCounter("x_total", "Things.", "reason=\"a\"");
  Counter& b = m.GetCounter("x_total", "Things.", "reason=\"b\"");
  EXPECT_EQ(&a, &m.GetCounter("x_total", "Things.", "reason=\"a\""));
  a.Inc();
  a.Inc(2);
  b.Inc();
  m.AddGauge("g", "A gauge.", [] { return 4.0; });
  std::string text = m.RenderPrometheus();
  EXPECT_NE(text.find("# TYPE x_total counter\n"), std::string::npos);
  EXPECT_NE(text.find("x_total{reason=\"a\"} 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("x_total{reason=\"b\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("g 4\n"), std::string::npos);
  EXPECT_EQ(m.CounterValue("x_total", "reason=\"a\""), 3u);
  EXPECT_EQ(m.CounterValue("absent"), 0u);
}

TEST(MetricsTest, CounterFamilyRowsAreReadAtScrapeTime) {
  MetricsRegistry m;
  MetricsRegistry::Series rows;
  m.AddCounterFamily("f_total", "A bounded view.", [&rows] { return rows; });
  std::string text = m.RenderPrometheus();
  EXPECT_NE(text.find("# HELP f_total A bounded view.\n# TYPE f_total counter\n"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("f_total{"), std::string::npos) << text;
  rows = {{"instance=\"i-1\"", 7}, {"instance=\"i-2\"", 1}};
  text = m.RenderPrometheus();
  EXPECT_NE(text.find("f_total{instance=\"i-1\"} 7\nf_total{instance=\"i-2\"} 1\n"),
            std::string::npos)
      << text;
}

TEST(RequestTest, HeaderLookupIsCaseInsensitive) {
  Request r;
  std::vector<HeaderField> h{{"X-Aws-Ec2-Metadata-Token", "t1"}, {"x-forwarded-for", "1.2.3.4"}};
  r.headers = h;
  EXPECT_EQ(r.Header("x-aws-ec2-metadata-token").value(), "t1");
  EXPECT_EQ(r.HeaderCount("X-FORWARDED-FOR"), 1);
  EXPECT_FALSE(r.Header("missing"));
}

}  // namespace
}  // namespace openimds::common
