#pragma once

#include <string_view>

#include <boost/json/fwd.hpp>

#include "common/status.h"
#include "model/ec2_fields.h"  // TimePoint
#include "model/json_reader.h"
#include "model/json_writer.h"

// Times in the record: RFC 3339 text in whole seconds (the wire format's
// precision); the Unix epoch means "unset" and is omitted on output.
// Internal to the model module.
namespace openimds::model {

TimePoint TruncateToSeconds(TimePoint t);

// Not the epoch.
bool IsSet(TimePoint t);

// "has a fraction of a second (Normalize truncates)". Every TimePoint
// (nanoseconds in 64 bits: years 1677..2262) has an RFC 3339 spelling; only
// the precision can be lost.
common::Status CheckTime(const json_reader::Path& at, TimePoint t);

// An RFC 3339 string whose year is in 1678..2261 ("year N not in ...", "not
// an RFC 3339 time (want 2026-11-25T13:00:00Z form)", "expected string").
common::Status ReadTime(const boost::json::value& v, const json_reader::Path& at, TimePoint& out);
inline auto Time(TimePoint& out) {
  return [&out](const boost::json::value& v, const json_reader::Path& at) {
    return ReadTime(v, at, out);
  };
}

// Writes `key` with the time in RFC 3339, or nothing while `t` is unset.
void PutTime(boost::json::object& o, std::string_view key, TimePoint t);
void PutTimeText(json_writer::Writer& w, std::string_view key, TimePoint t);

}  // namespace openimds::model
