#pragma once

#include <boost/json/fwd.hpp>

#include "common/status.h"
#include "model/ec2_fields.h"
#include "model/instance_json.h"  // ParseOptions
#include "model/json_reader.h"
#include "model/json_writer.h"

// EC2's platform events ("events", docs/instance.md "Platform events"): Spot
// interruptions, rebalance recommendations, scheduled maintenance and the
// Auto Scaling lifecycle. JSON, canonical form and checks. Internal to the
// model module.
namespace openimds::model {

// Types and enumerations ("state" of a scheduled event) only; every time may
// be given as a delay, {"in_seconds": N} with N in 0..10 years, which becomes
// the absolute time ParseOptions::now (else the system clock) + N.
common::Status ReadEvents(const boost::json::value& v, const json_reader::Path& at,
                          PlatformEvents& out, const ParseOptions& parse);

// Times in whole seconds.
void TruncateEvents(PlatformEvents& events);

// Actions, codes and lifecycle states from EC2's sets; required times
// present; event ids present, one line and unique; not_after not before
// not_before; lifecycle steps in time order; times in whole seconds.
common::Status ValidateEvents(const PlatformEvents& events);

boost::json::object EventsToJson(const PlatformEvents& events);
// The same members as EventsToJson, in the same order, as text.
void EventsToText(json_writer::Writer& w, const PlatformEvents& events);

}  // namespace openimds::model
