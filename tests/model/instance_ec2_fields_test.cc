// The EC2-only fields and platform events of the instance record
// (docs/instance.md "EC2 fields", "Platform events"): JSON round trips,
// delays turned into absolute times, and every refusal with its pointer.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "common/time_format.h"
#include "model/instance.h"
#include "model/instance_json.h"

namespace openimds::model {
namespace {

TimePoint At(std::string_view text) { return *common::ParseRfc3339(text); }

// Every new field set, with two NICs (associations, prefixes).
constexpr std::string_view kFull = R"({
  "id": "i-0123456789abcdef0",
  "account_id": "123456789012",
  "nics": [
    {"mac": "02:00:00:00:00:01", "device_number": 0,
     "private_ipv4s": ["10.0.0.5", "10.0.0.6"], "public_ipv4s": ["203.0.113.25", "203.0.113.26"],
     "ipv4_prefixes": ["10.0.8.0/28"], "ipv6_prefixes": ["2001:db8:1::/80"],
     "ipv4_associations": {"203.0.113.25": "10.0.0.5", "203.0.113.26": "10.0.0.6"}},
    {"mac": "02:00:00:00:00:02", "device_number": 1, "private_ipv4s": ["10.0.1.5"]}
  ],
  "ami_manifest_path": "my-bucket/my-image.manifest.xml",
  "ancestor_ami_ids": ["ami-0aaaaaaaaaaaaaaa1", "ami-0aaaaaaaaaaaaaaa2"],
  "product_codes": ["1abc2defghijklm3nopqrs4tu"],
  "billing_products": ["bp-6ba54002"],
  "instance_action": "none",
  "instance_life_cycle": "spot",
  "profile": "default-hvm",
  "placement_group": "my-cluster",
  "host_id": "h-0123456789abcdef0",
  "partition_number": 3,
  "monitoring": "enabled",
  "identity_credentials": {
    "access_key_id": "ASIAIDENTITYEXAMPLE1",
    "secret_access_key": "identity/secret/EXAMPLE",
    "token": "identity-token",
    "expiration": "2026-11-25T19:00:00Z",
    "last_updated": "2026-11-25T13:00:00Z"
  },
  "events": {
    "spot": {"action": "terminate", "time": "2026-11-25T14:02:00Z",
             "notice_time": "2026-11-25T14:00:00Z"},
    "rebalance": {"notice_time": "2026-11-25T13:55:00Z"},
    "scheduled": [
      {"id": "instance-event-0d59937288b749b32", "code": "system-reboot", "state": "active",
       "description": "scheduled reboot", "not_before": "2026-11-26T09:00:43Z",
       "not_after": "2026-11-26T09:17:23Z", "not_before_deadline": "2026-11-30T09:00:43Z",
       "notice_time": "2026-11-25T13:00:00Z"},
      {"id": "instance-event-1", "code": "instance-stop", "state": "canceled",
       "not_before": "2026-11-20T09:00:00Z"}
    ],
    "target_lifecycle_states": [
      {"state": "Warmed:Stopped", "at": "2026-11-25T13:00:00Z"},
      {"state": "InService", "at": "2026-11-25T13:10:00Z"}
    ]
  }
})";

Instance Parse(std::string_view text, ParseOptions options = {}) {
  auto v = boost::json::parse(text);
  auto r = FromJson(v, options);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : Instance{};
}

// The message of the refusal of `text`, which must start with `pointer`.
std::string Refusal(std::string_view text, ParseOptions options = {}) {
  auto r = FromJson(boost::json::parse(text), options);
  EXPECT_FALSE(r.ok()) << text;
  if (r.ok()) return "";
  EXPECT_EQ(r.status().code(), common::Code::kInvalidArgument);
  return r.status().message();
}

TEST(InstanceEc2FieldsTest, ParsesEveryField) {
  const Instance in = Parse(kFull);
  EXPECT_EQ(in.ec2->ami_manifest_path, "my-bucket/my-image.manifest.xml");
  EXPECT_EQ(in.ec2->ancestor_ami_ids.size(), 2u);
  EXPECT_EQ(in.ec2->product_codes, model::StrList{"1abc2defghijklm3nopqrs4tu"});
  EXPECT_EQ(in.ec2->billing_products, model::StrList{"bp-6ba54002"});
  EXPECT_EQ(in.ec2->instance_action, "none");
  EXPECT_EQ(in.ec2->instance_life_cycle, "spot");
  EXPECT_EQ(in.ec2->profile, "default-hvm");
  EXPECT_EQ(in.ec2->placement_group, "my-cluster");
  EXPECT_EQ(in.ec2->host_id, "h-0123456789abcdef0");
  EXPECT_EQ(in.ec2->partition_number, 3);
  EXPECT_TRUE(in.ec2->detailed_monitoring);
  ASSERT_TRUE(in.ec2->identity_credentials.has_value());
  EXPECT_EQ(in.ec2->identity_credentials->expiration, At("2026-11-25T19:00:00Z"));

  const Nic& eth0 = in.nics[0];
  EXPECT_EQ(eth0.ipv4_prefixes, model::StrList{"10.0.8.0/28"});
  EXPECT_EQ(eth0.ipv6_prefixes, model::StrList{"2001:db8:1::/80"});
  EXPECT_EQ(eth0.ipv4_associations.at("203.0.113.26"), "10.0.0.6");

  const PlatformEvents& e = in.ec2->events;
  ASSERT_TRUE(e.spot.has_value());
  EXPECT_EQ(e.spot->action, "terminate");
  EXPECT_EQ(e.spot->time, At("2026-11-25T14:02:00Z"));
  EXPECT_EQ(e.spot->notice_time, At("2026-11-25T14:00:00Z"));
  EXPECT_EQ(e.rebalance_notice, At("2026-11-25T13:55:00Z"));
  ASSERT_EQ(e.scheduled.size(), 2u);
  EXPECT_EQ(e.scheduled[0].state, ScheduledEvent::State::kActive);
  EXPECT_EQ(e.scheduled[0].not_before_deadline, At("2026-11-30T09:00:43Z"));
  EXPECT_EQ(e.scheduled[1].state, ScheduledEvent::State::kCanceled);
  EXPECT_EQ(e.scheduled[1].not_after, TimePoint{});
  ASSERT_EQ(e.lifecycle.size(), 2u);
  EXPECT_EQ(e.lifecycle[1].state, "InService");
  EXPECT_TRUE(Validate(in).ok()) << Validate(in).ToString();
}

TEST(InstanceEc2FieldsTest, RoundTrips) {
  const Instance in = Parse(kFull);
  auto back = FromJson(ToJson(in));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, in);
  EXPECT_EQ(ToJsonText(*back), ToJsonText(in));
}

TEST(InstanceEc2FieldsTest, DefaultsAreOmittedSoOldRecordsWriteAsBefore) {
  const Instance in = Parse(R"({"id": "i-1"})");
  const boost::json::object o = ToJson(in).as_object();
  for (const char* absent :
       {"ami_manifest_path", "ancestor_ami_ids", "product_codes", "billing_products",
        "instance_action", "instance_life_cycle", "profile", "placement_group", "host_id",
        "partition_number", "monitoring", "identity_credentials", "events"}) {
    EXPECT_FALSE(o.contains(absent)) << absent;
  }
  EXPECT_TRUE(in.ec2->events.empty());
  EXPECT_FALSE(in.ec2->detailed_monitoring);
  // "disabled" parses and is written by omission.
  const Instance off = Parse(R"({"id": "i-1", "monitoring": "disabled"})");
  EXPECT_FALSE(off.ec2->detailed_monitoring);
  EXPECT_FALSE(ToJson(off).as_object().contains("monitoring"));
}

TEST(InstanceEc2FieldsTest, DelaysBecomeAbsoluteTimes) {
  ParseOptions at;
  at.now = At("2026-11-25T13:00:00Z") + std::chrono::milliseconds(750);  // a fraction is dropped
  const Instance in = Parse(R"({"id": "i-1", "events": {
      "spot": {"action": "stop", "time": {"in_seconds": 120}},
      "rebalance": {"notice_time": {"in_seconds": 0}},
      "scheduled": [{"id": "e1", "code": "system-maintenance",
                     "not_before": {"in_seconds": 86400}, "not_after": {"in_seconds": 90000},
                     "notice_time": {"in_seconds": 30}}],
      "target_lifecycle_states": [{"state": "InService"},
                                  {"state": "Terminated", "at": {"in_seconds": 600}}]}})",
                            at);
  EXPECT_EQ(in.ec2->events.spot->time, At("2026-11-25T13:02:00Z"));
  EXPECT_EQ(in.ec2->events.spot->notice_time, TimePoint{});  // unset: two minutes before time
  EXPECT_EQ(in.ec2->events.rebalance_notice, At("2026-11-25T13:00:00Z"));
  EXPECT_EQ(in.ec2->events.scheduled[0].not_before, At("2026-11-26T13:00:00Z"));
  EXPECT_EQ(in.ec2->events.scheduled[0].not_after, At("2026-11-26T14:00:00Z"));
  EXPECT_EQ(in.ec2->events.scheduled[0].notice_time, At("2026-11-25T13:00:30Z"));
  EXPECT_EQ(in.ec2->events.lifecycle[0].at, TimePoint{});
  EXPECT_EQ(in.ec2->events.lifecycle[1].at, At("2026-11-25T13:10:00Z"));
  // Written back as absolute times; reading them again needs no clock.
  const std::string text = ToJsonText(in);
  EXPECT_EQ(text.find("in_seconds"), std::string::npos);
  EXPECT_NE(text.find("\"2026-11-25T13:02:00Z\""), std::string::npos);
  EXPECT_EQ(Parse(text), in);
}

TEST(InstanceEc2FieldsTest, DelayWithoutAnExplicitClockUsesTheSystemClock) {
  const auto before = std::chrono::system_clock::now();
  const Instance in =
      Parse(R"({"id": "i-1", "events": {"rebalance": {"notice_time": {"in_seconds": 60}}}})");
  const auto after = std::chrono::system_clock::now();
  ASSERT_TRUE(in.ec2->events.rebalance_notice.has_value());
  EXPECT_GE(*in.ec2->events.rebalance_notice, before + std::chrono::seconds(59));
  EXPECT_LE(*in.ec2->events.rebalance_notice, after + std::chrono::seconds(60));
}

TEST(InstanceEc2FieldsTest, CanonicalForms) {
  const Instance in = Parse(R"({"id": "i-1", "nics": [{"mac": "02:00:00:00:00:01",
      "private_ipv4s": ["10.0.0.5"], "public_ipv4s": ["203.0.113.25"],
      "ipv6_prefixes": ["2001:DB8:1:0::/80"],
      "ipv4_associations": {"::ffff:203.0.113.25": "::ffff:10.0.0.5"}}],
      "events": {"rebalance": {"notice_time": "2026-11-25T15:00:00.9+02:00"}}})");
  EXPECT_EQ(in.nics[0].ipv6_prefixes, model::StrList{"2001:db8:1::/80"});
  EXPECT_EQ(in.nics[0].ipv4_associations.at("203.0.113.25"), "10.0.0.5");
  EXPECT_EQ(in.ec2->events.rebalance_notice, At("2026-11-25T13:00:00Z"));
}

TEST(InstanceEc2FieldsTest, Refusals) {
  struct Case {
    std::string json;
    std::string message;  // the start of the message: pointer and reason
  };
  const std::string nic =
      R"("nics": [{"mac": "02:00:00:00:00:01", "private_ipv4s": ["10.0.0.5"],
                   "public_ipv4s": ["203.0.113.25"], )";
  const std::vector<Case> cases = {
      {R"({"id": "i-1", "partition_number": 8})", "/partition_number: 8 not in 0..7"},
      {R"({"id": "i-1", "partition_number": -1})", "/partition_number: -1 not in 0..7"},
      {R"({"id": "i-1", "monitoring": "on"})", "/monitoring: expected \"enabled\" or \"disabled\""},
      {R"({"id": "i-1", "profile": "a\nb"})", "/profile: contains a control character"},
      {R"({"id": "i-1", "product_codes": [""]})", "/product_codes/0: empty"},
      {R"({"id": "i-1", "ancestor_ami_ids": "ami-1"})", "/ancestor_ami_ids: expected array"},
      {R"({"id": "i-1", "identity_credentials": {"access_key_id": "A", "token": "t",
          "secret_access_key": ""}})",
       "/identity_credentials/secret_access_key: required"},
      {"{\"id\": \"i-1\", " + nic + R"("ipv4_prefixes": ["10.0.8.1/28"]}]})",
       "/nics/0/ipv4_prefixes/0: not a CIDR with zero host bits"},
      {"{\"id\": \"i-1\", " + nic + R"("ipv6_prefixes": ["10.0.8.0/28"]}]})",
       "/nics/0/ipv6_prefixes/0: not an IPv6 CIDR"},
      {"{\"id\": \"i-1\", " + nic + R"("ipv4_associations": {"198.51.100.1": "10.0.0.5"}}]})",
       "/nics/0/ipv4_associations/198.51.100.1: not one of this NIC's public_ipv4s"},
      {"{\"id\": \"i-1\", " + nic + R"("ipv4_associations": {"203.0.113.25": "10.0.0.9"}}]})",
       "/nics/0/ipv4_associations/203.0.113.25: 10.0.0.9 is not one of this NIC's private_ipv4s"},
      {"{\"id\": \"i-1\", " + nic + R"("ipv4_associations": {"203.0.113.25": 5}}]})",
       "/nics/0/ipv4_associations/203.0.113.25: expected string"},
      {R"({"id": "i-1", "events": {"spot": {"action": "reboot", "time": "2026-11-25T13:00:00Z"}}})",
       "/events/spot/action: must be one of \"terminate\", \"stop\", \"hibernate\""},
      {R"({"id": "i-1", "events": {"spot": {"action": "stop"}}})", "/events/spot/time: required"},
      {R"({"id": "i-1", "events": {"spot": {"action": "stop", "time": "soon"}}})",
       "/events/spot/time: not an RFC 3339 time"},
      {R"({"id": "i-1", "events": {"spot": {"action": "stop", "time": {"in_seconds": -5}}}})",
       "/events/spot/time/in_seconds: -5 not in 0.."},
      {R"({"id": "i-1", "events": {"spot": {"action": "stop", "time": {"in_seconds": "5"}}}})",
       "/events/spot/time/in_seconds: expected integer"},
      {R"({"id": "i-1", "events": {"spot": {"action": "stop", "time": {"in_minutes": 5}}}})",
       "/events/spot/time/in_minutes: unknown field"},
      {R"({"id": "i-1", "events": {"spot": {"action": "stop", "time": {}}}})",
       "/events/spot/time/in_seconds: required"},
      {R"({"id": "i-1", "events": {"rebalance": {}}})", "/events/rebalance/notice_time: required"},
      {R"({"id": "i-1", "events": {"rebalance": "now"}})", "/events/rebalance: expected object"},
      {R"({"id": "i-1", "events": {"meteor": {}}})", "/events/meteor: unknown field"},
      {R"({"id": "i-1", "events": {"scheduled": [{"code": "system-reboot",
          "not_before": "2026-11-25T13:00:00Z"}]}})",
       "/events/scheduled/0/id: required"},
      {R"({"id": "i-1", "events": {"scheduled": [{"id": "e", "code": "reboot",
          "not_before": "2026-11-25T13:00:00Z"}]}})",
       "/events/scheduled/0/code: must be one of"},
      {R"({"id": "i-1", "events": {"scheduled": [{"id": "e", "code": "system-reboot"}]}})",
       "/events/scheduled/0/not_before: required"},
      {R"({"id": "i-1", "events": {"scheduled": [{"id": "e", "code": "system-reboot",
          "state": "done", "not_before": "2026-11-25T13:00:00Z"}]}})",
       "/events/scheduled/0/state: expected \"active\", \"completed\" or \"canceled\""},
      {R"({"id": "i-1", "events": {"scheduled": [{"id": "e", "code": "system-reboot",
          "not_before": "2026-11-25T13:00:00Z", "not_after": "2026-11-25T12:00:00Z"}]}})",
       "/events/scheduled/0/not_after: earlier than not_before"},
      {R"({"id": "i-1", "events": {"scheduled": [
          {"id": "e", "code": "system-reboot", "not_before": "2026-11-25T13:00:00Z"},
          {"id": "e", "code": "instance-stop", "not_before": "2026-11-25T13:00:00Z"}]}})",
       "/events/scheduled/1/id: \"e\" listed twice"},
      {R"({"id": "i-1", "events": {"target_lifecycle_states": [{"state": "Running"}]}})",
       "/events/target_lifecycle_states/0/state: must be one of"},
      {R"({"id": "i-1", "events": {"target_lifecycle_states": [
          {"state": "InService", "at": "2026-11-25T13:00:00Z"},
          {"state": "Terminated", "at": "2026-11-25T12:00:00Z"}]}})",
       "/events/target_lifecycle_states/1/at: earlier than the state before it"},
  };
  for (const auto& c : cases) {
    const std::string message = Refusal(c.json);
    EXPECT_EQ(message.substr(0, c.message.size()), c.message) << c.json;
  }
}

TEST(InstanceEc2FieldsTest, ValidateChecksRecordsBuiltInCode) {
  Instance in;
  in.id = "i-1";
  in.network = "default";
  in.ec2.mut().events.spot = SpotInterruption{"terminate", At("2026-11-25T13:00:00Z"), TimePoint{}};
  EXPECT_TRUE(Validate(in).ok()) << Validate(in).ToString();
  in.ec2.mut().events.spot->time += std::chrono::milliseconds(5);
  EXPECT_NE(Validate(in).message().find("/events/spot/time: has a fraction"), std::string::npos);
  Normalize(in);
  EXPECT_TRUE(Validate(in).ok()) << Validate(in).ToString();
  in.ec2.mut().events.lifecycle.push_back(LifecycleTransition{"Warmed:Hibernated", TimePoint{}});
  EXPECT_TRUE(Validate(in).ok());
  in.ec2.mut().events.lifecycle.push_back(LifecycleTransition{"Warmed:Sleeping", TimePoint{}});
  EXPECT_FALSE(Validate(in).ok());
}

// The example in docs/instance.md "Platform events" stays valid.
TEST(InstanceEc2FieldsTest, DocsExampleParses) {
  std::ifstream file(std::string(OPENIMDS_DOCS_DIR) + "/instance.md");
  std::stringstream buffer;
  buffer << file.rdbuf();
  const std::string doc = buffer.str();
  const size_t section = doc.find("## Platform events");
  ASSERT_NE(section, std::string::npos);
  const size_t start = doc.find("```json\n", section);
  ASSERT_NE(start, std::string::npos);
  const size_t end = doc.find("```", start + 8);
  const std::string fragment = doc.substr(start + 8, end - start - 8);
  ParseOptions at;
  at.now = At("2026-11-25T13:00:00Z");
  const Instance in = Parse("{\"id\": \"i-1\", " + fragment + "}", at);
  EXPECT_EQ(in.ec2->events.spot->time, At("2026-11-25T13:02:30Z"));
  EXPECT_EQ(in.ec2->events.scheduled.size(), 1u);
  EXPECT_EQ(in.ec2->events.lifecycle.size(), 2u);
  EXPECT_TRUE(Validate(in).ok()) << Validate(in).ToString();
}

}  // namespace
}  // namespace openimds::model
