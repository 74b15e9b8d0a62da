#include "flavour/openstack/openstack_documents.h"

#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <map>

#include "common/ip_address.h"
#include "flavour/openstack/openstack_versions.h"

namespace openimds::flavour::openstack {
namespace {

namespace json = boost::json;
using model::AddressMode;
using model::IpNetwork;
using model::Link;

// Dotted (IPv4) or RFC 5952 (IPv6) netmask of a prefix length, as netaddr
// prints it ("255.255.255.0", "ffff:ffff:ffff:ffff::").
std::string Netmask(int prefix_len, bool v4) {
  std::array<uint8_t, 16> bytes{};
  const int total = v4 ? 32 : 128;
  for (int bit = 0; bit < std::min(prefix_len, total); ++bit) {
    bytes[bit / 8] |= static_cast<uint8_t>(0x80 >> (bit % 8));
  }
  if (v4) {
    return common::IpAddress::FromV4((uint32_t{bytes[0]} << 24) | (uint32_t{bytes[1]} << 16) |
                                     (uint32_t{bytes[2]} << 8) | bytes[3])
        .ToString();
  }
  return common::IpAddress::FromV6Bytes(bytes).ToString();
}

json::array DnsServices(const std::vector<std::string>& servers) {
  json::array out;
  for (const auto& s : servers) out.emplace_back(json::object{{"type", "dns"}, {"address", s}});
  return out;
}

const Link* FindLink(const model::NetworkConfig& nc, std::string_view name) {
  for (const Link& l : nc.links) {
    if (l.name == name) return &l;
  }
  return nullptr;
}

// The MAC a virtual link shows: its own, else its parent's (VLAN) or its
// first member's (bond). Validation rules out cycles; the depth bound is a
// guard against an instance built in code without validation.
std::string EffectiveMac(const model::NetworkConfig& nc, const Link& link, int depth = 0) {
  if (!link.mac.empty() || depth > 8) return link.mac;
  const Link* next = nullptr;
  if (link.kind == Link::Kind::kVlan) next = FindLink(nc, link.vlan_link);
  if (link.kind == Link::Kind::kBond && !link.bond_links.empty()) {
    next = FindLink(nc, link.bond_links.front());
  }
  return next == nullptr ? std::string() : EffectiveMac(nc, *next, depth + 1);
}

json::value Mtu(int mtu) { return mtu == 0 ? json::value(nullptr) : json::value(mtu); }

json::object LinkJson(const model::NetworkConfig& nc, const Link& l) {
  json::object o;
  o["id"] = l.name;
  switch (l.kind) {
    case Link::Kind::kPhysical:
      if (!l.vif_id.empty()) o["vif_id"] = l.vif_id;
      o["type"] = IsLegacyVifType(l.vif_type) ? l.vif_type : std::string("phy");
      o["mtu"] = Mtu(l.mtu);
      o["ethernet_mac_address"] = l.mac;
      break;
    case Link::Kind::kBond: {
      o["type"] = "bond";
      o["bond_mode"] = l.bond_mode;
      json::array members;
      for (const auto& m : l.bond_links) members.emplace_back(m);
      o["bond_links"] = std::move(members);
      o["mtu"] = Mtu(l.mtu);
      o["ethernet_mac_address"] = EffectiveMac(nc, l);
      break;
    }
    case Link::Kind::kVlan:
      o["type"] = "vlan";
      o["vlan_id"] = l.vlan_id;
      o["vlan_link"] = l.vlan_link;
      // cloud-init's convert_net_json reads vlan_mac_address unconditionally.
      o["vlan_mac_address"] = EffectiveMac(nc, l);
      o["mtu"] = Mtu(l.mtu);
      break;
  }
  return o;
}

std::string NetworkType(const IpNetwork& n) {
  const std::string family = n.ip_version == 4 ? "ipv4" : "ipv6";
  switch (n.mode) {
    case AddressMode::kStatic: return family;
    case AddressMode::kDhcp: return family + "_dhcp";
    case AddressMode::kSlaac: return "ipv6_slaac";
    case AddressMode::kDhcpv6Stateful: return "ipv6_dhcpv6-stateful";
    case AddressMode::kDhcpv6Stateless: return "ipv6_dhcpv6-stateless";
  }
  return family;
}

json::object NetworkJson(const IpNetwork& n, size_t index) {
  json::object o;
  o["id"] = "network" + std::to_string(index);
  o["type"] = NetworkType(n);
  o["link"] = n.link;
  // Nova's DHCP entries carry no address fields; neither do SLAAC/DHCPv6
  // entries the model has no address for.
  if (n.mode == AddressMode::kDhcp || n.address.empty()) {
    if (!n.network_id.empty()) o["network_id"] = n.network_id;
    return o;
  }
  const bool v4 = n.ip_version == 4;
  const auto cidr = common::Cidr::Parse(n.address, /*allow_host_bits=*/true);
  o["ip_address"] = cidr ? cidr->address.ToString() : n.address;
  o["netmask"] = Netmask(cidr ? cidr->prefix_len : (v4 ? 32 : 128), v4);
  json::array routes;
  if (!n.gateway.empty()) {
    routes.emplace_back(json::object{{"network", v4 ? "0.0.0.0" : "::"},
                                     {"netmask", v4 ? "0.0.0.0" : "::"},
                                     {"gateway", n.gateway}});
  }
  for (const model::Route& r : n.routes) {
    const auto dest = common::Cidr::Parse(r.destination);
    if (!dest) continue;  // Validate() rules this out
    routes.emplace_back(json::object{{"network", dest->address.ToString()},
                                     {"netmask", Netmask(dest->prefix_len, v4)},
                                     {"gateway", r.gateway}});
  }
  o["routes"] = std::move(routes);
  if (!n.network_id.empty()) o["network_id"] = n.network_id;
  o["services"] = DnsServices(n.dns_servers);
  return o;
}

json::value DerivedNetworkData(const model::Instance& in) {
  if (in.nics.empty()) return json::object{};
  json::array links;
  json::array networks;
  size_t net = 0;
  for (size_t i = 0; i < in.nics.size(); ++i) {
    const model::Nic& nic = in.nics[i];
    const std::string id = "interface" + std::to_string(i);
    json::object link;
    link["id"] = id;
    if (!nic.interface_id.empty()) link["vif_id"] = nic.interface_id;
    link["type"] = "phy";
    link["mtu"] = nullptr;
    link["ethernet_mac_address"] = nic.mac;
    links.emplace_back(std::move(link));
    if (!nic.private_ipv4s.empty()) {
      networks.emplace_back(json::object{
          {"id", "network" + std::to_string(net++)}, {"type", "ipv4_dhcp"}, {"link", id}});
    }
    if (!nic.ipv6s.empty()) {
      networks.emplace_back(json::object{
          {"id", "network" + std::to_string(net++)}, {"type", "ipv6_dhcp"}, {"link", id}});
    }
  }
  return json::object{{"links", std::move(links)},
                      {"networks", std::move(networks)},
                      {"services", json::array{}}};
}

}  // namespace

bool IsLegacyVifType(std::string_view type) {
  static constexpr std::string_view kLegacy[] = {"bridge", "dvs",       "hw_veb", "hyperv",
                                                 "ovs",    "tap",       "vhostuser", "vif"};
  return std::find(std::begin(kLegacy), std::end(kLegacy), type) != std::end(kLegacy);
}

json::object MetaData(const model::Instance& in, int version, std::string_view dhcp_domain,
                      std::string_view random_seed_b64) {
  json::object md;
  md["uuid"] = in.id;
  if (!in.tags.empty()) {
    json::object meta;
    for (const auto& [k, v] : in.tags) meta[k] = v;
    md["meta"] = std::move(meta);
  }
  if (!in.ssh_keys.empty()) {
    json::object public_keys;
    json::array keys;
    for (const model::SshKey& k : in.ssh_keys) {
      public_keys[k.name] = k.key;
      keys.emplace_back(json::object{{"name", k.name}, {"type", "ssh"}, {"data", k.key}});
    }
    md["public_keys"] = std::move(public_keys);
    md["keys"] = std::move(keys);
  }
  std::string hostname = in.hostname.empty() ? in.local_hostname : in.hostname;
  if (!dhcp_domain.empty()) {
    hostname.push_back('.');
    hostname.append(dhcp_domain);
  }
  md["hostname"] = hostname;
  md["name"] = in.name;
  md["launch_index"] = in.launch_index;
  md["availability_zone"] =
      in.availability_zone.empty() ? json::value(nullptr) : json::value(in.availability_zone);
  if (version >= kGrizzly) md["random_seed"] = random_seed_b64;
  if (version >= kLiberty) md["project_id"] = in.account_id;
  if (version >= kNewtonOne) {
    json::array devices;
    for (const model::Device& d : in.guest->devices) {
      json::object o;
      if (d.kind == model::Device::Kind::kNic) {
        if (version >= kOcata && d.vlan) o["vlan"] = *d.vlan;
        if (version >= kRocky) o["vf_trusted"] = d.vf_trusted.value_or(false);
        o["type"] = "nic";
        o["mac"] = d.mac;
        if (d.tags.empty() && !o.contains("vlan") && !o.contains("vf_trusted")) continue;
      } else {
        o["type"] = "disk";
        if (!d.serial.empty()) o["serial"] = d.serial;
        if (!d.path.empty()) o["path"] = d.path;
      }
      o["bus"] = d.bus;
      o["address"] = d.address;
      if (!d.tags.empty()) {
        json::array tags;
        for (const auto& t : d.tags) tags.emplace_back(t);
        o["tags"] = std::move(tags);
      }
      devices.emplace_back(std::move(o));
    }
    md["devices"] = std::move(devices);
  }
  if (version >= kVictoria) {
    json::array cpus;
    for (int c : in.guest->dedicated_cpus) cpus.emplace_back(c);
    md["dedicated_cpus"] = std::move(cpus);
  }
  return md;
}

json::value NetworkData(const model::Instance& in) {
  const model::NetworkConfig& nc = in.guest->network_config;
  if (nc.empty()) return DerivedNetworkData(in);
  json::array links;
  for (const Link& l : nc.links) links.emplace_back(LinkJson(nc, l));
  json::array networks;
  std::vector<std::string> resolvers;
  auto add_resolver = [&resolvers](const std::string& a) {
    if (std::find(resolvers.begin(), resolvers.end(), a) == resolvers.end()) resolvers.push_back(a);
  };
  for (size_t i = 0; i < nc.networks.size(); ++i) {
    networks.emplace_back(NetworkJson(nc.networks[i], i));
    for (const auto& d : nc.networks[i].dns_servers) add_resolver(d);
  }
  for (const auto& d : nc.dns_servers) add_resolver(d);
  return json::object{{"links", std::move(links)},
                      {"networks", std::move(networks)},
                      {"services", DnsServices(resolvers)}};
}

}  // namespace openimds::flavour::openstack
