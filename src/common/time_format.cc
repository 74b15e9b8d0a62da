#include "common/time_format.h"

#include <cstdio>
#include <ctime>

namespace openimds::common {
namespace {

bool Digits(std::string_view s, size_t pos, size_t n, int& out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  out = v;
  return true;
}

std::tm ToTm(TimePoint t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  return tm;
}

}  // namespace

std::string FormatRfc3339(TimePoint t) {
  std::tm tm = ToTm(t);
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

std::optional<TimePoint> ParseRfc3339(std::string_view s) {
  int y, mo, d, h, mi, se;
  if (!Digits(s, 0, 4, y) || s.size() < 20 || s[4] != '-' || !Digits(s, 5, 2, mo) ||
      s[7] != '-' || !Digits(s, 8, 2, d) || (s[10] != 'T' && s[10] != 't') ||
      !Digits(s, 11, 2, h) || s[13] != ':' || !Digits(s, 14, 2, mi) || s[16] != ':' ||
      !Digits(s, 17, 2, se)) {
    return std::nullopt;
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60) return std::nullopt;
  size_t pos = 19;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    size_t start = pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') ++pos;
    if (pos == start) return std::nullopt;
  }
  long offset_s = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    int oh, om;
    if (!Digits(s, pos + 1, 2, oh) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
        !Digits(s, pos + 4, 2, om) || oh > 23 || om > 59) {
      return std::nullopt;
    }
    offset_s = (oh * 3600L + om * 60L) * (s[pos] == '+' ? 1 : -1);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != s.size()) return std::nullopt;
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = se;
  std::time_t tt = timegm(&tm);
  // timegm normalises 31 Feb into March; refuse dates that moved.
  std::tm check{};
  gmtime_r(&tt, &check);
  if (check.tm_mday != d && se != 60) return std::nullopt;
  // A TimePoint counts nanoseconds in 64 bits, 1677-09-21T00:12:44Z to
  // 2262-04-11T23:47:16Z in whole seconds. Converting a time outside that
  // would overflow (undefined behaviour; in practice some other date), so it
  // is refused like any other text that names no representable time.
  constexpr std::time_t kMinSeconds =
      std::chrono::duration_cast<std::chrono::seconds>(TimePoint::duration::min()).count();
  constexpr std::time_t kMaxSeconds =
      std::chrono::duration_cast<std::chrono::seconds>(TimePoint::duration::max()).count();
  const std::time_t seconds = tt - offset_s;
  if (seconds < kMinSeconds || seconds > kMaxSeconds) return std::nullopt;
  return std::chrono::system_clock::from_time_t(seconds);
}

std::string FormatEc2EventTime(TimePoint t) {
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  std::tm tm = ToTm(t);
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%d %s %04d %02d:%02d:%02d GMT", tm.tm_mday, kMonths[tm.tm_mon],
                tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

}  // namespace openimds::common
