#pragma once

#include <optional>

#include <boost/json/fwd.hpp>

#include "common/status.h"
#include "model/json_reader.h"
#include "model/json_writer.h"
#include "model/str.h"

// The record's user-data ("user_data"): raw bytes, base64 in JSON (standard
// alphabet with padding; line breaks accepted on input). Present but empty is
// not absent: it is written as "". Internal to the model module.
namespace openimds::model {

// "expected string (base64)" or "not valid base64". Its size is a limit
// (record_limits.h) that the admin API checks; the text it decodes is
// bounded by the record's (Limit::kRecordBytes).
common::Status ReadUserData(const boost::json::value& v, const json_reader::Path& at,
                            std::optional<Str>& out);

// Writes "user_data" when present.
void UserDataToJson(const std::optional<Str>& user_data, boost::json::object& o);
void UserDataToText(const std::optional<Str>& user_data, json_writer::Writer& w);

}  // namespace openimds::model
