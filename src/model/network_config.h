#pragma once

#include <optional>
#include <string>
#include <vector>

#include "model/str.h"

namespace openimds::model {

// The guest's network configuration: what the guest should configure on its
// interfaces (links, their addresses, routes, resolvers). Generic, not shaped
// after any one cloud: the OpenStack flavour projects it to
// network_data.json, other flavours (NoCloud, GCE, ...) may project it to
// their own formats. An instance without one gets a configuration derived
// from its NICs by the renderer (DHCP on every NIC).
//
// Field semantics and JSON spelling: docs/instance.md, "Guest network
// configuration". Validate() (instance_json.h) checks consistency across
// links and networks and names the offending field with a JSON pointer,
// e.g. "/network_config/links/2/vlan_link: no link named \"bond9\"".

// A static route: traffic for `destination` goes via `gateway`.
struct Route {
  std::string destination;  // CIDR, canonical: "10.20.0.0/16", "::/0"
  std::string gateway;      // address of the same family, canonical
  friend bool operator==(const Route&, const Route&) = default;
};

// How a network's address is obtained.
enum class AddressMode {
  kStatic,           // `address` required
  kDhcp,             // DHCPv4 or DHCPv6 (by ip_version); no address
  kSlaac,            // IPv6 only; address optional (informational)
  kDhcpv6Stateful,   // IPv6 only; address optional
  kDhcpv6Stateless,  // IPv6 only (SLAAC + DHCPv6 options); address optional
};

// One IP network (subnet) on one link.
struct IpNetwork {
  std::string link;        // Link::name it is configured on (required)
  std::string network_id;  // the orchestrator's network id (e.g. Neutron UUID); optional
  int ip_version = 4;      // 4 or 6; must agree with address/gateway/mode
  AddressMode mode = AddressMode::kStatic;
  std::string address;     // interface address with prefix, canonical: "10.0.0.5/24"
  std::string gateway;     // default gateway, canonical address; optional
  std::vector<Route> routes;
  std::vector<std::string> dns_servers;  // resolvers reachable on this network
  friend bool operator==(const IpNetwork&, const IpNetwork&) = default;
};

// One interface as the guest sees it.
struct Link {
  enum class Kind { kPhysical, kBond, kVlan };
  std::string name;  // unique, [A-Za-z0-9._:-]{1,64}: "eth0", "bond0", "bond0.100"
  Kind kind = Kind::kPhysical;
  // Physical: required, lower case; when the instance has NICs it must be one
  // of theirs. Bond and VLAN: optional (the MAC the virtual device takes).
  std::string mac;
  int mtu = 0;  // 0 = unset (DHCP or the default decides); else 68..65535
  // Physical only: the hypervisor's VIF type ("ovs", "bridge", "tap", ...);
  // empty means a plain physical port. Port id of that VIF, optional.
  std::string vif_type;
  std::string vif_id;
  // Bond only: the Linux bonding mode and at least one member link name
  // (physical links, each in at most one bond).
  std::string bond_mode;  // 802.3ad, balance-rr, active-backup, balance-xor,
                          // broadcast, balance-tlb, balance-alb
  std::vector<std::string> bond_links;
  // VLAN only: 802.1Q id (1..4094) on top of `vlan_link` (a physical or bond link).
  int vlan_id = 0;
  std::string vlan_link;
  friend bool operator==(const Link&, const Link&) = default;
};

struct NetworkConfig {
  std::vector<Link> links;
  std::vector<IpNetwork> networks;
  std::vector<std::string> dns_servers;  // global resolvers, canonical addresses
  bool empty() const { return links.empty() && networks.empty() && dns_servers.empty(); }
  friend bool operator==(const NetworkConfig&, const NetworkConfig&) = default;
};

// A tagged guest device (virtual hardware the guest can find by bus address),
// for device-role tagging (OpenStack meta_data.json "devices").
struct Device {
  enum class Kind { kNic, kDisk };
  Kind kind = Kind::kNic;
  std::string bus;      // pci, usb, scsi, ide, xen, none (required)
  std::string address;  // bus address: "0000:00:02.0", "0:0" (required)
  std::vector<std::string> tags;
  // NIC only.
  std::string mac;                  // required for a NIC, lower case
  std::optional<int> vlan;          // 1..4094
  std::optional<bool> vf_trusted;   // SR-IOV VF trust
  // Disk only.
  std::string serial;
  std::string path;
  friend bool operator==(const Device&, const Device&) = default;
};

// The guest configuration part of a record (docs/instance.md "Guest network
// configuration"): JSON in network_config_json.cc, at the record's top level.
struct GuestConfig {
  NetworkConfig network_config;     // links, networks, resolvers; empty = derived from nics
  std::vector<Device> devices;      // tagged devices (device-role tagging)
  std::vector<int> dedicated_cpus;  // pinned host CPU ids, sorted and unique
  // Per-instance vendor data: a JSON object in compact form.
  std::optional<Str> vendor_data;
  friend bool operator==(const GuestConfig&, const GuestConfig&) = default;
};

}  // namespace openimds::model
