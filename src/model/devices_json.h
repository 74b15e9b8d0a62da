#pragma once

#include <vector>

#include <boost/json/fwd.hpp>

#include "common/status.h"
#include "model/json_reader.h"
#include "model/json_writer.h"
#include "model/network_config.h"

// Tagged guest devices ("devices", OpenStack's device-role tagging; docs/
// instance.md "Guest network configuration"): JSON, canonical form and
// checks. Part of the guest configuration (guest_config_json.h). Internal to
// the model module.
namespace openimds::model {

class LimitChecker;

// Types only (values are checked by CheckDevices).
common::Status ReadDevices(const boost::json::value& v, const json_reader::Path& at,
                           std::vector<Device>& out);

// MACs lower case.
void CanonicaliseDevices(std::vector<Device>& devices);

// A known bus and an address for each; tags non-empty, one line; a NIC's MAC
// well formed and its VLAN in 1..4094; the NIC-only and disk-only fields only
// on their kind.
common::Status CheckDevices(const std::vector<Device>& devices);

// The number of devices and of each one's tags (Limit::kListItems), every
// text's size (Limit::kTextBytes).
common::Status CheckDeviceLimits(const std::vector<Device>& devices, const LimitChecker& limits);

// Writes "devices" unless there are none.
void DevicesToJson(const std::vector<Device>& devices, boost::json::object& o);
void DevicesToText(const std::vector<Device>& devices, json_writer::Writer& w);

}  // namespace openimds::model
