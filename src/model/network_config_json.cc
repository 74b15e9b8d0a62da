#include "model/network_config_json.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <string>

#include <boost/json.hpp>

#include "common/ip_address.h"
#include "model/limit_checker.h"
#include "model/text_checks.h"

namespace openimds::model {

namespace json = boost::json;
using common::Status;
using namespace json_reader;  // NOLINT: the reader toolkit

namespace {

constexpr std::pair<AddressMode, std::string_view> kModes[] = {
    {AddressMode::kStatic, "static"},
    {AddressMode::kDhcp, "dhcp"},
    {AddressMode::kSlaac, "slaac"},
    {AddressMode::kDhcpv6Stateful, "dhcpv6-stateful"},
    {AddressMode::kDhcpv6Stateless, "dhcpv6-stateless"},
};

auto Mode(AddressMode& out) {
  return [&out](const json::value& v, const Path& at) {
    const char* want = "expected \"static\", \"dhcp\", \"slaac\", \"dhcpv6-stateful\" or "
                       "\"dhcpv6-stateless\"";
    if (!v.is_string()) return Err(at, want);
    for (const auto& [mode, name] : kModes) {
      if (v.get_string() == name) {
        out = mode;
        return Status::Ok();
      }
    }
    return Err(at, want);
  };
}

constexpr std::pair<Link::Kind, std::string_view> kLinkKinds[] = {
    {Link::Kind::kPhysical, "physical"},
    {Link::Kind::kBond, "bond"},
    {Link::Kind::kVlan, "vlan"},
};

auto LinkKind(Link::Kind& out) {
  return [&out](const json::value& v, const Path& at) {
    if (v.is_string()) {
      for (const auto& [kind, name] : kLinkKinds) {
        if (v.get_string() == name) {
          out = kind;
          return Status::Ok();
        }
      }
    }
    return Err(at, "expected \"physical\", \"bond\" or \"vlan\"");
  };
}

Status ReadRoute(const json::value& v, const Path& at, Route& r) {
  return ReadObject(v, at, {{"destination", String(r.destination)}, {"gateway", String(r.gateway)}});
}

Status ReadLink(const json::value& v, const Path& at, Link& l) {
  return ReadObject(v, at,
                    {
                        {"name", String(l.name)},
                        {"type", LinkKind(l.kind)},
                        {"mac", String(l.mac)},
                        {"mtu", Int(l.mtu)},
                        {"vif_type", String(l.vif_type)},
                        {"vif_id", String(l.vif_id)},
                        {"bond_mode", String(l.bond_mode)},
                        {"bond_links", StringArray(l.bond_links)},
                        {"vlan_id", Int(l.vlan_id)},
                        {"vlan_link", String(l.vlan_link)},
                    });
}

Status ReadNetwork(const json::value& v, const Path& at, IpNetwork& n) {
  return ReadObject(v, at,
                    {
                        {"link", String(n.link)},
                        {"network_id", String(n.network_id)},
                        {"ip_version", Int(n.ip_version)},
                        {"mode", Mode(n.mode)},
                        {"address", String(n.address)},
                        {"gateway", String(n.gateway)},
                        {"routes", Array(n.routes, ReadRoute)},
                        {"dns_servers", StringArray(n.dns_servers)},
                    });
}

// Canonical text.

void CanonAddress(std::string& a) {
  if (auto ip = common::IpAddress::Parse(a)) a = ip->ToString();
}

// "10.0.0.5/24" keeps its host bits.
std::optional<common::Cidr> ParseInterfaceAddress(std::string_view text) {
  return common::Cidr::Parse(text, /*allow_host_bits=*/true);
}

void CanonInterfaceAddress(std::string& a) {
  if (auto c = ParseInterfaceAddress(a)) a = c->address.ToString() + "/" + std::to_string(c->prefix_len);
}

void CanonCidr(std::string& a) {
  if (auto c = common::Cidr::Parse(a)) a = c->ToString();
}

Status CheckAddress(const std::string& at, const std::string& text, int ip_version) {
  auto ip = common::IpAddress::Parse(text);
  if (!ip) return Err(at, "not an IP address");
  if (ip->is_v4() != (ip_version == 4)) {
    return Err(at, ip_version == 4 ? "not an IPv4 address" : "not an IPv6 address");
  }
  if (ip->ToString() != text) return Err(at, "not canonical (want " + ip->ToString() + ")");
  return Status::Ok();
}

// Either family; returns the version in `version`.
Status CheckAnyAddress(const std::string& at, const std::string& text) {
  auto ip = common::IpAddress::Parse(text);
  if (!ip) return Err(at, "not an IP address");
  return CheckAddress(at, text, ip->is_v4() ? 4 : 6);
}

Status CheckRoute(const std::string& at, const Route& r, int ip_version) {
  auto c = common::Cidr::Parse(r.destination);
  if (!c) return Err(Child(at, "destination"), "not a CIDR with zero host bits");
  if (c->address.is_v4() != (ip_version == 4)) {
    return Err(Child(at, "destination"),
               "not an IPv" + std::to_string(ip_version) + " CIDR (the network's family)");
  }
  if (c->ToString() != r.destination) {
    return Err(Child(at, "destination"), "not canonical (want " + c->ToString() + ")");
  }
  if (r.gateway.empty()) return Err(Child(at, "gateway"), "required");
  return CheckAddress(Child(at, "gateway"), r.gateway, ip_version);
}

constexpr std::string_view kBondModes[] = {"802.3ad",   "balance-rr",  "active-backup",
                                           "balance-xor", "broadcast", "balance-tlb",
                                           "balance-alb"};

}  // namespace

Status CheckNetworkConfig(const Instance& in) {
  const NetworkConfig& nc = in.guest->network_config;
  // Most records have none; skip building the MAC set for nothing.
  if (nc.empty()) return Status::Ok();
  const std::string root = "/network_config";
  std::set<std::string> nic_macs;
  for (const Nic& nic : in.nics) nic_macs.insert(nic.mac);

  std::map<std::string, size_t> by_name;  // link name -> index
  for (size_t i = 0; i < nc.links.size(); ++i) {
    const Link& l = nc.links[i];
    const std::string at = Child(Child(root, "links"), i);
    if (l.name.empty() || l.name.size() > 64 || !AllOf(l.name, "._:-")) {
      return Err(Child(at, "name"), "must be 1..64 characters of [A-Za-z0-9._:-]");
    }
    if (auto [it, fresh] = by_name.emplace(l.name, i); !fresh) {
      return Err(Child(at, "name"),
                 "\"" + l.name + "\" also used by " + Child(Child(root, "links"), it->second));
    }
  }
  std::map<std::string, size_t> bonded;  // member link -> bond index
  std::set<std::string> macs;
  for (size_t i = 0; i < nc.links.size(); ++i) {
    const Link& l = nc.links[i];
    const std::string at = Child(Child(root, "links"), i);
    if (!l.mac.empty()) {
      if (Status s = CheckMac(Child(at, "mac"), l.mac); !s.ok()) return s;
    }
    if (l.mtu != 0 && (l.mtu < 68 || l.mtu > 65535)) {
      return Err(Child(at, "mtu"), std::to_string(l.mtu) + " not in 68..65535");
    }
    if (Status s = CheckLine(Child(at, "vif_type"), l.vif_type); !s.ok()) return s;
    if (Status s = CheckLine(Child(at, "vif_id"), l.vif_id); !s.ok()) return s;
    const bool is_bond = l.kind == Link::Kind::kBond;
    const bool is_vlan = l.kind == Link::Kind::kVlan;
    const bool is_phys = l.kind == Link::Kind::kPhysical;
    if (!is_bond && !l.bond_mode.empty()) return Err(Child(at, "bond_mode"), "only for a bond");
    if (!is_bond && !l.bond_links.empty()) return Err(Child(at, "bond_links"), "only for a bond");
    if (!is_vlan && l.vlan_id != 0) return Err(Child(at, "vlan_id"), "only for a vlan");
    if (!is_vlan && !l.vlan_link.empty()) return Err(Child(at, "vlan_link"), "only for a vlan");
    if (!is_phys && (!l.vif_type.empty() || !l.vif_id.empty())) {
      return Err(Child(at, l.vif_type.empty() ? "vif_id" : "vif_type"), "only for a physical link");
    }
    if (is_phys) {
      if (l.mac.empty()) return Err(Child(at, "mac"), "required for a physical link");
      if (!nic_macs.empty() && nic_macs.count(l.mac) == 0) {
        return Err(Child(at, "mac"), l.mac + " is not the MAC of any of /nics");
      }
      if (auto [it, fresh] = macs.emplace(l.mac); !fresh) {
        return Err(Child(at, "mac"), l.mac + " used by two physical links");
      }
    }
    if (is_bond) {
      if (std::find(std::begin(kBondModes), std::end(kBondModes), l.bond_mode) ==
          std::end(kBondModes)) {
        return Err(Child(at, "bond_mode"),
                   "expected 802.3ad, balance-rr, active-backup, balance-xor, broadcast, "
                   "balance-tlb or balance-alb");
      }
      if (l.bond_links.empty()) return Err(Child(at, "bond_links"), "at least one link required");
      for (size_t m = 0; m < l.bond_links.size(); ++m) {
        const std::string p = Child(Child(at, "bond_links"), m);
        auto it = by_name.find(l.bond_links[m]);
        if (it == by_name.end()) return Err(p, "no link named \"" + l.bond_links[m] + "\"");
        if (nc.links[it->second].kind != Link::Kind::kPhysical) {
          return Err(p, "\"" + l.bond_links[m] + "\" is not a physical link");
        }
        if (auto [b, fresh] = bonded.emplace(l.bond_links[m], i); !fresh) {
          return Err(p, "\"" + l.bond_links[m] + "\" is already a member of " +
                            Child(Child(root, "links"), b->second));
        }
      }
    }
    if (is_vlan) {
      if (l.vlan_id < 1 || l.vlan_id > 4094) {
        return Err(Child(at, "vlan_id"), std::to_string(l.vlan_id) + " not in 1..4094");
      }
      auto it = by_name.find(l.vlan_link);
      if (l.vlan_link.empty()) return Err(Child(at, "vlan_link"), "required for a vlan");
      if (it == by_name.end()) {
        return Err(Child(at, "vlan_link"), "no link named \"" + l.vlan_link + "\"");
      }
      if (nc.links[it->second].kind == Link::Kind::kVlan) {
        return Err(Child(at, "vlan_link"), "\"" + l.vlan_link + "\" is itself a vlan");
      }
    }
  }

  for (size_t i = 0; i < nc.networks.size(); ++i) {
    const IpNetwork& n = nc.networks[i];
    const std::string at = Child(Child(root, "networks"), i);
    if (n.link.empty()) return Err(Child(at, "link"), "required");
    if (by_name.count(n.link) == 0) return Err(Child(at, "link"), "no link named \"" + n.link + "\"");
    if (bonded.count(n.link) != 0) {
      return Err(Child(at, "link"), "\"" + n.link + "\" is a bond member; configure the bond");
    }
    if (Status s = CheckLine(Child(at, "network_id"), n.network_id); !s.ok()) return s;
    if (n.ip_version != 4 && n.ip_version != 6) {
      return Err(Child(at, "ip_version"), std::to_string(n.ip_version) + " is not 4 or 6");
    }
    const bool v6_only = n.mode == AddressMode::kSlaac || n.mode == AddressMode::kDhcpv6Stateful ||
                         n.mode == AddressMode::kDhcpv6Stateless;
    if (v6_only && n.ip_version != 6) {
      return Err(Child(at, "mode"), std::string(AddressModeName(n.mode)) + " needs ip_version 6");
    }
    if (n.mode == AddressMode::kStatic && n.address.empty()) {
      return Err(Child(at, "address"), "required for a static network");
    }
    if (n.mode == AddressMode::kDhcp && !n.address.empty()) {
      return Err(Child(at, "address"), "not allowed with dhcp (the server assigns it)");
    }
    if (!n.address.empty()) {
      auto c = ParseInterfaceAddress(n.address);
      if (!c) return Err(Child(at, "address"), "not an address with prefix (want 10.0.0.5/24)");
      if (c->address.is_v4() != (n.ip_version == 4)) {
        return Err(Child(at, "address"), "not an IPv" + std::to_string(n.ip_version) + " address");
      }
      std::string canon = n.address;
      CanonInterfaceAddress(canon);
      if (canon != n.address) return Err(Child(at, "address"), "not canonical (want " + canon + ")");
    }
    if (!n.gateway.empty()) {
      if (Status s = CheckAddress(Child(at, "gateway"), n.gateway, n.ip_version); !s.ok()) return s;
    }
    for (size_t r = 0; r < n.routes.size(); ++r) {
      if (Status s = CheckRoute(Child(Child(at, "routes"), r), n.routes[r], n.ip_version); !s.ok()) {
        return s;
      }
    }
    for (size_t d = 0; d < n.dns_servers.size(); ++d) {
      if (Status s = CheckAnyAddress(Child(Child(at, "dns_servers"), d), n.dns_servers[d]);
          !s.ok()) {
        return s;
      }
    }
  }
  for (size_t d = 0; d < nc.dns_servers.size(); ++d) {
    if (Status s = CheckAnyAddress(Child(Child(root, "dns_servers"), d), nc.dns_servers[d]);
        !s.ok()) {
      return s;
    }
  }
  return Status::Ok();
}

std::string_view AddressModeName(AddressMode mode) {
  for (const auto& [m, name] : kModes) {
    if (m == mode) return name;
  }
  return "static";
}

Status ReadNetworkConfig(const json::value& v, const Path& at, NetworkConfig& out) {
  return ReadObject(v, at,
                    {
                        {"links", Array(out.links, ReadLink)},
                        {"networks", Array(out.networks, ReadNetwork)},
                        {"dns_servers", StringArray(out.dns_servers)},
                    });
}

void CanonicaliseNetworkConfig(NetworkConfig& nc) {
  for (Link& l : nc.links) {
    if (IsMac(l.mac)) l.mac = Lower(l.mac);
  }
  for (IpNetwork& n : nc.networks) {
    CanonInterfaceAddress(n.address);
    CanonAddress(n.gateway);
    for (Route& r : n.routes) {
      CanonCidr(r.destination);
      CanonAddress(r.gateway);
    }
    for (auto& d : n.dns_servers) CanonAddress(d);
  }
  for (auto& d : nc.dns_servers) CanonAddress(d);
}

Status CheckNetworkConfigLimits(const NetworkConfig& nc, const LimitChecker& c) {
  const Path root("/network_config");
  const Path links(root, "links");
  if (Status s = c.Count(links, nc.links.size()); !s.ok()) return s;
  for (size_t i = 0; i < nc.links.size(); ++i) {
    const Link& l = nc.links[i];
    const Path at(links, i);
    const std::pair<const char*, const std::string*> texts[] = {
        {"name", &l.name},         {"mac", &l.mac},
        {"vif_type", &l.vif_type}, {"vif_id", &l.vif_id},
        {"bond_mode", &l.bond_mode}, {"vlan_link", &l.vlan_link},
    };
    for (const auto& [name, value] : texts) {
      if (Status s = c.Bytes(Path(at, name), *value); !s.ok()) return s;
    }
    if (Status s = c.TextList(Path(at, "bond_links"), l.bond_links); !s.ok()) return s;
  }
  const Path networks(root, "networks");
  if (Status s = c.Count(networks, nc.networks.size()); !s.ok()) return s;
  for (size_t i = 0; i < nc.networks.size(); ++i) {
    const IpNetwork& n = nc.networks[i];
    const Path at(networks, i);
    const std::pair<const char*, const std::string*> texts[] = {
        {"link", &n.link},
        {"network_id", &n.network_id},
        {"address", &n.address},
        {"gateway", &n.gateway},
    };
    for (const auto& [name, value] : texts) {
      if (Status s = c.Bytes(Path(at, name), *value); !s.ok()) return s;
    }
    const Path routes(at, "routes");
    if (Status s = c.Count(routes, n.routes.size()); !s.ok()) return s;
    for (size_t r = 0; r < n.routes.size(); ++r) {
      const Path route(routes, r);
      if (Status s = c.Bytes(Path(route, "destination"), n.routes[r].destination); !s.ok()) {
        return s;
      }
      if (Status s = c.Bytes(Path(route, "gateway"), n.routes[r].gateway); !s.ok()) return s;
    }
    if (Status s = c.TextList(Path(at, "dns_servers"), n.dns_servers); !s.ok()) return s;
  }
  return c.TextList(Path(root, "dns_servers"), nc.dns_servers);
}

void NetworkConfigToJson(const NetworkConfig& nc, json::object& o) {
  using json_writer::PutArray;
  using json_writer::PutString;
  if (!nc.empty()) {
    json::object out;
    if (!nc.links.empty()) {
      json::array links;
      for (const Link& l : nc.links) {
        json::object j;
        j["name"] = l.name;
        for (const auto& [kind, name] : kLinkKinds) {
          if (kind == l.kind) j["type"] = name;
        }
        PutString(j, "mac", l.mac);
        if (l.mtu != 0) j["mtu"] = l.mtu;
        PutString(j, "vif_type", l.vif_type);
        PutString(j, "vif_id", l.vif_id);
        PutString(j, "bond_mode", l.bond_mode);
        PutArray(j, "bond_links", l.bond_links);
        if (l.vlan_id != 0) j["vlan_id"] = l.vlan_id;
        PutString(j, "vlan_link", l.vlan_link);
        links.emplace_back(std::move(j));
      }
      out["links"] = std::move(links);
    }
    if (!nc.networks.empty()) {
      json::array networks;
      for (const IpNetwork& n : nc.networks) {
        json::object j;
        j["link"] = n.link;
        PutString(j, "network_id", n.network_id);
        j["ip_version"] = n.ip_version;
        j["mode"] = AddressModeName(n.mode);
        PutString(j, "address", n.address);
        PutString(j, "gateway", n.gateway);
        if (!n.routes.empty()) {
          json::array routes;
          for (const Route& r : n.routes) {
            routes.emplace_back(json::object{{"destination", r.destination}, {"gateway", r.gateway}});
          }
          j["routes"] = std::move(routes);
        }
        PutArray(j, "dns_servers", n.dns_servers);
        networks.emplace_back(std::move(j));
      }
      out["networks"] = std::move(networks);
    }
    PutArray(out, "dns_servers", nc.dns_servers);
    o["network_config"] = std::move(out);
  }
}

// Mirrors NetworkConfigToJson member for member (tests/model compares them).
void NetworkConfigToText(const NetworkConfig& nc, json_writer::Writer& w) {
  if (!nc.empty()) {
    w.Key("network_config");
    w.BeginObject();
    if (!nc.links.empty()) {
      w.Key("links");
      w.BeginArray();
      for (const Link& l : nc.links) {
        w.BeginObject();
        w.Key("name");
        w.String(l.name);
        for (const auto& [kind, name] : kLinkKinds) {
          if (kind == l.kind) {
            w.Key("type");
            w.String(name);
          }
        }
        w.PutString("mac", l.mac);
        if (l.mtu != 0) {
          w.Key("mtu");
          w.Int(l.mtu);
        }
        w.PutString("vif_type", l.vif_type);
        w.PutString("vif_id", l.vif_id);
        w.PutString("bond_mode", l.bond_mode);
        w.PutArray("bond_links", l.bond_links);
        if (l.vlan_id != 0) {
          w.Key("vlan_id");
          w.Int(l.vlan_id);
        }
        w.PutString("vlan_link", l.vlan_link);
        w.EndObject();
      }
      w.EndArray();
    }
    if (!nc.networks.empty()) {
      w.Key("networks");
      w.BeginArray();
      for (const IpNetwork& n : nc.networks) {
        w.BeginObject();
        w.Key("link");
        w.String(n.link);
        w.PutString("network_id", n.network_id);
        w.Key("ip_version");
        w.Int(n.ip_version);
        w.Key("mode");
        w.String(AddressModeName(n.mode));
        w.PutString("address", n.address);
        w.PutString("gateway", n.gateway);
        if (!n.routes.empty()) {
          w.Key("routes");
          w.BeginArray();
          for (const Route& r : n.routes) {
            w.BeginObject();
            w.Key("destination");
            w.String(r.destination);
            w.Key("gateway");
            w.String(r.gateway);
            w.EndObject();
          }
          w.EndArray();
        }
        w.PutArray("dns_servers", n.dns_servers);
        w.EndObject();
      }
      w.EndArray();
    }
    w.PutArray("dns_servers", nc.dns_servers);
    w.EndObject();
  }
}

}  // namespace openimds::model
