// Guest network configuration, devices, vendor data and flavour pinning in
// the Instance JSON mapping (model/network_config_json.h).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

#include "model/instance_json.h"
#include "support/testdata.h"

namespace openimds::model {
namespace {

using ::testing::StartsWith;

using testdata::ReadFile;

std::string Fixture() {
  return ReadFile(std::string(OPENIMDS_TESTDATA_DIR) + "/openstack/instance.json");
}

TEST(NetworkConfigJson, FixtureParsesAndRoundTrips) {
  auto in = FromJsonText(Fixture());
  ASSERT_TRUE(in.ok()) << in.status().ToString();
  const NetworkConfig& nc = in->guest->network_config;
  ASSERT_EQ(nc.links.size(), 5u);
  EXPECT_EQ(nc.links[3].kind, Link::Kind::kBond);
  EXPECT_EQ(nc.links[3].bond_links, (std::vector<std::string>{"nic-b", "nic-c"}));
  EXPECT_EQ(nc.links[4].kind, Link::Kind::kVlan);
  EXPECT_EQ(nc.links[4].vlan_id, 100);
  ASSERT_EQ(nc.networks.size(), 5u);
  EXPECT_EQ(nc.networks[0].mode, AddressMode::kDhcp);
  EXPECT_EQ(nc.networks[1].routes[0].destination, "192.168.0.0/16");
  EXPECT_EQ(nc.networks[4].mode, AddressMode::kSlaac);
  EXPECT_EQ(in->guest->dedicated_cpus, (std::vector<int>{3, 5}));  // sorted by Normalize
  EXPECT_EQ(in->flavours, (model::StrList{"openstack", "ec2"}));
  ASSERT_TRUE(in->guest->vendor_data.has_value());
  EXPECT_EQ(in->guest->devices.size(), 3u);
  EXPECT_TRUE(Validate(*in).ok()) << Validate(*in).ToString();

  auto again = FromJsonText(ToJsonText(*in));
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(*again, *in);
}

// A static network's address is one the guest calls from: after the NICs'
// addresses, each once in CallerAddresses; DHCP and SLAAC networks add none.
TEST(NetworkConfigJson, StaticAddressesAreCallerAddresses) {
  auto in = FromJsonText(Fixture());
  ASSERT_TRUE(in.ok()) << in.status().ToString();
  EXPECT_EQ(CallerAddresses(*in), (std::vector<std::string>{"127.0.0.1", "10.1.0.5",
                                                            "172.16.100.5", "2001:db8:100::5"}));
  std::vector<std::string> each;
  ForEachCallerAddress(*in, [&each](const common::IpAddress& ip) {
    each.push_back(ip.ToString());
  });
  EXPECT_EQ(each, CallerAddresses(*in));

  in->nics.clear();
  EXPECT_EQ(CallerAddresses(*in),
            (std::vector<std::string>{"10.1.0.5", "172.16.100.5", "2001:db8:100::5"}));
  in->guest.mut().network_config = {};
  EXPECT_TRUE(CallerAddresses(*in).empty());
}

TEST(NetworkConfigJson, CanonicalisesSpellings) {
  auto in = FromJsonText(R"({"id":"i-1","network_config":{
      "links":[{"name":"e0","type":"physical","mac":"FA:16:3E:00:00:0A"}],
      "networks":[{"link":"e0","ip_version":6,"address":"2001:DB8:0::5/64",
                   "gateway":"2001:db8:0:0::1","dns_servers":["2001:4860:4860:0::8888"]}]}})");
  ASSERT_TRUE(in.ok()) << in.status().ToString();
  EXPECT_EQ(in->guest->network_config.links[0].mac, "fa:16:3e:00:00:0a");
  EXPECT_EQ(in->guest->network_config.networks[0].address, "2001:db8::5/64");
  EXPECT_EQ(in->guest->network_config.networks[0].gateway, "2001:db8::1");
  EXPECT_EQ(in->guest->network_config.networks[0].dns_servers[0], "2001:4860:4860::8888");
}

struct ErrorCase {
  const char* json;
  const char* message;  // the message must start with this
};

void PrintTo(const ErrorCase& c, std::ostream* os) { *os << c.json; }

class GuestConfigErrorTest : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(GuestConfigErrorTest, NamesThePointer) {
  auto in = FromJsonText(GetParam().json);
  ASSERT_FALSE(in.ok()) << GetParam().json;
  EXPECT_EQ(in.status().code(), common::Code::kInvalidArgument);
  EXPECT_THAT(in.status().message(), StartsWith(GetParam().message)) << GetParam().json;
}

#define LINKS_PREFIX R"({"id":"i-1","network_config":{"links":[)"
#define PHYS R"({"name":"e0","type":"physical","mac":"02:00:00:00:00:01"})"

INSTANTIATE_TEST_SUITE_P(
    Table, GuestConfigErrorTest,
    ::testing::Values(
        // docs/instance.md's example: a VLAN on a link that does not exist.
        ErrorCase{LINKS_PREFIX PHYS
                  R"(,{"name":"v","type":"vlan","vlan_id":5,"vlan_link":"bond9"}]}})",
                  "/network_config/links/1/vlan_link: no link named \"bond9\""},
        ErrorCase{LINKS_PREFIX PHYS R"(,{"name":"v","type":"vlan","vlan_id":0,"vlan_link":"e0"}]}})",
                  "/network_config/links/1/vlan_id: 0 not in 1..4094"},
        ErrorCase{LINKS_PREFIX PHYS R"(,{"name":"v","type":"vlan","vlan_id":7}]}})",
                  "/network_config/links/1/vlan_link: required"},
        ErrorCase{LINKS_PREFIX PHYS
                  R"(,{"name":"v","type":"vlan","vlan_id":7,"vlan_link":"e0"},)"
                  R"({"name":"w","type":"vlan","vlan_id":8,"vlan_link":"v"}]}})",
                  "/network_config/links/2/vlan_link: \"v\" is itself a vlan"},
        ErrorCase{LINKS_PREFIX PHYS R"(,{"name":"e0","type":"physical","mac":"02:00:00:00:00:02"}]}})",
                  "/network_config/links/1/name: \"e0\" also used by /network_config/links/0"},
        ErrorCase{LINKS_PREFIX R"({"name":"e0","type":"physical"}]}})",
                  "/network_config/links/0/mac: required for a physical link"},
        ErrorCase{LINKS_PREFIX R"({"name":"e0","type":"ethernet","mac":"02:00:00:00:00:01"}]}})",
                  "/network_config/links/0/type: expected \"physical\", \"bond\" or \"vlan\""},
        ErrorCase{LINKS_PREFIX PHYS R"(,{"name":"b","type":"bond","bond_mode":"fast","bond_links":["e0"]}]}})",
                  "/network_config/links/1/bond_mode: expected 802.3ad"},
        ErrorCase{LINKS_PREFIX PHYS R"(,{"name":"b","type":"bond","bond_mode":"802.3ad","bond_links":["e0","e9"]}]}})",
                  "/network_config/links/1/bond_links/1: no link named \"e9\""},
        ErrorCase{LINKS_PREFIX PHYS
                  R"(,{"name":"b","type":"bond","bond_mode":"802.3ad","bond_links":["e0"]},)"
                  R"({"name":"c","type":"bond","bond_mode":"802.3ad","bond_links":["e0"]}]}})",
                  "/network_config/links/2/bond_links/0: \"e0\" is already a member of /network_config/links/1"},
        ErrorCase{LINKS_PREFIX R"({"name":"e0","type":"physical","mac":"02:00:00:00:00:01","mtu":20}]}})",
                  "/network_config/links/0/mtu: 20 not in 68..65535"},
        ErrorCase{LINKS_PREFIX PHYS R"(,{"name":"v","type":"vlan","vlan_id":3,"vlan_link":"e0","bond_mode":"802.3ad"}]}})",
                  "/network_config/links/1/bond_mode: only for a bond"},
        // A physical link must be one of the instance's NICs when it has any.
        ErrorCase{R"({"id":"i-1","nics":[{"mac":"02:00:00:00:00:09"}],"network_config":{"links":[)" PHYS "]}}",
                  "/network_config/links/0/mac: 02:00:00:00:00:01 is not the MAC of any of /nics"},
        // Networks.
        ErrorCase{LINKS_PREFIX PHYS R"(],"networks":[{"link":"e1","mode":"dhcp"}]}})",
                  "/network_config/networks/0/link: no link named \"e1\""},
        ErrorCase{LINKS_PREFIX PHYS R"(],"networks":[{"link":"e0"}]}})",
                  "/network_config/networks/0/address: required for a static network"},
        ErrorCase{LINKS_PREFIX PHYS R"(],"networks":[{"link":"e0","address":"10.0.0.5"}]}})",
                  "/network_config/networks/0/address: not an address with prefix"},
        ErrorCase{LINKS_PREFIX PHYS R"(],"networks":[{"link":"e0","address":"10.0.0.5/24","gateway":"fe80::1"}]}})",
                  "/network_config/networks/0/gateway: not an IPv4 address"},
        ErrorCase{LINKS_PREFIX PHYS R"(],"networks":[{"link":"e0","mode":"slaac"}]}})",
                  "/network_config/networks/0/mode: slaac needs ip_version 6"},
        ErrorCase{LINKS_PREFIX PHYS R"(],"networks":[{"link":"e0","mode":"dhcp","address":"10.0.0.5/24"}]}})",
                  "/network_config/networks/0/address: not allowed with dhcp"},
        ErrorCase{LINKS_PREFIX PHYS R"(],"networks":[{"link":"e0","address":"10.0.0.5/24","routes":[{"destination":"10.2.0.1/16","gateway":"10.0.0.1"}]}]}})",
                  "/network_config/networks/0/routes/0/destination: not a CIDR with zero host bits"},
        ErrorCase{LINKS_PREFIX PHYS R"(],"networks":[{"link":"e0","address":"10.0.0.5/24","dns_servers":["dns.example"]}]}})",
                  "/network_config/networks/0/dns_servers/0: not an IP address"},
        ErrorCase{LINKS_PREFIX PHYS R"(],"networks":[{"link":"e0","mode":"dhcp","extra":1}]}})",
                  "/network_config/networks/0/extra: unknown field"},
        // Devices, CPUs, vendor data, flavours.
        ErrorCase{R"({"id":"i-1","devices":[{"type":"nic","bus":"pcie","address":"x","mac":"02:00:00:00:00:01"}]})",
                  "/devices/0/bus: expected pci, usb, scsi, ide, xen or none"},
        ErrorCase{R"({"id":"i-1","devices":[{"type":"nic","bus":"pci","address":"x"}]})",
                  "/devices/0/mac: not a MAC address"},
        ErrorCase{R"({"id":"i-1","devices":[{"type":"disk","bus":"pci","address":"x","vlan":3}]})",
                  "/devices/0/vlan: only for a nic"},
        ErrorCase{R"({"id":"i-1","dedicated_cpus":[1,-2]})", "/dedicated_cpus/0: negative"},
        ErrorCase{R"({"id":"i-1","vendor_data":[1]})", "/vendor_data: expected object"},
        ErrorCase{R"({"id":"i-1","flavours":["openstack","openstack"]})",
                  "/flavours/1: listed twice"},
        ErrorCase{R"({"id":"i-1","flavours":["Open Stack"]})",
                  "/flavours/0: must be 1..32 characters of [a-z0-9_-]"}));

TEST(NetworkConfigValidate, RejectsInstanceBuiltInCode) {
  Instance in;
  in.id = "i-1";
  in.network = "default";
  Link vlan;
  vlan.name = "v";
  vlan.kind = Link::Kind::kVlan;
  vlan.vlan_id = 10;
  vlan.vlan_link = "missing";
  in.guest.mut().network_config.links.push_back(vlan);
  common::Status s = Validate(in);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.message(), StartsWith("/network_config/links/0/vlan_link: no link named"));
}

}  // namespace
}  // namespace openimds::model
