#include "model/platform_events_json.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <iterator>
#include <set>
#include <string>
#include <string_view>
#include <utility>

#include <boost/json.hpp>

#include "common/time_format.h"
#include "model/text_checks.h"
#include "model/time_json.h"

namespace openimds::model {

namespace json = boost::json;
using common::Status;
using namespace json_reader;  // NOLINT: the reader toolkit

namespace {

constexpr std::string_view kSpotActions[] = {"terminate", "stop", "hibernate"};
constexpr std::string_view kEventCodes[] = {"instance-reboot", "system-reboot",
                                            "system-maintenance", "instance-retirement",
                                            "instance-stop"};
constexpr std::string_view kLifecycleStates[] = {
    "InService",         "Detached",       "Standby",        "Terminated",
    "Warmed:Hibernated", "Warmed:Running", "Warmed:Stopped", "Warmed:Terminated"};
// A delay longer than this is a mistake (and would overflow nothing, but
// would leave an event waiting for a decade).
constexpr int64_t kMaxDelaySeconds = int64_t{10} * 366 * 24 * 3600;

template <size_t N>
bool OneOf(std::string_view value, const std::string_view (&set)[N]) {
  return std::find(std::begin(set), std::end(set), value) != std::end(set);
}

template <size_t N>
std::string Choices(const std::string_view (&set)[N]) {
  std::string out;
  for (std::string_view v : set) {
    if (!out.empty()) out += ", ";
    out += "\"";
    out += v;
    out += "\"";
  }
  return out;
}

std::string_view EventStateName(ScheduledEvent::State s) {
  switch (s) {
    case ScheduledEvent::State::kActive: return "active";
    case ScheduledEvent::State::kCompleted: return "completed";
    case ScheduledEvent::State::kCanceled: return "canceled";
  }
  return "active";
}

// An event time: an RFC 3339 string, or a delay {"in_seconds": N} counted
// from `now` (ParseOptions::now, else the system clock at parse time). Only
// event times take a delay: everything else describes the instance, events
// describe when something happens to it.
auto EventTime(TimePoint& out, const ParseOptions& parse) {
  return [&out, &parse](const json::value& v, const Path& at) {
    if (!v.is_object()) return Time(out)(v, at);
    int seconds = -1;
    bool has_seconds = false;
    if (Status s = ReadObject(v, at,
                              {{"in_seconds",
                                [&](const json::value& x, const Path& p) {
                                  has_seconds = true;
                                  return Int(seconds)(x, p);
                                }}});
        !s.ok()) {
      return s;
    }
    if (!has_seconds) return Err(Path(at, "in_seconds"), "required");
    if (seconds < 0 || seconds > kMaxDelaySeconds) {
      return Err(Path(at, "in_seconds"), std::to_string(seconds) + " not in 0.." +
                                              std::to_string(kMaxDelaySeconds));
    }
    const TimePoint now = parse.now.value_or(std::chrono::system_clock::now());
    out = TruncateToSeconds(now) + std::chrono::seconds(seconds);
    return Status::Ok();
  };
}

}  // namespace

Status ReadEvents(const json::value& v, const Path& at, PlatformEvents& out,
                  const ParseOptions& parse) {
  PlatformEvents e;
  auto spot = [&](const json::value& x, const Path& p) {
    SpotInterruption s;
    if (Status st = ReadObject(x, p,
                               {{"action", String(s.action)},
                                {"time", EventTime(s.time, parse)},
                                {"notice_time", EventTime(s.notice_time, parse)}});
        !st.ok()) {
      return st;
    }
    e.spot = std::move(s);
    return Status::Ok();
  };
  auto rebalance = [&](const json::value& x, const Path& p) {
    TimePoint notice{};
    bool has_notice = false;
    if (Status st = ReadObject(x, p,
                               {{"notice_time", [&](const json::value& y, const Path& q) {
                                   has_notice = true;
                                   return EventTime(notice, parse)(y, q);
                                 }}});
        !st.ok()) {
      return st;
    }
    if (!has_notice) return Err(Path(p, "notice_time"), "required");
    e.rebalance_notice = notice;
    return Status::Ok();
  };
  auto scheduled = [&](const json::value& x, const Path& p) {
    if (!x.is_array()) return Err(p, "expected array");
    for (size_t i = 0; i < x.get_array().size(); ++i) {
      ScheduledEvent ev;
      std::string state = "active";
      if (Status st = ReadObject(x.get_array()[i], Path(p, i),
                                 {{"id", String(ev.id)},
                                  {"code", String(ev.code)},
                                  {"state", String(state)},
                                  {"description", String(ev.description)},
                                  {"not_before", EventTime(ev.not_before, parse)},
                                  {"not_after", EventTime(ev.not_after, parse)},
                                  {"not_before_deadline", EventTime(ev.not_before_deadline, parse)},
                                  {"notice_time", EventTime(ev.notice_time, parse)}});
          !st.ok()) {
        return st;
      }
      if (state == "active") {
        ev.state = ScheduledEvent::State::kActive;
      } else if (state == "completed") {
        ev.state = ScheduledEvent::State::kCompleted;
      } else if (state == "canceled") {
        ev.state = ScheduledEvent::State::kCanceled;
      } else {
        return Err(Path(Path(p, i), "state"),
                   "expected \"active\", \"completed\" or \"canceled\"");
      }
      e.scheduled.push_back(std::move(ev));
    }
    return Status::Ok();
  };
  auto lifecycle = [&](const json::value& x, const Path& p) {
    if (!x.is_array()) return Err(p, "expected array");
    for (size_t i = 0; i < x.get_array().size(); ++i) {
      LifecycleTransition t;
      if (Status st = ReadObject(x.get_array()[i], Path(p, i),
                                 {{"state", String(t.state)}, {"at", EventTime(t.at, parse)}});
          !st.ok()) {
        return st;
      }
      e.lifecycle.push_back(std::move(t));
    }
    return Status::Ok();
  };
  if (Status s = ReadObject(v, at,
                            {{"spot", spot},
                             {"rebalance", rebalance},
                             {"scheduled", scheduled},
                             {"target_lifecycle_states", lifecycle}});
      !s.ok()) {
    return s;
  }
  out = std::move(e);
  return Status::Ok();
}

void TruncateEvents(PlatformEvents& e) {
  if (e.spot) {
    e.spot->time = TruncateToSeconds(e.spot->time);
    e.spot->notice_time = TruncateToSeconds(e.spot->notice_time);
  }
  if (e.rebalance_notice) e.rebalance_notice = TruncateToSeconds(*e.rebalance_notice);
  for (ScheduledEvent& ev : e.scheduled) {
    ev.not_before = TruncateToSeconds(ev.not_before);
    ev.not_after = TruncateToSeconds(ev.not_after);
    ev.not_before_deadline = TruncateToSeconds(ev.not_before_deadline);
    ev.notice_time = TruncateToSeconds(ev.notice_time);
  }
  for (LifecycleTransition& t : e.lifecycle) t.at = TruncateToSeconds(t.at);
}

Status ValidateEvents(const PlatformEvents& e) {
  if (e.spot) {
    const Path at("/events/spot");
    if (!OneOf(e.spot->action, kSpotActions)) {
      return Err(Path(at, "action"), "must be one of " + Choices(kSpotActions));
    }
    if (!IsSet(e.spot->time)) return Err(Path(at, "time"), "required");
    if (Status s = CheckTime(Path(at, "time"), e.spot->time); !s.ok()) return s;
    if (Status s = CheckTime(Path(at, "notice_time"), e.spot->notice_time); !s.ok()) return s;
  }
  if (e.rebalance_notice) {
    if (Status s = CheckTime(Path("/events/rebalance/notice_time"), *e.rebalance_notice); !s.ok()) {
      return s;
    }
  }
  std::set<std::string_view> ids;
  const Path scheduled("/events/scheduled");
  for (size_t i = 0; i < e.scheduled.size(); ++i) {
    const ScheduledEvent& ev = e.scheduled[i];
    const Path at(scheduled, i);
    if (ev.id.empty()) return Err(Path(at, "id"), "required");
    if (Status s = CheckText(Path(at, "id"), ev.id); !s.ok()) return s;
    if (!ids.insert(ev.id).second) return Err(Path(at, "id"), "\"" + ev.id + "\" listed twice");
    if (!OneOf(ev.code, kEventCodes)) {
      return Err(Path(at, "code"), "must be one of " + Choices(kEventCodes));
    }
    if (Status s = CheckText(Path(at, "description"), ev.description); !s.ok()) return s;
    if (!IsSet(ev.not_before)) return Err(Path(at, "not_before"), "required");
    const std::pair<const char*, TimePoint> times[] = {
        {"not_before", ev.not_before},
        {"not_after", ev.not_after},
        {"not_before_deadline", ev.not_before_deadline},
        {"notice_time", ev.notice_time},
    };
    for (const auto& [name, t] : times) {
      if (Status s = CheckTime(Path(at, name), t); !s.ok()) return s;
    }
    if (IsSet(ev.not_after) && ev.not_after < ev.not_before) {
      return Err(Path(at, "not_after"), "earlier than not_before");
    }
  }
  const Path lifecycle("/events/target_lifecycle_states");
  for (size_t i = 0; i < e.lifecycle.size(); ++i) {
    const LifecycleTransition& t = e.lifecycle[i];
    const Path at(lifecycle, i);
    if (!OneOf(t.state, kLifecycleStates)) {
      return Err(Path(at, "state"), "must be one of " + Choices(kLifecycleStates));
    }
    if (Status s = CheckTime(Path(at, "at"), t.at); !s.ok()) return s;
    if (i > 0 && t.at < e.lifecycle[i - 1].at) {
      return Err(Path(at, "at"), "earlier than the state before it (list them in time order)");
    }
  }
  return Status::Ok();
}

json::object EventsToJson(const PlatformEvents& e) {
  using json_writer::PutString;
  json::object o;
  if (e.spot) {
    json::object spot;
    spot["action"] = e.spot->action.view();
    PutTime(spot, "time", e.spot->time);
    PutTime(spot, "notice_time", e.spot->notice_time);
    o["spot"] = std::move(spot);
  }
  if (e.rebalance_notice) {
    // An unset (epoch) notice time still round-trips: it means "at once".
    o["rebalance"] = json::object{{"notice_time", common::FormatRfc3339(*e.rebalance_notice)}};
  }
  if (!e.scheduled.empty()) {
    json::array events;
    for (const ScheduledEvent& ev : e.scheduled) {
      json::object x;
      x["id"] = ev.id.view();
      x["code"] = ev.code.view();
      x["state"] = EventStateName(ev.state);
      PutString(x, "description", ev.description);
      PutTime(x, "not_before", ev.not_before);
      PutTime(x, "not_after", ev.not_after);
      PutTime(x, "not_before_deadline", ev.not_before_deadline);
      PutTime(x, "notice_time", ev.notice_time);
      events.emplace_back(std::move(x));
    }
    o["scheduled"] = std::move(events);
  }
  if (!e.lifecycle.empty()) {
    json::array steps;
    for (const LifecycleTransition& t : e.lifecycle) {
      json::object x;
      x["state"] = t.state.view();
      PutTime(x, "at", t.at);
      steps.emplace_back(std::move(x));
    }
    o["target_lifecycle_states"] = std::move(steps);
  }
  return o;
}

void EventsToText(json_writer::Writer& w, const PlatformEvents& e) {
  w.BeginObject();
  if (e.spot) {
    w.Key("spot");
    w.BeginObject();
    w.Key("action");
    w.String(e.spot->action);
    PutTimeText(w, "time", e.spot->time);
    PutTimeText(w, "notice_time", e.spot->notice_time);
    w.EndObject();
  }
  if (e.rebalance_notice) {
    w.Key("rebalance");
    w.BeginObject();
    w.Key("notice_time");
    w.String(common::FormatRfc3339(*e.rebalance_notice));
    w.EndObject();
  }
  if (!e.scheduled.empty()) {
    w.Key("scheduled");
    w.BeginArray();
    for (const ScheduledEvent& ev : e.scheduled) {
      w.BeginObject();
      w.Key("id");
      w.String(ev.id);
      w.Key("code");
      w.String(ev.code);
      w.Key("state");
      w.String(EventStateName(ev.state));
      w.PutString("description", ev.description);
      PutTimeText(w, "not_before", ev.not_before);
      PutTimeText(w, "not_after", ev.not_after);
      PutTimeText(w, "not_before_deadline", ev.not_before_deadline);
      PutTimeText(w, "notice_time", ev.notice_time);
      w.EndObject();
    }
    w.EndArray();
  }
  if (!e.lifecycle.empty()) {
    w.Key("target_lifecycle_states");
    w.BeginArray();
    for (const LifecycleTransition& t : e.lifecycle) {
      w.BeginObject();
      w.Key("state");
      w.String(t.state);
      PutTimeText(w, "at", t.at);
      w.EndObject();
    }
    w.EndArray();
  }
  w.EndObject();
}

}  // namespace openimds::model
