#include "catalog/catalog.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "common/ip_address.h"
#include "model/instance_json.h"

namespace openimds::catalog {
namespace {

Entry Make(const std::string& json) {
  auto in = model::FromJsonText(json);
  EXPECT_TRUE(in.ok()) << in.status().ToString() << "\n" << json;
  Entry e;
  e.instance = std::make_shared<const model::Instance>(std::move(*in));
  e.revision = 1;
  return e;
}

Entry Vm(const std::string& id, const std::string& network, const std::string& mac,
         const std::string& ip) {
  return Make(R"({"id":")" + id + R"(","network":")" + network + R"(","nics":[{"mac":")" + mac +
              R"(","private_ipv4s":[")" + ip + R"("]}]})");
}

// The id of the instance answering from `ip` in `network`, "" for none.
std::string Holder(const Snapshot& snap, const std::string& network, const std::string& ip) {
  const auto addr = common::IpAddress::Parse(ip);
  EXPECT_TRUE(addr.has_value()) << ip;
  const model::Instance* in = snap.FindByAddress(network, *addr);
  return in == nullptr ? "" : in->id;
}

TEST(SnapshotTest, FindsClaimedAddressesPerNetwork) {
  std::vector<Entry> entries = {Vm("a", "blue", "02:00:00:00:00:0a", "10.0.0.5"),
                                Vm("b", "green", "02:00:00:00:00:0b", "10.0.0.5")};
  auto snap = Snapshot::Build(std::move(entries), 1);
  EXPECT_EQ(Holder(*snap, "blue", "10.0.0.5"), "a");
  EXPECT_EQ(Holder(*snap, "green", "10.0.0.5"), "b");
  EXPECT_EQ(Holder(*snap, "red", "10.0.0.5"), "");
  EXPECT_EQ(Holder(*snap, "blue", "10.0.0.6"), "");
  ASSERT_NE(snap->FindById("a"), nullptr);
  EXPECT_EQ(snap->FindById("zz"), nullptr);
}

TEST(SnapshotTest, FindsStaticNetworkConfigAddresses) {
  auto snap = Snapshot::Build({Make(R"({"id":"nc","network":"blue","network_config":{
      "links":[{"name":"e0","type":"physical","mac":"02:00:00:00:00:0c"}],
      "networks":[{"link":"e0","address":"192.0.2.7/24"},
                  {"link":"e0","ip_version":6,"address":"2001:db8::7/64"}]}})")},
                              1);
  EXPECT_EQ(Holder(*snap, "blue", "192.0.2.7"), "nc");
  EXPECT_EQ(Holder(*snap, "blue", "2001:db8::7"), "nc");
}

TEST(SnapshotTest, FindsTheEui64LinkLocalAddressOfEveryNic) {
  auto snap = Snapshot::Build(
      {Make(R"({"id":"two-nics","network":"blue","nics":[
           {"mac":"52:54:00:12:34:56","device_number":0,"private_ipv4s":["10.0.0.5"]},
           {"mac":"fa:16:3e:aa:00:01","device_number":1}]})"),
       Vm("other", "green", "52:54:00:12:34:57", "10.0.0.5")},
      1);
  EXPECT_EQ(Holder(*snap, "blue", "fe80::5054:ff:fe12:3456"), "two-nics");
  EXPECT_EQ(Holder(*snap, "blue", "fe80::f816:3eff:feaa:1"), "two-nics");
  EXPECT_EQ(Holder(*snap, "green", "fe80::5054:ff:fe12:3457"), "other");
  // Link-local addresses are scoped by the network like any other.
  EXPECT_EQ(Holder(*snap, "green", "fe80::5054:ff:fe12:3456"), "");
  // Only the EUI-64 form: other link-local addresses are not derived.
  EXPECT_EQ(Holder(*snap, "blue", "fe80::1"), "");
}

TEST(SnapshotTest, ClaimedAddressWinsOverDerivedOne) {
  // "claimer" says it answers from the address "derived"'s MAC would give.
  auto snap = Snapshot::Build(
      {Vm("derived", "blue", "52:54:00:12:34:56", "10.0.0.5"),
       Make(R"({"id":"claimer","network":"blue","nics":[{"mac":"02:00:00:00:00:09",
           "ipv6s":["fe80::5054:ff:fe12:3456"]}]})")},
      1);
  EXPECT_EQ(Holder(*snap, "blue", "fe80::5054:ff:fe12:3456"), "claimer");
  EXPECT_EQ(Holder(*snap, "blue", "10.0.0.5"), "derived");
}

TEST(SnapshotTest, AmbiguousDerivedAddressIsLeftOutForBoth) {
  // One MAC on two instances of one network: nobody answers from its
  // link-local address (Neutron: more than one port, 404); their own
  // addresses still work.
  auto snap = Snapshot::Build({Vm("x", "blue", "52:54:00:12:34:56", "10.0.0.5"),
                               Vm("y", "blue", "52:54:00:12:34:56", "10.0.0.6")},
                              1);
  EXPECT_EQ(Holder(*snap, "blue", "fe80::5054:ff:fe12:3456"), "");
  EXPECT_EQ(Holder(*snap, "blue", "10.0.0.5"), "x");
  EXPECT_EQ(Holder(*snap, "blue", "10.0.0.6"), "y");
}

TEST(CatalogTest, PublishesDerivedAddressesWithEveryChange) {
  Catalog catalog;
  Catalog::Reader reader(catalog);
  const auto ll = *common::IpAddress::Parse("fe80::5054:ff:fe12:3456");
  EXPECT_EQ(reader.Get().FindByAddress("blue", ll), nullptr);
  catalog.Upsert(Vm("a", "blue", "52:54:00:12:34:56", "10.0.0.5"));
  ASSERT_NE(reader.Get().FindByAddress("blue", ll), nullptr);
  EXPECT_EQ(reader.Get().FindByAddress("blue", ll)->id, "a");
  // A new MAC moves the derived address with it.
  catalog.Upsert(Vm("a", "blue", "52:54:00:12:34:99", "10.0.0.5"));
  EXPECT_EQ(reader.Get().FindByAddress("blue", ll), nullptr);
  catalog.Remove("a");
  EXPECT_EQ(reader.Get().size(), 0u);
}

}  // namespace
}  // namespace openimds::catalog
