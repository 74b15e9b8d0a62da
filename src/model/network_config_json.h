#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "model/instance.h"
#include "model/json_reader.h"
#include "model/json_writer.h"
#include "model/network_config.h"

namespace openimds::model {

// JSON mapping and checks for the guest-configuration fields of Instance:
// "network_config", "devices", "dedicated_cpus", "vendor_data" and
// "flavours" (docs/instance.md, "Guest network configuration" and after).
// Called only from instance_json.cc, which owns the Instance schema; kept in
// its own file so the instance mapping stays readable. Same conventions:
// errors are InvalidArgument starting with the JSON pointer of the offender.

// Readers: types only (values are checked by ValidateGuestConfig). `at` is
// the pointer of `v`.
common::Status ReadNetworkConfig(const boost::json::value& v, const json_reader::Path& at,
                                 NetworkConfig& out);
common::Status ReadDevices(const boost::json::value& v, const json_reader::Path& at,
                           std::vector<Device>& out);
common::Status ReadIntArray(const boost::json::value& v, const json_reader::Path& at,
                            std::vector<int>& out);
// Any JSON object; kept as its compact serialisation.
common::Status ReadJsonObjectText(const boost::json::value& v, const json_reader::Path& at,
                                  std::optional<Str>& out);

// Canonical spellings (MACs lower case, addresses and CIDRs in canonical
// text, dedicated_cpus sorted and unique, flavours unique in given order).
void CanonicaliseGuestConfig(Instance& instance);

// Semantic checks: syntax of every address, CIDR and MAC; link names unique;
// bonds and VLANs refer to existing links of the right kind (a VLAN on a
// missing link is "/network_config/links/N/vlan_link: no link named ..."),
// no cycles, a physical link's MAC belongs to a NIC when the instance has
// NICs; each network on an existing link with a mode, family, address and
// gateway that agree; devices well formed; vendor_data a JSON object;
// flavour names well formed. Also rejects non-canonical spellings that
// CanonicaliseGuestConfig would fix.
common::Status ValidateGuestConfig(const Instance& instance);

// Writes the fields that are set into `o` (omitting empty ones).
void GuestConfigToJson(const Instance& instance, boost::json::object& o);
// The same members as GuestConfigToJson, in the same order, as text (for
// ToJsonText).
void GuestConfigToJsonText(const Instance& instance, json_writer::Writer& w);

// Wire names of AddressMode ("static", "dhcp", "slaac", "dhcpv6-stateful",
// "dhcpv6-stateless").
std::string_view AddressModeName(AddressMode mode);

}  // namespace openimds::model
