#pragma once

#include <string_view>

#include "common/status.h"
#include "model/instance.h"

// The record's tags ("tags": an object of strings). Read and written with the
// StringMap helpers of json_reader.h / json_writer.h; the rules are here.
// Internal to the model module.
namespace openimds::model {

// True for the keys EC2 serves under tags/instance/ (its rule when
// InstanceMetadataTags is enabled: [a-zA-Z0-9+-=._:@], not "." ".." or
// "_index", which would be ambiguous path segments).
bool IsImdsTagKey(std::string_view key);

// Keys non-empty, valid UTF-8 without control characters; values valid UTF-8;
// with `served_in_metadata` (metadata_options/instance_metadata_tags), every
// key IsImdsTagKey. Lengths are limits (record_limits.h), not rules.
common::Status ValidateTags(const StringMap& tags, bool served_in_metadata);

}  // namespace openimds::model
