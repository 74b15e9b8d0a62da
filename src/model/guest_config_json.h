#pragma once

namespace openimds::model {

struct RecordPart;

// The guest configuration part of the record (record_part.h): Instance::guest
// and Instance::flavours, what the guest configures on its interfaces and
// devices and which flavours may serve it. Its members, all at the record's
// top level and omitted when empty: "network_config" (network_config_json.h),
// "devices" (devices_json.h), "dedicated_cpus", "vendor_data" and "flavours"
// (docs/instance.md, "Guest network configuration" and after). Errors are
// InvalidArgument starting with the JSON pointer of the offender.
extern const RecordPart kGuestConfigPart;

}  // namespace openimds::model
