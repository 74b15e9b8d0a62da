#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <string_view>

#include "model/instance.h"

namespace openimds::flavour::openstack {

// The JSON documents of the /openstack tree as pure functions of the
// canonical instance, in Nova's member order (so the Python-style
// serialisation of python_json.h is byte-identical to Nova's).

// meta_data.json for `version` (an index into kVersions), openstack.md §1.5:
// uuid (= id), meta (= tags, if any), public_keys/keys (ssh_keys, if any),
// hostname (+ "." + dhcp_domain when that is not empty), name, launch_index,
// availability_zone (null when empty), then by version random_seed (the
// given base64 text), project_id (= account_id), devices (nic: vlan ≥
// 2017-02-22, vf_trusted ≥ 2018-08-27; a NIC with none of tags/vlan/
// vf_trusted is left out, as Nova does), dedicated_cpus.
boost::json::object MetaData(const model::Instance& instance, int version,
                             std::string_view dhcp_domain, std::string_view random_seed_b64);

// network_data.json, openstack.md §1.6, from the record's guest network_config:
// links (physical: Nova's legacy VIF type or "phy"; bond: bond_mode,
// bond_links; vlan: vlan_id, vlan_link, vlan_mac_address = its own MAC or
// its parent's), networks ("network<N>"; static ipv4/ipv6 and
// ipv6_<mode> with ip_address, netmask, routes — the gateway as a default
// route first — and network-level dns services; ipv4_dhcp/ipv6_dhcp with no
// address fields), services (every resolver once, networks first, then the
// global ones). An empty network_config is derived from the NICs: one
// "interface<N>" phy link per NIC, ipv4_dhcp if it has IPv4 addresses and
// ipv6_dhcp if it has IPv6 ones. No NICs and no config: {} (as Nova with no
// network info).
boost::json::value NetworkData(const model::Instance& instance);

// Nova's LEGACY_EXPOSED_VIF_TYPES: VIF types shown as themselves; anything
// else is "phy".
bool IsLegacyVifType(std::string_view type);

}  // namespace openimds::flavour::openstack
