#pragma once

#include <string_view>

#include <boost/json/fwd.hpp>

#include "common/status.h"
#include "model/instance.h"
#include "model/json_reader.h"
#include "model/json_writer.h"
#include "model/network_config.h"

// The guest's network configuration ("network_config": links, networks,
// resolvers; docs/instance.md "Guest network configuration"): JSON,
// canonical form and checks. Part of the guest configuration
// (guest_config_json.h). Errors are InvalidArgument starting with the JSON
// pointer of the offender. Internal to the model module.
namespace openimds::model {

class LimitChecker;

// Types only (values are checked by CheckNetworkConfig). `at` is the pointer
// of `v`.
common::Status ReadNetworkConfig(const boost::json::value& v, const json_reader::Path& at,
                                 NetworkConfig& out);

// MACs lower case, addresses and CIDRs in canonical text.
void CanonicaliseNetworkConfig(NetworkConfig& config);

// Syntax of every address, CIDR and MAC; link names unique; bonds and VLANs
// refer to existing links of the right kind (a VLAN on a missing link is
// "/network_config/links/N/vlan_link: no link named ..."), no cycles, a
// physical link's MAC belongs to one of the instance's NICs when it has NICs;
// each network on an existing link with a mode, family, address and gateway
// that agree. Also refuses non-canonical spellings that
// CanonicaliseNetworkConfig would fix.
common::Status CheckNetworkConfig(const Instance& instance);

// Every list's length (Limit::kListItems) and every text's size
// (Limit::kTextBytes), in document order.
common::Status CheckNetworkConfigLimits(const NetworkConfig& config, const LimitChecker& limits);

// Writes "network_config" unless it is empty.
void NetworkConfigToJson(const NetworkConfig& config, boost::json::object& o);
void NetworkConfigToText(const NetworkConfig& config, json_writer::Writer& w);

// Wire names of AddressMode ("static", "dhcp", "slaac", "dhcpv6-stateful",
// "dhcpv6-stateless").
std::string_view AddressModeName(AddressMode mode);

}  // namespace openimds::model
