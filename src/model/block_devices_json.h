#pragma once

#include "common/status.h"
#include "model/instance.h"

// The record's block device mapping ("block_devices": "ami" -> "/dev/xvda").
// Read and written with the StringMap helpers of json_reader.h /
// json_writer.h; the rules are here. Internal to the model module.
namespace openimds::model {

// Keys 1 or more characters of [a-z0-9]; values non-empty device names, one
// line of valid UTF-8.
common::Status ValidateBlockDevices(const StringMap& block_devices);

}  // namespace openimds::model
