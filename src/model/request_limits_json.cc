#include "model/request_limits_json.h"

#include <optional>
#include <string>
#include <utility>

#include <boost/json.hpp>

namespace openimds::model {

namespace json = boost::json;
using common::Status;
using namespace json_reader;  // NOLINT: the reader toolkit

Status ReadRequestLimits(const json::value& v, const Path& at, Box<RequestLimits>& out) {
  RequestLimits limits;
  auto optional_int = [](std::optional<int>& field) {
    return [&field](const json::value& x, const Path& p) {
      int n = 0;
      if (Status s = IntValue(x, p, n); !s.ok()) return s;
      field = n;
      return Status::Ok();
    };
  };
  auto rate = optional_int(limits.requests_per_second);
  auto burst = optional_int(limits.burst);
  auto in_flight = optional_int(limits.max_in_flight);
  auto connections = optional_int(limits.max_connections);
  if (Status s = ReadObject(v, at,
                            {
                                {"requests_per_second", rate},
                                {"burst", burst},
                                {"max_in_flight", in_flight},
                                {"max_connections", connections},
                            });
      !s.ok()) {
    return s;
  }
  out.Set(std::move(limits));  // nothing set: no allocation
  return Status::Ok();
}

Status ValidateRequestLimits(const RequestLimits& l) {
  const std::string max = std::to_string(kMaxRequestLimit);
  if (l.requests_per_second &&
      (*l.requests_per_second < 0 || *l.requests_per_second > kMaxRequestLimit)) {
    return Err("/limits/requests_per_second",
               std::to_string(*l.requests_per_second) + " not in 0.." + max + " (0: no limit)");
  }
  if (l.burst && (*l.burst < 1 || *l.burst > kMaxRequestLimit)) {
    return Err("/limits/burst", std::to_string(*l.burst) + " not in 1.." + max);
  }
  if (l.max_in_flight && (*l.max_in_flight < 0 || *l.max_in_flight > kMaxRequestLimit)) {
    return Err("/limits/max_in_flight",
               std::to_string(*l.max_in_flight) + " not in 0.." + max + " (0: no limit)");
  }
  if (l.max_connections && (*l.max_connections < 0 || *l.max_connections > kMaxRequestLimit)) {
    return Err("/limits/max_connections",
               std::to_string(*l.max_connections) + " not in 0.." + max + " (0: no limit)");
  }
  return Status::Ok();
}

void RequestLimitsToJson(const RequestLimits& l, json::object& o) {
  if (l == RequestLimits{}) return;
  json::object limits;
  if (l.requests_per_second) limits["requests_per_second"] = *l.requests_per_second;
  if (l.burst) limits["burst"] = *l.burst;
  if (l.max_in_flight) limits["max_in_flight"] = *l.max_in_flight;
  if (l.max_connections) limits["max_connections"] = *l.max_connections;
  o["limits"] = std::move(limits);
}

void RequestLimitsToText(const RequestLimits& l, json_writer::Writer& w) {
  if (l == RequestLimits{}) return;
  w.Key("limits");
  w.BeginObject();
  for (const auto& [key, value] :
       {std::pair{"requests_per_second", l.requests_per_second}, std::pair{"burst", l.burst},
        std::pair{"max_in_flight", l.max_in_flight},
        std::pair{"max_connections", l.max_connections}}) {
    if (!value) continue;
    w.Key(key);
    w.Int(*value);
  }
  w.EndObject();
}

}  // namespace openimds::model
