#include "model/user_data_json.h"

#include <string>
#include <utility>

#include <boost/json.hpp>

#include "common/encoding.h"
#include "model/base64.h"

namespace openimds::model {

using common::Status;
using json_reader::Err;
using json_reader::Path;

Status ReadUserData(const boost::json::value& v, const Path& at, std::optional<Str>& out) {
  if (!v.is_string()) return Err(at, "expected string (base64)");
  std::string bytes;
  if (!Base64DecodeTo(v.get_string(), bytes)) return Err(at, "not valid base64");
  out = std::move(bytes);
  return Status::Ok();
}

void UserDataToJson(const std::optional<Str>& user_data, boost::json::object& o) {
  if (user_data) o["user_data"] = common::Base64Encode(*user_data);
}

void UserDataToText(const std::optional<Str>& user_data, json_writer::Writer& w) {
  if (!user_data) return;
  w.Key("user_data");
  w.Base64(*user_data);
}

}  // namespace openimds::model
