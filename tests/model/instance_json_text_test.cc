// ToJsonText writes its text directly; it must equal json::serialize(ToJson(x))
// byte for byte. Also the model's fast paths against the common functions
// whose contracts they copy (base64, canonical IPv4 text).
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "common/encoding.h"
#include "common/ip_address.h"
#include "model/base64.h"
#include "model/canonical_ip.h"
#include "model/instance_json.h"

namespace openimds::model {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void ExpectSameText(const Instance& in) {
  EXPECT_EQ(ToJsonText(in), boost::json::serialize(ToJson(in)));
}

// Every field set, strings that need every kind of escape, and values that
// Validate would refuse (ToJson writes any Instance).
Instance Everything() {
  Instance in;
  in.id = "i-0123456789abcdef0";
  in.network = "tenant-07";
  in.name = std::string("quote\" backslash\\ slash/ \b\f\n\r\t \x01\x1f\x7f caf\xc3\xa9 \xff") +
            std::string(1, '\0');
  in.hostname = "h";
  in.local_hostname = "l";
  in.public_hostname = "p";
  in.account_id = "123456789012";
  in.image_id = "ami-1";
  in.instance_type = "m5.large";
  in.kernel_id = "aki-1";
  in.ramdisk_id = "ari-1";
  in.launch_index = -3;
  in.reservation_id = "r-1";
  in.region = "us-east-1";
  in.availability_zone = "us-east-1a";
  in.availability_zone_id = "use1-az4";
  in.architecture = "";
  in.launch_time = std::chrono::system_clock::from_time_t(1741944413);
  Nic nic;
  nic.mac = "02:1A:2b:3c:4d:5e";
  nic.device_number = 1;
  nic.network_card_index = 2;
  nic.interface_id = "eni-1";
  nic.owner_id = "o";
  nic.local_hostname = "l";
  nic.public_hostname = "p";
  nic.private_ipv4s = {"10.0.0.1", "010.0.0.2"};
  nic.public_ipv4s = {"1.2.3.4"};
  nic.ipv6s = {"2001:DB8::1"};
  nic.subnet_id = "s";
  nic.subnet_ipv4_cidr = "10.0.0.0/24";
  nic.subnet_ipv6_cidrs = {"2001:db8::/64"};
  nic.vpc_id = "v";
  nic.vpc_ipv4_cidr = "10.0.0.0/8";
  nic.vpc_ipv4_cidrs = {"10.0.0.0/8"};
  nic.vpc_ipv6_cidrs = {"2001:db8::/56"};
  nic.security_groups = {"a", "b\"c"};
  nic.security_group_ids = {"sg-1"};
  nic.ipv4_prefixes = {"10.0.1.0/28"};
  nic.ipv6_prefixes = {"2001:db8:1::/80"};
  nic.ipv4_associations = {{"1.2.3.4", "10.0.0.1"}};
  in.nics = {nic, Nic{}};
  in.ssh_keys = {{"k", "ssh-ed25519 AAAA x"}, {"", ""}};
  in.user_data = std::string("\x00\x01\xfe\xff", 4);
  in.tags = {{"Name", "n"}, {"a/b~c", "\"v\""}};
  IamRole iam;
  iam.name = "role";
  iam.instance_profile_arn = "arn";
  iam.instance_profile_id = "AIPA";
  iam.credentials = Credentials{"ASIA", "secret", "token",
                                std::chrono::system_clock::from_time_t(1741966013),
                                std::chrono::system_clock::from_time_t(0)};
  in.iam = iam;
  in.block_devices = {{"ami", "/dev/xvda"}, {"ebs1", "sdb"}};
  in.options.http_tokens = MetadataOptions::HttpTokens::kRequired;
  in.options.http_endpoint_enabled = false;
  in.options.hop_limit = 70;
  in.options.tags_enabled = true;
  in.limits.mut().requests_per_second = 0;
  in.limits.mut().burst = 12;
  in.limits.mut().max_in_flight = 3;
  Link phys;
  phys.name = "eth0";
  phys.kind = Link::Kind::kPhysical;
  phys.mac = "02:1a:2b:3c:4d:5e";
  phys.mtu = 9000;
  phys.vif_type = "ovs";
  phys.vif_id = "port";
  Link bond;
  bond.name = "bond0";
  bond.kind = Link::Kind::kBond;
  bond.bond_mode = "802.3ad";
  bond.bond_links = {"eth0"};
  Link vlan;
  vlan.name = "bond0.100";
  vlan.kind = Link::Kind::kVlan;
  vlan.vlan_id = 100;
  vlan.vlan_link = "bond0";
  in.guest.mut().network_config.links = {phys, bond, vlan};
  IpNetwork net;
  net.link = "eth0";
  net.network_id = "n";
  net.ip_version = 6;
  net.mode = AddressMode::kDhcpv6Stateful;
  net.address = "2001:db8::5/64";
  net.gateway = "2001:db8::1";
  net.routes = {{"::/0", "2001:db8::1"}};
  net.dns_servers = {"2001:db8::53"};
  in.guest.mut().network_config.networks = {net, IpNetwork{}};
  in.guest.mut().network_config.dns_servers = {"1.1.1.1"};
  Device nic_dev;
  nic_dev.kind = Device::Kind::kNic;
  nic_dev.bus = "pci";
  nic_dev.address = "0000:00:03.0";
  nic_dev.tags = {"uplink"};
  nic_dev.mac = "02:1a:2b:3c:4d:5e";
  nic_dev.vlan = 100;
  nic_dev.vf_trusted = false;
  Device disk;
  disk.kind = Device::Kind::kDisk;
  disk.bus = "scsi";
  disk.address = "0:0";
  disk.serial = "s";
  disk.path = "/dev/sdb";
  in.guest.mut().devices = {nic_dev, disk};
  in.guest.mut().dedicated_cpus = {5, 3, -1};
  in.guest.mut().vendor_data = R"({"b": [1, 2.5, -0.0, 1e300, null, true], "a": "\u00e9\n"})";
  in.flavours = {"ec2", "openstack"};
  in.ec2.mut().ami_manifest_path = "(unknown)";
  in.ec2.mut().ancestor_ami_ids = {"ami-0"};
  in.ec2.mut().product_codes = {"pc"};
  in.ec2.mut().billing_products = {"bp"};
  in.ec2.mut().instance_action = "none";
  in.ec2.mut().instance_life_cycle = "spot";
  in.ec2.mut().profile = "default-hvm";
  in.ec2.mut().placement_group = "pg";
  in.ec2.mut().host_id = "h-1";
  in.ec2.mut().partition_number = 3;
  in.ec2.mut().detailed_monitoring = true;
  in.ec2.mut().identity_credentials = Credentials{"A", "S", "T", {}, {}};
  in.ec2.mut().events.spot = SpotInterruption{"terminate", std::chrono::system_clock::from_time_t(1800000000),
                                    {}};
  in.ec2.mut().events.rebalance_notice = TimePoint{};
  ScheduledEvent ev;
  ev.id = "instance-event-1";
  ev.code = "system-reboot";
  ev.state = ScheduledEvent::State::kCanceled;
  ev.description = "d";
  ev.not_before = std::chrono::system_clock::from_time_t(1800000000);
  ev.not_after = std::chrono::system_clock::from_time_t(1800003600);
  in.ec2.mut().events.scheduled = {ev};
  in.ec2.mut().events.lifecycle = {{"InService", {}}, {"Terminated", ev.not_before}};
  return in;
}

TEST(InstanceJsonText, EverythingMatchesTreeSerialisation) { ExpectSameText(Everything()); }

TEST(InstanceJsonText, DefaultsAndEmptiesMatchTreeSerialisation) {
  ExpectSameText(Instance{});
  Instance in;
  in.user_data = "";  // present but empty: written as ""
  in.guest.mut().vendor_data = "not json";  // dropped by both
  in.guest.mut().network_config.dns_servers = {"9.9.9.9"};
  in.ec2.mut().events.lifecycle = {{"", {}}};
  ExpectSameText(in);
  Link odd;
  odd.kind = static_cast<Link::Kind>(42);  // no wire name: no "type"
  in.guest.mut().network_config.links = {odd};
  ExpectSameText(in);
}

TEST(InstanceJsonText, EveryControlCharacterAndByte) {
  Instance in;
  std::string every_byte;
  for (int c = 0; c < 256; ++c) every_byte.push_back(static_cast<char>(c));
  in.name = every_byte;
  in.tags[in.name] = in.name;
  ExpectSameText(in);
}

TEST(InstanceJsonText, TestdataRecordsMatchTreeSerialisation) {
  for (const char* name : {"/openstack/instance.json", "/openstack/nova_instance.json"}) {
    SCOPED_TRACE(name);
    auto in = FromJsonText(ReadFile(std::string(OPENIMDS_TESTDATA_DIR) + name));
    ASSERT_TRUE(in.ok()) << in.status().message();
    ExpectSameText(*in);
    // And what comes back from the text is the same record.
    auto again = FromJsonText(ToJsonText(*in));
    ASSERT_TRUE(again.ok()) << again.status().message();
    EXPECT_EQ(*again, *in);
  }
}

TEST(InstanceJsonText, RandomRecordsMatchTreeSerialisation) {
  std::mt19937 rng(7);
  auto text = [&rng](size_t max) {
    std::string s(rng() % (max + 1), '\0');
    for (char& c : s) c = static_cast<char>(rng() % 4 == 0 ? rng() % 256 : 'a' + rng() % 26);
    return s;
  };
  for (int i = 0; i < 300; ++i) {
    Instance in = i % 2 == 0 ? Everything() : Instance{};
    in.id = text(20);
    in.name = text(40);
    in.launch_index = static_cast<int>(rng());
    if (rng() % 2) in.user_data = text(100);
    for (int t = 0; t < static_cast<int>(rng() % 5); ++t) in.tags[text(8)] = text(30);
    if (rng() % 2) in.nics.resize(rng() % 3);
    for (Nic& nic : in.nics) {
      nic.mac = text(17);
      nic.device_number = static_cast<int>(rng() % 300) - 100;
      nic.private_ipv4s = {text(15), text(15)};
    }
    in.launch_time = TimePoint(std::chrono::seconds(rng()));
    ExpectSameText(in);
  }
}

TEST(ModelBase64, DecodeMatchesCommonBase64Decode) {
  std::mt19937 rng(11);
  const std::string alphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/= \n\r\t-_*\x80";
  std::vector<std::string> inputs = {"", "=", "==", "A", "AA", "AA=", "AA==", "AAA=", "AAAA",
                                     "AB==", "AQ==", "AAE=", "A===", "AA==AA==", "AA=\n=",
                                     " A A A A ", "AAAA\nAAAA", "QUJD", "QUJDRA==", "QUJDRA"};
  for (int i = 0; i < 20000; ++i) {
    std::string s(rng() % 24, 'A');
    for (char& c : s) {
      c = rng() % 3 == 0 ? alphabet[rng() % alphabet.size()] : alphabet[rng() % 64];
    }
    inputs.push_back(s);
    // Valid encodings, sometimes with whitespace inserted.
    std::string bytes(rng() % 40, '\0');
    for (char& c : bytes) c = static_cast<char>(rng());
    std::string enc = common::Base64Encode(bytes);
    if (rng() % 2 && !enc.empty()) enc.insert(rng() % enc.size(), rng() % 2 ? "\n" : " ");
    inputs.push_back(enc);
  }
  for (const std::string& s : inputs) {
    const auto want = common::Base64Decode(s);
    std::string got;
    const bool ok = Base64DecodeTo(s, got);
    ASSERT_EQ(ok, want.has_value()) << "input: " << s;
    if (ok) {
      ASSERT_EQ(got, *want) << "input: " << s;
    }
  }
}

TEST(ModelBase64, EncodeMatchesCommonBase64Encode) {
  std::mt19937 rng(13);
  for (int n = 0; n < 300; ++n) {
    std::string bytes(static_cast<size_t>(n), '\0');
    for (char& c : bytes) c = static_cast<char>(rng());
    std::string got = "prefix";
    AppendBase64(bytes, got);
    EXPECT_EQ(got, "prefix" + common::Base64Encode(bytes));
  }
}

// IsCanonicalIpv4 / IsCanonicalIpv4Cidr true => the general path would keep
// the text unchanged and accept it as IPv4.
void ExpectCanonicalAgrees(const std::string& s) {
  if (IsCanonicalIpv4(s)) {
    auto ip = common::IpAddress::Parse(s);
    ASSERT_TRUE(ip.has_value()) << s;
    EXPECT_TRUE(ip->is_v4()) << s;
    EXPECT_EQ(ip->ToString(), s);
  } else if (auto ip = common::IpAddress::Parse(s); ip && ip->is_v4() && ip->ToString() == s) {
    ADD_FAILURE() << "canonical IPv4 not recognised: " << s;
  }
  if (IsCanonicalIpv4Cidr(s)) {
    auto c = common::Cidr::Parse(s);
    ASSERT_TRUE(c.has_value()) << s;
    EXPECT_TRUE(c->address.is_v4()) << s;
    EXPECT_EQ(c->ToString(), s);
  } else if (auto c = common::Cidr::Parse(s); c && c->address.is_v4() && c->ToString() == s) {
    ADD_FAILURE() << "canonical IPv4 CIDR not recognised: " << s;
  }
}

TEST(ModelCanonicalIp, AgreesWithCommonParseAndToString) {
  std::mt19937 rng(17);
  const std::vector<std::string> parts = {"0", "00", "01", "1", "9", "10", "99", "100", "199",
                                          "255", "256", "300", "999", "1000", "", "-1", "a",
                                          "0x1", " 1", "25"};
  for (int i = 0; i < 20000; ++i) {
    std::string s;
    const int n = 1 + static_cast<int>(rng() % 5);
    for (int k = 0; k < n; ++k) {
      if (k) s += rng() % 10 == 0 ? ":" : ".";
      s += parts[rng() % parts.size()];
    }
    ExpectCanonicalAgrees(s);
    const uint32_t a = static_cast<uint32_t>(rng());
    const std::string dotted = std::to_string(a >> 24) + "." + std::to_string((a >> 16) & 255) +
                               "." + std::to_string((a >> 8) & 255) + "." + std::to_string(a & 255);
    ExpectCanonicalAgrees(dotted);
    const std::vector<std::string> lens = {"0", "8", "24", "32", "33", "024", "", "1a", "100"};
    ExpectCanonicalAgrees(dotted + "/" + lens[rng() % lens.size()]);
    ExpectCanonicalAgrees(s + "/" + lens[rng() % lens.size()]);
  }
  for (int len = 0; len <= 33; ++len) {
    ExpectCanonicalAgrees("10.0.0.0/" + std::to_string(len));
    ExpectCanonicalAgrees("255.255.255.255/" + std::to_string(len));
    ExpectCanonicalAgrees("0.0.0.0/" + std::to_string(len));
  }
  for (const char* s : {"::1", "::ffff:1.2.3.4", "1.2.3.4 ", "1.2.3.4\n", "1.2.3", "1..2.3"}) {
    ExpectCanonicalAgrees(s);
  }
}

}  // namespace
}  // namespace openimds::model
