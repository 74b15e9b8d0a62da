#pragma once

#include <boost/json/fwd.hpp>

#include "common/status.h"
#include "model/box.h"
#include "model/instance.h"
#include "model/json_reader.h"
#include "model/json_writer.h"

// The record's request limits ("limits", docs/instance.md "limits"): JSON and
// checks. Each member optional; what is absent keeps the server's default.
// Internal to the model module.
namespace openimds::model {

// Types only; a record that sets none keeps the Box empty (no allocation).
common::Status ReadRequestLimits(const boost::json::value& v, const json_reader::Path& at,
                                 Box<RequestLimits>& out);

// requests_per_second, max_in_flight and max_connections in
// 0..kMaxRequestLimit (0: no limit), burst in 1..kMaxRequestLimit.
common::Status ValidateRequestLimits(const RequestLimits& limits);

// Writes "limits" when any member is set.
void RequestLimitsToJson(const RequestLimits& limits, boost::json::object& o);
void RequestLimitsToText(const RequestLimits& limits, json_writer::Writer& w);

}  // namespace openimds::model
