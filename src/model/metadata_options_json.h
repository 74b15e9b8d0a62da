#pragma once

#include <boost/json/fwd.hpp>

#include "common/status.h"
#include "model/instance.h"
#include "model/json_reader.h"
#include "model/json_writer.h"

// The record's metadata options ("metadata_options", docs/instance.md
// "metadata_options"): JSON and checks. Always written, every member.
// Internal to the model module.
namespace openimds::model {

// Members absent from `v` keep the value `out` has. The hop limit is checked
// here as well as by ValidateMetadataOptions: the field is one byte.
common::Status ReadMetadataOptions(const boost::json::value& v, const json_reader::Path& at,
                                   MetadataOptions& out);

// "/metadata_options/hop_limit: N not in 1..64".
common::Status ValidateMetadataOptions(const MetadataOptions& options);

void MetadataOptionsToJson(const MetadataOptions& options, boost::json::object& o);
void MetadataOptionsToText(const MetadataOptions& options, json_writer::Writer& w);

}  // namespace openimds::model
