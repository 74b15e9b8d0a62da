#include "model/time_json.h"

#include <algorithm>
#include <chrono>
#include <string>

#include <boost/json.hpp>

#include "common/time_format.h"

namespace openimds::model {

namespace json = boost::json;
using common::Status;
using json_reader::Err;
using json_reader::Path;

namespace {

constexpr int kMinYear = 1678;
constexpr int kMaxYear = 2261;

}  // namespace

TimePoint TruncateToSeconds(TimePoint t) {
  return TimePoint(std::chrono::duration_cast<TimePoint::duration>(
      std::chrono::floor<std::chrono::seconds>(t.time_since_epoch())));
}

bool IsSet(TimePoint t) { return t != TimePoint{}; }

Status CheckTime(const Path& at, TimePoint t) {
  if (TruncateToSeconds(t) != t) return Err(at, "has a fraction of a second (Normalize truncates)");
  return Status::Ok();
}

Status ReadTime(const json::value& v, const Path& at, TimePoint& out) {
  if (!v.is_string()) return Err(at, "expected string");
  const std::string_view text = v.get_string();
  // A TimePoint counts nanoseconds in 64 bits (years 1677..2262), and
  // ParseRfc3339 refuses what it cannot hold; whole years inside that are
  // the rule, checked first so the message says what is wrong.
  if (text.size() >= 4 && std::all_of(text.begin(), text.begin() + 4,
                                      [](char c) { return c >= '0' && c <= '9'; })) {
    const int year = (text[0] - '0') * 1000 + (text[1] - '0') * 100 + (text[2] - '0') * 10 +
                     (text[3] - '0');
    if (year < kMinYear || year > kMaxYear) {
      return Err(at, "year " + std::to_string(year) + " not in " + std::to_string(kMinYear) +
                         ".." + std::to_string(kMaxYear));
    }
  }
  auto t = common::ParseRfc3339(text);
  if (!t) return Err(at, "not an RFC 3339 time (want 2026-11-25T13:00:00Z form)");
  out = *t;
  return Status::Ok();
}

void PutTime(json::object& o, std::string_view key, TimePoint t) {
  if (IsSet(t)) o[key] = common::FormatRfc3339(t);
}

void PutTimeText(json_writer::Writer& w, std::string_view key, TimePoint t) {
  if (!IsSet(t)) return;
  w.Key(key);
  w.String(common::FormatRfc3339(t));
}

}  // namespace openimds::model
