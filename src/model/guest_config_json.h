#pragma once

#include <optional>
#include <vector>

#include <boost/json/fwd.hpp>

#include "common/status.h"
#include "model/instance.h"
#include "model/json_reader.h"
#include "model/json_writer.h"
#include "model/network_config.h"

// The guest configuration of the record (Instance::guest and
// Instance::flavours): "network_config" (network_config_json.h), "devices"
// (devices_json.h), "dedicated_cpus", "vendor_data" and "flavours"
// (docs/instance.md, "Guest network configuration" and after). All at the
// record's top level, all omitted when empty. Errors are InvalidArgument
// starting with the JSON pointer of the offender. Internal to the model
// module.
namespace openimds::model {

// "dedicated_cpus": an array of integers.
common::Status ReadIntArray(const boost::json::value& v, const json_reader::Path& at,
                            std::vector<int>& out);
// Any JSON object; kept as its compact serialisation.
common::Status ReadJsonObjectText(const boost::json::value& v, const json_reader::Path& at,
                                  std::optional<Str>& out);

// Canonical spellings (network_config's and devices'), dedicated_cpus sorted
// and unique, vendor_data in compact form; frees the group when it holds
// nothing but defaults.
void CanonicaliseGuestConfig(Instance& instance);

// CheckNetworkConfig, CheckDevices, dedicated_cpus non-negative, sorted and
// unique, vendor_data a JSON object in compact form, flavour names well
// formed ([a-z0-9_-]{1,32}) and listed once. Also rejects non-canonical
// spellings that CanonicaliseGuestConfig would fix.
common::Status ValidateGuestConfig(const Instance& instance);

// Writes the fields that are set into `o` (omitting empty ones).
void GuestConfigToJson(const Instance& instance, boost::json::object& o);
// The same members as GuestConfigToJson, in the same order, as text (for
// ToJsonText).
void GuestConfigToJsonText(const Instance& instance, json_writer::Writer& w);

}  // namespace openimds::model
