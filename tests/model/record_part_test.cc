// The record's parts (model/record_part.h): the EC2-only fields and the guest
// configuration go through the same table of hooks a new cloud's fields will.
// These tests hold every registered part to that contract: its members are
// its own (no other part and not the record reads them), it writes back what
// it reads, its members are read in document order with the record's and
// written after them, its group stays unallocated while unset, and its
// checks and limits run where the record's mapping promises.
#include "model/record_part.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "model/instance_json.h"
#include "model/limit_checker.h"
#include "model/record_limits.h"

namespace openimds::model {
namespace {

namespace json = boost::json;

// Every member of every part set (and enough of the record for them to be
// valid: a NIC for the associations and the link's MAC).
constexpr std::string_view kEveryPartMember = R"({
  "id": "i-0123456789abcdef0",
  "region": "eu-west-1",
  "nics": [{"mac": "02:00:00:00:00:01", "device_number": 0,
            "private_ipv4s": ["10.0.0.5"], "public_ipv4s": ["203.0.113.25"],
            "ipv4_prefixes": ["10.0.8.0/28"], "ipv6_prefixes": ["2001:db8:1::/80"],
            "ipv4_associations": {"203.0.113.25": "10.0.0.5"}}],
  "network_config": {"links": [{"name": "eth0", "type": "physical", "mac": "02:00:00:00:00:01"}],
                     "networks": [{"link": "eth0", "mode": "dhcp"}]},
  "devices": [{"type": "disk", "bus": "scsi", "address": "0:0", "tags": ["data"]}],
  "dedicated_cpus": [2, 3],
  "vendor_data": {"k": "v"},
  "flavours": ["ec2", "openstack"],
  "ami_manifest_path": "bucket/image.manifest.xml",
  "ancestor_ami_ids": ["ami-0aaaaaaaaaaaaaaa1"],
  "product_codes": ["1abc2defghijklm3nopqrs4tu"],
  "billing_products": ["bp-6ba54002"],
  "instance_action": "none",
  "instance_life_cycle": "spot",
  "profile": "default-hvm",
  "placement_group": "cluster",
  "host_id": "h-0123456789abcdef0",
  "partition_number": 3,
  "monitoring": "enabled",
  "identity_credentials": {"access_key_id": "ASIA1", "secret_access_key": "s", "token": "t",
                           "expiration": "2026-11-25T19:00:00Z"},
  "events": {"rebalance": {"notice_time": "2026-11-25T13:55:00Z"}}
})";

Instance Parse(std::string_view text) {
  auto r = FromJsonText(text);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : Instance{};
}

std::string Refusal(std::string_view text) {
  auto r = FromJsonText(text);
  EXPECT_FALSE(r.ok()) << text;
  return r.ok() ? std::string() : r.status().message();
}

TEST(RecordPartTest, EveryPartHasANameAndWritesWhatItReads) {
  std::set<std::string_view> names;
  ASSERT_FALSE(RecordParts().empty());
  for (const RecordPart* part : RecordParts()) {
    EXPECT_FALSE(part->name.empty());
    EXPECT_TRUE(names.insert(part->name).second) << part->name << " registered twice";
    EXPECT_FALSE(part->fields.empty() && part->nic_fields.empty()) << part->name;
    if (!part->fields.empty()) {
      EXPECT_NE(part->to_json, nullptr) << part->name;
      EXPECT_NE(part->to_text, nullptr) << part->name;
      EXPECT_NE(part->validate, nullptr) << part->name;
    }
    if (!part->nic_fields.empty()) {
      EXPECT_NE(part->nic_to_json, nullptr) << part->name;
      EXPECT_NE(part->nic_to_text, nullptr) << part->name;
      EXPECT_NE(part->check_nic, nullptr) << part->name;
    }
  }
}

// A member read by the record (or by another part) first would never reach
// the part: the part would not write it back. So each member, alone in a
// record, must come back out of its own part's writer, and out of no other.
TEST(RecordPartTest, EachMemberIsItsPartsAlone) {
  const json::object every = ToJson(Parse(kEveryPartMember)).as_object();
  const json::object& every_nic = every.at("nics").as_array()[0].as_object();
  std::set<std::string_view> seen;
  for (const RecordPart* part : RecordParts()) {
    for (const PartField& field : part->fields) {
      EXPECT_TRUE(seen.insert(field.name).second) << field.name << " is in two parts";
      ASSERT_TRUE(every.contains(field.name)) << field.name << " missing from the fixture";
      json::object alone{{"id", "i-1"}, {field.name, every.at(field.name)}};
      if (field.name == "network_config") alone["nics"] = every.at("nics");
      auto in = FromJson(alone);
      ASSERT_TRUE(in.ok()) << field.name << ": " << in.status().ToString();
      for (const RecordPart* writer : RecordParts()) {
        json::object out;
        writer->to_json(*in, out);
        EXPECT_EQ(out.contains(field.name), writer == part)
            << field.name << " written by part " << writer->name;
      }
    }
    for (const NicPartField& field : part->nic_fields) {
      EXPECT_TRUE(seen.insert(field.name).second) << field.name << " is in two parts";
      ASSERT_TRUE(every_nic.contains(field.name)) << field.name << " missing from the fixture";
      json::object nic{{"mac", "02:00:00:00:00:01"},
                       {"private_ipv4s", every_nic.at("private_ipv4s")},
                       {"public_ipv4s", every_nic.at("public_ipv4s")},
                       {field.name, every_nic.at(field.name)}};
      auto in = FromJson(json::object{{"id", "i-1"}, {"nics", json::array{nic}}});
      ASSERT_TRUE(in.ok()) << field.name << ": " << in.status().ToString();
      for (const RecordPart* writer : RecordParts()) {
        if (writer->nic_to_json == nullptr) continue;
        json::object out;
        writer->nic_to_json(in->nics[0], out);
        EXPECT_EQ(out.contains(field.name), writer == part)
            << field.name << " written by part " << writer->name;
      }
    }
  }
}

// The record's own members first, then each part's, in RecordParts() order;
// a NIC's part members after the NIC's own. Both writers agree.
TEST(RecordPartTest, PartMembersAreWrittenAfterTheRecordsInPartOrder) {
  const Instance in = Parse(kEveryPartMember);
  std::map<std::string_view, size_t> owner;  // member -> 1 + index of its part
  for (size_t p = 0; p < RecordParts().size(); ++p) {
    for (const PartField& f : RecordParts()[p]->fields) owner[f.name] = p + 1;
    for (const NicPartField& f : RecordParts()[p]->nic_fields) owner[f.name] = p + 1;
  }
  auto owner_of = [&](std::string_view key) {
    auto it = owner.find(key);
    return it == owner.end() ? size_t{0} : it->second;
  };
  const json::value out = ToJson(in);
  size_t last = 0;
  std::vector<std::string> order;
  for (const auto& member : out.as_object()) {
    order.emplace_back(member.key());
    EXPECT_GE(owner_of(member.key()), last) << member.key() << " written after a later part's";
    last = owner_of(member.key());
  }
  EXPECT_EQ(last, RecordParts().size()) << "the last part wrote nothing";
  last = 0;
  for (const auto& member : out.at("nics").as_array()[0].as_object()) {
    EXPECT_GE(owner_of(member.key()), last) << "nics/0/" << member.key();
    last = owner_of(member.key());
  }
  EXPECT_GT(last, 0u) << "no part wrote a NIC member";
  EXPECT_EQ(ToJsonText(in), json::serialize(out));
  EXPECT_EQ(Parse(ToJsonText(in)), in);
}

// FromJson reports the first offender in the text, whoever owns it.
TEST(RecordPartTest, RefusalsFollowTheDocumentAcrossTheRecordAndItsParts) {
  EXPECT_EQ(Refusal(R"({"id":"i-1","partition_number":"x","name":5})"),
            "/partition_number: expected integer");
  EXPECT_EQ(Refusal(R"({"id":"i-1","name":5,"partition_number":"x"})"), "/name: expected string");
  EXPECT_EQ(Refusal(R"({"id":"i-1","placement_group":"g","region":5,"dedicated_cpus":7})"),
            "/region: expected string");
  EXPECT_EQ(Refusal(R"({"id":"i-1","flavours":["ec2"],"dedicated_cpus":7,"host_id":5})"),
            "/dedicated_cpus: expected array");
  EXPECT_EQ(Refusal(R"({"id":"i-1","placement_group":"g","colour":1})"), "/colour: unknown field");
  EXPECT_EQ(Refusal(R"({"id":"i-1","nics":[{"ipv4_prefixes":5,"mac":7}]})"),
            "/nics/0/ipv4_prefixes: expected array");
  EXPECT_EQ(Refusal(R"({"id":"i-1","nics":[{"mac":7,"ipv4_prefixes":5}]})"),
            "/nics/0/mac: expected string");
  EXPECT_EQ(Refusal(R"({"id":"i-1","nics":[{"ipv6_prefixes":[],"colour":1}]})"),
            "/nics/0/colour: unknown field");
  // A part's member is not a member of another object.
  EXPECT_EQ(Refusal(R"({"id":"i-1","nics":[{"placement_group":"g"}]})"),
            "/nics/0/placement_group: unknown field");
  EXPECT_EQ(Refusal(R"({"id":"i-1","ipv4_prefixes":[]})"), "/ipv4_prefixes: unknown field");
}

TEST(RecordPartTest, AGroupIsMadeOnlyWhenItHoldsSomething) {
  const Instance plain = Parse(R"({"id":"i-1","region":"eu-west-1","flavours":["ec2"]})");
  EXPECT_FALSE(plain.ec2.has_value());
  EXPECT_FALSE(plain.guest.has_value());
  // Members at their defaults set nothing either.
  const Instance defaults = Parse(
      R"({"id":"i-1","partition_number":0,"monitoring":"disabled","ancestor_ami_ids":[],)"
      R"("events":{},"network_config":{},"devices":[],"dedicated_cpus":[]})");
  EXPECT_FALSE(defaults.ec2.has_value());
  EXPECT_FALSE(defaults.guest.has_value());
  EXPECT_EQ(ToJsonText(defaults), ToJsonText(Parse(R"({"id":"i-1"})")));
  // Normalize frees a group that code made but left at its defaults.
  Instance built;
  built.id = "i-2";
  built.network = "default";
  built.ec2.mut().partition_number = 0;
  built.guest.mut().dedicated_cpus.clear();
  Normalize(built);
  EXPECT_FALSE(built.ec2.has_value());
  EXPECT_FALSE(built.guest.has_value());
  EXPECT_TRUE(Validate(built).ok());
}

// Each hook a part registers runs where the record's mapping says: checks on
// Validate (and so on FromJson), limits on CheckLimits, both naming the
// pointer.
TEST(RecordPartTest, ChecksAndLimitsOfThePartsRun) {
  Instance in = Parse(kEveryPartMember);
  ASSERT_TRUE(Validate(in).ok());
  ASSERT_TRUE(CheckLimits(in, RecordLimits()).ok());

  Instance bad_partition = in;
  bad_partition.ec2.mut().partition_number = 9;
  EXPECT_EQ(Validate(bad_partition).message(), "/partition_number: 9 not in 0..7");

  Instance bad_nic = in;
  bad_nic.nics[0].ipv4_prefixes = {"10.0.8.1/28"};
  EXPECT_EQ(Validate(bad_nic).message(),
            "/nics/0/ipv4_prefixes/0: not a CIDR with zero host bits: \"10.0.8.1/28\"");

  Instance bad_guest = in;
  bad_guest.guest.mut().dedicated_cpus = {3, 2};
  EXPECT_EQ(Validate(bad_guest).message(),
            "/dedicated_cpus/1: not sorted and unique (Normalize sorts)");

  Limit exceeded = Limit::kRecordBytes;
  Instance long_group = in;
  long_group.ec2.mut().placement_group = std::string(4097, 'g');
  EXPECT_EQ(CheckLimits(long_group, RecordLimits(), &exceeded).message(),
            "/placement_group: 4097 bytes; the limit is 4096");
  EXPECT_EQ(exceeded, Limit::kTextBytes);

  Instance many_prefixes = in;
  many_prefixes.nics[0].ipv4_prefixes.clear();
  for (int i = 0; i < 65; ++i) many_prefixes.nics[0].ipv4_prefixes.push_back("10.0.8.0/28");
  EXPECT_EQ(CheckLimits(many_prefixes, RecordLimits(), &exceeded).message(),
            "/nics/0/ipv4_prefixes: 65 entries; the limit is 64");
  EXPECT_EQ(exceeded, Limit::kAddressesPerNic);

  Instance many_flavours = in;
  many_flavours.flavours.clear();
  for (int i = 0; i < 1025; ++i) many_flavours.flavours.push_back("f" + std::to_string(i));
  EXPECT_EQ(CheckLimits(many_flavours, RecordLimits(), &exceeded).message(),
            "/flavours: 1025 entries; the limit is 1024");
  EXPECT_EQ(exceeded, Limit::kListItems);
}

// A part's hooks see the record as FromJson has it so far: the guest part's
// check of a physical link's MAC against the NICs is one of those.
TEST(RecordPartTest, APartMayCheckItsFieldsAgainstTheRecords) {
  EXPECT_EQ(Refusal(R"({"id":"i-1","nics":[{"mac":"02:00:00:00:00:01"}],)"
                    R"("network_config":{"links":[{"name":"eth0","mac":"02:00:00:00:00:09"}]}})"),
            "/network_config/links/0/mac: 02:00:00:00:00:09 is not the MAC of any of /nics");
  EXPECT_EQ(Refusal(R"({"id":"i-1","nics":[{"mac":"02:00:00:00:00:01",)"
                    R"("public_ipv4s":["203.0.113.25"],)"
                    R"("ipv4_associations":{"203.0.113.25":"10.0.0.5"}}]})"),
            "/nics/0/ipv4_associations/203.0.113.25: 10.0.0.5 is not one of this NIC's "
            "private_ipv4s");
}

}  // namespace
}  // namespace openimds::model
