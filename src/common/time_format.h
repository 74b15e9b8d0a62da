#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace openimds::common {

using TimePoint = std::chrono::system_clock::time_point;

// "2026-11-25T13:31:53Z" (UTC, whole seconds): EC2 credential and event times.
std::string FormatRfc3339(TimePoint t);
// Accepts "YYYY-MM-DDTHH:MM:SS[.fff]Z" and numeric offsets "+hh:mm" for times a
// TimePoint can hold (1677-09-21T00:12:44Z to 2262-04-11T23:47:16Z); nullopt
// otherwise.
std::optional<TimePoint> ParseRfc3339(std::string_view text);
// "21 Jan 2019 09:00:43 GMT" (day not zero-padded): EC2 scheduled-event times.
std::string FormatEc2EventTime(TimePoint t);

}  // namespace openimds::common
