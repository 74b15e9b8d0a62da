#include "model/instance_json.h"

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <boost/json.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/encoding.h"
#include "common/time_format.h"

namespace openimds::model {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

TimePoint At(std::string_view rfc3339) { return *common::ParseRfc3339(rfc3339); }

// A record with every field set.
Instance Rich() {
  Instance in;
  in.id = "i-0123456789abcdef0";
  in.network = "tenant-a";
  in.name = "demo";
  in.hostname = "ip-10-0-0-5.ec2.internal";
  in.local_hostname = "ip-10-0-0-5.ec2.internal";
  in.public_hostname = "ec2-203-0-113-25.compute-1.amazonaws.com";
  in.account_id = "123456789012";
  in.image_id = "ami-0abcdef1234567890";
  in.instance_type = "t3.micro";
  in.kernel_id = "aki-1";
  in.ramdisk_id = "ari-1";
  in.launch_index = 3;
  in.reservation_id = "r-0123456789abcdef0";
  in.region = "us-east-1";
  in.availability_zone = "us-east-1a";
  in.availability_zone_id = "use1-az4";
  in.architecture = "arm64";
  in.launch_time = At("2026-11-25T13:00:00Z");
  Nic a;
  a.mac = "02:00:00:00:00:01";
  a.device_number = 0;
  a.network_card_index = 0;
  a.interface_id = "eni-1";
  a.owner_id = "123456789012";
  a.local_hostname = "ip-10-0-0-5.ec2.internal";
  a.public_hostname = "ec2-203-0-113-25.compute-1.amazonaws.com";
  a.private_ipv4s = {"10.0.0.5", "10.0.0.6"};
  a.public_ipv4s = {"203.0.113.25"};
  a.ipv6s = {"2001:db8::5"};
  a.subnet_id = "subnet-1";
  a.subnet_ipv4_cidr = "10.0.0.0/24";
  a.subnet_ipv6_cidrs = {"2001:db8::/64"};
  a.vpc_id = "vpc-1";
  a.vpc_ipv4_cidr = "10.0.0.0/16";
  a.vpc_ipv4_cidrs = {"10.0.0.0/16", "100.64.0.0/16"};
  a.vpc_ipv6_cidrs = {"2001:db8::/56"};
  a.security_groups = {"default", "web"};
  a.security_group_ids = {"sg-1", "sg-2"};
  Nic b;
  b.mac = "02:00:00:00:00:02";
  b.device_number = 1;
  b.network_card_index = 1;
  b.private_ipv4s = {"10.0.1.7"};
  b.subnet_ipv4_cidr = "10.0.1.0/24";
  in.nics = {a, b};
  in.ssh_keys = {{"demo", "ssh-ed25519 AAAAC3Nza demo"}, {"ops", "ssh-rsa AAAAB3Nza ops"}};
  in.user_data = std::string("#!/bin/sh\n\0\xff binary\n", 20);
  in.tags = {{"Name", "demo"}, {"team", "platform"}, {"cost:centre", "42"}};
  Credentials c;
  c.access_key_id = "ASIAABCDEFGHIJKLMNOP";
  c.secret_access_key = "wJalrXUtnFEMI/K7MDENG";
  c.token = "IQoJb3JpZ2luX2Vj";
  c.expiration = At("2026-11-25T19:00:00Z");
  c.last_updated = At("2026-11-25T13:00:00Z");
  in.iam = IamRole{"demo-role", "arn:aws:iam::123456789012:instance-profile/demo",
                   "AIPAABCDEFGHIJKLMNOPQ", c};
  in.block_devices = {{"ami", "/dev/xvda"}, {"root", "/dev/xvda"}, {"ebs1", "sdb"}};
  in.options.http_tokens = MetadataOptions::HttpTokens::kRequired;
  in.options.http_endpoint_enabled = false;
  in.options.hop_limit = 64;
  in.options.tags_enabled = true;
  in.limits.mut().requests_per_second = 20;
  in.limits.mut().max_in_flight = 0;  // 0 (no limit) is set, not absent
  return in;
}

Instance Minimal() {
  Instance in;
  in.id = "i-1";
  in.network = "default";
  return in;
}

// IPv6 only, several NICs, empty-but-present user_data, role without credentials.
Instance Ipv6Only() {
  Instance in = Minimal();
  in.id = "0b7e2b4c-1f2a-4c3d-9e8f-0123456789ab";
  in.network = "v6.net_1";
  for (int i = 0; i < 4; ++i) {
    Nic nic;
    nic.mac = "0a:bc:de:f0:00:0" + std::to_string(i);
    nic.device_number = i * 2;
    nic.ipv6s = {"fd00::" + std::to_string(i + 1)};
    nic.subnet_ipv6_cidrs = {"fd00::/64"};
    in.nics.push_back(nic);
  }
  in.user_data = "";
  in.iam = IamRole{"r", "", "", std::nullopt};
  in.tags = {{"with space", "tags disabled, so any key"}, {"a/b~c", ""}};
  in.architecture = "";
  return in;
}

class RoundTripTest : public ::testing::TestWithParam<Instance> {};

TEST_P(RoundTripTest, FromJsonInvertsToJson) {
  const Instance& in = GetParam();
  ASSERT_TRUE(Validate(in).ok()) << Validate(in).ToString();
  auto back = FromJson(ToJson(in));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, in);
  auto back_text = FromJsonText(ToJsonText(in));
  ASSERT_TRUE(back_text.ok()) << back_text.status().ToString();
  EXPECT_EQ(*back_text, in);
  // And the text is stable: writing what was read gives the same bytes.
  EXPECT_EQ(ToJsonText(*back_text), ToJsonText(in));
}

INSTANTIATE_TEST_SUITE_P(Instances, RoundTripTest,
                         ::testing::Values(Rich(), Minimal(), Ipv6Only()));

TEST(InstanceJsonTest, MinimalRecordGetsDefaults) {
  auto in = FromJsonText(R"({"id":"i-1"})");
  ASSERT_TRUE(in.ok()) << in.status().ToString();
  EXPECT_EQ(in->id, "i-1");
  EXPECT_EQ(in->network, "default");
  EXPECT_EQ(in->architecture, "x86_64");
  EXPECT_EQ(in->options, MetadataOptions{});
  EXPECT_FALSE(in->user_data.has_value());
  EXPECT_FALSE(in->iam.has_value());
  EXPECT_EQ(in->launch_time, TimePoint{});
}

TEST(InstanceJsonTest, ToJsonOmitsEmptyFields) {
  boost::json::value v = ToJson(Minimal());
  std::vector<std::string> keys;
  for (const auto& m : v.as_object()) keys.emplace_back(m.key());
  EXPECT_THAT(keys,
              ElementsAre("id", "network", "launch_index", "architecture", "metadata_options"));

  Instance with_nic = Minimal();
  Nic nic;
  nic.mac = "02:00:00:00:00:01";
  with_nic.nics = {nic};
  boost::json::value n = ToJson(with_nic);
  keys.clear();
  for (const auto& m : n.at("nics").at(0).as_object()) keys.emplace_back(m.key());
  EXPECT_THAT(keys, ElementsAre("mac", "device_number", "network_card_index"));
}

TEST(InstanceJsonTest, WritesTheDocumentedNames) {
  boost::json::value v = ToJson(Rich());
  EXPECT_EQ(v.at("launch_time").as_string(), "2026-11-25T13:00:00Z");
  EXPECT_EQ(v.at("iam").at("role").as_string(), "demo-role");
  EXPECT_EQ(v.at("iam").at("credentials").at("expiration").as_string(), "2026-11-25T19:00:00Z");
  EXPECT_EQ(v.at("metadata_options").at("http_tokens").as_string(), "required");
  EXPECT_EQ(v.at("metadata_options").at("http_endpoint").as_string(), "disabled");
  EXPECT_EQ(v.at("metadata_options").at("hop_limit").as_int64(), 64);
  EXPECT_EQ(v.at("metadata_options").at("instance_metadata_tags").as_string(), "enabled");
  EXPECT_EQ(common::Base64Decode(v.at("user_data").as_string()), Rich().user_data);
  EXPECT_EQ(v.at("nics").at(0).at("private_ipv4s").at(1).as_string(), "10.0.0.6");
}

TEST(InstanceJsonTest, DocumentedExampleParses) {
  std::ifstream file(std::string(OPENIMDS_DOCS_DIR) + "/instance.md");
  ASSERT_TRUE(file) << "docs/instance.md not found";
  std::stringstream ss;
  ss << file.rdbuf();
  const std::string doc = ss.str();
  const size_t start = doc.find("```json\n");
  ASSERT_NE(start, std::string::npos);
  const size_t end = doc.find("```", start + 8);
  ASSERT_NE(end, std::string::npos);
  auto in = FromJsonText(std::string_view(doc).substr(start + 8, end - start - 8));
  ASSERT_TRUE(in.ok()) << in.status().ToString();
  EXPECT_EQ(in->id, "i-0123456789abcdef0");
  EXPECT_EQ(in->user_data, "#cloud-config\nhostname: demo\n");
  EXPECT_THAT(CallerAddresses(*in), ElementsAre("10.0.0.5", "10.0.0.6", "2001:db8::5"));
  ASSERT_TRUE(in->iam && in->iam->credentials);
  EXPECT_EQ(in->iam->credentials->expiration, At("2026-11-25T19:00:00Z"));
}

struct ErrorCase {
  const char* json;
  const char* message;  // the message must start with this
};

void PrintTo(const ErrorCase& c, std::ostream* os) { *os << c.json; }

class FromJsonErrorTest : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(FromJsonErrorTest, NamesThePointer) {
  auto in = FromJsonText(GetParam().json);
  ASSERT_FALSE(in.ok()) << GetParam().json;
  EXPECT_EQ(in.status().code(), common::Code::kInvalidArgument);
  EXPECT_THAT(in.status().message(), StartsWith(GetParam().message)) << GetParam().json;
}

// A long string for length limits.
std::string Repeat(std::string_view s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

const std::string kId129 = R"({"id":")" + Repeat("a", 129) + R"("})";

INSTANTIATE_TEST_SUITE_P(
    Cases, FromJsonErrorTest,
    ::testing::Values(
        // Shape and types.
        ErrorCase{R"([])", "/: expected object"}, ErrorCase{R"("i-1")", "/: expected object"},
        ErrorCase{R"({"network":"default"})", "/id: required"},
        ErrorCase{R"({"id":"i-1","colour":"red"})", "/colour: unknown field"},
        ErrorCase{R"({"id":"i-1","nics":[{"mac":"02:00:00:00:00:01","colour":1}]})",
                  "/nics/0/colour: unknown field"},
        ErrorCase{R"({"id":"i-1","ssh_keys":[{"name":"a","key":"k","type":"rsa"}]})",
                  "/ssh_keys/0/type: unknown field"},
        ErrorCase{R"({"id":"i-1","iam":{"role":"r","credentials":{"colour":"x"}}})",
                  "/iam/credentials/colour: unknown field"},
        ErrorCase{R"({"id":"i-1","metadata_options":{"hop":1}})",
                  "/metadata_options/hop: unknown field"},
        ErrorCase{R"({"id":1})", "/id: expected string"},
        ErrorCase{R"({"id":"i-1","name":null})", "/name: expected string"},
        ErrorCase{R"({"id":"i-1","launch_index":"1"})", "/launch_index: expected integer"},
        ErrorCase{R"({"id":"i-1","launch_index":1.5})", "/launch_index: expected integer"},
        ErrorCase{R"({"id":"i-1","launch_index":99999999999})", "/launch_index: out of range"},
        ErrorCase{R"({"id":"i-1","launch_index":18446744073709551615})",
                  "/launch_index: out of range"},
        ErrorCase{R"({"id":"i-1","nics":{}})", "/nics: expected array"},
        ErrorCase{R"({"id":"i-1","nics":["eth0"]})", "/nics/0: expected object"},
        ErrorCase{R"({"id":"i-1","nics":[{"mac":"02:00:00:00:00:01","private_ipv4s":"10.0.0.5"}]})",
                  "/nics/0/private_ipv4s: expected array"},
        ErrorCase{
            R"({"id":"i-1","nics":[{"mac":"02:00:00:00:00:01","private_ipv4s":["10.0.0.5",7]}]})",
            "/nics/0/private_ipv4s/1: expected string"},
        ErrorCase{R"({"id":"i-1","tags":{"Name":1}})", "/tags/Name: expected string"},
        ErrorCase{R"({"id":"i-1","tags":{"a/b":1}})", "/tags/a~1b: expected string"},
        ErrorCase{R"({"id":"i-1","iam":"demo-role"})", "/iam: expected object"},
        ErrorCase{R"({"id":"i-1","metadata_options":{"http_tokens":"maybe"}})",
                  "/metadata_options/http_tokens: expected \"required\" or \"optional\""},
        ErrorCase{R"({"id":"i-1","metadata_options":{"instance_metadata_tags":true}})",
                  "/metadata_options/instance_metadata_tags: expected \"enabled\" or \"disabled\""},
        ErrorCase{R"({"id":"i-1","launch_time":"2026-13-01T00:00:00Z"})",
                  "/launch_time: not an RFC 3339 time"},
        ErrorCase{R"({"id":"i-1","launch_time":1764075600})", "/launch_time: expected string"},
        ErrorCase{R"({"id":"i-1","launch_time":"9999-12-31T23:59:59Z"})",
                  "/launch_time: year 9999 not in 1678..2261"},
        ErrorCase{R"({"id":"i-1","launch_time":"1000-01-01T00:00:00Z"})",
                  "/launch_time: year 1000 not in 1678..2261"},
        ErrorCase{R"({"id":"i-1","user_data":"!!!"})", "/user_data: not valid base64"},
        ErrorCase{R"({"id":"i-1","user_data":"YWJj="})", "/user_data: not valid base64"},
        // Values.
        ErrorCase{R"({"id":""})", "/id: must be 1..128 characters"},
        ErrorCase{R"({"id":"i 1"})", "/id: must be 1..128 characters"},
        ErrorCase{kId129.c_str(), "/id: must be 1..128 characters"},
        ErrorCase{R"({"id":"i-1","network":"a/b"})", "/network: must be 1..64 characters"},
        ErrorCase{R"({"id":"i-1","network":""})", "/network: must be 1..64 characters"},
        ErrorCase{R"({"id":"i-1","name":"a\u0001b"})", "/name: contains a control character"},
        ErrorCase{R"({"id":"i-1","hostname":"a\nb"})", "/hostname: contains a control character"},
        ErrorCase{R"({"id":"i-1","launch_index":-1})", "/launch_index: -1 is negative"},
        ErrorCase{R"({"id":"i-1","nics":[{}]})",
                  "/nics/0/mac: not a MAC address (want 02:00:00:00:00:01 form)"},
        ErrorCase{R"({"id":"i-1","nics":[{"mac":"02-00-00-00-00-01"}]})",
                  "/nics/0/mac: not a MAC address (want 02:00:00:00:00:01 form)"},
        ErrorCase{R"({"id":"i-1","nics":[{"mac":"02:00:00:00:00:0g"}]})",
                  "/nics/0/mac: not a MAC address"},
        ErrorCase{R"({"id":"i-1","nics":[{"mac":"02:00:00:00:00:01"},
                                         {"mac":"02:00:00:00:00:01","device_number":1}]})",
                  "/nics/1/mac: 02:00:00:00:00:01 also used by /nics/0"},
        // Upper case is canonicalised before the uniqueness check.
        ErrorCase{R"({"id":"i-1","nics":[{"mac":"0A:00:00:00:00:01"},
                                         {"mac":"0a:00:00:00:00:01","device_number":1}]})",
                  "/nics/1/mac: 0a:00:00:00:00:01 also used by /nics/0"},
        ErrorCase{R"({"id":"i-1","nics":[{"mac":"02:00:00:00:00:01","device_number":128}]})",
                  "/nics/0/device_number: 128 not in 0..127"},
        ErrorCase{R"({"id":"i-1","nics":[{"mac":"02:00:00:00:00:01","device_number":-1}]})",
                  "/nics/0/device_number: -1 not in 0..127"},
        ErrorCase{R"({"id":"i-1","nics":[{"mac":"02:00:00:00:00:01","network_card_index":200}]})",
                  "/nics/0/network_card_index: 200 not in 0..127"},
        // Indexes point into the input, even though NICs are sorted afterwards.
        ErrorCase{R"({"id":"i-1","nics":[{"mac":"02:00:00:00:00:01","device_number":5},
                                         {"mac":"02:00:00:00:00:02","device_number":5}]})",
                  "/nics/1/device_number: 5 also used by /nics/0"},
        ErrorCase{R"({"id":"i-1","nics":[{"mac":"02:00:00:00:00:01","device_number":3},
                                         {"mac":"zz","device_number":0}]})",
                  "/nics/1/mac: not a MAC address"},
        ErrorCase{
            R"({"id":"i-1","nics":[{"mac":"02:00:00:00:00:01","private_ipv4s":["10.0.0.256"]}]})",
            "/nics/0/private_ipv4s/0: not an IP address"},
        ErrorCase{
            R"({"id":"i-1","nics":[{"mac":"02:00:00:00:00:01","private_ipv4s":["fd00::1"]}]})",
            "/nics/0/private_ipv4s/0: not an IPv4 address"},
        ErrorCase{R"({"id":"i-1","nics":[{"mac":"02:00:00:00:00:01","public_ipv4s":["fd00::1"]}]})",
                  "/nics/0/public_ipv4s/0: not an IPv4 address"},
        ErrorCase{R"({"id":"i-1","nics":[{"mac":"02:00:00:00:00:01","ipv6s":["10.0.0.1"]}]})",
                  "/nics/0/ipv6s/0: not an IPv6 address"},
        // v4-mapped IPv6 is an IPv4 address.
        ErrorCase{
            R"({"id":"i-1","nics":[{"mac":"02:00:00:00:00:01","ipv6s":["::ffff:10.0.0.1"]}]})",
            "/nics/0/ipv6s/0: not an IPv6 address"},
        ErrorCase{R"({"id":"i-1","nics":[{"mac":"02:00:00:00:00:01","private_ipv4s":["10.0.0.5"]},
              {"mac":"02:00:00:00:00:02","device_number":1,"private_ipv4s":["10.0.0.5"]}]})",
                  "/nics/1/private_ipv4s/0: address 10.0.0.5 listed twice (also at "
                  "/nics/0/private_ipv4s/0)"},
        ErrorCase{
            R"({"id":"i-1","nics":[{"mac":"02:00:00:00:00:01","ipv6s":["fd00::1","FD00::1"]}]})",
            "/nics/0/ipv6s/1: address fd00::1 listed twice"},
        ErrorCase{
            R"({"id":"i-1","nics":[{"mac":"02:00:00:00:00:01","subnet_ipv4_cidr":"10.0.0.1/24"}]})",
            "/nics/0/subnet_ipv4_cidr: not a CIDR"},
        ErrorCase{R"({"id":"i-1","nics":[{"mac":"02:00:00:00:00:01","vpc_ipv4_cidr":"10.0.0.0"}]})",
                  "/nics/0/vpc_ipv4_cidr: not a CIDR"},
        ErrorCase{
            R"({"id":"i-1","nics":[{"mac":"02:00:00:00:00:01",
                                    "subnet_ipv6_cidrs":["10.0.0.0/24"]}]})",
            "/nics/0/subnet_ipv6_cidrs/0: not an IPv6 CIDR"},
        ErrorCase{
            R"({"id":"i-1","nics":[{"mac":"02:00:00:00:00:01","vpc_ipv4_cidrs":["fd00::/8"]}]})",
            "/nics/0/vpc_ipv4_cidrs/0: not an IPv4 CIDR"},
        ErrorCase{R"({"id":"i-1","nics":[{"mac":"02:00:00:00:00:01","security_groups":[""]}]})",
                  "/nics/0/security_groups/0: empty"},
        ErrorCase{R"({"id":"i-1","ssh_keys":[{"key":"ssh-rsa AAAA"}]})", "/ssh_keys/0/name: empty"},
        ErrorCase{R"({"id":"i-1","ssh_keys":[{"name":"a"}]})", "/ssh_keys/0/key: empty"},
        ErrorCase{R"({"id":"i-1","ssh_keys":[{"name":"a","key":"k1"},{"name":"a","key":"k2"}]})",
                  "/ssh_keys/1/name: \"a\" listed twice"},
        ErrorCase{R"({"id":"i-1","ssh_keys":[{"name":"a","key":"ssh-rsa A\nssh-rsa B"}]})",
                  "/ssh_keys/0/key: contains a line break"},
        ErrorCase{R"({"id":"i-1","tags":{"":"v"}})", "/tags/: key is empty"},
        ErrorCase{R"({"id":"i-1","tags":{"a\tb":"v"}})", "/tags/a\tb: key contains a control"},
        ErrorCase{R"({"id":"i-1","tags":{"a b":"v"},
                      "metadata_options":{"instance_metadata_tags":"enabled"}})",
                  "/tags/a b: key cannot be served in instance metadata"},
        ErrorCase{R"({"id":"i-1","tags":{"a/b":"v"},
                      "metadata_options":{"instance_metadata_tags":"enabled"}})",
                  "/tags/a~1b: key cannot be served in instance metadata"},
        ErrorCase{R"({"id":"i-1","tags":{"_index":"v"},
                      "metadata_options":{"instance_metadata_tags":"enabled"}})",
                  "/tags/_index: key cannot be served"},
        ErrorCase{R"({"id":"i-1","tags":{"..":"v"},
                      "metadata_options":{"instance_metadata_tags":"enabled"}})",
                  "/tags/..: key cannot be served"},
        ErrorCase{R"({"id":"i-1","iam":{}})", "/iam/role: must be 1..64 characters"},
        ErrorCase{R"({"id":"i-1","iam":{"role":"demo role"}})", "/iam/role: must be 1..64"},
        ErrorCase{R"({"id":"i-1","iam":{"role":"r","credentials":{"access_key_id":"A",
                      "secret_access_key":"S"}}})",
                  "/iam/credentials/token: required"},
        ErrorCase{R"({"id":"i-1","iam":{"role":"r","credentials":{"access_key_id":"A",
                      "secret_access_key":"S","token":"T","expiration":"tomorrow"}}})",
                  "/iam/credentials/expiration: not an RFC 3339 time"},
        ErrorCase{R"({"id":"i-1","block_devices":{"EBS1":"sdb"}})",
                  "/block_devices/EBS1: key must be"},
        ErrorCase{R"({"id":"i-1","block_devices":{"":"sdb"}})", "/block_devices/: key must be"},
        ErrorCase{R"({"id":"i-1","block_devices":{"ebs1":""}})",
                  "/block_devices/ebs1: empty device name"},
        ErrorCase{R"({"id":"i-1","metadata_options":{"hop_limit":0}})",
                  "/metadata_options/hop_limit: 0 not in 1..64"},
        ErrorCase{R"({"id":"i-1","metadata_options":{"hop_limit":65}})",
                  "/metadata_options/hop_limit: 65 not in 1..64"},
        // Request limits.
        ErrorCase{R"({"id":"i-1","limits":[]})", "/limits: expected object"},
        ErrorCase{R"({"id":"i-1","limits":{"rate":1}})", "/limits/rate: unknown field"},
        ErrorCase{R"({"id":"i-1","limits":{"burst":"10"}})", "/limits/burst: expected integer"},
        ErrorCase{R"({"id":"i-1","limits":{"requests_per_second":-1}})",
                  "/limits/requests_per_second: -1 not in 0..1000000"},
        ErrorCase{R"({"id":"i-1","limits":{"requests_per_second":1000001}})",
                  "/limits/requests_per_second: 1000001 not in 0..1000000"},
        ErrorCase{R"({"id":"i-1","limits":{"burst":0}})", "/limits/burst: 0 not in 1..1000000"},
        ErrorCase{R"({"id":"i-1","limits":{"max_in_flight":-3}})",
                  "/limits/max_in_flight: -3 not in 0..1000000"}));

TEST(InstanceJsonTest, SyntaxErrorNamesTheOffset) {
  auto in = FromJsonText(R"({"id":"i-1",})");
  ASSERT_FALSE(in.ok());
  EXPECT_EQ(in.status().code(), common::Code::kInvalidArgument);
  EXPECT_THAT(in.status().message(), StartsWith("invalid JSON: "));
  EXPECT_THAT(in.status().message(), HasSubstr("at offset 12"));

  auto trailing = FromJsonText(R"({"id":"i-1"} {)");
  ASSERT_FALSE(trailing.ok());
  EXPECT_THAT(trailing.status().message(), StartsWith("invalid JSON: "));

  auto empty = FromJsonText("");
  ASSERT_FALSE(empty.ok());
  EXPECT_THAT(empty.status().message(), HasSubstr("at offset 0"));
}

struct CanonicalCase {
  const char* nic_json;  // the inside of one NIC object, after the MAC
  const char* pointer;   // where to look in ToJson's output
  const char* want;
};

void PrintTo(const CanonicalCase& c, std::ostream* os) { *os << c.nic_json; }

class CanonicaliseTest : public ::testing::TestWithParam<CanonicalCase> {};

TEST_P(CanonicaliseTest, FromJsonStoresTheCanonicalSpelling) {
  const std::string text = std::string(R"({"id":"i-1","nics":[{"mac":"0A:BC:DE:F0:00:01",)") +
                           GetParam().nic_json + "}]}";
  auto in = FromJsonText(text);
  ASSERT_TRUE(in.ok()) << in.status().ToString();
  EXPECT_TRUE(Validate(*in).ok()) << Validate(*in).ToString();
  EXPECT_EQ(in->nics[0].mac, "0a:bc:de:f0:00:01");
  boost::system::error_code ec;
  const boost::json::value out = ToJson(*in);
  const boost::json::value* got = out.find_pointer(GetParam().pointer, ec);
  ASSERT_NE(got, nullptr) << GetParam().pointer;
  EXPECT_EQ(got->as_string(), GetParam().want);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, CanonicaliseTest,
    ::testing::Values(
        CanonicalCase{R"("private_ipv4s":["::ffff:10.0.0.5"])", "/nics/0/private_ipv4s/0",
                      "10.0.0.5"},
        CanonicalCase{R"("ipv6s":["FD00:0:0:0:0:0:0:1"])", "/nics/0/ipv6s/0", "fd00::1"},
        CanonicalCase{R"("ipv6s":["2001:DB8:0:0:1::1"])", "/nics/0/ipv6s/0", "2001:db8::1:0:0:1"},
        CanonicalCase{R"("subnet_ipv6_cidrs":["FD00:0::/64"])", "/nics/0/subnet_ipv6_cidrs/0",
                      "fd00::/64"},
        CanonicalCase{R"("vpc_ipv6_cidrs":["2001:0DB8::/32"])", "/nics/0/vpc_ipv6_cidrs/0",
                      "2001:db8::/32"},
        CanonicalCase{R"("mac":"0a:bc:de:f0:00:01")", "/nics/0/mac", "0a:bc:de:f0:00:01"}));

TEST(InstanceJsonTest, NicsAreSortedByDeviceNumber) {
  auto in = FromJsonText(R"({"id":"i-1","nics":[
      {"mac":"02:00:00:00:00:03","device_number":7},
      {"mac":"02:00:00:00:00:01","device_number":0},
      {"mac":"02:00:00:00:00:02","device_number":2}]})");
  ASSERT_TRUE(in.ok()) << in.status().ToString();
  ASSERT_EQ(in->nics.size(), 3u);
  EXPECT_EQ(in->nics[0].mac, "02:00:00:00:00:01");
  EXPECT_EQ(in->nics[1].mac, "02:00:00:00:00:02");
  EXPECT_EQ(in->nics[2].mac, "02:00:00:00:00:03");
}

TEST(InstanceJsonTest, TimesAreUtcWholeSeconds) {
  auto in = FromJsonText(R"({"id":"i-1","launch_time":"2026-11-25T15:00:00.750+02:00"})");
  ASSERT_TRUE(in.ok()) << in.status().ToString();
  EXPECT_EQ(in->launch_time, At("2026-11-25T13:00:00Z"));
  EXPECT_EQ(ToJson(*in).at("launch_time").as_string(), "2026-11-25T13:00:00Z");
}

// What Validate refuses in a record built in code, and that Normalize fixes it.
struct NonCanonicalCase {
  const char* name;
  void (*spoil)(Instance&);
  const char* message;
};

void PrintTo(const NonCanonicalCase& c, std::ostream* os) { *os << c.name; }

class NonCanonicalTest : public ::testing::TestWithParam<NonCanonicalCase> {};

TEST_P(NonCanonicalTest, ValidateRefusesAndNormalizeFixes) {
  Instance in = Rich();
  GetParam().spoil(in);
  common::Status s = Validate(in);
  EXPECT_EQ(s.code(), common::Code::kInvalidArgument);
  EXPECT_THAT(s.message(), StartsWith(GetParam().message));
  Normalize(in);
  EXPECT_TRUE(Validate(in).ok()) << Validate(in).ToString();
  auto back = FromJson(ToJson(in));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, in);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, NonCanonicalTest,
    ::testing::Values(
        NonCanonicalCase{"UpperMac", [](Instance& in) { in.nics[1].mac = "02:00:00:00:00:0A"; },
                         "/nics/1/mac: not lower case"},
        NonCanonicalCase{"LongIpv6", [](Instance& in) { in.nics[0].ipv6s = {"2001:db8:0::5"}; },
                         "/nics/0/ipv6s/0: not canonical (want 2001:db8::5)"},
        NonCanonicalCase{"MappedIpv4",
                         [](Instance& in) { in.nics[1].private_ipv4s = {"::ffff:10.0.1.7"}; },
                         "/nics/1/private_ipv4s/0: not canonical (want 10.0.1.7)"},
        NonCanonicalCase{"UpperCidr",
                         [](Instance& in) { in.nics[0].vpc_ipv6_cidrs = {"2001:DB8::/56"}; },
                         "/nics/0/vpc_ipv6_cidrs/0: not canonical (want 2001:db8::/56)"},
        NonCanonicalCase{"NicOrder", [](Instance& in) { std::swap(in.nics[0], in.nics[1]); },
                         "/nics/1/device_number: NICs not ordered by device_number"},
        NonCanonicalCase{"SubSecondLaunch",
                         [](Instance& in) { in.launch_time += std::chrono::milliseconds(250); },
                         "/launch_time: has a fraction of a second"},
        NonCanonicalCase{
            "SubSecondExpiry",
            [](Instance& in) { in.iam->credentials->expiration += std::chrono::microseconds(1); },
            "/iam/credentials/expiration: has a fraction of a second"}),
    [](const auto& info) { return std::string(info.param.name); });

// The store normalises the records it is given, which FromJson already
// canonicalised: text that is canonical must keep its (packed or interned)
// block, or every write leaves a copy of the MAC and the addresses behind.
TEST(InstanceJsonTest, NormalizingACanonicalRecordKeepsItsText) {
  auto parsed = FromJson(ToJson(Rich()));
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  Instance in = *parsed;  // a copy shares every Str's block
  ASSERT_FALSE(in.nics.empty());
  ASSERT_FALSE(in.nics[0].ipv6s.empty());
  ASSERT_FALSE(in.nics[0].vpc_ipv6_cidrs.empty());
  Normalize(in);
  EXPECT_EQ(in, *parsed);
  for (size_t i = 0; i < in.nics.size(); ++i) {
    EXPECT_EQ(in.nics[i].mac.data(), parsed->nics[i].mac.data()) << "nic " << i;
    for (size_t j = 0; j < in.nics[i].ipv6s.size(); ++j) {
      EXPECT_EQ(in.nics[i].ipv6s[j].data(), parsed->nics[i].ipv6s[j].data()) << i << " " << j;
    }
    for (size_t j = 0; j < in.nics[i].vpc_ipv6_cidrs.size(); ++j) {
      EXPECT_EQ(in.nics[i].vpc_ipv6_cidrs[j].data(), parsed->nics[i].vpc_ipv6_cidrs[j].data());
    }
    EXPECT_EQ(in.nics[i].subnet_ipv4_cidr.data(), parsed->nics[i].subnet_ipv4_cidr.data());
  }
}

TEST(InstanceJsonTest, ValidateRefusesWhatJsonCannotCarry) {
  Instance bad_utf8 = Minimal();
  bad_utf8.tags["k"] = "\xc3\x28";
  EXPECT_THAT(Validate(bad_utf8).message(), StartsWith("/tags/k: value is not valid UTF-8"));

  Instance overlong = Minimal();
  overlong.name = "\xc0\xaf";  // an overlong '/'
  EXPECT_THAT(Validate(overlong).message(), StartsWith("/name: not valid UTF-8"));

  Instance no_role = Minimal();
  no_role.iam = IamRole{};
  EXPECT_THAT(Validate(no_role).message(), StartsWith("/iam/role: "));
}

TEST(InstanceJsonTest, RangesAreInclusive) {
  Instance in = Minimal();
  in.id = Repeat("a", 128);
  in.network = Repeat("n", 64);
  in.options.hop_limit = 64;
  ASSERT_TRUE(Validate(in).ok()) << Validate(in).ToString();
  auto back = FromJsonText(ToJsonText(in));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, in);
  in.options.hop_limit = 1;
  EXPECT_TRUE(Validate(in).ok());
}

// Sizes are limits (record_limits_test.cc), not rules of the record: a
// record a version with other limits stored, however large, still parses.
TEST(InstanceJsonTest, SizesAreNotValidated) {
  Instance in = Minimal();
  in.name = Repeat("n", 100000);
  in.user_data = std::string(256 * 1024, 'u');
  in.tags[Repeat("k", 1000)] = Repeat("v", 1000);
  for (int i = 0; i < 1000; ++i) in.tags["t" + std::to_string(i)] = "v";
  ASSERT_TRUE(Validate(in).ok()) << Validate(in).ToString();
  auto back = FromJsonText(ToJsonText(in));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, in);
}

TEST(InstanceJsonTest, RequestLimitsKeepOnlyTheFieldsSet) {
  // Each field is its own override: what is absent keeps the server's default.
  auto in = FromJsonText(R"({"id":"i-1","limits":{"burst":7}})");
  ASSERT_TRUE(in.ok()) << in.status().ToString();
  EXPECT_EQ(in->limits->burst, 7);
  EXPECT_FALSE(in->limits->requests_per_second.has_value());
  EXPECT_FALSE(in->limits->max_in_flight.has_value());
  EXPECT_EQ(boost::json::serialize(ToJson(*in).at("limits")), R"({"burst":7})");
  EXPECT_EQ(ToJsonText(*in), boost::json::serialize(ToJson(*in)));

  // An empty object sets nothing: no allocation, and nothing written back.
  auto empty = FromJsonText(R"({"id":"i-1","limits":{}})");
  ASSERT_TRUE(empty.ok()) << empty.status().ToString();
  EXPECT_FALSE(empty->limits.has_value());
  EXPECT_FALSE(ToJson(*empty).as_object().contains("limits"));

  // The bounds are inclusive, and 0 means "no limit" for the rate and in-flight.
  auto bounds = FromJsonText(
      R"({"id":"i-1","limits":{"requests_per_second":0,"burst":1000000,"max_in_flight":1000000}})");
  ASSERT_TRUE(bounds.ok()) << bounds.status().ToString();
  EXPECT_EQ(bounds->limits->requests_per_second, 0);
  EXPECT_EQ(bounds->limits->burst, 1000000);
  EXPECT_EQ(bounds->limits->max_in_flight, 1000000);
}

TEST(InstanceJsonTest, TagKeysAreFreeWhileTagsAreNotServed) {
  auto in = FromJsonText(R"({"id":"i-1","tags":{"a b":"1","_index":"2","x/y":"3"}})");
  ASSERT_TRUE(in.ok()) << in.status().ToString();
  EXPECT_EQ(in->tags.size(), 3u);
  auto served = FromJsonText(R"({"id":"i-1","tags":{"Name":"1","a+b-c=d.e_f:g@h":"2"},
      "metadata_options":{"instance_metadata_tags":"enabled"}})");
  ASSERT_TRUE(served.ok()) << served.status().ToString();
}

TEST(InstanceJsonTest, UserDataIsBase64AndMayBeWrapped) {
  auto in = FromJsonText(R"({"id":"i-1","user_data":"aGVs\nbG8="})");
  ASSERT_TRUE(in.ok()) << in.status().ToString();
  EXPECT_EQ(in->user_data, "hello");
  auto empty = FromJsonText(R"({"id":"i-1","user_data":""})");
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->user_data, std::optional<std::string>(""));
}

TEST(InstanceJsonTest, CallerAddressesArePrivateV4AndV6OfEveryNic) {
  EXPECT_THAT(CallerAddresses(Rich()),
              ElementsAre("10.0.0.5", "10.0.0.6", "2001:db8::5", "10.0.1.7"));
  EXPECT_TRUE(CallerAddresses(Minimal()).empty());
  EXPECT_THAT(CallerAddresses(Ipv6Only()), ElementsAre("fd00::1", "fd00::2", "fd00::3", "fd00::4"));
}

TEST(InstanceJsonTest, CallerAddressesIncludeStaticNetworkConfigAddressesOnce) {
  // 10.0.0.5 is on the NIC and in network_config (listed once); 10.0.1.9 and
  // 2001:db8:9::9 exist only in network_config; DHCP/SLAAC addresses are the
  // guest's to pick and are not claimed.
  auto in = FromJsonText(R"({"id":"i-1","network":"n",
      "nics":[{"mac":"02:00:00:00:00:01","private_ipv4s":["10.0.0.5"]}],
      "network_config":{
        "links":[{"name":"e0","type":"physical","mac":"02:00:00:00:00:01"}],
        "networks":[
          {"link":"e0","address":"10.0.0.5/24"},
          {"link":"e0","address":"10.0.1.9/24"},
          {"link":"e0","ip_version":6,"address":"2001:DB8:9:0::9/64"},
          {"link":"e0","ip_version":6,"mode":"slaac","address":"2001:db8:8::8/64"},
          {"link":"e0","mode":"dhcp"}]}})");
  ASSERT_TRUE(in.ok()) << in.status().ToString();
  EXPECT_THAT(CallerAddresses(*in), ElementsAre("10.0.0.5", "10.0.1.9", "2001:db8:9::9"));

  // A record with network_config only (no NICs) still answers from its
  // static address.
  auto bare = FromJsonText(R"({"id":"i-2","network_config":{
      "links":[{"name":"e0","type":"physical","mac":"02:00:00:00:00:02"}],
      "networks":[{"link":"e0","address":"192.0.2.7/24"}]}})");
  ASSERT_TRUE(bare.ok()) << bare.status().ToString();
  EXPECT_THAT(CallerAddresses(*bare), ElementsAre("192.0.2.7"));

  // Two NICs listing one address: once.
  Instance twice = Minimal();
  twice.nics.resize(2);
  twice.nics[0].mac = "02:00:00:00:00:01";
  twice.nics[1].mac = "02:00:00:00:00:02";
  twice.nics[0].private_ipv4s = {"10.0.0.5"};
  twice.nics[1].private_ipv4s = {"10.0.0.5"};
  EXPECT_THAT(CallerAddresses(twice), ElementsAre("10.0.0.5"));
}

}  // namespace
}  // namespace openimds::model
